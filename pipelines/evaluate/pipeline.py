"""Evaluate pipeline: generation metrics of ``candidates``; TB physics consistency of ``relaxed_candidates``;
DFT verification of the top ones."""

from kedro.pipeline import Pipeline, node

from pipelines.evaluate.nodes import generation_quality, physics_consistency, verify_candidates


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                generation_quality,
                inputs=["candidates", "test_crystals", "train_crystals", "params:evaluate_options"],
                outputs="generation_metrics",
                name="generation_quality_node",
            ),
            node(
                physics_consistency,
                inputs=["relaxed_candidates", "params:label_options", "params:evaluate_options"],
                outputs=["checked_candidates", "physics_consistency", "candidate_table"],
                name="physics_consistency_node",
            ),
            node(
                verify_candidates,
                inputs=["checked_candidates", "params:verify_options"],
                outputs=["dft_results", "dft_crystals", "verify_summary"],
                name="verify_candidates_node",
            ),
        ]
    )
