"""``topological_diffusion.data``: the user guide's import path for td_data.

The same objects as :mod:`td_data` (records, readers, the HDF5 store, synthetic data, filters,
splits, metrics)::

    from topological_diffusion.data import SyntheticDatasetGenerator, load_materials_database

Like :mod:`td_data` itself, the heavier names load on first use (pymatgen is imported only when
needed). Shipped by td-data as a portion of the PEP 420 namespace package ``topological_diffusion``.
"""

from td_physics.facade import reexport

reexport(globals(), "td_data")  # __all__, __getattr__ (names resolved on first use, as in td_data), __dir__
