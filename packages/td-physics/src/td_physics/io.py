"""Reading and writing tight-binding models, as functions: the native JSON / HDF5 format and Wannier90 files.

The same operations are methods of :class:`~td_physics.model.TightBindingModel` (``save``,
``load``, ``to_dict``, ``from_dict``, ``from_wannier90``); the native schema is described in
:mod:`td_physics.model_file` and the Wannier90 formats in :mod:`td_physics.wannier90`. Files are
written atomically: to a temporary file in the same folder, flushed with ``fsync``, then moved
over the target with ``os.replace``, so a crash never leaves a half-written model behind.

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np
>>> from td_physics.model import TightBindingModel
>>> m = TightBindingModel([[1.0]], [[0.0]], name="chain")
>>> m.add_hopping(-1.0, 0, 0, (1,))
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> save_model(m, folder / "chain.json")
>>> load_model(folder / "chain.json").eigvalsh([[0.0], [0.5]])[:, 0].round(6)
array([-2.,  2.])
>>> write_wannier90_hr(m, folder / "chain_hr.dat", header="chain")
>>> model_from_wannier90(folder / "chain_hr.dat", lattice=[[1.0]], positions=[[0.0]]).eigvalsh([0.5]).round(6)
array([[2.]])
"""

from __future__ import annotations

from td_physics.model import TightBindingModel
from td_physics.model_file import FORMAT_NAME, FORMAT_VERSION, model_to_dict
from td_physics.wannier90 import (
    BOHR_ANGSTROM,
    Wannier90HR,
    read_wannier90_centres,
    read_wannier90_hr,
    read_wannier90_unit_cell,
    write_wannier90_hr,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "BOHR_ANGSTROM",
    "model_to_dict",
    "model_from_dict",
    "save_model",
    "load_model",
    "Wannier90HR",
    "read_wannier90_hr",
    "read_wannier90_centres",
    "read_wannier90_unit_cell",
    "model_from_wannier90",
    "write_wannier90_hr",
]

save_model = TightBindingModel.save
load_model = TightBindingModel.load
model_from_dict = TightBindingModel.from_dict
model_from_wannier90 = TightBindingModel.from_wannier90
