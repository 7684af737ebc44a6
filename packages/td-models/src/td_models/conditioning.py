"""Embedding of the generation conditions (topological class, band gap, Chern number, formation energy).

Each condition may be missing on its own; a missing one is replaced by its own learned null
embedding. Dropping conditions independently at training time (:meth:`ConditionEmbedding.drop`)
trains the conditional and unconditional scores in one network, for classifier-free guidance
(Ho & Salimans 2022; per-property conditioning with independent dropping as in MatterGen,
Zeni et al. 2025). The four embeddings are concatenated and mixed by a small MLP, so the output can
represent interactions between conditions (for example "Chern insulator with a 0.3 eV gap").

Null values (what "no condition" looks like in the inputs):

=================  ==========================================  ==========================
condition          valid values                                null value
=================  ==========================================  ==========================
topo_class         long in ``0 .. num_topo_classes - 1``       ``-1`` (``NULL_CLASS``)
band_gap           float eV, ``>= 0`` (clamped to gap_max_ev)  ``NaN``
chern              long in ``[-max_abs_chern, max_abs_chern]`` ``NULL_CHERN`` (``-1000``)
formation_energy   float eV/atom (clamped to +-fe_max_abs_ev)  ``NaN``
=================  ==========================================  ==========================

Examples
--------
>>> import torch
>>> emb = ConditionEmbedding(cond_dim=16)
>>> topo, gap, chern, fe = emb.null_like(3)
>>> topo.tolist(), chern.tolist(), bool(gap.isnan().all())
([-1, -1, -1], [-1000, -1000, -1000], True)
>>> emb(torch.tensor([0, 1, -1]), torch.tensor([0.3, float("nan"), 1.0]), chern, fe).shape
torch.Size([3, 16])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from td_models.exceptions import BatchError, ConfigError
from td_models.features import sinusoidal_embedding

__all__ = ["ConditionEmbedding"]

Conditions = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class _ScalarEmbedding(nn.Module):
    """A float condition in ``[lo, hi]`` -> sinusoidal features of its position in the range -> MLP; NaN -> null."""

    def __init__(self, out_dim: int, lo: float, hi: float, freq_dim: int) -> None:
        super().__init__()
        self.lo, self.hi, self.freq_dim = float(lo), float(hi), int(freq_dim)
        self.mlp = nn.Sequential(nn.Linear(freq_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))
        self.null = nn.Parameter(torch.empty(out_dim))
        nn.init.normal_(self.null, std=1.0)

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        """``(B,)`` float -> ``(B, out_dim)``."""
        missing = torch.isnan(value)  # (B,)
        clean = torch.nan_to_num(value, nan=self.lo).clamp(self.lo, self.hi)
        position = (clean - self.lo) / (self.hi - self.lo) * 1000.0  # (B,) in [0, 1000]
        emb = self.mlp(sinusoidal_embedding(position, self.freq_dim).to(self.null.dtype))  # (B, out_dim)
        return torch.where(missing[:, None], self.null.expand_as(emb), emb)


class ConditionEmbedding(nn.Module):
    """Four independently droppable conditions -> one ``(B, cond_dim)`` vector for the denoiser.

    Parameters
    ----------
    cond_dim:
        Output width (the denoiser's ``cond_dim``).
    num_topo_classes:
        Number of topological classes (class indices ``0 .. num_topo_classes - 1``).
    max_abs_chern:
        Largest ``|C|`` accepted.
    gap_max_ev:
        Band gaps are clamped to ``[0, gap_max_ev]`` before embedding.
    fe_max_abs_ev:
        Formation energies are clamped to ``[-fe_max_abs_ev, fe_max_abs_ev]`` eV/atom.
    scalar_freq_dim:
        Width of the sinusoidal features of the two float conditions.
    """

    NULL_CLASS = -1
    NULL_CHERN = -1000

    def __init__(
        self,
        cond_dim: int,
        num_topo_classes: int = 4,
        max_abs_chern: int = 4,
        gap_max_ev: float = 10.0,
        fe_max_abs_ev: float = 5.0,
        scalar_freq_dim: int = 128,
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("cond_dim", cond_dim, 1),
            ("num_topo_classes", num_topo_classes, 1),
            ("max_abs_chern", max_abs_chern, 0),
            ("scalar_freq_dim", scalar_freq_dim, 2),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if max_abs_chern >= abs(self.NULL_CHERN):
            raise ConfigError(
                f"max_abs_chern must be < {abs(self.NULL_CHERN)} (the null sentinel), got {max_abs_chern}"
            )
        for name, value in (("gap_max_ev", gap_max_ev), ("fe_max_abs_ev", fe_max_abs_ev)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
        self.cond_dim = cond_dim
        self.num_topo_classes = num_topo_classes
        self.max_abs_chern = max_abs_chern
        self.gap_max_ev = float(gap_max_ev)
        self.fe_max_abs_ev = float(fe_max_abs_ev)
        # The last row of each table is the learned null embedding.
        self.topo = nn.Embedding(num_topo_classes + 1, cond_dim)
        self.chern = nn.Embedding(2 * max_abs_chern + 2, cond_dim)
        self.band_gap = _ScalarEmbedding(cond_dim, 0.0, gap_max_ev, scalar_freq_dim)
        self.formation_energy = _ScalarEmbedding(cond_dim, -fe_max_abs_ev, fe_max_abs_ev, scalar_freq_dim)
        self.mix = nn.Sequential(nn.Linear(4 * cond_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    # ------------------------------------------------------------------ checks
    def _check(self, topo_class, band_gap, chern, formation_energy) -> int:
        tensors = {"topo_class": topo_class, "band_gap": band_gap, "chern": chern, "formation_energy": formation_energy}
        for name, value in tensors.items():
            if not isinstance(value, torch.Tensor) or value.dim() != 1:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise BatchError(f"{name} must be a 1-D tensor of shape (B,), got {shape}")
        sizes = {name: value.shape[0] for name, value in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise BatchError(f"conditions must share the batch size, got {sizes}")
        for name in ("topo_class", "chern"):
            if torch.is_floating_point(tensors[name]) or tensors[name].dtype == torch.bool:
                raise BatchError(f"{name} must be an integer tensor, got dtype {tensors[name].dtype}")
        for name in ("band_gap", "formation_energy"):
            if not torch.is_floating_point(tensors[name]):
                raise BatchError(f"{name} must be a float tensor (NaN = no condition), got dtype {tensors[name].dtype}")
        c = self.num_topo_classes
        m = self.max_abs_chern
        bad_topo = (topo_class != self.NULL_CLASS) & ((topo_class < 0) | (topo_class >= c))
        bad_chern = (chern != self.NULL_CHERN) & (chern.abs() > m)
        bad_gap = torch.isinf(band_gap) | (band_gap < 0)
        bad_fe = torch.isinf(formation_energy)
        if bool((bad_topo | bad_chern | bad_gap | bad_fe).any()):  # one device sync for all checks
            if bool(bad_topo.any()):
                value = int(topo_class[bad_topo][0])
                raise BatchError(f"topo_class must be in 0..{c - 1} or -1 (no condition), got {value}")
            if bool(bad_chern.any()):
                value = int(chern[bad_chern][0])
                raise BatchError(f"chern must be in [-{m}, {m}] or NULL_CHERN={self.NULL_CHERN}, got {value}")
            if bool(bad_gap.any()):
                value = float(band_gap[bad_gap][0])
                raise BatchError(f"band_gap must be finite and >= 0 eV or NaN (no condition), got {value}")
            value = float(formation_energy[bad_fe][0])
            raise BatchError(f"formation_energy must be finite or NaN (no condition), got {value}")
        return topo_class.shape[0]

    # ----------------------------------------------------------------- forward
    def forward(
        self, topo_class: torch.Tensor, band_gap: torch.Tensor, chern: torch.Tensor, formation_energy: torch.Tensor
    ) -> torch.Tensor:
        """Embed the conditions; each input is ``(B,)`` (see the module docstring for null values).

        Returns
        -------
        ``(B, cond_dim)``.
        """
        self._check(topo_class, band_gap, chern, formation_energy)
        topo_index = torch.where(topo_class == self.NULL_CLASS, self.num_topo_classes, topo_class).long()  # (B,)
        chern_null = 2 * self.max_abs_chern + 1
        chern_index = torch.where(chern == self.NULL_CHERN, chern_null, chern + self.max_abs_chern).long()  # (B,)
        parts = [
            self.topo(topo_index),
            self.band_gap(band_gap),
            self.chern(chern_index),
            self.formation_energy(formation_energy),
        ]  # 4 x (B, cond_dim)
        return self.mix(torch.cat(parts, dim=-1))  # (B, 4 cond_dim) -> (B, cond_dim)

    # -------------------------------------------------------- null and dropping
    def null_like(self, batch_size: int, device: torch.device | str | None = None) -> Conditions:
        """All-null inputs for ``batch_size`` crystals: ``(topo_class, band_gap, chern, formation_energy)``.

        ``device`` defaults to the device of the module's parameters; band gap and formation energy
        are float32 NaN.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise BatchError(f"batch_size must be an integer >= 0, got {batch_size!r}")
        if device is None:
            device = self.topo.weight.device
        topo = torch.full((batch_size,), self.NULL_CLASS, dtype=torch.long, device=device)
        gap = torch.full((batch_size,), float("nan"), dtype=torch.float32, device=device)
        chern = torch.full((batch_size,), self.NULL_CHERN, dtype=torch.long, device=device)
        fe = torch.full((batch_size,), float("nan"), dtype=torch.float32, device=device)
        return topo, gap, chern, fe

    def drop(
        self,
        topo_class: torch.Tensor,
        band_gap: torch.Tensor,
        chern: torch.Tensor,
        formation_energy: torch.Tensor,
        p: float,
        generator: torch.Generator | None = None,
    ) -> Conditions:
        """Replace each entry of each condition by its null value, independently with probability ``p``.

        Four independent Bernoulli(``p``) draws per crystal (one per condition), from ``generator``
        when given (its device is used for the draws). Inputs are not modified; the outputs have the
        inputs' dtypes and devices. Used for classifier-free-guidance training.
        """
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0.0 <= p <= 1.0):
            raise ConfigError(f"drop probability p must be in [0, 1], got {p!r}")
        batch = self._check(topo_class, band_gap, chern, formation_energy)
        draw_device = generator.device if generator is not None else topo_class.device
        nulls = (self.NULL_CLASS, float("nan"), self.NULL_CHERN, float("nan"))
        out = []
        for value, null in zip((topo_class, band_gap, chern, formation_energy), nulls):
            dropped = (torch.rand(batch, generator=generator, device=draw_device) < p).to(value.device)  # (B,)
            out.append(torch.where(dropped, torch.full_like(value, null), value))
        return out[0], out[1], out[2], out[3]
