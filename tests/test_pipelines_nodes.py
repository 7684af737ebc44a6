"""Each pipeline node on small in-memory data (no Kedro, no files but the user folders they read)."""

from __future__ import annotations

import json
import re
from copy import deepcopy

import matplotlib
import numpy as np
import pandas as pd
import pytest

from pipelines.config import LABELLER_ELEMENTS
from pipelines.datasets import CifFolderDataset, CrystalFilesDataset
from pipelines.evaluate.nodes import composition_statistics, physics_consistency
from pipelines.exceptions import ParameterError
from pipelines.generate.nodes import GenerateOptions, candidate_records, generate_candidates, sample_candidates
from pipelines.ingest.nodes import ingest_crystals
from pipelines.label.nodes import label_crystals
from pipelines.report.nodes import (
    plot_best_band_structures,
    plot_class_distribution,
    plot_property_histograms,
    plot_training_curves,
    write_report,
)
from pipelines.split.nodes import split_crystals
from pipelines.train.nodes import train_model

matplotlib.use("Agg")

TINY_MODEL = {"hidden_dim": 16, "num_layers": 1, "num_heads": 2, "num_steps": 20, "max_atoms": 20}
TINY_TRAINING = {"batch_size": 8, "max_epochs": 1, "warmup_epochs": 0, "checkpoint_every": 1, "keep_checkpoints": 1}
PHYSICS = {"topological_class": "TI", "band_gap_range": [0.1, 0.5]}
LABEL = {"max_records": 3, "max_atoms": 4, "workers": 1}


@pytest.fixture(scope="module")
def raw():
    records, quarantine = ingest_crystals({"source": "synthetic", "n_samples": 24, "seed": 1})
    return records, quarantine


@pytest.fixture(scope="module")
def labelled(raw):
    return label_crystals(raw[0], LABEL)


@pytest.fixture(scope="module")
def trained(labelled, tmp_path_factory):
    _, train, val, _ = split_crystals(labelled[0], {"fractions": [0.7, 0.15, 0.15]})
    options = {"num_threads": 1, "run_dir": str(tmp_path_factory.mktemp("train") / "run")}
    return train_model(train, val, TINY_MODEL, PHYSICS, TINY_TRAINING, options)


@pytest.fixture(scope="module")
def candidates(trained):
    return generate_candidates(trained[0], PHYSICS, {"n_candidates": 6, "steps": 5, "seed": 0})


def test_ingest_synthetic_uses_labeller_elements(raw):
    records, quarantine = raw
    assert len(records) == 24 and quarantine["counts"] == {"kept": 24, "quarantined": 0}
    assert all(set(r.species) <= set(LABELLER_ELEMENTS) and r.num_atoms <= 20 for r in records)


def test_ingest_cif_folder_quarantines_bad_files_and_keeps_good(tmp_path, raw):
    good = raw[0][:5]
    CifFolderDataset(path=tmp_path / "mine").save(good)
    (tmp_path / "mine" / "index.json").unlink()  # a user's folder has CIFs only
    (tmp_path / "mine" / "index.csv").unlink()
    (tmp_path / "mine" / "broken.cif").write_text("data_broken\n_cell_length_a 3\n", encoding="utf-8")
    (tmp_path / "mine" / "notes.txt").write_text("hello", encoding="utf-8")
    config = {"source": "cif_folder", "path": str(tmp_path / "mine"), "elements": None}
    records, quarantine = ingest_crystals(config, CrystalFilesDataset.from_data_config(config).load())
    assert len(records) == 5
    assert sorted(e["source"].rsplit("/", 1)[-1] for e in quarantine["entries"]) == ["broken.cif", "notes.txt"]
    assert all(e["reason"] for e in quarantine["entries"])


def test_ingest_rejects_bad_config():
    with pytest.raises(ValueError, match="data_config.source"):
        ingest_crystals({"source": "ftp"})
    with pytest.raises(ValueError, match="data_config.path"):
        ingest_crystals({"source": "cif_folder"})


def test_label_labels_the_smallest_cells_and_keeps_the_rest(raw, labelled):
    records, summary = labelled
    assert [r.id for r in records] == [r.id for r in raw[0]]
    assert summary["n_attempted"] == 3 and summary["n_labelled"] + summary["n_failed"] == 3
    assert sum("topo_class" in r.labels for r in records) == summary["n_labelled"]
    assert not any("topo_class" in r.labels for r in raw[0])  # inputs untouched


def test_split_is_deterministic_and_complete(labelled):
    a = split_crystals(labelled[0], {"method": "composition", "seed": 3})
    b = split_crystals(labelled[0], {"method": "composition", "seed": 3})
    assert a[0] == b[0]
    ids = [r.id for part in a[1:] for r in part]
    assert sorted(ids) == sorted(r.id for r in labelled[0])


def test_train_returns_model_metrics_and_summary(trained):
    model, metrics, summary = trained
    assert isinstance(metrics, pd.DataFrame) and len(metrics) > 0
    assert summary["epochs_completed"] == 1 and model.config.model_config.hidden_dim == 16


def test_train_returns_what_the_trainer_wrote_and_restores_torch_threads(labelled, tmp_path):
    import torch

    from td_models import TopologicalDiffusionModel

    _, train, val, _ = split_crystals(labelled[0], {"fractions": [0.7, 0.15, 0.15]})
    before = torch.get_num_threads()
    options = {"num_threads": 1 if before > 1 else 2, "run_dir": str(tmp_path / "run")}
    model, metrics, _ = train_model(train, val, TINY_MODEL, PHYSICS, TINY_TRAINING, options)
    assert torch.get_num_threads() == before
    pd.testing.assert_frame_equal(metrics, pd.read_csv(tmp_path / "run" / "metrics.csv"))
    on_disk = TopologicalDiffusionModel.load(tmp_path / "run" / "final_model.pt").state_dict()
    assert set(on_disk) == set(model.state_dict())
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, on_disk[name], rtol=0, atol=0)


def test_generate_attaches_predictions(candidates):
    records, summary = candidates
    assert summary["n_requested"] == 6 and len(records) == summary["n_records"]
    for r in records:
        assert r.labels["requested_class"] == "z2_ti"
        assert {"predicted_band_gap", "predicted_formation_energy"} <= set(r.properties)


def _spy_on_sample(model, monkeypatch, record=lambda kwargs: kwargs) -> list:
    """The list that gets ``record(keywords)`` of each ``model.sample`` call (the real sampler still runs)."""
    real_sample, seen = model.sample, []

    def spy(*args, **kwargs):
        seen.append(record(kwargs))
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(model, "sample", spy)
    return seen


def test_generate_bounds_torch_threads_and_restores_them(trained, monkeypatch):
    import torch

    model = trained[0]
    seen = _spy_on_sample(model, monkeypatch, lambda kwargs: torch.get_num_threads())
    before = torch.get_num_threads()
    generate_candidates(model, PHYSICS, {"n_candidates": 2, "steps": 2, "seed": 1, "num_threads": 1})
    assert seen == [1] and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="generate_options.num_threads must be null or an integer >= 1, got 0"):
        generate_candidates(model, PHYSICS, {"n_candidates": 2, "num_threads": 0})


def test_generate_passes_corrector_steps_to_the_sampler(trained, monkeypatch):
    model = trained[0]
    seen = _spy_on_sample(model, monkeypatch, lambda kwargs: kwargs.get("corrector_steps"))
    _, summary = generate_candidates(model, PHYSICS, {"n_candidates": 2, "steps": 2, "corrector_steps": 2})
    assert seen == [2] and summary["corrector_steps"] == 2
    with pytest.raises(ValueError, match="generate_options.corrector_steps must be an integer >= 0, got -1"):
        generate_candidates(model, PHYSICS, {"n_candidates": 2, "corrector_steps": -1})


def test_generate_is_two_nodes_and_its_sampler_settings_reach_the_sampler(trained, monkeypatch):
    """sample_candidates (the model's half, its output a crystal file's contents) then candidate_records; the
    batch size, progress bar and volume guidance reach model.sample, the seed is recorded; a model file without
    element volumes is refused with the way out, and a CUDA device that torch does not see by name."""
    import torch

    model = trained[0]
    options = {"n_candidates": 3, "steps": 2, "seed": 4, "batch_size": 2, "progress_bar": False}
    old = deepcopy(model)
    old.species_volume.zero_()  # a model file from before the element volumes were kept
    with pytest.raises(ParameterError, match=r"volume_guidance is 0.2, but this model file has no element volumes"):
        sample_candidates(old, PHYSICS, options)
    assert len(sample_candidates(old, PHYSICS, {**options, "volume_guidance": 0})[0]) == 3
    seen = _spy_on_sample(model, monkeypatch)
    samples, sampling = sample_candidates(model, PHYSICS, options)
    assert (seen[0]["batch_size"], seen[0]["progress"], seen[0]["seed"], seen[0]["num_atoms"]) == (2, False, 4, None)
    assert (seen[0]["volume_guidance"], seen[0]["volume_tolerance"]) == (0.2, 1.25)  # the pipeline's defaults
    assert len(samples) == 3 and all("predicted" in s for s in samples)
    assert (sampling["seed"], sampling["batch_size"], sampling["device"], sampling["n_requested"]) == (4, 2, "cpu", 3)
    assert (sampling["volume_guidance"], sampling["volume_tolerance"]) == (0.2, 1.25)
    assert (seen[0]["covalent_guidance"], seen[0]["covalent_fraction"]) == (0.0, 0.75)  # off by default
    bonded = sample_candidates(model, PHYSICS, {**options, "covalent_guidance": 0.5, "covalent_fraction": 0.8})[1]
    assert (seen[1]["covalent_guidance"], seen[1]["covalent_fraction"]) == (0.5, 0.8)
    assert (bonded["covalent_guidance"], bonded["covalent_fraction"]) == (0.5, 0.8)
    assert seen[0]["class_counts"] is False and sampling["class_counts"] is False
    by_class, by_class_options = old, {**options, "volume_guidance": 0, "class_counts": True}  # old: not spied on
    by_class.class_element_count_weights.zero_()  # no z2_ti training crystal
    with pytest.raises(ParameterError, match="class_counts: the model has no training crystal labelled 'z2_ti'"):
        sample_candidates(by_class, PHYSICS, by_class_options)
    by_class.class_element_count_weights[1, 3, 2] = 1.0  # one z2_ti crystal of 3 atoms, 2 elements
    few, few_sampling = sample_candidates(by_class, PHYSICS, by_class_options)
    assert [len(s["atomic_numbers"]) for s in few] == [3, 3, 3] and few_sampling["class_counts"] is True
    records, summary = candidate_records((samples, sampling))
    assert summary == {**sampling, "n_records": len(records), "rejected": summary["rejected"]}
    assert len(records) + len(summary["rejected"]) == 3 and all(r.id.startswith("cand-") for r in records)
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="generate_options.device is 'cuda', but torch .* sees no CUDA"):
            sample_candidates(model, PHYSICS, {**options, "device": "cuda"})
    refusals = (
        ({"batch_size": 0}, "generate_options.batch_size must be an integer >= 1, got 0"),
        ({"device": "tpu"}, "generate_options.device must be one of ['cpu', 'cuda'], got 'tpu'"),
        ({"progress_bar": "yes"}, "generate_options.progress_bar must be true or false"),
        ({"volume_guidance": -1}, "generate_options.volume_guidance must be a number >= 0 (0: off)"),
        ({"volume_tolerance": 1.0}, "generate_options.volume_tolerance must be a number > 1, got 1.0"),
        ({"class_counts": 1}, "generate_options.class_counts must be true or false, got 1"),
        ({"covalent_guidance": -0.5}, "generate_options.covalent_guidance must be a number >= 0 (0: off), got -0.5"),
        ({"covalent_fraction": 2}, "generate_options.covalent_fraction must be a number in (0, 1.5]"),
        (
            {"class_counts": True, "conditioned": False},
            "class_counts draws the cell sizes from the training crystals of the asked class, but conditioned is false",
        ),
    )
    for bad, message in refusals:
        with pytest.raises(ParameterError, match=re.escape(message)):
            GenerateOptions.from_dict(bad)


def test_generate_guides_with_the_runs_physics_config_not_the_models(trained, monkeypatch):
    model = trained[0]
    assert model.config.physics_config.guidance_scale == 2.0  # trained with PHYSICS: the defaults
    seen = _spy_on_sample(
        model, monkeypatch, lambda kwargs: (kwargs.get("guidance_scale"), kwargs.get("physics_guidance"))
    )
    options = {"n_candidates": 3, "steps": 4, "seed": 0}
    plain, summary = generate_candidates(model, {**PHYSICS, "guidance_scale": 1.0, "constraint_weight": 3.0}, options)
    assert seen == [(1.0, pytest.approx(0.03))]
    assert summary["guidance_scale"] == 1.0 and summary["physics_guidance"] == pytest.approx(0.03)
    # the setting acts (a one-epoch model's two classifier-free branches still agree; the penalty step does not)
    guided, _ = generate_candidates(model, {**PHYSICS, "guidance_scale": 4.0, "constraint_weight": 300.0}, options)
    assert seen[1] == (4.0, pytest.approx(3.0))
    assert not all(np.allclose(a.lattice, b.lattice) for a, b in zip(plain, guided))


def test_generate_without_a_condition_asks_for_nothing_and_the_report_says_so(raw, labelled, trained, monkeypatch):
    """generate_options.conditioned false: no class, no band gap, no classifier-free guidance (the unconditioned
    reference arm); the candidates carry no requested class, evaluate counts no match and the report says why."""
    model = trained[0]
    seen = _spy_on_sample(model, monkeypatch)
    options = {"n_candidates": 3, "steps": 4, "seed": 0, "conditioned": False}
    records, summary = generate_candidates(model, PHYSICS, options)
    assert "topo_class" not in seen[0] and "band_gap_range" not in seen[0] and seen[0]["guidance_scale"] == 1.0
    assert summary["conditioned"] is False and summary["requested_class"] is None
    assert summary["band_gap_range"] is None
    assert all(r.labels.get("requested_class") is None and "target_band_gap" not in r.properties for r in records)
    conditioned, _ = generate_candidates(model, PHYSICS, {**options, "conditioned": True})
    assert seen[1]["topo_class"] == PHYSICS["topological_class"] and conditioned[0].labels["requested_class"]
    with pytest.raises(ParameterError, match="generate_options.conditioned must be true or false, got 'no'"):
        GenerateOptions.from_dict({"conditioned": "no"})

    valid = [r for r in labelled[0] if "topo_class" in r.labels][:2]
    posed = [r.replace(labels={"requested_class": None, "predicted_class": "trivial"}) for r in valid]
    checked, report, table = physics_consistency(posed, LABEL, {"max_relabel": 4, "max_relabel_atoms": 20})
    assert report["requested_class"] is None and report["n_checked"] == len(posed)
    assert report["n_as_requested"] is None and report["share_as_requested"] is None
    assert plot_class_distribution(labelled[0], checked).axes[0].get_title().endswith("none, unconditioned)")
    relax_summary = {"note": "not relaxed: relax_options.enabled is false", "stability_threshold": None,
                     "n_candidates": len(checked), "n_passed_stability": len(checked), "hull": "estimate"}  # fmt: skip
    verify_summary = {"enabled": False, "reason": "verification disabled (verify_options.enabled is false)"}
    text = write_report(raw[1], labelled[1], split_crystals(labelled[0], {})[0], trained[2], summary,
                        {"valid": 1.0}, report, table, relax_summary, verify_summary, [])  # fmt: skip
    assert "generated without a condition (`generate_options.conditioned: false`" in text
    assert "| recomputed class = requested | no class requested (unconditioned generation) |" in text


def test_physics_consistency_and_report(raw, labelled, trained, candidates):
    cands = candidates[0]
    valid = [r for r in labelled[0] if "topo_class" in r.labels][:2]  # labellable crystals posing as candidates
    posed = [r.replace(labels={"requested_class": "trivial", "predicted_class": "trivial"}) for r in valid]
    checked, report, table = physics_consistency(cands + posed, LABEL, {"max_relabel": 4, "max_relabel_atoms": 20})
    assert valid and len(checked) == len(table) == len(cands) + len(valid)
    assert report["n_checked"] >= 1 and report["share_as_requested"] is not None
    assert all(r.labels["recomputed_class"] != "not_checked" or r.labels["not_checked_reason"] for r in checked)
    figs = [
        plot_training_curves(trained[1]),
        plot_class_distribution(labelled[0], checked),
        plot_property_histograms(labelled[0], cands),
        plot_best_band_structures(checked, LABEL),
    ]
    assert all(f.axes for f in figs)
    relax_summary = {
        "note": "not relaxed: relax_options.enabled is false",
        "stability_threshold": None,
        "n_candidates": len(checked),
        "n_passed_stability": len(checked),
        "hull": "estimate",
    }
    verify_summary = {"enabled": False, "reason": "verification disabled (verify_options.enabled is false)"}
    composition = composition_statistics(cands, labelled[0])
    text = write_report(raw[1], labelled[1], split_crystals(labelled[0], {})[0], trained[2], candidates[1],
                        {"valid": 0.5, "novelty": 1.0, "composition": composition}, report, table, relax_summary,
                        verify_summary, [])  # fmt: skip
    assert text.startswith("# topological-diffusion") and "## Limits" in text and "| valid | 0.5 |" in text
    assert f"| composition of all {len(cands)} candidates vs the training split | W(#elements) " in text
    assert f"at most {composition['max_num_elems']} elements per cell" in text
    assert "not relaxed: relax_options.enabled is false" in text and "not run (disabled)" in text


def test_report_limits_follow_the_runs_parameters_and_numbers():
    """The limits are sentences about this run: change a parameter or a measured number and the sentence changes."""
    from pipelines.report.nodes import limits_lines

    labeller = {"spin_orbit": True, "max_band_overlap": 0.5, "max_atoms": 6, "max_records": 40}
    training = {
        "num_parameters": 1234,
        "config": {"model_config": {"hidden_dim": 64, "num_layers": 2}},
        "epochs_completed": 40,
        "n_train": 20,
        "n_train_with_band_gap": 0,
        "n_train_with_formation_energy": 0,
    }
    base = {
        "ingest_quarantine": {"source": "synthetic generator (seed 0, 30 crystals)", "data_source": "synthetic"},
        "label_summary": {"options": labeller},
        "split": {"test": ["a", "b", "c"]},
        "training_summary": training,
        "generation_summary": {"band_gap_range": [0.1, 0.5]},
        "generation_metrics": {"coverage_dataset": "mp_20"},
        "physics_consistency": {
            "n_checked": 2,
            "n_candidates": 4,
            "relabel_limits": {"max_relabel": 6, "max_relabel_atoms": 4},
        },
        "relax_summary": {"hull": "estimate"},
        "verify_summary": {},
    }

    def text(**changes):
        return "\n".join(limits_lines({**base, **changes}))

    first = text()
    assert "with the mp_20 coverage cutoffs" in first and "test split (3 crystals)" in first
    assert "right for 23 of its 25 confident labels (92%)" in first and "hidden_dim 64, 2 layers" in first
    assert "not materials predictions" in first and "asking for 0.1-0.5 eV does not steer" in first
    assert "2 of 4 candidates were re-labelled (`evaluate_options.max_relabel` 6" in first and "LCAO" not in first
    mine = {"source": "cif_folder at mine", "data_source": "cif_folder"}
    with_gaps = {**training, "n_train_with_band_gap": 15, "n_train_with_formation_energy": 12}
    changed = text(
        generation_metrics={"coverage_dataset": "perov_5"},
        ingest_quarantine=mine,
        label_summary={"options": {**labeller, "max_band_overlap": 0.25}},
        training_summary=with_gaps,
    )
    assert "with the perov_5 coverage cutoffs" in changed and "mp_20" not in changed
    # the 0.25 eV row of td_physics/data/labeller_accuracy.json (scripts/labeller_accuracy.py --sweep)
    assert "right for 22 of its 25 confident labels (88%)" in changed and "92%" not in changed
    assert "not materials predictions" not in changed and "from cif_folder at mine" in changed
    assert "15 training crystals carry a band gap and 12 a formation energy" in changed and "steer" not in changed
    spin_off = text(label_summary={"options": {**labeller, "spin_orbit": False}})
    assert "not with this run's options" in spin_off and "confident labels (" not in spin_off
    dft = text(verify_summary={"n_verified": 1, "spin_orbit": True, "settings": {"basis": "sz", "xc": "LDA"}})
    assert "DFT here is LCAO (sz basis), LDA, non-self-consistent spin-orbit coupling" in dft


def test_nodes_do_not_import_kedro():
    """Every pipeline's nodes.py (found from this file, not the working folder) is free of kedro imports."""
    import ast
    from pathlib import Path

    from pipelines.pipeline_registry import PIPELINE_ORDER

    paths = sorted((Path(__file__).resolve().parents[1] / "pipelines").glob("*/nodes.py"))
    assert {p.parent.name for p in paths} >= set(PIPELINE_ORDER), paths
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {m for m in imported if m.split(".")[0] == "kedro"}, path


def _spy_trainer(monkeypatch) -> dict:
    """Replace the trainer train_model builds by one that records the items it is given."""
    import td_models.training

    seen: dict = {}

    class SpyTrainer(td_models.training.Trainer):
        def __init__(self, model, train_dataset, val_dataset=None, **kwargs):
            seen["train"], seen["val"] = list(train_dataset), list(val_dataset or [])
            super().__init__(model, train_dataset, val_dataset, **kwargs)

    monkeypatch.setattr(td_models.training, "Trainer", SpyTrainer)
    return seen


def test_train_augmentation_reaches_the_trainer_for_training_items_only(labelled, tmp_path, monkeypatch):
    import numpy as np

    from pipelines.train.nodes import record_to_item

    _, train, val, _ = split_crystals(labelled[0], {"fractions": [0.7, 0.15, 0.15]})
    seen = _spy_trainer(monkeypatch)
    options = {"run_dir": str(tmp_path / "run"), "augmentation": ["origin_shift", "permute"], "augmentation_copies": 2}
    _, _, summary = train_model(train, val, TINY_MODEL, PHYSICS, TINY_TRAINING, options)
    originals = [record_to_item(r, 100) for r in train]
    assert len(seen["train"]) == 3 * len(train) and summary["n_train_augmented"] == 2 * len(train)
    assert summary["augmentation"] == ["origin_shift", "permute"]
    for item, original in zip(seen["train"][: len(train)], originals):  # the originals stay, first
        np.testing.assert_array_equal(item["frac_coords"], original["frac_coords"])
    copies = seen["train"][len(train) :]
    for copy, original in zip(copies, originals + originals):  # same crystals, other coordinates
        assert sorted(copy["atomic_numbers"].tolist()) == sorted(original["atomic_numbers"].tolist())
        assert not np.allclose(np.sort(copy["frac_coords"], axis=0), np.sort(original["frac_coords"], axis=0))
    expected_val = [record_to_item(r, 100) for r in val]
    assert len(seen["val"]) == len(expected_val)
    for item, original in zip(seen["val"], expected_val):  # validation is never augmented
        np.testing.assert_array_equal(item["frac_coords"], original["frac_coords"])
        np.testing.assert_array_equal(item["lattice"], original["lattice"])


def test_train_refuses_an_unknown_augmentation_naming_the_allowed_ones(labelled, tmp_path):
    from pipelines.exceptions import ParameterError

    _, train, val, _ = split_crystals(labelled[0], {})
    options = {"run_dir": str(tmp_path / "run"), "augmentation": ["origin_shift", "mirror"]}
    with pytest.raises(ParameterError, match=r"unknown names \['mirror'\]; allowed: \[.*'origin_shift'.*'rotate'"):
        train_model(train, val, TINY_MODEL, PHYSICS, TINY_TRAINING, options)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="augmentation_copies must be an integer >= 1, got 0"):
        train_model(
            train, val, TINY_MODEL, PHYSICS, TINY_TRAINING, {**options, "augmentation": [], "augmentation_copies": 0}
        )


def test_train_resumes_the_same_run_and_starts_afresh_for_another(labelled, tmp_path, caplog):
    _, train, val, _ = split_crystals(labelled[0], {"fractions": [0.7, 0.15, 0.15]})
    options = {"run_dir": str(tmp_path / "run")}
    two = {**TINY_TRAINING, "max_epochs": 2}
    first = train_model(train, val, TINY_MODEL, PHYSICS, two, options)
    with caplog.at_level("INFO", logger="pipelines.train.nodes"):
        again = train_model(train, val, TINY_MODEL, PHYSICS, two, options)
    assert "resuming the same run" in caplog.text and "after epoch 2" in caplog.text
    assert again[2]["epochs_completed"] == 2 and again[2]["global_step"] == first[2]["global_step"]
    assert again[2]["last_losses"] == pytest.approx(first[2]["last_losses"], rel=1e-12)  # read from metrics.csv
    caplog.clear()
    with caplog.at_level("INFO", logger="pipelines.train.nodes"):
        other = train_model(train, val, TINY_MODEL, PHYSICS, {**two, "learning_rate": 0.01}, options)
    assert "starting afresh" in caplog.text and "config.training_config.learning_rate" in caplog.text
    assert "resuming the same run" not in caplog.text and other[2]["epochs_completed"] == 2
    assert other[1].loc[other[1]["kind"] == "epoch", "epoch"].tolist() == [1, 2]  # one run's rows, not two
    caplog.clear()
    with caplog.at_level("INFO", logger="pipelines.train.nodes"):
        train_model(train[1:], val, TINY_MODEL, PHYSICS, {**two, "learning_rate": 0.01}, options)
    assert "starting afresh" in caplog.text and "train_data" in caplog.text


def test_a_run_from_before_an_added_option_resumes_when_the_option_keeps_its_default(labelled, tmp_path, caplog):
    """run.json of an earlier td-models lacks a training_config key added since (bucket_batches): it is read as the
    default and the run resumes; the key set to another value, or a key today's td-models refuses, is a difference."""
    _, train, val, _ = split_crystals(labelled[0], {"fractions": [0.7, 0.15, 0.15]})
    options = {"run_dir": str(tmp_path / "run")}
    two = {**TINY_TRAINING, "max_epochs": 2}
    train_model(train, val, TINY_MODEL, PHYSICS, two, options)
    marker = tmp_path / "run" / "run.json"
    old = json.loads(marker.read_text())
    del old["config"]["training_config"]["bucket_batches"]
    marker.write_text(json.dumps(old))
    with caplog.at_level("INFO", logger="pipelines.train.nodes"):
        train_model(train, val, TINY_MODEL, PHYSICS, two, options)
    assert "resuming the same run" in caplog.text and "starting afresh" not in caplog.text
    caplog.clear()
    old["config"]["training_config"]["removed_option"] = 1
    marker.write_text(json.dumps(old))
    with caplog.at_level("INFO", logger="pipelines.train.nodes"):
        train_model(train, val, TINY_MODEL, PHYSICS, two, options)
    assert "starting afresh" in caplog.text and "config.training_config.removed_option" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="pipelines.train.nodes"):
        train_model(train, val, TINY_MODEL, PHYSICS, {**two, "bucket_batches": 2}, options)
    assert "starting afresh" in caplog.text and "config.training_config.bucket_batches" in caplog.text


def test_train_budget_stops_after_the_step_that_crosses_it_and_a_rerun_resumes(labelled, tmp_path):
    from pipelines.exceptions import ParameterError

    _, train, val, _ = split_crystals(labelled[0], {"fractions": [0.7, 0.15, 0.15]})
    two = {**TINY_TRAINING, "max_epochs": 2}
    whole = train_model(train, val, TINY_MODEL, PHYSICS, two, {"run_dir": str(tmp_path / "whole")})
    assert whole[2]["stopped_by"] == "max_epochs" and whole[2]["budget_minutes"] is None
    options = {"run_dir": str(tmp_path / "run"), "budget_minutes": 1e-6}  # 60 microseconds: less than one step
    model, _, cut = train_model(train, val, TINY_MODEL, PHYSICS, two, options)
    assert cut["stopped_by"] == "budget" and cut["global_step"] == 1 and model is not None
    assert list((tmp_path / "run" / "checkpoints").glob("checkpoint_*.pt"))  # the stop wrote a checkpoint
    _, _, rest = train_model(train, val, TINY_MODEL, PHYSICS, two, {**options, "budget_minutes": None})
    assert rest["stopped_by"] == "max_epochs" and rest["global_step"] == whole[2]["global_step"]
    for bad in (0, -5, True, "10"):
        with pytest.raises(ParameterError, match="train_options.budget_minutes must be null or a number of minutes"):
            train_model(train, val, TINY_MODEL, PHYSICS, two, {**options, "budget_minutes": bad})


def test_fitted_epochs_bound_the_run_and_a_resumed_run_keeps_its_fit(labelled, tmp_path, caplog):
    """fit_epochs_to_budget: the probe's epochs become max_epochs (never above the configured bound) and are written
    to budget_fit.json; a rerun of the same run resumes with that fit instead of probing again."""
    import json

    _, train, val, _ = split_crystals(labelled[0], {"fractions": [0.7, 0.15, 0.15]})
    three = {**TINY_TRAINING, "max_epochs": 3}
    options = {"run_dir": str(tmp_path / "run"), "budget_minutes": 1e-6, "fit_epochs_to_budget": True}
    _, _, cut = train_model(train, val, TINY_MODEL, PHYSICS, three, options)
    fit = json.loads((tmp_path / "run" / "budget_fit.json").read_text())
    assert cut["budget_fit"] == fit and fit["epochs"] == 1  # 60 microseconds hold less than an epoch: at least 1
    assert cut["max_epochs"] == 1 and cut["config"]["training_config"]["max_epochs"] == 1
    with caplog.at_level("INFO", logger="pipelines.train.nodes"):
        _, _, rest = train_model(train, val, TINY_MODEL, PHYSICS, three, {**options, "budget_minutes": 10.0})
    assert "the resumed run's budget fit, 1 epochs" in caplog.text and "resuming the same run" in caplog.text
    assert rest["budget_fit"] == fit and rest["max_epochs"] == 1 and rest["epochs_completed"] == 1


def test_the_budget_probe_times_each_kind_of_phase_and_sums_the_epochs_phase_by_phase(labelled, monkeypatch):
    """Physics phases cost more a step: the probe times each (physics, conditioning) setting of the phases that
    start within max_epochs once and plans the epochs phase by phase (pipelines.train.budget.plan_epochs)."""
    from pipelines.train import budget
    from pipelines.train.nodes import experiment_config
    from td_models.batch import item_from_record

    phases = [
        {"name": "structure", "start_epoch": 1, "learning_rate": 1e-3, "physics": False},
        {"name": "physics", "start_epoch": 3, "learning_rate": 5e-4, "physics": True},
        {"name": "fine", "start_epoch": 5, "learning_rate": 1e-4, "physics": True},
        {"name": "never", "start_epoch": 50, "learning_rate": 1e-5, "physics": True, "conditioning": False},
    ]
    config = experiment_config(TINY_MODEL, PHYSICS, {**TINY_TRAINING, "max_epochs": 10, "phases": phases})
    items = [item_from_record(r) for r in labelled[0][:10]]
    with monkeypatch.context() as patch:  # a clock that reads one second later at each look: a timing-free test
        clock = iter(range(10**6))
        patch.setattr(budget.time, "perf_counter", lambda: float(next(clock)))
        fit = budget.fit_epochs_to_budget(items, config, 0.5, "cpu", 0)
    timed = fit["probe_seconds_per_step_by_phase"]
    assert list(timed) == ["structure", "physics", "fine"]  # "never" starts after max_epochs: not probed
    assert timed["physics"] == timed["fine"]  # one setting, timed once
    assert fit["steps_per_epoch"] == 2 and fit["probe_seconds_per_step"] == timed["structure"]
    epochs, planned = budget.plan_epochs([(1, 2 * timed["structure"]), (3, 2 * timed["physics"]),
                                          (5, 2 * timed["fine"])], 0.92 * 30.0)  # fmt: skip
    assert (fit["epochs"], fit["planned_seconds"]) == (epochs, planned)
    assert budget.plan_epochs([(1, 1.0), (3, 5.0)], 12.0) == (4, 12.0)  # 2 x 1 s, then 2 x 5 s
    assert budget.plan_epochs([(1, 1.0), (3, 5.0)], 0.5) == (1, 1.0)  # never fewer than one epoch


def test_a_size_bucketed_budget_probe_times_batches_from_every_stratum_of_padded_cost(labelled, monkeypatch):
    """With training_config.bucket_batches the probe's timed steps are batches of the trainer's bucketed epoch, one
    from each cost stratum (a bucketed batch of small cells is several times cheaper than one of large cells)."""
    import numpy as np

    from pipelines.train import budget
    from pipelines.train.nodes import experiment_config
    from td_models.training.sampler import ShardedBatchSampler

    sizes = np.random.default_rng(0).choice([2, 4, 8, 16, 24], size=300)
    strata = budget._size_strata(sizes, 8, 5, seed=0)
    epoch = ShardedBatchSampler(300, 8, seed=0, sizes=sizes, bucket_batches=5).batches(0)
    cost = [len(b) * int(sizes[b].max()) ** 2 for b in strata]
    assert len(strata) == budget.PROBE_STEPS and cost == sorted(cost) and cost[0] < cost[-1] / 10
    assert all(any(np.array_equal(b, e) for e in epoch) for b in strata)
    # and the probe runs with it, its timed steps drawing the strata in order
    from td_models.batch import item_from_record

    config = experiment_config(TINY_MODEL, PHYSICS, {**TINY_TRAINING, "max_epochs": 4, "bucket_batches": 2})
    items = [item_from_record(r) for r in labelled[0][:10]]
    drawn = []
    real = budget._size_strata
    monkeypatch.setattr(budget, "_size_strata", lambda *a, **k: drawn.append(a) or real(*a, **k))
    fit = budget.fit_epochs_to_budget(items, config, 0.5, "cpu", 0)
    assert len(drawn) == 1 and drawn[0][1:3] == (min(TINY_TRAINING["batch_size"], 10), 2) and fit["epochs"] >= 1
