"""Evaluation of generated crystals: the one home the pipelines, the scripts and the benchmarks share.

One module per concept; none imports torch (the model's samples and predictions arrive as plain arrays):

* :mod:`~td_data.evaluation.samples`: sampler dicts -> records with predictions, and the reasons for rejects;
* :mod:`~td_data.evaluation.relabel`: the structure labeller on generated crystals, confusion tables;
* :mod:`~td_data.evaluation.properties`: property-head errors and accuracy against labelled crystals;
* :mod:`~td_data.evaluation.yields`: shares with Wilson intervals, enrichment with the Katz interval;
* :mod:`~td_data.evaluation.datasets`: the benchmark CSV splits (Perov-5, Carbon-24) read into records;
* :mod:`~td_data.evaluation.baselines`: memorisation, random PyXtal structures and the ideal prototype,
  built from the training crystals and scored like a model.

The generation metrics themselves (validity, coverage, Wasserstein, uniqueness, novelty) are
:mod:`td_data.metrics`.

>>> from td_data.evaluation import share
>>> share(3, 12)["share"]
0.25
"""

from __future__ import annotations

from td_data.evaluation.baselines import (
    BASELINES,
    PROTOTYPE_DATASETS,
    RandomStructures,
    baseline_records,
    perovskite_sites,
    random_structures,
)
from td_data.evaluation.datasets import (
    DATASET_NAMES,
    SPLIT_FILES,
    LoadedSplit,
    SplitFiles,
    dataset_key,
    load_split,
    split_paths,
)
from td_data.evaluation.properties import (
    BAND_GAP_KEYS,
    FORMATION_ENERGY_KEYS,
    first_property,
    property_head_metrics,
)
from td_data.evaluation.relabel import (
    NOT_CHECKED,
    REFUSAL_KINDS,
    Relabelled,
    confusion_table,
    consistency_report,
    refusal_kind,
    relabel_candidates,
)
from td_data.evaluation.samples import (
    DEFAULT_ID_PREFIX,
    GENERATED_SOURCE,
    NO_PREDICTION,
    SampleRecords,
    attach_predictions,
    requested_class,
    samples_to_records,
)
from td_data.evaluation.yields import (
    Z95,
    enrichment,
    enrichment_for_json,
    format_enrichment,
    format_share,
    katz_interval,
    share,
    wilson_interval,
)

__all__ = [
    "BAND_GAP_KEYS",
    "BASELINES",
    "DATASET_NAMES",
    "DEFAULT_ID_PREFIX",
    "FORMATION_ENERGY_KEYS",
    "GENERATED_SOURCE",
    "NOT_CHECKED",
    "NO_PREDICTION",
    "PROTOTYPE_DATASETS",
    "REFUSAL_KINDS",
    "SPLIT_FILES",
    "Z95",
    "LoadedSplit",
    "RandomStructures",
    "Relabelled",
    "SampleRecords",
    "SplitFiles",
    "attach_predictions",
    "baseline_records",
    "confusion_table",
    "consistency_report",
    "dataset_key",
    "enrichment",
    "enrichment_for_json",
    "first_property",
    "format_enrichment",
    "format_share",
    "katz_interval",
    "load_split",
    "perovskite_sites",
    "property_head_metrics",
    "random_structures",
    "refusal_kind",
    "relabel_candidates",
    "requested_class",
    "samples_to_records",
    "share",
    "split_paths",
    "wilson_interval",
]
