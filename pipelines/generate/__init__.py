"""The `generate` pipeline."""

from pipelines.generate.pipeline import create_pipeline

__all__ = ["create_pipeline"]
