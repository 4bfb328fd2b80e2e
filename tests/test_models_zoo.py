"""Every registered model (built-ins and installed plugins) builds, runs forward and backward on a
small input, and honours the contract: the last ``nn.Linear`` is the classifier and its input is
the embedding. Learners that are not torch modules (fastText) fit and score a tiny text set.

timm registers ~1,400 architectures; this test takes a representative sample of them at CIFAR size
(32×32). The svpkit-timm plugin's own tests build the smallest architecture of every timm family.
Slow tests at the end run real active-learning runs on the shared CIFAR-10 and SST-2 files.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.data.base import Dataset, Split
from svpkit.learners import make_learner
from svpkit.models.base import ModelSpec, final_linear
from svpkit.models.options import option_defaults
from svpkit.plugins import get_plugins
from svpkit.protocols import LearnerOptions

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TIMM_SAMPLE = {
    "timm/resnet18",
    "timm/vit_tiny_patch16_224",
    "timm/convnext_atto",
    "timm/efficientnet_b0",
    "timm/mobilenetv3_small_050",
    "timm/deit_tiny_distilled_patch16_224",
    "timm/regnetx_002",
}
NUM_CLASSES = 3
runner = CliRunner()


def _model_names() -> list[str]:
    names = get_plugins().models.names()
    return [n for n in names if not n.startswith("timm/") or n in TIMM_SAMPLE]


def _image_dataset(n: int = 4, side: int = 32) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, side, side, 3), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % NUM_CLASSES
    return Dataset("tiny_images", Split(x, y), Split(x[:3], y[:3]), NUM_CLASSES, "image", (side, side, 3),
                   mean=(120.0, 120.0, 120.0), std=(60.0, 60.0, 60.0), augment=True)  # fmt: skip


def _vector_dataset(n: int = 4) -> Dataset:
    x = torch.randn(n, 64, generator=torch.Generator().manual_seed(0))
    y = torch.arange(n) % NUM_CLASSES
    return Dataset("tiny_vectors", Split(x, y), Split(x[:3], y[:3]), NUM_CLASSES, "vector", (64,))


def _text_dataset() -> Dataset:
    train = [
        "a great , moving film",
        "dull and far too long",
        "so-so ; neither good nor bad",
        "wonderful acting and a sharp script !",
        "boring , boring , boring",
        "it is fine I guess",
    ]
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    return Dataset("tiny_text", Split(train, y), Split(train[:3], y[:3]), NUM_CLASSES, "text", (1,))


_DATASETS = {"image": _image_dataset, "vector": _vector_dataset, "text": _text_dataset}


def _inputs(spec: ModelSpec, data: Dataset) -> torch.Tensor:
    if spec.encode is not None:
        return spec.encode(data, "train", option_defaults(spec, {})).float()
    x = data.train.x
    if data.modality == "image":
        return (x.float() - 120.0).div(60.0).permute(0, 3, 1, 2).contiguous()
    return x


@pytest.mark.parametrize("name", _model_names())
def test_model_builds_and_trains_one_step(name: str) -> None:
    spec = get_plugins().models.get(name)
    data = _DATASETS[spec.modalities[0]]()
    if spec.build is None:
        # Not a torch module (fastText): the Learner protocol end to end on tiny data.
        assert spec.learner is not None, f"{name} has neither a module builder nor a learner"
        options = LearnerOptions(seed=0, extra={"bucket": 1000} if name == "fasttext" else {})
        learner = make_learner(spec, data, options)
        learner.fit(np.arange(len(data.train)))
        probs = learner.predict_proba(np.array([0, 2]))
        assert probs.shape == (2, NUM_CLASSES)
        torch.testing.assert_close(probs.sum(1), torch.ones(2))
        assert learner.embed(np.array([1])).shape[0] == 1
        assert 0.0 <= learner.error("test") <= 1.0
        return
    torch.manual_seed(0)
    model = spec.build(NUM_CLASSES, data.input_shape)
    classifier = final_linear(model)
    assert classifier.out_features == NUM_CLASSES
    captured: list[torch.Tensor] = []
    handle = classifier.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    model.train()
    x = _inputs(spec, data)
    logits = model(x)
    handle.remove()
    assert logits.shape == (len(data.train), NUM_CLASSES)
    assert torch.isfinite(logits).all()
    assert captured and captured[-1].flatten(1).shape == (len(data.train), classifier.in_features)
    torch.nn.functional.cross_entropy(logits, data.train.y).backward()
    assert classifier.weight.grad is not None and torch.isfinite(classifier.weight.grad).all()
    first = next(p for p in model.parameters() if p.requires_grad)
    assert first.grad is not None, f"{name}: no gradient reached the first layer"
    assert spec.num_parameters(NUM_CLASSES, data.input_shape) == sum(p.numel() for p in model.parameters())


def test_paper_models_have_the_papers_sizes_and_schedules() -> None:
    models = get_plugins().models
    counts = {n: models.get(n).num_parameters() for n in ("preact_resnet20", "preact_resnet56", "preact_resnet110", "preact_resnet164")}  # fmt: skip
    assert counts == {
        "preact_resnet20": 272_282,
        "preact_resnet56": 855_578,
        "preact_resnet110": 1_730_522,
        "preact_resnet164": 1_703_258,
    }
    r20, r110 = models.get("preact_resnet20").train, models.get("preact_resnet110").train
    assert (r20.epochs, r20.batch_size, r20.lr, r20.milestones, r20.momentum, r20.weight_decay) == (181, 128, 0.1, (90, 136), 0.9, 5e-4)  # fmt: skip
    assert r20.warmup_epochs == 0 and (r110.warmup_epochs, r110.warmup_lr) == (1, 0.01)
    assert models.get("resnet18").num_parameters() == 11_689_512
    assert models.get("resnet50").num_parameters() == 25_557_032


def test_vdcnn_quantises_characters() -> None:
    from svpkit.models.vdcnn import MAX_LENGTH, VOCAB_SIZE, quantize

    codes = quantize(["Ab, é", "x" * 2000])
    assert VOCAB_SIZE == 69 and codes.shape == (2, MAX_LENGTH) and codes.dtype == torch.uint8
    assert codes[0, :6].tolist() == [2, 3, 39, 68, 1, 0]  # a, b, comma, space, unknown é, padding
    assert (codes[1] == 25).all()  # truncated at 1,014 characters


def test_models_list_shows_family_and_parameters() -> None:
    import json

    result = runner.invoke(app, ["models", "list", "preact_resnet*", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"preact_resnet20", "preact_resnet56", "preact_resnet110", "preact_resnet164"}
    assert rows["preact_resnet56"]["family"] == "preact_resnet" and rows["preact_resnet56"]["parameters"] == 855_578
    every = json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout)
    names = {r["name"] for r in every}
    assert {"resnet18", "resnet50", "vdcnn9", "vdcnn29"} <= names
    torch_models = [r for r in every if r["family"] != "fasttext"]
    assert all(isinstance(r["parameters"], int) and r["parameters"] > 0 for r in torch_models)


def _run(args: list[str], experiment: str) -> mlflow.entities.Run:
    result = runner.invoke(app, ["active-learning", "--quiet", "--experiment", experiment, *args])
    assert result.exit_code == 0, result.output
    (run,) = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    assert run.info.status == "FINISHED"
    return run


@pytest.mark.slow
def test_active_learning_on_sst2_with_fasttext_proxy_and_vdcnn9_target(tracking_uri: str, tmp_path: Path) -> None:
    pytest.importorskip("svpkit_fasttext", reason="the svpkit-fasttext plugin is not installed")
    if not (SHARED_DATA / "sst2" / "train.csv.gz").is_file():
        pytest.skip(f"SST-2 files not found under {SHARED_DATA / 'sst2'}")
    run = _run(
        ["--dataset", "text_csv", "--data-path", str(SHARED_DATA / "sst2"), "--train-limit", "200",
         "--test-limit", "16", "--selector", "least_confidence", "--proxy", "fasttext", "--target", "vdcnn9",
         "--initial", "10", "--budgets", "20,30", "--target-epochs", "1", "--batch-size", "10"],
        "sst2-test",
    )  # fmt: skip
    tags = run.data.tags
    assert (tags["svpkit.dataset"], tags["svpkit.selector_model"], tags["svpkit.target_model"]) == ("text_csv", "fasttext", "vdcnn9")  # fmt: skip
    client = mlflow.MlflowClient()
    assert [m.step for m in client.get_metric_history(run.info.run_id, "target/test_error")] == [20, 30]
    picks = np.load(client.download_artifacts(run.info.run_id, "rounds/2/selected.npy", str(tmp_path)))
    assert picks.shape == (10,) and picks.max() < 200


@pytest.mark.slow
def test_active_learning_on_cifar10_with_preact_resnet20_proxy(tracking_uri: str, tmp_path: Path) -> None:
    if not (SHARED_DATA / "cifar10" / "test.npz").is_file():
        pytest.skip(f"CIFAR-10 files not found under {SHARED_DATA / 'cifar10'}")
    run = _run(
        ["--dataset", "cifar10", "--data-path", str(SHARED_DATA / "cifar10"), "--train-limit", "200",
         "--test-limit", "50", "--selector", "least_confidence", "--proxy", "preact_resnet20",
         "--target", "preact_resnet20", "--initial", "20", "--budgets", "40,60", "--proxy-epochs", "1",
         "--target-epochs", "1", "--batch-size", "20"],
        "cifar-test",
    )  # fmt: skip
    assert run.data.tags["svpkit.dataset"] == "cifar10"
    client = mlflow.MlflowClient()
    errors = client.get_metric_history(run.info.run_id, "target/test_error")
    assert [m.step for m in errors] == [40, 60] and all(0.0 <= m.value <= 1.0 for m in errors)
    labeled = np.load(client.download_artifacts(run.info.run_id, "rounds/2/labeled.npy", str(tmp_path)))
    assert labeled.shape == (60,) and np.unique(labeled).size == 60
