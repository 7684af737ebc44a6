"""Benchmarks as Kedro runs: the published protocol of a data set, in a configuration environment.

``kedro run --env perov5 --pipelines=benchmark`` (or ``--env carbon24``) runs the three stages in one process;
the stages also run alone, with their hand-offs as catalog datasets (``conf/<env>/catalog.yml``):

* ``bench_prepare`` (td-data): the published training split -> model items (``benchmark_items``);
* ``bench_train`` (torch, accelerate, td-models; no pymatgen or spglib: a GPU node without the materials stack):
  items -> ``benchmark_model`` (with ``benchmark_training_metrics`` and ``benchmark_training_summary``) by the
  train pipeline's node (:func:`pipelines.train.nodes.train_on_items`, with the environment's ``model_config``,
  ``physics_config``, ``training_config`` and ``train_options``), then the generate pipeline's sampling node
  (:func:`pipelines.generate.nodes.sample_candidates`, with the environment's ``generate_options``) ->
  ``benchmark_samples`` (with the property heads' predictions);
* ``bench_evaluate`` (td-data): samples -> CIFs; the evaluate pipeline's metrics node
  (:func:`pipelines.evaluate.nodes.generation_quality`, with the environment's ``evaluate_options``) on them
  against the test split; the baselines built from the training crystals and scored the same way
  (``bench_baselines_node``); ``metrics.json``, ``table.md`` and the figure.

``kedro run --env yield --pipelines=yield_benchmark`` is the conditional-yield benchmark
(:mod:`pipelines.benchmark.yields`), staged the same way: ``yield_prepare`` (labelled synthetic crystals),
``yield_train`` (the GPU half: the train node, then both arms and the guidance sweep through the generate node's
sampler, :func:`pipelines.generate.nodes.sample_crystals`) and ``yield_evaluate`` (relax,
relabel, yields, enrichment, DFT on the top crystals).

These pipelines are registered by :func:`pipelines.pipeline_registry.register_pipelines` but are not part of
``__default__``: a plain ``kedro run`` never runs a benchmark.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from pipelines.benchmark.nodes import (
    baseline_metrics,
    benchmark_metrics,
    generated_records,
    prepare_items,
    reference_crystals,
)
from pipelines.benchmark.yields import sample_yield_arms, yield_report, yield_training_items
from pipelines.config import TRAIN_PARAMS
from pipelines.evaluate.nodes import generation_quality
from pipelines.generate.nodes import sample_candidates
from pipelines.train.nodes import train_on_items

__all__ = ["create_pipelines"]

#: (prefix, the whole run's name): the stages are registered as <prefix>_prepare, _train and _evaluate
RUNS = (("bench", "benchmark"), ("yield", "yield_benchmark"))


def _staged(prefix: str, whole: str, **stages: list) -> dict[str, Pipeline]:
    """``{<prefix>_<stage>: Pipeline(nodes)}`` for each stage, and ``whole``: all of them in order."""
    found = {f"{prefix}_{stage}": Pipeline(nodes) for stage, nodes in stages.items()}
    found[whole] = sum(found.values(), Pipeline([]))
    return found


def create_pipelines() -> dict[str, Pipeline]:
    """The generation benchmarks' stages ``bench_prepare``, ``bench_train``, ``bench_evaluate`` and their whole
    run ``benchmark``; the conditional-yield run's ``yield_prepare``, ``yield_train``, ``yield_evaluate`` and
    ``yield_benchmark``."""
    b, y, g = "params:benchmark_options", "params:yield_options", "params:generate_options"
    e = "params:evaluate_options"
    generation = _staged(
        *RUNS[0],
        prepare=[node(prepare_items, ["benchmark_train_split", b], "benchmark_items", name="bench_prepare_items_node")],
        train=[
            node(train_on_items, {"train_items": "benchmark_items", **TRAIN_PARAMS},
                 ["benchmark_model", "benchmark_training_metrics", "benchmark_training_summary"],
                 name="bench_train_node"),  # the train pipeline's node
            node(sample_candidates, ["benchmark_model", "params:physics_config", g], "benchmark_samples",
                 name="bench_sample_node"),  # the generate pipeline's node
        ],
        evaluate=[
            node(generated_records, ["benchmark_samples", b], "benchmark_generated",
                 name="bench_generated_records_node"),
            node(reference_crystals,
                 ["benchmark_train_split", "benchmark_test_split", "benchmark_training_summary", b, e],
                 ["benchmark_train_crystals", "benchmark_test_crystals", "benchmark_reference_read"],
                 name="bench_reference_crystals_node"),
            node(generation_quality, ["benchmark_generated", "benchmark_test_crystals", "benchmark_train_crystals", e],
                 "benchmark_generation_metrics", name="bench_generation_quality_node"),  # the evaluate node
            node(baseline_metrics, ["benchmark_train_crystals", "benchmark_test_crystals", "benchmark_samples", b, e],
                 "benchmark_baselines", name="bench_baselines_node"),
            node(benchmark_metrics,
                 ["benchmark_generated", "benchmark_generation_metrics", "benchmark_training_summary",
                  "benchmark_samples", "benchmark_test_crystals", "benchmark_reference_read", "benchmark_baselines",
                  b, e],
                 ["benchmark_metrics", "benchmark_table", "benchmark_figure"], name="bench_metrics_node"),
        ],
    )  # fmt: skip
    arms = ["yield_samples_conditioned", "yield_samples_unconditioned"]
    conditional = _staged(
        *RUNS[1],
        prepare=[node(yield_training_items, [y, "params:model_config", "params:training_config"], "yield_items",
                      name="yield_training_items_node")],
        train=[
            node(train_on_items, {"train_items": "yield_items", **TRAIN_PARAMS},
                 ["yield_model", "yield_training_metrics", "yield_training_summary"],
                 name="yield_train_node"),  # the train pipeline's node
            node(sample_yield_arms, ["yield_model", "yield_training_summary", y, g], arms,
                 name="yield_sample_arms_node"),
        ],
        evaluate=[node(yield_report, [*arms, y],
                       ["yield_metrics", "yield_table", "yield_figure", "yield_crystals", "yield_sweep_figure"],
                       name="yield_report_node")],
    )  # fmt: skip
    return {**generation, **conditional}
