"""Generate pipeline: ``model`` + ``physics_config`` -> ``candidates`` (a CIF folder)."""

from kedro.pipeline import Pipeline, node

from pipelines.generate.nodes import generate_candidates


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                generate_candidates,
                inputs=["model", "params:physics_config", "params:generate_options"],
                outputs=["candidates", "generation_summary"],
                name="generate_candidates_node",
            )
        ]
    )
