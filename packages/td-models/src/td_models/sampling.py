"""Sampling crystals from a :class:`~td_models.model.TopologicalDiffusionModel`.

One loop for every sampler: the reverse steps ``(t, s)`` come from
:func:`~td_models.diffusion.sampling_schedule` (``steps = num_steps`` is DiffCSP's full ancestral
chain; fewer steps is the fast sampler, with DDIM-style jumps for the lattice, reverse-SDE jumps for
coordinates and D3PM jumps for species). At each step:

1. the denoiser runs once on the conditioned and the unconditioned inputs together, and
   classifier-free guidance mixes them, ``x = x_u + w (x_c - x_u)`` for the lattice noise, the
   coordinate score and the species log-probabilities (Ho & Salimans 2022);
2. optional Langevin corrector steps on the coordinates, each followed by a fresh denoiser pass
   (DiffCSP's predictor-corrector);
3. physics guidance moves the clean estimate down the gradient of the penalties of
   :mod:`td_models.constraints` (no backpropagation through the network), and optional property
   guidance follows the gradient of the property heads' log-likelihood of the request through the
   network (one extra forward and backward pass per step);
4. the predictor steps lattice, coordinates and species from ``t`` to ``s``.

Same model, same options and same ``seed`` give the same crystals (the generator drives every draw;
results also depend on ``batch_size``, which sets how the draws are split).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from td_models.batch import to_dense
from td_models.config import TOPO_CLASSES, topo_class_index
from td_models.constraints import density_penalty, min_distance_penalty
from td_models.diffusion import sampling_schedule
from td_models.exceptions import BatchError, ConfigError
from td_models.model import LATTICE_CLIP

if TYPE_CHECKING:
    from td_models.model import TopologicalDiffusionModel

__all__ = ["sample", "plan_batches"]

log = logging.getLogger(__name__)


class _Progress:
    """Reports finished reverse steps: to a callback ``(done, total)``, a tqdm bar, or nowhere."""

    def __init__(self, progress, total: int) -> None:
        self.total, self.done = total, 0
        self.callback = progress if callable(progress) else None
        self.bar = None
        if progress is True:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # progress bars are a nicety; tqdm is not a dependency of the library
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc="sampling", unit="step", leave=False, dynamic_ncols=True)

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def sample(
    model: TopologicalDiffusionModel,
    n: int,
    *,
    topo_class: str | int | None = None,
    band_gap_range: float | Sequence[float] | None = None,
    chern: int | None = None,
    formation_energy: float | None = None,
    num_atoms: int | Sequence[int] | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    corrector_steps: int = 0,
    corrector_step_lr: float = 1e-5,
    physics_guidance: float | None = None,
    property_guidance: float = 0.0,
    restrict_species: bool = True,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool | Callable[[int, int], None] = False,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Generate ``n`` crystals, each a dict of numpy arrays: ``lattice`` (3, 3) rows in Angstrom,
    ``frac_coords`` (N, 3) in [0, 1), ``atomic_numbers`` (N,), plus the ``conditions`` it was asked for.

    Parameters
    ----------
    topo_class:
        Requested class ("TI", "z2_ti", "trivial", "chern", "semimetal_or_metal" or 0..3); ``None``
        leaves it free.
    band_gap_range:
        A gap in eV, or ``(low, high)``: each crystal's target is drawn uniformly in the range.
    chern, formation_energy:
        Requested Chern number (an integer in [-4, 4]) and formation energy (eV/atom), or ``None``.
        With ``topo_class="chern"`` and no ``chern``, the Chern number is
        ``physics_config.target_chern_number``. The model has no head that predicts Chern numbers:
        a crystal's ``conditions["chern"]`` is the request it was generated for, not a prediction
        (compute the invariant with td-physics to know it).
    num_atoms:
        Atoms per crystal (one int, or one per crystal); ``None`` draws from the training
        distribution (:meth:`~td_models.model.TopologicalDiffusionModel.fit_normalisation`).
    steps:
        Reverse steps; ``None`` = the model's ``num_steps`` (the full chain). Fewer = fast sampler.
    guidance_scale:
        Classifier-free guidance ``w`` (1 = plain conditional, 0 = unconditional); ``None`` takes
        ``physics_config.guidance_scale`` when a condition is given.
    corrector_steps, corrector_step_lr:
        Langevin corrector steps on coordinates per reverse step (DiffCSP uses 1), and their size.
    physics_guidance:
        Step size of the penalty guidance on the clean estimate; ``None`` takes
        ``physics_config.constraint_weight`` scaled by 0.01; 0 turns it off.
    property_guidance:
        Scale of the property-head guidance (0 = off).
    restrict_species:
        Keep to the elements of the training data (``fit_normalisation``); False allows every
        element the model knows (an undertrained model then scatters over the periodic table).
    seed, batch_size:
        Random seed; most crystals per denoiser batch (:func:`plan_batches`: crystals of similar
        size share a batch, and batches of big crystals hold fewer, so that little padding is computed).
    progress:
        ``False`` (default): silent. ``True``: a tqdm bar over the reverse steps of all batches
        (when tqdm is installed). A callable: called as ``progress(done, total)`` after each reverse
        step of each batch, for a caller's own bar or log.
    threads:
        torch intra-op threads for the duration of the call (restored afterwards); ``None`` leaves
        torch's setting. The tensors of a small model are small: a second thread gains little on an
        idle machine and, waiting for a busy core, can make sampling several times slower.

    Returns
    -------
    One dict per crystal, in the order of the request. ``conditions`` holds what the crystal was
    conditioned on: ``topo_class`` (index), ``band_gap`` (eV, drawn in ``band_gap_range``),
    ``chern`` and ``formation_energy`` (None where unconditioned).
    """
    pc = model.config.physics_config
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be an integer >= 1, got {n!r}")
    if steps is None:
        steps = model.config.model_config.sampling_steps or model.num_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= model.num_steps:
        raise ConfigError(f"steps must be an integer in 1..{model.num_steps}, got {steps!r}")
    if corrector_steps < 0:
        raise ConfigError(f"corrector_steps must be >= 0, got {corrector_steps}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be None or an integer >= 1, got {threads!r}")
    if not (isinstance(progress, bool) or callable(progress)):
        raise ConfigError(f"progress must be True, False or a callable (done, total), got {progress!r}")
    conditioned = any(x is not None for x in (topo_class, band_gap_range, chern, formation_energy))
    if guidance_scale is None:
        guidance_scale = pc.guidance_scale if conditioned else 1.0
    if physics_guidance is None:
        physics_guidance = 0.01 * pc.constraint_weight
    if pc.stability_threshold is not None:
        log.info(
            "physics_config.stability_threshold = %g eV/atom is not applied by sampling (the samples are not "
            "relaxed): the Kedro relax pipeline (td_data.relax, CHGNet) applies it",
            pc.stability_threshold,
        )
    cls = -1 if topo_class is None else topo_class_index(topo_class)
    chern = _chern_target(model, cls, chern)
    gap_range = _gap_range(band_gap_range)
    counts = _atom_counts(model, n, num_atoms, seed)

    device = model.device
    generator = torch.Generator(device=device).manual_seed(int(seed))
    was_training = model.training
    model.eval()
    batches = plan_batches(counts, batch_size)
    crystals: list[dict[str, Any] | None] = [None] * n
    report = _Progress(progress, len(batches) * len(sampling_schedule(model.num_steps, steps)))
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        for index in batches:
            chunk = _sample_chunk(
                model,
                torch.as_tensor(counts[index], device=device),
                cls,
                gap_range,
                chern,
                formation_energy,
                steps,
                guidance_scale if conditioned else 1.0,
                corrector_steps,
                corrector_step_lr,
                physics_guidance,
                property_guidance,
                restrict_species,
                generator,
                report,
            )
            for i, crystal in zip(index, chunk):
                crystals[int(i)] = crystal
    finally:
        model.train(was_training)
        report.close()
        if threads is not None:
            torch.set_num_threads(previous_threads)
    return crystals  # type: ignore[return-value]


#: Atom-pair slots (padding included) per batch and per crystal of ``batch_size``: 8 x 8 atoms.
PAIR_BUDGET_PER_CRYSTAL = 64


def plan_batches(counts: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices of the crystals of each denoiser batch: similar sizes together, bounded padded work.

    The denoiser pads every crystal of a batch to the largest and its pair features cost ``N^2``, so
    crystals are taken in order of atom count, and a batch closes at ``batch_size`` crystals or when
    its padded pairs ``len * N_max^2`` would pass ``batch_size * PAIR_BUDGET_PER_CRYSTAL`` (batches of big
    crystals hold fewer of them). One crystal always fits.

    >>> [b.tolist() for b in plan_batches(np.array([3, 1, 20, 2]), batch_size=2)]
    [[1, 3], [0], [2]]
    """
    order = np.argsort(counts, kind="stable")
    budget = batch_size * PAIR_BUDGET_PER_CRYSTAL
    batches, current = [], []
    for i in order:
        size = int(counts[i])  # the largest so far: counts ascend
        if current and (len(current) >= batch_size or (len(current) + 1) * size * size > budget):
            batches.append(np.array(current))
            current = []
        current.append(int(i))
    if current:
        batches.append(np.array(current))
    return batches


def _chern_target(model: TopologicalDiffusionModel, cls: int, chern: int | None) -> int | None:
    """The Chern number to condition on: ``chern`` if given, else ``target_chern_number`` for class chern."""
    limit = model.conditions.max_abs_chern
    if chern is None and cls >= 0 and TOPO_CLASSES[cls] == "chern":
        chern = model.config.physics_config.target_chern_number
        log.info("topo_class 'chern': conditioning on physics_config.target_chern_number = %d", chern)
    if chern is None:
        return None
    if isinstance(chern, bool) or not isinstance(chern, (int, np.integer)) or abs(int(chern)) > limit:
        raise ConfigError(f"chern must be an integer in [-{limit}, {limit}] or None, got {chern!r}")
    # The model has no Chern-number head: the samples carry the requested number, not a prediction.
    log.info("conditioning on Chern number %d; the model has no Chern head, so samples carry no predicted Chern", chern)
    return int(chern)


def _gap_range(band_gap_range) -> tuple[float, float] | None:
    if band_gap_range is None:
        return None
    if isinstance(band_gap_range, (int, float)):
        band_gap_range = (float(band_gap_range), float(band_gap_range))
    values = tuple(float(v) for v in band_gap_range)
    if len(values) != 2 or not all(math.isfinite(v) for v in values) or not 0 <= values[0] <= values[1]:
        raise ConfigError(
            f"band_gap_range must be a gap >= 0 or (low, high) with 0 <= low <= high, got {band_gap_range}"
        )
    return values  # type: ignore[return-value]


def _atom_counts(model: TopologicalDiffusionModel, n: int, num_atoms, seed: int) -> np.ndarray:
    max_atoms = model.atom_count_weights.shape[0] - 1
    if num_atoms is None:
        weights = model.atom_count_weights.double().cpu()
        if float(weights.sum()) <= 0:
            raise BatchError("the model has no atom-count distribution; pass num_atoms or call fit_normalisation")
        rng = np.random.default_rng([int(seed), 0x5EED])  # its own stream, so counts never shift the torch draws
        return rng.choice(np.arange(max_atoms + 1), size=n, p=(weights / weights.sum()).numpy())
    counts = np.full(n, num_atoms, dtype=np.int64) if np.isscalar(num_atoms) else np.asarray(num_atoms, np.int64)
    if counts.shape != (n,):
        raise BatchError(f"num_atoms must be one int or {n} ints, got shape {counts.shape}")
    if counts.min() < 1:
        raise BatchError(f"num_atoms must be >= 1, got {counts.min()}")
    return counts


def _conditions(model, num_crystals, cls, gap_range, chern, formation_energy, generator):
    device = model.device
    topo = torch.full((num_crystals,), cls, dtype=torch.long, device=device)
    if gap_range is None:
        gap = torch.full((num_crystals,), math.nan, device=device)
    else:
        u = torch.rand(num_crystals, generator=generator, device=device)
        gap = gap_range[0] + (gap_range[1] - gap_range[0]) * u
    null_chern = model.conditions.NULL_CHERN
    chern_t = torch.full((num_crystals,), null_chern if chern is None else int(chern), dtype=torch.long, device=device)
    fe = torch.full((num_crystals,), math.nan if formation_energy is None else float(formation_energy), device=device)
    return topo, gap, chern_t, fe


def _sample_chunk(
    model,
    num_atoms,
    cls,
    gap_range,
    chern,
    formation_energy,
    steps,
    guidance_scale,
    corrector_steps,
    corrector_step_lr,
    physics_guidance,
    property_guidance,
    restrict_species,
    generator,
    progress,
) -> list[dict[str, Any]]:
    device = model.device
    num_crystals = int(num_atoms.shape[0])
    batch_index = torch.repeat_interleave(torch.arange(num_crystals, device=device), num_atoms)
    total_atoms = int(batch_index.shape[0])
    raw_conditions = _conditions(model, num_crystals, cls, gap_range, chern, formation_energy, generator)
    with torch.no_grad():
        cond = model.conditions(*raw_conditions)
        null = model.conditions(*model.conditions.null_like(num_crystals, device=device))
    guided = guidance_scale != 1.0
    lattice = model.lattice_process.prior_sample((num_crystals, 3, 3), generator=generator, device=device)
    frac = model.coord_process.prior_sample((total_atoms, 3), generator=generator, device=device)
    species = model.species_process.prior_sample((total_atoms,), generator=generator, device=device)

    banned = ~model.species_seen if restrict_species else torch.zeros_like(model.species_seen)  # (num_species,)

    def evaluate(lattice, frac, species, t):
        """Denoiser outputs with classifier-free guidance: (lattice eps, coord score flat, species logits flat)."""
        with torch.no_grad():
            if guided:  # one pass, the geometry shared by the conditioned and unconditioned halves
                out, mask = model.denoise(lattice, frac, species, batch_index, num_atoms, t, torch.cat([cond, null]))
                half = slice(0, num_crystals), slice(num_crystals, 2 * num_crystals)
                eps_c, eps_u = out.lattice_eps[half[0]], out.lattice_eps[half[1]]
                score_c, score_u = out.coord_score[half[0]][mask], out.coord_score[half[1]][mask]
                logp_c = torch.log_softmax(out.species_logits[half[0]][mask], dim=-1)
                logp_u = torch.log_softmax(out.species_logits[half[1]][mask], dim=-1)
                w = guidance_scale
                logits = logp_u + w * (logp_c - logp_u)
                return eps_u + w * (eps_c - eps_u), score_u + w * (score_c - score_u), logits.masked_fill(banned, -1e9)
            out, mask = model.denoise(lattice, frac, species, batch_index, num_atoms, t, cond)
            return out.lattice_eps, out.coord_score[mask], out.species_logits[mask].masked_fill(banned, -1e9)

    schedule = sampling_schedule(model.num_steps, steps)
    for t_int, s_int in schedule:
        t = torch.full((num_crystals,), t_int, dtype=torch.long, device=device)
        s = torch.full((num_crystals,), s_int, dtype=torch.long, device=device)
        t_atoms, s_atoms = t[batch_index], s[batch_index]
        eps, score, logits = evaluate(lattice, frac, species, t)
        for _ in range(corrector_steps):
            frac = model.coord_process.corrector_step(
                frac, t_atoms, score, step_lr=corrector_step_lr, generator=generator
            )
            eps, score, logits = evaluate(lattice, frac, species, t)
        if physics_guidance > 0:
            eps, score = _physics_guidance(
                model, lattice, frac, t, t_atoms, eps, score, num_atoms, batch_index, physics_guidance
            )
        if property_guidance > 0 and cls >= 0:
            eps, score = _property_guidance(
                model, lattice, frac, species, t, t_atoms, eps, score, num_atoms, batch_index, cls, property_guidance
            )
        lattice = model.lattice_process.step(lattice, t, s, eps, generator=generator, clip_x0=LATTICE_CLIP)
        frac = model.coord_process.predictor_step(frac, t_atoms, s_atoms, score, generator=generator)
        species = model.species_process.step(species, t_atoms, s_atoms, logits, generator=generator)
        progress.advance()

    final = model.denormalise_lattice(lattice, num_atoms)
    cpu = {
        "lattice": final.double().cpu().numpy(),
        "frac": torch.remainder(frac, 1.0).double().cpu().numpy(),
        "z": (species + 1).cpu().numpy(),
        "gap": raw_conditions[1].cpu().numpy(),
    }
    offsets = np.concatenate([[0], np.cumsum(num_atoms.cpu().numpy())])
    out = []
    for b in range(num_crystals):
        lo, hi = offsets[b], offsets[b + 1]
        gap = float(cpu["gap"][b])
        out.append(
            {
                "lattice": cpu["lattice"][b],
                "frac_coords": cpu["frac"][lo:hi] % 1.0,
                "atomic_numbers": cpu["z"][lo:hi].astype(np.int64),
                "conditions": {
                    "topo_class": None if cls < 0 else int(cls),
                    "band_gap": None if math.isnan(gap) else gap,
                    "chern": None if chern is None else int(chern),
                    "formation_energy": None if formation_energy is None else float(formation_energy),
                },
            }
        )
    return out


def _physics_guidance(model, lattice, frac, t, t_atoms, eps, score, num_atoms, batch_index, step):
    """Move the clean estimate down the penalty gradient and return the matching (eps, score).

    The step is scaled by ``alpha_bar(t)`` (the clean estimate means little at high noise) and
    bounded: at most 5 % of the lattice's norm and 0.05 of the cell in fractional coordinates.
    """
    pc = model.config.physics_config
    ab = model.lattice_process.alpha_bar(t).to(lattice.dtype).reshape(-1, 1, 1)  # (B, 1, 1)
    with torch.enable_grad():
        lattice0, frac0 = model.clean_estimate(lattice, frac, t, t_atoms, eps, score, num_atoms)
        lattice0 = lattice0.detach().requires_grad_(True)
        frac0 = frac0.detach().requires_grad_(True)
        dense, _, mask = to_dense(frac0, batch_index, num_atoms, pad_species=0)
        low, high = pc.volume_per_atom_range
        penalty = min_distance_penalty(lattice0, dense, mask, d_min=pc.min_distance) + density_penalty(
            lattice0, num_atoms, low, high
        )
        grad_lattice, grad_frac = torch.autograd.grad(penalty.sum(), (lattice0, frac0))
    move = step * ab * torch.nan_to_num(grad_lattice)  # (B, 3, 3) Angstrom
    limit = 0.05 * lattice0.detach().flatten(1).norm(dim=1).reshape(-1, 1, 1)
    norm = move.flatten(1).norm(dim=1).reshape(-1, 1, 1).clamp_min(1e-30)
    move = move * torch.clamp(limit / norm, max=1.0)
    # the eps that makes the VP step aim at the moved clean estimate
    scale = num_atoms.to(lattice.dtype).pow(1.0 / 3.0) * model.lattice_scale.to(lattice.dtype)
    new_lattice0 = (lattice0.detach() - move) / scale[:, None, None]  # normalised
    eps = (lattice - ab.sqrt() * new_lattice0) / (1 - ab).clamp_min(1e-12).sqrt()
    sigma = model.coord_process.sigma(t_atoms).to(frac.dtype).reshape(-1, 1)
    norm = model.coord_process.sigma_norm(t_atoms).to(frac.dtype).reshape(-1, 1)
    ab_atoms = ab.reshape(-1)[batch_index].reshape(-1, 1)
    shift = torch.clamp(step * ab_atoms * torch.nan_to_num(grad_frac), -0.05, 0.05)  # fractional units
    score = score - shift / (sigma**2 * norm.sqrt())
    return eps, score


def _property_guidance(model, lattice, frac, species, t, t_atoms, eps, score, num_atoms, batch_index, cls, scale):
    """Classifier guidance from the property heads: add the gradient of log p(class | x_t)."""
    with torch.enable_grad():
        lattice_g = lattice.detach().requires_grad_(True)
        frac_g = frac.detach().requires_grad_(True)
        null = model.conditions(*model.conditions.null_like(int(num_atoms.shape[0]), device=model.device))
        out, _ = model.denoise(lattice_g, frac_g, species, batch_index, num_atoms, t, null)
        logp = torch.log_softmax(model.heads(out.graph_features).topo_logits, dim=-1)[:, cls]
        grad_lattice, grad_frac = torch.autograd.grad(logp.sum(), (lattice_g, frac_g))
    ab = model.lattice_process.alpha_bar(t).to(lattice.dtype).reshape(-1, 1, 1)
    eps = eps - scale * (1 - ab).sqrt() * grad_lattice  # eps = -sqrt(1 - ab) * score
    norm = model.coord_process.sigma_norm(t_atoms).to(frac.dtype).reshape(-1, 1)
    score = score + scale * grad_frac / norm.sqrt()
    return eps, score
