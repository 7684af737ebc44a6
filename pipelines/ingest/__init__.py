"""The `ingest` pipeline."""

from pipelines.ingest.pipeline import create_pipeline

__all__ = ["create_pipeline"]
