"""Where a run computes and how it is seeded: devices, derived seeds, deterministic kernels.

All randomness in svpkit comes from seeds derived from ``(seed, role, round)`` with
:func:`derive_seed`, so a run is repeatable on the same machine without anything else. Across
machines the float rounding differs: PyTorch's CPU kernels (ATen's vectorised paths, oneDNN
convolutions, MKL GEMM) dispatch on the instruction set (AVX-512, AVX2, ...), and the intra-op
thread count splits reductions differently, so a last-bit difference can flip a near-tied pick.
``--deterministic true`` therefore pins the CPU's numerical paths (:func:`pin_portable_numerics`:
the instruction-set level every x86-64 CPU has, MKL's conditional numerical reproducibility, a
fixed thread count, float32 instead of bf16) and calls :func:`use_deterministic_algorithms` for
CUDA's atomics and cuDNN autotuning. docs/reliability.md says what is reproducible where.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from svpkit.errors import ConfigError

PORTABLE_ENV: Mapping[str, str] = {
    "ATEN_CPU_CAPABILITY": "default",  # ATen's kernels without AVX2/AVX-512 vectorisation
    "MKL_CBWR": "COMPATIBLE",  # MKL: the same results on every x86-64 CPU (Intel's CNR mode)
    "ONEDNN_MAX_CPU_ISA": "SSE41",  # oneDNN convolutions: the SSE4.1 kernels every x86-64 CPU has
    "DNNL_MAX_CPU_ISA": "SSE41",  # the same for oneDNN releases that read the older name
}
"""The environment that pins PyTorch's CPU numerics; read by torch when its kernels first run."""
PORTABLE_THREADS = 1
"""Intra-op threads in the portable mode: a reduction's split (and so its rounding) depends on it."""
PORTABLE_CAPABILITY = "DEFAULT"
NUMERICS_PORTABLE = "portable"
NUMERICS_NATIVE = "native"
_CPUINFO = Path("/proc/cpuinfo")


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


def pin_portable_numerics() -> None:
    """Pin PyTorch's CPU numerics to paths every x86-64 CPU runs alike, for the rest of the process.

    Must run before torch executes its first operation in this process (torch reads the
    instruction-set choices once); the CLI calls it while it parses ``--deterministic``, before
    any data is loaded. Raises :class:`ConfigError` when it is too late, instead of running a
    "deterministic" run that is not portable.
    """
    os.environ.update(PORTABLE_ENV)
    torch.set_num_threads(PORTABLE_THREADS)
    got = cpu_capability()
    if got != PORTABLE_CAPABILITY:
        raise ConfigError(
            f"deterministic mode must pin the CPU kernels before torch first runs, but this process already "
            f"runs {got} kernels; start a fresh process (or set ATEN_CPU_CAPABILITY=default, MKL_CBWR=COMPATIBLE, "
            f"ONEDNN_MAX_CPU_ISA=SSE41 before starting Python)"
        )


def portable_numerics() -> bool:
    """Whether this process runs the pinned, portable CPU numerics (:func:`pin_portable_numerics`)."""
    return (
        all(os.environ.get(k) == v for k, v in PORTABLE_ENV.items())
        and torch.get_num_threads() == PORTABLE_THREADS
        and cpu_capability() == PORTABLE_CAPABILITY
    )


def cpu_capability() -> str:
    """The instruction-set level PyTorch's CPU kernels run at: ``DEFAULT``, ``AVX2``, ``AVX512``, ..."""
    return str(torch.backends.cpu.get_cpu_capability())


def _cpuinfo() -> str:
    """``/proc/cpuinfo`` ("" where there is none: not Linux, or a sandbox that hides it)."""
    try:
        return _CPUINFO.read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags ``/proc/cpuinfo`` lists for the CPU (empty where it lists none)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def math_libraries(cuda: bool = False) -> str:
    """The math libraries' versions a run computed with: torch, MKL, oneDNN, numpy (and CUDA, cuDNN)."""
    import numpy

    parts = [f"torch {torch.__version__}"]
    config = torch.__config__.show()
    for marker, name in (("Math Kernel Library Version ", "MKL"), ("MKL-DNN v", "oneDNN")):
        if marker in config:
            parts.append(f"{name} {config.split(marker, 1)[1].split()[0].split('-')[0]}")
    if cuda:
        parts.append(f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    parts.append(f"numpy {numpy.__version__}")
    return ", ".join(parts)


def numerics_fingerprint(device: str | torch.device = "cpu") -> dict[str, str]:
    """What a run's float results depend on besides its seed: CPU capability, mode, libraries, hardware.

    Keys are the setting names of :class:`svpkit.contract.Tag` (``cpu_capability``, ``numerics``,
    ``math_libraries``, ``hardware``); ``svpkit compare`` notes runs compared across different values.
    """
    resolved = resolve_device(device)
    hardware = cpu_model()
    if resolved.type == "cuda":
        hardware = torch.cuda.get_device_name(resolved)
    return {
        "cpu_capability": cpu_capability(),
        "numerics": NUMERICS_PORTABLE if portable_numerics() else NUMERICS_NATIVE,
        "math_libraries": math_libraries(cuda=resolved.type == "cuda"),
        "hardware": f"{resolved.type}: {hardware} ({sys.platform})",
    }


@functools.cache
def _glibc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library is another (musl, macOS, Windows);
    looked up on first use, not when svpkit is imported."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``; elsewhere nothing).

    A pass over a streamed pool frees a batch's tensors (tens of MB) every step while the loader's
    small objects land between them on the heap; glibc then reuses the holes only in part, and a
    32,000-image pass was measured to leave 0.5 to 3 GiB resident that way, differing run to run.
    Trimming every few batches keeps the pass bounded (docs/performance.md); a fixed mmap threshold
    would too, but halves the speed of training (measured)."""
    trim = _glibc_trim()
    if trim is not None:
        trim(0)


CACHE_ENV = "SVPKIT_CACHE"
"""Environment variable naming svpkit's cache folder (embedding stores, pixel statistics)."""


def cache_dir() -> Path:
    """svpkit's cache folder: ``$SVPKIT_CACHE``, else ``~/.cache/svpkit``."""
    given = os.environ.get(CACHE_ENV)
    return Path(given).expanduser() if given else Path.home() / ".cache" / "svpkit"
