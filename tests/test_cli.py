"""The CLI: listings, start-up without plugins, run links, a real active-learning run, clean errors."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
import typer
from runhelpers import cli_env, mlflow_server, run_cli
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.hookspecs import hookimpl

runner = CliRunner()
REAL_PLUGINS = all(importlib.util.find_spec(m) for m in ("svpkit_timm", "svpkit_fasttext"))
QUICK_TRAIN = ["train", "--quiet", "--target", "digits_mlp", "--train-limit", "60", "--test-limit", "30"]


def test_listings() -> None:
    result = runner.invoke(app, ["selectors", "list", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["least_confidence"]["needs"] == "max_probability"  # one value per pool example
    assert rows["bald"]["needs"] == "bald" and rows["badge"]["needs"] == "embeddings, probabilities"
    assert rows["greedy_k_center"]["needs"] == "embeddings"
    assert rows["random"]["needs"] == "nothing"
    models = {r["name"]: r for r in json.loads(runner.invoke(app, ["models", "list", "digits_*", "--json"]).stdout)}
    assert models["digits_mlp"]["parameters"] == 64 * 32 + 32 + 32 * 10 + 10
    assert models["digits_cnn"]["family"] == "cnn"
    datasets = runner.invoke(app, ["datasets", "list"])
    assert datasets.exit_code == 0 and "digits" in datasets.stdout


@pytest.mark.skipif(not REAL_PLUGINS, reason="needs the timm and fastText plugins (plugins/) installed")
def test_listings_with_the_real_plugins_are_short(tmp_path: Path) -> None:
    """Issue 17: with timm's 1,371 models installed, one line per plugin and one row per plugin family."""
    env = cli_env("sqlite:///unused.db")
    listed = run_cli("plugins", "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) <= 20, listed.stdout
    assert "1,371 models (timm/*)" in listed.stdout or "models (timm/*)" in listed.stdout
    models = run_cli("models", "list", env=env, cwd=tmp_path)
    assert models.returncode == 0, models.stderr
    assert len(models.stdout.splitlines()) <= 40, models.stdout
    assert "timm/*" in models.stdout and "preact_resnet20" in models.stdout and "timm/resnet18 " not in models.stdout
    every = run_cli("plugins", "list", "--verbose", env=env, cwd=tmp_path)
    assert "timm/resnet18" in every.stdout
    timm = json.loads(run_cli("models", "list", "timm/resnet1*", "--json", env=env, cwd=tmp_path).stdout)
    assert "timm/resnet18" in {m["name"] for m in timm}
    assert "timm/resnet18" in run_cli("models", "list", "--all", env=env, cwd=tmp_path).stdout


def _imported(*args: str, env: dict[str, str], cwd: Path, script: list[str] | None = None) -> tuple[str, set[str]]:
    """stdout of ``svpkit ARGS`` in a fresh interpreter and the modules it imported."""
    command = [sys.executable, "-X", "importtime", *(script or ["-m", "svpkit"]), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    modules = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    return result.stdout, modules


def test_help_version_and_completion_import_no_plugin(tmp_path: Path) -> None:
    """Issue 17: `svpkit --help` imported every plugin (3.7 s); plugins now load only for the commands that need them."""
    env = cli_env("sqlite:///unused.db")
    heavy = {"torch", "mlflow", "svpkit_timm", "svpkit_fasttext", "svpkit.builtin_plugin"}
    shown, modules = _imported("--help", env=env, cwd=tmp_path)
    assert "active-learning" in shown and not heavy & modules
    if REAL_PLUGINS:
        assert "svpkit-timm" in shown  # named from the metadata, not imported
    version, modules = _imported("--version", env=env, cwd=tmp_path)
    assert version.strip() == f"svpkit {importlib.metadata.version('svpkit')}" and not heavy & modules
    script = shutil.which("svpkit")
    if script is not None:  # completion runs through the console script (its name picks the variable)
        completing = {"_SVPKIT_COMPLETE": "complete_bash", "COMP_WORDS": "svpkit mo", "COMP_CWORD": "1"}
        words, modules = _imported(env=env | completing, cwd=tmp_path, script=[script])
        assert "models" in words.split() and not heavy & modules


@pytest.fixture()
def command_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.SimpleNamespace]:
    """A plugin with a command, loaded in this process; the app is restored afterwards."""
    from svpkit import plugins

    calls = types.SimpleNamespace(registered=0)

    class WithCommand:
        @hookimpl
        def register_commands(self, app: typer.Typer) -> None:
            calls.registered += 1

            @app.command("hello")
            def hello(name: str = "world") -> None:
                typer.echo(f"hello {name}")

    monkeypatch.setattr(
        plugins, "_CACHE", plugins.Plugins(load_entry_points=False, extra=(("greeter", WithCommand()),))
    )
    before = list(app.registered_commands)
    yield calls
    app.registered_commands[:] = before


def test_plugin_commands_load_only_when_called(command_plugin: types.SimpleNamespace) -> None:
    from svpkit.cli.base import main

    with pytest.raises(SystemExit) as done:
        main(["selectors", "list", "--json"])
    assert done.value.code == 0 and command_plugin.registered == 0  # a built-in command: no plugin commands
    with pytest.raises(SystemExit) as done:
        main(["hello", "--name", "SVP"])
    assert done.value.code == 0 and command_plugin.registered == 1
    listed = runner.invoke(app, ["plugins", "list"])
    assert "1 command (hello)" in listed.stdout and command_plugin.registered == 1  # once per process


def test_run_link_names_the_server_or_the_ui_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from svpkit.tracking.store import run_link

    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: "https://mlflow.example.org/")
    assert run_link("3", "abc") == [
        "run abc: https://mlflow.example.org/#/experiments/3/runs/abc?workflowType=machine_learning"
    ]
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: "sqlite:///mlflow.db")
    assert run_link("3", "abc") == [
        "run abc: mlflow ui --backend-store-uri sqlite:///mlflow.db",
        "  then open http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning",
    ]


def test_a_local_run_prints_the_ui_command_then_the_link(tracking_uri: str, tmp_path: Path) -> None:
    result = run_cli(*QUICK_TRAIN, "--target-epochs", "1", env=cli_env(tracking_uri), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    command, link = result.stdout.strip().splitlines()[-2:]
    assert command.endswith(f": mlflow ui --backend-store-uri {tracking_uri}")
    assert link.startswith("  then open http://127.0.0.1:5000/#/experiments/")


@pytest.mark.slow
def test_a_run_against_a_server_prints_the_servers_own_link(tmp_path: Path) -> None:
    with mlflow_server(tmp_path, f"sqlite:///{tmp_path / 'server.db'}") as url:
        result = run_cli(*QUICK_TRAIN, "--target-epochs", "1", env=cli_env(url), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("run ") and f": {url}/#/experiments/" in last, result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("selector", ["least_confidence", "greedy_k_center", "random"])
def test_active_learning_run(selector: str, tracking_uri: str, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "active-learning",
            "--quiet",
            "--selector",
            selector,
            "--budgets",
            "100,200,300",
            "--initial",
            "20",
            "--proxy-epochs",
            "4",
            "--target-epochs",
            "4",
            "--experiment",
            "cli-test",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "mlflow ui --backend-store-uri" in result.stdout
    (run,) = mlflow.search_runs(experiment_names=["cli-test"], output_format="list")
    assert run.info.status == "FINISHED"
    client = mlflow.MlflowClient()
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["svpkit.role"] == ("random" if selector == "random" else "proxy")
    assert tags["svpkit.budgets"] == "20,100,200,300"
    history = client.get_metric_history(run.info.run_id, "selection/cumulative_seconds")
    assert [m.step for m in history] == [100, 200, 300]
    assert [m.value for m in history] == sorted(m.value for m in history)
    assert 0.0 <= metrics["target/test_error"] <= 1.0
    labeled = set(np.load(client.download_artifacts(run.info.run_id, "rounds/0/labeled.npy", str(tmp_path))).tolist())
    assert len(labeled) == 20
    for k, level in enumerate([100, 200, 300], start=1):
        picks = np.load(client.download_artifacts(run.info.run_id, f"rounds/{k}/selected.npy", str(tmp_path)))
        scores = np.load(client.download_artifacts(run.info.run_id, f"rounds/{k}/scores.npy", str(tmp_path)))
        assert scores.shape == (1438 - len(labeled),)
        assert not labeled & set(picks.tolist())
        labeled |= set(picks.tolist())
        assert len(labeled) == level
        after = np.load(client.download_artifacts(run.info.run_id, f"rounds/{k}/labeled.npy", str(tmp_path)))
        assert set(after.tolist()) == labeled
    summary = json.loads(Path(client.download_artifacts(run.info.run_id, "summary.json", str(tmp_path))).read_text())
    assert summary["labeled_levels"] == [100, 200, 300]
    assert "figures/selection_seconds.png" in {f.path for f in client.list_artifacts(run.info.run_id, "figures")}
    if selector == "random":
        assert metrics["round/train_seconds"] == 0.0


@pytest.mark.parametrize(
    "args,message",
    [
        (["--selector", "leastconf"], "error: unknown selector 'leastconf'; did you mean 'least_confidence'?"),
        (["--proxy", "digits_mpl"], "error: unknown model 'digits_mpl'; did you mean 'digits_mlp'?"),
        (["--dataset", "digitz"], "error: unknown dataset 'digitz'; did you mean 'digits'?"),
        (["--budgets", "0.3,0.2"], "error: budgets must increase: 431 then 288"),
        (["--budgets", "0.1,1.2"], "error: budget 1.2 is outside (0, 1] (give a fraction, or a whole count)"),
        (
            ["--initial", "0.2", "--budgets", "0.1,0.2"],
            "error: initial set (288) must be smaller than the first budget (144)",
        ),
        (["--budgets", "100,5000"], "error: budget 5000 is larger than the 1438 training examples"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_run(args: list[str], message: str, tracking_uri: str) -> None:
    result = runner.invoke(app, ["active-learning", "--quiet", *args])
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert "Traceback" not in result.output
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
