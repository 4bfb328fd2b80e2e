"""The behaviour fixture's runs, in a process of their own: ``python tests/behaviour_runs.py OUT.json``.

Every run is ``--deterministic true``, so it pins PyTorch's portable CPU numerics
(``svpkit.runtime.pin_portable_numerics``) before torch first computes; that is why the runs need a
fresh process, and why ``tests/test_behaviour_fixture.py`` can start this one under each CPU
capability the machine has (``ATEN_CPU_CAPABILITY``) and expect the same picks from all of them.
``MLFLOW_TRACKING_URI`` names the (empty) store; the working directory is the scratch folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from runhelpers import Cli, cli_env, client, find_run, load_array, run_cli, wait_for_state  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

SMALL = [
    "--dataset",
    "digits",
    "--train-limit",
    "400",
    "--test-limit",
    "120",
    "--device",
    "cpu",
    "--quiet",
    "--deterministic",
    "true",
]
AL = [*SMALL, "--initial", "20", "--budgets", "60,100", "--proxy-epochs", "2", "--target-epochs", "2"]
CS = [*SMALL, "--keep", "0.5", "--proxy-epochs", "2", "--target-epochs", "2"]
PRESET = """
[preset]
name = "pinned"
experiment = "pinned"
loop = "active_learning"

[defaults]
dataset = "digits"
train_limit = 300
test_limit = 90
initial = 15
budgets = [40, 70]
target = "digits_cnn"
target_epochs = 1
proxy_epochs = 2
device = "cpu"
deterministic = "true"
seed = [0, 1]

[[runs]]
selector = "margin"
proxy = "digits_mlp"
"""


def _al_record(run_id: str, rounds: int, dest: Path) -> dict[str, Any]:
    run = client().get_run(run_id)
    assert run.info.status == "FINISHED"
    picks = [load_array(run_id, "rounds/0/labeled.npy", dest).tolist()]
    picks += [load_array(run_id, f"rounds/{k}/selected.npy", dest).tolist() for k in range(1, rounds + 1)]
    return {"picks": picks, "target_error": run.data.metrics.get("target/test_error")}


def _cs_record(run_id: str, dest: Path) -> dict[str, Any]:
    run = client().get_run(run_id)
    assert run.info.status == "FINISHED"
    return {
        "order": load_array(run_id, "ranking/order.npy", dest).tolist(),
        "subset": load_array(run_id, "subset/indices.npy", dest).tolist(),
        "target_error": run.data.metrics.get("target/test_error"),
    }


def _invoke(*args: str) -> str:
    from svpkit.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    run = find_run(args[args.index("--run-name") + 1])
    assert run is not None
    return str(run.info.run_id)


def _observed(tmp_path: Path, tracking_uri: str) -> dict[str, Any]:
    got: dict[str, Any] = {}
    for selector, proxy in [
        ("random", "digits_mlp"),
        ("least_confidence", "digits_mlp"),
        ("entropy", "digits_cnn"),
        ("margin", "digits_mlp"),
        ("greedy_k_center", "digits_mlp"),
    ]:
        name = f"al-{selector}"
        run_id = _invoke(
            "active-learning", *AL, "--selector", selector, "--proxy", proxy, "--seed", "1", "--run-name", name
        )
        got[name] = _al_record(run_id, 2, tmp_path)
    for selector, extra in [
        ("forgetting_events", []),
        ("greedy_k_center", ["--seed-size", "20"]),
        ("least_confidence", []),
    ]:
        name = f"cs-{selector}"
        run_id = _invoke("core-set", *CS, "--selector", selector, *extra, "--seed", "2", "--run-name", name)
        got[name] = _cs_record(run_id, tmp_path)

    preset = tmp_path / "pinned.toml"
    preset.write_text(PRESET)
    from svpkit.cli import app

    result = CliRunner().invoke(app, ["run", str(preset), "--no-compare"])
    assert result.exit_code == 0, result.output
    c = client()
    exp = c.get_experiment_by_name("pinned")
    runs = c.search_runs([exp.experiment_id], order_by=["params.seed ASC"])
    assert len(runs) == 2
    got["preset"] = [_al_record(r.info.run_id, 2, tmp_path) for r in runs]

    # A run SIGKILLed once round 1 is saved, then resumed: the same picks as recorded.
    args = ["active-learning", *AL, "--budgets", "40,60,80,100", "--selector", "least_confidence", "--seed", "4"]
    env = cli_env(tracking_uri)
    victim = Cli(*args, "--run-name", "killed", env=env, cwd=tmp_path)
    try:
        run_id = wait_for_state(victim, "killed", 1)
    finally:
        victim.kill()
    resumed = run_cli("active-learning", "--resume", run_id, "--quiet", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    got["resumed"] = _al_record(run_id, 4, tmp_path)
    return got


def main() -> None:
    import os

    out = Path(sys.argv[1])
    got = _observed(Path.cwd(), os.environ["MLFLOW_TRACKING_URI"])
    out.write_text(json.dumps(got, indent=1) + "\n")


if __name__ == "__main__":
    main()
