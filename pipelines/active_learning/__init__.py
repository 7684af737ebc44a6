"""The ``active_learning`` pipeline: rounds of generate, relax, label, select and fine-tune."""

from pipelines.active_learning.pipeline import create_pipeline

__all__ = ["create_pipeline"]
