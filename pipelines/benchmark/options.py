"""The benchmarks' parameter blocks: ``benchmark_options`` (data, published table, baselines) and
``yield_options``. The training is the train pipeline's node and blocks (``model_config``, ``physics_config``,
``training_config``, ``train_options``), the sampling the generate pipeline's (``generate_options``), the scoring
the evaluate pipeline's (``evaluate_options``), each environment with its own.

Both are read by :meth:`OptionsBlock.from_dict`, so an unknown key or a value outside its rule is a
:class:`~pipelines.exceptions.ParameterError` that names the key and the value.

The ``benchmark_training`` block of earlier releases is refused by a hook
(:class:`pipelines.hooks.RetiredParametersHook`, :data:`pipelines.config.RETIRED_BLOCKS`) with where each of its
keys went, never ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pipelines._options import OptionsBlock
from pipelines.exceptions import ParameterError

#: The data sets whose published protocol the benchmarks follow (``td_data.metrics.COVERAGE_CUTOFFS`` keys).
DATASETS = ("perov_5", "carbon_24")


def _positive_int(block: str, name: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        none = " or null" if optional else ""
        raise ParameterError(f"{block}.{name} must be an integer >= 1{none}, got {value!r}")


def _positive_number(block: str, name: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        none = " or null" if optional else ""
        raise ParameterError(f"{block}.{name} must be a number > 0{none}, got {value!r}")


#: benchmark_options keys of the scoring before it became the evaluate node's: they moved to evaluate_options
MOVED_TO_EVALUATE = ("cutoffs", "n_jobs", "reference_cache", "generated_cache", "n_wdist", "match_sample", "seed")


@dataclass(frozen=True)
class BenchmarkOptions(OptionsBlock):
    """``benchmark_options``: which published protocol, how much of the data, which baselines. The scoring is the
    evaluate node's, with the environment's ``evaluate_options`` (keys that lived here before:
    :data:`MOVED_TO_EVALUATE`)."""

    block: ClassVar[str] = "benchmark_options"

    name: str = "perov5"  # the run's name: outputs/<name>/, the table's title
    dataset: str = "perov_5"  # the published table (perov_5 | carbon_24); evaluate_options.coverage_dataset agrees
    title: str = "Perov-5"  # the data set's name in the table, figure and caveats
    train_description: str = "Perov-5 val + the first 1,024 of train, 4,811 in all"  # what the model trains on
    full_train_split: int = 11_356  # crystals in the train split the published models used
    max_train: int | None = None  # the first N training crystals only (smoke runs)
    max_test: int | None = None  # the first N test crystals only (smoke runs)
    # baselines scored in the same run (td_data.evaluation.baselines.BASELINES), drawn with evaluate_options.seed;
    # an empty list: none
    baselines: tuple[str, ...] = ("memorise", "random_structures", "prototype")
    baseline_samples: int | None = None  # crystals per baseline; null: as many as the model's samples

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> BenchmarkOptions:
        """The block from its YAML mapping; a scoring key that moved to ``evaluate_options`` is refused with its
        new name."""
        moved = sorted(set(data or {}) & set(MOVED_TO_EVALUATE))
        if moved:
            where = ", ".join(f"{k} -> evaluate_options.{k}" for k in moved)
            raise ParameterError(f"{cls.block} no longer holds the scoring (the evaluate node scores): {where}")
        return super().from_dict(data)

    def __post_init__(self) -> None:
        b = self.block
        if not isinstance(self.name, str) or not self.name.strip() or "/" in self.name:
            raise ParameterError(f"{b}.name must be a non-empty name without '/', got {self.name!r}")
        if self.dataset not in DATASETS:
            raise ParameterError(f"{b}.dataset must be one of {list(DATASETS)}, got {self.dataset!r}")
        _positive_int(b, "full_train_split", self.full_train_split)
        _positive_int(b, "max_train", self.max_train, optional=True)
        _positive_int(b, "max_test", self.max_test, optional=True)
        _positive_int(b, "baseline_samples", self.baseline_samples, optional=True)
        if not isinstance(self.baselines, (list, tuple)):
            raise ParameterError(
                f"{b}.baselines must be a list of baseline names ([] for none), got {self.baselines!r}"
            )
        from td_data.evaluation.baselines import BASELINES  # only the CPU stages read this block

        unknown = [k for k in self.baselines if k not in BASELINES]
        if unknown or len(set(self.baselines)) != len(self.baselines):
            raise ParameterError(
                f"{b}.baselines must name each of {list(BASELINES)} at most once, got {list(self.baselines)!r}"
            )
        object.__setattr__(self, "baselines", tuple(self.baselines))


#: yield_options.num_atoms' named modes (an integer is the other choice)
NUM_ATOMS_MODES = ("train-labellable", "train", "class-labellable", "class")


@dataclass(frozen=True)
class YieldOptions(OptionsBlock):
    """``yield_options``: the conditional-yield benchmark's data, arms and labeller (the training: the train node's
    blocks; ``generate_options``: the sampler settings of both arms, ``n_candidates`` crystals each)."""

    block: ClassVar[str] = "yield_options"

    n_train: int = 300  # synthetic training crystals (labeller elements only); unused with train_data
    # a labelled td-data crystal store (.h5) to train on, every record of it; null: n_train synthetic crystals
    train_data: str | None = None
    max_label_atoms: int = 6  # only crystals with at most this many sites are labelled (training and generated)
    guidance_scale: float | None = None  # the conditioned arm's classifier-free guidance; null: the model's
    # classifier-free guidance scales to sweep (the conditioned arm sampled at each); null: [guidance_scale]
    guidance_scales: tuple[float, ...] | None = None
    property_guidance: float = 0.0  # the class head's log-probability guidance of the conditioned arm; 0: off
    # property-guidance scales to sweep (each with each guidance scale); null: [property_guidance]
    property_guidance_scales: tuple[float, ...] | None = None
    # train-labellable | train | class-labellable | class | an integer. train: both arms share one draw from the
    # training crystals' sizes (-labellable: those of at most max_label_atoms sites); class: the conditioned arm
    # draws its sizes and element counts from the z2_ti training crystals, the unconditioned arm from all of them
    num_atoms: str | int = "train-labellable"
    workers: int = 1  # labeller and relaxation worker processes
    label_timeout: float = 20.0  # seconds the labeller may spend on one crystal (slower: 'labeller timeout')
    gap_mesh: int = 6  # k-points per axis of the labeller's gap search
    relax: bool = True  # relax generated crystals with CHGNet before labelling them (false: judged as sampled)
    relax_fmax: float = 0.1  # eV/Angstrom: a relaxation converged when every force is below it
    relax_max_steps: int = 200  # FIRE steps per crystal; not converged by then: 'relaxation failed'
    relax_symprec: float = 1e-3  # Angstrom: relaxed crystals idealised before labelling (td_data.relax.idealised)
    dft_top_k: int = 20  # DFT (GPAW, PBE + spin-orbit) on the top K labelled crystals of each arm; 0: skipped
    dft_timeout: float = 900.0  # seconds per crystal; slower ones are stopped and quarantined
    dft_settings: dict[str, Any] = field(default_factory=dict)  # td_physics.dft.DFTSettings keys; {}: defaults

    def __post_init__(self) -> None:
        b = self.block
        for name in ("n_train", "max_label_atoms", "workers", "gap_mesh"):
            _positive_int(b, name, getattr(self, name))
        _positive_number(b, "label_timeout", self.label_timeout)
        g = self.guidance_scale
        number = isinstance(g, (int, float)) and not isinstance(g, bool)
        if g is not None and not (number and math.isfinite(g) and g >= 0):
            raise ParameterError(f"{b}.guidance_scale must be a number >= 0 or null, got {g!r}")
        p = self.property_guidance
        if not (isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and p >= 0):
            raise ParameterError(f"{b}.property_guidance must be a number >= 0, got {p!r}")
        self._scales("guidance_scales", "> 0", lambda v: v > 0)
        self._scales("property_guidance_scales", ">= 0", lambda v: v >= 0)
        t = self.train_data
        if t is not None and (not isinstance(t, str) or not t.strip()):
            raise ParameterError(f"{b}.train_data must be the path of a td-data crystal store or null, got {t!r}")
        if not isinstance(self.relax, bool):
            raise ParameterError(f"{b}.relax must be true or false, got {self.relax!r}")
        _positive_number(b, "relax_fmax", self.relax_fmax)
        _positive_int(b, "relax_max_steps", self.relax_max_steps)
        _positive_number(b, "relax_symprec", self.relax_symprec)
        k = self.dft_top_k
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ParameterError(f"{b}.dft_top_k must be an integer >= 0 (0: no DFT), got {k!r}")
        _positive_number(b, "dft_timeout", self.dft_timeout)
        if self.dft_settings is None:
            object.__setattr__(self, "dft_settings", {})
        if not isinstance(self.dft_settings, Mapping):
            raise ParameterError(f"{b}.dft_settings must be a mapping of DFTSettings keys, got {self.dft_settings!r}")
        if self.num_atoms not in NUM_ATOMS_MODES:
            try:
                n = int(self.num_atoms)
            except (TypeError, ValueError):
                modes = ", ".join(repr(m) for m in NUM_ATOMS_MODES)
                raise ParameterError(f"{b}.num_atoms must be one of {modes} or an integer, got {self.num_atoms!r}"
                                     ) from None  # fmt: skip
            if n < 1 or isinstance(self.num_atoms, bool):
                raise ParameterError(f"{b}.num_atoms must be >= 1, got {self.num_atoms!r}")

    def _scales(self, name: str, rule: str, ok: Any) -> None:
        """Check the sweep list ``name`` (null, or a non-empty list of finite numbers ``rule``); kept as a tuple."""
        values = getattr(self, name)
        if values is None:
            return
        numbers = isinstance(values, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
        )
        if not numbers or not values or not all(ok(v) for v in values) or len(set(values)) != len(values):
            raise ParameterError(
                f"{self.block}.{name} must be null or a non-empty list of distinct numbers {rule}, got {values!r}"
            )
        object.__setattr__(self, name, tuple(float(v) for v in values))

    def sweep(self) -> list[tuple[float | None, float]]:
        """The conditioned arm's ``(guidance_scale, property_guidance)`` points, in sampling order: each guidance
        scale with each property-guidance scale (``guidance_scale`` None: the model's own)."""
        scales = self.guidance_scales if self.guidance_scales is not None else (self.guidance_scale,)
        properties = self.property_guidance_scales
        properties = properties if properties is not None else (float(self.property_guidance),)
        return [(w, p) for w in scales for p in properties]
