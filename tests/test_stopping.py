"""Stopping criteria (issue 24): Cohen's kappa and mean uncertainty, the --stop-when rule on scripted
sequences, and one tiny active-learning run that stops early and says why."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.errors import ConfigError
from svpkit.loops.stopping import StopMonitor, StopRule, kappa, mean_uncertainty, stop_set
from svpkit.tracking.memory import MemoryTracker


def test_kappa_and_uncertainty_by_hand() -> None:
    a = np.array([0, 0, 1, 1, 2, 2])
    b = np.array([0, 1, 1, 1, 2, 0])
    # observed agreement 4/6; chance: (2*2 + 2*3 + 2*1) / 36 = 12/36; kappa = (4/6 - 1/3) / (1 - 1/3)
    assert kappa(a, b) == pytest.approx(0.5)
    assert kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert kappa(np.zeros(5), np.zeros(5)) == 1.0  # sklearn: undefined (nan) for one shared class
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    assert mean_uncertainty(probs) == pytest.approx((0.5 + 0.1 + 0.2) / 3)


@pytest.mark.parametrize(
    ("text", "values", "holds_at"),
    [
        ("kappa:0.99", [0.5, 0.99, 0.995, 0.99, 0.999], 4),  # mean of the last 3: first at the 4th value
        ("kappa:0.99:1", [0.5, 0.991, 0.2], 2),
        ("kappa:0.99", [0.999, 0.999, 0.97, 0.999, 0.999], None),  # 0.989.. then 0.9893..: never
        ("uncertainty:0.1", [0.4, 0.2, 0.1, 0.3], 3),
        ("uncertainty:0.1:2", [0.4, 0.05, 0.2, 0.05, 0.1], 5),
    ],
)
def test_stop_rule_on_scripted_sequences(text: str, values: list[float], holds_at: int | None) -> None:
    rule = StopRule.parse(text)
    assert rule is not None
    first = next((i + 1 for i in range(len(values)) if rule.holds(values[: i + 1])), None)
    assert first == holds_at


@pytest.mark.parametrize("text", ["kappa", "kappa:x", "entropy:0.1", "kappa:0.9:0", "kappa:0.9:1.5", "kappa:nan"])
def test_bad_stop_rules_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--stop-when"):
        StopRule.parse(text)


class Scripted:
    """A learner whose stop-set predictions follow a script (one row of class scores per round)."""

    def __init__(self, classes: np.ndarray, confidence: float) -> None:
        self.classes, self.confidence = classes, confidence

    def predict_proba(self, indices: np.ndarray) -> torch.Tensor:
        probs = np.full((indices.size, 3), (1 - self.confidence) / 2)
        probs[np.arange(indices.size), self.classes[: indices.size]] = self.confidence
        return torch.as_tensor(probs)


def test_monitor_logs_each_round_and_stops_with_a_reason() -> None:
    monitor = StopMonitor.for_run(50, seed=3, stop_when="kappa:0.9:2")
    assert monitor.indices.tolist() == stop_set(50, 3).tolist() and monitor.indices.size == 50
    rng = np.random.default_rng(0)
    base = rng.integers(0, 3, size=50)
    drift = [base.copy() for _ in range(4)]
    drift[0][:25] = (drift[0][:25] + 1) % 3  # round 1 differs from the rest on half the set
    drift[1][:2] = (drift[1][:2] + 1) % 3
    tracker = MemoryTracker()
    stopped_at = None
    for r, classes in enumerate(drift, start=1):
        monitor.observe(Scripted(classes, 0.6 + 0.1 * r), labeled_count=10 * r)  # type: ignore[arg-type]
        if monitor.after_round(tracker, r):
            stopped_at = r
            break
    assert monitor.kappas[0] is None and monitor.kappas[1] == pytest.approx(cohen_kappa_score(drift[0], drift[1]))
    k2, k3 = cohen_kappa_score(drift[1], drift[2]), cohen_kappa_score(drift[2], drift[3])
    assert (monitor.kappas[1] + k2) / 2 < 0.9 <= (k2 + k3) / 2
    assert stopped_at == 4 and monitor.stopped is not None and "after round 4 at 40 labeled" in monitor.stopped
    assert monitor.uncertainties == pytest.approx([0.3, 0.2, 0.1, 0.0], abs=1e-6)  # float32 probabilities
    restored = StopMonitor.for_run(50, seed=3, stop_when=None)
    restored.restore(monitor.state())
    assert restored.kappas == monitor.kappas and np.array_equal(restored.previous, drift[3])  # type: ignore[arg-type]


def test_active_learning_stops_early_and_says_why(tracking_uri: str) -> None:
    small = ["--dataset", "digits", "--train-limit", "300", "--test-limit", "100", "--device", "cpu", "--quiet"]
    args = [*small, "--selector", "random", "--initial", "20", "--budgets", "40,60,80,100"]
    args += ["--target-epochs", "1", "--stop-when", "uncertainty:1.0"]  # holds after the first round
    res = CliRunner().invoke(app, ["active-learning", *args])
    assert res.exit_code == 0, res.output
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("svpkit").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["svpkit.stopped"].endswith("<= 1 after round 1 at 40 labeled")
    history = client.get_metric_history(run.info.run_id, "labeled/count")
    assert [m.step for m in history] == [40]  # levels 60-100 were never run
    assert 0 <= run.data.metrics["stopping/uncertainty"] <= 0.9
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert "figures/stopping.png" in artifacts
    bad = CliRunner().invoke(app, ["active-learning", *small, "--stop-when", "kappa:high"])
    assert bad.exit_code == 2 and bad.output.count("error:") == 1 and "--stop-when" in bad.output


def test_a_labeling_project_reports_the_criteria_after_each_round_of_labels(tracking_uri: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import re

    from test_labeling import hidden_digits, read_rows, write_answers

    from svpkit.labeling.project import open_project

    truth = hidden_digits(tmp_path / "hidden", 80)
    data = ["--quiet", "--proxy-epochs", "2", "--dataset", "npz", "--data-path", str(tmp_path / "hidden"), "--k", "10"]
    project: str | None = None
    printed = []
    for r in range(3):
        batch = tmp_path / f"batch_{r}.csv"
        res = CliRunner().invoke(
            app, ["query", *data, *(["--project", project] if project else []), "--out", str(batch)]
        )
        assert res.exit_code == 0, res.output
        printed.append(res.output)
        project = re.search(r"^run (\w+):", res.output, flags=re.M).group(1)  # type: ignore[union-attr]
        answers = write_answers(
            tmp_path / f"a{r}.csv", [(row["id"], truth[int(row["id"])]) for row in read_rows(batch)]
        )
        assert CliRunner().invoke(app, ["label", "--project", project, str(answers)]).exit_code == 0
    assert "stopping criteria" not in printed[0]  # nothing labeled yet: no proxy
    assert "stopping criteria: kappa vs the previous proxy —, mean uncertainty" in printed[1]
    assert re.search(
        r"stopping criteria: kappa vs the previous proxy -?\d\.\d{3}, mean uncertainty \d\.\d{3}", printed[2]
    )
    rounds = open_project(str(project)).rounds
    assert rounds[0].stopping is None and rounds[1].stopping["kappa"] is None  # type: ignore[index]
    first, second = (np.asarray(rounds[i].stopping["predictions"]) for i in (1, 2))  # type: ignore[index]
    assert rounds[2].stopping["kappa"] == pytest.approx(cohen_kappa_score(first, second))  # type: ignore[index]
