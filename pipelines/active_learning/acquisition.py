"""The acquisition rule of active learning: which labelled candidates are added to the training store.

Each eligible candidate (labelled, passed the stability filter) gets three terms in [0, 1]:

* ``confidence``: the labeller's confidence in its label (the TB ensemble's agreement; 1 for a DFT label), so
  that a label the ensemble disputes is not learnt first;
* ``disagreement``: ``1 - p``, where ``p`` is the model's class-head probability of the labeller's class: the
  crystals the model gets wrong;
* ``spread``: ``s / (s + spread_scale)`` with ``s`` the standard deviation (eV) of the band-gap head over
  ``mc_samples`` MC-dropout passes: the crystals the model is unsure about.

``weighted_sum`` scores a candidate with the weighted mean of the terms, ``max`` with the largest weighted term
divided by the largest weight; both lie in [0, 1]. Of the ``n`` crystals added, ``round(exploration_share * n)``
(halves up) are drawn uniformly at random, with the round's seed, from the eligible candidates the scores did not
pick; the rest are the highest scores (ties by id).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from pipelines._options import OptionsBlock, is_int, is_number
from pipelines.exceptions import ParameterError

__all__ = ["RULES", "TERMS", "AcquisitionOptions", "acquisition_scores", "acquisition_terms", "n_exploration",
           "select"]  # fmt: skip

#: The scoring rules ``acquisition.rule`` accepts.
RULES = ("weighted_sum", "max")
#: The terms, in the order of their weights.
TERMS = ("confidence", "disagreement", "spread")


@dataclass(frozen=True)
class AcquisitionOptions(OptionsBlock):
    """The ``active_learning_options.acquisition`` block of ``parameters_active_learning.yml``."""

    block: ClassVar[str] = "active_learning_options.acquisition"

    rule: str = "weighted_sum"  # weighted_sum | max
    confidence: float = 1.0  # weight of the labeller's confidence
    disagreement: float = 1.0  # weight of 1 - the class head's probability of the labeller's class
    spread: float = 0.0  # weight of the band-gap head's MC-dropout spread (needs model_config.dropout > 0)
    spread_scale: float = 0.1  # eV: a spread s enters as s / (s + spread_scale)
    mc_samples: int = 8  # MC-dropout passes for the spread
    exploration_share: float = 0.25  # share of the added crystals drawn at random (seeded) instead of by score

    def __post_init__(self) -> None:
        b = self.block
        if self.rule not in RULES:
            raise ParameterError(f"{b}.rule must be one of {RULES}, got {self.rule!r}")
        for name in TERMS:
            value = getattr(self, name)
            if not is_number(value) or not (value >= 0 and math.isfinite(value)):
                raise ParameterError(f"{b}.{name} must be a weight >= 0, got {value!r}")
        if not sum(getattr(self, name) for name in TERMS) > 0:
            raise ParameterError(f"{b}: at least one of the weights {TERMS} must be > 0, got all 0")
        if not is_number(self.spread_scale) or not (self.spread_scale > 0 and math.isfinite(self.spread_scale)):
            raise ParameterError(f"{b}.spread_scale must be a number of eV > 0, got {self.spread_scale!r}")
        if not is_int(self.mc_samples) or self.mc_samples < 2:
            raise ParameterError(f"{b}.mc_samples must be an integer >= 2, got {self.mc_samples!r}")
        share = self.exploration_share
        if not is_number(share) or not 0 <= share <= 1:
            raise ParameterError(f"{b}.exploration_share must be a number in [0, 1], got {share!r}")

    @property
    def weights(self) -> np.ndarray:
        """The weights of :data:`TERMS`, in order."""
        return np.array([float(getattr(self, name)) for name in TERMS])


def acquisition_terms(
    confidence: Sequence[float], class_probability: Sequence[float], spread: Sequence[float], spread_scale: float
) -> np.ndarray:
    """``(n, 3)`` terms in [0, 1], columns :data:`TERMS`: the labeller's confidence, ``1 - class_probability``
    and ``spread / (spread + spread_scale)`` (``spread`` in eV, >= 0).

    >>> acquisition_terms([1.0, 0.5], [0.25, 1.0], [0.0, 0.1], 0.1).tolist()
    [[1.0, 0.75, 0.0], [0.5, 0.0, 0.5]]
    """
    conf = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
    prob = np.clip(np.asarray(class_probability, dtype=float), 0.0, 1.0)
    s = np.maximum(np.asarray(spread, dtype=float), 0.0)
    if not (conf.shape == prob.shape == s.shape and conf.ndim == 1):
        raise ParameterError(f"the acquisition terms need three arrays of one length, got {conf.shape}, "
                             f"{prob.shape} and {s.shape}")  # fmt: skip
    return np.stack([conf, 1.0 - prob, s / (s + spread_scale)], axis=1)  # (n, 3)


def acquisition_scores(terms: np.ndarray, options: AcquisitionOptions) -> np.ndarray:
    """``(n,)`` scores in [0, 1] of ``(n, 3)`` terms under ``options.rule`` and its weights.

    >>> opts = AcquisitionOptions(confidence=1.0, disagreement=3.0)
    >>> acquisition_scores(np.array([[1.0, 0.5, 0.0]]), opts).tolist()
    [0.625]
    >>> acquisition_scores(np.array([[1.0, 0.5, 0.0]]), AcquisitionOptions(rule="max", disagreement=3.0)).tolist()
    [0.5]
    """
    w = options.weights
    terms = np.asarray(terms, dtype=float).reshape(-1, len(TERMS))
    if options.rule == "weighted_sum":
        return terms @ w / w.sum()
    return (terms * w).max(axis=1) / w.max()


def n_exploration(n_selected: int, share: float) -> int:
    """The crystals of ``n_selected`` drawn at random: ``share * n_selected`` rounded, halves up.

    >>> n_exploration(8, 0.25), n_exploration(2, 0.25), n_exploration(6, 0.25), n_exploration(3, 1.0)
    (2, 1, 2, 3)
    """
    return min(n_selected, math.floor(share * n_selected + 0.5))


def select(
    ids: Sequence[str], scores: np.ndarray, n_add: int, exploration_share: float, seed: Any
) -> tuple[list[int], list[int]]:
    """``(by score, at random)``: positions into ``ids`` of the crystals to add, at most ``n_add`` in all.

    The highest scores come first (ties by id); then :func:`n_exploration` positions drawn without replacement
    from the rest with ``numpy.random.default_rng(seed)``. The same inputs give the same picks.
    """
    n = min(int(n_add), len(ids))
    n_random = n_exploration(n, exploration_share)
    order = sorted(range(len(ids)), key=lambda i: (-float(scores[i]), str(ids[i])))
    by_score = order[: n - n_random]
    rest = sorted(set(range(len(ids))) - set(by_score))
    rng = np.random.default_rng(seed)
    at_random = sorted(int(i) for i in rng.choice(rest, size=n_random, replace=False)) if n_random else []
    return by_score, at_random
