"""Shared helpers of the evaluation scripts (``test_generation_quality.py``, ``test_physics_consistency.py``,
``plot_training_curves.py``, ``analyze_generations.py``): loading models and crystals with clear errors,
quiet libraries, progress bars, CIF and figure output.

The scripts put the repository root on ``sys.path`` so that the pipelines' nodes (``pipelines.evaluate``,
``pipelines.report``, ``pipelines.generate``) are reused rather than copied.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: ``--dataset`` names of the scripts -> td-data's coverage-cutoff names
DATASETS = {"mp20": "mp_20", "perov5": "perov_5", "carbon24": "carbon_24"}
#: the test split the data pipeline writes (``kedro run``), the default reference set
DEFAULT_REFERENCE = ROOT / "data" / "05_model_input" / "test.h5"

logger = logging.getLogger("td_scripts")


class ScriptError(Exception):
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


def load_records(path: str | Path, what: str, trusted: bool = False, limit: int | None = None) -> list:
    """Crystals from a td-data store, CIF folder, CSV/JSON or (with ``trusted``) pickle; quarantined ones logged."""
    from td_data import load_materials_database

    p = require_file(path, what)
    if p.suffix.lower() in (".pkl", ".pickle") and not trusted:
        raise ScriptError(
            f"{what} {str(p)!r} is a pickle: unpickling can run any code, so pass --trusted only for files you made"
        )
    result = load_materials_database(p, trusted=trusted)
    for q in result.quarantined[:5]:
        logger.warning("skipped %s: %s", q.source, q.reason)
    if not result.records:
        raise ScriptError(f"{what} {str(p)!r} holds no readable crystal ({len(result.quarantined)} quarantined)")
    records = list(result.records)
    return records[:limit] if limit else records


def predict_samples(samples: Sequence[dict[str, Any]], model: Any) -> list[dict[str, Any]]:
    """``samples`` with ``"predicted"`` added: the model's band gap, formation energy and class of each crystal
    (``None`` for a sample too degenerate to featurise). Runs where the model is, GPU included; the result can
    be saved with ``td_models.save_crystals`` and turned into records elsewhere (:func:`samples_to_records`)."""
    from td_models import crystal_item
    from td_models.config import TOPO_CLASSES
    from td_models.exceptions import BatchError

    usable = []
    for i, s in enumerate(samples):
        try:
            crystal_item(s["lattice"], s["frac_coords"], s["atomic_numbers"], num_species=model.num_species)
        except BatchError:
            continue
        usable.append(i)
    predicted: dict[int, dict[str, Any]] = {}
    if usable:
        preds = model.predict_properties([samples[i] for i in usable])
        for j, i in enumerate(usable):
            klass = preds.topo_class[j]
            predicted[i] = {
                "band_gap": float(preds.band_gap[j]),
                "formation_energy": float(preds.formation_energy[j]),
                "topo_class": klass,
                "topo_class_probability": float(preds.topo_probabilities[j][TOPO_CLASSES.index(klass)]),
            }
    empty = {"band_gap": None, "formation_energy": None, "topo_class": None, "topo_class_probability": None}
    return [{**s, "predicted": predicted.get(i, empty)} for i, s in enumerate(samples)]


def samples_to_records(samples: Sequence[dict[str, Any]], model: Any = None, prefix: str = "gen") -> tuple[list, list]:
    """``(records with predicted properties, rejected)`` from ``model.sample`` output (as the generate pipeline).

    The predictions come from ``model`` (:func:`predict_samples`), or, with ``model=None``, from the samples'
    own ``"predicted"`` entries (samples predicted on another machine and read with ``td_models.load_crystals``).
    """
    from td_data import CrystalRecord

    if model is not None:
        samples = predict_samples(samples, model)
    records, rejected = [], []
    for i, s in enumerate(samples):
        try:
            rec = CrystalRecord(s["lattice"], s["frac_coords"] % 1.0, s["atomic_numbers"], id=f"{prefix}-{i:04d}")
        except ValueError as err:
            rejected.append({"index": i, "reason": str(err)})
            continue
        pred = s.get("predicted") or {}
        properties = {f"predicted_{k}": pred[k] for k in ("band_gap", "formation_energy") if pred.get(k) is not None}
        labels = {}
        if pred.get("topo_class") is not None:
            labels = {"predicted_class": pred["topo_class"],
                      "predicted_class_probability": pred["topo_class_probability"]}  # fmt: skip
        records.append(rec.replace(properties=properties, labels=labels, source="generated:td-models"))
    return records, rejected


def progress(iterable: Iterable, total: int | None = None, desc: str = "", disable: bool = False):
    """A tqdm bar on stderr (plain iteration when tqdm is missing)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dev requirement
        return iterable
    return tqdm(iterable, total=total, desc=desc, disable=disable, leave=False)


def write_crystal_file(path: Path, crystals: Sequence[dict[str, Any]], metadata: dict[str, Any]) -> Path:
    """``td_models.save_crystals`` with JSON-safe metadata (NaN -> None); a ScriptError when it cannot be written.
    The benchmarks' stages hand crystals to each other in these files (a GPU node needs only td-models)."""
    from td_models import save_crystals
    from td_models.exceptions import TDModelsError

    try:
        return save_crystals(path, crystals, metadata=to_jsonable(metadata))
    except TDModelsError as err:
        raise ScriptError(str(err)) from err


def read_crystal_file(path: Path, hint: str = "") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(crystals, metadata)`` of a ``td_models.save_crystals`` file; a one-line ScriptError (ending in ``hint``)
    when it cannot be read."""
    from td_models import load_crystals
    from td_models.exceptions import TDModelsError

    try:
        return load_crystals(path)
    except TDModelsError as err:
        raise ScriptError(f"{err}{hint}") from err


def write_cifs(records: Sequence[Any], folder: Path) -> Path:
    """One CIF per record plus ``index.json``/``index.csv`` (the pipeline's :class:`CifFolderDataset`)."""
    from pipelines.datasets import CifFolderDataset

    CifFolderDataset(path=folder).save(list(records))
    return folder


def save_figure(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def to_jsonable(value: Any) -> Any:
    """numpy scalars and arrays, tuples and NaN made JSON-safe (NaN -> None)."""
    import math

    import numpy as np

    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(data: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(data), indent=1) + "\n", encoding="utf-8")
    return path
