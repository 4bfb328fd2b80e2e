"""Plugins that misbehave — fail to import, raise in hooks, claim a taken name, return bad picks —
are reported, and the CLI keeps working for everything else.

The test distributions under tests/plugins/ are pip-installed (real entry points) into a private
folder that only this module's subprocesses see on PYTHONPATH: nothing touches site-packages, so
parallel test processes and other tests are unaffected.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runhelpers import cli_env, client, install_plugins, run_cli

MISBEHAVING = ("svpkit-broken", "svpkit-raising", "svpkit-conflict-a", "svpkit-conflict-b")


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugins(tmp_path_factory.mktemp("misbehaving") / "site", *MISBEHAVING)


def _json(result: object) -> object:
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    return json.loads(result.stdout)  # type: ignore[attr-defined]


def test_every_misbehaviour_is_listed_with_its_error(plugin_dir: Path, tracking_uri: str, tmp_path: Path) -> None:
    env = cli_env(tracking_uri, pythonpath=plugin_dir)
    plugins = {p["name"]: p for p in _json(run_cli("plugins", "list", "--json", env=env, cwd=tmp_path))}
    assert plugins["svpkit.builtin_plugin"]["errors"] == []

    broken = plugins["broken"]
    assert broken["distribution"] == "svpkit-broken"
    assert broken["errors"] == ["import: ModuleNotFoundError: No module named 'svpkit_dependency_that_does_not_exist'"]

    raising = plugins["raising"]
    assert raising["distribution"] == "svpkit-raising"
    assert "register_datasets: RuntimeError: dataset registry exploded" in raising["errors"]
    assert "register_commands: RuntimeError: command registration exploded" in raising["errors"]
    assert raising["registered"]["selector"] == ["raising_duplicate_picks"]  # its other hook still counts

    a, b = plugins["conflict_a"], plugins["conflict_b"]
    loser = a if a["errors"] else b
    winner = b if loser is a else a
    assert winner["errors"] == [] and "conflict_mlp" in winner["registered"]["model"]
    (conflict,) = loser["errors"]
    assert conflict.startswith("model 'conflict_mlp' is registered by both ")
    assert "svpkit-conflict-a" in conflict and "svpkit-conflict-b" in conflict
    # The loser's other, unclaimed names still work.
    assert loser["registered"]["model"] == [f"{loser['name']}_mlp"]

    table = run_cli("plugins", "list", env=env, cwd=tmp_path)
    assert table.returncode == 0 and "dataset registry exploded" in table.stdout and table.stderr == ""

    models = [m["name"] for m in _json(run_cli("models", "list", "--json", env=env, cwd=tmp_path))]
    assert models.count("conflict_mlp") == 1
    assert {"digits_mlp", "digits_cnn", "conflict_a_mlp", "conflict_b_mlp"} <= set(models)
    selectors = [s["name"] for s in _json(run_cli("selectors", "list", "--json", env=env, cwd=tmp_path))]
    assert {"least_confidence", "raising_duplicate_picks"} <= set(selectors)


@pytest.mark.slow
def test_runs_still_work_and_a_bad_selector_fails_its_run_cleanly(
    plugin_dir: Path, tracking_uri: str, tmp_path: Path
) -> None:
    env = cli_env(tracking_uri, pythonpath=plugin_dir)
    quick = ["active-learning", "--quiet", "--budgets", "0.1,0.2", "--proxy-epochs", "2", "--target-epochs", "1"]
    ok = run_cli(*quick, "--proxy", "conflict_a_mlp", "--run-name", "ok", env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr

    bad = run_cli(*quick, "--selector", "raising_duplicate_picks", "--run-name", "bad", env=env, cwd=tmp_path)
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert lines[0] == (
        "error: RuntimeError: selector 'raising_duplicate_picks' returned duplicate or already-labeled indices "
        "(run with --debug for the traceback)"
    )
    c = client()
    runs = {r.info.run_name: r for r in c.search_runs([c.get_experiment_by_name("svpkit").experiment_id])}
    assert runs["ok"].info.status == "FINISHED"
    assert runs["bad"].info.status == "FAILED"
    assert "returned duplicate or already-labeled indices" in runs["bad"].data.tags["svpkit.error"]
