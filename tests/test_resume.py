"""Resume after a crash: SIGKILL a run mid-way, ``--resume`` it, get the uninterrupted result.

Each test starts an uninterrupted run and a second, identical one side by side (two CLI
processes, one thread each); the second is SIGKILLed as soon as it has saved the state it needs
(AL: round 1 finished, so it dies in round 2 or later; core-set: the proxy stage finished), then
resumed in the same MLflow run. Selected indices of every round, rankings and every metric's
steps and values (timings aside) must equal the uninterrupted run's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runhelpers import (
    QUICK_AL,
    Cli,
    cli_env,
    client,
    find_run,
    kill_after_state,
    load_array,
    load_json,
    metric_history,
    run_cli,
    state_rounds,
)

TIMING = ("seconds", "speedup")


def _assert_same_metrics(resumed: str, reference: str) -> None:
    got, want = metric_history(resumed), metric_history(reference)
    assert sorted(got) == sorted(want)
    for key in want:
        # Same steps, each exactly once: the resumed run logged nothing twice.
        assert [s for s, _ in got[key]] == [s for s, _ in want[key]], key
        if not any(t in key for t in TIMING):
            assert got[key] == want[key], key


@pytest.mark.slow
def test_active_learning_killed_in_round_two_resumes_to_the_same_result(tracking_uri: str, tmp_path: Path) -> None:
    # Model options change the training (twice the batch, linearly scaled learning rate): the
    # resumed rounds match only if --resume reuses them.
    options = ["--batch-size", "64", "--proxy-options", "lr_scaling=linear", "--target-options", "lr_scaling=linear"]
    args = ["active-learning", *QUICK_AL, "--budgets", "0.1,0.2,0.3,0.4", "--seed", "3", *options]
    env = cli_env(tracking_uri)
    reference = Cli(*args, "--run-name", "uninterrupted", env=env, cwd=tmp_path)
    run_id, _ = kill_after_state(args, env, tmp_path, round_no=1)
    c = client()
    killed = c.get_run(run_id)
    assert killed.info.status == "RUNNING"  # SIGKILL gives no chance to clean up
    done = state_rounds(run_id)[-1]
    assert 1 <= done < 4, f"killed after round {done}: too late to test resume"

    resumed = run_cli("active-learning", "--resume", run_id, "--quiet", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert reference.wait() == 0, reference.stderr
    ref_id = find_run("uninterrupted").info.run_id

    run = c.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["svpkit.resumed_from_round"] == str(done)
    for k in range(5):
        name = "labeled" if k == 0 else "selected"
        got = load_array(run_id, f"rounds/{k}/{name}.npy", tmp_path)
        want = load_array(ref_id, f"rounds/{k}/{name}.npy", tmp_path)
        assert got.tolist() == want.tolist(), f"round {k}"
    _assert_same_metrics(run_id, ref_id)
    assert [s for s, _ in metric_history(run_id)["target/test_error"]] == [144, 288, 431, 575]
    summary, ref_summary = load_json(run_id, "summary.json", tmp_path), load_json(ref_id, "summary.json", tmp_path)
    assert summary["target_error"] == ref_summary["target_error"]
    assert len(load_json(run_id, "timings.json", tmp_path)["rounds"]) == 4
    assert run.data.params == c.get_run(ref_id).data.params


@pytest.mark.slow
def test_core_set_killed_after_the_proxy_stage_resumes_to_the_same_result(tracking_uri: str, tmp_path: Path) -> None:
    # forgetting_events: the ranking comes from training dynamics, saved with the stage's state.
    args = ["core-set", "--quiet", "--proxy-epochs", "4", "--target-epochs", "6", "--keep", "0.5", "--seed", "1"]
    env = cli_env(tracking_uri)
    reference = Cli(*args, "--run-name", "uninterrupted", env=env, cwd=tmp_path)
    run_id, _ = kill_after_state(args, env, tmp_path, round_no=1)
    c = client()
    assert c.get_run(run_id).info.status == "RUNNING"
    assert state_rounds(run_id)[-1] == 1, "the target stage finished before the kill"

    resumed = run_cli("core-set", "--resume", run_id, "--quiet", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert reference.wait() == 0, reference.stderr
    ref_id = find_run("uninterrupted").info.run_id

    run = c.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["svpkit.resumed_from_round"] == "1"
    for path in ("ranking/order.npy", "ranking/scores.npy", "subset/indices.npy"):
        got, want = load_array(run_id, path, tmp_path), load_array(ref_id, path, tmp_path)
        assert got.tolist() == want.tolist(), path
    _assert_same_metrics(run_id, ref_id)
    summary = load_json(run_id, "summary.json", tmp_path)
    assert summary["target_error"] == load_json(ref_id, "summary.json", tmp_path)["target_error"]


def test_same_seed_same_picks_different_seed_different_picks() -> None:
    """Determinism on CPU, in-process: the selected indices depend on the seed and nothing else."""
    from svpkit.data.digits import load_digits
    from svpkit.loops.active_learning import ALConfig, run_active_learning
    from svpkit.loops.settings import LoopSettings
    from svpkit.plugins import get_plugins
    from svpkit.tracking.memory import MemoryTracker

    plugins = get_plugins()
    data = load_digits()
    specs = (plugins.selectors.get("least_confidence"), plugins.models.get("digits_mlp"))

    def picks(seed: int) -> list[list[int]]:
        settings = LoopSettings(seed=seed, device="cpu", proxy_epochs=2)
        cfg = ALConfig(budgets=[0.1, 0.2], settings=settings, train_target=False)
        result = run_active_learning(data, specs[0], specs[1], specs[1], cfg, MemoryTracker())
        return [result.initial.tolist(), *(s.tolist() for s in result.selected)]

    first = picks(5)
    assert picks(5) == first
    assert picks(6) != first


def test_resume_state_survives_a_torn_write_and_metrics_are_not_logged_twice(tracking_uri: str) -> None:
    from svpkit import tracking

    with tracking.tracked_run("svpkit", "torn") as tracker:
        tracker.state_extra["invocation"] = {"seed": 0}
        tracker.save_state({"loop": "active_learning", "round": 1, "selected": [[1, 2]]})
        tracker.log_metrics({"target/test_error": 0.5}, step=10)
        run_id = tracker.run_id
    # A crash while writing round 2's state leaves a truncated file: the last good one is used.
    tracker.log_text("state/00002.json", '{"loop": "active_learning", "round": 2, "sel')
    state = tracking.load_run_state(run_id)
    assert state == {"invocation": {"seed": 0}, "loop": "active_learning", "round": 1, "selected": [[1, 2]]}

    resumed = tracking.MlflowTracker(run_id)
    resumed.skip_logged_metrics()
    resumed.log_metrics({"target/test_error": 0.25, "round/train_seconds": 1.0}, step=10)
    resumed.log_metrics({"target/test_error": 0.125}, step=20)
    c = tracking.client()
    assert [(m.step, m.value) for m in c.get_metric_history(run_id, "target/test_error")] == [(10, 0.5), (20, 0.125)]
    assert [m.step for m in c.get_metric_history(run_id, "round/train_seconds")] == [10]


def test_deterministic_option_turns_on_deterministic_algorithms() -> None:
    import torch

    from svpkit.data.digits import load_digits
    from svpkit.learners import make_learner
    from svpkit.plugins import get_plugins
    from svpkit.protocols import LearnerOptions

    assert not torch.are_deterministic_algorithms_enabled()
    try:
        make_learner(get_plugins().models.get("digits_mlp"), load_digits(), LearnerOptions(deterministic=True))
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
