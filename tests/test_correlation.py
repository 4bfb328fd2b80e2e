"""Rank correlation between runs: values equal scipy.stats on fixtures; the CLI on real MLflow runs."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from svpkit import tracking
from svpkit.analysis.correlation import RankingSet, RankingSource, correlate, finite_scores, parse_k
from svpkit.cli import app
from svpkit.errors import ConfigError, DataError


def _fixture_sources() -> list[RankingSource]:
    rng = np.random.default_rng(7)
    n = 120
    base = rng.normal(size=n)
    full = RankingSource("core-set a", np.arange(n), base + rng.normal(scale=0.5, size=n))
    noisy = base + rng.normal(scale=2.0, size=n)
    noisy[[3, 50]] = np.inf  # e.g. never-learned examples under forgetting events
    second = RankingSource("core-set b", np.arange(n), noisy)
    pool = np.sort(rng.choice(n, size=90, replace=False))  # an active-learning pool
    third = RankingSource("al", pool, -base[pool] + rng.normal(scale=0.3, size=pool.size))
    return [full, second, third]


def test_matrices_equal_scipy_on_the_shared_examples() -> None:
    sources = _fixture_sources()
    rankings = RankingSet(sources)
    shared = sources[2].indices
    assert rankings.shared.tolist() == shared.tolist()
    report = correlate(rankings, [10, 45])
    values = [finite_scores(s.scores[np.searchsorted(s.indices, shared)]) for s in sources]
    for i in range(3):
        assert report.spearman[i, i] == 1.0 and report.pearson[i, i] == 1.0
        for j in range(3):
            if i != j:
                assert report.spearman[i, j] == pytest.approx(stats.spearmanr(values[i], values[j]).statistic)
                assert report.pearson[i, j] == pytest.approx(stats.pearsonr(values[i], values[j]).statistic)
    # The finite stand-in for +inf keeps the ranks: Spearman equals scipy on the raw scores.
    raw = sources[1].scores[shared]
    assert report.spearman[0, 1] == pytest.approx(stats.spearmanr(values[0], raw).statistic)
    assert report.spearman[0, 2] < 0 < report.spearman[0, 1]


def test_overlap_at_k_counts_common_top_k() -> None:
    a = RankingSource("a", np.arange(8), np.array([8, 7, 6, 5, 4, 3, 2, 1.0]))
    b = RankingSource("b", np.arange(8), np.array([1, 7, 8, 2, 3, 6, 5, 4.0]))
    c = RankingSource("c", np.arange(1, 8), np.array([0, 0, 0, 0, 0, 0, 1.0]), order=np.array([7, 1, 2, 3, 4, 5, 6]))
    report = correlate(RankingSet([a, b, c]), [1, 3])
    got = {(r["a"], r["b"], r["k"]): r["overlap"] for r in report.overlap}
    # Shared examples are 1..7. a's top-3: 1,2,3; b's: 2,1,5; c's (its logged order): 7,1,2.
    assert got[("a", "b", 3)] == 2 and got[("a", "c", 3)] == 2 and got[("b", "c", 3)] == 2
    assert got[("a", "b", 1)] == 0 and got[("a", "c", 1)] == 0 and got[("b", "c", 1)] == 0
    assert all(r["fraction"] == r["overlap"] / r["k"] for r in report.overlap)


def test_parse_k_and_bad_inputs() -> None:
    assert parse_k("100,0.5", 1000) == [100, 500]
    assert parse_k("0.1", 50) == [5]
    with pytest.raises(ConfigError):
        parse_k("2000", 1000)
    with pytest.raises(ConfigError):
        parse_k("1.5", 1000)
    with pytest.raises(ConfigError):
        RankingSet(_fixture_sources()[:1])
    disjoint = RankingSource("x", np.array([500, 501]), np.array([1.0, 2.0]))
    with pytest.raises(DataError):
        RankingSet([_fixture_sources()[0], disjoint])


def _fake_run(kind: str, digest: str, scores: np.ndarray, order: np.ndarray | None = None, **extra) -> str:  # type: ignore[no-untyped-def]
    """A finished run with the artifacts a core-set or active-learning run leaves."""
    n = 100
    tags = {
        "svpkit.loop": kind,
        "svpkit.dataset": "digits",
        "svpkit.selector": extra.get("selector", "entropy"),
        "svpkit.selector_model": extra.get("model", "digits_mlp"),
        "svpkit.seed": "0",
    }
    with tracking.tracked_run("corr", None, tags) as tracker:
        tracker.log_params({"dataset_digest": digest, "train_size": extra.get("n", n)})
        if kind == "core_set":
            tracker.log_array("ranking/scores.npy", scores.astype(np.float32))
            tracker.log_array("ranking/order.npy", order if order is not None else np.argsort(-scores, kind="stable"))
        else:
            tracker.log_array("rounds/0/labeled.npy", extra["labeled"])
            tracker.log_array("rounds/1/scores.npy", scores.astype(np.float32))
    return tracker.run_id


def test_cli_correlate_logs_matrices_to_a_new_run(tracking_uri: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=100).astype(np.float32)
    a = _fake_run("core_set", "d1", base)
    b = _fake_run("core_set", "d1", base + rng.normal(size=100).astype(np.float32), selector="forgetting_events")
    labeled = np.sort(rng.choice(100, size=20, replace=False))
    pool = np.setdiff1d(np.arange(100), labeled)
    al = _fake_run("active_learning", "d1", -base[pool], labeled=labeled, selector="least_confidence")
    runner = CliRunner()
    res = runner.invoke(app, ["correlate", "--experiment", "corr", "--k", "10,0.5", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "Spearman" in res.output and "overlap@k" in res.output
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("corr")
    runs = client.search_runs([exp.experiment_id], "tags.`svpkit.loop` = 'correlate'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.params["num_shared"] == "80"
    spearman = json.loads(
        Path(client.download_artifacts(run.info.run_id, "correlation/spearman.json", str(tmp_path))).read_text()
    )
    ids = spearman["run_ids"]
    assert set(ids) == {a, b, al}
    i, j, k = ids.index(a), ids.index(b), ids.index(al)
    b_scores = np.load(client.download_artifacts(b, "ranking/scores.npy", str(tmp_path)))
    m = np.array(spearman["matrix"])
    assert m[i, j] == pytest.approx(stats.spearmanr(base[pool], b_scores[pool]).statistic)
    assert m[i, k] == pytest.approx(-1.0)  # the AL pool scores are the negated core-set scores
    files = {f.path for f in client.list_artifacts(run.info.run_id, "correlation")}
    assert {
        "correlation/spearman.csv",
        "correlation/pearson.csv",
        "correlation/pearson.json",
        "correlation/overlap_at_k.csv",
    } <= files
    assert [f.path for f in client.list_artifacts(run.info.run_id, "figures")] == ["figures/correlation_heatmap.png"]
    # A filter narrows the search to core-set runs; explicit ids work as well.
    res = runner.invoke(app, ["correlate", "--experiment", "corr", "--filter", "tags.svpkit.loop = 'core_set'", "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["correlate", a, al, "-q"])
    assert res.exit_code == 0, res.output
    assert len(client.search_runs([exp.experiment_id], "tags.`svpkit.loop` = 'correlate'")) == 3


def test_cli_correlate_refuses_runs_over_different_data(tracking_uri: str) -> None:
    scores = np.arange(100, dtype=np.float32)
    a = _fake_run("core_set", "d1", scores)
    b = _fake_run("core_set", "d2", scores)
    res = CliRunner().invoke(app, ["correlate", a, b, "-q"])
    assert res.exit_code == 2
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "different data sets" in errors[0] and "Traceback" not in res.output
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("corr")
    assert not client.search_runs([exp.experiment_id], "tags.`svpkit.loop` = 'correlate'")


@pytest.mark.slow
def test_correlate_and_train_entry_points(tracking_uri: str, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    rng = np.random.default_rng(1)
    base = rng.normal(size=100)
    _fake_run("core_set", "d1", base)
    _fake_run("core_set", "d1", base + rng.normal(size=100), selector="greedy_k_center")
    client = mlflow.MlflowClient()
    submitted = mlflow.projects.run(
        str(root), entry_point="correlate", parameters={"k": "5"}, experiment_name="corr", env_manager="local"
    )
    run = client.get_run(submitted.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["svpkit.loop"] == "correlate"
    assert run.data.params["k"] == "5" and "correlation/mean_spearman" in run.data.metrics
    submitted = mlflow.projects.run(
        str(root),
        entry_point="train",
        parameters={"train_limit": "150", "test_limit": "50", "target_epochs": "1"},
        experiment_name="corr",
        env_manager="local",
    )
    run = client.get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert (tags["svpkit.loop"], tags["svpkit.role"], tags["svpkit.subset_size"]) == ("train", "target", "150")
    assert {"target/train_seconds", "target/test_error"} <= set(run.data.metrics)
