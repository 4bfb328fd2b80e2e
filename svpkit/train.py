"""The torch learner: fresh model per ``fit``, device-resident data, exact timers.

Design choices that keep the loop fast on GPU and CPU alike:
- each split is moved to the device once, images as uint8 (4× less memory and traffic than
  float); a split that does not fit in GPU memory stays in pinned host memory and only the
  batch is copied;
- augmentation (pad-4 random crop, horizontal flip) runs on the uint8 batch on the device, then
  one fused cast-and-normalise (mean and 1/std are prepared once per learner);
- no host synchronisation inside the hot loop (no ``.item()``): losses accumulate on the device
  and the epoch order is one ``randperm`` on the device;
- channels_last for image models on every device; bf16 autocast on CUDA; fused SGD on CUDA,
  foreach SGD elsewhere;
- optional ``torch.compile`` of the model for the full-size training batches (the last, smaller
  batch of an epoch runs the same module eagerly, so labeled sets of any size never recompile);
- inference in large batches (4,096 on CUDA, 1,024 on CPU).

Learner options (``LearnerOptions.extra``; declared in :data:`svpkit.models.options.TORCH_LEARNER_OPTIONS`,
set on the command line with ``--proxy-options``/``--target-options``): ``compile`` (``"auto"``: on for CUDA when the fit
has enough full-size steps to repay the compile time, ``"on"``, ``"off"``), ``compile_mode``
(torch's default when unset, or e.g. ``"reduce-overhead"`` for CUDA graphs), ``channels_last``
(default on for image models) and ``amp`` (bf16 autocast; default on for CUDA only),
``lr_scaling`` (``"none"``, ``"linear"`` or ``"sqrt"``: how the learning rate follows a batch size
other than the model's default) and ``inference_batch_size``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from svpkit.data.base import Dataset
from svpkit.models.base import ModelSpec, TrainConfig, final_linear
from svpkit.models.options import option_defaults, resolve_model_options
from svpkit.progress import Advance
from svpkit.protocols import LearnerOptions, TrainObserver
from svpkit.runtime import resolve_device
from svpkit.timing import synchronize

# A compiled training step costs tens of seconds to compile; below this many full-size steps
# in one fit the eager loop is faster end to end ("auto" compile leaves it off).
COMPILE_MIN_STEPS = 20_000
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
        elif isinstance(part.x, torch.Tensor):
            x = part.x
        else:
            from svpkit.errors import ConfigError

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
    from svpkit.errors import ConfigError

    raise ConfigError(f"lr_scaling must be none, linear or sqrt, not {rule!r}")


class TorchLearner:
    """Learner for torch ``nn.Module`` models (see :class:`svpkit.models.base.Learner`).

    After ``fit``, ``timings`` holds ``train_seconds`` (the whole fit, CUDA synchronised),
    ``compile_seconds`` (the first compiled step, included in ``train_seconds``), ``steps`` and
    ``images``; ``warm_up()`` returns and records ``warmup_seconds``.
    """

    def __init__(self, spec: ModelSpec, dataset: Dataset, options: LearnerOptions) -> None:
        if spec.build is None:
            raise TypeError(f"model {spec.name!r} has no torch module builder")
        self.spec = spec
        self.dataset = dataset
        self.options = options
        self.device = resolve_device(options.device)
        # Unknown names and values of the wrong type are a ConfigError (svpkit.models.options).
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
        self.amp = bool(extra.get("amp", self._cuda)) and self._cuda
        self.compile = str(extra.get("compile", "auto"))
        self.compile_mode: str | None = extra.get("compile_mode")
        self.inference_batch_size = int(extra.get("inference_batch_size") or (4096 if self._cuda else 1024))
        if getattr(options, "deterministic", False):
            from svpkit.runtime import use_deterministic_algorithms

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

    # -- inputs -------------------------------------------------------------------------------
    def _inputs(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return split_tensors(self.spec, self.dataset, split, self.device, self.model_options)

    def _gather(self, x_all: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if x_all.device == self.device:
            return x_all[idx]
        return x_all[idx.to(x_all.device)].to(self.device, non_blocking=True)

    def _prepare(self, x: torch.Tensor, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        if not self._image:
            return x.float() if x.dtype == torch.uint8 else x
        if train and self.dataset.augment and generator is not None:
            x = random_crop_flip(x, generator)
        x = x.float()
        if self._mean is not None and self._inv_std is not None:
            x = (x - self._mean) * self._inv_std
        # NHWC permuted to NCHW *is* channels_last in memory: no copy on that path.
        x = x.permute(0, 3, 1, 2)
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def _new_model(self) -> torch.nn.Module:
        torch.manual_seed(self.options.seed)
        model = self.spec.build(self.dataset.num_classes, self.dataset.input_shape)  # type: ignore[misc]
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return model

    def _use_compile(self, full_steps: int) -> bool:
        if self.compile == "off":
            return False
        if self.compile == "on":
            return True
        return self._cuda and full_steps >= COMPILE_MIN_STEPS

    def _optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
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
        from svpkit import distributed

        if distributed.is_distributed():  # under torchrun: DistributedDataParallel, same recipe
            distributed.fit_ddp(self, indices, observers=observers, progress=progress)
            return
        synchronize(self.device)
        t0 = time.perf_counter()
        cfg = self.config
        model = self._new_model()
        self.model = model
        x_all, y_all = self._inputs("train")
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=self.device)
        for obs in observers:
            obs.on_fit_start(len(y_all), self.device)
        optimizer = self._optimizer(model)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.options.seed)
        n = idx.numel()
        bs = cfg.batch_size
        full_steps = (n // bs) * cfg.epochs
        step_model: Any = model
        compiled = self._use_compile(full_steps)
        if compiled:
            step_model = torch.compile(model, mode=self.compile_mode)
        compile_seconds = 0.0
        first_compiled_step = compiled
        model.train()
        self.loss_history = []
        for epoch in range(cfg.epochs):
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr_at(epoch)
            order = idx[torch.randperm(n, device=self.device, generator=generator)]
            loss_sum = torch.zeros((), device=self.device)
            for batch in order.split(bs):
                full = batch.numel() == bs
                if first_compiled_step and full:
                    synchronize(self.device)
                    c0 = time.perf_counter()
                xb = self._prepare(self._gather(x_all, batch), train=True, generator=generator)
                yb = y_all[batch]
                with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    # The last, smaller batch runs the same parameters eagerly: no recompiling
                    # for every labeled-set size.
                    logits = (step_model if full else model)(xb)
                    loss = F.cross_entropy(logits.float(), yb)
                if observers:
                    seen = logits.detach()
                    if compiled and self.compile_mode == "reduce-overhead":
                        seen = seen.clone()  # CUDA-graph outputs are overwritten by the next replay
                    for obs in observers:
                        obs.on_train_batch(batch, seen, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * batch.numel()
                if first_compiled_step and full:
                    synchronize(self.device)
                    compile_seconds = time.perf_counter() - c0
                    first_compiled_step = False
            self.loss_history.append(loss_sum / max(n, 1))
            if progress is not None:
                progress(1)
        synchronize(self.device)
        end = time.perf_counter()
        self.timings = {
            "train_seconds": end - t0,
            "compile_seconds": compile_seconds,
            "steps": float(math.ceil(n / bs) * cfg.epochs),
            "images": float(n * cfg.epochs),
            "compiled": float(compiled),
        }

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
        x_all, y_all = self._inputs("train")
        compiled = self._use_compile(COMPILE_MIN_STEPS if self.compile == "auto" else 1)
        batch_size = self.config.batch_size if (self._cuda or compiled) else min(8, self.config.batch_size)
        n = min(len(y_all), batch_size * steps)
        idx = torch.arange(n, device=self.device)
        model = self._new_model()
        step_model: Any = model
        if compiled:
            step_model = torch.compile(model, mode=self.compile_mode)
        optimizer = self._optimizer(model)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(0)
        model.train()
        for batch in idx.split(batch_size):
            xb = self._prepare(self._gather(x_all, batch), train=True, generator=generator)
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                loss = F.cross_entropy(step_model(xb).float(), y_all[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with (
            torch.inference_mode(),
            torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp),
        ):
            model(self._prepare(self._gather(x_all, idx[: self.inference_batch_size]), train=False, generator=None))
        synchronize(self.device)
        seconds = time.perf_counter() - t0
        self.timings["warmup_seconds"] = seconds
        return seconds

    # -- inference ----------------------------------------------------------------------------
    def _forward_all(self, indices: np.ndarray | None, split: str, embed: bool) -> torch.Tensor:
        if self.model is None:
            raise RuntimeError("fit() must run before inference")
        x_all, _ = self._inputs(split)
        idx = None if indices is None else torch.as_tensor(np.asarray(indices, dtype=np.int64), device=self.device)
        total = x_all.shape[0] if idx is None else idx.numel()
        model = self.model
        model.eval()
        outputs: list[torch.Tensor] = []
        captured: list[torch.Tensor] = []
        handle = None
        if embed:
            handle = final_linear(model).register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            with (
                torch.inference_mode(),
                torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp),
            ):
                for start in range(0, total, self.inference_batch_size):
                    sel = slice(start, start + self.inference_batch_size)
                    if idx is None:
                        xb = x_all[sel].to(self.device, non_blocking=True)
                    else:
                        xb = self._gather(x_all, idx[sel])
                    logits = model(self._prepare(xb, train=False, generator=None))
                    if embed:
                        outputs.append(captured.pop().float().flatten(1))
                    else:
                        outputs.append(torch.softmax(logits.float(), dim=1))
        finally:
            if handle is not None:
                handle.remove()
        if not outputs:
            return torch.empty((0, 0), device=self.device)
        return torch.cat(outputs)

    def predict_proba(self, indices: np.ndarray | None = None, split: str = "train") -> torch.Tensor:
        return self._forward_all(indices, split, embed=False)

    def embed(self, indices: np.ndarray | None = None, split: str = "train") -> torch.Tensor:
        return self._forward_all(indices, split, embed=True)

    def error(self, split: str = "test") -> float:
        probs = self.predict_proba(None, split)
        _, y = self._inputs(split)
        return float((probs.argmax(1) != y).float().mean().item())
