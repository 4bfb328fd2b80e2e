"""The torch learner: fresh model per ``fit``, device-resident data, exact timers.

Design choices that keep the loop fast on GPU and CPU alike:
- each split is moved to the device once, images as uint8 (4× less memory and traffic than
  float); a split that does not fit in GPU memory stays in pinned host memory and only the
  batch is copied;
- augmentation (pad-4 random crop, horizontal flip) runs on the uint8 batch on the device, then
  one fused cast-and-normalise (mean and 1/std are prepared once per learner);
- no host synchronisation inside the hot loop (no ``.item()``): losses accumulate on the device
  and the epoch order is one ``randperm`` on the device;
- channels_last for image models on every device; bf16 autocast for training on CUDA and on
  CPUs with native bf16 (:mod:`svpkit.learners.acceleration`; scoring and embeddings stay
  float32); fused SGD on CUDA, foreach SGD elsewhere;
- optional ``torch.compile`` of the model for the full-size training batches (the last, smaller
  batch of an epoch runs the same module eagerly, so labeled sets of any size never recompile);
- inference in large batches (4,096 on CUDA, 1,024 on CPU).

Under ``torchrun`` a fit trains with DistributedDataParallel instead
(:func:`svpkit.learners.torch_ddp.fit_ddp`); both fits run the epoch loop of
:mod:`svpkit.learners.epochs`.

Learner options (``LearnerOptions.extra``; declared in
:data:`svpkit.learners.options.TORCH_LEARNER_OPTIONS`, set on the command line with
``--proxy-options``/``--target-options``): ``compile`` (``"auto"``: on where the fit has enough
full-size steps to repay the compile time, ``"on"``, ``"off"``), ``compile_mode``
(torch's default when unset, or e.g. ``"reduce-overhead"`` for CUDA graphs), ``channels_last``
(default on for image models) and ``amp`` (bf16 autocast of training: ``"auto"``, ``"on"``, ``"off"``),
``lr_scaling`` (``"none"``, ``"linear"`` or ``"sqrt"``: how the learning rate follows a batch size
other than the model's default) and ``inference_batch_size``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from svpkit import parallel
from svpkit.data.base import Dataset
from svpkit.data.streaming import StreamedImages, integer_rows, row_batches
from svpkit.errors import ConfigError
from svpkit.learners.acceleration import COMPILE_MIN_STEPS, resolve_amp, use_compile
from svpkit.learners.epochs import Fit, FitResult, fit_timings, run_epochs, sgd_step, start_fit
from svpkit.learners.options import resolve_model_options
from svpkit.learners.torch_ddp import fit_ddp
from svpkit.models.base import ModelSpec, TrainConfig, final_linear
from svpkit.models.options import option_defaults
from svpkit.progress import Advance
from svpkit.protocols import LearnerOptions, TrainObserver
from svpkit.runtime import resolve_device, use_deterministic_algorithms
from svpkit.timing import synchronize

# A split is kept on the GPU when it needs at most this share of the free GPU memory.
DEVICE_RESIDENT_SHARE = 0.5


def _fits_on_device(x: torch.Tensor, device: torch.device) -> bool:
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return x.numel() * x.element_size() <= DEVICE_RESIDENT_SHARE * free


def split_tensors(
    spec: ModelSpec,
    dataset: Dataset,
    split: str,
    device: torch.device,
    model_options: Mapping[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of a split, cached on the data set per model encoding.

    ``model_options`` are the model's own options (:func:`svpkit.models.options.option_defaults`),
    which ``spec.encode`` reads. Labels are always on ``device``; inputs are on ``device`` when they
    fit (see :data:`DEVICE_RESIDENT_SHARE`), else in pinned host memory (the learner copies each
    batch).
    """
    cache: dict = dataset.extra.setdefault("_device_cache", {})
    encoding = option_defaults(spec, {}) if model_options is None else dict(model_options)
    encoder = spec.encode.__qualname__ if spec.encode else "raw"
    key = (encoder, tuple(sorted(encoding.items())) if spec.encode else (), split, str(device))
    if key not in cache:
        part = getattr(dataset, split)
        if spec.encode is not None:
            x = spec.encode(dataset, split, encoding)
        elif isinstance(part.x, (torch.Tensor, StreamedImages)):  # a streamed pool stays on its files
            x = cast(torch.Tensor, part.x)  # a StreamedImages is indexed like the tensor it stands for
        else:
            raise ConfigError(f"model {spec.name!r} cannot read {dataset.modality} inputs of {dataset.name!r}")
        if _fits_on_device(x, device):
            x = x.to(device)
        elif device.type == "cuda":
            x = x.pin_memory()
        cache[key] = (x, part.y.to(device))
    return cache[key]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Pad-``padding`` random crop and random horizontal flip of an NHWC batch, on its device.

    Works on any dtype (uint8 images are cropped before they are cast: a quarter of the memory
    traffic). Padding is zeros in pixel space, as torchvision's ``RandomCrop(32, padding=4)`` on
    a PIL image.
    """
    n, h, w, _ = x.shape
    padded = F.pad(x, (0, 0, padding, padding, padding, padding))
    dev = x.device
    oy = torch.randint(0, 2 * padding + 1, (n,), device=dev, generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (n,), device=dev, generator=generator)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, :, None]
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, :]
    flip = torch.rand(n, device=dev, generator=generator) < 0.5
    cols = torch.where(flip[:, None, None], cols.flip(2), cols)
    batch = torch.arange(n, device=dev)[:, None, None]
    return padded[batch, rows, cols]


def scaled_lr(lr: float, batch_size: int, base_batch_size: int, rule: str) -> float:
    """Learning rate for ``batch_size`` given the recipe's ``lr`` at ``base_batch_size``."""
    if rule == "none" or batch_size == base_batch_size:
        return lr
    if rule == "linear":
        return lr * batch_size / base_batch_size
    if rule == "sqrt":
        return lr * math.sqrt(batch_size / base_batch_size)
    raise ConfigError(f"lr_scaling must be none, linear or sqrt, not {rule!r}")


class _CompileClock:
    """Times the first full-size step of a compiled fit (where the compilation happens)."""

    def __init__(self, compiled: bool, batch_size: int, device: torch.device) -> None:
        self.pending = compiled
        self.batch_size = batch_size
        self.device = device
        self.seconds = 0.0

    @contextmanager
    def __call__(self, batch: torch.Tensor) -> Iterator[None]:
        if not (self.pending and batch.numel() == self.batch_size):
            yield
            return
        synchronize(self.device)
        t0 = time.perf_counter()
        yield
        synchronize(self.device)
        self.seconds = time.perf_counter() - t0
        self.pending = False


class TorchLearner:
    """Learner for torch ``nn.Module`` models (see :class:`svpkit.protocols.Learner`).

    After ``fit``, ``timings`` holds ``train_seconds`` (the whole fit, CUDA synchronised),
    ``compile_seconds`` (the first compiled step, included in ``train_seconds``), ``steps`` and
    ``images``; ``warm_up()`` returns and records ``warmup_seconds``.
    """

    counts_examples = True  # fit's progress advances by each minibatch's examples (protocols.CountsExamples)

    def __init__(self, spec: ModelSpec, dataset: Dataset, options: LearnerOptions) -> None:
        if spec.build is None:
            raise TypeError(f"model {spec.name!r} has no torch module builder")
        self.spec, self.dataset, self.options = spec, dataset, options
        self.device = resolve_device(options.device)
        # Unknown names and values of the wrong type are a ConfigError (svpkit.learners.options).
        extra = resolve_model_options(spec, options.extra, f"options of {spec.name}")
        self.model_options = option_defaults(spec, extra)
        config: TrainConfig = spec.train
        if options.epochs is not None:
            config = config.with_epochs(options.epochs)
        if options.batch_size is not None:
            lr = scaled_lr(config.lr, options.batch_size, config.batch_size, str(extra.get("lr_scaling", "none")))
            config = replace(config, batch_size=options.batch_size, lr=lr)
        if options.lr is not None:
            config = replace(config, lr=options.lr)
        self.config = config
        self.model: torch.nn.Module | None = None
        self._cuda = self.device.type == "cuda"
        self._image = dataset.modality == "image" and spec.encode is None
        # channels_last pays on CPU too (oneDNN convolutions: 1.3x per ResNet20 epoch on 2 cores).
        self.channels_last = bool(extra.get("channels_last", True)) and self._image
        self.amp = resolve_amp(str(extra.get("amp", "auto")), self.device, spec.modalities)
        self.compile = str(extra.get("compile", "auto"))
        self.compile_mode: str | None = extra.get("compile_mode")
        self.inference_batch_size = int(extra.get("inference_batch_size") or (4096 if self._cuda else 1024))
        if getattr(options, "deterministic", False):
            use_deterministic_algorithms()
        elif self._cuda:
            # Fixed batch shapes: let cuDNN time its convolution algorithms once per shape.
            torch.backends.cudnn.benchmark = True
        self.timings: dict[str, float] = {}
        self.loss_history: list[torch.Tensor] = []
        self._mean: torch.Tensor | None = None
        self._inv_std: torch.Tensor | None = None
        if self._image and dataset.mean is not None and dataset.std is not None:
            self._mean = torch.tensor(dataset.mean, dtype=torch.float32, device=self.device)
            self._inv_std = 1.0 / torch.tensor(dataset.std, dtype=torch.float32, device=self.device)

    # -- inputs and building blocks (shared with the DDP fit) ---------------------------------
    def inputs(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels) of a whole split (:func:`split_tensors`)."""
        return split_tensors(self.spec, self.dataset, split, self.device, self.model_options)

    def _gather(self, x_all: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if x_all.device == self.device:
            return x_all[idx]
        return x_all[idx.to(x_all.device)].to(self.device, non_blocking=True)

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Model input from a raw batch; with a ``generator``, a training batch (augmented when the data set augments)."""
        if not self._image:
            return x.float() if x.dtype == torch.uint8 else x
        if generator is not None and self.dataset.augment:
            x = random_crop_flip(x, generator)
        x = x.float()
        if self._mean is not None and self._inv_std is not None:
            x = (x - self._mean) * self._inv_std
        # NHWC permuted to NCHW *is* channels_last in memory: no copy on that path.
        x = x.permute(0, 3, 1, 2)
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def batch_inputs(
        self, x_all: torch.Tensor, idx: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """:meth:`prepare` of the rows ``idx`` of a split's inputs, on the device."""
        return self.prepare(self._gather(x_all, idx), generator)

    def autocast(self) -> torch.autocast:
        """bf16 autocast when ``amp`` is on (a no-op context otherwise)."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def new_model(self) -> torch.nn.Module:
        """A fresh model from the run's seed, on the device (channels_last where that is on)."""
        torch.manual_seed(self.options.seed)
        model = self.spec.build(self.dataset.num_classes, self.dataset.input_shape)  # type: ignore[misc]
        if self.spec.weights is not None:  # pretrained weights (ModelSpec.weights)
            self.spec.weights(model, self.model_options)
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return model

    def _use_compile(self, full_steps: int) -> bool:
        return use_compile(self.compile, self.device, full_steps)

    def new_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """SGD of the recipe at the first epoch's learning rate."""
        cfg = self.config
        # Weight decay on every parameter, as in the paper's reference code.
        fused = {"fused": True} if self._cuda else {"foreach": True}
        return torch.optim.SGD(
            model.parameters(),
            lr=cfg.lr_at(0),
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov,
            **fused,
        )

    # -- training -----------------------------------------------------------------------------
    def fit(
        self,
        indices: np.ndarray,
        observers: Sequence[TrainObserver] = (),
        progress: Advance | None = None,
    ) -> None:
        if parallel.is_distributed():  # under torchrun: DistributedDataParallel, same recipe
            done = fit_ddp(self, indices, observers=observers, progress=progress)
        else:
            done = self._fit_here(indices, observers, progress)
        self.model, self.loss_history, self.timings = done.model, done.losses, done.timings

    def _fit_here(self, indices: np.ndarray, observers: Sequence[TrainObserver], progress: Advance | None) -> FitResult:
        """The fit in this process (compiled where that pays)."""
        synchronize(self.device)
        t0 = time.perf_counter()
        cfg = self.config
        fit = start_fit(self, self.new_model(), indices, observers)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.options.seed)
        n = fit.indices.numel()
        compiled = self._use_compile((n // cfg.batch_size) * cfg.epochs)
        step_model: Any = torch.compile(fit.model, mode=self.compile_mode) if compiled else fit.model
        clock = _CompileClock(compiled, cfg.batch_size, self.device)
        step = partial(self._step, fit, step_model, compiled, generator)
        fit.model.train()
        losses = run_epochs(fit, cfg, generator, step, progress, around=clock)
        synchronize(self.device)
        return FitResult(fit.model, losses, fit_timings(time.perf_counter() - t0, n, cfg, clock.seconds, compiled))

    def _step(
        self, fit: Fit, step_model: Any, compiled: bool, generator: torch.Generator, batch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        xb = self.batch_inputs(fit.x, batch, generator)
        yb = fit.y[batch]
        with self.autocast():
            # The last, smaller batch runs the same parameters eagerly: no recompiling for every
            # labeled-set size.
            logits = (step_model if batch.numel() == self.config.batch_size else fit.model)(xb)
            loss = F.cross_entropy(logits.float(), yb)
        if fit.observers:
            seen = logits.detach()
            if compiled and self.compile_mode == "reduce-overhead":
                seen = seen.clone()  # CUDA-graph outputs are overwritten by the next replay
            for obs in fit.observers:
                obs.on_train_batch(batch, seen, yb)
        return loss, loss.detach() * batch.numel()

    def warm_up(self, steps: int = 1) -> float:
        """Pay the process's one-off costs outside any timed region and return their seconds.

        Builds a throwaway model and runs ``steps`` training steps and one inference batch: CUDA
        context and cuDNN/BLAS heuristics, the allocator's pools, oneDNN and thread-pool start-up
        on CPU and, when this learner would compile, the compiled graph (torch reuses it for
        later models of the same class). On CUDA the steps are full-size (the shapes the fit will
        use); on the CPU, where a full step is pure compute rather than start-up, they take 8
        examples. Nothing of this learner's state changes.
        """
        synchronize(self.device)
        t0 = time.perf_counter()
        x_all, y_all = self.inputs("train")
        compiled = self._use_compile(COMPILE_MIN_STEPS.get(self.device.type, 0) if self.compile == "auto" else 1)
        batch_size = self.config.batch_size if (self._cuda or compiled) else min(8, self.config.batch_size)
        n = min(len(y_all), batch_size * steps)
        idx = torch.arange(n, device=self.device)
        model = self.new_model()
        step_model: Any = torch.compile(model, mode=self.compile_mode) if compiled else model
        optimizer = self.new_optimizer(model)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(0)
        model.train()
        for batch in idx.split(batch_size):
            xb = self.batch_inputs(x_all, batch, generator)
            with self.autocast():
                loss = F.cross_entropy(step_model(xb).float(), y_all[batch])
            sgd_step(optimizer, loss)
        model.eval()
        with torch.inference_mode():
            model(self.batch_inputs(x_all, idx[: self.inference_batch_size]))
        synchronize(self.device)
        seconds = time.perf_counter() - t0
        self.timings["warmup_seconds"] = seconds
        return seconds

    # -- inference ----------------------------------------------------------------------------
    def input_batches(self, indices: np.ndarray | None = None, split: str = "train") -> Iterator[torch.Tensor]:
        """The rows ``indices`` of a split (None: all) as prepared inputs on the device, one inference batch
        at a time (:meth:`outputs` scores one); a streamed pool decodes the next while the model runs."""
        x_all, _ = self.inputs(split)
        idx = None if indices is None else torch.as_tensor(integer_rows(indices), device=self.device)
        for raw in row_batches(x_all, idx, self.inference_batch_size):
            yield self.prepare(raw.to(self.device, non_blocking=True))

    def outputs(self, x: torch.Tensor, embed: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(softmax, penultimate features or None) of one prepared batch, in eval mode; float32 whatever
        the training precision (bf16 ties uncertainty scores and reorders k-center's picks)."""
        if self.model is None:
            raise RuntimeError("fit() must run before inference")
        model = self.model
        model.eval()
        captured: list[torch.Tensor] = []
        handle = final_linear(model).register_forward_pre_hook(lambda _m, a: captured.append(a[0])) if embed else None
        try:
            with torch.inference_mode():
                probs = torch.softmax(model(x).float(), dim=1)
        finally:
            if handle is not None:
                handle.remove()
        return probs, (captured.pop().float().flatten(1) if embed else None)

    def _forward_all(self, indices: np.ndarray | None, split: str, embed: bool) -> torch.Tensor:
        if self.model is None:
            raise RuntimeError("fit() must run before inference")
        parts = [self.outputs(x, embed)[1 if embed else 0] for x in self.input_batches(indices, split)]
        return torch.cat(cast(list[torch.Tensor], parts)) if parts else torch.empty((0, 0), device=self.device)

    def predict_proba(self, indices: np.ndarray | None = None, split: str = "train") -> torch.Tensor:
        return self._forward_all(indices, split, embed=False)

    def embed(self, indices: np.ndarray | None = None, split: str = "train") -> torch.Tensor:
        return self._forward_all(indices, split, embed=True)

    def error(self, split: str = "test") -> float:
        """Top-1 error over the split, counted batch by batch (no N × C matrix is kept)."""
        _, y = self.inputs(split)
        wrong, start = torch.zeros((), dtype=torch.int64, device=self.device), 0
        for x in self.input_batches(None, split):
            probs, _ = self.outputs(x)
            wrong += (probs.argmax(1) != y[start : start + len(probs)]).sum()
            start += len(probs)
        return float((wrong.to(torch.float32) / max(start, 1)).item())  # the float32 mean, as before
