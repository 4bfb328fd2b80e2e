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
    auto, typiclust, least = registry.get("auto"), registry.get("typiclust"), registry.get("least_confidence")
    cold = auto.select(_context(6, {"switch_per_class": 3.0}), 5)  # 6 / 3 classes = 2 per class: cold start
    assert cold.info["phase"] == "cold start" and cold.info["selector"] == "typiclust"
    assert cold.picks.tolist() == typiclust.select(_context(6, {"embedding": "input"}), 5).picks.tolist()
    warm = auto.select(_context(9, {"switch_per_class": 3.0}), 5)  # 3 per class: hand over
    assert warm.info["phase"] == "hand-over" and "3.00 per class ≥ 3" in warm.info["reason"]
    assert warm.picks.tolist() == least.select(_context(9, {}), 5).picks.tolist()


def test_active_learning_with_auto_logs_the_switch(tracking_uri: str, tmp_path: Path) -> None:
    small = ["--dataset", "digits", "--train-limit", "300", "--test-limit", "100", "--device", "cpu", "--quiet"]
    args = [*small, "--selector", "auto", "--selector-options", "switch_per_class=3", "--initial", "20"]
    args += ["--budgets", "40,60", "--proxy-epochs", "1", "--target-epochs", "1", "--agreement", "off"]
    res = CliRunner().invoke(app, ["active-learning", *args])
    assert res.exit_code == 0, res.output
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("svpkit").experiment_id])
    assert run.data.tags["svpkit.auto_switch"] == (
        "round 2: least_confidence because 40 labeled / 10 classes = 4.00 per class ≥ 3"
    )
    timings = json.loads(Path(client.download_artifacts(run.info.run_id, "timings.json", str(tmp_path))).read_text())
    assert [r["selector_info"]["selector"] for r in timings["rounds"]] == ["typiclust", "least_confidence"]
