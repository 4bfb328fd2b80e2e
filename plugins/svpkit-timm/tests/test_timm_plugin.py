"""svpkit-timm: every timm architecture is registered, listing is cheap, one architecture per
timm family builds with svpkit's classifier contract, and a timm model trains through svpkit.

Per family, the smallest architecture is built at its own input size on PyTorch's meta device
(shapes and autograd without arithmetic: ~98 families in seconds); the core test suite's model zoo
runs a real forward/backward for a sample of timm models at CIFAR size.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import svpkit_timm
import timm
import torch

from svpkit.data.base import Dataset, Split
from svpkit.learners import make_learner
from svpkit.models.base import final_linear
from svpkit.plugins import get_plugins
from svpkit.protocols import LearnerOptions

COUNTS = json.loads(svpkit_timm.COUNTS_FILE.read_text())


def _smallest_per_family() -> list[str]:
    best: dict[str, str] = {}
    for arch, info in COUNTS["models"].items():
        family = info["family"]
        if info["parameters"] is not None and (
            family not in best or info["parameters"] < COUNTS["models"][best[family]]["parameters"]
        ):
            best[family] = arch
    return sorted(best.values())


def test_every_timm_architecture_is_registered() -> None:
    models = get_plugins().models
    registered = {n[len("timm/") :] for n in models.names("timm/*")}
    assert registered == set(timm.list_models())
    spec = models.get("timm/resnet18")
    assert spec.family == "timm/resnet" and spec.modalities == ("image",)


def test_parameter_counts_file_matches_timm() -> None:
    assert COUNTS["timm_version"] == timm.__version__, "regenerate with tools/make_param_counts.py"
    for arch in ("resnet18", "vit_tiny_patch16_224", "convnext_atto"):
        params, dim = svpkit_timm.count_parameters(arch, COUNTS["num_classes"])
        assert COUNTS["models"][arch] == {"family": COUNTS["models"][arch]["family"], "parameters": params, "embedding_dim": dim}  # fmt: skip
    model = svpkit_timm.TimmClassifier("resnet18", 10, (224, 224, 3))
    assert sum(p.numel() for p in model.parameters()) == COUNTS["models"]["resnet18"]["parameters"]


def test_listing_every_timm_model_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_building(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("listing must not build models")

    monkeypatch.setattr(svpkit_timm, "create_body", no_building)
    entries = get_plugins().models.entries("timm/*")
    counts = [e.spec.num_parameters() for e in entries]
    assert len(counts) > 1000 and all(isinstance(c, int) and c > 0 for c in counts)


def test_counts_for_other_shapes_are_computed_lazily() -> None:
    spec = get_plugins().models.get("timm/vit_tiny_patch16_224")
    at_32 = spec.num_parameters(10, (32, 32, 3))
    assert at_32 == sum(p.numel() for p in spec.build(10, (32, 32, 3)).parameters())
    assert at_32 < spec.num_parameters()  # fewer position embeddings at 32x32 than at 224x224


@pytest.mark.slow
@pytest.mark.parametrize("arch", _smallest_per_family())
def test_smallest_model_of_each_family_meets_the_contract(arch: str) -> None:
    shape = svpkit_timm.default_input_shape(arch)
    with torch.device("meta"):
        model = get_plugins().models.get(f"timm/{arch}").build(3, shape)
        x = torch.empty(2, shape[2], shape[0], shape[1])
        captured: list[torch.Tensor] = []
        classifier = final_linear(model)
        classifier.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        logits = model(x)
        logits.sum().backward()
    assert classifier is model.fc and logits.shape == (2, 3)
    assert captured[0].shape == (2, COUNTS["models"][arch]["embedding_dim"])
    assert model.fc.weight.grad is not None


def test_timm_model_trains_through_svpkit() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8, generator=g)
    y = torch.arange(8) % 2
    data = Dataset("tiny", Split(x, y), Split(x[:4], y[:4]), 2, "image", (32, 32, 3),
                   mean=(128.0,) * 3, std=(64.0,) * 3, augment=True)  # fmt: skip
    spec = get_plugins().models.get("timm/resnet18")
    learner = make_learner(spec, data, LearnerOptions(seed=0, device="cpu", epochs=1, batch_size=4))
    learner.fit(np.arange(8))
    probs = learner.predict_proba(np.arange(3))
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    assert learner.embed(np.arange(3)).shape == (3, 512)
    assert 0.0 <= learner.error("test") <= 1.0


def test_pretrained_option_starts_the_body_from_a_local_checked_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``pretrained=<file>``: the body holds the file's tensors (its classifier dropped); a missing
    file or a wrong ``pretrained_sha256`` is a ConfigError when the options are parsed."""
    from svpkit.data.embeddings import file_digest
    from svpkit.errors import ConfigError
    from svpkit.learners.options import parse_model_options

    torch.manual_seed(5)
    source = timm.create_model("test_resnet", pretrained=False, num_classes=1000)
    path = tmp_path / "test_resnet.pth"
    torch.save(source.state_dict(), path)
    spec = get_plugins().models.get("timm/test_resnet")
    options = parse_model_options(spec, f"pretrained={path},pretrained_sha256={file_digest(path)}", "--proxy-options")
    x = torch.zeros((12, 32, 32, 3), dtype=torch.uint8)
    y = torch.arange(12) % 2
    data = Dataset("tiny", Split(x, y), Split(x[:4], y[:4]), 2, "image", (32, 32, 3), mean=(0.0,) * 3, std=(1.0,) * 3)
    learner = make_learner(spec, data, LearnerOptions(seed=0, device="cpu", extra=options))
    model = learner.new_model()
    body = model.body.state_dict()
    expected = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    assert set(body) == set(expected)
    assert all(torch.equal(body[k].cpu(), v) for k, v in expected.items())
    fresh = make_learner(spec, data, LearnerOptions(seed=0, device="cpu")).new_model()
    assert not torch.equal(fresh.body.state_dict()["conv1.0.weight"].cpu(), expected["conv1.0.weight"])
    with pytest.raises(ConfigError, match="does not exist"):
        parse_model_options(spec, f"pretrained={tmp_path / 'none.pth'}", "--proxy-options")
    with pytest.raises(ConfigError, match="expected 0000"):
        parse_model_options(spec, f"pretrained={path},pretrained_sha256={'0' * 64}", "--proxy-options")
