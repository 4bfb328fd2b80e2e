"""Bad input, swept: every row ends with one ``error: …`` line on stderr, a non-zero exit code, no
traceback, and no run left behind (the store's runs are listed before and after each row). Rows
run through typer's CliRunner (fast, in-process); a subset (every row of issue 17's table among
them) also runs as real processes, and some through the MLproject entries (``mlflow.projects.run``)."""

from __future__ import annotations

import gzip
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from runhelpers import cli_env, run_cli
from typer.testing import CliRunner

from svpkit.cli import app

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    args: list[str]
    message: str
    code: int = 2
    setup: str | None = None
    """Name of a fixture-built input that ``{data}`` / ``{run}`` in ``args`` refer to."""
    env: dict[str, str] = field(default_factory=dict)


AL = ["active-learning", "--quiet"]
CS = ["core-set", "--quiet"]
# Models that read the data set's inputs (the validation pass checks that first).
IMAGES = ["--dataset", "cifar10", "--proxy", "preact_resnet20", "--target", "preact_resnet20"]
TEXT = ["--dataset", "text_csv", "--proxy", "vdcnn9", "--target", "vdcnn9"]

ROWS: dict[str, Row] = {
    # names, with did-you-mean
    "unknown-proxy": Row([*AL, "--proxy", "digits_mpl"], "unknown model 'digits_mpl'; did you mean 'digits_mlp'?"),
    "unknown-target": Row([*AL, "--target", "digits-cnn"], "unknown model 'digits-cnn'; did you mean 'digits_cnn'?"),
    "unknown-selector": Row(
        [*AL, "--selector", "leastconf"], "unknown selector 'leastconf'; did you mean 'least_confidence'?"
    ),
    "unknown-dataset": Row([*AL, "--dataset", "digit"], "unknown dataset 'digit'; did you mean 'digits'?"),
    "unknown-selector-core-set": Row([*CS, "--selector", "forgeting_events"], "did you mean 'forgetting_events'?"),
    # usage errors that the command line parser finds (the same one line, not typer's box)
    "unknown-option": Row([*AL, "--bogus"], "No such option: --bogus"),
    "unknown-command": Row(["active-learnin"], "No such command 'active-learnin'"),
    "option-of-the-wrong-type": Row([*AL, "--seed", "abc"], "Invalid value for '--seed'"),
    "unknown-option-of-a-subcommand": Row(["models", "list", "--bogus"], "No such option: --bogus"),
    # budgets
    "budget-not-a-number": Row([*AL, "--budgets", "0.1,abc"], "budget 'abc' is not a number"),
    "budgets-not-increasing": Row([*AL, "--budgets", "0.2,0.1"], "budgets must increase: 288 then 144"),
    "budget-above-one": Row([*AL, "--budgets", "0.1,1.5"], "budget 1.5 is outside (0, 1]"),
    "budget-zero": Row([*AL, "--budgets", "0,0.1"], "budget 0 must be at least 1"),
    "budgets-empty": Row([*AL, "--budgets", ","], "no budget levels given"),
    "initial-not-one-size": Row([*AL, "--initial", "0.01,0.02"], "initial must be one size"),
    "initial-larger-than-first-budget": Row(
        [*AL, "--initial", "0.3", "--budgets", "0.1,0.2"],
        "initial set (431) must be smaller than the first budget (144)",
    ),
    "budget-larger-than-pool": Row([*AL, "--budgets", "100,5000"], "budget 5000 is larger than the 1438 training"),
    # core-set sizes
    "keep-above-one": Row([*CS, "--keep", "1.5"], "keep 1.5 is outside (0, 1]"),
    "keep-zero": Row([*CS, "--keep", "0"], "keep 0 is outside (0, 1]"),
    "keep-negative": Row([*CS, "--keep", "-0.5"], "keep -0.5 is outside (0, 1]"),
    "keep-not-a-number": Row([*CS, "--keep", "half"], "keep 'half' is not a number"),
    "subset-larger-than-pool": Row([*CS, "--subset-size", "5000"], "subset size 5000 is larger than the 1438"),
    "budgets-empty-item": Row([*AL, "--budgets", "0.1,,0.2"], "budget list '0.1,,0.2' has an empty item"),
    "train-size-above-one": Row(["train", "--quiet", "--size", "1.5"], "size 1.5 is outside (0, 1]"),
    # option ranges: 0 is "not given" (the MLproject's default), negative is an error
    "proxy-epochs-negative": Row(
        [*AL, "--proxy-epochs", "-3"], "--proxy-epochs must be at least 1 (or 0: the model's default), got -3"
    ),
    "train-limit-negative": Row([*CS, "--train-limit", "-5"], "--train-limit must be at least 1 (or 0: all examples)"),
    "batch-size-negative": Row(["train", "--quiet", "--batch-size", "-1"], "--batch-size must be at least 1"),
    "seed-negative": Row([*AL, "--seed", "-1"], "--seed must be a whole number from 0 to 4294967295"),
    "seed-too-large": Row([*CS, "--seed", str(2**32)], "--seed must be a whole number from 0 to 4294967295"),
    "device-unknown": Row([*AL, "--device", "gpu"], "--device 'gpu' is not a device"),
    # what the models read, and what the loop gives the selector
    "target-reads-other-inputs": Row(
        [*AL, "--target", "preact_resnet20"],
        "--target: model 'preact_resnet20' takes image inputs but data set 'digits' is vector",
    ),
    "proxy-reads-other-inputs": Row([*CS, "--proxy", "vdcnn9"], "--proxy: model 'vdcnn9' takes text inputs"),
    "training-dynamics-selector-in-active-learning": Row(
        [*AL, "--selector", "forgetting_events"], "selector 'forgetting_events' needs the training dynamics"
    ),
    # flags
    "deterministic-not-a-bool": Row([*AL, "--deterministic", "maybe"], "deterministic must be true or false"),
    # data
    "data-path-missing": Row([*AL, "--dataset", "cifar10"], "needs --data-path"),
    "data-directory-missing": Row([*AL, *IMAGES, "--data-path", "{data}/nowhere"], "does not exist", setup="empty_dir"),
    "npz-truncated": Row(
        [*AL, *IMAGES, "--data-path", "{data}"],
        "train.npz is not a readable npz file",
        setup="npz_truncated",
    ),
    "npz-corrupt": Row(
        [*AL, *IMAGES, "--data-path", "{data}"],
        "train.npz is not a readable npz file",
        setup="npz_corrupt",
    ),
    "npz-wrong-arrays": Row(
        [*CS, *IMAGES, "--data-path", "{data}"], "must hold arrays 'x' and 'y'", setup="npz_wrong_arrays"
    ),
    "npz-labels-out-of-range": Row(
        [*AL, *IMAGES, "--data-path", "{data}"], "labels must lie in 0..9", setup="npz_bad_labels"
    ),
    "csv-wrong-columns": Row(
        [*AL, *TEXT, "--data-path", "{data}"],
        "header must name columns 'label' and 'text'",
        setup="csv_wrong_columns",
    ),
    "csv-label-not-an-integer": Row(
        [*AL, *TEXT, "--data-path", "{data}"],
        "label 'positive' is not an integer",
        setup="csv_bad_label",
    ),
    "csv-negative-label": Row([*CS, *TEXT, "--data-path", "{data}"], "label -1 is invalid", setup="csv_negative_label"),
    "csv-ragged-row": Row(
        [*AL, *TEXT, "--data-path", "{data}"], "line 3: expected 2 fields, got 3", setup="csv_ragged"
    ),
    "csv-truncated-gzip": Row([*AL, *TEXT, "--data-path", "{data}"], "cannot read", setup="csv_truncated_gz"),
    # resume
    "resume-unknown-run": Row([*AL, "--resume", "0123456789abcdef0123456789abcdef"], "not found"),
    "resume-core-set-run-as-active-learning": Row(
        [*AL, "--resume", "{run}"],
        "is a core_set run, so `svpkit active-learning --resume` cannot continue it; resume it with `svpkit core-set",
        setup="core_set_run",
    ),
    "resume-active-learning-run-as-core-set": Row(
        [*CS, "--resume", "{run}"], "is a active_learning run", setup="active_learning_run"
    ),
    "resume-foreign-run": Row([*AL, "--resume", "{run}"], "is not an svpkit run", setup="foreign_run"),
    "resume-finished-run": Row([*AL, "--resume", "{run}"], "has already finished", setup="finished_run"),
    "resume-run-without-state": Row([*AL, "--resume", "{run}"], "has no saved state", setup="active_learning_run"),
}
if not torch.cuda.is_available():
    ROWS["cuda-without-gpu"] = Row([*AL, "--device", "cuda"], "CUDA is not available")

# Tracking stores that cannot be used (real processes: the URI comes from the environment). A
# server that does not answer is found by one short probe, without any MLFLOW_HTTP_* setting.
UNREACHABLE = "http://127.0.0.1:1"
STORE_ROWS: dict[str, Row] = {
    "unreachable-tracking-server": Row([*AL], f"cannot reach tracking server {UNREACHABLE} (connection refused)"),
    "unreachable-server-compare": Row(["compare"], f"cannot reach tracking server {UNREACHABLE}"),
    "unreachable-server-correlate": Row(
        ["correlate", "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"],
        f"cannot reach tracking server {UNREACHABLE}",
    ),
    "unreachable-server-preset": Row(
        ["run", str(ROOT / "projects" / "digits_quick.toml"), "--dry-run"],
        f"cannot reach tracking server {UNREACHABLE}",
    ),
    "sqlite-store-in-missing-directory": Row(
        [*CS],
        "cannot open tracking store",
        env={"MLFLOW_TRACKING_URI": "sqlite:////nonexistent-svpkit-dir/x/mlflow.db"},
    ),
}


# -- inputs ------------------------------------------------------------------------------------
def _npz_dir(root: Path, train_bytes: bytes | None = None, labels: np.ndarray | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    x = np.zeros((20, 32, 32, 3), dtype=np.uint8)
    y = np.arange(20) % 10 if labels is None else labels
    np.savez(root / "train.npz", x=x, y=y)
    np.savez(root / "test.npz", x=x[:10], y=y[:10])
    if train_bytes is not None:
        (root / "train.npz").write_bytes(train_bytes)
    return root


def _csv_dir(root: Path, train: str, gz: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if gz:
        data = gzip.compress(train.encode())
        (root / "train.csv.gz").write_bytes(data[: len(data) // 2])
    else:
        (root / "train.csv").write_text(train)
    (root / "test.csv").write_text("label,text\n0,fine\n1,also fine\n")
    return root


def build_input(name: str, tmp: Path) -> str:
    """A bad data folder or a run id, created for one row."""
    if name == "empty_dir":
        tmp.mkdir(parents=True, exist_ok=True)
        return str(tmp)
    if name == "npz_truncated":
        root = _npz_dir(tmp)
        whole = (root / "train.npz").read_bytes()
        return str(_npz_dir(tmp, train_bytes=whole[: len(whole) // 3]))
    if name == "npz_corrupt":
        return str(_npz_dir(tmp, train_bytes=b"this is not a zip archive" * 40))
    if name == "npz_wrong_arrays":
        root = _npz_dir(tmp)
        with zipfile.ZipFile(root / "train.npz", "w"):
            pass
        np.savez(root / "train.npz", images=np.zeros((2, 32, 32, 3), np.uint8), labels=np.zeros(2))
        return str(root)
    if name == "npz_bad_labels":
        return str(_npz_dir(tmp, labels=np.arange(20) % 12))
    if name == "csv_wrong_columns":
        return str(_csv_dir(tmp, "label,sentence\n0,good\n1,bad\n"))
    if name == "csv_bad_label":
        return str(_csv_dir(tmp, "label,text\n0,good\npositive,bad\n"))
    if name == "csv_negative_label":
        return str(_csv_dir(tmp, "label,text\n0,good\n-1,bad\n"))
    if name == "csv_ragged":
        return str(_csv_dir(tmp, "label,text\n0,good\n1,bad,extra\n"))
    if name == "csv_truncated_gz":
        return str(
            _csv_dir(tmp, "label,text\n" + "".join(f"{i % 2},example number {i}\n" for i in range(500)), gz=True)
        )
    c = mlflow.MlflowClient()
    exp = c.get_experiment_by_name("svpkit") or c.get_experiment(c.create_experiment("svpkit"))
    tags = {
        "core_set_run": {"svpkit.loop": "core_set"},
        "active_learning_run": {"svpkit.loop": "active_learning"},
        "finished_run": {"svpkit.loop": "active_learning"},
        "foreign_run": {},
    }[name]
    run = c.create_run(exp.experiment_id, tags=tags)
    c.set_terminated(run.info.run_id, "FINISHED" if name == "finished_run" else "KILLED")
    return run.info.run_id


def _fill(args: list[str], value: str | None) -> list[str]:
    return [a.replace("{data}", value or "").replace("{run}", value or "") for a in args]


def _assert_one_clean_line(stderr: str, message: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert message in lines[0], stderr
    assert "Traceback" not in stderr


def _runs() -> dict[str, str]:
    """Every run of the store: id → status."""
    return {r.info.run_id: r.info.status for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One sqlite store for the whole table (creating one costs seconds): rows add runs that are
    never RUNNING, so "no run left RUNNING" stays checkable after every row."""
    root = tmp_path_factory.mktemp("bad-input-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(root)
        for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "SVPKIT_DEBUG"):
            mp.delenv(var, raising=False)
        mlflow.set_tracking_uri(uri)
        from svpkit import tracking

        tracking.client()  # create the tables once
        yield uri
        mlflow.set_tracking_uri(None)


# -- the table ---------------------------------------------------------------------------------
@pytest.mark.parametrize("row_id", list(ROWS))
def test_bad_input_row(row_id: str, store: str, tmp_path: Path) -> None:
    row = ROWS[row_id]
    value = build_input(row.setup, tmp_path / "input") if row.setup else None
    before = _runs()
    result = CliRunner().invoke(app, _fill(row.args, value))
    assert result.exit_code == row.code, (result.stdout, result.stderr, result.exception)
    _assert_one_clean_line(result.stderr, row.message)
    assert _runs() == before  # no run left behind, and none changed


@pytest.mark.parametrize("row_id", list(STORE_ROWS))
def test_bad_tracking_store_row(row_id: str, tmp_path: Path) -> None:
    row = STORE_ROWS[row_id]
    env = cli_env(row.env.get("MLFLOW_TRACKING_URI", UNREACHABLE), **row.env)
    for var in [v for v in env if v.startswith("MLFLOW_HTTP_")]:  # as a user runs it: MLflow's own retry settings
        del env[var]
    start = time.monotonic()
    result = run_cli(*row.args, env=env, cwd=tmp_path, timeout=120)
    assert time.monotonic() - start < 60, "a bound against MLflow's minutes of retries, not a speed goal"
    assert result.returncode == row.code, result.stderr
    _assert_one_clean_line(result.stderr, row.message)


# The rows of issue 17's table (and two more) as real processes: exit code, stderr, no run left behind.
REAL_PROCESS_ROWS = [
    "npz-truncated",
    "resume-core-set-run-as-active-learning",
    "proxy-epochs-negative",
    "seed-negative",
    "budgets-empty-item",
    "target-reads-other-inputs",
    "training-dynamics-selector-in-active-learning",
    "unknown-option",
    "unknown-command",
]


@pytest.mark.parametrize("row_id", REAL_PROCESS_ROWS)
def test_bad_input_in_a_real_process(row_id: str, store: str, tmp_path: Path) -> None:
    """The same rows outside CliRunner: the real exit code and exactly what reaches stderr."""
    row = ROWS[row_id]
    value = build_input(row.setup, tmp_path / "input") if row.setup else None
    before = _runs()
    result = run_cli(*_fill(row.args, value), env=cli_env(store), cwd=tmp_path, timeout=120)
    assert result.returncode == row.code, result.stderr
    _assert_one_clean_line(result.stderr, row.message)
    assert result.stdout == ""
    assert _runs() == before


def test_debug_shows_the_traceback(tracking_uri: str, tmp_path: Path) -> None:
    result = run_cli("--debug", "active-learning", "--budgets", "0.2,0.1", env=cli_env(tracking_uri), cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConfigError: budgets must increase" in result.stderr


# -- the MLproject entries ---------------------------------------------------------------------
MLPROJECT_ROWS = {
    "active_learning-unknown-selector": (
        "active_learning",
        {"selector": "leastconf"},
        "unknown selector 'leastconf'; did you mean 'least_confidence'?",
    ),
    "core_set-keep-outside": ("core_set", {"keep": "1.5"}, "keep 1.5 is outside (0, 1]"),
    "active_learning-resume-unknown": ("active_learning", {"resume": "0123456789abcdef0123456789abcdef"}, "not found"),
}


@pytest.mark.slow
@pytest.mark.parametrize("row_id", list(MLPROJECT_ROWS))
def test_bad_input_through_mlproject(
    row_id: str, tracking_uri: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry, params, message = MLPROJECT_ROWS[row_id]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with pytest.raises(mlflow.exceptions.ExecutionException):
        mlflow.projects.run(str(ROOT), entry_point=entry, parameters=params, env_manager="local", synchronous=True)
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 1  # the run `mlflow run` opened, and nothing else
    run = runs[0]
    assert run.info.status == "FAILED"
    assert message.split(";")[0] in run.data.tags["svpkit.error"]
