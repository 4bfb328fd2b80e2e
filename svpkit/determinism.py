"""Opt-in bitwise reproducibility on GPU (``--deterministic true``).

On CPU, svpkit runs are reproducible without it: all randomness comes from seeds derived from
``(seed, role, round)``. On CUDA, cuDNN autotuning and atomics-based kernels (scatter/index
adds, some convolution and pooling backward passes) can change the last bits of a sum, which can
flip near-tied picks. :func:`use_deterministic_algorithms` asks PyTorch for deterministic kernels.
"""

from __future__ import annotations

import os

import torch


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
