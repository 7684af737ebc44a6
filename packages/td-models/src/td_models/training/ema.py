"""Exponential moving average of the weights, the copy used for validation and saved models.

After every optimiser update ``w_ema <- decay * w_ema + (1 - decay) * w`` for each parameter, and
buffers (the lattice scale, the atom-count histogram) are copied. The average starts from the
weights it is given (no bias correction): with ``decay = 0.999`` it forgets the initial weights
with a time constant of about 1,000 updates.

>>> import torch
>>> layer = torch.nn.Linear(2, 1)
>>> ema = ExponentialMovingAverage(layer, decay=0.5)
>>> with torch.no_grad():
...     _ = layer.weight.add_(1.0)
>>> ema.update(layer)
>>> torch.allclose(ema.model.weight, layer.weight - 0.5)
True
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from td_models.exceptions import CheckpointError, ConfigError

__all__ = ["ExponentialMovingAverage"]


class ExponentialMovingAverage:
    """A frozen copy of ``model`` that follows its weights with decay ``decay`` in [0, 1)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"ema decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.num_updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards the current weights of ``model`` (same architecture)."""
        ema_params = [p for p in self.model.parameters()]
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - self.decay)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers()):
            ema_buffer.copy_(buffer)
        self.num_updates += 1

    @torch.no_grad()
    def copy_from(self, model: nn.Module) -> None:
        """Reset the average to the current weights of ``model``."""
        self.model.load_state_dict(model.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {
            "decay": self.decay,
            "num_updates": self.num_updates,
            "weights": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["weights"])
            self.num_updates = int(state["num_updates"])
        except (KeyError, RuntimeError) as exc:
            raise CheckpointError(f"EMA state does not match the model: {exc}") from exc
