"""Model files get the user's umask permissions (0644 under 022), not a temporary file's 0600 (issue 15)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from td_physics.io import save_model, write_wannier90_hr
from td_physics.model import TightBindingModel


@pytest.fixture
def umask():
    """Set the process umask for one test, restored afterwards."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def chain() -> TightBindingModel:
    model = TightBindingModel([[1.0]], [[0.0]], name="chain")
    model.add_hopping(-1.0, 0, 0, (1,))
    return model


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
@pytest.mark.parametrize("name", ["m.json", "m.h5", "m_hr.dat"])
def test_saved_model_files_follow_the_umask(tmp_path: Path, umask, mask: int, mode: int, name: str) -> None:
    umask(mask)
    path = tmp_path / name
    for _ in range(2):  # a new file, then an overwrite
        if name.endswith("_hr.dat"):
            write_wannier90_hr(chain(), path, header="chain")
        else:
            save_model(chain(), path)
        assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == [name]
