"""Everything against a real ``mlflow server`` over HTTP: an MLproject entry, an interrupted run
resumed with ``--resume``, and ``svpkit compare`` (sqlite backend store and a served artifact root
in a temporary directory, on a free port of 127.0.0.1)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from runhelpers import mlflow_server
from typer.testing import CliRunner

from svpkit.cli import app

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"train_limit": "400", "test_limit": "100", "initial": "20", "budgets": "40,80", "seed": "0"}
EPOCHS = {"proxy_epochs": "2", "target_epochs": "2"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running ``mlflow server``; its URI."""
    root = tmp_path_factory.mktemp("mlflow-server")
    backend = f"sqlite:///{root / 'backend.db'}"
    with mlflow_server(root, backend, "--artifacts-destination", str(root / "artifacts")) as uri:
        yield uri


@pytest.fixture()
def remote(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.chdir(tmp_path)  # nothing may land in a local mlruns/ or mlflow.db
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    mlflow.set_tracking_uri(server)
    yield server
    mlflow.set_tracking_uri(None)


def _options(values: dict[str, str]) -> list[str]:
    return [part for key, value in values.items() for part in (f"--{key.replace('_', '-')}", value)]


@pytest.mark.slow
def test_entry_resume_and_compare_against_a_tracking_server(
    remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from svpkit import tracking

    client = mlflow.MlflowClient()
    experiment = "remote"
    exp_id = client.create_experiment(experiment)

    # 1. An MLproject entry (the baseline: the target selects) against the server.
    baseline = mlflow.projects.run(
        str(ROOT),
        entry_point="active_learning",
        parameters={**SMALL, **EPOCHS, "proxy": "digits_cnn", "device": "cpu"},
        experiment_id=exp_id,
        env_manager="local",
        synchronous=True,
    )
    run = client.get_run(baseline.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["svpkit.role"] == "baseline"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # served by the server, not a local path
    assert [m.step for m in client.get_metric_history(baseline.run_id, "target/test_error")] == [40, 80]
    picks = np.load(client.download_artifacts(baseline.run_id, "rounds/1/selected.npy", str(tmp_path)))
    assert picks.shape == (20,)
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()

    # 2. A proxy run interrupted (Ctrl-C) after its first round, then resumed from the server.
    original_save = tracking.MlflowTracker.save_state

    def save_then_interrupt(self: tracking.MlflowTracker, state: dict) -> None:
        original_save(self, state)
        if state.get("round") == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(tracking.MlflowTracker, "save_state", save_then_interrupt)
    runner = CliRunner()
    args = ["active-learning", "--quiet", "--device", "cpu", "--experiment", experiment]
    first = runner.invoke(app, [*args, *_options({**SMALL, **EPOCHS})])
    assert first.exit_code == 130, first.output
    monkeypatch.setattr(tracking.MlflowTracker, "save_state", original_save)
    (killed,) = client.search_runs([exp_id], "attributes.status = 'KILLED'")
    assert [m.step for m in client.get_metric_history(killed.info.run_id, "target/test_error")] == [40]

    resumed = runner.invoke(app, ["active-learning", "--quiet", "--resume", killed.info.run_id])
    assert resumed.exit_code == 0, resumed.output
    run = client.get_run(killed.info.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["svpkit.role"] == "proxy"
    assert run.data.tags["svpkit.resumed_from_round"] == "1"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "target/test_error")] == [40, 80]
    labeled = np.load(client.download_artifacts(run.info.run_id, "rounds/2/labeled.npy", str(tmp_path)))
    assert labeled.shape == (80,) and np.unique(labeled).size == 80

    # 3. svpkit compare reads both runs from the server and logs its tables there.
    compared = runner.invoke(app, ["compare", "--experiment", experiment])
    assert compared.exit_code == 0, compared.output
    (cmp_run,) = client.search_runs([exp_id], "tags.`svpkit.loop` = 'compare'")
    assert cmp_run.data.tags["svpkit.compared_runs"] == "2"
    assert cmp_run.data.tags["svpkit.unpaired_runs"] == "0"
    table = Path(client.download_artifacts(cmp_run.info.run_id, "comparison/table.md", str(tmp_path))).read_text()
    assert "auto" in table  # the default selector
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()


PRESET = """
[preset]
name = "{name}"
experiment = "{name}"
loop = "active_learning"

[defaults]
dataset = "digits"
train_limit = 300
test_limit = 100
target = "digits_cnn"
initial = 20
budgets = [40]
seed = 0
proxy_epochs = 1
target_epochs = 1
device = "cpu"

[[runs]]
selector = "least_confidence"
proxy = ["digits_cnn", "digits_mlp"]
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", [["--parallel", "2"], ["--backend", "local", "--project", str(ROOT)]])
def test_preset_fans_out_and_ends_with_one_compare(remote: str, tmp_path: Path, how: list[str]) -> None:
    name = "fanout-" + how[1]
    preset = tmp_path / "preset.toml"
    preset.write_text(PRESET.format(name=name))
    result = CliRunner().invoke(app, ["run", str(preset), *how])
    assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], "tags.`svpkit.loop` = 'active_learning'")
    assert sorted(r.data.tags["svpkit.role"] for r in runs) == ["baseline", "proxy"]
    assert all(r.info.status == "FINISHED" and r.data.tags["svpkit.preset"] == name for r in runs)
    if how[0] == "--backend":
        assert all(r.data.tags["mlflow.project.backend"] == "local" for r in runs)
    (cmp_run,) = client.search_runs([exp.experiment_id], "tags.`svpkit.loop` = 'compare'")
    assert cmp_run.data.tags["svpkit.compared_runs"] == "2" and cmp_run.data.tags["svpkit.unpaired_runs"] == "0"
    # Run again: both runs are FINISHED, so nothing is submitted twice.
    again = CliRunner().invoke(app, ["run", str(preset), *how, "--no-compare"])
    assert again.exit_code == 0, again.output
    assert len(client.search_runs([exp.experiment_id], "tags.`svpkit.loop` = 'active_learning'")) == 2


def test_pool_is_bounded_by_gpus_and_runs() -> None:
    from svpkit.errors import ConfigError
    from svpkit.presets.backends import pool_size

    assert pool_size(8, 10, gpus=2) == 2  # one run per GPU
    assert pool_size(8, 3, gpus=4) == 3  # never more workers than runs
    assert pool_size(1, 10, gpus=4) == 1
    assert pool_size(2, 10, gpus=0) == min(2, os.cpu_count() or 1)  # CPU: the cores bound it
    with pytest.raises(ConfigError):
        pool_size(0, 3, gpus=0)


def test_backend_runs_need_mlproject_parameters(tmp_path: Path) -> None:
    from svpkit.errors import ConfigError
    from svpkit.presets import PlannedRun
    from svpkit.presets.backends import entry_parameters

    ok = PlannedRun(1, "active_learning", "al-x", {"seed": 1, "budgets": "0.1,0.2"}, "k", ["--seed", "1"])
    assert entry_parameters(ok, ROOT) == {"seed": "1", "budgets": "0.1,0.2"}
    bad = PlannedRun(2, "active_learning", "al-y", {"train_target": False}, "k", ["--no-train-target"])
    with pytest.raises(ConfigError, match="train_target"):
        entry_parameters(bad, ROOT)
