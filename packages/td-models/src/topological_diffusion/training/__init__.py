"""``topological_diffusion.training``: the user guide's import path for td_models.training.

The same objects as :mod:`td_models.training` (the Accelerate ``Trainer``, schedules, samplers,
checkpoints, EMA, metrics logging)::

    from topological_diffusion.training import Trainer, TrainingResult

Imports torch and accelerate, as :mod:`td_models.training` does. Shipped by td-models as a
portion of the PEP 420 namespace package ``topological_diffusion``.
"""

from td_models.training import *  # noqa: F403  (the same objects, by the source's __all__)
from td_models.training import __all__  # noqa: F401
