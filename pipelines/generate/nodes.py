"""Generate: candidates for the target class and band-gap range of ``physics_config`` (or, with
``generate_options.conditioned: false``, without any condition), with the property heads' predictions.

Two nodes: :func:`sample_candidates` (the model's half: torch, td-models and td-data's plain-array helpers, no
pymatgen or spglib, so it also runs on a GPU node without the materials stack) and :func:`candidate_records`
(samples -> crystal records). The generation benchmarks (``pipelines.benchmark``) run the same sampling node on
their own model and ``generate_options``; :func:`sample_crystals` is the one call of the sampler they all share.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pipelines._options import OptionsBlock, is_int, is_number
from pipelines.devices import DEVICES, require_device
from pipelines.exceptions import ParameterError

if TYPE_CHECKING:
    from td_data import CrystalRecord

logger = logging.getLogger(__name__)

#: Candidate ids are ``cand-0000``, ``cand-0001``, ... (the sample's position, so ids survive rejects).
ID_PREFIX = "cand"


@dataclass(frozen=True)
class GenerateOptions(OptionsBlock):
    """The ``generate_options`` block of ``parameters_generate.yml``."""

    block: ClassVar[str] = "generate_options"

    n_candidates: int = 256  # crystals sampled
    # true: ask for physics_config's class and band-gap range (classifier-free guidance w = guidance_scale);
    # false: ask for nothing (the model's learned null condition, no classifier-free guidance): the reference arm
    # that a conditioned run is compared with
    conditioned: bool = True
    steps: int | None = None  # strided reverse steps; None: model_config.sampling_steps (null there: the full chain)
    seed: int = 0  # sampler seed
    # Langevin corrector steps on the coordinates after each reverse step (DiffCSP's sampler: 1; the Perov-5
    # benchmark: 3, where they raised precision most); each one costs a denoiser pass
    corrector_steps: int = 0
    element_counts: bool = True  # distinct elements per cell drawn with the atom count from the training data
    # atoms and distinct elements per cell drawn from the training crystals of the asked class (physics_config's
    # topological_class) instead of all of them; needs conditioned true
    class_counts: bool = False
    charge_balance: bool = True  # species unmasked only while a charge-neutral composition stays reachable
    num_threads: int | None = 1  # torch threads while sampling and predicting, restored afterwards (None: torch's)
    batch_size: int = 256  # most crystals per denoiser batch (the sampler's plan_batches)
    device: str = "cpu"  # cpu | cuda: where the model samples (cuda: the model moves to the first CUDA device)
    progress_bar: bool = False  # a tqdm bar over the batches
    # step of the composition-volume guidance (td_models SamplingOptions.volume_guidance): each cell's volume held
    # within [V / volume_tolerance, volume_tolerance V], V the sum of its atoms' element volumes fitted on the
    # training crystals; 0: off (models trained before the volumes were kept need 0)
    volume_guidance: float = 0.2
    volume_tolerance: float = 1.25
    # step of the bond-length guidance (td_models SamplingOptions.covalent_guidance): two atoms closer than
    # covalent_fraction times the sum of their covalent radii (Cordero 2008) pushed apart while sampling; 0: off
    covalent_guidance: float = 0.0
    covalent_fraction: float = 0.75

    def __post_init__(self) -> None:
        if not is_int(self.n_candidates) or self.n_candidates < 1:
            raise ParameterError(f"generate_options.n_candidates must be an integer >= 1, got {self.n_candidates!r}")
        if self.steps is not None and (not is_int(self.steps) or self.steps < 1):
            raise ParameterError(f"generate_options.steps must be an integer >= 1 or null, got {self.steps!r}")
        if not is_int(self.corrector_steps) or self.corrector_steps < 0:
            got = self.corrector_steps
            raise ParameterError(f"generate_options.corrector_steps must be an integer >= 0, got {got!r}")
        if not is_int(self.seed):
            raise ParameterError(f"generate_options.seed must be an integer, got {self.seed!r}")
        threads = self.num_threads
        if threads is not None and (not is_int(threads) or threads < 1):
            raise ParameterError(f"generate_options.num_threads must be null or an integer >= 1, got {threads!r}")
        if not is_int(self.batch_size) or self.batch_size < 1:
            raise ParameterError(f"generate_options.batch_size must be an integer >= 1, got {self.batch_size!r}")
        guidance, tolerance = self.volume_guidance, self.volume_tolerance
        if not is_number(guidance) or not math.isfinite(guidance) or guidance < 0:
            raise ParameterError(f"generate_options.volume_guidance must be a number >= 0 (0: off), got {guidance!r}")
        if not is_number(tolerance) or not math.isfinite(tolerance) or tolerance <= 1:
            raise ParameterError(f"generate_options.volume_tolerance must be a number > 1, got {tolerance!r}")
        step, fraction = self.covalent_guidance, self.covalent_fraction
        if not is_number(step) or not math.isfinite(step) or step < 0:
            raise ParameterError(f"generate_options.covalent_guidance must be a number >= 0 (0: off), got {step!r}")
        if not is_number(fraction) or not 0 < fraction <= 1.5:
            raise ParameterError(
                "generate_options.covalent_fraction must be a number in (0, 1.5] (of the sum of two covalent radii; "
                f"bonds in real crystals are 0.7-1.2 of it), got {fraction!r}"
            )
        if self.device not in DEVICES:
            raise ParameterError(f"generate_options.device must be one of {list(DEVICES)}, got {self.device!r}")
        for name in ("conditioned", "element_counts", "class_counts", "charge_balance", "progress_bar"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"generate_options.{name} must be true or false, got {getattr(self, name)!r}")
        if self.class_counts and not self.conditioned:
            raise ParameterError("generate_options.class_counts draws the cell sizes from the training crystals of "
                                 "the asked class, but conditioned is false (no class is asked): set one of them "
                                 "differently")  # fmt: skip

    def sampler_steps(self, model: Any) -> int:
        """The reverse steps the sampler takes for ``model``: ``steps``, else the model's default."""
        if self.steps is not None:
            return self.steps
        mc = model.config.model_config
        return mc.sampling_steps or mc.num_steps


def sample_crystals(
    model: Any,
    options: GenerateOptions,
    *,
    condition: Mapping[str, Any] | None = None,
    guidance: Mapping[str, float] | None = None,
    num_atoms: Sequence[int] | None = None,
    seed: int | None = None,
    timings: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """``options.n_candidates`` samples of ``model``, with the property heads' predictions attached.

    The sampler settings (steps, corrector steps, composition rules, batch size, threads, device, progress) are
    ``options``'; ``condition`` (``topo_class``, ``band_gap_range``; empty: none), ``guidance`` (``guidance_scale``,
    ``physics_guidance``, ``property_guidance``; missing ones: the model's), ``num_atoms`` (one count per crystal;
    None: drawn from the training distribution) and ``seed`` (None: ``options.seed``) are the caller's. A sampler
    error is a :class:`ParameterError` that names how many crystals were asked for. ``timings``, when given, gets
    the seconds of the sampling (``sample``) and of the property heads (``predict``).
    """
    from td_data.evaluation import attach_predictions  # plain arrays: no reader, pymatgen or spglib
    from td_models import torch_threads
    from td_models.exceptions import TDModelsError

    model = on_device(model, options.device)
    n = options.n_candidates
    if options.volume_guidance > 0 and not model.has_element_volumes:
        raise ParameterError(
            f"generate_options.volume_guidance is {options.volume_guidance:g}, but this model file has no element "
            "volumes (it was written before td-models kept them): retrain it (kedro run --pipeline=train) or "
            "run with --params generate_options.volume_guidance=0"
        )
    started = time.perf_counter()
    with torch_threads(options.num_threads):  # torch's default threads collapse on a loaded machine
        try:
            samples = model.sample(
                n,
                **(condition or {}),
                **(guidance or {}),
                num_atoms=None if num_atoms is None else [int(k) for k in num_atoms],
                steps=options.sampler_steps(model),
                corrector_steps=options.corrector_steps,
                seed=options.seed if seed is None else seed,
                batch_size=options.batch_size,
                element_counts=options.element_counts,
                class_counts=options.class_counts,
                charge_balance=options.charge_balance,
                volume_guidance=options.volume_guidance,
                volume_tolerance=options.volume_tolerance,
                covalent_guidance=options.covalent_guidance,
                covalent_fraction=options.covalent_fraction,
                progress=options.progress_bar,
            )
        except TDModelsError as err:
            raise ParameterError(f"sampling {n} crystals failed: {err}") from err
        sampled = time.perf_counter()
        predictions = model.predict_samples(samples)  # the heads run where the model is
    if timings is not None:
        timings.update(sample=sampled - started, predict=time.perf_counter() - sampled)
    # the property heads see the samples they can featurise (a singular cell cannot be, nor become a record)
    return attach_predictions(samples, *predictions)


def on_device(model: Any, device: str) -> Any:
    """``model`` on ``device`` (``cpu`` leaves it where it is); a ParameterError when CUDA is asked for and absent."""
    if device != "cuda":
        return model
    require_device(GenerateOptions.block, device)
    return model.to("cuda")


def sample_candidates(
    model: Any, physics_config: Mapping[str, Any], generate_options: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(samples, sampling summary)``: ``n_candidates`` crystals for ``physics_config``'s class and band-gap range
    (``conditioned: false``: no condition, the learned null, w = 1), with the property heads' predictions.

    The guidance (classifier-free ``guidance_scale``, the penalty step from ``constraint_weight`` and the
    penalties' bounds ``min_distance`` and ``volume_per_atom_range``) comes from ``physics_config``, the run's
    parameters, not from the configuration the model was trained with. The pair is
    a ``td_models.save_crystals`` file's contents, so a catalog can hand it from a GPU node to the CPU half.
    """
    from td_data.evaluation import requested_class
    from td_models.config import PhysicsConfig
    from td_models.sampling import guidance_defaults

    pc = PhysicsConfig.from_dict(dict(physics_config))
    opts = GenerateOptions.from_dict(generate_options)
    guidance = guidance_defaults(pc)
    if opts.conditioned:
        requested, gap_range = requested_class({"topo_class": pc.topological_class}), tuple(pc.band_gap_range)
        condition = {"topo_class": pc.topological_class, "band_gap_range": gap_range}
    else:  # no condition: the learned null; classifier-free guidance has nothing to amplify (w = 1)
        requested, gap_range, condition = None, None, {}
        guidance = {**guidance, "guidance_scale": 1.0}
    timings: dict[str, float] = {}
    samples = sample_crystals(model, opts, condition=condition, guidance=guidance, timings=timings)
    seconds = timings["sample"] + timings["predict"]
    steps = opts.sampler_steps(model)
    summary = {"n_requested": opts.n_candidates, "conditioned": opts.conditioned, "requested_class": requested,
               "band_gap_range": None if gap_range is None else list(gap_range), "steps": steps,
               "corrector_steps": opts.corrector_steps, "element_counts": opts.element_counts,
               "class_counts": opts.class_counts,
               "charge_balance": opts.charge_balance, "volume_guidance": opts.volume_guidance,
               "volume_tolerance": opts.volume_tolerance, "covalent_guidance": opts.covalent_guidance,
               "covalent_fraction": opts.covalent_fraction, "seed": opts.seed, "batch_size": opts.batch_size,
               "device": opts.device, **guidance, "seconds": round(seconds, 2),
               "timings_seconds": {k: round(v, 2) for k, v in timings.items()},
               "seconds_per_1000_crystals": round(1000.0 * timings["sample"] / opts.n_candidates, 2)}  # fmt: skip
    logger.info("generate: %d crystals sampled (%d steps) in %.1f s", len(samples), steps, seconds)
    return samples, summary


def candidate_records(samples_file: tuple[list, Mapping[str, Any]]) -> tuple[list[CrystalRecord], dict[str, Any]]:
    """``(candidates, generation summary)`` from :func:`sample_candidates`' output.

    Each candidate is a :class:`CrystalRecord` (id ``cand-NNNN``, the sample's position) with ``properties``
    ``predicted_band_gap`` (eV), ``predicted_formation_energy`` (eV/atom) and ``target_band_gap`` (eV), and
    ``labels`` ``requested_class``, ``predicted_class`` and ``predicted_class_probability``. Samples that are not
    valid records (atoms on top of each other are allowed, a non-invertible cell is not) are counted in the
    summary (``rejected``) and left out.
    """
    from td_data.evaluation import samples_to_records

    samples, sampling = samples_file
    out, rejected = samples_to_records(samples, id_prefix=ID_PREFIX)
    logger.info("generate: %d of %d samples are valid records", len(out), len(samples))
    return out, {**sampling, "n_records": len(out), "rejected": rejected}


def generate_candidates(
    model: Any, physics_config: Mapping[str, Any], generate_options: Mapping[str, Any]
) -> tuple[list[CrystalRecord], dict[str, Any]]:
    """:func:`sample_candidates` then :func:`candidate_records`: the generate pipeline in one call (active
    learning's rounds use it)."""
    return candidate_records(sample_candidates(model, physics_config, generate_options))
