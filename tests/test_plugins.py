"""Plugins installed from real distributions (entry points), listed and used in a run."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
from runhelpers import cli_env, install_plugins, run_cli

from svpkit.hookspecs import hookimpl
from svpkit.plugins import Plugins


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugins(tmp_path_factory.mktemp("site"), "svpkit-example", "svpkit-broken")


def test_builtins_are_listed_like_plugins() -> None:
    info = {p.name: p for p in Plugins(load_entry_points=False).plugins()}
    builtin = info["svpkit.builtin_plugin"]
    assert builtin.ok and builtin.distribution == "svpkit"
    assert set(builtin.hooks) == {"register_models", "register_selectors", "register_datasets"}
    assert "least_confidence" in builtin.registered["selector"]


def test_installed_plugin_is_listed_and_broken_one_reported(plugin_dir: Path) -> None:
    result = run_cli("plugins", "list", "--json", env=cli_env("sqlite:///unused.db", plugin_dir), cwd=plugin_dir)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    example = plugins["example"]
    assert example["distribution"] == "svpkit-example" and example["version"] == "0.3.1"
    assert example["registered"] == {"model": ["example_wide_mlp"], "selector": ["example_lowest_top_probability"]}
    assert example["errors"] == []
    broken = plugins["broken"]
    assert broken["distribution"] == "svpkit-broken"
    assert (
        "ModuleNotFoundError" in broken["errors"][0] and "svpkit_dependency_that_does_not_exist" in broken["errors"][0]
    )
    table = run_cli("plugins", "list", env=cli_env("sqlite:///unused.db", plugin_dir), cwd=plugin_dir)
    assert table.returncode == 0 and "svpkit-broken" in table.stdout
    # One line per plugin, what it registered in short; each load error on a line of its own below.
    (line,) = [ln for ln in table.stdout.splitlines() if "svpkit-example" in ln]
    assert "1 model (example_wide_mlp), 1 selector (example_lowest_top_probability)" in line
    assert f"broken: {broken['errors'][0]}" in table.stdout.splitlines()
    models = run_cli(
        "models", "list", "example_*", "--json", env=cli_env("sqlite:///unused.db", plugin_dir), cwd=plugin_dir
    )
    assert [m["name"] for m in json.loads(models.stdout)] == ["example_wide_mlp"]


@pytest.mark.slow
def test_plugin_model_and_selector_usable_in_a_run(plugin_dir: Path, tracking_uri: str, tmp_path: Path) -> None:
    result = run_cli(
        "active-learning",
        "--quiet",
        "--selector",
        "example_lowest_top_probability",
        "--proxy",
        "example_wide_mlp",
        "--target",
        "digits_mlp",
        "--budgets",
        "0.1,0.2",
        "--target-epochs",
        "3",
        env=cli_env(tracking_uri, plugin_dir),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run = mlflow.search_runs(experiment_names=["svpkit"], output_format="list")[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["svpkit.selector"] == "example_lowest_top_probability"
    assert run.data.tags["svpkit.selector_model"] == "example_wide_mlp"
    picks = np.load(mlflow.MlflowClient().download_artifacts(run.info.run_id, "rounds/2/selected.npy", str(tmp_path)))
    assert picks.size == 288 - 144


def test_hook_that_raises_is_recorded_and_others_still_work() -> None:
    from svpkit.models.digits import SPECS as DIGIT_MODELS

    class Exploding:
        @hookimpl
        def register_models(self, register: Callable[..., None]) -> None:
            register(replace(DIGIT_MODELS[0], name="still_registered"))

        @hookimpl
        def register_selectors(self, register: Callable[..., None]) -> None:
            raise RuntimeError("boom")

    plugins = Plugins(load_entry_points=False, extra=(("exploding", Exploding()),))
    info = {p.name: p for p in plugins.plugins()}
    assert info["exploding"].errors == ["register_selectors: RuntimeError: boom"]
    assert info["exploding"].registered["model"] == ["still_registered"]  # its other hook still counts
    assert "least_confidence" in plugins.selectors and "still_registered" in plugins.models


def test_name_conflict_names_both_distributions() -> None:
    from svpkit.selectors.uniform import SPECS

    class Duplicate:
        @hookimpl
        def register_selectors(self, register: Callable[..., None]) -> None:
            register(SPECS[0])

    plugins = Plugins(load_entry_points=False, extra=(("dup", Duplicate()),))
    errors = plugins.info["dup"].errors
    assert errors == [
        "selector 'random' is registered by both svpkit (plugin svpkit.builtin_plugin) and (in-process) (plugin dup)"
    ]
    assert plugins.selectors.entry("random").distribution == "svpkit"
