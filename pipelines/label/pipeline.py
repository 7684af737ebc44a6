"""Label pipeline: ``raw_crystals`` -> ``labelled_crystals`` + ``label_summary``."""

from kedro.pipeline import Pipeline, node

from pipelines.label.nodes import label_crystals


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                label_crystals,
                inputs=["raw_crystals", "params:label_options"],
                outputs=["labelled_crystals", "label_summary"],
                name="label_crystals_node",
            )
        ]
    )
