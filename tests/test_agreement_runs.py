"""Proxy agreement inside runs (svpkit.loops.agreement): metrics, the warning tag, timing, bad input."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runhelpers import cli_env, client, install_plugins, metric_history, run_cli

from svpkit.contract import Artifact, Metric, Tag
from svpkit.data.digits import load_digits
from svpkit.errors import ConfigError
from svpkit.loops.active_learning import ALConfig, describe_run, run_active_learning
from svpkit.loops.core_set import CoreSetConfig, run_core_set
from svpkit.loops.settings import LoopSettings
from svpkit.plugins import get_plugins
from svpkit.tracking.memory import MemoryTracker

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--dataset", "digits", "--train-limit", "600", "--test-limit", "150", "--device", "cpu", "--quiet"]
AGREEMENT_KEYS = (Metric.AGREEMENT_SPEARMAN, Metric.AGREEMENT_TOP_K, Metric.AGREEMENT_RANDOM, Metric.AGREEMENT_SECONDS)


@pytest.fixture(scope="module")
def digits() -> Any:
    return load_digits().limited(train=300, test=90)


def _al(data: Any, tracker: MemoryTracker, selector: str = "least_confidence", **kw: Any) -> Any:
    p = get_plugins()
    settings = LoopSettings(proxy_epochs=2, target_epochs=2, device="cpu", **kw)
    cfg = ALConfig(initial=20, budgets=[50, 80, 110], settings=settings)
    specs = p.selectors.get(selector), p.models.get("digits_mlp"), p.models.get("digits_cnn")
    return run_active_learning(data, *specs, cfg, tracker)


@pytest.mark.slow
@pytest.mark.parametrize("selector", ["least_confidence", "greedy_k_center"])
def test_agreement_is_logged_after_the_first_round_and_changes_no_pick(digits: Any, selector: str) -> None:
    tracker, plain = MemoryTracker(), MemoryTracker()
    result = _al(digits, tracker, selector)
    baseline = _al(digits, plain, selector, agreement="off")
    assert all(np.array_equal(a, b) for a, b in zip(result.selected, baseline.selected))
    assert [r.target_error for r in result.rounds] == [r.target_error for r in baseline.rounds]
    for key in AGREEMENT_KEYS:
        assert [step for step, _ in tracker.metrics[key]] == [80, 110], key
        assert key not in plain.metrics
    assert all(-1 <= v <= 1 for _, v in tracker.metrics[Metric.AGREEMENT_SPEARMAN])
    assert all(0 <= v <= 1 for _, v in tracker.metrics[Metric.AGREEMENT_TOP_K])
    pools = [300 - 50, 300 - 80]
    assert [v for _, v in tracker.metrics[Metric.AGREEMENT_RANDOM]] == pytest.approx([30 / p for p in pools])
    assert Artifact.AGREEMENT_FIGURE in tracker.figures and Artifact.AGREEMENT_FIGURE not in plain.figures


def test_agreement_seconds_stay_out_of_the_selection_time(digits: Any) -> None:
    tracker = MemoryTracker()
    result = _al(digits, tracker)
    cumulative = tracker.metrics[Metric.SELECTION_CUMULATIVE_SECONDS][-1][1]
    assert cumulative == pytest.approx(sum(r.total_seconds for r in result.rounds))
    assert cumulative == pytest.approx(result.selection_seconds)
    assert all(seconds > 0 for _, seconds in tracker.metrics[Metric.AGREEMENT_SECONDS])


def test_scores_mode_logs_only_spearman_for_k_center(digits: Any) -> None:
    tracker = MemoryTracker()
    _al(digits, tracker, "greedy_k_center", agreement="scores")
    assert len(tracker.metrics[Metric.AGREEMENT_SPEARMAN]) == 2
    assert Metric.AGREEMENT_TOP_K not in tracker.metrics


def test_core_set_with_compare_full_logs_the_rankings_agreement(digits: Any) -> None:
    p = get_plugins()
    settings = LoopSettings(proxy_epochs=2, target_epochs=1, device="cpu")
    cfg = CoreSetConfig(keep=0.3, seed_size=10, settings=settings, compare_full=True)
    specs = p.selectors.get("greedy_k_center"), p.models.get("digits_mlp"), p.models.get("digits_cnn")
    tracker = MemoryTracker()
    run_core_set(digits, *specs, cfg, tracker)
    final = {k: v[-1] for k, v in tracker.metrics.items()}
    assert {k: final[k][0] for k in AGREEMENT_KEYS} == dict.fromkeys(AGREEMENT_KEYS, 90)
    assert final[Metric.AGREEMENT_RANDOM][1] == pytest.approx(80 / 290)
    assert 0 <= final[Metric.AGREEMENT_TOP_K][1] <= 1


def test_a_bad_agreement_is_one_error_line_before_any_run(tracking_uri: str) -> None:
    done = run_cli("active-learning", *SMALL, "--agreement", "sometimes", env=cli_env(tracking_uri), cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: agreement must be one of auto, off, scores, full, got 'sometimes'"
    ]
    assert not [r for e in client().search_experiments() for r in client().search_runs([e.experiment_id])]


@pytest.mark.parametrize(
    ("selector", "overrides", "message"),
    [
        ("least_confidence", {"train_target": False}, "--agreement full needs the target trained at every level"),
        ("random", {}, "--agreement full needs a selector with a model"),
    ],
)
def test_agreement_that_cannot_be_measured_is_a_config_error(
    digits: Any, selector: str, overrides: dict[str, Any], message: str
) -> None:
    p = get_plugins()
    cfg = ALConfig(initial=20, budgets=[50], settings=LoopSettings(agreement="full"), **overrides)
    specs = p.selectors.get(selector), p.models.get("digits_mlp"), p.models.get("digits_cnn")
    with pytest.raises(ConfigError, match=re.escape(message)):
        describe_run(digits, *specs, cfg)


def test_auto_is_off_for_a_baseline_and_without_the_target(digits: Any) -> None:
    p = get_plugins()
    cnn, mlp = p.models.get("digits_cnn"), p.models.get("digits_mlp")
    selector = p.selectors.get("least_confidence")
    assert describe_run(digits, selector, cnn, cnn, ALConfig())[0][Tag.AGREEMENT] == "off"
    assert describe_run(digits, selector, mlp, cnn, ALConfig(train_target=False))[0][Tag.AGREEMENT] == "off"
    assert describe_run(digits, selector, mlp, cnn, ALConfig())[0][Tag.AGREEMENT] == "full"


def _cli_run(tracking_uri: str, site: Path | None, *args: str) -> tuple[Any, Any]:
    """A run whose picks are the proxy's uncertainty (least confidence, named: the default ``auto``
    starts with model-free MaxHerding, whose picks agree with the target's by construction)."""
    env = cli_env(tracking_uri, site)
    sizes = ["--initial", "30", "--budgets", "100,170,240,310", "--selector", "least_confidence"]
    done = run_cli("active-learning", *SMALL, *sizes, *args, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    c = client()
    experiment = c.get_experiment_by_name("svpkit")
    run = c.search_runs([experiment.experiment_id], order_by=["start_time DESC"])[0]
    return run, done


@pytest.mark.slow
def test_a_useless_proxy_is_near_random_and_warned_about(tracking_uri: str, tmp_path: Path) -> None:
    site = install_plugins(tmp_path / "site", "svpkit-useless-proxy")
    run, done = _cli_run(tracking_uri, site, "--proxy", "useless_proxy", "--target-epochs", "10")
    history = metric_history(run.info.run_id)
    overlaps = [v for _, v in history[Metric.AGREEMENT_TOP_K]]
    randoms = [v for _, v in history[Metric.AGREEMENT_RANDOM]]
    assert len(overlaps) == 3
    assert np.mean(overlaps) < np.mean(randoms) + 0.1  # near the random line
    assert run.data.tags[Tag.AGREEMENT] == "full"
    assert "within noise of random picks" in run.data.tags[Tag.PROXY_WARNING]
    assert "warning: the proxy's top-k overlap" in done.stderr


@pytest.mark.slow
def test_a_longer_trained_target_as_proxy_is_not_warned_about(tracking_uri: str) -> None:
    args = ("--proxy", "digits_cnn", "--proxy-epochs", "10", "--target-epochs", "10", "--agreement", "full")
    run, done = _cli_run(tracking_uri, None, *args)
    history = metric_history(run.info.run_id)
    overlaps = [v for _, v in history[Metric.AGREEMENT_TOP_K]]
    randoms = [v for _, v in history[Metric.AGREEMENT_RANDOM]]
    assert min(o - r for o, r in zip(overlaps, randoms)) > 0.1
    assert Tag.PROXY_WARNING not in run.data.tags
    assert "warning:" not in done.stderr
