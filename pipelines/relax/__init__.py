"""The `relax` pipeline."""

from pipelines.relax.pipeline import create_pipeline

__all__ = ["create_pipeline"]
