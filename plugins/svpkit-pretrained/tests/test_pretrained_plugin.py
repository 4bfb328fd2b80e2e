"""svpkit-pretrained: the real weights, on few examples at small sizes.

- EfficientNet-Lite0: the package's weights mapped by position into timm's ``tf_efficientnet_lite0``
  give the same outputs as the reference implementation they were published for
  (``efficientnet-lite-pytorch``, the test extra); timm's ``efficientnet_lite0`` does not.
- MiniLM-L6 loads offline and tells paraphrases from unrelated sentences.
- Both are registered with their sha256, source and license; bad input through the command line is
  one ``error:`` line and no run.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from svpkit_pretrained import (
    EFFICIENTNET_SHA256,
    efficientnet_lite0,
    efficientnet_weights_file,
    minilm_weights_file,
)
from typer.testing import CliRunner

from svpkit.backbones.base import resolve_backbone
from svpkit.backbones.embed import embedded_dataset, store_key
from svpkit.cli import app
from svpkit.data.base import Dataset, Split
from svpkit.data.embeddings import EmbeddingStore, file_digest
from svpkit.plugins import get_plugins


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVPKIT_CACHE", str(tmp_path / "cache"))


def test_the_weights_map_by_position_onto_timm_tf_efficientnet_lite0() -> None:
    import timm
    from efficientnet_lite_pytorch import EfficientNet

    path = efficientnet_weights_file()
    assert file_digest(path) == EFFICIENTNET_SHA256
    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path)).eval()
    mapped = efficientnet_lite0(path)
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected, got = reference(x), mapped(x)
        assert (expected - got).abs().max().item() < 1e-5
        # The non-TF variant (other padding and BatchNorm eps) does not reproduce them.
        other = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1000).eval()
        other.load_state_dict(dict(zip(other.state_dict(), torch.load(path, weights_only=True).values())))
        assert (expected - other(x)).abs().max().item() > 1e-2


def test_efficientnet_embeds_images_into_1280_pooled_features() -> None:
    spec = get_plugins().backbones.get("efficientnet_lite0")
    assert (spec.modality, spec.dim, spec.weights.license) == ("image", 1280, "Apache-2.0")
    backbone = resolve_backbone(spec, "size=64")
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8))
    y = torch.arange(6) % 2
    data = Dataset("tiny", Split(x, y), Split(x[:2], y[:2]), 2, "image", (32, 32, 3))
    seen = embedded_dataset(data, backbone)
    assert seen.train.x.shape == (6, 1280) and torch.isfinite(seen.train.x).all()
    # What was stored is the network's pooled features on [-1, 1] inputs at 64 px.
    model = efficientnet_lite0(efficientnet_weights_file())
    with torch.no_grad():
        features = model.forward_head(model.forward_features(backbone.preprocessing.images(x)), pre_logits=True)
    stored = np.asarray(EmbeddingStore(store_key(data, backbone)).read("train"), dtype=np.float32)
    assert backbone.preprocessing.images(x).min() < -0.9 and stored.dtype != np.float64
    torch.testing.assert_close(torch.from_numpy(stored), features, atol=2e-2, rtol=1e-2)  # stored as fp16


def test_minilm_loads_offline_and_tells_paraphrases_apart() -> None:
    spec = get_plugins().backbones.get("minilm_l6")
    backbone = resolve_backbone(spec)
    assert backbone.weights_path == minilm_weights_file() and spec.dim == 384
    encode = spec.load(backbone.weights_path, "cpu")
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    v = encode(["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."])
    sims = torch.nn.functional.cosine_similarity(v[:, None], v[None], dim=-1)
    assert v.shape == (3, 384) and sims[0, 1] > 0.5 and sims[0, 2] < 0.2


def _npz(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    y = np.arange(12) % 2
    np.savez(root / "train.npz", x=x, y=y)
    np.savez(root / "test.npz", x=x[:4], y=y[:4])
    return root


def test_bad_input_is_one_error_line_and_no_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    copy = tmp_path / "copy.pth"
    copy.write_bytes(efficientnet_weights_file().read_bytes()[:1000])
    data = _npz(tmp_path / "npz")
    base = ["active-learning", "--quiet", "--dataset", "npz", "--data-path", str(data), "--proxy", "linear_head"]
    base += ["--target", "linear_head", "--initial", "4", "--budgets", "8"]
    rows = {
        "unknown": (
            ["--backbone", "efficientnet"],
            "unknown backbone 'efficientnet'; did you mean 'efficientnet_lite0'?",
        ),
        "missing": (
            ["--backbone", "efficientnet_lite0", "--backbone-options", "weights=/no/file.pth"],
            "does not exist",
        ),
        "checksum": (
            ["--backbone", "efficientnet_lite0", "--backbone-options", f"weights={copy},sha256={EFFICIENTNET_SHA256}"],
            "corrupted or different",
        ),
        "text-on-images": (["--backbone", "minilm_l6"], "reads text inputs but data set 'npz' is vector/image"),
    }
    for name, (extra, message) in rows.items():
        result = CliRunner().invoke(app, base + extra)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1, (name, result.output)
        assert lines[0].startswith("error: ") and message in lines[0], (name, result.output)
    assert len(mlflow.search_runs(search_all_experiments=True)) == 0
    mlflow.set_tracking_uri(None)
