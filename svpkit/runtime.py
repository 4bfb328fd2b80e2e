"""Where a run computes and how it is seeded: devices, derived seeds, deterministic kernels.

All randomness in svpkit comes from seeds derived from ``(seed, role, round)`` with
:func:`derive_seed`, so CPU runs are reproducible without anything else. On CUDA, cuDNN autotuning
and atomics-based kernels (scatter/index adds, some convolution and pooling backward passes) can
change the last bits of a sum, which can flip near-tied picks; ``--deterministic true`` calls
:func:`use_deterministic_algorithms`.
"""

from __future__ import annotations

import hashlib
import os

import torch

from svpkit.errors import ConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available on this machine")
    return torch.device(device)


def derive_seed(seed: int, *keys: object) -> int:
    """A stable 31-bit seed for a named piece of a run (same on every machine and resume)."""
    text = ":".join([str(seed), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def use_deterministic_algorithms() -> None:
    """Deterministic PyTorch kernels for the rest of the process.

    ``warn_only``: an op without a deterministic CUDA kernel (e.g. adaptive average pooling's
    backward) warns and runs as before instead of failing the run.
    """
    # cuBLAS needs a fixed workspace for deterministic matmuls; read when cuBLAS first starts.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
