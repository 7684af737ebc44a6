"""Relax pipeline: ``candidates`` -> CHGNet relaxation and energy above the hull -> ``relaxed_candidates``."""

from kedro.pipeline import Pipeline, node

from pipelines.relax.nodes import relax_candidates


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                relax_candidates,
                inputs=["candidates", "train_crystals", "params:physics_config", "params:relax_options"],
                outputs=["relaxed_candidates", "relax_table", "relax_summary"],
                name="relax_candidates_node",
            )
        ]
    )
