"""The CLI through typer's runner: listings, a real active-learning run, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from typer.testing import CliRunner

from svpkit.cli import app

runner = CliRunner()


def test_listings() -> None:
    result = runner.invoke(app, ["selectors", "list", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["least_confidence"]["needs"] == "probabilities"
    assert rows["greedy_k_center"]["needs"] == "embeddings"
    assert rows["random"]["needs"] == "nothing"
    models = {r["name"]: r for r in json.loads(runner.invoke(app, ["models", "list", "digits_*", "--json"]).stdout)}
    assert models["digits_mlp"]["parameters"] == 64 * 32 + 32 + 32 * 10 + 10
    assert models["digits_cnn"]["family"] == "cnn"
    datasets = runner.invoke(app, ["datasets", "list"])
    assert datasets.exit_code == 0 and "digits" in datasets.stdout


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
