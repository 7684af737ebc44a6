"""``TopologicalDiffusionModel``: joint diffusion over lattice, fractional coordinates and species.

The model wires the generic diffusion core (:mod:`td_models.diffusion`) to the crystal denoiser
(:class:`~td_models.denoiser.TopologicalTransformer`), the condition embedding and the property
heads, after DiffCSP (Jiao et al. 2023) and MatterGen (Zeni et al. 2025):

* **lattice**: a variance-preserving process on the *normalised* lattice
  ``L / (N^(1/3) s)`` (rows in Angstrom; ``N`` atoms; ``s`` the typical cube root of the volume per
  atom of the training data, :meth:`TopologicalDiffusionModel.fit_normalisation`), so every crystal
  size starts from the same prior ``N(0, I)``; the denoiser predicts the noise equivariantly;
* **fractional coordinates**: a wrapped normal on the torus with score matching (DiffCSP);
* **species**: D3PM (absorbing by default), atomic number ``z`` as class ``z - 1``;
* **conditions**: topological class, band gap, Chern number and formation energy, each dropped
  independently in training so that classifier-free guidance works at sampling time;
* **physics**: soft penalties (:mod:`td_models.constraints`) on the model's clean estimate, in
  training (physics phases) and as guidance during sampling; the property heads read the features
  of an unconditioned pass (so they never see the condition they predict) and can guide sampling.

Sampling lives in :mod:`td_models.sampling`; this module holds the network, the losses and
checkpoint I/O.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from td_models.batch import CrystalBatch, collate, crystal_item
from td_models.composition import element_count_histogram
from td_models.conditioning import ConditionEmbedding
from td_models.config import TOPO_CLASSES, ExperimentConfig, ModelConfig, config_from_checkpoint
from td_models.constraints import (
    charge_bounds_table,
    charge_neutrality_penalty,
    density_penalty,
    fit_species_volumes,
    min_distance_penalty,
)
from td_models.denoiser import DenoiserOutput, TopologicalTransformer, count_parameters
from td_models.diffusion import DiscreteProcess, VPProcess, WrappedNormalProcess, sample_timesteps
from td_models.exceptions import BatchError, CheckpointError, CorruptCheckpointError
from td_models.heads import PropertyHeads
from td_models.sampling import SamplingOptions, sample
from td_physics.files import atomic_write

#: Bound on the entries of the normalised clean-lattice estimate (rows are ~1; a 20 Angstrom vacuum axis
#: of a 2-atom sheet is ~6): keeps early, noisy estimates from blowing up (DDPM clips images alike).
LATTICE_CLIP = 10.0

__all__ = ["TopologicalDiffusionModel", "PropertyPredictions", "SamplePredictions", "CHECKPOINT_FORMAT"]

log = logging.getLogger(__name__)

#: Tag and version written into every checkpoint file.
CHECKPOINT_FORMAT = ("td-models/model", 1)


@dataclass(frozen=True)
class PropertyPredictions:
    """Predicted properties of B crystals (numpy arrays)."""

    band_gap: np.ndarray  # (B,) eV
    formation_energy: np.ndarray  # (B,) eV/atom
    topo_probabilities: np.ndarray  # (B, 4) in the order of TOPO_CLASSES
    topo_class: tuple[str, ...]  # (B,) most probable class names


class SamplePredictions(NamedTuple):
    """The property heads' answers for a list of samples: ``predictions`` row ``j`` belongs to sample
    ``indices[j]``; the samples left out could not be featurised. ``predictions`` is None when no sample could.

    The order is that of td-data's ``attach_predictions(samples, predictions, indices)``, so
    ``attach_predictions(samples, *model.predict_samples(samples))`` adds them to the samples.
    """

    predictions: PropertyPredictions | None
    indices: tuple[int, ...]


class TopologicalDiffusionModel(nn.Module):
    """The generative model and its property heads.

    Parameters
    ----------
    config:
        An :class:`~td_models.config.ExperimentConfig` (model, physics and training blocks), or a
        bare :class:`~td_models.config.ModelConfig` (the other blocks take their defaults). The
        resolved configuration is saved inside every checkpoint.

    >>> from td_models.config import ExperimentConfig
    >>> model = TopologicalDiffusionModel(ExperimentConfig.preset("cpu-demo"))
    >>> crystals = model.sample(2, topo_class="TI", steps=5, seed=0)
    >>> len(crystals), crystals[0]["lattice"].shape
    (2, (3, 3))
    """

    #: Bound on the entries of the normalised clean-lattice estimate, in training and in sampling.
    lattice_clip: float = LATTICE_CLIP

    def __init__(self, config: ExperimentConfig | ModelConfig | None = None) -> None:
        super().__init__()
        if config is None:
            config = ExperimentConfig()
        if isinstance(config, ModelConfig):
            config = ExperimentConfig(model_config=config)
        self.config = config
        mc = config.model_config
        self.num_species = mc.num_species
        self.num_steps = mc.num_steps
        self.denoiser = TopologicalTransformer(
            num_species=mc.num_species,
            hidden_dim=mc.hidden_dim,
            num_layers=mc.num_layers,
            num_heads=mc.num_heads,
            num_frequencies=mc.num_frequencies,
            num_rbf=mc.num_rbf,
            mlp_ratio=mc.mlp_ratio,
            dropout=mc.dropout,
            gradient_checkpointing=mc.gradient_checkpointing,
            pair_values=mc.pair_values,
            pair_distances=mc.pair_distances,
            coord_vectors=mc.coord_vectors,
            image_cutoff=mc.image_cutoff,
        )
        self.conditions = ConditionEmbedding(cond_dim=mc.hidden_dim, num_topo_classes=mc.num_topo_classes)
        self.heads = PropertyHeads(mc.hidden_dim, num_topo_classes=mc.num_topo_classes, dropout=mc.dropout)
        with torch.device("cpu"):  # schedule tables hold data even when the weights are built on "meta"
            self.lattice_process = VPProcess(num_steps=mc.num_steps, schedule=mc.lattice_schedule)
            self.coord_process = WrappedNormalProcess(
                num_steps=mc.num_steps, sigma_min=mc.sigma_min, sigma_max=mc.sigma_max
            )
            self.species_process = DiscreteProcess(
                num_classes=mc.num_species,
                num_steps=mc.num_steps,
                kind=mc.species_process,
                schedule=mc.species_schedule,
            )
        # Data statistics, saved with the weights: lattice scale (Angstrom) and the atom-count histogram.
        self.register_buffer("lattice_scale", torch.tensor(2.5))
        counts = torch.zeros(mc.max_atoms + 1)
        counts[1:] = 1.0  # uniform over 1..max_atoms until fit_normalisation sees data
        self.register_buffer("atom_count_weights", counts)
        # Elements seen in training (all allowed until fit_normalisation sees data); the sampler keeps to them.
        self.register_buffer("species_seen", torch.ones(mc.num_species, dtype=torch.bool))
        # Joint histogram of (atoms, distinct elements) per training crystal; zero until fit_normalisation.
        self.register_buffer("element_count_weights", torch.zeros(mc.max_atoms + 1, mc.max_atoms + 1))
        # The same histogram per topological class of the labelled training crystals (class, atoms, elements); zero
        # until fit_normalisation (and in files written before it was kept): sample(class_counts=True) draws from it.
        self.register_buffer(
            "class_element_count_weights", torch.zeros(mc.num_topo_classes, mc.max_atoms + 1, mc.max_atoms + 1)
        )
        # Volume per atom (Angstrom^3) of each element fitted on the training crystals; zero until fit_normalisation
        # (and in files written before it was kept): the sampler's volume guidance needs it.
        self.register_buffer("species_volume", torch.zeros(mc.num_species))
        self.register_buffer("charge_bounds", charge_bounds_table(mc.num_species), persistent=False)

    # ------------------------------------------------------------------------------ bookkeeping
    @property
    def device(self) -> torch.device:
        return self.lattice_scale.device

    def num_parameters(self) -> int:
        return count_parameters(self)

    @property
    def has_element_volumes(self) -> bool:
        """Whether ``fit_normalisation`` fitted the element volumes (files written before they were kept have none);
        the sampler's ``volume_guidance`` needs them."""
        return bool((self.species_volume > 0).any())

    def fit_normalisation(self, crystals: Sequence[dict[str, Any]] | CrystalBatch) -> None:
        """Set the lattice scale and the atom-count distribution from training crystals.

        ``s`` is the median over crystals of ``(V / N)^(1/3)`` (Angstrom), so normalised lattices
        have rows of order one; the atom-count histogram is what :meth:`sample` draws from when no
        count is given (counts above ``max_atoms`` are refused); the elements present are the ones
        :meth:`sample` uses unless told otherwise (``restrict_species=False``); the joint histogram of atoms
        and distinct elements per crystal is what :meth:`sample` draws the element counts from (and the same per
        topological class of the labelled crystals, what ``sample(class_counts=True)`` draws from); each element's
        volume per atom (:func:`~td_models.constraints.fit_species_volumes`) is what the sampler's
        ``volume_tolerance`` guidance holds a cell's volume to.
        """
        batch = crystals if isinstance(crystals, CrystalBatch) else collate(list(crystals))
        volume = torch.linalg.det(batch.lattice.double()).abs()
        per_atom = (volume / batch.num_atoms.double()) ** (1.0 / 3.0)
        max_atoms = self.atom_count_weights.shape[0] - 1
        if int(batch.num_atoms.max()) > max_atoms:
            largest = int(batch.num_atoms.max())
            raise BatchError(f"crystals must have at most model_config.max_atoms = {max_atoms} atoms, got {largest}")
        counts = torch.bincount(batch.num_atoms, minlength=max_atoms + 1).to(self.atom_count_weights)
        seen = torch.zeros_like(self.species_seen)
        seen[(batch.atom_types - 1).to(seen.device)] = True
        self.species_seen.copy_(seen)
        self.element_count_weights.copy_(element_count_histogram(batch, max_atoms).to(self.element_count_weights))
        by_class = element_count_histogram(batch, max_atoms, num_classes=self.class_element_count_weights.shape[0])
        self.class_element_count_weights.copy_(by_class.to(self.class_element_count_weights))
        volumes = fit_species_volumes(batch.lattice, batch.atom_types, batch.batch_index, self.num_species)
        self.species_volume.copy_(volumes.to(self.species_volume))
        self.lattice_scale.fill_(float(per_atom.median()))
        self.atom_count_weights.copy_(counts)
        log.info("normalisation: lattice scale %.3f Angstrom from %d crystals", float(per_atom.median()), len(batch))

    def length_scale(self, num_atoms: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``(B,)`` Angstrom per unit of the normalised lattice: ``N^(1/3)`` times the lattice scale."""
        return num_atoms.to(dtype).pow(1.0 / 3.0) * self.lattice_scale.to(dtype)

    def normalise_lattice(self, lattice: torch.Tensor, num_atoms: torch.Tensor) -> torch.Tensor:
        return lattice / self.length_scale(num_atoms, lattice.dtype)[:, None, None]

    def denormalise_lattice(self, lattice: torch.Tensor, num_atoms: torch.Tensor) -> torch.Tensor:
        return lattice * self.length_scale(num_atoms, lattice.dtype)[:, None, None]

    # ------------------------------------------------------------------------------ network
    def denoise(
        self,
        lattice_n: torch.Tensor,
        frac: torch.Tensor,
        species: torch.Tensor,
        batch_index: torch.Tensor,
        num_atoms: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
    ) -> tuple[DenoiserOutput, torch.Tensor]:
        """Run the denoiser on flat atoms; returns its output and the (B, N) mask of real atoms.

        ``cond`` has B rows, or k B rows to run the same crystals under k conditions in one pass (the
        outputs then have k B rows, condition block by condition block; the mask stays (B, N)).
        """
        from td_models.batch import to_dense

        dense_frac, dense_species, mask = to_dense(frac, species, num_atoms, pad_species=self.num_species)
        time = t.to(lattice_n.dtype) / self.num_steps  # (B,) in [0, 1]
        scale = self.length_scale(num_atoms, lattice_n.dtype) if self.denoiser.pair_distances == "angstrom" else None
        return self.denoiser(lattice_n, dense_frac, dense_species, mask, time, cond, length_scale=scale), mask

    def embed_conditions(self, batch: CrystalBatch, drop_prob: float, generator: torch.Generator | None):
        conds = (batch.topo_class, batch.band_gap, batch.chern, batch.formation_energy)
        if drop_prob > 0:
            conds = self.conditions.drop(*conds, p=drop_prob, generator=generator)
        return self.conditions(*conds)

    # ------------------------------------------------------------------------------ training
    def training_losses(
        self,
        batch: CrystalBatch,
        *,
        physics: bool = False,
        conditioning: bool = True,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-part mean losses and their weighted ``total`` for one batch.

        ``physics`` switches on the property heads and the physics penalties (the second and third
        training phases); ``conditioning`` False trains unconditionally (every condition null).
        Returns scalars: ``lattice``, ``coords``, ``species`` and, with physics, ``properties`` (the
        sum of ``band_gap``, ``formation_energy`` and ``topo``, each a mean over the crystals that
        carry that label), ``min_distance``, ``density``, ``charge``, and ``total``.
        """
        mc = self.config.model_config
        pc = self.config.physics_config
        batch = batch.to(self.device)
        num_crystals = len(batch)
        t = sample_timesteps(num_crystals, self.num_steps, generator=generator, device=self.device, antithetic=True)
        t_atoms = t[batch.batch_index]  # (sum N,)
        lattice0 = self.normalise_lattice(batch.lattice, batch.num_atoms)
        lattice_t, lattice_noise = self.lattice_process.q_sample(lattice0, t, generator=generator)
        frac_t, coord_target = self.coord_process.q_sample(batch.frac_coords, t_atoms, generator=generator)
        species0 = batch.atom_types - 1  # class z - 1
        species_t = self.species_process.q_sample(species0, t_atoms, generator=generator)

        if conditioning:
            cond = self.embed_conditions(batch, mc.cond_drop_prob, generator)
        else:
            cond = self.conditions(*self.conditions.null_like(num_crystals, device=self.device))
        if physics:  # one pass under both conditions, the geometry shared (see TopologicalTransformer.forward)
            null = self.conditions(*self.conditions.null_like(num_crystals, device=self.device))
            out2, mask = self.denoise(
                lattice_t, frac_t, species_t, batch.batch_index, batch.num_atoms, t, torch.cat([cond, null])
            )
            out = DenoiserOutput(*(x[:num_crystals] for x in out2))
            unconditioned_features = out2.graph_features[num_crystals:]
        else:
            out, mask = self.denoise(lattice_t, frac_t, species_t, batch.batch_index, batch.num_atoms, t, cond)

        per_atom = torch.zeros(num_crystals, device=self.device)
        counts = batch.num_atoms.to(per_atom.dtype)
        coord_loss = self.coord_process.loss(out.coord_score[mask], coord_target)  # (sum N,)
        species_loss = self.species_process.loss(out.species_logits[mask], species0, species_t, t_atoms)  # (sum N,)
        losses = {
            "lattice": self.lattice_process.loss(out.lattice_eps, lattice_noise).mean(),
            "coords": (per_atom.index_add(0, batch.batch_index, coord_loss) / counts).mean(),
            "species": (per_atom.index_add(0, batch.batch_index, species_loss) / counts).mean(),
        }
        total = (
            mc.lattice_loss_weight * losses["lattice"]
            + mc.coord_loss_weight * losses["coords"]
            + mc.species_loss_weight * losses["species"]
        )
        if physics:
            prediction = self.heads(unconditioned_features)
            _, parts = self.heads.loss(prediction, batch.band_gap, batch.formation_energy, batch.topo_class)
            for name in ("band_gap", "formation_energy", "topo"):  # mean over the crystals that carry the label
                present = parts[f"{name}_present"].to(parts[name].dtype)
                losses[name] = (parts[name] * present).sum() / present.sum().clamp_min(1.0)
            losses["properties"] = losses["band_gap"] + losses["formation_energy"] + losses["topo"]
            penalties = self._clean_estimate_penalties(lattice_t, frac_t, t, t_atoms, out, mask, batch)
            weight = self.lattice_process.alpha_bar(t).to(lattice_t.dtype).reshape(-1)  # trust low-noise estimates
            for name, value in penalties.items():
                losses[name] = (weight * value).mean()
            total = total + mc.property_loss_weight * losses["properties"]
            total = total + pc.constraint_weight * sum(losses[name] for name in penalties)
        losses["total"] = total
        return losses

    def clean_estimate(
        self,
        lattice_t: torch.Tensor,
        frac_t: torch.Tensor,
        t: torch.Tensor,
        t_atoms: torch.Tensor,
        lattice_eps: torch.Tensor,
        coord_score_flat: torch.Tensor,
        num_atoms: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's estimate of the clean crystal: lattice (B, 3, 3) in Angstrom, coordinates (sum N, 3).

        The lattice from the predicted noise (VP), the coordinates by Tweedie's formula on the torus
        ``f0 = f_t + sigma_t^2 * score`` (exact for a Gaussian; good while ``sigma_t`` is well below
        the cell period, which is where the estimate is trusted). Normalised lattice entries are
        clamped to +-``lattice_clip``.
        """
        clip = self.lattice_clip
        lattice0 = self.lattice_process.predict_x0(lattice_t, t, lattice_eps).clamp(-clip, clip)
        sigma = self.coord_process.sigma(t_atoms).to(frac_t.dtype).reshape(-1, 1)  # (sum N, 1)
        norm = self.coord_process.sigma_norm(t_atoms).to(frac_t.dtype).reshape(-1, 1)
        frac0 = frac_t + sigma**2 * coord_score_flat * norm.sqrt()
        return self.denormalise_lattice(lattice0, num_atoms), frac0

    def _clean_estimate_penalties(self, lattice_t, frac_t, t, t_atoms, out, mask, batch) -> dict[str, torch.Tensor]:
        from td_models.batch import to_dense

        pc = self.config.physics_config
        lattice0, frac0 = self.clean_estimate(
            lattice_t, frac_t, t, t_atoms, out.lattice_eps, out.coord_score[mask], batch.num_atoms
        )
        dense_frac0, _, _ = to_dense(frac0, batch.atom_types, batch.num_atoms, pad_species=0)
        probs = torch.softmax(out.species_logits.float(), dim=-1)
        low, high = pc.volume_per_atom_range
        return {
            "min_distance": min_distance_penalty(lattice0, dense_frac0, mask, d_min=pc.min_distance),
            "density": density_penalty(lattice0, batch.num_atoms, low, high),
            "charge": charge_neutrality_penalty(probs, mask, self.charge_bounds),
        }

    # ------------------------------------------------------------------------------ properties
    @torch.no_grad()
    def predict_properties(
        self, crystals: Sequence[dict[str, Any]] | CrystalBatch, batch_size: int = 256, *, dropout: bool = False
    ) -> PropertyPredictions:
        """Band gap, formation energy and class probabilities of clean crystals (no conditions).

        ``crystals``: dicts with ``lattice`` (3, 3) Angstrom, ``frac_coords`` (N, 3) and
        ``atomic_numbers`` (N,), or a :class:`~td_models.batch.CrystalBatch`. ``dropout``: keep the
        ``nn.Dropout`` layers active (MC dropout, Gal & Ghahramani 2016): repeated calls draw from the
        global torch RNG and their spread estimates the model's uncertainty; with ``model_config.dropout``
        0 every call gives the same answer.
        """
        was_training = self.training
        self.eval()
        if dropout:
            for module in self.modules():
                if isinstance(module, nn.Dropout):
                    module.train()
        try:
            if isinstance(crystals, CrystalBatch):
                batches = [crystals]
            else:
                items = [
                    crystal_item(c["lattice"], c["frac_coords"], c["atomic_numbers"], num_species=self.num_species)
                    for c in crystals
                ]
                if not items:
                    raise BatchError("predict_properties needs at least one crystal, got none")
                batches = [collate(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
            gaps, energies, probs = [], [], []
            for batch in batches:
                batch = batch.to(self.device)
                null = self.conditions(*self.conditions.null_like(len(batch), device=self.device))
                t = torch.zeros(len(batch), dtype=torch.long, device=self.device)
                lattice = self.normalise_lattice(batch.lattice, batch.num_atoms)
                out, _ = self.denoise(
                    lattice, batch.frac_coords, batch.atom_types - 1, batch.batch_index, batch.num_atoms, t, null
                )
                pred = self.heads(out.graph_features)
                gaps.append(pred.band_gap.float().cpu())
                energies.append(pred.formation_energy.float().cpu())
                probs.append(torch.softmax(pred.topo_logits.float(), dim=-1).cpu())
        finally:
            self.train(was_training)
        p = torch.cat(probs).numpy()
        return PropertyPredictions(
            band_gap=torch.cat(gaps).numpy(),
            formation_energy=torch.cat(energies).numpy(),
            topo_probabilities=p,
            topo_class=tuple(TOPO_CLASSES[i] for i in p.argmax(axis=1)),
        )

    def predict_samples(self, samples: Sequence[dict[str, Any]], batch_size: int = 256) -> SamplePredictions:
        """:meth:`predict_properties` of the ``samples`` (dicts as :meth:`sample` returns them) that can be
        featurised (:func:`~td_models.batch.crystal_item` accepts them); the others, a singular cell for
        example, are left out of ``indices`` instead of failing the whole list.

        >>> from td_models.config import ExperimentConfig
        >>> model = TopologicalDiffusionModel(ExperimentConfig.preset("cpu-demo"))
        >>> crystals = model.sample(2, steps=5, seed=0)
        >>> crystals[1]["lattice"] = crystals[1]["lattice"] * 0.0
        >>> result = model.predict_samples(crystals)
        >>> result.indices, result.predictions.band_gap.shape
        ((0,), (1,))
        """
        usable = []
        for i, s in enumerate(samples):
            try:
                crystal_item(s["lattice"], s["frac_coords"], s["atomic_numbers"], num_species=self.num_species)
            except BatchError:
                continue
            usable.append(i)
        if not usable:
            return SamplePredictions(None, ())
        return SamplePredictions(self.predict_properties([samples[i] for i in usable], batch_size), tuple(usable))

    # ------------------------------------------------------------------------------ sampling
    def sample(self, n: int, options: SamplingOptions | None = None, **overrides: Any) -> list[dict[str, Any]]:
        """Generate ``n`` crystals under ``options`` with ``overrides`` (:class:`~td_models.sampling.SamplingOptions`
        field names as keywords, e.g. ``topo_class="TI", steps=50``); see :func:`td_models.sampling.sample`."""
        return sample(self, n, options, **overrides)

    # ------------------------------------------------------------------------------ checkpoints
    def save(self, path: str | os.PathLike) -> Path:
        """Write weights, data statistics and the resolved configuration, atomically."""
        from td_models import __version__

        payload = {
            "format": CHECKPOINT_FORMAT[0],
            "format_version": CHECKPOINT_FORMAT[1],
            "td_models_version": __version__,
            "config": self.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }
        return atomic_torch_save(payload, path)

    @classmethod
    def load(
        cls, path: str | os.PathLike, map_location: str | torch.device = "cpu", trusted: bool = False
    ) -> TopologicalDiffusionModel:
        """Read a checkpoint written by :meth:`save` (``weights_only=True`` unless ``trusted``)."""
        payload = safe_torch_load(path, map_location=map_location, trusted=trusted)
        if payload.get("format") != CHECKPOINT_FORMAT[0]:
            raise CheckpointError(f"{str(path)!r} is not a td-models model file (format {payload.get('format')!r})")
        if payload.get("format_version") != CHECKPOINT_FORMAT[1]:
            raise CheckpointError(
                f"{str(path)!r} has format version {payload.get('format_version')!r}; "
                f"this td-models reads version {CHECKPOINT_FORMAT[1]}"
            )
        model = cls(config_from_checkpoint(payload["config"]))
        missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
        if "species_seen" in missing:  # files from before the element list was kept: every element allowed
            log.warning("%s has no list of training elements; sampling may use any element", path)
            missing.remove("species_seen")
        if "element_count_weights" in missing:  # files from before the element counts were kept
            log.warning("%s has no element-count histogram; sampling leaves the number of elements free", path)
            missing.remove("element_count_weights")
        if "class_element_count_weights" in missing:  # files from before the per-class histograms were kept
            log.info("%s has no per-class atom-count histograms; sample(class_counts=True) is refused for it", path)
            missing.remove("class_element_count_weights")
        if "species_volume" in missing:  # files from before the element volumes were kept: no volume guidance
            log.info("%s has no fitted element volumes; sample(volume_tolerance=...) is refused for it", path)
            missing.remove("species_volume")
        if missing or unexpected:
            raise CheckpointError(f"{str(path)!r} does not match the model: missing {missing}, unexpected {unexpected}")
        return model.to(map_location)


def atomic_torch_save(payload: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` crash-safely: temporary sibling ``.<name>.<random>.tmp``, fsync, rename, fsync the folder.

    The file gets the user's umask (as ``open`` would), not ``mkstemp``'s 0600. A process killed
    mid-write leaves only the temporary file (see :func:`td_physics.files.remove_orphan_temporaries`).
    """

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()

    return atomic_write(path, write)


def _corruption(path: Path) -> str | None:
    """Why ``path`` is not a complete torch archive (empty, not a zip, bad member checksum), or None."""
    size = path.stat().st_size
    if size == 0:
        return "it is empty (0 bytes): truncated, e.g. by a crash or a full disk during the write"
    if not zipfile.is_zipfile(path):
        return f"it is not a complete torch archive ({size} bytes, no zip directory): truncated or overwritten"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return f"its torch archive is damaged ({size} bytes): {exc}"
    if bad is not None:
        return f"its torch archive is damaged ({size} bytes): member {bad!r} fails its checksum"
    return None


def safe_torch_load(
    path: str | os.PathLike, map_location: Any = "cpu", trusted: bool = False, verify: bool = False
) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True`` unless ``trusted``; clear errors for missing or bad files.

    A truncated or corrupt file raises :class:`~td_models.exceptions.CorruptCheckpointError` saying so;
    only a complete file whose pickle holds objects beyond tensors and plain containers gets the hint
    about ``trusted=True``. ``verify`` first checks the CRC-32 of every member of the archive (one
    extra read of the file): ``torch.load`` itself does not, so a damaged byte inside a stored tensor
    would otherwise load as a wrong weight.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file must exist, got {str(path)!r}")
    if verify:
        reason = _corruption(path)
        if reason is not None:
            raise CorruptCheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt: {reason}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=not trusted)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError, EOFError, UnicodeDecodeError ...
        reason = _corruption(path)
        if reason is not None:
            raise CorruptCheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt: {reason}") from exc
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if not trusted and isinstance(exc, pickle.UnpicklingError):
            hint = (
                " (it holds objects that weights_only=True refuses to unpickle; pass trusted=True only for "
                "files you made)"
            )
        raise CheckpointError(f"could not read checkpoint {str(path)!r}: {detail}{hint}") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} must hold a dict, got {type(payload).__name__}")
    return payload
