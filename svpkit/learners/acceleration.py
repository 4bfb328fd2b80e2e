"""What the torch learner turns on per device: bf16 autocast (``amp``) and ``torch.compile``.

``amp`` is ``auto``, ``on`` or ``off``. ``auto`` trains under bf16 autocast on CUDA (every torch
model) and, for image and text models, on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX:
:func:`cpu_has_native_bf16`) when :data:`CPU_BF16_BY_DEFAULT` says so, except in the portable
numerics of ``--deterministic`` (float32, the same on every CPU). Under autocast the master
weights, the optimizer, the loss and everything used for selection stay float32: the learner
scores and embeds with float32 forward passes, because bf16 logits tie least-confidence and
entropy scores and bf16 embeddings reorder k-center's near-ties (``benchmarks/bench_parity.py``
measures both). A run logs what its models trained in as tag ``svpkit.amp`` (:func:`amp_tag`).

``compile`` is ``auto``, ``on`` or ``off``; ``auto`` compiles a fit with at least
:data:`COMPILE_MIN_STEPS` full-size steps for its device type, where the compile time is repaid.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch

from svpkit.models.base import ModelSpec
from svpkit.runtime import cpu_flags, portable_numerics

CPU_BF16_BY_DEFAULT = True
"""Whether ``amp=auto`` trains in bf16 on CPUs with native bf16. The one switch for the CPU
default, on since the accuracy-parity run (``benchmarks/cpu_evidence.sh``, 2026-12-02, table in
docs/performance.md: ResNet20, 10,000 CIFAR-10 images, 15 epochs, seeds 0 and 1) put bf16's mean
test error 0.27 points below float32's, inside the 1.66-point seed-to-seed spread; bf16 trains
2.0x (ResNet20) to 1.9x (ResNet164) faster than float32 on that CPU."""
CPU_BF16_MODALITIES = frozenset({"image", "text"})
"""The models ``amp=auto`` may train in bf16 on the CPU (convolutional image and text models)."""
COMPILE_MIN_STEPS: dict[str, int] = {"cuda": 20_000}
"""Full-size steps from which ``compile=auto`` compiles a fit, per device type: compiling costs
tens of seconds (minutes on a small CPU) and pays only over enough steps. A device type without
an entry never compiles under ``auto``. The CPU has none: on the 2-core bf16 CPU, inductor took 56 s to
compile ResNet20's step and the compiled step ran slower than the eager one (979 vs 1,065 img/s,
``benchmarks/bench_train.py --arms amp=on amp=on,compile=on``), so it never pays there."""
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX), as torch reports it or,
    where torch does not say, as ``/proc/cpuinfo`` lists its flags."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            return True
    return bool(cpu_flags() & set(_CPU_BF16_FLAGS))


def resolve_amp(setting: str, device: torch.device, modalities: tuple[str, ...]) -> bool:
    """Whether a model of ``modalities`` trains under bf16 autocast on ``device`` for ``amp=setting``."""
    if setting in ("on", "off"):
        return setting == "on"
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        if portable_numerics():  # --deterministic: bf16 exists natively on some CPUs only
            return False
        return CPU_BF16_BY_DEFAULT and bool(CPU_BF16_MODALITIES & set(modalities)) and cpu_has_native_bf16()
    return False


def use_compile(setting: str, device: torch.device, full_steps: int) -> bool:
    """Whether a fit of ``full_steps`` full-size steps on ``device`` runs compiled for ``compile=setting``."""
    if setting in ("on", "off"):
        return setting == "on"
    threshold = COMPILE_MIN_STEPS.get(device.type)
    return threshold is not None and full_steps >= threshold


def model_precision(spec: ModelSpec, options: Mapping[str, object], device: torch.device) -> str:
    """``bf16`` or ``fp32``: what the torch learner trains ``spec`` in; ``none`` for other learners."""
    if spec.learner is not None or spec.build is None:
        return "none"
    return "bf16" if resolve_amp(str(options.get("amp", "auto")), device, spec.modalities) else "fp32"


def amp_tag(models: Mapping[str, tuple[ModelSpec, Mapping[str, object]]], device: torch.device) -> str:
    """The ``svpkit.amp`` value: ``role=precision`` per model of the run (``proxy=bf16,target=bf16``)."""
    return ",".join(f"{role}={model_precision(spec, opts, device)}" for role, (spec, opts) in sorted(models.items()))
