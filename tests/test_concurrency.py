"""Two runs started at the same moment against the same (new) sqlite store both finish whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from runhelpers import QUICK_AL, Cli, cli_env, client, find_run, load_array, metric_history, state_rounds


@pytest.mark.slow
def test_two_runs_at_once_on_one_new_sqlite_store(tracking_uri: str, tmp_path: Path) -> None:
    assert not (tmp_path / "mlflow.db").exists()  # both processes race to create the store
    env = cli_env(tracking_uri)
    common = ["active-learning", *QUICK_AL, "--budgets", "0.1,0.2"]
    runs = {
        "first": Cli(*common, "--seed", "1", "--run-name", "first", env=env, cwd=tmp_path),
        "second": Cli(*common, "--seed", "2", "--selector", "entropy", "--run-name", "second", env=env, cwd=tmp_path),
    }
    for cli in runs.values():
        assert cli.wait() == 0, cli.stderr
    c = client()
    # Both created-or-found the same experiment (the second create loses the race, then finds it).
    assert sorted(e.name for e in c.search_experiments()) == ["Default", "svpkit"]
    for name in runs:
        run = find_run(name)
        assert run is not None and run.info.status == "FINISHED"
        run_id = run.info.run_id
        paths = {f.path for f in c.list_artifacts(run_id)}
        assert {"rounds", "state", "figures", "summary.json", "timings.json"} <= paths
        for k in (1, 2):
            names = {Path(f.path).name for f in c.list_artifacts(run_id, f"rounds/{k}")}
            assert names == {"selected.npy", "scores.npy", "labeled.npy", "per_class.json"}
        assert load_array(run_id, "rounds/2/labeled.npy", tmp_path).size == 288
        assert state_rounds(run_id) == [0, 1, 2]
        history = metric_history(run_id)
        assert [s for s, _ in history["target/test_error"]] == [144, 288]
        assert [s for s, _ in history["selector_model/test_error"]] == [14, 144]
