"""Evaluate pipeline: generation metrics and physics consistency of ``candidates``."""

from kedro.pipeline import Pipeline, node

from pipelines.evaluate.nodes import generation_quality, physics_consistency


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
                inputs=["candidates", "params:label_options", "params:evaluate_options"],
                outputs=["checked_candidates", "physics_consistency", "candidate_table"],
                name="physics_consistency_node",
            ),
        ]
    )
