"""Ingest pipeline: ``params:data_config`` + ``user_crystals`` -> ``raw_crystals`` + ``ingest_quarantine``."""

from kedro.pipeline import Pipeline, node

from pipelines.ingest.nodes import ingest_crystals


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                ingest_crystals,
                inputs=["params:data_config", "user_crystals"],
                outputs=["raw_crystals", "ingest_quarantine"],
                name="ingest_crystals_node",
            )
        ]
    )
