"""Presets: TOML → runs, validation, skipping finished runs, failures, and the MLproject entry."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from svpkit import presets
from svpkit.cli import app
from svpkit.cli.analysis import loop_commands
from svpkit.learners.options import parse_model_options
from svpkit.plugins import get_plugins
from svpkit.presets.plan import problems

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = sorted((ROOT / "projects").glob("*.toml"))

TINY = """
[preset]
name = "tiny"
loop = "active_learning"

[defaults]
dataset = "digits"
train_limit = 200
test_limit = 60
initial = 10
budgets = [20, 40]
target = "digits_cnn"
target_epochs = 1
proxy_epochs = 1
device = "cpu"
seed = 0

[[runs]]
selector = "random"

[[runs]]
selector = "least_confidence"
proxy = "digits_mlp"
"""


def write(tmp_path: Path, text: str, name: str = "preset.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", PROJECTS, ids=[p.stem for p in PROJECTS])
def test_every_project_preset_expands_to_registered_names(path: Path) -> None:
    preset = presets.load_preset(path, loop_commands())
    assert preset.runs
    plugins = get_plugins()
    for run in preset.runs:
        o = run.options
        plugins.datasets.get(o.get("dataset", "digits"))
        for key in ("selector",):
            if key in o:
                plugins.selectors.get(o[key])
        for key in ("proxy", "target"):
            if key in o:
                parse_model_options(plugins.models.get(o[key]), o.get(f"{key}_options"), f"{key}_options")
    assert len({r.key for r in preset.runs}) == len(preset.runs)
    assert len({r.name for r in preset.runs}) == len(preset.runs), "run names must tell runs apart"
    assert problems(preset, loop_commands()) == []  # the loop commands' validation pass


def test_cifar10_active_learning_preset_is_the_papers_table_1() -> None:
    preset = presets.load_preset(ROOT / "projects" / "cifar10_active_learning.toml", loop_commands())
    runs = [r.options for r in preset.runs]
    assert {o["budgets"] for o in runs} == {"0.1,0.2,0.3,0.4,0.5"}
    assert {o["initial"] for o in runs} == {0.02}
    assert {o["target"] for o in runs} == {"preact_resnet164"}
    seeds = {o["seed"] for o in runs}
    assert len(seeds) >= 3
    for selector in ("least_confidence", "greedy_k_center"):
        models = {(o["proxy"], o.get("proxy_epochs")) for o in runs if o["selector"] == selector}
        assert ("preact_resnet164", None) in models  # the baseline
        assert {m for m, _ in models} >= {"preact_resnet20", "preact_resnet56"}
        assert any(m == "preact_resnet20" and ep for m, ep in models)  # fewer epochs
    assert sum(o["selector"] == "random" for o in runs) == len(seeds)
    data_path = next(a for r in preset.runs for a in r.args if a.endswith("cifar10") and "/" in a)
    assert Path(data_path).is_absolute()


def test_axes_budgets_aliases_and_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[defaults]
budgets = [0.1, 0.2]
seeds = [0, 1, 2]
train_target = false
[[runs]]
selector = ["least_confidence", "entropy"]
proxy = "digits_mlp"
[[runs]]
selector = "entropy"
proxy = "digits_mlp"
seed = 1
""",
    )
    preset = presets.load_preset(path, loop_commands())
    assert preset.name == "preset" and preset.experiment == "preset"
    combos = [(r.options["selector"], r.options["seed"]) for r in preset.runs]
    # Axes in order of appearance (defaults first): the repeated (entropy, 1) run is dropped.
    assert combos == [(s, n) for n in (0, 1, 2) for s in ("least_confidence", "entropy")]
    first = preset.runs[0]
    assert first.options["budgets"] == "0.1,0.2"
    assert "--no-train-target" in first.args
    assert first.args[first.args.index("--budgets") + 1] == "0.1,0.2"
    assert first.key == presets.run_key("active_learning", dict(first.options))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[runs]]\nselectr = 'random'\n", "has no option 'selectr' (did you mean 'selector'?)"),
        ("[[runs]]\nloop = 'boosting'\n", "unknown loop 'boosting'"),
        ("[defaults]\nseed = 1\n", "no [[runs]] tables"),
        ("[[runs]]\nexperiment = 'x'\n", "'experiment' is set by the preset itself"),
        ("[[runs]\n", "preset"),
        ("[runz]\n", "unknown section(s) runz"),
    ],
)
def test_bad_presets_are_one_clear_error(tmp_path: Path, tracking_uri: str, text: str, message: str) -> None:
    path = write(tmp_path, text)
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["run", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "not found" in missing.output


def test_every_problem_of_every_planned_run_is_listed_before_anything_runs(tmp_path: Path, tracking_uri: str) -> None:
    """The loop commands' validation pass over every planned run: one line per problem, no run, no experiment."""
    bad = TINY.replace("seed = 0", "seed = [0, -1]").replace(
        'selector = "least_confidence"', 'selector = "forgetting_events"\nproxy_epochs = -2'
    )
    for args in (["--dry-run"], []):
        result = CliRunner().invoke(app, ["run", str(write(tmp_path, bad)), *args])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("error: 6 problem(s) in the planned runs") and "nothing was run" in lines[-1]
        listed = lines[:-1]
        assert len(listed) == 6 and sum("--seed must be" in line for line in listed) == 2
        assert sum("--proxy-epochs must be at least 1" in line for line in listed) == 2
        assert sum("needs the training dynamics" in line for line in listed) == 2
        assert listed[0].startswith("run 2 (al-random-s-1): --seed must be")
        assert mlflow.get_experiment_by_name("tiny") is None


def test_relative_data_paths_resolve_against_cwd_then_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / "projects").mkdir(parents=True)
    (repo / "data" / "set").mkdir(parents=True)
    preset = write(repo / "projects", "[[runs]]\nselector = 'random'\ndata_path = 'data/set'\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert presets.resolve_data_path("data/set", preset) == str((repo / "data" / "set").resolve())
    (elsewhere / "data" / "set").mkdir(parents=True)
    assert presets.resolve_data_path("data/set", preset) == str((elsewhere / "data" / "set").resolve())
    assert presets.resolve_data_path("/abs/path", preset) == "/abs/path"
    run = presets.load_preset(preset, loop_commands()).runs[0]
    assert run.args[run.args.index("--data-path") + 1] == str((elsewhere / "data" / "set").resolve())


def test_run_skips_finished_runs_and_ends_with_compare(tmp_path: Path, tracking_uri: str) -> None:
    path = write(tmp_path, TINY)
    runner = CliRunner()
    dry = runner.invoke(app, ["run", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "0 already finished, 2 to run" in dry.output
    assert mlflow.get_experiment_by_name("tiny") is None  # a dry run creates nothing

    first = runner.invoke(app, ["run", str(path)])
    assert first.exit_code == 0, first.output
    exp = mlflow.get_experiment_by_name("tiny")
    client = mlflow.MlflowClient()
    al = client.search_runs([exp.experiment_id], "tags.`svpkit.loop` = 'active_learning'")
    assert sorted(r.data.tags["svpkit.role"] for r in al) == ["proxy", "random"]
    assert all(r.info.status == "FINISHED" and r.data.tags[presets.PRESET_TAG] == "tiny" for r in al)
    keys = {r.data.tags[presets.KEY_TAG] for r in al}
    assert keys == {r.key for r in presets.load_preset(path, loop_commands()).runs}
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    compares = client.search_runs([exp.experiment_id], "tags.`svpkit.loop` = 'compare'")
    assert len(compares) == 1 and compares[0].data.tags["svpkit.compared_runs"] == "2"
    assert "no baseline for proxy run" in first.output  # listed, not dropped

    again = runner.invoke(app, ["run", str(path), "--no-compare"])
    assert again.exit_code == 0, again.output
    assert "2 already finished, 0 to run" in again.output
    assert len(client.search_runs([exp.experiment_id], "tags.`svpkit.loop` = 'active_learning'")) == 2


def test_failed_runs_are_reported_and_retried(tmp_path: Path, tracking_uri: str) -> None:
    path = write(
        tmp_path, TINY.replace('selector = "least_confidence"', 'selector = "least_confidence"\nbudgets = [20, 500]')
    )
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(path), "--no-compare"])
    assert result.exit_code == 2, result.output
    assert "error: 1 of 2 runs failed" in result.output
    assert "larger than the 200 training examples" in result.output
    client = mlflow.MlflowClient()
    exp = mlflow.get_experiment_by_name("tiny")
    statuses = sorted(r.info.status for r in client.search_runs([exp.experiment_id]))
    assert statuses == ["FAILED", "FINISHED"]
    retry = runner.invoke(app, ["run", str(path), "--dry-run"])
    assert "1 already finished, 1 to run" in retry.output


@pytest.mark.slow
def test_subprocess_runs(tmp_path: Path, tracking_uri: str) -> None:
    path = write(tmp_path, TINY.split("[[runs]]")[0] + "[[runs]]\nselector = 'random'\n")
    result = CliRunner().invoke(app, ["run", str(path), "--subprocess", "--experiment", "sub"])
    assert result.exit_code == 0, result.output
    exp = mlflow.get_experiment_by_name("sub")
    runs = mlflow.MlflowClient().search_runs([exp.experiment_id], "tags.`svpkit.loop` = 'active_learning'")
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert runs[0].data.metrics["target/test_error"] < 1.0


@pytest.mark.slow
def test_experiment_mlproject_entry(tmp_path: Path, tracking_uri: str) -> None:
    path = write(tmp_path, TINY)
    submitted = mlflow.projects.run(
        str(ROOT),
        entry_point="experiment",
        parameters={"preset": str(path), "experiment": "tiny-entry"},
        env_manager="local",
        synchronous=True,
    )
    client = mlflow.MlflowClient()
    outer = client.get_run(submitted.run_id)
    assert outer.info.status == "FINISHED"
    assert outer.data.tags["svpkit.loop"] == "preset"
    exp = mlflow.get_experiment_by_name("tiny-entry")
    loops = sorted(r.data.tags["svpkit.loop"] for r in client.search_runs([exp.experiment_id]))
    assert loops == ["active_learning", "active_learning", "compare"]
    assert outer.data.tags["svpkit.compare_run"] in {r.info.run_id for r in client.search_runs([exp.experiment_id])}


def test_an_interrupted_run_stops_the_preset(
    tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from svpkit.loops import active_learning

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as Ctrl-C during the first run

    monkeypatch.setattr(active_learning, "run_active_learning", interrupted)
    result = CliRunner().invoke(app, ["run", str(write(tmp_path, TINY))])
    assert result.exit_code == 130, result.output
    assert "error: interrupted during run al-random-s0" in result.output
    exp = mlflow.get_experiment_by_name("tiny")
    runs = mlflow.MlflowClient().search_runs([exp.experiment_id])
    assert [r.info.status for r in runs] == ["KILLED"]  # the second run never started
