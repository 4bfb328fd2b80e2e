"""The roofline column of the training benchmarks: training FLOPs per image and the device's matmul peak.

* :func:`training_flops_per_image` counts what one training step of the learner's model does per
  image (forward, loss and backward) with ``torch.utils.flop_counter.FlopCounterMode`` on a few
  real, prepared training images (a multiply-add counts 2 FLOPs; element-wise work is not
  counted, so the figure is the matrix work the peak below can be compared with).
* :func:`measure_peaks` times square matmuls on the device at float32 and bfloat16 in the run
  that uses them (same process, threads and load), best of several, CUDA synchronised. A CPU
  without native bf16 (no AVX512-BF16 or AMX, e.g. AVX2 only) has no bf16 peak: torch emulates
  bf16 matmuls there at a small fraction of float32's rate, and dividing by that emulated rate
  gave "fractions of peak" far above 1 (``fraction_of_bf16_peak: 245.8``); its bf16 peak is
  ``None`` and every bf16 fraction is omitted (``None`` in the JSON, "—" in tables).
* :func:`roofline` turns an images/s figure into achieved GFLOP/s and its fraction of a peak.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from svpkit.timing import synchronize

PEAK_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Large enough to reach the device's sustained matmul rate, small enough to time in about a second.
PEAK_SIZE = {"cpu": 2048, "cuda": 8192}


def training_flops_per_image(learner: Any, images: int = 4) -> float:
    """FLOPs of one training step per image for ``learner``'s model (a fresh one; nothing of the
    learner changes). ``learner`` is a :class:`svpkit.learners.torch.TorchLearner`."""
    x_all, y_all = learner.inputs("train")
    idx = torch.arange(min(images, len(y_all)), device=learner.device)
    model = learner.new_model()
    model.train()
    generator = torch.Generator(device=learner.device).manual_seed(0)
    xb = learner.batch_inputs(x_all, idx, generator)
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(xb).float(), y_all[idx]).backward()
    return counter.get_total_flops() / idx.numel()


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int | None = None, min_seconds: float = 1.0) -> dict:
    """GFLOP/s of an n×n matmul at ``dtype`` on ``device``: best of repeated timings."""
    n = n or PEAK_SIZE.get(device.type, 2048)
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    for _ in range(2):  # library start-up, kernel choice
        torch.mm(a, b)
    seconds: list[float] = []
    started = time.perf_counter()
    while len(seconds) < 3 or (time.perf_counter() - started < min_seconds and len(seconds) < 50):
        synchronize(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        seconds.append(time.perf_counter() - t0)
    return {"n": n, "gflops": 2 * n**3 / min(seconds) / 1e9, "seconds": seconds}


def has_peak(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``device`` computes at ``dtype`` natively (a CPU's bf16 needs AVX512-BF16 or AMX)."""
    from svpkit.learners.acceleration import cpu_has_native_bf16

    return not (device.type == "cpu" and dtype == torch.bfloat16 and not cpu_has_native_bf16())


NO_PEAK = {"n": None, "gflops": None, "seconds": [], "note": "no native bf16 on this CPU: emulated, not a peak"}


def measure_peaks(device: torch.device, n: int | None = None, min_seconds: float = 1.0) -> dict[str, dict]:
    """:func:`matmul_peak` at every precision the benchmarks train in, by dtype name (``NO_PEAK``
    where the device does not compute at that precision natively)."""
    peaks = {
        name: matmul_peak(device, dtype, n, min_seconds) if has_peak(device, dtype) else dict(NO_PEAK)
        for name, dtype in PEAK_DTYPES.items()
    }
    for name, peak in peaks.items():
        print(f"{device.type} matmul peak {name}: {peak_text(peak)} GFLOP/s ({peak['n'] or '-'}³)")
    return peaks


def peak_text(peak: dict[str, Any]) -> str:
    """A peak's GFLOP/s as tables write it: ``1,234``, or ``—`` for none."""
    return "—" if not peak.get("gflops") else f"{peak['gflops']:,.0f}"


def percent_text(fraction: float | None, digits: int = 1) -> str:
    """``12.3 %``, or ``—`` for a fraction that does not exist (no peak)."""
    return "—" if fraction is None or fraction != fraction else f"{100 * fraction:.{digits}f} %"


def roofline(flops_per_image: float, images_per_second: float, peak_gflops: float | None) -> dict[str, Any]:
    """Achieved GFLOP/s of a training loop and its fraction of ``peak_gflops`` (None without a peak)."""
    achieved = flops_per_image * images_per_second / 1e9
    fraction = achieved / peak_gflops if peak_gflops and peak_gflops > 0 else None
    return {"achieved_gflops": achieved, "fraction_of_peak": fraction}


def precision_of(learner: Any) -> str:
    """The matmul precision ``learner`` trains at: bfloat16 under autocast, else float32."""
    return "bfloat16" if getattr(learner, "amp", False) else "float32"
