"""The `label` pipeline."""

from pipelines.label.pipeline import create_pipeline

__all__ = ["create_pipeline"]
