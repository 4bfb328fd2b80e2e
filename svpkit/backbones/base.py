"""What a backbone is, and a run's backbone resolved to verified weights.

A :class:`BackboneSpec` is a frozen feature extractor: the inputs it reads (``image`` or
``text``), the width of its embedding, its preprocessing (:class:`Preprocessing`: the input size
and either ImageNet mean/std or [−1, 1] scaling — the backbone's, never the data set's), and its
weights (:class:`Weights`: where they come from, their license, their sha256). ``load(path,
device)`` builds the network from a weights file and returns an :data:`Encoder`.

A run names a backbone with ``--backbone NAME`` and may set ``--backbone-options``
(:data:`BACKBONE_OPTIONS`: ``size``, ``weights`` (another weights file), ``sha256``, ``dtype``,
``batch_size``). :func:`resolve_backbone` checks them before any run exists: the weights file must
exist and match its sha256 (the registered one for the backbone's own weights, ``sha256=`` for a
file given with ``weights=``), else a :class:`WeightsError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from svpkit.data.embeddings import DTYPES, file_digest
from svpkit.errors import ConfigError
from svpkit.options import Option, check_known, parse_options_text

Encoder = Callable[[Any], torch.Tensor]
"""A loaded backbone: a preprocessed batch (float NCHW images, or a list of texts) → N×dim features."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SCALES = ("mean_std", "minus_one_one")


class WeightsError(ConfigError):
    """A backbone's weights file is missing or does not match its sha256."""


@dataclass(frozen=True)
class Preprocessing:
    """How images reach the backbone: resized to ``size``×``size`` (0: as they are), scaled to
    [0, 1], then ``mean_std`` ((x − mean) / std) or ``minus_one_one`` (2x − 1). Text: as it is."""

    size: int = 0
    scale: str = "mean_std"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def text(self) -> str:
        """Canonical text (part of the embedding store's key)."""
        if self.scale == "minus_one_one":
            return f"size={self.size},scale=[-1,1]"
        return f"size={self.size},mean={','.join(map(str, self.mean))},std={','.join(map(str, self.std))}"

    def images(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC → float NCHW at ``size``, scaled."""
        x = batch.permute(0, 3, 1, 2).float().div_(255.0)
        if self.size and x.shape[-2:] != (self.size, self.size):
            x = torch.nn.functional.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True
            ).clamp_(0.0, 1.0)
        if self.scale == "minus_one_one":
            return x.mul_(2.0).sub_(1.0)
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std


@dataclass(frozen=True)
class Weights:
    """A backbone's weights: where the file is (``locate()``), where it comes from, its license, its sha256."""

    locate: Callable[[], Path]
    source: str
    license: str
    sha256: str


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone (module docstring)."""

    name: str
    modality: str
    dim: int
    weights: Weights
    load: Callable[[Path, str], Encoder]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    description: str = ""
    batch_size: int = 64


BACKBONE_OPTIONS = (
    Option("size", int, None, "image side the backbone reads (default: the backbone's own)", minimum=8),
    Option("weights", str, None, "another weights file for the same network (checked with sha256= when given)"),
    Option("sha256", str, None, "the sha256 the weights file must have"),
    Option("dtype", str, "float16", "how the embedding store keeps the vectors", choices=DTYPES),
    Option("batch_size", int, None, "examples per backbone call (default: the backbone's own)", minimum=1),
)
OPTIONS_FLAG = "--backbone-options"


@dataclass(frozen=True)
class Backbone:
    """A run's backbone: the spec, its resolved options and preprocessing, the verified weights file."""

    spec: BackboneSpec
    options: dict[str, object]
    preprocessing: Preprocessing
    weights_path: Path
    weights_digest: str
    dtype: str
    batch_size: int

    @property
    def name(self) -> str:
        return self.spec.name


def parse_backbone_options(given: Mapping[str, object] | str | None) -> dict[str, Any]:
    """``--backbone-options`` typed (unknown names get a did-you-mean)."""
    values = parse_options_text(given, OPTIONS_FLAG) if given is None or isinstance(given, str) else dict(given)
    known = {o.name: o for o in BACKBONE_OPTIONS}
    out: dict[str, object] = {}
    for name, value in values.items():
        check_known(OPTIONS_FLAG, "a backbone", name, known)
        out[name] = known[name].convert(value, "backbone", kind="backbone")
    return out


def resolve_backbone(spec: BackboneSpec, given: Mapping[str, object] | str | None = None) -> Backbone:
    """The backbone with these options, its weights file found and verified (:class:`WeightsError`)."""
    options = parse_backbone_options(given)
    own = options.get("weights") is None
    path = spec.weights.locate() if own else Path(str(options["weights"])).expanduser()
    expected = options.get("sha256") or (spec.weights.sha256 if own else None)
    digest = verify_weights(spec.name, path, expected)
    pre = spec.preprocessing
    if options.get("size") and spec.modality == "image":
        pre = replace(pre, size=int(options["size"]))
    return Backbone(
        spec=spec,
        options=options,
        preprocessing=pre,
        weights_path=path,
        weights_digest=digest,
        dtype=str(options.get("dtype") or "float16"),
        batch_size=int(options.get("batch_size") or spec.batch_size),
    )


_DIGESTS: dict[tuple[str, int, int], str] = {}


def verify_weights(name: str, path: Path, expected: str | None) -> str:
    """The sha256 of the weights file ``path`` (once per file version), which must be ``expected`` when given."""
    if not path.is_file():
        raise WeightsError(f"backbone {name!r}: weights file {path} does not exist")
    stat = os.stat(path)
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(path)
    digest = _DIGESTS[key]
    if expected and digest != expected.strip().lower():
        raise WeightsError(
            f"backbone {name!r}: weights file {path} has sha256 {digest[:16]}…, expected {expected[:16]}… "
            "(a corrupted or different file)"
        )
    return digest


def check_reads(backbone: BackboneSpec, dataset_name: str, modality: str) -> None:
    """A backbone reads only its own modality (``modality`` may be ``"vector/image"``: the files decide)."""
    if backbone.modality not in modality.split("/"):
        raise ConfigError(
            f"--backbone {backbone.name!r} reads {backbone.modality} inputs but data set {dataset_name!r} is {modality}"
        )
