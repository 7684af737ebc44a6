"""One round of the project's active learning as SLURM jobs: td-hpc's chain of a generate job, a labelling array
and a train job, linked by ``--dependency=afterok:``.

The jobs run the same Kedro pipeline, its round state doing the hand-offs: the generate job runs round ``r`` with
``stop_after=relax`` (it samples, relaxes and writes ``work_dir/round_RR/to_label.h5``, the crystals the label step
labels); the array labels that store in shards (``python -m td_data.label_shard``, ``label_options``) into
``round_RR/label_shards/``; the train job runs round ``r`` to the end, and its label step takes the shards instead
of labelling again. Rounds before ``r`` must be complete (their state is skipped over; a missing one would run in
the generate job). ``python -m pipelines.active_learning.slurm --round R --out FOLDER [--submit]`` writes (and
submits) the scripts from the project in the current folder.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pipelines.active_learning.nodes import LABEL_SHARDS, TO_LABEL, ActiveLearningOptions
from pipelines.config import LabelConfig
from pipelines.exceptions import ParameterError

__all__ = ["write_round_jobs", "main"]

logger = logging.getLogger(__name__)


def write_round_jobs(
    project: str | os.PathLike[str],
    round_number: int,
    folder: str | os.PathLike[str],
    *,
    num_shards: int = 2,
    env: str | None = None,
    kedro: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    **resources: Any,
) -> Any:
    """td-hpc's :class:`~td_hpc.JobChain` for round ``round_number`` of the project at ``project`` (its parameters
    as ``kedro run --env ENV`` reads them), written into ``folder``.

    ``kedro`` and ``python``: the jobs' commands (default: this interpreter's environment); ``resources``:
    :func:`td_hpc.write_round_chain`'s ``partition``, ``account``, ``time``, ``label_time``, ``mem``,
    ``cpus_per_task``, ``extra_env``, ``job_name``. The labelling array cannot switch spin-orbit coupling off (it
    passes ``label_options`` as JSON to the labeller, whose default variants carry it): ``spin_orbit: false`` is
    refused.
    """
    from pipelines.resolved_config import load_kedro_config
    from td_hpc import write_round_chain

    if isinstance(round_number, bool) or not isinstance(round_number, int) or round_number < 1:
        raise ParameterError(f"round_number must be an integer >= 1, got {round_number!r}")
    project = Path(project).resolve()
    params, _ = load_kedro_config(project, env)
    opts = ActiveLearningOptions.from_dict(params.get("active_learning_options"))
    cfg = LabelConfig.from_dict(params.get("label_options"))
    if not cfg.spin_orbit:
        raise ParameterError("label_options.spin_orbit must be true for the SLURM labelling array, got false")
    round_dir = project / opts.work_dir / f"round_{round_number:02d}"
    kedro = os.fspath(kedro) if kedro is not None else str(Path(sys.executable).with_name("kedro"))
    base = [kedro, "run", "--pipelines=active_learning", *(["--env", env] if env else [])]
    key = "active_learning_options"
    return write_round_chain(
        folder,
        workdir=project,
        generate_command=[*base, "--params", f"{key}.rounds={round_number},{key}.stop_after=relax"],
        label_store=round_dir / TO_LABEL,
        label_dir=round_dir / LABEL_SHARDS,
        num_shards=num_shards,
        train_command=[*base, "--params", f"{key}.rounds={round_number}"],
        label_options={k: v for k, v in cfg.classify_options().items() if k != "variants"},
        python=os.fspath(python) if python is not None else sys.executable,
        **resources,
    )


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring): prints the scripts, and the job ids with ``--submit``."""
    p = argparse.ArgumentParser(prog="python -m pipelines.active_learning.slurm", description=__doc__.split("\n")[0])
    p.add_argument("--round", type=int, required=True, help="the round the chain runs (1-based)")
    p.add_argument("--out", required=True, help="folder for the sbatch scripts and their logs")
    p.add_argument("--shards", type=int, default=2, help="labelling array tasks (2)")
    p.add_argument("--env", default=None, help="Kedro configuration environment (conf/<env>)")
    p.add_argument("--time", default="01:00:00", help="each job's time limit (01:00:00)")
    p.add_argument("--partition", default=None)
    p.add_argument("--submit", action="store_true", help="submit the chain (sbatch) after writing it")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    chain = write_round_jobs(Path.cwd(), args.round, args.out, num_shards=args.shards, env=args.env,
                             time=args.time, label_time=args.time, partition=args.partition)  # fmt: skip
    for script in chain.scripts:
        print(script)
    if args.submit:
        from td_hpc import submit_chain

        print(" ".join(submit_chain(chain)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
