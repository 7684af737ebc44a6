"""The Kedro project's shape: each option's default lives in its dataclass and ``conf/base`` agrees with it."""

from __future__ import annotations

import ast
import dataclasses
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines._options import OptionsBlock
from pipelines.pipeline_registry import OUTSIDE_DEFAULT, PIPELINE_ORDER

ROOT = Path(__file__).resolve().parents[1]
#: Pipelines made of the other pipelines' nodes, with those they import: active learning runs generate, relax,
#: label, evaluate's DFT verification and train in rounds (importing the nodes, not copying them); the benchmarks
#: train with the train node, sample with the generate node and score with the evaluate node.
COMPOSED = {
    "active_learning": {"generate", "relax", "label", "evaluate", "train"},
    "benchmark": {"generate", "train", "evaluate"},
}
#: conf/base blocks that are td-models' configuration (the user guide's), validated by td_models itself.
TD_MODELS_BLOCKS = ("model_config", "physics_config", "training_config")
#: (block, field) whose conf/base value differs from the dataclass default on purpose, with the reason.
#: Empty: conf/base is the code's defaults, written out.
DELIBERATE_DIFFERENCES: dict[tuple[str, str], str] = {}


def _base_parameters() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted((ROOT / "conf" / "base").glob("parameters*.yml")):
        merged.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return merged


def _option_blocks() -> dict[str, type[OptionsBlock]]:
    """``{block: class}`` for every top-level options dataclass of the project's pipelines and shared config."""
    modules = ["pipelines.config", *(f"pipelines.{name}.nodes" for name in PIPELINE_ORDER + OUTSIDE_DEFAULT)]
    for module in modules:
        importlib.import_module(module)
    found, todo = {}, list(OptionsBlock.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__ in modules and "." not in cls.block:
            found[cls.block] = cls
    return found


def _differences(from_yaml: Any, default: Any, prefix: str) -> dict[str, tuple[Any, Any]]:
    """``{dotted field: (yaml value, default)}`` where they differ, nested option blocks field by field."""
    found = {}
    for f in dataclasses.fields(default):
        a, b = getattr(from_yaml, f.name), getattr(default, f.name)
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            found.update(_differences(a, b, f"{prefix}.{f.name}"))
        elif a != b:
            found[f"{prefix}.{f.name}"] = (a, b)
    return found


def test_every_conf_base_block_has_one_home():
    blocks, params = _option_blocks(), _base_parameters()
    assert {"data_config", "label_options", "split_options", "train_options", "generate_options",
            "relax_options", "evaluate_options", "verify_options"} <= set(blocks)  # fmt: skip
    assert set(params) == set(blocks) | set(TD_MODELS_BLOCKS), "a conf/base block without a dataclass, or the reverse"


@pytest.mark.parametrize("block", sorted(_option_blocks()))
def test_conf_base_writes_out_the_dataclass_defaults(block):
    """No unknown key, every option written out, and each value the dataclass default (or a listed difference)."""
    cls, values = _option_blocks()[block], _base_parameters()[block]
    from_yaml = cls.from_dict(values)  # refuses unknown keys
    assert set(values) == {f.name for f in dataclasses.fields(cls)}, f"{block}: conf/base should show every option"
    differ = _differences(from_yaml, cls(), block)
    listed = {f"{b}.{name}" for b, name in DELIBERATE_DIFFERENCES if b == block}
    assert set(differ) == listed, f"{block}: conf/base differs from the code default in {differ}"


def test_td_models_blocks_are_valid_configuration():
    from pipelines.train.nodes import experiment_config

    params = _base_parameters()
    config = experiment_config(*(params[name] for name in TD_MODELS_BLOCKS))
    assert config.model_config.hidden_dim == params["model_config"]["hidden_dim"]


def test_a_difference_from_the_default_is_seen():
    cls = _option_blocks()["evaluate_options"]
    assert _differences(cls.from_dict({"max_relabel": 24}), cls(), "evaluate_options") == {
        "evaluate_options.max_relabel": (24, 6)
    }


def _pipeline_imports(source: str, own: str, folders: set[str]) -> set[str]:
    """The other pipeline folders that ``source`` (a module of ``pipelines/<own>/``) imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from .. import x inside pipelines/<own>/ reaches pipelines.<x>
                base = ".".join(["pipelines", own][: max(0, 2 - node.level + 1)] + ([base] if base else []))
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for name in names:
            parts = name.split(".")
            if len(parts) > 1 and parts[0] == "pipelines" and parts[1] in folders and parts[1] != own:
                found.add(parts[1])
    return found


def test_no_pipeline_imports_another():
    """Shared configuration lives in pipelines/config.py (or _options, exceptions, datasets), never in a pipeline."""
    folders = {p.parent.name for p in (ROOT / "pipelines").glob("*/__init__.py")}
    assert set(PIPELINE_ORDER) <= folders
    crossing = {}
    for folder in sorted(folders):
        for path in sorted((ROOT / "pipelines" / folder).rglob("*.py")):
            others = _pipeline_imports(path.read_text(encoding="utf-8"), folder, folders) - COMPOSED.get(folder, set())
            if others:
                crossing[path.relative_to(ROOT).as_posix()] = sorted(others)
    assert crossing == {}, f"pipelines importing others (move what they share to pipelines/config.py): {crossing}"


def test_the_import_check_sees_imports_inside_functions_and_relative_ones():
    folders = {"ingest", "label", "evaluate"}
    source = "def f():\n    from pipelines.label.nodes import LabelConfig\nfrom ..ingest import nodes\n"
    assert _pipeline_imports(source, "evaluate", folders) == {"label", "ingest"}
    assert _pipeline_imports("import pipelines.config\nfrom . import nodes\n", "evaluate", folders) == set()
