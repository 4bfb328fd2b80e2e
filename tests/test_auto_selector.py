"""``--selector auto`` (issue 24): the switch rule on scripted sequences, the two phases against the
selectors they hand to, and one tiny run that logs its switch round and reason."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.plugins import get_plugins
from svpkit.selectors.auto import auto_phase, first_switch
from svpkit.selectors.base import SelectionContext


@pytest.mark.parametrize(
    ("labeled", "classes", "switch", "hand_over"),
    [(14, 10, 5.0, False), (49, 10, 5.0, False), (50, 10, 5.0, True), (72, 10, 5.0, True), (9, 3, 3.0, True)],
)
def test_switch_point(labeled: int, classes: int, switch: float, hand_over: bool) -> None:
    assert auto_phase(labeled, classes, switch)[0] is hand_over


def test_scripted_run_switches_once_at_the_first_crossing() -> None:
    """Labeled sizes of a run's rounds: the first round at or over 5 per class hands over; it never goes back."""
    sizes = [14, 29, 43, 58, 72, 144]
    phases = [auto_phase(n, 10, 5.0) for n in sizes]
    infos = [{"phase": "hand-over" if h else "cold start", "selector": "x", "reason": why} for h, why in phases]
    assert [h for h, _ in phases] == [False, False, False, True, True, True]
    assert first_switch(infos) == "round 4: x because 58 labeled / 10 classes = 5.80 per class ≥ 5"
    assert first_switch(infos[:3]) is None and first_switch([None, None]) is None


@pytest.mark.parametrize(
    ("labeled", "kappas", "hand_over", "why"),
    [
        (72, [], False, "7.20 per class ≥ 5, no κ between consecutive targets yet"),
        (144, [0.70], False, "14.40 per class ≥ 5, highest κ so far 0.700 < 0.9"),
        (288, [0.70, 0.95], True, "28.80 per class ≥ 5, highest κ so far 0.950 ≥ 0.9"),
        (30, [0.95], False, "3.00 per class < 5, highest κ so far 0.950 ≥ 0.9"),
        (72, None, True, "72 labeled / 10 classes = 7.20 per class ≥ 5"),
    ],
)
def test_kappa_gate(labeled: int, kappas: list[float] | None, hand_over: bool, why: str) -> None:
    """Both the count and the κ evidence must hold; no κ history at all (None): the count alone."""
    got = auto_phase(labeled, 10, 5.0, kappas, 0.9)
    assert got[0] is hand_over and got[1].endswith(why)


def test_scripted_kappa_run_hands_over_once() -> None:
    """A digits-like run: κ settles at round 4; a later dip below the bar does not hand back."""
    sizes, kappas = [14, 72, 144, 288, 431, 575], [0.55, 0.93, 0.85, 0.97]
    phases = [auto_phase(n, 10, 5.0, kappas[: max(i - 1, 0)], 0.9) for i, n in enumerate(sizes)]
    assert [h for h, _ in phases] == [False, False, False, True, True, True]
    infos = [{"phase": "hand-over" if h else "cold start", "selector": "x", "reason": why} for h, why in phases]
    assert first_switch(infos) == (
        "round 4: x because 288 labeled / 10 classes = 28.80 per class ≥ 5, highest κ so far 0.930 ≥ 0.9"
    )
    assert auto_phase(144, 10, 5.0, [], 0.0)[0] is True  # switch_kappa 0: the count-only rule


def _context(labeled: int, options: dict[str, object]) -> SelectionContext:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    probs = torch.softmax(torch.as_tensor(rng.normal(size=(60 - labeled, 3))), dim=1)
    ctx = SelectionContext(np.arange(labeled, 60), np.arange(labeled), np.random.default_rng(1), options=options)
    ctx.inputs = lambda ix: torch.as_tensor(x[ix])
    ctx.probabilities = probs
    return ctx


def test_each_phase_picks_what_its_selector_picks() -> None:
    registry = get_plugins().selectors
    auto, herding, least = registry.get("auto"), registry.get("maxherding"), registry.get("least_confidence")
    cold = auto.select(_context(6, {"switch_per_class": 3.0}), 5)  # 6 / 3 classes = 2 per class: cold start
    assert cold.info["phase"] == "cold start" and cold.info["selector"] == "maxherding"  # the default (issue 35)
    assert cold.picks.tolist() == herding.select(_context(6, {"embedding": "input"}), 5).picks.tolist()
    typiclust = registry.get("typiclust")
    chosen = auto.select(_context(6, {"switch_per_class": 3.0, "cold_start": "typiclust"}), 5)
    assert chosen.picks.tolist() == typiclust.select(_context(6, {"embedding": "input"}), 5).picks.tolist()
    warm = auto.select(_context(9, {"switch_per_class": 3.0}), 5)  # 3 per class, no κ kept: hand over
    assert warm.info["phase"] == "hand-over" and "3.00 per class ≥ 3" in warm.info["reason"]
    unsettled = _context(9, {"switch_per_class": 3.0})
    unsettled.stop_kappas = [0.5]  # the loop keeps κ, and it is below 0.9: still cold start
    assert auto.select(unsettled, 5).info["phase"] == "cold start"
    assert warm.picks.tolist() == least.select(_context(9, {}), 5).picks.tolist()


def test_active_learning_with_auto_logs_the_switch(tracking_uri: str, tmp_path: Path) -> None:
    small = ["--dataset", "digits", "--train-limit", "300", "--test-limit", "100", "--device", "cpu", "--quiet"]
    args = [*small, "--selector", "auto", "--selector-options", "switch_per_class=3,switch_kappa=0"]
    args += ["--initial", "20"]
    args += ["--budgets", "40,60", "--proxy-epochs", "1", "--target-epochs", "1", "--agreement", "off"]
    res = CliRunner().invoke(app, ["active-learning", *args])
    assert res.exit_code == 0, res.output
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("svpkit").experiment_id])
    assert run.data.tags["svpkit.auto_switch"] == (
        "round 2: least_confidence because 40 labeled / 10 classes = 4.00 per class ≥ 3"
    )
    timings = json.loads(Path(client.download_artifacts(run.info.run_id, "timings.json", str(tmp_path))).read_text())
    assert [r["selector_info"]["selector"] for r in timings["rounds"]] == ["maxherding", "least_confidence"]


def test_active_learning_feeds_auto_the_stop_set_kappa(tracking_uri: str, tmp_path: Path) -> None:
    """In a run the κ gate reads the loop's stopping κ: none before round 3, then the logged value."""
    small = ["--dataset", "digits", "--train-limit", "300", "--test-limit", "100", "--device", "cpu", "--quiet"]
    args = [*small, "--selector", "auto", "--selector-options", "switch_per_class=1", "--initial", "20"]
    args += ["--budgets", "40,60,80", "--proxy-epochs", "1", "--target-epochs", "1", "--agreement", "off"]
    res = CliRunner().invoke(app, ["active-learning", *args])
    assert res.exit_code == 0, res.output
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("svpkit").experiment_id])
    timings = json.loads(Path(client.download_artifacts(run.info.run_id, "timings.json", str(tmp_path))).read_text())
    infos = [r["selector_info"] for r in timings["rounds"]]
    for info in infos[:2]:  # 20 and 40 labeled: at most one target trained before the pick
        assert info["phase"] == "cold start" and info["reason"].endswith("no κ between consecutive targets yet")
    kappa = [m.value for m in client.get_metric_history(run.info.run_id, "stopping/kappa") if m.step == 60]
    assert f"highest κ so far {kappa[0]:.3f}" in infos[2]["reason"]
    assert (infos[2]["phase"] == "hand-over") is (kappa[0] >= 0.9)
