"""Where a pipeline's torch work runs: the device a parameter block asks for, checked against what torch sees,
and a record of the machine for run summaries. Imports torch and accelerate only (a GPU node without the
materials stack uses it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from pipelines.exceptions import ParameterError

#: The devices a block may name (``cuda``: the first CUDA device torch sees).
DEVICES = ("cpu", "cuda")


def require_device(block: str, device: str) -> None:
    """A ParameterError naming ``block.device`` when it asks for CUDA and torch sees none."""
    if device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise ParameterError(
            f"{block}.device is 'cuda', but torch {torch.__version__} sees no CUDA device; set it to 'cpu'"
        )


def hardware(device: str) -> dict[str, Any]:
    """Where this process runs: CPU model and count, torch threads and versions, the device's name."""
    import accelerate
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "accelerate": accelerate.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "device_name": cpu,
    }
    if device == "cuda" and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info
