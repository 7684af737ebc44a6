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
4. the predictor steps lattice, coordinates and species from ``t`` to ``s``; the atoms whose species
   unmask are drawn under the composition rules of :mod:`td_models.composition` (the number of
   distinct elements drawn with the atom count from the training data, charge neutrality kept
   reachable), which only remove choices the network would otherwise have.

Same model, same options and same ``seed`` give the same crystals (the generator drives every draw;
results also depend on ``batch_size``, which sets how the draws are split).

The options are one frozen :class:`SamplingOptions`; ``model.sample(n, options, **overrides)`` calls
:func:`sample`. This module reads the model only through its attributes and never imports
:mod:`td_models.model` (the model imports it).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from td_models.batch import to_dense
from td_models.composition import CompositionRule, constrained_unmask, draw_counts
from td_models.config import TOPO_CLASSES, topo_class_index
from td_models.constraints import (
    composition_volume_penalty,
    covalent_radii,
    density_penalty,
    min_distance_penalty,
    pair_distance_penalty,
)
from td_models.diffusion import sampling_schedule
from td_models.exceptions import BatchError, ConfigError
from td_models.threads import check_threads, torch_threads

__all__ = ["SamplingOptions", "sample", "plan_batches", "guidance_defaults"]

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


@dataclass(frozen=True)
class SamplingOptions:
    """How :func:`sample` draws crystals: one frozen, validated object (``model.sample(n, options, **overrides)``).

    ``None`` means one thing wherever a field takes it: *not set here*, so the model decides: a
    condition (``topo_class``, ``band_gap_range``, ``chern``, ``formation_energy``) is left free
    (except ``chern`` under ``topo_class="chern"``, which takes ``physics_config.target_chern_number``),
    and a setting (``num_atoms``, ``steps``, ``guidance_scale``, ``physics_guidance``, ``threads``)
    comes from the model's configuration, its training data or torch. Values are checked once, here;
    the rules that need the model (``steps <= num_steps``, ``|chern| <= max_abs_chern``, one
    ``num_atoms`` per crystal) are checked by :func:`sample`.

    >>> options = SamplingOptions(topo_class="TI", band_gap_range=0.2, steps=10)
    >>> options.topo_class, options.band_gap_range
    ('z2_ti', (0.2, 0.2))
    >>> options.replace(seed=3).seed
    3
    """

    topo_class: str | int | None = None  # a class name or alias ("TI", "z2_ti", ...) or 0..3; kept as its name
    band_gap_range: float | tuple[float, float] | None = None  # eV: a gap g (kept as (g, g)) or (low, high)
    chern: int | None = None  # requested Chern number (the samples carry the request, not a prediction)
    formation_energy: float | None = None  # requested formation energy, eV/atom
    num_atoms: int | tuple[int, ...] | None = None  # atoms per crystal: one int, or one per crystal
    steps: int | None = None  # reverse steps; None: model_config.sampling_steps, else num_steps (full chain)
    guidance_scale: float | None = None  # classifier-free w; None: physics_config.guidance_scale when conditioned
    corrector_steps: int = 0  # Langevin corrector steps on coordinates per reverse step (DiffCSP uses 1)
    corrector_step_lr: float = 1e-5  # size of a corrector step
    physics_guidance: float | None = None  # penalty-guidance step; None: 0.01 * constraint_weight; 0: off
    # Angstrom: the physics guidance pushes apart atoms closer than this; None: physics_config.min_distance
    min_distance: float | None = None
    # Angstrom^3 per atom: the physics guidance's density window; None: physics_config.volume_per_atom_range
    volume_per_atom_range: tuple[float, float] | None = None
    property_guidance: float = 0.0  # scale of the property-head guidance; 0: off
    # step of the composition-volume guidance: each cell's volume held within [V / f, f V] (f: volume_tolerance),
    # V the sum of its atoms' element volumes fitted on the training crystals (weighted by the predicted species);
    # 0: off. Like physics_guidance, a step on the clean estimate, bounded with it
    volume_guidance: float = 0.0
    volume_tolerance: float = 1.25
    # step of the bond-length guidance: two atoms closer than covalent_fraction times the sum of their covalent
    # radii (Cordero 2008; a masked atom's radius expected under the predicted species) are pushed apart; 0: off.
    # A step on the clean estimate like physics_guidance's, bounded with it. Real crystals stay above 0.68
    # (Perov-5's 0.1st percentile; MP-20 0.74, Carbon-24 0.83)
    covalent_guidance: float = 0.0
    covalent_fraction: float = 0.75
    restrict_species: bool = True  # keep to the elements of the training data (fit_normalisation)
    element_counts: bool = True  # distinct elements per crystal drawn with its atom count from the training data
    # atoms (and distinct elements) per crystal drawn from the training crystals labelled topo_class (needs one)
    # instead of from all training crystals: the sizes of the asked class's members; False: all crystals'
    class_counts: bool = False
    charge_balance: bool = True  # species drawn only where a charge-neutral completion stays reachable
    seed: int = 0  # random seed: same model, options and seed give the same crystals
    batch_size: int = 256  # most crystals per denoiser batch (plan_batches)
    progress: bool | Callable[[int, int], None] = False  # False, True (tqdm bar) or progress(done, total)
    threads: int | None = None  # torch intra-op threads for the call (restored after); None: torch's setting

    def __post_init__(self) -> None:
        if self.topo_class is not None:
            object.__setattr__(self, "topo_class", TOPO_CLASSES[topo_class_index(self.topo_class)])
        object.__setattr__(self, "band_gap_range", _gap_range(self.band_gap_range))
        if self.chern is not None and not _is_integer(self.chern):
            raise ConfigError(f"chern must be an integer or None, got {self.chern!r}")
        _check_real("formation_energy", self.formation_energy, allow_none=True)
        object.__setattr__(self, "num_atoms", _num_atoms(self.num_atoms))
        if self.steps is not None and (not _is_integer(self.steps) or self.steps < 1):
            raise ConfigError(f"steps must be None or an integer >= 1, got {self.steps!r}")
        _check_real("guidance_scale", self.guidance_scale, allow_none=True)
        if not _is_integer(self.corrector_steps) or self.corrector_steps < 0:
            raise ConfigError(f"corrector_steps must be >= 0, got {self.corrector_steps!r}")
        _check_real("corrector_step_lr", self.corrector_step_lr, low=0.0, low_open=True)
        _check_real("physics_guidance", self.physics_guidance, allow_none=True, low=0.0)
        _check_real("min_distance", self.min_distance, allow_none=True, low=0.0, low_open=True)
        if self.volume_per_atom_range is not None:
            window = tuple(self.volume_per_atom_range) if isinstance(self.volume_per_atom_range, (list, tuple)) else ()
            real = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in window)
            if len(window) != 2 or not real or not 0 < window[0] < window[1] < math.inf:
                raise ConfigError(
                    f"volume_per_atom_range must be None or (low, high) with 0 < low < high, got "
                    f"{self.volume_per_atom_range!r}"
                )
            object.__setattr__(self, "volume_per_atom_range", (float(window[0]), float(window[1])))
        _check_real("property_guidance", self.property_guidance, low=0.0)
        _check_real("volume_guidance", self.volume_guidance, low=0.0)
        _check_real("volume_tolerance", self.volume_tolerance, low=1.0, low_open=True)
        _check_real("covalent_guidance", self.covalent_guidance, low=0.0)
        fraction = self.covalent_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1.5:
            raise ConfigError(f"covalent_fraction must be a number in (0, 1.5] (of the sum of two covalent radii; "
                              f"bonds in real crystals are 0.7-1.2 of it), got {fraction!r}")  # fmt: skip
        for name in ("restrict_species", "element_counts", "class_counts", "charge_balance"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if not _is_integer(self.seed) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not _is_integer(self.batch_size) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if not (isinstance(self.progress, bool) or callable(self.progress)):
            raise ConfigError(f"progress must be True, False or a callable (done, total), got {self.progress!r}")
        check_threads(self.threads)
        if self.class_counts and self.topo_class is None:
            raise ConfigError("class_counts draws the atom counts from the training crystals of the requested class: "
                              "it needs a topo_class, got none")  # fmt: skip
        for name in ("chern", "steps", "corrector_steps", "seed", "batch_size"):  # numpy integers as int
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, int(value))

    @property
    def conditioned(self) -> bool:
        """True when any condition is requested (classifier-free guidance then applies)."""
        return any(x is not None for x in (self.topo_class, self.band_gap_range, self.chern, self.formation_energy))

    def replace(self, **overrides: Any) -> SamplingOptions:
        """A copy with ``overrides`` (field names of this class), validated again."""
        unknown = sorted(set(overrides) - _OPTION_NAMES)
        if unknown:
            raise ConfigError(f"sampling options must be among {sorted(_OPTION_NAMES)}, got unknown {unknown}")
        return dataclasses.replace(self, **overrides)


_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(SamplingOptions))


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_real(
    name: str, value: Any, *, allow_none: bool = False, low: float | None = None, low_open: bool = False
) -> None:
    """ConfigError unless ``value`` is a finite real number (``>= low``, or ``> low`` when ``low_open``), or None."""
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    ok = ok and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if not ok:
        rule = "a finite number" if low is None else f"a finite number {'>' if low_open else '>='} {low:g}"
        raise ConfigError(f"{name} must be {rule}{' or None' if allow_none else ''}, got {value!r}")


def sample(model: nn.Module, n: int, options: SamplingOptions | None = None, **overrides: Any) -> list[dict[str, Any]]:
    """Generate ``n`` crystals with a :class:`~td_models.model.TopologicalDiffusionModel`.

    ``options`` (:class:`SamplingOptions`, default: all defaults) with ``overrides`` (its field names
    as keywords, e.g. ``topo_class="TI", steps=50``) applied on top: ``sample(model, n, topo_class="TI")``
    and ``sample(model, n, SamplingOptions(topo_class="TI"))`` are the same call.

    Returns one dict of numpy arrays per crystal, in the order of the request: ``lattice`` (3, 3) rows
    in Angstrom, ``frac_coords`` (N, 3) in [0, 1), ``atomic_numbers`` (N,), and ``conditions``, what the
    crystal was conditioned on: ``topo_class`` (index), ``band_gap`` (eV, drawn uniformly in
    ``band_gap_range``), ``chern`` and ``formation_energy`` (None where unconditioned). The model has
    no head that predicts Chern numbers: ``conditions["chern"]`` is the request, not a prediction
    (compute the invariant with td-physics to know it).
    """
    if options is None:
        options = SamplingOptions()
    if not isinstance(options, SamplingOptions):
        raise ConfigError(f"options must be a SamplingOptions or None, got {type(options).__name__}")
    if overrides:
        options = options.replace(**overrides)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be an integer >= 1, got {n!r}")
    options = _resolve(model, options)
    pc = model.config.physics_config
    if pc.stability_threshold is not None:
        log.info(
            "physics_config.stability_threshold = %g eV/atom is not applied by sampling (the samples are not "
            "relaxed): the Kedro relax pipeline (td_data.relax, CHGNet) applies it",
            pc.stability_threshold,
        )
    counts, elements = _counts(model, n, options)
    rule = _composition_rule(model, options, elements)

    device = model.device
    generator = torch.Generator(device=device).manual_seed(options.seed)
    was_training = model.training
    model.eval()
    batches = plan_batches(counts, options.batch_size)
    crystals: list[dict[str, Any] | None] = [None] * n
    report = _Progress(options.progress, len(batches) * len(sampling_schedule(model.num_steps, options.steps)))
    try:
        with torch_threads(options.threads):
            for index in batches:
                num_atoms = torch.as_tensor(counts[index], device=device)
                chunk = _sample_chunk(model, num_atoms, options, generator, report, rule, elements[index])
                for i, crystal in zip(index, chunk):
                    crystals[int(i)] = crystal
    finally:
        model.train(was_training)
        report.close()
    return crystals  # type: ignore[return-value]


def guidance_defaults(physics_config: Any) -> dict[str, float]:
    """The guidance a :class:`~td_models.config.PhysicsConfig` asks for: ``guidance_scale`` (its classifier-free
    scale), ``physics_guidance`` (0.01 times its ``constraint_weight``) and the penalties' bounds
    ``min_distance`` and ``volume_per_atom_range``, as keywords of :func:`sample`.

    :func:`sample` takes them from the model's own ``physics_config`` when they are not given; a caller whose
    physics settings may differ from the training run's (a pipeline's parameters) passes these instead.
    """
    return {
        "guidance_scale": float(physics_config.guidance_scale),
        "physics_guidance": 0.01 * float(physics_config.constraint_weight),
        "min_distance": float(physics_config.min_distance),
        "volume_per_atom_range": tuple(float(v) for v in physics_config.volume_per_atom_range),
    }


def _resolve(model: nn.Module, options: SamplingOptions) -> SamplingOptions:
    """``options`` with the values the model decides filled in: steps, guidance_scale, physics_guidance, the
    penalties' bounds, chern.

    Checks the rules that need the model (``steps <= num_steps``, ``|chern| <= max_abs_chern``).
    Without a condition the guidance scale is 1 (plain sampling, whatever was asked).
    """
    defaults = guidance_defaults(model.config.physics_config)
    steps = options.steps
    if steps is None:
        steps = model.config.model_config.sampling_steps or model.num_steps
    if not 1 <= steps <= model.num_steps:
        raise ConfigError(f"steps must be an integer in 1..{model.num_steps}, got {steps!r}")
    guidance_scale = options.guidance_scale
    if not options.conditioned:
        guidance_scale = 1.0
    elif guidance_scale is None:
        guidance_scale = defaults["guidance_scale"]
    physics_guidance = options.physics_guidance
    if physics_guidance is None:
        physics_guidance = defaults["physics_guidance"]
    if options.volume_guidance > 0 and not model.has_element_volumes:
        raise ConfigError(
            "volume_guidance needs the element volumes fitted on the training crystals, and this model has none "
            "(trained before td-models kept them): retrain it, or set volume_guidance 0"
        )
    chern = _chern_target(model, options.topo_class, options.chern)
    return dataclasses.replace(
        options,
        steps=steps,
        guidance_scale=guidance_scale,
        physics_guidance=physics_guidance,
        chern=chern,
        min_distance=defaults["min_distance"] if options.min_distance is None else options.min_distance,
        volume_per_atom_range=options.volume_per_atom_range or defaults["volume_per_atom_range"],
    )


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


def _chern_target(model: nn.Module, topo_class: str | None, chern: int | None) -> int | None:
    """The Chern number to condition on: ``chern`` if given, else ``target_chern_number`` for class chern."""
    limit = model.conditions.max_abs_chern
    if chern is None and topo_class == "chern":
        chern = model.config.physics_config.target_chern_number
        log.info("topo_class 'chern': conditioning on physics_config.target_chern_number = %d", chern)
    if chern is None:
        return None
    if abs(chern) > limit:
        raise ConfigError(f"chern must be an integer in [-{limit}, {limit}] or None, got {chern!r}")
    # The model has no Chern-number head: the samples carry the requested number, not a prediction.
    log.info("conditioning on Chern number %d; the model has no Chern head, so samples carry no predicted Chern", chern)
    return chern


def _gap_range(band_gap_range: Any) -> tuple[float, float] | None:
    """``band_gap_range`` as ``(low, high)`` in eV (a gap ``g`` as ``(g, g)``), or None."""
    if band_gap_range is None:
        return None
    given = band_gap_range
    if isinstance(band_gap_range, (int, float, np.integer, np.floating)):
        band_gap_range = (band_gap_range, band_gap_range)
    try:
        values = tuple(float(v) for v in band_gap_range)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 2 or not all(math.isfinite(v) for v in values) or not 0 <= values[0] <= values[1]:
        raise ConfigError(f"band_gap_range must be a gap >= 0 or (low, high) with 0 <= low <= high, got {given}")
    return values  # type: ignore[return-value]


def _num_atoms(num_atoms: Any) -> int | tuple[int, ...] | None:
    """``num_atoms`` as None, an int or a tuple of ints, each >= 1 (:class:`BatchError` otherwise)."""
    if num_atoms is None:
        return None
    array = np.asarray(num_atoms) if not isinstance(num_atoms, (str, bytes)) else np.asarray([])
    if array.ndim > 1 or array.dtype.kind not in "iu" or (array.ndim == 1 and array.size == 0):
        raise BatchError(f"num_atoms must be None, an integer or a sequence of integers, got {num_atoms!r}")
    if array.min() < 1:
        raise BatchError(f"num_atoms must be >= 1, got {array.min()}")
    return int(array) if array.ndim == 0 else tuple(int(v) for v in array)


def _counts(model: nn.Module, n: int, options: SamplingOptions) -> tuple[np.ndarray, np.ndarray]:
    """Atoms and distinct elements (0: free) of each of the ``n`` crystals, (n,) each.

    Atoms as asked, or drawn from the training histogram; elements drawn with them from the joint
    histogram of the training data (:func:`td_models.composition.draw_counts`, seeded by ``seed``)
    when ``element_counts`` is on and the species process is absorbing. With ``class_counts`` both histograms are
    those of the training crystals labelled ``topo_class`` (a :class:`BatchError` when the model has none).
    """
    num_atoms = options.num_atoms
    weights = model.atom_count_weights.double().cpu().numpy()
    class_joint = None
    if options.class_counts:
        class_joint = model.class_element_count_weights[topo_class_index(options.topo_class)].double().cpu().numpy()
        if class_joint.sum() <= 0:
            raise BatchError(
                f"class_counts: the model has no training crystal labelled {options.topo_class!r} in its per-class "
                "histograms (none in its training data, or a file written before td-models kept them); sample "
                "with class_counts=False"
            )
        weights = class_joint.sum(axis=1)
        log.info("atom counts drawn from the %d training crystals labelled %s", int(class_joint.sum()),
                 options.topo_class)  # fmt: skip
    given = None
    if num_atoms is None:
        if weights.sum() <= 0:
            raise BatchError("the model has no atom-count distribution; pass num_atoms or call fit_normalisation")
    else:
        given = np.full(n, num_atoms, dtype=np.int64) if isinstance(num_atoms, int) else np.asarray(num_atoms, np.int64)
        if given.shape != (n,):
            raise BatchError(f"num_atoms must be one int or {n} ints, got shape {given.shape}")
    joint = None
    if options.element_counts and model.species_process.absorbing:
        joint = model.element_count_weights.double().cpu().numpy() if class_joint is None else class_joint
        if joint.sum() <= 0:
            log.info("the model has no element-count histogram (fitted before it was kept): elements per crystal free")
            joint = None
    elif options.element_counts:
        log.info(
            "element counts apply to the absorbing species process; this model's is %r", model.species_process.kind
        )
    rng = np.random.default_rng([int(options.seed), 0x5EED])  # its own stream, so counts never shift the torch draws
    counts, elements = draw_counts(weights, joint, n, given, rng)
    if elements.any():
        allowed = int(model.species_seen.sum()) if options.restrict_species else model.num_species
        elements = np.minimum(elements, allowed)
        log.info("elements per crystal drawn with the atom counts from the training data: %s",
                 dict(sorted(Counter(elements.tolist()).items())))  # fmt: skip
    return counts, elements


def _composition_rule(model: nn.Module, options: SamplingOptions, elements: np.ndarray) -> CompositionRule | None:
    """The rule the unmasking keeps to, or None (no element count drawn and no charge balance, or uniform species)."""
    if not model.species_process.absorbing:
        if options.charge_balance:
            log.info("charge balance applies to the absorbing species process; this model's is uniform")
        return None
    if not (options.charge_balance or elements.any()):
        return None
    allowed = model.species_seen if options.restrict_species else torch.ones_like(model.species_seen)
    return CompositionRule(allowed.cpu().numpy(), charge_balance=options.charge_balance)


def _conditions(model: nn.Module, num_crystals: int, cls: int, options: SamplingOptions, generator: torch.Generator):
    """The raw condition tensors (B,) of one batch: class index, gap (drawn in the range), Chern, formation energy."""
    device = model.device
    topo = torch.full((num_crystals,), cls, dtype=torch.long, device=device)
    gap_range = options.band_gap_range
    if gap_range is None:
        gap = torch.full((num_crystals,), math.nan, device=device)
    else:
        u = torch.rand(num_crystals, generator=generator, device=device)
        gap = gap_range[0] + (gap_range[1] - gap_range[0]) * u
    chern = model.conditions.NULL_CHERN if options.chern is None else options.chern
    chern_t = torch.full((num_crystals,), chern, dtype=torch.long, device=device)
    fe = options.formation_energy
    fe_t = torch.full((num_crystals,), math.nan if fe is None else float(fe), device=device)
    return topo, gap, chern_t, fe_t


def _sample_chunk(
    model: nn.Module,
    num_atoms: torch.Tensor,
    options: SamplingOptions,
    generator: torch.Generator,
    progress: _Progress,
    rule: CompositionRule | None,
    elements: np.ndarray,
) -> list[dict[str, Any]]:
    """One denoiser batch of crystals with ``num_atoms`` (B,) atoms and ``elements`` (B,) distinct elements
    (0: free), under resolved ``options`` (:func:`_resolve`) and the composition ``rule`` (None: none)."""
    device = model.device
    cls = -1 if options.topo_class is None else topo_class_index(options.topo_class)
    chern, formation_energy = options.chern, options.formation_energy
    guidance_scale = options.guidance_scale
    num_crystals = int(num_atoms.shape[0])
    batch_index = torch.repeat_interleave(torch.arange(num_crystals, device=device), num_atoms)
    total_atoms = int(batch_index.shape[0])
    raw_conditions = _conditions(model, num_crystals, cls, options, generator)
    with torch.no_grad():
        cond = model.conditions(*raw_conditions)
        null = model.conditions(*model.conditions.null_like(num_crystals, device=device))
    guided = guidance_scale != 1.0
    lattice = model.lattice_process.prior_sample((num_crystals, 3, 3), generator=generator, device=device)
    frac = model.coord_process.prior_sample((total_atoms, 3), generator=generator, device=device)
    species = model.species_process.prior_sample((total_atoms,), generator=generator, device=device)

    banned = ~model.species_seen if options.restrict_species else torch.zeros_like(model.species_seen)  # (num_species,)
    charge = _charge_rule_applies(rule, num_atoms, elements)  # (B,) bool

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

    physics_guidance, property_guidance = options.physics_guidance, options.property_guidance
    radii = covalent_radii(model.config.model_config.num_species).to(device) if options.covalent_guidance > 0 else None
    for t_int, s_int in sampling_schedule(model.num_steps, options.steps):
        t = torch.full((num_crystals,), t_int, dtype=torch.long, device=device)
        s = torch.full((num_crystals,), s_int, dtype=torch.long, device=device)
        t_atoms, s_atoms = t[batch_index], s[batch_index]
        eps, score, logits = evaluate(lattice, frac, species, t)
        for _ in range(options.corrector_steps):
            frac = model.coord_process.corrector_step(
                frac, t_atoms, score, step_lr=options.corrector_step_lr, generator=generator
            )
            eps, score, logits = evaluate(lattice, frac, species, t)
        if physics_guidance > 0 or options.volume_guidance > 0 or options.covalent_guidance > 0:
            volume = bonds = None
            if options.volume_guidance > 0:  # the clean crystal's expected volume from the species logits
                expected = (torch.softmax(logits.double(), dim=-1) * model.species_volume.double()).sum(dim=-1)
                cells = torch.zeros(num_crystals, dtype=torch.float64, device=device)
                volume = (cells.index_add_(0, batch_index, expected), options.volume_tolerance, options.volume_guidance)
            if options.covalent_guidance > 0:
                radius = _atom_radii(model, species, logits, radii)
                bonds = (radius, options.covalent_fraction, options.covalent_guidance)
            bounds = (options.min_distance, *options.volume_per_atom_range)
            state = (lattice, frac, t, t_atoms, eps, score, num_atoms, batch_index)
            eps, score = _physics_guidance(model, *state, physics_guidance, bounds, volume, bonds)
        if property_guidance > 0 and cls >= 0:
            eps, score = _property_guidance(
                model, lattice, frac, species, t, t_atoms, eps, score, num_atoms, batch_index, cls, property_guidance
            )
        lattice = model.lattice_process.step(lattice, t, s, eps, generator=generator, clip_x0=model.lattice_clip)
        frac = model.coord_process.predictor_step(frac, t_atoms, s_atoms, score, generator=generator)
        proposed = model.species_process.step(species, t_atoms, s_atoms, logits, generator=generator)
        if rule is not None:
            proposed = constrained_unmask(species, proposed, logits, batch_index, elements, charge, rule, generator)
        species = proposed
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


def _charge_rule_applies(rule: CompositionRule | None, num_atoms: torch.Tensor, elements: np.ndarray) -> np.ndarray:
    """(B,) bool: the crystals whose (atoms, elements) admit a neutral composition of the allowed elements."""
    if rule is None or not rule.charge_balance:
        return np.zeros(len(elements), dtype=bool)
    sizes = num_atoms.cpu().numpy()
    feasible = np.array([rule.choices({}, int(n) - 1, int(k), True).any() for n, k in zip(sizes, elements)])
    if not feasible.all():
        log.info("charge balance off for %d of %d crystals: no neutral composition of their atom and element "
                 "counts among the allowed elements", int((~feasible).sum()), len(feasible))  # fmt: skip
    return feasible


def _atom_radii(model, species: torch.Tensor, logits: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """(atoms,) covalent radius of each atom: its element's once unmasked (absorbing species diffusion), else the
    radius expected under the predicted species probabilities (``logits``: banned elements at -1e9)."""
    expected = (torch.softmax(logits.float(), dim=-1) * radii).sum(dim=-1)
    if model.species_process.mask_index is None:  # uniform diffusion: the current species is noise until the end
        return expected
    known = species < radii.shape[0]
    return torch.where(known, radii[species.clamp(max=radii.shape[0] - 1)], expected)


def _physics_guidance(
    model, lattice, frac, t, t_atoms, eps, score, num_atoms, batch_index, step, bounds, volume=None, bonds=None
):
    """Move the clean estimate down the penalty gradient and return the matching (eps, score).

    ``bounds``: ``(min_distance, low, high)``, the shortest distance (Angstrom) and the volume-per-atom window
    (Angstrom^3) of the penalties.

    The step is scaled by ``alpha_bar(t)`` (the clean estimate means little at high noise) and
    bounded: at most 5 % of the lattice's norm and 0.05 of the cell in fractional coordinates.
    ``volume``: ``((B,) expected cell volumes in Angstrom^3, tolerance, step)`` adds the composition's volume
    penalty (:func:`~td_models.constraints.composition_volume_penalty`) with its own step, or None.
    ``bonds``: ``((atoms,) covalent radii in Angstrom, fraction, step)`` adds the pair penalty
    (:func:`~td_models.constraints.pair_distance_penalty`) at ``fraction`` times the sum of each pair's radii, with
    its own step, or None.
    """
    d_min, low, high = bounds
    ab = model.lattice_process.alpha_bar(t).to(lattice.dtype).reshape(-1, 1, 1)  # (B, 1, 1)
    with torch.enable_grad():
        lattice0, frac0 = model.clean_estimate(lattice, frac, t, t_atoms, eps, score, num_atoms)
        lattice0 = lattice0.detach().requires_grad_(True)
        frac0 = frac0.detach().requires_grad_(True)
        dense, _, mask = to_dense(frac0, batch_index, num_atoms, pad_species=0)
        penalty = step * (
            min_distance_penalty(lattice0, dense, mask, d_min=d_min) + density_penalty(lattice0, num_atoms, low, high)
        )
        if volume is not None:
            expected, tolerance, volume_step = volume
            penalty = penalty + volume_step * composition_volume_penalty(lattice0, expected, tolerance)
        if bonds is not None:
            radii, fraction, bond_step = bonds
            dense_radii, _, _ = to_dense(radii.to(frac0.dtype), batch_index, num_atoms, pad_species=0)
            d_min = fraction * (dense_radii[:, :, None] + dense_radii[:, None, :])  # (B, N, N) Angstrom
            penalty = penalty + bond_step * pair_distance_penalty(lattice0, dense, mask, d_min)
        grad_lattice, grad_frac = torch.autograd.grad(penalty.sum(), (lattice0, frac0))
    move = ab * torch.nan_to_num(grad_lattice)  # (B, 3, 3) Angstrom, the steps already in the gradient
    limit = 0.05 * lattice0.detach().flatten(1).norm(dim=1).reshape(-1, 1, 1)
    norm = move.flatten(1).norm(dim=1).reshape(-1, 1, 1).clamp_min(1e-30)
    move = move * torch.clamp(limit / norm, max=1.0)
    # the eps that makes the VP step aim at the moved clean estimate
    new_lattice0 = model.normalise_lattice(lattice0.detach() - move, num_atoms)
    eps = (lattice - ab.sqrt() * new_lattice0) / (1 - ab).clamp_min(1e-12).sqrt()
    sigma = model.coord_process.sigma(t_atoms).to(frac.dtype).reshape(-1, 1)
    norm = model.coord_process.sigma_norm(t_atoms).to(frac.dtype).reshape(-1, 1)
    ab_atoms = ab.reshape(-1)[batch_index].reshape(-1, 1)
    shift = torch.clamp(ab_atoms * torch.nan_to_num(grad_frac), -0.05, 0.05)  # fractional units, step included
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
