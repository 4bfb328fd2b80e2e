"""bf16 autocast (``amp=auto|on|off``): CPU detection, the per-device choice, the ``svpkit.amp``
tag, and scoring in float32 for models trained under bf16."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from svpkit import runtime
from svpkit.learners import acceleration, make_learner
from svpkit.learners.acceleration import amp_tag, cpu_has_native_bf16, model_precision, resolve_amp, use_compile
from svpkit.loops.common import resolved_settings
from svpkit.models.base import final_linear
from svpkit.plugins import get_plugins
from svpkit.protocols import LearnerOptions
from svpkit.selectors.base import SelectionContext
from svpkit.selectors.k_center import select_k_center
from svpkit.selectors.uncertainty import least_confidence_scores

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture()
def fresh_detection() -> Iterator[None]:
    cpu_has_native_bf16.cache_clear()
    yield
    cpu_has_native_bf16.cache_clear()


def _no_torch_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)


def test_native_bf16_is_what_torch_reports(monkeypatch: pytest.MonkeyPatch, fresh_detection: None) -> None:
    _no_torch_probes(monkeypatch)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.setattr(runtime, "_CPUINFO", Path("/nonexistent/cpuinfo"))
    assert cpu_has_native_bf16()


@pytest.mark.parametrize(
    ("flags", "native"),
    [("fpu sse avx2 avx512f avx512_bf16 amx_tile", True), ("fpu amx_bf16", True), ("fpu sse avx2 avx512f", False)],
)
def test_native_bf16_from_cpu_flags(
    flags: str, native: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_detection: None
) -> None:
    _no_torch_probes(monkeypatch)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(runtime, "_CPUINFO", cpuinfo)
    assert cpu_has_native_bf16() is native


def test_no_cpu_information_means_no_native_bf16(monkeypatch: pytest.MonkeyPatch, fresh_detection: None) -> None:
    _no_torch_probes(monkeypatch)
    monkeypatch.setattr(runtime, "_CPUINFO", Path("/nonexistent/cpuinfo"))
    assert not cpu_has_native_bf16()


@pytest.mark.parametrize("by_default", [False, True])
@pytest.mark.parametrize("native", [False, True])
def test_auto_follows_the_device_the_cpu_and_the_model(
    by_default: bool, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(acceleration, "CPU_BF16_BY_DEFAULT", by_default)
    monkeypatch.setattr(acceleration, "cpu_has_native_bf16", lambda: native)
    for modalities in (("image",), ("text",), ("vector",)):
        assert resolve_amp("auto", CUDA, modalities)  # CUDA: every torch model, as before
        assert resolve_amp("on", CPU, modalities) and not resolve_amp("off", CUDA, modalities)
        want = by_default and native and modalities != ("vector",)
        assert resolve_amp("auto", CPU, modalities) is want
    assert not resolve_amp("auto", torch.device("meta"), ("image",))


def test_compile_auto_needs_a_threshold_for_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert use_compile("auto", CUDA, 20_000) and not use_compile("auto", CUDA, 19_999)
    assert use_compile("on", CPU, 1) and not use_compile("off", CUDA, 10**9)
    monkeypatch.setattr(acceleration, "COMPILE_MIN_STEPS", {"cuda": 20_000})
    assert not use_compile("auto", CPU, 10**9)
    monkeypatch.setattr(acceleration, "COMPILE_MIN_STEPS", {"cuda": 20_000, "cpu": 5_000})
    assert use_compile("auto", CPU, 5_000) and not use_compile("auto", CPU, 4_999)


def test_the_amp_tag_names_each_model_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acceleration, "CPU_BF16_BY_DEFAULT", False)
    models = get_plugins().models
    resnet, mlp = models.get("preact_resnet20"), models.get("digits_mlp")
    not_torch = SimpleNamespace(learner=object(), build=None, modalities=("text",))
    assert model_precision(not_torch, {}, CUDA) == "none"  # type: ignore[arg-type]
    assert model_precision(mlp, {}, CUDA) == "bf16" and model_precision(mlp, {}, CPU) == "fp32"
    assert amp_tag({"target": (resnet, {"amp": "on"}), "proxy": (mlp, {})}, CPU) == "proxy=fp32,target=bf16"
    cfg = SimpleNamespace(device="cpu", proxy_epochs=None, target_epochs=2, proxy_options={}, target_options={})
    assert resolved_settings(mlp, resnet, cfg)["amp"] == "proxy=fp32,target=fp32"
    assert resolved_settings(None, resnet, cfg)["amp"] == "target=fp32"


def _tiny_bf16_learner(n: int = 96) -> tuple[object, np.ndarray]:
    from test_train import tiny_images

    spec = get_plugins().models.get("preact_resnet20")
    options = LearnerOptions(seed=0, device="cpu", epochs=2, batch_size=32, extra={"amp": "on"})
    learner = make_learner(spec, tiny_images(n), options)
    assert learner.amp  # type: ignore[attr-defined]
    return learner, np.arange(48)


def _float32_forward(learner: object, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The trained model's float32 softmax and penultimate features, computed here."""
    model = learner.model  # type: ignore[attr-defined]
    model.eval()
    x_all, _ = learner.inputs("train")  # type: ignore[attr-defined]
    feats: list[torch.Tensor] = []
    handle = final_linear(model).register_forward_pre_hook(lambda _m, args: feats.append(args[0]))
    with torch.inference_mode():
        logits = model(learner.batch_inputs(x_all, torch.as_tensor(indices)))  # type: ignore[attr-defined]
    handle.remove()
    return torch.softmax(logits.float(), dim=1), feats[0].float().flatten(1)


def test_bf16_training_scores_and_embeds_in_float32() -> None:
    learner, labeled = _tiny_bf16_learner()
    seen: list[tuple[bool, torch.dtype]] = []
    learner.fit(labeled)  # type: ignore[attr-defined]
    model = learner.model  # type: ignore[attr-defined]
    model.register_forward_hook(lambda _m, _a, out: seen.append((torch.is_autocast_enabled("cpu"), out.dtype)))
    pool = np.arange(48, 96)
    probs, emb = learner.predict_proba(pool), learner.embed(pool)  # type: ignore[attr-defined]
    assert seen and all(not autocast and dtype == torch.float32 for autocast, dtype in seen)
    want_probs, want_emb = _float32_forward(learner, pool)
    assert probs.dtype == emb.dtype == torch.float32
    torch.testing.assert_close(probs, want_probs)
    torch.testing.assert_close(emb, want_emb)
    # Training itself ran under bf16 autocast: the logits of a training step are bf16.
    model.train()
    x_all, _ = learner.inputs("train")  # type: ignore[attr-defined]
    with learner.autocast():  # type: ignore[attr-defined]
        assert model(learner.batch_inputs(x_all, torch.arange(4))).dtype == torch.bfloat16  # type: ignore[attr-defined]


def test_picks_on_a_bf16_trained_model_come_from_float32_scores() -> None:
    learner, labeled = _tiny_bf16_learner()
    learner.fit(labeled)  # type: ignore[attr-defined]
    pool = np.arange(48, 96)
    want_probs, want_pool = _float32_forward(learner, pool)
    _, want_labeled = _float32_forward(learner, labeled)
    k = 8
    order = torch.sort(least_confidence_scores(want_probs), descending=True, stable=True).indices[:k]
    probs = learner.predict_proba(pool)  # type: ignore[attr-defined]
    lc = torch.sort(least_confidence_scores(probs), descending=True, stable=True).indices[:k]
    assert pool[lc.numpy()].tolist() == pool[order.numpy()].tolist()
    ctx = SelectionContext(pool=pool, labeled=labeled, rng=np.random.default_rng(0), device=CPU)
    embed = learner.embed  # type: ignore[attr-defined]
    ctx.pool_embeddings, ctx.labeled_embeddings = embed(pool), embed(labeled)
    want = SelectionContext(pool=pool, labeled=labeled, rng=np.random.default_rng(0), device=CPU)
    want.pool_embeddings, want.labeled_embeddings = want_pool, want_labeled
    assert np.asarray(select_k_center(ctx, k).picks).tolist() == np.asarray(select_k_center(want, k).picks).tolist()
