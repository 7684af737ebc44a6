"""Project hooks: before a run, refuse a parameter block of an earlier release, point the ``user_crystals``
dataset at ``data_config.path``, then check that the inputs of the selected pipelines exist on disk."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

#: The catalog entry of the user's crystal files, and the parameter block that says where they are.
USER_CRYSTALS = "user_crystals"
DATA_CONFIG = "params:data_config"


class RetiredParametersHook:
    """Refuses a run whose parameters still hold a block of an earlier release
    (:data:`pipelines.config.RETIRED_BLOCKS`), naming where each of its keys went: a setting no node
    reads would otherwise be accepted and ignored."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        from pipelines.config import RETIRED_BLOCKS, retired_block_message
        from pipelines.exceptions import ParameterError

        for block in RETIRED_BLOCKS:
            if f"params:{block}" in catalog:
                raise ParameterError(retired_block_message(block, catalog.load(f"params:{block}")))


class UserCrystalsHook:
    """Builds the ``user_crystals`` dataset from ``data_config`` (its ``path`` and reading options).

    ``data_config.path`` is where users name their files (the user guide, the README); the catalog declares
    the dataset's type and this hook fills it in, for runs whose pipeline reads it, before any check or node.
    A ``path`` written in the catalog entry itself is refused: the files are named in one place.
    """

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if USER_CRYSTALS not in pipeline.inputs() or USER_CRYSTALS not in catalog or DATA_CONFIG not in catalog:
            return
        from pipelines.datasets import CrystalFilesDataset
        from pipelines.exceptions import ParameterError

        declared = catalog.get(USER_CRYSTALS)
        if getattr(declared, "path", None) is not None:
            raise ParameterError(
                f"the {USER_CRYSTALS} catalog entry takes its path from data_config.path; "
                f"remove path {str(declared.path)!r} from the catalog and set data_config.path instead"
            )
        catalog[USER_CRYSTALS] = CrystalFilesDataset.from_data_config(catalog.load(DATA_CONFIG))


class MissingInputsError(RuntimeError):
    """A pipeline's input is not on disk; the message names the pipeline that makes it."""


def _producer(name: str) -> str | None:
    """The registered pipeline (not ``__default__``) that outputs dataset ``name``; the smallest one when several
    do (a benchmark's stage rather than its whole run)."""
    from kedro.framework.project import pipelines

    from pipelines.pipeline_registry import PIPELINE_ORDER

    names = [p for p in PIPELINE_ORDER if p in pipelines] + sorted(set(pipelines) - set(PIPELINE_ORDER))
    for pipe_name in sorted(names, key=lambda p: len(pipelines[p].nodes)):
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
        env = f" --env {run_params['env']}" if run_params.get("env") not in (None, "local") else ""  # conf/<env>
        lines = [f"  - {n} ({why})" + (f": made by the '{p}' pipeline" if (p := _producer(n)) else "")
                 for n, why in missing]  # fmt: skip
        hint = (
            "Run first: "
            + " then ".join(f"`kedro run{env} --pipelines={p}`" for p in firsts)
            + f" (or `kedro run{env}` for all)."
            if firsts
            else "No pipeline writes them: check where the configuration points (data_config.path for user_crystals)."
        )
        raise MissingInputsError(
            "this run needs inputs that earlier pipelines write:\n" + "\n".join(lines) + "\n" + hint
        )


def _order(name: str) -> int:
    from pipelines.pipeline_registry import PIPELINE_ORDER

    return PIPELINE_ORDER.index(name) if name in PIPELINE_ORDER else len(PIPELINE_ORDER)
