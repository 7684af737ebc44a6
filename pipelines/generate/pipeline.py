"""Generate pipeline: ``model`` + ``physics_config`` -> ``candidate_samples`` -> ``candidates`` (a CIF folder)."""

from kedro.pipeline import Pipeline, node

from pipelines.generate.nodes import candidate_records, sample_candidates


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                sample_candidates,
                inputs=["model", "params:physics_config", "params:generate_options"],
                outputs="candidate_samples",
                name="generate_candidates_node",
            ),
            node(
                candidate_records,
                inputs="candidate_samples",
                outputs=["candidates", "generation_summary"],
                name="candidate_records_node",
            ),
        ]
    )
