"""Project hooks: before a run, check that the inputs of the selected pipelines exist on disk."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl


class MissingInputsError(RuntimeError):
    """A pipeline's input is not on disk; the message names the pipeline that makes it."""


def _producer(name: str) -> str | None:
    """The registered pipeline (not ``__default__``) that outputs dataset ``name``."""
    from kedro.framework.project import pipelines

    from pipelines.pipeline_registry import PIPELINE_ORDER

    names = [p for p in PIPELINE_ORDER if p in pipelines] + sorted(set(pipelines) - set(PIPELINE_ORDER))
    for pipe_name in names:
        if pipe_name != "__default__" and name in pipelines[pipe_name].all_outputs():
            return pipe_name
    return None


class MissingInputsHook:
    """Fails early, and plainly, when ``kedro run --pipelines=X`` lacks what an earlier pipeline writes."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        missing = []
        for name in sorted(pipeline.inputs()):
            if name == "parameters" or name.startswith("params:"):
                continue
            if name not in catalog:
                missing.append((name, "not declared in conf/base/catalog.yml"))
            elif not catalog.exists(name):
                missing.append((name, "missing on disk"))
        if not missing:
            return
        firsts = sorted({p for p in (_producer(n) for n, _ in missing) if p}, key=_order)
        lines = [f"  - {n} ({why})" + (f": made by the '{p}' pipeline" if (p := _producer(n)) else "")
                 for n, why in missing]  # fmt: skip
        hint = (
            "Run first: " + " then ".join(f"`kedro run --pipelines={p}`" for p in firsts) + " (or `kedro run` for all)."
            if firsts
            else "Run `kedro run` (all pipelines)."
        )
        raise MissingInputsError(
            "this run needs inputs that earlier pipelines write:\n" + "\n".join(lines) + "\n" + hint
        )


def _order(name: str) -> int:
    from pipelines.pipeline_registry import PIPELINE_ORDER

    return PIPELINE_ORDER.index(name) if name in PIPELINE_ORDER else len(PIPELINE_ORDER)
