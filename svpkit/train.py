"""The torch learner: fresh model per ``fit``, device-resident data, exact timers.

Design choices that keep the loop fast on GPU and CPU alike:
- the split is moved to the device once (uint8 images stay uint8 until the batch is drawn);
- augmentation (pad-4 random crop, horizontal flip) and normalisation run on the device per batch;
- no host synchronisation inside the hot loop (no ``.item()``): losses accumulate on the device;
- channels_last and bf16 autocast on CUDA; foreach SGD.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from svpkit.data.base import Dataset
from svpkit.models.base import LearnerOptions, ModelSpec, TrainConfig, TrainObserver, final_linear
from svpkit.progress import Advance


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        from svpkit.errors import ConfigError

        raise ConfigError(f"device {device!r} requested but CUDA is not available on this machine")
    return torch.device(device)


def derive_seed(seed: int, *keys: object) -> int:
    """A stable 31-bit seed for a named piece of a run (same on every machine and resume)."""
    text = ":".join([str(seed), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def split_tensors(
    spec: ModelSpec, dataset: Dataset, split: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of a split on ``device``, cached on the data set per model encoding."""
    cache: dict = dataset.extra.setdefault("_device_cache", {})
    key = (spec.encode.__qualname__ if spec.encode else "raw", split, str(device))
    if key not in cache:
        part = getattr(dataset, split)
        if spec.encode is not None:
            x = spec.encode(dataset, split)
        elif isinstance(part.x, torch.Tensor):
            x = part.x
        else:
            from svpkit.errors import ConfigError

            raise ConfigError(f"model {spec.name!r} cannot read {dataset.modality} inputs of {dataset.name!r}")
        cache[key] = (x.to(device), part.y.to(device))
    return cache[key]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Pad-``padding`` random crop and random horizontal flip of an NHWC batch, on its device.

    Padding is zeros in pixel space, as torchvision's ``RandomCrop(32, padding=4)`` on a PIL image.
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


class TorchLearner:
    """Learner for torch ``nn.Module`` models (see :class:`svpkit.models.base.Learner`)."""

    def __init__(self, spec: ModelSpec, dataset: Dataset, options: LearnerOptions) -> None:
        if spec.build is None:
            raise TypeError(f"model {spec.name!r} has no torch module builder")
        self.spec = spec
        self.dataset = dataset
        self.options = options
        self.device = resolve_device(options.device)
        config: TrainConfig = spec.train
        if options.epochs is not None:
            config = config.with_epochs(options.epochs)
        if options.batch_size is not None:
            config = TrainConfig(**{**config.__dict__, "batch_size": options.batch_size})
        if options.lr is not None:
            config = TrainConfig(**{**config.__dict__, "lr": options.lr})
        self.config = config
        self.model: torch.nn.Module | None = None
        self._cuda = self.device.type == "cuda"
        self.inference_batch_size = 4096 if self._cuda else 1024

    # -- inputs -------------------------------------------------------------------------------
    def _inputs(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return split_tensors(self.spec, self.dataset, split, self.device)

    def _prepare(self, x: torch.Tensor, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        if self.dataset.modality != "image" or self.spec.encode is not None:
            return x.float() if x.dtype == torch.uint8 else x
        x = x.float()
        if train and self.dataset.augment and generator is not None:
            x = random_crop_flip(x, generator)
        if self.dataset.mean is not None and self.dataset.std is not None:
            mean = torch.tensor(self.dataset.mean, device=x.device)
            std = torch.tensor(self.dataset.std, device=x.device)
            x = (x - mean) / std
        x = x.permute(0, 3, 1, 2)
        return x.contiguous(memory_format=torch.channels_last) if self._cuda else x.contiguous()

    def _new_model(self) -> torch.nn.Module:
        torch.manual_seed(self.options.seed)
        model = self.spec.build(self.dataset.num_classes, self.dataset.input_shape)  # type: ignore[misc]
        model = model.to(self.device)
        if self._cuda and self.dataset.modality == "image":
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return model

    # -- training -----------------------------------------------------------------------------
    def fit(
        self,
        indices: np.ndarray,
        observers: Sequence[TrainObserver] = (),
        progress: Advance | None = None,
    ) -> None:
        cfg = self.config
        model = self._new_model()
        self.model = model
        x_all, y_all = self._inputs("train")
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=self.device)
        for obs in observers:
            obs.on_fit_start(len(y_all), self.device)
        # Weight decay on every parameter, as in the paper's reference code.
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=cfg.lr_at(0),
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov,
            foreach=True,
        )
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.options.seed)
        n = idx.numel()
        bs = cfg.batch_size
        model.train()
        self.loss_history: list[torch.Tensor] = []
        for epoch in range(cfg.epochs):
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr_at(epoch)
            order = idx[torch.randperm(n, device=self.device, generator=generator)]
            loss_sum = torch.zeros((), device=self.device)
            for start in range(0, n, bs):
                batch = order[start : start + bs]
                xb = self._prepare(x_all[batch], train=True, generator=generator)
                yb = y_all[batch]
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self._cuda):
                    logits = model(xb)
                    loss = F.cross_entropy(logits.float(), yb)
                for obs in observers:
                    obs.on_train_batch(batch, logits.detach(), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * batch.numel()
            self.loss_history.append(loss_sum / max(n, 1))
            if progress is not None:
                progress(1)

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
            with torch.inference_mode(), torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self._cuda):
                for start in range(0, total, self.inference_batch_size):
                    sel = slice(start, start + self.inference_batch_size)
                    xb = x_all[sel] if idx is None else x_all[idx[sel]]
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
