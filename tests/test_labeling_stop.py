"""``svpkit query --stop-when`` (issue 24, docs/labeling.md): a labeling project reports its
stopping criterion after each ``label`` and a query refuses a batch once the criterion holds."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.data.digits import load_digits
from svpkit.labeling.project import open_project
from svpkit.labeling.session import stop_status


def _hidden(root: Path, n: int) -> np.ndarray:
    digits = load_digits()
    root.mkdir(parents=True)
    np.savez(root / "train.npz", x=digits.train.x.numpy()[:n], y=np.full(n, -1))
    np.savez(root / "test.npz", x=digits.test.x.numpy()[:100], y=digits.test.y.numpy()[:100])
    return digits.train.y.numpy()[:n]


def _answer(project: str, truth: np.ndarray, tmp_path: Path) -> str:
    latest = open_project(project).latest
    assert latest is not None
    file = tmp_path / f"answers_{latest.round}.csv"
    file.write_text("id,label\n" + "".join(f"{i},{truth[int(i)]}\n" for i in latest.batch), encoding="utf-8")
    result = CliRunner().invoke(app, ["label", "--project", project, str(file)])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_project_stops_when_its_criterion_holds(tracking_uri: str, tmp_path: Path) -> None:
    truth = _hidden(tmp_path / "hidden", 200)
    data = ["--quiet", "--dataset", "npz", "--data-path", str(tmp_path / "hidden"), "--proxy-epochs", "2"]
    data += ["--dataset-options", "standardize=false", "--k", "30"]
    runner = CliRunner()
    first = runner.invoke(app, ["query", *data, "--stop-when", "kappa:0.99:1"])
    assert first.exit_code == 0, first.output
    project = open_project(first.stdout.split("run ")[-1].split(":")[0]).run_id
    assert project is not None
    # round 0 was random (no proxy): nothing to judge yet
    assert "stopping criterion kappa:0.99:1: not met after 0 proxies" in _answer(project, truth, tmp_path)
    second = runner.invoke(app, ["query", *data, "--project", project])
    assert second.exit_code == 0 and "stop:" not in second.stdout, second.output
    assert "not met after 1 proxies; the next query checks it" in _answer(project, truth, tmp_path)
    third = runner.invoke(app, ["query", *data, "--project", project])  # the first κ: two proxies exist
    assert third.exit_code == 0, third.output
    kappa = open_project(project).rounds[2].stopping["kappa"]  # type: ignore[index]
    _answer(project, truth, tmp_path)
    # A criterion met by the next proxy's κ whatever it is: the query refuses, the project is unchanged.
    before = open_project(project)
    stopped = runner.invoke(app, ["query", *data, "--project", project, "--stop-when", "kappa:-1:1"])
    assert stopped.exit_code == 3, stopped.output
    said = " ".join(stopped.stdout.split())  # rich wraps long lines
    assert said.startswith("stop: the stopping criterion holds with the proxy trained on 90 labels: kappa ")
    assert said.endswith("(this round) >= -1; stop labeling; no batch written (`--stop-when off` asks anyway)")
    assert open_project(project).seq == before.seq and open_project(project).invocation["stop_when"] == "kappa:0.99:1"
    # The same rule on the history so far holds too (κ ≥ -1); one above the recorded κ does not.
    assert stop_status(before, "kappa:-1:1") is not None and stop_status(before, f"kappa:{kappa + 1e-3}:1") is None
    resumed = runner.invoke(app, ["query", *data, "--project", project, "--stop-when", "off"])
    assert resumed.exit_code == 0 and len(open_project(project).rounds) == 4, resumed.output
    assert open_project(project).invocation["stop_when"] == "off"


def test_a_bad_stop_when_is_one_error_and_creates_nothing(tracking_uri: str, tmp_path: Path) -> None:
    _hidden(tmp_path / "hidden", 60)
    args = ["query", "--quiet", "--dataset", "npz", "--data-path", str(tmp_path / "hidden"), "--k", "10"]
    result = CliRunner().invoke(app, [*args, "--stop-when", "kappa:high"])
    assert result.exit_code == 2 and "error: --stop-when takes CRITERION:THRESHOLD[:WINDOW]" in result.output
    assert mlflow.MlflowClient().search_experiments(filter_string="name = 'svpkit'") == []
