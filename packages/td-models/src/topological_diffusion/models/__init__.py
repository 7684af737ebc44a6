"""``topological_diffusion.models``: the user guide's import path for td_models.

The same objects as :mod:`td_models` (configuration, the diffusion model, denoiser, property
heads, batches, crystal files)::

    from topological_diffusion.models import ExperimentConfig, TopologicalDiffusionModel

Like :mod:`td_models` itself, the names load on first use, so importing this module does not
import torch. Shipped by td-models as a portion of the PEP 420 namespace package
``topological_diffusion`` (with ``topological_diffusion.training``).
"""

from td_physics.facade import reexport

reexport(globals(), "td_models")  # __all__, __getattr__ (names resolved on first use, as in td_models), __dir__
