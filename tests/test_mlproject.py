"""The MLproject entry points run through mlflow.projects.run on a temporary sqlite store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_active_learning_entry_point(tracking_uri: str, tmp_path: Path) -> None:
    submitted = mlflow.projects.run(
        str(ROOT),
        entry_point="active_learning",
        parameters={"budgets": "0.1,0.2,0.3", "proxy_epochs": "5", "target_epochs": "5"},
        env_manager="local",
        synchronous=True,
    )
    client = mlflow.MlflowClient()
    run = client.get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["svpkit.loop"] == "active_learning"
    assert tags["svpkit.role"] == "proxy"
    # The main job's default: auto (MaxHerding on the standardised digits, then BADGE).
    assert tags["svpkit.selector"] == "auto"
    assert "embedding=input" in tags["svpkit.selector_options"].split(",")
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    history = client.get_metric_history(run.info.run_id, "target/test_error")
    assert [m.step for m in history] == [144, 288, 431]
    initial = np.load(client.download_artifacts(run.info.run_id, "rounds/0/labeled.npy", str(tmp_path)))
    seen = set(initial.tolist())
    for k, level in enumerate([144, 288, 431], start=1):
        picks = np.load(client.download_artifacts(run.info.run_id, f"rounds/{k}/selected.npy", str(tmp_path)))
        assert not seen & set(picks.tolist())
        seen |= set(picks.tolist())
        assert len(seen) == level
    assert run.inputs.dataset_inputs[0].dataset.name == "digits"
