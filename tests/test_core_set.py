"""Core-set selection: rankings (k-center against brute force), the loop, resume, CLI and MLproject."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.data.digits import load_digits
from svpkit.errors import ConfigError
from svpkit.loops.core_set import CoreSetConfig, resolve_sizes, run_core_set
from svpkit.loops.ranking import rank_training_set
from svpkit.loops.reference import FullReference, choose_full_reference
from svpkit.loops.settings import LoopSettings
from svpkit.plugins import get_plugins
from svpkit.selectors.k_center import k_center_ranking
from svpkit.selectors.uncertainty import entropy_scores, least_confidence_scores, margin_scores
from svpkit.tracking.memory import MemoryTracker

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_digits():  # type: ignore[no-untyped-def]
    return load_digits().limited(train=240, test=90)


def brute_force_k_center(x: np.ndarray, seeds: list[int], subset_size: int) -> list[int]:
    """Alg. 1 literally: full distance matrix to all centres every step; then the rest by final distance."""
    centres = list(seeds)
    n = len(x)
    while len(centres) < subset_size:
        best, best_d = -1, -1.0
        for i in range(n):
            if i in centres:
                continue
            d = min(float(np.sum((x[i] - x[c]) ** 2)) for c in centres)
            if d > best_d:  # strict: ties go to the lowest index
                best, best_d = i, d
        centres.append(best)
    rest = [i for i in range(n) if i not in centres]
    final = {i: min(float(np.sum((x[i] - x[c]) ** 2)) for c in centres) for i in rest}
    rest.sort(key=lambda i: -final[i])  # stable: ties keep ascending index
    return sorted(seeds) + centres[len(seeds) :] + rest


@pytest.mark.parametrize(("n", "dim", "n_seeds", "subset"), [(60, 5, 3, 20), (45, 2, 1, 45), (30, 8, 10, 10)])
def test_k_center_core_set_matches_brute_force(n: int, dim: int, n_seeds: int, subset: int) -> None:
    rng = np.random.default_rng(n + dim)
    x = rng.normal(size=(n, dim)).astype(np.float64)
    seeds = sorted(rng.choice(n, size=n_seeds, replace=False).tolist())
    order, pick_d, rest_d = k_center_ranking(torch.from_numpy(x), np.array(seeds), subset)
    assert order.tolist() == brute_force_k_center(x, seeds, subset)
    # Pick-time distances never increase along a farthest-first traversal; the rest are closer still.
    assert pick_d.shape == (subset - n_seeds,) and rest_d.shape == (n - subset,)
    assert torch.all(pick_d[1:] <= pick_d[:-1] + 1e-9)
    if pick_d.numel() and rest_d.numel():
        assert float(rest_d.max()) <= float(pick_d.min()) + 1e-9


class FakeLearner:
    """A trained selector model stand-in with fixed outputs."""

    device = torch.device("cpu")

    def __init__(self, probs: torch.Tensor | None = None, emb: torch.Tensor | None = None) -> None:
        self.probs, self.emb = probs, emb

    def predict_proba(self, indices: np.ndarray | None = None, split: str = "train") -> torch.Tensor:
        assert self.probs is not None
        return self.probs if indices is None else self.probs[torch.as_tensor(indices)]

    def embed(self, indices: np.ndarray | None = None, split: str = "train") -> torch.Tensor:
        assert self.emb is not None
        return self.emb if indices is None else self.emb[torch.as_tensor(indices)]


@pytest.mark.parametrize(
    ("name", "fn"),
    [("least_confidence", least_confidence_scores), ("entropy", entropy_scores), ("margin", margin_scores)],
)
def test_uncertainty_ranking_is_stable_descending_score(name: str, fn) -> None:  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(3)
    probs = torch.softmax(torch.randn(50, 4, generator=gen) * 2, dim=1)
    probs[10] = probs[20] = probs[30]  # ties: lower index first
    probs[5] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # 0·log 0 = 0, no NaN
    spec = get_plugins().selectors.get(name)
    ranking = rank_training_set(spec, FakeLearner(probs=probs), {}, 50, 25, 0, np.random.default_rng(0))
    scores = fn(probs).numpy()
    expected = sorted(range(50), key=lambda i: (-scores[i], i))
    assert ranking.order.tolist() == expected
    np.testing.assert_allclose(ranking.scores, scores)
    assert ranking.order.tolist().index(10) < ranking.order.tolist().index(20) < ranking.order.tolist().index(30)


def test_k_center_ranking_through_the_selector_uses_seeded_random_seeds() -> None:
    emb = torch.from_numpy(np.random.default_rng(1).normal(size=(80, 6)))
    spec = get_plugins().selectors.get("greedy_k_center")
    ranking = rank_training_set(spec, FakeLearner(emb=emb), {}, 80, 30, 5, np.random.default_rng(42))
    seeds = sorted(np.random.default_rng(42).choice(80, size=5, replace=False).tolist())
    assert ranking.seeds.tolist() == seeds
    assert ranking.order.tolist() == brute_force_k_center(emb.numpy(), seeds, 30)
    assert np.isinf(ranking.scores[seeds]).all() and np.isfinite(np.delete(ranking.scores, seeds)).all()
    # Sorting the scores reproduces the order (seeds, then picks, then the rest) up to ties.
    by_score = np.argsort(-ranking.scores, kind="stable")
    assert set(by_score[:30].tolist()) == set(ranking.order[:30].tolist())


def test_any_selector_ranks_by_picking_the_whole_pool() -> None:
    spec = get_plugins().selectors.get("random")
    ranking = rank_training_set(spec, None, {}, 40, 10, 0, np.random.default_rng(0))
    assert sorted(ranking.order.tolist()) == list(range(40))
    assert ranking.order.tolist() == np.argsort(-ranking.scores, kind="stable").tolist()


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (CoreSetConfig(keep=0.0), "outside"),
        (CoreSetConfig(keep=1.5), "outside"),
        (CoreSetConfig(subset_size=241), "larger than the 240"),
        (CoreSetConfig(keep=0.5, subset_size=10), "not both"),
        (CoreSetConfig(keep=0.1, seed_size=100), "seed points count toward the subset"),
        (CoreSetConfig(keep=0.5, seed_size=0), "at least one seed point"),
    ],
)
def test_impossible_sizes_are_config_errors(cfg: CoreSetConfig, message: str) -> None:
    spec = get_plugins().selectors.get("greedy_k_center")
    with pytest.raises(ConfigError, match=message):
        resolve_sizes(240, spec, cfg)


def test_sizes() -> None:
    sel = get_plugins().selectors
    assert resolve_sizes(240, sel.get("entropy"), CoreSetConfig()) == (120, 0)
    assert resolve_sizes(240, sel.get("entropy"), CoreSetConfig(subset_size=17)) == (17, 0)
    assert resolve_sizes(240, sel.get("greedy_k_center"), CoreSetConfig(keep=0.25, seed_size=0.05)) == (60, 12)


def _run(data, selector: str, tracker: MemoryTracker, resume_state=None, **kw) -> object:  # type: ignore[no-untyped-def]
    p = get_plugins()
    cfg = CoreSetConfig(settings=LoopSettings(proxy_epochs=2, target_epochs=1, device="cpu"), **kw)
    sel, proxy, target = p.selectors.get(selector), p.models.get("digits_mlp"), p.models.get("digits_cnn")
    return run_core_set(data, sel, proxy, target, cfg, tracker, resume_state=resume_state)


def test_core_set_loop_with_forgetting_events(small_digits) -> None:  # type: ignore[no-untyped-def]
    tracker = MemoryTracker()
    result = _run(small_digits, "forgetting_events", tracker, keep=0.25, compare_full=True)
    order = tracker.arrays["ranking/order.npy"]
    subset = tracker.arrays["subset/indices.npy"]
    assert sorted(order.tolist()) == list(range(240))
    assert subset.tolist() == order[:60].tolist()
    scores = tracker.arrays["ranking/scores.npy"]
    assert scores.shape == (240,)
    ordered = scores[order].astype(np.float64)
    assert np.all(ordered[:-1] >= ordered[1:])  # highest count (never-learned +inf) first
    final = {k: v[-1][1] for k, v in tracker.metrics.items()}
    for key in (
        "proxy/train_seconds",
        "proxy/test_error",
        "ranking/seconds",
        "selection/total_seconds",
        "target/train_seconds",
        "target/test_error",
        "full/train_seconds",
        "full/test_error",
        "core_set/end_to_end_speedup",
    ):
        assert key in final, key
    assert final["selection/total_seconds"] == pytest.approx(final["proxy/train_seconds"] + final["ranking/seconds"])
    end_to_end = final["selection/total_seconds"] + final["target/train_seconds"]
    assert final["core_set/end_to_end_speedup"] == pytest.approx(final["full/train_seconds"] / end_to_end)
    assert [s["round"] for s in tracker.states] == [1, 2, 3]
    assert tracker.json["summary.json"]["subset_size"] == 60
    assert tracker.json["timings.json"]["full_source"] == "this run"
    assert tracker.figures == ["figures/core_set.png"]
    assert result.full is not None  # type: ignore[attr-defined]


def test_resume_after_ranking_is_exact(small_digits) -> None:  # type: ignore[no-untyped-def]
    first = MemoryTracker()
    whole = _run(small_digits, "entropy", first, subset_size=50)
    resumed_tracker = MemoryTracker()
    resumed = _run(small_digits, "entropy", resumed_tracker, subset_size=50, resume_state=first.states[0])
    assert "ranking/order.npy" not in resumed_tracker.arrays  # stage 1 was not redone
    assert np.array_equal(resumed.subset, whole.subset)  # type: ignore[attr-defined]
    assert resumed.target.test_error == whole.target.test_error  # type: ignore[attr-defined]
    assert [s["round"] for s in resumed_tracker.states] == [2]


def test_full_reference_prefers_same_seed_then_newest(small_digits) -> None:  # type: ignore[no-untyped-def]
    target = get_plugins().models.get("digits_cnn")
    cfg = LoopSettings(seed=1, device="cpu")

    def record(run_id: str, seed: int, start: int, **over: str) -> SimpleNamespace:
        tags = {
            "svpkit.loop": "train",
            "svpkit.dataset": "digits",
            "svpkit.subset_size": "240",
            "svpkit.target_model": "digits_cnn",
            "svpkit.seed": str(seed),
        }
        params = {"dataset_digest": small_digits.digest, "target_epochs": "30", "device": "cpu"}
        for k, v in over.items():
            (tags if k.startswith("svpkit") else params)[k.replace("_", ".", 1) if k.startswith("svpkit") else k] = v
        return SimpleNamespace(
            run_id=run_id,
            status="FINISHED",
            start_time=start,
            tags=tags,
            params=params,
            metrics={"target/train_seconds": 10.0 + start, "target/test_error": 0.1},
        )

    records = [
        record("old-seed1", 1, 1),
        record("new-seed0", 0, 5),
        record("wrong-epochs", 1, 9, target_epochs="3"),
        record("subset", 1, 9, svpkit_subset_size="120"),
    ]
    chosen = choose_full_reference(records, small_digits, target, cfg)
    assert chosen == FullReference(11.0, 0.1, "old-seed1")
    assert choose_full_reference(records[1:2], small_digits, target, cfg) == FullReference(15.0, 0.1, "new-seed0")
    assert choose_full_reference(records[2:], small_digits, target, cfg) is None


def test_cli_train_then_core_set_finds_the_full_reference(tracking_uri: str, tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--train-limit", "200", "--test-limit", "60", "--device", "cpu", "--quiet"]
    res = runner.invoke(app, ["train", *common, "--target-epochs", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        ["core-set", *common, "--selector", "greedy_k_center", "--seed-size", "10", "--keep", "0.3"]
        + ["--proxy-epochs", "1", "--target-epochs", "1"],
    )
    assert res.exit_code == 0, res.output
    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("svpkit").experiment_id])
    by_loop = {r.data.tags["svpkit.loop"]: r for r in runs}
    train_run, cs = by_loop["train"], by_loop["core_set"]
    assert train_run.data.tags["svpkit.subset_size"] == "200" and train_run.data.tags["svpkit.role"] == "target"
    assert cs.info.status == "FINISHED"
    tags = cs.data.tags
    assert tags["svpkit.role"] == "proxy" and tags["svpkit.subset_size"] == "60"
    assert tags["svpkit.full_run"] == train_run.info.run_id
    m = cs.data.metrics
    assert m["full/train_seconds"] == train_run.data.metrics["target/train_seconds"]
    expected = m["full/train_seconds"] / (m["proxy/train_seconds"] + m["ranking/seconds"] + m["target/train_seconds"])
    assert m["core_set/end_to_end_speedup"] == pytest.approx(expected)
    order = np.load(client.download_artifacts(cs.info.run_id, "ranking/order.npy", str(tmp_path)))
    subset = np.load(client.download_artifacts(cs.info.run_id, "subset/indices.npy", str(tmp_path)))
    assert sorted(order.tolist()) == list(range(200)) and subset.tolist() == order[:60].tolist()
    seeds = np.load(client.download_artifacts(cs.info.run_id, "ranking/seeds.npy", str(tmp_path)))
    assert seeds.size == 10 and set(seeds.tolist()) <= set(subset.tolist())
    assert cs.inputs.dataset_inputs[0].dataset.name == "digits"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keep", "1.5"], "error: keep 1.5 is outside (0, 1]"),
        (["--subset-size", "5000"], "error: subset size 5000 is larger than the 1438 training examples"),
        (["--selector", "greedy_k_center"], "error: greedy_k_center: the 1000 seed points count toward the subset"),
        (["--full-run", "0123456789abcdef"], "error: run '0123456789abcdef' not found"),
    ],
)
def test_cli_bad_input_is_one_line_and_no_run(tracking_uri: str, args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, ["core-set", "--quiet", *args])
    assert res.exit_code == 2
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], res.output
    assert "Traceback" not in res.output
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("svpkit")
    assert exp is None or not client.search_runs([exp.experiment_id])


@pytest.mark.slow
def test_core_set_entry_point(tracking_uri: str, tmp_path: Path) -> None:
    submitted = mlflow.projects.run(
        str(ROOT),
        entry_point="core_set",
        parameters={
            "selector": "forgetting_events",
            "keep": "0.5",
            "train_limit": "400",
            "test_limit": "100",
            "proxy_epochs": "3",
            "target_epochs": "2",
            "compare_full": "true",
        },
        env_manager="local",
        synchronous=True,
    )
    client = mlflow.MlflowClient()
    run = client.get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["svpkit.loop"] == "core_set" and run.data.tags["svpkit.selector"] == "forgetting_events"
    order = np.load(client.download_artifacts(run.info.run_id, "ranking/order.npy", str(tmp_path)))
    subset = np.load(client.download_artifacts(run.info.run_id, "subset/indices.npy", str(tmp_path)))
    assert sorted(order.tolist()) == list(range(400))
    assert subset.size == 200 and subset.tolist() == order[:200].tolist()
    assert "core_set/end_to_end_speedup" in run.data.metrics
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"timings.json", "summary.json", "ranking", "subset", "figures"} <= files
