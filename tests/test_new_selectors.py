"""BALD, BADGE, EL2N, GraNd, CCS and class balance wired into the loops, the CLI and tracking (issue 15).

Tiny CPU runs on digits and, when the shared CIFAR-10 files exist (as in test_datasets.py), on a small CIFAR-10 subset; bad
input is one ``error:`` line, exit code 2 and no run.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.data.digits import load_digits
from svpkit.errors import ConfigError
from svpkit.loops.core_set import CoreSetConfig, run_core_set
from svpkit.loops.core_set_subset import SubsetVariant, choose_subset
from svpkit.loops.evaluation import split_errors
from svpkit.loops.scoring import mc_accumulate, select_batch
from svpkit.loops.settings import LoopSettings
from svpkit.plugins import get_plugins
from svpkit.selectors.base import Ranking, SelectionContext, parse_selector_options
from svpkit.tracking.memory import MemoryTracker

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
SMALL = ["--dataset", "digits", "--train-limit", "300", "--test-limit", "100", "--device", "cpu", "--quiet"]
AL = [*SMALL, "--initial", "30", "--budgets", "60,90", "--proxy-epochs", "1", "--target-epochs", "1"]
CS = [*SMALL, "--keep", "0.5", "--proxy-epochs", "1", "--target-epochs", "1"]


def _runs(experiment: str = "svpkit") -> list:  # type: ignore[type-arg]
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def _json(run_id: str, path: str, dest: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(Path(mlflow.MlflowClient().download_artifacts(run_id, path, str(dest))).read_text())


@pytest.mark.parametrize(("selector", "options"), [("bald", "mc_samples=4,mc_dropout=0.3"), ("badge", "")])
def test_active_learning_with_bald_and_badge(tracking_uri: str, tmp_path: Path, selector: str, options: str) -> None:
    res = CliRunner().invoke(app, ["active-learning", *AL, "--selector", selector, "--selector-options", options])
    assert res.exit_code == 0, res.output
    (run,) = _runs()
    assert run.info.status == "FINISHED"
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert tags["svpkit.selector"] == selector
    resolved = "mc_dropout=0.3,mc_samples=4" if selector == "bald" else ""
    assert tags["svpkit.selector_options"] == resolved and params["selector_options"] == resolved
    assert "target/worst_class_error" in metrics and metrics["target/worst_class_error"] >= metrics["target/test_error"]
    assert any(k.startswith("target/class_error/") for k in metrics)
    client = mlflow.MlflowClient()
    picks = np.load(client.download_artifacts(run.info.run_id, "rounds/2/selected.npy", str(tmp_path)))
    labeled = np.load(client.download_artifacts(run.info.run_id, "rounds/2/labeled.npy", str(tmp_path)))
    assert picks.size == 30 and np.unique(labeled).size == 90
    per_class = _json(run.info.run_id, "rounds/2/per_class.json", tmp_path)
    assert (
        len(per_class["class_errors"]) == 10 and per_class["worst_class_error"] == metrics["target/worst_class_error"]
    )


@pytest.mark.parametrize(
    "extra",
    [
        ["--selector", "el2n", "--score-models", "2"],
        ["--selector", "grand"],
        ["--selector", "grand", "--selector-options", "layers=last"],
        ["--selector", "el2n", "--coverage", "ccs", "--ccs-cutoff", "0.1", "--ccs-bins", "5"],
        ["--selector", "forgetting_events", "--class-balance", "true"],
    ],
)
def test_core_set_with_difficulty_scores(tracking_uri: str, tmp_path: Path, extra: list[str]) -> None:
    res = CliRunner().invoke(app, ["core-set", *CS, *extra])
    assert res.exit_code == 0, res.output
    (run,) = _runs()
    assert run.info.status == "FINISHED" and "target/worst_class_error" in run.data.metrics
    client = mlflow.MlflowClient()
    order = np.load(client.download_artifacts(run.info.run_id, "ranking/order.npy", str(tmp_path)))
    subset = np.load(client.download_artifacts(run.info.run_id, "subset/indices.npy", str(tmp_path)))
    assert sorted(order.tolist()) == list(range(300)) and subset.tolist() == order[:150].tolist()
    if "ccs" in extra:
        coverage = _json(run.info.run_id, "coverage.json", tmp_path)
        assert sum(coverage["bin_budgets"]) == 150 and coverage["dropped_hardest"] == 30
        assert run.data.tags["svpkit.selection"] == "ccs_bins=5,ccs_cutoff=0.1,coverage=ccs"
    if "--class-balance" in extra:
        assert _json(run.info.run_id, "class_balance.json", tmp_path)["quotas"]
    assert _json(run.info.run_id, "per_class.json", tmp_path)["class_errors"]


def test_score_models_average_and_count_every_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    import svpkit.loops.core_set as core_set

    data = load_digits().limited(train=200, test=60)
    specs = get_plugins()
    el2n, mlp, cnn = specs.selectors.get("el2n"), specs.models.get("digits_mlp"), specs.models.get("digits_cnn")
    seeds: list[int] = []
    rank = core_set.rank_with_proxy

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        seeds.append(args[3].seed)
        out = rank(*args, **kwargs)
        return (out[0], 1.0, 0.5, out[3])  # fixed seconds: the totals must count every proxy

    monkeypatch.setattr(core_set, "rank_with_proxy", counted)
    results = []
    for n in (1, 3):
        settings = LoopSettings(device="cpu", proxy_epochs=1, target_epochs=1)
        cfg = CoreSetConfig(keep=0.5, settings=settings, subset=SubsetVariant(score_models=n))
        results.append(run_core_set(data, el2n, mlp, cnn, cfg, MemoryTracker()))
    one, three = results
    assert len(seeds) == 4 and seeds[0] == seeds[1] and len(set(seeds[1:])) == 3  # the first is the usual proxy
    assert three.proxy_train_seconds == 3.0 and three.ranking_seconds >= 1.5
    assert not np.array_equal(one.ranking.scores, three.ranking.scores)  # averaged over other seeds
    assert np.all(np.diff(three.ranking.scores[three.ranking.order]) <= 0)  # highest mean first


def test_ccs_and_class_balance_keep_a_permutation() -> None:
    n, m = 100, 40
    scores = np.linspace(0, 1, n, dtype=np.float32)
    scores[:3] = np.inf  # never-learned examples
    ranking = Ranking(np.argsort(-scores, kind="stable").astype(np.int64), scores)
    labels = torch.arange(n) % 4
    ccs = SubsetVariant(coverage="ccs", ccs_cutoff=0.2, ccs_bins=4)
    chosen, reports = choose_subset(ranking, m, ccs, LoopSettings(seed=0), labels, 4)
    assert sorted(chosen.order.tolist()) == list(range(n))
    assert not set(chosen.order[:m].tolist()) & set(ranking.order[:20].tolist())  # the hardest 20 % dropped
    assert sum(reports["coverage.json"]["bin_budgets"]) == m
    chosen, reports = choose_subset(ranking, m, SubsetVariant(), LoopSettings(class_balance=True), labels, 4)
    assert torch.bincount(labels[chosen.order[:m]]).tolist() == [10, 10, 10, 10]


def test_active_learning_class_balance_fills_short_classes() -> None:
    pool = np.arange(10, dtype=np.int64)
    probs = torch.zeros(10, 2)
    probs[:8, 0], probs[8:, 1] = 1.0, 1.0  # the model predicts class 1 for two pool examples only
    ctx = SelectionContext(pool, np.empty(0, dtype=np.int64), np.random.default_rng(0), probabilities=probs)
    least = get_plugins().selectors.get("least_confidence")
    selection, report = select_batch(least, ctx, 6, np.array([1, 1]))
    assert np.unique(selection.picks).size == 6 and report is not None
    assert report["quotas"] == [3, 3] and report["short_classes"] == [1] and report["filled_from_other_classes"] == 1


def test_mc_head_and_dropout_model_passes() -> None:
    class Net(torch.nn.Module):
        def __init__(self, dropout: bool) -> None:
            super().__init__()
            layers = [torch.nn.Linear(4, 8), torch.nn.ReLU(), *([torch.nn.Dropout(0.5)] if dropout else [])]
            self.body = torch.nn.Sequential(*layers)
            self.head = torch.nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    x = torch.randn(20, 4)

    class Learner:
        device = torch.device("cpu")

        def __init__(self, model: torch.nn.Module) -> None:
            self.model = model.eval()

        def predict_proba(self, ix: np.ndarray, split: str = "train") -> torch.Tensor:
            with torch.inference_mode():
                return torch.softmax(self.model(x[ix]), dim=1)

        def embed(self, ix: np.ndarray, split: str = "train") -> torch.Tensor:
            return self.model.body(x[ix]).detach()

    torch.manual_seed(0)
    for model in (Net(dropout=True), Net(dropout=False)):
        acc = mc_accumulate(Learner(model), np.arange(20), 5, 0.5, 1)  # type: ignore[arg-type]
        assert acc.count == 5 and acc.mean_probs().shape == (20, 3)
        assert float(acc.bald().max()) > 0  # the passes disagree


def test_test_errors_match_the_learner_error() -> None:
    from svpkit.learners import make_learner
    from svpkit.protocols import LearnerOptions

    data = load_digits().limited(train=120, test=60)
    learner = make_learner(get_plugins().models.get("digits_mlp"), data, LearnerOptions(device="cpu", epochs=1))
    learner.fit(np.arange(120))
    error, per_class = split_errors(learner, data)
    assert error == learner.error("test") and len(per_class) == 10


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("active-learning", ["--selector", "el2n"], "needs the labels of the examples it scores"),
        ("active-learning", ["--selector", "grand"], "use it with `svpkit core-set`"),
        (
            "active-learning",
            ["--selector", "bald", "--selector-options", "mc_samples=1"],
            "mc_samples must be at least 2",
        ),
        ("active-learning", ["--selector", "bald", "--selector-options", "mc_sample=3"], "did you mean 'mc_samples'"),
        ("active-learning", ["--selector", "random", "--class-balance", "true"], "trains no selector model"),
        ("core-set", ["--selector", "el2n", "--coverage", "ccs", "--ccs-bins", "0"], "--ccs-bins must be at least 1"),
        (
            "core-set",
            ["--selector", "el2n", "--coverage", "ccs", "--ccs-cutoff", "1"],
            "--ccs-cutoff must be in [0, 1)",
        ),
        (
            "core-set",
            ["--selector", "greedy_k_center", "--seed-size", "5", "--coverage", "ccs"],
            "need a selector that",
        ),
        ("core-set", ["--selector", "random", "--score-models", "3"], "need a selector that scores"),
    ],
)
def test_bad_input_is_one_line_and_no_run(tracking_uri: str, command: str, args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, [command, *SMALL, *args])
    assert res.exit_code == 2, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], res.output
    assert not _runs()


def test_badge_refuses_a_model_without_a_final_linear_layer() -> None:
    from svpkit.loops.scoring import check_selection
    from svpkit.models.base import ModelSpec

    spec = get_plugins().models.get("digits_mlp")
    no_linear = ModelSpec(**{**spec.__dict__, "name": "conv_only", "build": lambda c, s: torch.nn.Conv1d(1, c, 1)})
    with pytest.raises(ConfigError, match="final nn.Linear"):
        badge = get_plugins().selectors.get("badge")
        check_selection(badge, "active_learning", no_linear, load_digits(), LoopSettings())
    assert parse_selector_options(get_plugins().selectors.get("bald"), None) == {"mc_samples": 20, "mc_dropout": 0.5}


@pytest.mark.skipif(not (CIFAR / "test.npz").is_file(), reason=f"CIFAR-10 files not found under {CIFAR}")
@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("active-learning", ["--selector", "bald", "--selector-options", "mc_samples=3", "--initial", "50"]),
        ("active-learning", ["--selector", "badge", "--initial", "50"]),
        ("core-set", ["--selector", "el2n", "--coverage", "ccs", "--ccs-cutoff", "0.1", "--keep", "0.5"]),
        ("core-set", ["--selector", "grand", "--selector-options", "layers=last", "--keep", "0.5"]),
    ],
)
def test_cifar10_subset(tracking_uri: str, command: str, extra: list[str]) -> None:
    data = ["--dataset", "cifar10", "--data-path", str(CIFAR), "--train-limit", "300", "--test-limit", "100"]
    models = [
        "--proxy",
        "preact_resnet20",
        "--target",
        "preact_resnet20",
        "--proxy-epochs",
        "1",
        "--target-epochs",
        "1",
    ]
    budgets = ["--budgets", "100"] if command == "active-learning" else []
    res = CliRunner().invoke(app, [command, *data, *models, "--device", "cpu", "--quiet", *budgets, *extra])
    assert res.exit_code == 0, res.output
    (run,) = _runs()
    assert run.info.status == "FINISHED" and "target/worst_class_error" in run.data.metrics
