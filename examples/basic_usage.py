#!/usr/bin/env python
"""The main job until the Kedro pipeline exists: canonical models, their invariants, two figures.

    python examples/basic_usage.py                       # table + figures in outputs/basic_usage
    python examples/basic_usage.py --create-config       # write example_config.json and exit

Prints each canonical model's invariant beside the published value, and saves a band structure
(Bi2Se3 and the Kane-Mele ribbon-free bulk), the Haldane phase diagram against its closed-form
boundary, and silicene's Z2 against a perpendicular electric field. Exit status 1 if any
computed value disagrees with the literature.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

try:
    from tqdm import tqdm
except ImportError:  # tqdm is installed by `make install`; the example still runs without it

    def tqdm(iterable, **_):
        return iterable


from td_physics.bands import band_structure  # noqa: E402
from td_physics.fields import electric_field  # noqa: E402
from td_physics.models import bi2se3, haldane, kane_mele, silicene  # noqa: E402
from td_physics.phase_diagram import phase_diagram  # noqa: E402
from td_physics.plotting import plot_band_structure  # noqa: E402
from td_physics.validation import CASES, ValidationReport  # noqa: E402

# The configuration users know (DESIGN.md / the user guide), with the defaults they expect.
EXAMPLE_CONFIG = {
    "model_config": {"num_species": 100, "hidden_dim": 512, "num_topo_classes": 4, "num_layers": 12, "num_heads": 8},
    "physics_config": {
        "topological_class": "TI",
        "band_gap_range": [0.1, 0.5],
        "target_chern_number": 1,
        "constraint_weight": 2.0,
    },
    "training_config": {
        "batch_size": 32,
        "learning_rate": 1e-4,
        "max_epochs": 1000,
        "warmup_epochs": 50,
        "gradient_clipping": 1.0,
    },
}


def write_json_atomic(data: dict, path: Path) -> None:
    """Write JSON through a temporary file in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def figures(out: Path) -> list[Path]:
    """Band structures and the two phase diagrams; returns the files written."""
    written = []
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    model = bi2se3()
    bands = band_structure(model, n_points=300)
    plot_band_structure(bands, axes[0], title="Bi2Se3 four-band model, (1;000)")
    # the lattice-regularised k.p model is only meant near Gamma: zoom on the inverted gap there
    near = band_structure(model, [[0.12, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.25]], ["0.12 X", "G", "0.25 Z"])
    plot_band_structure(near, axes[1], title="Bi2Se3 near Gamma")
    axes[1].set_ylim(-0.6, 0.8)
    plot_band_structure(band_structure(kane_mele(lambda_so=0.06)), axes[2], title="Kane-Mele, Z2 = 1")
    path = out / "band_structure.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    written.append(path)

    t2 = 0.15
    diagram = phase_diagram(
        haldane, {"phi": np.linspace(-np.pi, np.pi, 61), "m": np.linspace(-1.0, 1.0, 41)}, "chern", fixed={"t2": t2}
    )
    fig = diagram.plot(
        title="Haldane model: Chern number of the lower band",
        boundary=lambda phi: 3 * np.sqrt(3) * t2 * np.abs(np.sin(phi)),
    )
    path = out / "phase_diagram_haldane.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    written.append(path)

    base = silicene()
    ec = base.metadata["critical_field_V_per_A"]
    fields = np.linspace(0.0, 2.0 * ec, 41)
    diagram = phase_diagram(lambda e_z: electric_field(base, (0.0, 0.0, e_z)), {"e_z": fields}, "z2")
    fig = diagram.plot(title=f"Silicene: Z2 against E_z (E_c = {ec * 1e3:.1f} mV/A)")
    fig.axes[0].axvline(ec, color="k", ls=":", lw=1)
    path = out / "phase_diagram_silicene.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--create-config",
        nargs="?",
        const="example_config.json",
        metavar="PATH",
        help="write the example configuration (model, physics, training blocks) and exit",
    )
    parser.add_argument("--output-dir", default="outputs/basic_usage", help="where figures and the table go")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the library's progress")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )

    if args.create_config:
        path = Path(args.create_config)
        write_json_atomic(EXAMPLE_CONFIG, path)
        print(f"wrote {path}")
        return 0

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = [CASES[name]() for name in tqdm(list(CASES), desc="canonical models", unit="case")]
    report = ValidationReport(tuple(rows))
    print("\nCanonical models: computed invariants against the published values\n")
    print(report)
    write_json_atomic({"rows": report.as_dicts(), "all_agree": report.all_agree}, out / "validation.json")
    files = figures(out)
    print(f"\n{sum(r.agrees for r in report.rows)}/{len(report.rows)} agree; {time.perf_counter() - start:.1f} s")
    for f in [out / "validation.json", *files]:
        print(f"wrote {f}")
    return 0 if report.all_agree else 1


if __name__ == "__main__":
    sys.exit(main())
