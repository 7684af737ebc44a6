"""Generate: candidates for the target class and band-gap range of ``physics_config`` (or, with
``generate_options.conditioned: false``, without any condition), with the property heads' predictions."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pipelines._options import OptionsBlock, is_int
from pipelines.exceptions import ParameterError
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
    charge_balance: bool = True  # species unmasked only while a charge-neutral composition stays reachable
    num_threads: int | None = 1  # torch threads while sampling and predicting, restored afterwards (None: torch's)

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
        for name in ("conditioned", "element_counts", "charge_balance"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"generate_options.{name} must be true or false, got {getattr(self, name)!r}")

    def sampler_steps(self, model: Any) -> int:
        """The reverse steps the sampler takes for ``model``: ``steps``, else the model's default."""
        if self.steps is not None:
            return self.steps
        mc = model.config.model_config
        return mc.sampling_steps or mc.num_steps


def generate_candidates(
    model: Any, physics_config: Mapping[str, Any], generate_options: Mapping[str, Any]
) -> tuple[list[CrystalRecord], dict[str, Any]]:
    """Sample ``n_candidates`` crystals and attach the property heads' predictions.

    Each candidate is a :class:`CrystalRecord` (id ``cand-NNNN``) with ``properties``
    ``predicted_band_gap`` (eV), ``predicted_formation_energy`` (eV/atom) and ``target_band_gap`` (eV),
    and ``labels`` ``requested_class``, ``predicted_class`` and ``predicted_class_probability``.
    Samples that are not valid records (for example atoms on top of each other are allowed, but a
    non-invertible cell is not) are counted in the summary and left out. The guidance (classifier-free
    ``guidance_scale`` and the penalty step from ``constraint_weight``) comes from ``physics_config``, the
    run's parameters, not from the configuration the model was trained with.
    """
    from td_data.evaluation import attach_predictions, requested_class, samples_to_records
    from td_models import torch_threads
    from td_models.config import PhysicsConfig
    from td_models.sampling import guidance_defaults

    pc = PhysicsConfig.from_dict(dict(physics_config))
    opts = GenerateOptions.from_dict(generate_options)
    n, steps = opts.n_candidates, opts.sampler_steps(model)
    # this run's physics_config, not the one the model was trained with: its guidance scale and constraint weight
    guidance = guidance_defaults(pc)
    if opts.conditioned:
        requested, gap_range = requested_class({"topo_class": pc.topological_class}), tuple(pc.band_gap_range)
        condition = {"topo_class": pc.topological_class, "band_gap_range": gap_range}
    else:  # no condition: the learned null; classifier-free guidance has nothing to amplify (w = 1)
        requested, gap_range, condition = None, None, {}
        guidance = {**guidance, "guidance_scale": 1.0}
    with torch_threads(opts.num_threads):  # torch's default threads collapse on a loaded machine
        samples = model.sample(
            n,
            **condition,
            steps=steps,
            corrector_steps=opts.corrector_steps,
            seed=opts.seed,
            element_counts=opts.element_counts,
            charge_balance=opts.charge_balance,
            **guidance,
        )
        predictions = model.predict_samples(samples)
    # the property heads see the samples they can featurise (a singular cell cannot be, nor become a record)
    samples = attach_predictions(samples, *predictions)
    out, rejected = samples_to_records(samples, id_prefix=ID_PREFIX)
    summary = {"n_requested": n, "n_records": len(out), "rejected": rejected, "conditioned": opts.conditioned,
               "requested_class": requested, "band_gap_range": None if gap_range is None else list(gap_range),
               "steps": steps, "corrector_steps": opts.corrector_steps,
               "element_counts": opts.element_counts, "charge_balance": opts.charge_balance,
               **guidance}  # fmt: skip
    logger.info("generate: %d of %d samples are valid records", len(out), n)
    return out, summary
