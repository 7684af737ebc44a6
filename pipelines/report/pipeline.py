"""Report pipeline: figures and ``report.md`` in ``data/08_reporting``."""

from kedro.pipeline import Pipeline, node

from pipelines.report.nodes import (
    plot_best_band_structures,
    plot_class_distribution,
    plot_dft_band_structure,
    plot_property_histograms,
    plot_training_curves,
    write_report,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(plot_training_curves, "training_metrics", "training_curves_plot", name="plot_training_curves_node"),
            node(
                plot_class_distribution,
                ["labelled_crystals", "checked_candidates"],
                "class_distribution_plot",
                name="plot_class_distribution_node",
            ),
            node(
                plot_property_histograms,
                ["train_crystals", "candidates"],
                "property_histograms_plot",
                name="plot_property_histograms_node",
            ),
            node(
                plot_best_band_structures,
                ["checked_candidates", "params:label_options"],
                "band_structures_plot",
                name="plot_band_structures_node",
            ),
            node(
                plot_dft_band_structure,
                ["dft_results", "checked_candidates", "verify_summary"],
                "dft_band_structure_plot",
                name="plot_dft_band_structure_node",
            ),
            node(
                write_report,
                [
                    "ingest_quarantine",
                    "label_summary",
                    "split",
                    "training_summary",
                    "generation_summary",
                    "generation_metrics",
                    "physics_consistency",
                    "candidate_table",
                    "relax_summary",
                    "verify_summary",
                    "dft_results",
                ],
                "report",
                name="write_report_node",
            ),
        ]
    )
