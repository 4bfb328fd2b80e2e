"""Ctrl-C (SIGINT) and SIGTERM end a run as KILLED, keep its last finished round, and it resumes."""

from __future__ import annotations

import signal
from pathlib import Path

import mlflow
import pytest
from runhelpers import QUICK_AL, Cli, cli_env, client, load_array, metric_history, run_cli, state_rounds, wait_for_state

ROOT = Path(__file__).resolve().parents[1]
LEVELS = [144, 288, 431, 575]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_ends_the_run_killed_and_resumable(signum: int, tracking_uri: str, tmp_path: Path) -> None:
    env = cli_env(tracking_uri)
    args = ["active-learning", *QUICK_AL, "--budgets", "0.1,0.2,0.3,0.4", "--run-name", "signalled"]
    cli = Cli(*args, env=env, cwd=tmp_path)
    try:
        run_id = wait_for_state(cli, "signalled", 1)
        cli.proc.send_signal(signum)
        code = cli.wait(timeout=120)
    finally:
        cli.kill()
    name = signal.Signals(signum).name
    assert code == 128 + signum, cli.stderr
    lines = cli.stderr.strip().splitlines()
    assert lines == [f"error: interrupted by {name}; run {run_id} is KILLED, continue it with --resume {run_id}"]
    c = client()
    run = c.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["svpkit.interrupted"] == name
    done = state_rounds(run_id)[-1]
    assert 1 <= done < len(LEVELS)
    # Every round that finished before the signal is in the run, each metric step once.
    history = metric_history(run_id)
    assert [s for s, _ in history["target/test_error"]][:done] == LEVELS[:done]
    if signum == signal.SIGTERM:
        resumed = run_cli("active-learning", "--resume", run_id, "--quiet", env=env, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
    else:  # the MLproject entry: `mlflow run . -e active_learning -P resume=RUN_ID`
        submitted = mlflow.projects.run(
            str(ROOT), entry_point="active_learning", parameters={"resume": run_id}, env_manager="local"
        )
        shell = c.get_run(submitted.run_id)
        assert shell.info.status == "FINISHED" and shell.data.tags["svpkit.resumed_run"] == run_id
    assert c.get_run(run_id).info.status == "FINISHED"
    history = metric_history(run_id)
    for key, points in history.items():
        steps = [s for s, _ in points]
        assert len(steps) == len(set(steps)), f"{key} logged a step twice: {steps}"
    assert [s for s, _ in history["target/test_error"]] == LEVELS
    seen = set(load_array(run_id, "rounds/0/labeled.npy", tmp_path).tolist())
    for k, level in enumerate(LEVELS, start=1):
        picks = load_array(run_id, f"rounds/{k}/selected.npy", tmp_path).tolist()
        assert not seen & set(picks)
        seen |= set(picks)
        assert len(seen) == level
