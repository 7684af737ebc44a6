"""Benchmarks as Kedro runs: the published protocol of a data set, in a configuration environment.

``kedro run --env perov5 --pipeline=benchmark`` (or ``--env carbon24``) runs the three stages in one process;
the stages also run alone, with their hand-offs as catalog datasets (``conf/<env>/catalog.yml``):

* ``bench_prepare`` (td-data): the published training split -> model items (``benchmark_items``);
* ``bench_train`` (torch, accelerate and td-models only: a GPU node without the materials stack):
  items -> ``benchmark_model`` and ``benchmark_samples`` (with the property heads' predictions);
* ``bench_evaluate`` (td-data): samples -> CIFs, ``metrics.json``, ``table.md`` and the figure.

``kedro run --env yield --pipelines=yield_benchmark`` is the conditional-yield benchmark
(:mod:`pipelines.benchmark.yields`), staged the same way: ``yield_prepare`` (labelled synthetic crystals),
``yield_train`` (the GPU half: train, sample both arms) and ``yield_evaluate`` (relabel, yields, enrichment).

These pipelines are registered by :func:`pipelines.pipeline_registry.register_pipelines` but are not part of
``__default__``: a plain ``kedro run`` never runs a benchmark.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from pipelines.benchmark.nodes import benchmark_metrics, generated_records, prepare_items
from pipelines.benchmark.training import sample_benchmark, train_benchmark
from pipelines.benchmark.yields import sample_yield_arms, yield_report, yield_training_items

__all__ = ["create_pipelines"]


def create_pipelines() -> dict[str, Pipeline]:
    """``{"bench_prepare", "bench_train", "bench_evaluate", "benchmark"}`` (the stages and all three) and the
    conditional-yield run's (:func:`yield_pipelines`)."""
    prepare = Pipeline(
        [
            node(
                prepare_items,
                inputs=["benchmark_train_split", "params:benchmark_options"],
                outputs="benchmark_items",
                name="bench_prepare_items_node",
            )
        ]
    )
    train = Pipeline(
        [
            node(
                train_benchmark,
                inputs=["benchmark_items", "params:benchmark_training"],
                outputs=["benchmark_model", "benchmark_training_summary"],
                name="bench_train_node",
            ),
            node(
                sample_benchmark,
                inputs=["benchmark_model", "benchmark_training_summary", "params:benchmark_training"],
                outputs="benchmark_samples",
                name="bench_sample_node",
            ),
        ]
    )
    evaluate = Pipeline(
        [
            node(
                generated_records,
                inputs=["benchmark_samples", "params:benchmark_options"],
                outputs="benchmark_generated",
                name="bench_generated_records_node",
            ),
            node(
                benchmark_metrics,
                inputs=[
                    "benchmark_generated",
                    "benchmark_samples",
                    "benchmark_train_split",
                    "benchmark_test_split",
                    "params:benchmark_options",
                ],
                outputs=["benchmark_metrics", "benchmark_table", "benchmark_figure"],
                name="bench_metrics_node",
            ),
        ]
    )
    return {"bench_prepare": prepare, "bench_train": train, "bench_evaluate": evaluate,
            "benchmark": prepare + train + evaluate, **yield_pipelines()}  # fmt: skip


def yield_pipelines() -> dict[str, Pipeline]:
    """``{"yield_prepare", "yield_train", "yield_evaluate", "yield_benchmark"}``: the conditional-yield run."""
    prepare = Pipeline(
        [
            node(
                yield_training_items,
                inputs=["params:yield_options", "params:benchmark_training"],
                outputs="yield_items",
                name="yield_training_items_node",
            )
        ]
    )
    train = Pipeline(
        [
            node(
                train_benchmark,
                inputs=["yield_items", "params:benchmark_training"],
                outputs=["yield_model", "yield_training_summary"],
                name="yield_train_node",
            ),
            node(
                sample_yield_arms,
                inputs=["yield_model", "yield_training_summary", "params:yield_options", "params:benchmark_training"],
                outputs=["yield_samples_conditioned", "yield_samples_unconditioned"],
                name="yield_sample_arms_node",
            ),
        ]
    )
    evaluate = Pipeline(
        [
            node(
                yield_report,
                inputs=["yield_samples_conditioned", "yield_samples_unconditioned", "params:yield_options"],
                outputs=["yield_metrics", "yield_table", "yield_figure", "yield_crystals"],
                name="yield_report_node",
            )
        ]
    )
    return {"yield_prepare": prepare, "yield_train": train, "yield_evaluate": evaluate,
            "yield_benchmark": prepare + train + evaluate}  # fmt: skip
