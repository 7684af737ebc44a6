"""Errors raised by the Kedro project: ``ValueError`` subclasses whose messages name the rule and the value."""

from __future__ import annotations

__all__ = ["PipelineConfigError", "ParameterError", "CatalogPathError", "RoundDataError"]


class PipelineConfigError(ValueError):
    """Base class of every configuration error of the pipelines (``conf/base``, ``conf/local``, ``dvc.yaml``)."""


class ParameterError(PipelineConfigError):
    """A parameter block has an unknown key or a value outside its rule."""


class CatalogPathError(PipelineConfigError):
    """The merged Kedro catalog puts a dataset where ``dvc.yaml`` does not track it."""


class RoundDataError(ValueError):
    """Active learning met data that breaks one of its rules (a record id twice in the training store, a labelling
    array that left records out)."""
