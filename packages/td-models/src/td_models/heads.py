"""Property heads on the pooled denoiser features: band gap, formation energy, topological class.

The heads read ``graph_features`` (the masked mean of the denoiser's node features, ``(B, H)``). They
serve as an auxiliary training signal and as a cheap property predictor on noisy structures (a
guidance classifier in the sense of Dhariwal & Nichol 2021; property predictors on the shared
trunk as in MatterGen's fine-tuning adapters, Zeni et al. 2025).

Loss (:meth:`PropertyHeads.loss`), per crystal ``b``::

    loss_b = w_gap * huber(gap_pred_b - gap_b) + w_fe * huber(fe_pred_b - fe_b) + w_topo * CE(logits_b, class_b)

with a Huber loss of width 1 eV (quadratic below 1 eV, linear above; robust to badly converged
gaps) and cross entropy in nats. Missing targets (NaN floats, class ``-1``) contribute exactly 0
and no gradient; the weights default to 1. A caller averaging over the batch should divide by the
number of present targets if it wants a per-label mean (``parts["*_present"]`` give the masks).

Examples
--------
>>> import torch
>>> heads = PropertyHeads(hidden_dim=8)
>>> pred = heads(torch.randn(3, 8))
>>> pred.band_gap.shape, pred.topo_logits.shape
(torch.Size([3]), torch.Size([3, 4]))
>>> nan = float("nan")
>>> per_row, parts = heads.loss(pred, torch.tensor([0.5, nan, nan]), torch.tensor([nan] * 3), torch.tensor([1, -1, -1]))
>>> per_row.shape, float(per_row[1].detach())
(torch.Size([3]), 0.0)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from td_models.exceptions import BatchError, ConfigError

__all__ = ["PropertyHeads", "PropertyPrediction"]

_HUBER_DELTA_EV = 1.0


class PropertyPrediction(NamedTuple):
    """Outputs of :class:`PropertyHeads`."""

    band_gap: torch.Tensor  # (B,) eV, >= 0 (softplus)
    formation_energy: torch.Tensor  # (B,) eV/atom
    topo_logits: torch.Tensor  # (B, num_topo_classes)


class PropertyHeads(nn.Module):
    """A shared MLP trunk on ``(B, hidden_dim)`` graph features with three outputs.

    Parameters
    ----------
    hidden_dim:
        Width of the graph features (the denoiser's ``hidden_dim``).
    num_topo_classes:
        Number of topological classes.
    dropout:
        Dropout inside the trunk.
    """

    def __init__(self, hidden_dim: int, num_topo_classes: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        for name, value in (("hidden_dim", hidden_dim), ("num_topo_classes", num_topo_classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
        self.hidden_dim = hidden_dim
        self.num_topo_classes = num_topo_classes
        self.trunk = nn.Sequential(
            nn.LayerNorm(hidden_dim),
            nn.Linear(hidden_dim, hidden_dim),
            nn.SiLU(),
            nn.Dropout(dropout),
        )
        self.out = nn.Linear(hidden_dim, 2 + num_topo_classes)

    def forward(self, graph_features: torch.Tensor) -> PropertyPrediction:
        """``(B, hidden_dim)`` -> :class:`PropertyPrediction`."""
        if graph_features.dim() != 2 or graph_features.shape[1] != self.hidden_dim:
            raise BatchError(
                f"graph_features must have shape (B, {self.hidden_dim}), got {tuple(graph_features.shape)}"
            )
        raw = self.out(self.trunk(graph_features))  # (B, 2 + C)
        return PropertyPrediction(
            band_gap=F.softplus(raw[:, 0]),
            formation_energy=raw[:, 1],
            topo_logits=raw[:, 2:],
        )

    def loss(
        self,
        pred: PropertyPrediction,
        band_gap: torch.Tensor,
        formation_energy: torch.Tensor,
        topo_class: torch.Tensor,
        gap_weight: float = 1.0,
        fe_weight: float = 1.0,
        topo_weight: float = 1.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-crystal loss ignoring missing targets (see the module docstring for the formula).

        Parameters
        ----------
        pred:
            The output of :meth:`forward`.
        band_gap, formation_energy:
            ``(B,)`` float targets, NaN = missing.
        topo_class:
            ``(B,)`` integer targets in ``0 .. num_topo_classes - 1``, ``-1`` = missing.
        gap_weight, fe_weight, topo_weight:
            Weights of the three parts.

        Returns
        -------
        ``(loss, parts)``: ``loss`` is ``(B,)``; ``parts`` maps ``"band_gap"``, ``"formation_energy"``,
        ``"topo"`` to the unweighted ``(B,)`` parts (0 where missing) and ``"band_gap_present"``,
        ``"formation_energy_present"``, ``"topo_present"`` to ``(B,)`` bool masks.
        """
        batch = pred.band_gap.shape[0]
        for name, value in (("band_gap", band_gap), ("formation_energy", formation_energy), ("topo_class", topo_class)):
            if not isinstance(value, torch.Tensor) or value.shape != (batch,):
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise BatchError(f"{name} target must have shape ({batch},), got {shape}")
        for name, value in (("gap_weight", gap_weight), ("fe_weight", fe_weight), ("topo_weight", topo_weight)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if torch.is_floating_point(topo_class):
            raise BatchError(
                f"topo_class target must be an integer tensor (-1 = missing), got dtype {topo_class.dtype}"
            )
        bad = (topo_class < -1) | (topo_class >= self.num_topo_classes)
        if bool(bad.any()):
            value = int(topo_class[bad][0])
            raise BatchError(
                f"topo_class target must be in 0..{self.num_topo_classes - 1} or -1 (missing), got {value}"
            )

        def _regression(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            present = ~torch.isnan(target)  # (B,)
            clean = torch.where(present, target, prediction.detach()).to(prediction.dtype)  # missing -> zero error
            part = F.huber_loss(prediction, clean, reduction="none", delta=_HUBER_DELTA_EV)  # (B,)
            return torch.where(present, part, torch.zeros_like(part)), present

        gap_part, gap_present = _regression(pred.band_gap, band_gap)
        fe_part, fe_present = _regression(pred.formation_energy, formation_energy)
        topo_present = topo_class >= 0  # (B,)
        topo_part = F.cross_entropy(pred.topo_logits, topo_class.long(), ignore_index=-1, reduction="none")  # (B,)
        total = gap_weight * gap_part + fe_weight * fe_part + topo_weight * topo_part
        parts = {
            "band_gap": gap_part,
            "formation_energy": fe_part,
            "topo": topo_part,
            "band_gap_present": gap_present,
            "formation_energy_present": fe_present,
            "topo_present": topo_present,
        }
        return total, parts
