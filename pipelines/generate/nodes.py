"""Generate: candidates for the target class and band-gap range of ``physics_config``, with predictions."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pipelines._options import OptionsBlock, is_int
from pipelines.exceptions import ParameterError
from td_data import CrystalRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerateOptions(OptionsBlock):
    """The ``generate_options`` block of ``parameters_generate.yml``."""

    block: ClassVar[str] = "generate_options"

    n_candidates: int = 64  # crystals sampled
    steps: int | None = None  # strided reverse steps; None: model_config.sampling_steps (null there: the full chain)
    seed: int = 0  # sampler seed

    def __post_init__(self) -> None:
        if not is_int(self.n_candidates) or self.n_candidates < 1:
            raise ParameterError(f"generate_options.n_candidates must be an integer >= 1, got {self.n_candidates!r}")
        if self.steps is not None and (not is_int(self.steps) or self.steps < 1):
            raise ParameterError(f"generate_options.steps must be an integer >= 1 or null, got {self.steps!r}")
        if not is_int(self.seed):
            raise ParameterError(f"generate_options.seed must be an integer, got {self.seed!r}")

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
    non-invertible cell is not) are counted in the summary and left out.
    """
    from td_models.config import TOPO_CLASSES, PhysicsConfig, topo_class_index

    pc = PhysicsConfig.from_dict(dict(physics_config))
    opts = GenerateOptions.from_dict(generate_options)
    n, steps = opts.n_candidates, opts.sampler_steps(model)
    requested = TOPO_CLASSES[topo_class_index(pc.topological_class)]
    samples = model.sample(
        n,
        topo_class=pc.topological_class,
        band_gap_range=tuple(pc.band_gap_range),
        steps=steps,
        seed=opts.seed,
    )
    records, rejected = [], []
    for i, s in enumerate(samples):
        try:
            rec = CrystalRecord(s["lattice"], s["frac_coords"] % 1.0, s["atomic_numbers"], id=f"cand-{i:04d}")
        except ValueError as err:
            rejected.append({"index": i, "reason": str(err)})
            continue
        target = s.get("conditions", {}).get("band_gap")
        records.append((rec, None if target is None else float(target)))
    arrays = [
        {"lattice": r.lattice, "frac_coords": r.frac_coords, "atomic_numbers": r.atomic_numbers} for r, _ in records
    ]
    preds = model.predict_properties(arrays) if records else None
    out = []
    for j, (rec, target) in enumerate(records):
        props = {
            "predicted_band_gap": float(preds.band_gap[j]),
            "predicted_formation_energy": float(preds.formation_energy[j]),
        }
        if target is not None:
            props["target_band_gap"] = target
        klass = preds.topo_class[j]
        out.append(
            rec.replace(
                properties=props,
                labels={
                    "requested_class": requested,
                    "predicted_class": klass,
                    "predicted_class_probability": float(preds.topo_probabilities[j][TOPO_CLASSES.index(klass)]),
                },
                source="generated:td-models",
            )
        )
    summary = {"n_requested": n, "n_records": len(out), "rejected": rejected, "requested_class": requested,
               "band_gap_range": list(pc.band_gap_range), "steps": steps}  # fmt: skip
    logger.info("generate: %d of %d samples are valid records", len(out), n)
    return out, summary
