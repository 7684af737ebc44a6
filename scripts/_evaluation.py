"""Command-line plumbing of the evaluation scripts (``test_generation_quality.py``, ``test_physics_consistency.py``,
``plot_training_curves.py``, ``analyze_generations.py``): loading models and crystals with clear errors, quiet
libraries, progress bars, finding what training wrote, CIF, JSON and figure output.

The evaluation itself is td-data's (:mod:`td_data.evaluation`, :mod:`td_data.metrics`); the scripts also call
public functions of the Kedro package ``pipelines`` (the generate and evaluate nodes, the report's figures, the
CIF folder dataset), which is installed with the project (``pip install -e .`` at the repository root; ``make
install`` does it). Run as ``python scripts/NAME.py``, a script finds this module in its own folder.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: the test split the data pipeline writes (``kedro run``), the default reference set
DEFAULT_REFERENCE = ROOT / "data" / "05_model_input" / "test.h5"

logger = logging.getLogger("td_scripts")


class ScriptError(ValueError):
    """A user error (missing file, bad option): printed as one line, exit status 2."""


def quiet_libraries(verbose: bool = False) -> None:
    """Library logs at WARNING (INFO with ``verbose``), library warnings off: the scripts print their own summary."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        warnings.filterwarnings("ignore")
        for name in ("pymatgen", "matminer", "td_data", "td_models", "td_physics", "pipelines", "accelerate"):
            logging.getLogger(name).setLevel(logging.WARNING)


def run_main(func, argv: Sequence[str] | None) -> int:
    """Call ``func(argv)``; a :class:`ScriptError` becomes ``error: ...`` on stderr and exit status 2."""
    try:
        return int(func(argv) or 0)
    except ScriptError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if err.name != "pipelines" and not str(err.name).startswith("pipelines."):
            raise
        print(
            "error: the project's Kedro package `pipelines` is not installed in this Python: run "
            f"`pip install -e .` in the repository root ({ROOT}), or `make install` there",
            file=sys.stderr,
        )
        return 2


def require_file(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise ScriptError(f"{what} {str(p)!r} does not exist")
    return p


def load_model(path: str | Path, device: str = "cpu", trusted: bool = False):
    """A :class:`td_models.TopologicalDiffusionModel` from a ``save``d file (``weights_only=True`` unless trusted)."""
    from td_models import TopologicalDiffusionModel
    from td_models.exceptions import TDModelsError

    p = require_file(path, "model file")
    if not p.is_file():
        raise ScriptError(f"model file {str(p)!r} is a folder; pass the .pt file (best_model.pt or final_model.pt)")
    try:
        return TopologicalDiffusionModel.load(p, map_location=device, trusted=trusted)
    except TDModelsError as err:
        raise ScriptError(str(err)) from err


#: what the scripts read without --trusted
SAFE_FORMATS = (
    "a td-data HDF5 store (.h5, as the data pipeline writes: data/05_model_input/test.h5), JSON (.json: pymatgen "
    "Structure dicts, td-data records or Materials Project documents), a folder of CIF files, or a CDVAE-style CSV"
)
_PICKLE_NAMES = (".pkl", ".pickle", ".pkl.gz", ".pickle.gz")


def is_pickle(path: Path) -> bool:
    """A pickle by name (``.pkl``, ``.pickle``, gzipped or not) or by content (protocol 2+ opcode first)."""
    if not path.is_file():
        return False
    if path.name.lower().endswith(_PICKLE_NAMES):
        return True
    with open(path, "rb") as handle:
        head = handle.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def load_records(path: str | Path, what: str, trusted: bool = False, limit: int | None = None) -> list:
    """Crystals from a td-data store, CIF folder, CSV/JSON or (with ``trusted``) pickle; quarantined ones logged."""
    from td_data import load_materials_database

    p = require_file(path, what)
    if is_pickle(p) and not trusted:
        raise ScriptError(
            f"{what} {str(p)!r} is a pickle, which is refused by default: loading one can run any code it holds. "
            f"Pass --trusted to read it only if you made it yourself; or give the crystals in a safe format: "
            f"{SAFE_FORMATS}"
        )
    result = load_materials_database(p, trusted=trusted)
    for q in result.quarantined[:5]:
        logger.warning("skipped %s: %s", q.source, q.reason)
    if not result.records:
        raise ScriptError(f"{what} {str(p)!r} holds no readable crystal ({len(result.quarantined)} quarantined)")
    records = list(result.records)
    return records[:limit] if limit else records


def progress(iterable: Iterable, total: int | None = None, desc: str = "", disable: bool = False):
    """A tqdm bar on stderr (plain iteration when tqdm is missing)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dev requirement
        return iterable
    return tqdm(iterable, total=total, desc=desc, disable=disable, leave=False)


def write_cifs(records: Sequence[Any], folder: Path) -> Path:
    """One CIF per record plus ``index.json``/``index.csv`` (the pipeline's :class:`CifFolderDataset`)."""
    from pipelines.datasets import CifFolderDataset

    CifFolderDataset(path=folder).save(list(records))
    return folder


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files, no window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """``fig`` as a PNG at ``path`` (folders created, written atomically), then closed."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=130, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return atomic_write_bytes(Path(path), buffer.getvalue())


def write_json(data: Any, path: Path) -> Path:
    """``data`` as JSON at ``path`` (folders created, written atomically); NaN becomes null, numpy values plain."""
    from td_physics.jsonable import to_jsonable  # imported when needed, as the writer is

    return atomic_write_bytes(
        Path(path), (json.dumps(to_jsonable(data, strict=False), indent=1) + "\n").encode("utf-8")
    )


def write_text(text: str, path: Path) -> Path:
    """``text`` at ``path`` (folders created, written atomically)."""
    return atomic_write_bytes(Path(path), text.encode("utf-8"))


# ------------------------------------------------------------------------------------ where training writes
#: ``(pattern relative to the working folder, what writes it)``: the models training writes
MODEL_LOCATIONS = (
    ("outputs/*/best_model.pt", "examples/training_example.py --output-dir outputs/NAME (default outputs/training)"),
    ("outputs/*/final_model.pt", "examples/training_example.py at the end of training"),
    ("checkpoints/best_model.pt", "you (the user guide's path: copy a run's best_model.pt there)"),
    ("data/06_models/model.pt", "the Kedro train pipeline (kedro run, make demo, make repro)"),
)
#: the training logs (``metrics.csv`` of the td-models Trainer)
LOG_LOCATIONS = (
    ("outputs/*/metrics.csv", "examples/training_example.py --output-dir outputs/NAME (default outputs/training)"),
    ("data/06_models/metrics.csv", "the Kedro train pipeline (kedro run, make demo, make repro)"),
)
#: folders of generated CIFs
GENERATION_LOCATIONS = (
    ("validation_results/samples", "scripts/test_generation_quality.py (its default --output-dir)"),
    ("*/samples", "scripts/test_generation_quality.py --output-dir DIR"),
    ("data/07_model_output/candidates", "the Kedro generate pipeline (kedro run, make demo)"),
)
TRAIN_HINT = (
    "train one with `python examples/training_example.py --create-config && python examples/training_example.py "
    "--config training_config.json` (writes outputs/training/best_model.pt) or `kedro run` (writes "
    "data/06_models/model.pt)"
)


def _when(mtime: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(mtime))


def _found(locations: Sequence[tuple[str, str]], base: Path, want_dir: bool = False) -> list[tuple[float, Path, str]]:
    """``(mtime, path, what wrote it)`` of every existing match of ``locations`` under ``base``, newest first."""
    seen: dict[Path, tuple[float, Path, str]] = {}
    for pattern, what in locations:
        for path in base.glob(pattern):
            ok = path.is_dir() if want_dir else path.is_file()
            if ok and path not in seen:
                seen[path] = (path.stat().st_mtime, path, what)
    return sorted(seen.values(), key=lambda t: (-t[0], str(t[1])))


def display_path(path: Path, base: Path | None = None) -> str:
    """``path`` relative to ``base`` (the working folder) where it lies below it, for messages."""
    base = Path.cwd() if base is None else base
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def _places(locations: Sequence[tuple[str, str]]) -> str:
    return "; ".join(f"{pattern}, written by {what}" for pattern, what in locations)


def trained_models(base: Path | None = None) -> list[tuple[float, Path, str]]:
    """The model files training wrote under ``base`` (the working folder), newest run first.

    One per training run: a run folder's ``best_model.pt`` (best by validation) when it has one, else its
    ``final_model.pt``; a run counts as new as the newest of its two files. Then the user guide's
    ``checkpoints/best_model.pt`` and the Kedro pipeline's ``data/06_models/model.pt`` where they exist.
    """
    base = Path.cwd() if base is None else base
    runs: dict[Path, list[tuple[float, Path, str]]] = {}
    for found in _found(MODEL_LOCATIONS, base):
        runs.setdefault(found[1].parent, []).append(found)
    out = []
    for files in runs.values():
        best = [f for f in files if f[1].name == "best_model.pt"]
        newest = max(f[0] for f in files)
        chosen = best[0] if best else files[0]
        out.append((newest, chosen[1], chosen[2]))
    return sorted(out, key=lambda t: (-t[0], str(t[1])))


def resolve_model_path(given: str | None, base: Path | None = None) -> tuple[Path, str]:
    """``(model file, how it was chosen)``: ``given`` when set (a folder: its best, final or Kedro model), else
    the newest model training wrote (:func:`trained_models`). A ScriptError lists where it looked."""
    base = Path.cwd() if base is None else base
    found = trained_models(base)
    listing = ", ".join(display_path(p, base) for _, p, _ in found[:5])
    if given is not None:
        path = Path(given)
        if path.is_dir():
            for folder in (path, path.parent) if path.name == "checkpoints" else (path,):
                for name in ("best_model.pt", "final_model.pt", "model.pt"):
                    if (folder / name).is_file():
                        return folder / name, f"{name} of the folder {given}"
            raise ScriptError(
                f"--model-path {given!r} is a folder without best_model.pt, final_model.pt or model.pt; "
                + (f"models found here: {listing}" if found else TRAIN_HINT)
            )
        if not path.exists():
            where = (
                f"models found here (newest first): {listing}; pass one of them, or leave out --model-path for "
                "the newest"
                if found
                else f"none found under {str(base)!r} ({_places(MODEL_LOCATIONS)}); {TRAIN_HINT}"
            )
            raise ScriptError(
                f"model file {given!r} does not exist. Training writes OUTPUT_DIR/best_model.pt (best by validation) "
                f"and OUTPUT_DIR/final_model.pt (examples/training_example.py, OUTPUT_DIR outputs/training by "
                f"default) or data/06_models/model.pt (kedro run); {where}"
            )
        return path, "--model-path"
    if not found:
        raise ScriptError(
            f"no --model-path given and no trained model found under {str(base)!r}; looked for "
            f"{_places(MODEL_LOCATIONS)}; {TRAIN_HINT}"
        )
    mtime, path, what = found[0]
    how = f"the newest trained model found, written by {what} at {_when(mtime)}"
    if len(found) > 1:
        how += f"; also found: {', '.join(display_path(p, base) for _, p, _ in found[1:4])}"
    return path, how


def resolve_log_path(given: str | None, base: Path | None = None) -> tuple[Path, str]:
    """``(metrics.csv, how it was chosen)``: in or below ``given`` (newest there), or the newest training log
    under ``base``; a ScriptError lists where training writes its logs."""
    base = Path.cwd() if base is None else base
    where = f"training writes its log (metrics.csv) to {_places(LOG_LOCATIONS)}"
    found = _found(LOG_LOCATIONS, base)
    listing = ", ".join(display_path(p.parent, base) + "/" for _, p, _ in found[:5])
    if given is None:
        if not found:
            raise ScriptError(f"no --log-dir given and no training log found under {str(base)!r}: {where}")
        mtime, path, what = found[0]
        return path, f"the newest training log, written by {what} at {_when(mtime)}"
    path = Path(given)
    if path.is_file():
        return path, "--log-dir"
    if not path.exists():
        hint = f"logs found here: {listing}; pass one, or leave out --log-dir for the newest" if found else TRAIN_HINT
        raise ScriptError(f"log directory {given!r} does not exist; {where}. {hint[0].upper()}{hint[1:]}")
    logs = sorted(path.rglob("metrics.csv"), key=lambda p: (p.stat().st_mtime, str(p)))
    if not logs:
        raise ScriptError(f"no metrics.csv in {given!r} or below; {where}")
    return logs[-1], f"the newest metrics.csv in {given}" if len(logs) > 1 else "--log-dir"


def has_cifs(folder: Path) -> bool:
    """``folder`` holds a CIF file (in it or below, not in hidden folders), as :func:`load_folder` reads them."""
    return folder.is_dir() and any(
        not any(s.startswith(".") for s in p.relative_to(folder).parts) for p in folder.rglob("*.cif")
    )


def resolve_generation_dir(base: Path | None = None) -> tuple[Path, str]:
    """``(folder of generated CIFs, how it was chosen)``: the newest generation under ``base``."""
    base = Path.cwd() if base is None else base
    found = [f for f in _found(GENERATION_LOCATIONS, base, want_dir=True) if has_cifs(f[1])]
    if not found:
        raise ScriptError(
            f"no generated crystals found under {str(base)!r}; they are written to {_places(GENERATION_LOCATIONS)}. "
            "Run `python scripts/test_generation_quality.py` or `kedro run` "
            "first, or pass --input-dir"
        )
    mtime, path, what = found[0]
    return path, f"the newest generated crystals, written by {what} at {_when(mtime)}"


# ------------------------------------------------------------------------------------ long work, with bars
class StepProgress:
    """A ``progress(done, total)`` callback drawing a tqdm bar: td-models' ``sample(progress=...)`` calls it after
    each reverse step of each batch, td-data's ``label_records(progress=...)`` after each crystal."""

    def __init__(self, desc: str, disable: bool = False, unit: str = "it"):
        self.desc, self.disable, self.unit, self.bar, self.calls = desc, disable, unit, None, []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))
        if self.disable:
            return
        if self.bar is None:
            self.bar = progress(None, total=total, desc=self.desc)
            if hasattr(self.bar, "unit"):
                self.bar.unit = self.unit
        if hasattr(self.bar, "update"):
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None and hasattr(self.bar, "close"):
            self.bar.close()
        self.bar = None


def default_steps(model: Any) -> int:
    """The reverse steps ``model.sample`` takes without ``steps``: ``model_config.sampling_steps``, else the chain."""
    return int(getattr(model.config.model_config, "sampling_steps", None) or model.num_steps)


def sample_with_progress(model: Any, n: int, *, disable: bool = False, **options: Any) -> list[dict[str, Any]]:
    """``model.sample(n, **options)`` with a bar over the reverse steps of all its batches (td-models reports
    each step to a callback); the crystals are those of the same call without a bar."""
    bar = StepProgress(f"sampling {n} crystals (reverse steps x batches)", disable=disable, unit="step")
    try:
        return model.sample(n, progress=bar, **options)
    finally:
        bar.close()


class StageBars:
    """A ``progress(stage, done, total)`` callback drawing one tqdm bar per stage (td-data's
    ``generation_metrics(progress=...)`` reports validity, fingerprints and metric steps this way)."""

    def __init__(self, disable: bool = False):
        self.disable = disable
        self.bars: dict[str, StepProgress] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.bars:
            for bar in self.bars.values():  # one stage at a time: the previous bar is finished
                bar.close()
            self.bars[stage] = StepProgress(stage, disable=self.disable)
        self.bars[stage](done, total)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def generation_metrics_with_progress(
    generated: Sequence[Any],
    reference: Sequence[Any],
    *,
    dataset: str,
    train: Sequence[Any] | None = None,
    cutoffs: tuple[float, float] | None = None,
    n_jobs: int = 1,
    disable: bool = False,
) -> dict[str, Any]:
    """``td_data.metrics.generation_metrics`` with a progress bar per stage (the same numbers); its input
    errors become a :class:`ScriptError`."""
    from td_data.exceptions import TDDataError
    from td_data.metrics import generation_metrics

    bars = StageBars(disable=disable)
    try:
        return generation_metrics(list(generated), list(reference), dataset=dataset, train=train, cutoffs=cutoffs,
                                  n_jobs=n_jobs, progress=bars)  # fmt: skip
    except TDDataError as err:
        raise ScriptError(str(err)) from err
    finally:
        bars.close()


# ------------------------------------------------------------------------------------ files, atomically
def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file in ``path``'s folder, fsync it, rename it over ``path`` (user's umask)."""
    from td_physics.files import write_bytes_atomic  # the project's one atomic writer; imported when needed

    return write_bytes_atomic(path, data)
