"""The relax pipeline (real CHGNet), the stability filter of ``physics_config.stability_threshold``, DFT verification
of the top candidates (real GPAW on one tiny crystal, and with the DFT extra reported absent) and the report that
shows them. Nodes are called as Kedro calls them, on small in-memory crystals."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from pipelines.datasets import CifFolderDataset
from pipelines.evaluate.nodes import VerifyOptions, select_for_verification, verify_candidates
from pipelines.exceptions import ParameterError
from pipelines.relax.nodes import RelaxOptions, relax_candidates, stability_decision
from pipelines.report.nodes import candidate_lines, dft_bands_with_limit, plot_dft_band_structure, write_report
from td_data import CrystalRecord

matplotlib.use("Agg")

A_SI = 5.43  # Angstrom, diamond Si
FCC = np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
PHYSICS = {"topological_class": "TI", "band_gap_range": [0.1, 0.5]}
FAST_RELAX = {"fmax": 0.1, "max_steps": 100, "relax_cell": True, "batch_size": 8}
# coarse and quick: the dzp basis the product uses, few k-points, no second mesh
COARSE_DFT = {"kpt_spacing": 0.6, "max_kpts": 4, "confirm": False, "threads": 1}


def diamond_si(cid: str = "si-diamond", shift: float = 0.0) -> CrystalRecord:
    return CrystalRecord(A_SI * FCC, [[0, 0, 0], [0.25 + shift, 0.25, 0.25 - shift]], [14, 14], id=cid)


def simple_cubic_si(cid: str = "si-sc") -> CrystalRecord:
    """One Si atom per cubic cell: a saddle the relaxation keeps by symmetry, ~0.3 eV/atom above diamond (PBE)."""
    return CrystalRecord(2.55 * np.eye(3), [[0, 0, 0]], [14], id=cid)


def as_candidate(rec: CrystalRecord, **labels) -> CrystalRecord:
    return rec.replace(labels={"requested_class": "z2_ti", "predicted_class": "trivial", **labels})


# ---------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: relax_candidates([], [], PHYSICS, {"fmaxx": 0.1}), r"relax_options has unknown keys \['fmaxx'\]"),
        (lambda: relax_candidates([], [], PHYSICS, {"fmax": -1}), "relax_options.fmax must be a number > 0"),
        (lambda: relax_candidates([], [], PHYSICS, {"max_steps": 0}), "relax_options.max_steps must be an integer"),
        (lambda: relax_candidates([], [], PHYSICS, {"enabled": "yes"}), "relax_options.enabled must be true or false"),
        (
            lambda: relax_candidates([], [], PHYSICS, {"optimizer": "lbfgs"}),
            "relax_options.optimizer must be 'fire' or 'bfgs', got 'lbfgs'",
        ),
        (lambda: relax_candidates([], [], PHYSICS, {"workers": 0}), "relax_options.workers must be an integer >= 1"),
        (
            lambda: relax_candidates([], [], PHYSICS, {"symprec": 0}),
            r"relax_options.symprec must be a number > 0 \(Angs",
        ),
        (lambda: verify_candidates([], {"top": 2}), r"verify_options has unknown keys \['top'\]"),
        (lambda: verify_candidates([], {"top_n": -1}), "verify_options.top_n must be an integer >= 0, got -1"),
        (lambda: verify_candidates([], {"timeout_per_crystal": 0}), "timeout_per_crystal must be seconds > 0"),
        (lambda: verify_candidates([], {"settings": [1]}), "verify_options.settings must be a mapping"),
    ],
)
def test_unknown_and_bad_option_keys_are_refused_naming_rule_and_value(call, message):
    with pytest.raises(ParameterError, match=message):
        call()


def test_an_unknown_dft_setting_is_refused_as_a_parameter_error():
    with pytest.raises(ParameterError, match="verify_options.settings: .*'kpoints'"):
        VerifyOptions.from_dict({"settings": {"kpoints": 3}}).dft_settings()


def test_a_negative_stability_threshold_is_refused_before_any_relaxation():
    with pytest.raises(ValueError, match=r"stability_threshold must be a number >= 0 .* got -0.1"):
        relax_candidates([diamond_si()], [], {**PHYSICS, "stability_threshold": -0.1}, {"enabled": False})


@pytest.mark.parametrize(
    ("args", "passed", "why"),
    [
        ((True, "", 0.05, "", 0.1), True, ""),
        ((True, "", 0.25, "", 0.1), False, "e_above_hull 0.250 eV/atom > stability_threshold 0.1 eV/atom"),
        ((True, "", None, "no reference for Xe", 0.1), False, "no energy above the hull (no reference for Xe)"),
        ((True, "", None, "no reference for Xe", None), True, ""),
        ((False, "not converged in 5 steps", 0.0, "", None), False, "relaxation failed: not converged"),
    ],
)
def test_stability_decision(args, passed, why):
    ok, reason = stability_decision(*args)
    assert ok is passed and reason.startswith(why)


def test_relax_limits_say_which_candidates_were_not_relaxed():
    opts = RelaxOptions(max_atoms=4, max_candidates=1)
    assert opts.why_not_relaxed(diamond_si(), 0) == ""
    assert opts.why_not_relaxed(diamond_si(), 1) == "not relaxed: beyond relax_options.max_candidates=1"
    big = CrystalRecord(9 * np.eye(3), np.random.default_rng(1).random((5, 3)), [14] * 5, id="big")
    assert opts.why_not_relaxed(big, 0) == "not relaxed: 5 sites > relax_options.max_atoms=4"
    with pytest.raises(ParameterError, match="relax_options.max_candidates must be an integer >= 1 or null, got 0"):
        RelaxOptions.from_dict({"max_candidates": 0})


@pytest.mark.parametrize(("alpha", "start"), [(None, 35.0), (70.0, 70.0)])
def test_the_optimizer_option_relaxes_candidates_and_hull_references_with_bfgs(alpha, start, monkeypatch, caplog):
    pytest.importorskip("chgnet")
    import td_data.relax
    from td_data.relax import BfgsSettings, Relaxer

    calls = []
    real = td_data.relax.relax_records

    def spy(records, **kwargs):
        calls.append(kwargs.get("bfgs"))
        return real(records, **kwargs)

    monkeypatch.setattr(td_data.relax, "relax_records", spy)
    relaxer = Relaxer(threads=1)
    options = {**FAST_RELAX, "optimizer": "bfgs", "bfgs_alpha": alpha}
    with caplog.at_level(logging.INFO, logger="pipelines.relax.nodes"):
        out, table, summary = relax_candidates([as_candidate(diamond_si("cand-0000", shift=0.01))],
                                               [diamond_si("train-si")], PHYSICS, options, relaxer=relaxer)  # fmt: skip
    assert f"with CHGNet (bfgs, alpha {start:g} eV/A^2, fmax" in caplog.text  # the log names the start used
    assert bool(table.loc[0, "relax_converged"]) and abs(out[0].properties["e_above_hull"]) < 0.02
    expected = BfgsSettings(alpha=start)  # null: the pipeline's softer start (DEFAULT_BFGS_ALPHA), not ASE's 70
    # the candidates get the setting; the hull's references relax with it too (its own cache key)
    assert calls[0] == expected
    settings = {key[2:] for key in relaxer.reference_cache}
    assert settings == {(FAST_RELAX["fmax"], FAST_RELAX["max_steps"], "bfgs", expected)}
    assert summary["options"]["bfgs_alpha"] == start


def test_bfgs_alpha_is_refused_without_bfgs_or_when_not_positive():
    with pytest.raises(ParameterError, match="relax_options.bfgs_alpha=35 needs relax_options.optimizer: bfgs"):
        relax_candidates([], [], PHYSICS, {"optimizer": "fire", "bfgs_alpha": 35})
    assert RelaxOptions.from_dict({"optimizer": "fire"}).bfgs_start is None  # the default start needs no change
    with pytest.raises(
        ParameterError, match=r"relax_options.bfgs_alpha must be a number > 0 \(eV/A\^2\) or null, got 0"
    ):
        relax_candidates([], [], PHYSICS, {"optimizer": "bfgs", "bfgs_alpha": 0})


def test_relax_disabled_passes_candidates_through_and_the_threshold_holds_them_back():
    cands = [as_candidate(diamond_si())]
    out, table, summary = relax_candidates(cands, [], {**PHYSICS, "stability_threshold": None}, {"enabled": False})
    assert out[0].labels["passed_stability"] is True and np.allclose(out[0].lattice, cands[0].lattice)
    out, table, summary = relax_candidates(cands, [], {**PHYSICS, "stability_threshold": 0.1}, {"enabled": False})
    assert not out[0].labels["passed_stability"]
    assert "no energy above the hull (not relaxed: relax_options.enabled is false)" in table.loc[0, "stability_reason"]
    assert summary["n_passed_stability"] == 0 and summary["note"].startswith("not relaxed")


# ---------------------------------------------------------------------------------------------- relax (CHGNet)
@pytest.fixture(scope="module")
def relaxed():
    """Diamond Si (slightly displaced), simple cubic Si and two Si atoms 0.3 A apart, relaxed with CHGNet; the hull
    from diamond Si (the 'training crystals'); the guide's stability_threshold 0.1 eV/atom."""
    pytest.importorskip("chgnet")
    from td_data.relax import Relaxer

    too_close = CrystalRecord(5.0 * np.eye(3), [[0, 0, 0], [0.06, 0, 0]], [14, 14], id="si-too-close")
    too_big = CrystalRecord(8.0 * np.eye(3), [[0, 0, 0], [0.3, 0, 0], [0, 0.3, 0]], [14, 14, 14], id="si-3")
    cands = [as_candidate(diamond_si("cand-0000", shift=0.01)), as_candidate(simple_cubic_si("cand-0001")),
             as_candidate(too_close), as_candidate(too_big)]  # fmt: skip
    physics = {**PHYSICS, "stability_threshold": 0.1}
    out, table, summary = relax_candidates(cands, [diamond_si("train-si")], physics, {**FAST_RELAX, "max_atoms": 2},
                                           relaxer=Relaxer(threads=1))  # fmt: skip
    return cands, out, table, summary


def test_relax_keeps_every_candidate_in_order_with_energies_rmsd_and_the_hull(relaxed):
    cands, out, table, summary = relaxed
    assert [r.id for r in out] == [r.id for r in cands] == list(table["id"])
    dia = out[0]
    assert dia.labels["relax_converged"] and dia.labels["requested_class"] == "z2_ti"  # labels kept
    assert -6.0 < dia.properties["energy_per_atom"] < -4.5  # CHGNet's MP-compatible scale for Si (~ -5.4)
    assert 0 <= dia.properties["rmsd"] < 0.3 and table.loc[0, "rmsd_reason"] == ""  # a missing RMSD says why
    assert abs(dia.properties["e_above_hull"]) < 0.02  # diamond Si on its own hull
    assert summary["n_candidates"] == 4 and summary["n_relaxed"] == 3 and summary["stability_threshold"] == 0.1
    assert "not the Materials Project hull" in summary["hull"]


def test_a_converged_relaxation_is_put_on_its_symmetric_sites(relaxed):
    """relax_options.symprec (1e-3 A): CHGNet's float32 noise is gone, so the symmetry spglib finds at 1e-3 A
    holds at a tolerance 1000 times tighter, and the labeller sees it exactly (simple cubic Si: Pm-3m)."""
    import spglib

    _, out, _, summary = relaxed
    assert summary["options"]["symprec"] == 1e-3
    assert (summary["options"]["optimizer"], summary["options"]["workers"]) == ("bfgs", 2)
    assert summary["options"]["bfgs_alpha"] == 35.0
    converged = [r for r in out if r.labels["relax_converged"]]
    assert [r.id for r in converged] == ["cand-0000", "cand-0001"]
    for rec in converged:
        cell = (rec.lattice, rec.frac_coords, rec.atomic_numbers)
        loose, tight = (spglib.get_symmetry_dataset(cell, symprec=p).number for p in (1e-3, 1e-6))
        assert loose == tight, rec.id
    assert spglib.get_symmetry_dataset((out[1].lattice, out[1].frac_coords, out[1].atomic_numbers)).number == 221


def test_the_threshold_drops_the_unstable_candidate_and_the_table_says_why(relaxed):
    _, out, table, summary = relaxed
    rows = table.set_index("id")
    assert bool(rows.loc["cand-0000", "passed_stability"]) and rows.loc["cand-0000", "stability_reason"] == ""
    sc = rows.loc["cand-0001"]
    assert sc["e_above_hull"] > 0.1 and not bool(sc["passed_stability"])
    assert sc["stability_reason"].startswith(f"e_above_hull {sc['e_above_hull']:.3f} eV/atom > stability_threshold 0.1")
    bad = rows.loc["si-too-close"]  # one bad record: a reason, and the others are not lost
    assert not bool(bad["relax_converged"]) and bad["relax_reason"]
    assert bad["stability_reason"].startswith("relaxation failed: ")
    big = rows.loc["si-3"]  # over relax_options.max_atoms: not relaxed, so no hull, so held back by the threshold
    assert big["relax_reason"] == "not relaxed: 3 sites > relax_options.max_atoms=2" and not bool(
        big["passed_stability"]
    )
    assert big["stability_reason"].startswith("no energy above the hull (not relaxed: 3 sites")
    assert summary["n_passed_stability"] == 1
    # verification only sees what passed
    chosen, why = select_for_verification(out, VerifyOptions(top_n=5, max_atoms=4))
    assert [r.id for r in chosen] == ["cand-0000"] and why["cand-0001"].startswith("held back by the stability filter")


def test_relaxed_candidates_round_trip_through_their_cif_folder(relaxed, tmp_path):
    _, out, _, _ = relaxed
    folder = CifFolderDataset(path=tmp_path / "relaxed_candidates")
    folder.save(out)
    back = {r.id: r for r in folder.load()}
    assert set(back) == {r.id for r in out}
    assert back["cand-0001"].labels["passed_stability"] is False
    assert back["cand-0000"].properties["e_above_hull"] == pytest.approx(out[0].properties["e_above_hull"])


# ---------------------------------------------------------------------------------------------- verify (DFT)
def _checked(rec: CrystalRecord, tb_class: str, confidence: float, e_hull: float, passed: bool = True):
    return rec.replace(
        properties={"e_above_hull": e_hull, "rmsd": 0.01},
        labels={"requested_class": "z2_ti", "recomputed_class": tb_class, "recomputed_confidence": confidence,
                "passed_stability": passed, "stability_reason": "" if passed else "e_above_hull 0.3 > 0.1"},
    )  # fmt: skip


def test_ranking_puts_the_requested_class_first_then_confidence_then_hull():
    recs = [
        _checked(diamond_si("a"), "trivial", 1.0, 0.0),
        _checked(diamond_si("b"), "z2_ti", 0.6, 0.05),
        _checked(diamond_si("c"), "z2_ti", 0.9, 0.08),
        _checked(diamond_si("d"), "z2_ti", 0.9, 0.01),
        _checked(diamond_si("e"), "z2_ti", 1.0, 0.3, passed=False),
        _checked(CrystalRecord(10 * np.eye(3), np.random.default_rng(0).random((6, 3)), [14] * 6, id="f"),
                 "z2_ti", 1.0, 0.0),
    ]  # fmt: skip
    chosen, why = select_for_verification(recs, VerifyOptions(top_n=3, max_atoms=4))
    assert [r.id for r in chosen] == ["d", "c", "b"]
    assert why["a"] == "beyond verify_options.top_n=3" and "stability filter" in why["e"]
    assert why["f"] == "6 sites > verify_options.max_atoms=4"


def test_without_the_dft_extra_the_run_goes_on_and_the_report_says_so_plainly(monkeypatch, tmp_path):
    import td_physics.dft

    monkeypatch.setattr(td_physics.dft, "dft_available", lambda: (False, "No module named 'gpaw'"))
    cand = _checked(diamond_si("cand-0007"), "trivial", 1.0, 0.0)
    results, crystals, summary = verify_candidates([cand], {"top_n": 2})
    assert results == [] and summary["available"] is False and summary["selected"] == ["cand-0007"]
    assert "pip install 'td-physics[dft]'" in summary["reason"] and "No module named 'gpaw'" in summary["reason"]
    # the bridge to SLURM: the CLI reads the crystals file as the node wrote it
    from td_physics.dft.cli import read_crystals_file

    (tmp_path / "dft_crystals.json").write_text(json.dumps(crystals))
    assert [c["id"] for c in read_crystals_file(tmp_path / "dft_crystals.json")] == ["cand-0007"]
    lines = "\n".join(candidate_lines(pd.DataFrame([{"id": "cand-0007", "formula": "Si", "recomputed_class": "trivial",
                                                     "requested_class": "z2_ti"}]), results, summary))  # fmt: skip
    assert "| cand-0007 | Si | z2_ti | trivial (n/a) | not run (DFT extra absent) |" in lines
    report = _report(summary, results)
    assert "**DFT verification: NOT RUN. the DFT extra is not installed (pip install 'td-physics[dft]')" in report
    assert "tight-binding labeller's only" in report
    assert "5 sampler steps, classifier-free guidance w = 1.5." in report  # the run's own setting, stated
    fig = plot_dft_band_structure(results, [cand], summary)
    assert "the DFT extra is not installed" in fig.axes[0].texts[0].get_text()


def _report(verify_summary, dft_results, cid: str = "cand-0007") -> str:
    """write_report with small stand-ins for what the earlier pipelines write."""
    quarantine = {"source": "synthetic", "counts": {"kept": 3, "quarantined": 0}}
    labels = {"n_labelled": 1, "n_attempted": 1, "n_failed": 0, "class_counts": {"trivial": 1},
              "options": {"spin_orbit": True, "max_atoms": 4, "max_records": 3}}  # fmt: skip
    split = {"method": "random", "seed": 0, "train": [1], "val": [], "test": []}
    training = {"epochs_completed": 1, "global_step": 1, "num_parameters": 10, "last_losses": {}, "config": {}}
    generation = {"n_records": 1, "n_requested": 1, "requested_class": "z2_ti", "band_gap_range": [0.1, 0.5],
                  "steps": 5, "guidance_scale": 1.5}  # fmt: skip
    consistency = {
        "n_structurally_valid": 1,
        "n_candidates": 1,
        "n_checked": 1,
        "requested_class": "z2_ti",
        "n_as_requested": 0,
        "share_as_requested": 0.0,
        "recomputed_class_counts": {},
        "confusion": [],
    }
    relax = {
        "options": {"fmax": 0.1, "max_steps": 100, "relax_cell": True},
        "stability_threshold": 0.1,
        "n_candidates": 1,
        "n_converged": 1,
        "n_with_e_above_hull": 1,
        "n_passed_stability": 1,
        "hull": "x",
    }
    table = pd.DataFrame([{"id": cid, "formula": "Si2", "requested_class": "z2_ti",
                           "recomputed_class": "trivial", "recomputed_confidence": 1.0, "e_above_hull": 0.0,
                           "rmsd": 0.01}])  # fmt: skip
    return write_report(quarantine, labels, split, training, generation, {}, consistency, table, relax,
                        verify_summary, dft_results)  # fmt: skip


@pytest.mark.slow
def test_verify_with_gpaw_on_one_tiny_candidate_then_report_and_band_structure(caplog):
    from td_physics.dft import dft_available

    ok, why = dft_available()
    if not ok:
        pytest.skip(f"the DFT extra is not installed: {why}")
    cand = _checked(diamond_si("cand-0003"), "z2_ti", 0.8, 0.0)  # the TB labeller calls it a TI; DFT decides
    options = {"top_n": 1, "max_atoms": 2, "spin_orbit": True, "timeout_per_crystal": 300, "settings": COARSE_DFT}
    with caplog.at_level(logging.INFO, logger="pipelines.evaluate.nodes"):
        results, crystals, summary = verify_candidates([cand], options)
    assert summary["available"] is True and summary["n_verified"] == 1 and [c["id"] for c in crystals["crystals"]]
    [res] = results
    assert res["id"] == "cand-0003" and res["tb_class"] == "z2_ti" and res["rank"] == 1
    assert res["converged"], res["reason"]
    assert res["topo_class"] == "trivial" and tuple(res["z2_indices"]) == (0, 0, 0, 0)
    assert 0 < res["band_gap_indirect"] <= res["band_gap_direct"] < 3  # Si: an indirect-gap semiconductor
    report = _report(summary, results, "cand-0003")
    assert "| cand-0003 | Si2 | z2_ti | trivial (1) | trivial | [0, 0, 0, 0] | yes | " in report
    fig = plot_dft_band_structure(results, [cand], summary, n_points=12)
    ax = fig.axes[0]
    assert len(ax.lines) > 4 and "DFT trivial" in ax.get_title()


def test_the_band_structure_plot_keeps_the_time_limit_and_says_so():
    """A child process that cannot finish in time (its interpreter alone starts slower) is stopped; the figure
    names the limit."""
    summary = {"spin_orbit": True, "settings": COARSE_DFT, "timeout_per_crystal": 0.2}
    bands, why = dft_bands_with_limit(diamond_si(), spin_orbit=True, settings=COARSE_DFT, n_points=8, timeout=0.2)
    assert bands is None and why == "over the time limit of 0.2 s (verify_options.timeout_per_crystal)"
    result = {"id": "si-diamond", "rank": 1, "converged": True, "topo_class": "trivial", "requested_class": "z2_ti"}
    fig = plot_dft_band_structure([result], [diamond_si()], summary)
    assert "over the time limit of 0.2 s" in fig.axes[0].texts[0].get_text()


# ---------------------------------------------------------------------------------------------- scripts
def test_generation_quality_script_says_the_threshold_was_not_applied():
    """The script's note, read in the scripts' folder as Python runs a script there (that folder first on the path)."""
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    code = (
        "import json; from types import SimpleNamespace; from td_models.config import ExperimentConfig; "
        "import test_generation_quality as m; "
        "note = lambda d: m.stability_note(SimpleNamespace(config=ExperimentConfig.from_dict(d))); "
        "print(json.dumps([note({'physics_config': {'stability_threshold': 0.1}}), note({})]))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=scripts, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    note, default = json.loads(done.stdout.strip().splitlines()[-1])
    assert note["stability_threshold"] == 0.1
    assert note["stability_filter"].startswith("physics_config.stability_threshold = 0.1 eV/atom was NOT applied")
    assert default == {"stability_threshold": None, "stability_filter": ""}
