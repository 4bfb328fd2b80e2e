"""Real labeling rounds (docs/labeling.md): ``svpkit query`` → ``svpkit label`` → ``svpkit export``.

The done-test plays annotator on digits with every training label hidden (an ``npz`` data set
with ``y = -1``), answering from the true labels: five rounds as real processes reach the labeled
set of ``svpkit active-learning`` with the same seed and sizes. Then a text CSV with partly empty
labels and an image folder with ``unlabeled/`` run a round each, a ``label`` import is SIGKILLed
midway (the project stays as before or holds the whole import, never part of it), answers merge
and re-import idempotently, and bad input ends in one ``error:`` line with nothing imported.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from runhelpers import Cli, cli_env, client, load_array, metric_history, run_cli
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.data.digits import load_digits
from svpkit.labeling.project import open_project

QUICK = ["--quiet", "--proxy-epochs", "3"]
RUN_LINE = re.compile(r"^run (\w+):", flags=re.M)


# -- inputs ------------------------------------------------------------------------------------
def hidden_digits(root: Path, n: int) -> np.ndarray:
    """The first ``n`` digits with their training labels hidden (npz, ``y = -1``); the true labels."""
    digits = load_digits()
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "train.npz", x=digits.train.x.numpy()[:n], y=np.full(n, -1))
    np.savez(root / "test.npz", x=digits.test.x.numpy(), y=digits.test.y.numpy())
    return digits.train.y.numpy()[:n]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_answers(path: Path, rows: list[tuple[str, object]]) -> Path:
    path.write_text("id,label\n" + "".join(f"{i},{label}\n" for i, label in rows), encoding="utf-8")
    return path


def query(env: dict[str, str], cwd: Path, *args: str) -> tuple[str, str]:
    """Run ``svpkit query`` as a process; (project run id, stdout)."""
    result = run_cli("query", *args, env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    match = RUN_LINE.search(result.stdout)
    assert match, result.stdout
    return match.group(1), result.stdout


def label(env: dict[str, str], cwd: Path, project: str, file: Path) -> str:
    result = run_cli("label", "--project", project, str(file), env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def artifact_text(run_id: str, path: str, dest: Path) -> str:
    dest.mkdir(parents=True, exist_ok=True)
    return Path(client().download_artifacts(run_id, path, str(dest))).read_text()


# -- the done-test -----------------------------------------------------------------------------
@pytest.mark.slow
def test_five_rounds_of_answers_reach_the_active_learning_labeled_set(tracking_uri: str, tmp_path: Path) -> None:
    n, k, seed = 120, 12, 4
    truth = hidden_digits(tmp_path / "hidden", n)
    env = cli_env(tracking_uri)
    sizes = ["--initial", str(k), "--budgets", ",".join(str(k * r) for r in range(2, 6))]
    simulated = run_cli(
        "active-learning", *QUICK, "--train-limit", str(n), "--seed", str(seed), *sizes, "--no-train-target",
        "--run-name", "simulated", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert simulated.returncode == 0, simulated.stderr
    al_run = RUN_LINE.search(simulated.stdout).group(1)  # type: ignore[union-attr]

    # The digits are standardised already (as the simulation reads them): no second standardisation.
    data = ["--dataset", "npz", "--data-path", str(tmp_path / "hidden"), "--dataset-options", "standardize=false"]
    data += ["--seed", str(seed), "--k", str(k)]
    project: str | None = None
    for r in range(5):
        batch_file = tmp_path / f"batch_{r}.csv"
        more = ["--project", project] if project else []
        project, stdout = query(env, tmp_path, *QUICK, *data, *more, "--out", str(batch_file))
        if r == 0:
            assert "maxherding (a cold-start selector" in stdout  # the loop's settled --initial-selector auto
        rows = read_rows(batch_file)
        assert [row["rank"] for row in rows] == [str(i) for i in range(1, k + 1)]
        label(env, tmp_path, project, write_answers(tmp_path / f"answers_{r}.csv", [(row["id"], truth[int(row["id"])]) for row in rows]))  # fmt: skip
        # The local file and the project's artifact are the same batch.
        assert artifact_text(project, f"to_label/round_{r}.csv", tmp_path / f"a{r}") == batch_file.read_text()
    assert project is not None

    arrays = tmp_path / "arrays"
    expected = [load_array(al_run, "rounds/0/labeled.npy", arrays)]
    expected += [load_array(al_run, f"rounds/{r}/selected.npy", arrays) for r in range(1, 5)]
    asked = [load_array(project, f"rounds/{r}/selected.npy", arrays) for r in range(5)]
    for r in range(5):
        assert np.array_equal(asked[r], expected[r]), f"round {r}"
        answers = read_rows(Path(client().download_artifacts(project, f"labels/round_{r}.csv", str(tmp_path / "l"))))
        assert [a["id"] for a in answers] == [str(i) for i in expected[r]]
        assert [a["label"] for a in answers] == [str(truth[i]) for i in expected[r]]
    final = np.sort(load_array(al_run, "rounds/4/labeled.npy", arrays))

    result = run_cli("export", "--project", project, "--out", str(tmp_path / "labeled.csv"), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    exported = read_rows(tmp_path / "labeled.csv")
    assert sorted(int(row["id"]) for row in exported) == final.tolist()
    assert all(row["label"] == str(truth[int(row["id"])]) for row in exported)
    assert sorted({row["round"] for row in exported}) == ["0", "1", "2", "3", "4"]

    run = client().get_run(project)
    assert run.info.status == "FINISHED" and run.data.tags["svpkit.loop"] == "labeling"
    history = metric_history(project)
    assert [step for step, _ in history["labeled/count"]] == [0, k, 2 * k, 3 * k, 4 * k]
    assert [step for step, _ in history["selector_model/test_error"]] == [k, 2 * k, 3 * k, 4 * k]
    assert {"round/train_seconds", "round/selection_seconds", "selection/cumulative_seconds"} <= set(history)
    # the stopping criteria after each round of labels (issue 24): uncertainty from round 1, kappa from round 2
    assert [step for step, _ in history["stopping/uncertainty"]] == [k, 2 * k, 3 * k, 4 * k]
    assert [step for step, _ in history["stopping/kappa"]] == [2 * k, 3 * k, 4 * k]


# -- other data sets ---------------------------------------------------------------------------
def test_text_csv_with_partly_empty_labels_runs_a_round(tracking_uri: str, tmp_path: Path) -> None:
    words = (["bad", "awful", "dull", "boring"], ["good", "great", "fine", "lovely"])
    rng = np.random.default_rng(0)
    lines = ["id,label,text"]
    for i in range(30):
        text = " ".join(rng.choice(words[i % 2], size=5)) + " film"
        lines.append(f"review-{i},{i % 2 if i < 8 else ''},{text}")
    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    (folder / "classes.txt").write_text("negative\npositive\n")  # no test.csv: no test error
    env = cli_env(tracking_uri)
    text_model = ["--proxy", "vdcnn9", "--proxy-options", "max_length=32", "--proxy-epochs", "1", "--batch-size", "8"]
    args = ["--quiet", "--dataset", "text_csv", "--data-path", str(folder), *text_model, "--k", "4"]
    project, stdout = query(env, tmp_path, *args, "--out", str(tmp_path / "batch.csv"))
    assert "vdcnn9 trained on the 8 labeled examples" in stdout and "no test split" in stdout
    rows = read_rows(tmp_path / "batch.csv")
    assert len(rows) == 4 and all(int(row["id"].split("-")[1]) >= 8 for row in rows)  # only unlabeled rows
    assert all(row["example"].endswith(" film") and row["score"] for row in rows)
    # Class names or indices; a partial answer leaves the rest of the batch unlabeled.
    label(env, tmp_path, project, write_answers(tmp_path / "a.csv", [(rows[0]["id"], "positive"), (rows[1]["id"], 0)]))
    assert [(i, lab) for i, lab, _ in open_project(project).labeled()] == [(rows[0]["id"], "positive"), (rows[1]["id"], "negative")]  # fmt: skip


@pytest.mark.slow  # 224-pixel images through a ResNet on the CPU
def test_image_folder_with_an_unlabeled_folder_runs_a_round(tracking_uri: str, tmp_path: Path) -> None:
    import torch
    from torchvision.io import write_png

    root = tmp_path / "images"
    for name, value in [("train/cat/a.png", 30), ("train/cat/b.png", 40), ("train/dog/c.png", 200), ("train/dog/d.png", 220)] + [(f"unlabeled/batch1/u{j}.png", 25 * j) for j in range(6)]:  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_png(torch.full((3, 20, 20), value, dtype=torch.uint8), str(root / name))
    env = cli_env(tracking_uri)
    model = ["--proxy", "preact_resnet20", "--proxy-epochs", "1", "--batch-size", "4", "--selector", "greedy_k_center"]
    project, stdout = query(
        env, tmp_path, "--quiet", "--dataset", "imagefolder", "--data-path", str(root), *model, "--k", "3"
    )
    assert "no test split" in stdout
    batch = read_rows(Path(client().download_artifacts(project, "to_label/round_0.csv", str(tmp_path / "dl"))))
    assert len(batch) == 3 and all(row["id"].startswith("unlabeled/batch1/u") for row in batch)
    assert all(row["example"] == row["id"] for row in batch)  # the path relative to the data folder
    label(env, tmp_path, project, write_answers(tmp_path / "a.csv", [(row["id"], "dog") for row in batch]))
    assert len(open_project(project).labeled()) == 3


# -- crash safety ------------------------------------------------------------------------------
KILL_BEFORE_STATE = """
import os, signal, sys
from svpkit.tracking import writer
log_json = writer.MlflowTracker.log_json
def dying(self, path, obj):
    if path.startswith("state/"):
        os.kill(os.getpid(), signal.SIGKILL)  # the answers are uploaded, the state is not
    return log_json(self, path, obj)
writer.MlflowTracker.log_json = dying
sys.argv = ["svpkit", *sys.argv[1:]]
from svpkit.cli import main
main()
"""


def _project_view(run_id: str) -> tuple[int, list[tuple[str, str, int]], str]:
    project = open_project(run_id)
    return project.seq, project.labeled(), client().get_run(run_id).info.status


def test_a_label_import_killed_midway_leaves_the_project_as_before(tracking_uri: str, tmp_path: Path) -> None:
    truth = hidden_digits(tmp_path / "hidden", 60)
    env = cli_env(tracking_uri)
    project, _ = query(
        env, tmp_path, "--quiet", "--dataset", "npz", "--data-path", str(tmp_path / "hidden"), "--k", "10"
    )
    batch = open_project(project).rounds[0].batch
    answers = write_answers(tmp_path / "answers.csv", [(i, truth[int(i)]) for i in batch])
    before = _project_view(project)

    # SIGKILL between the answers' upload and the state: the import does not count.
    killed = subprocess.run(
        [sys.executable, "-c", KILL_BEFORE_STATE, "label", "--project", project, str(answers)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    assert _project_view(project) == before

    # SIGKILL at arbitrary moments: never a part of the import.
    after = None
    for delay in (0.5, 1.5, 3.0, 6.0, 60.0):
        victim = Cli("label", "--project", project, str(answers), env=env, cwd=tmp_path)
        deadline = time.monotonic() + delay
        while victim.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        victim.kill()
        view = _project_view(project)
        if view != before:
            after = view
            break
    assert after is not None, "the import never completed"
    seq, labeled, status = after
    assert seq == before[0] + 1 and status == before[2]
    assert labeled == [(i, str(truth[int(i)]), 0) for i in batch]


# -- answers: partial, merged, re-imported ------------------------------------------------------
@pytest.fixture()
def small_project(tracking_uri: str, tmp_path: Path) -> tuple[str, list[str], np.ndarray]:
    """A project on 60 hidden digits with its random first batch of 10 asked (no training)."""
    truth = hidden_digits(tmp_path / "hidden", 60)
    result = CliRunner().invoke(app, ["query", "--quiet", "--dataset", "npz", "--data-path", str(tmp_path / "hidden"), "--k", "10"])  # fmt: skip
    assert result.exit_code == 0, result.output
    project = RUN_LINE.search(result.stdout).group(1)  # type: ignore[union-attr]
    return project, open_project(project).rounds[0].batch, truth


def test_answers_merge_and_a_reimport_changes_nothing(small_project: tuple[str, list[str], np.ndarray], tmp_path: Path) -> None:  # fmt: skip
    project, batch, truth = small_project
    runner = CliRunner()
    first = write_answers(tmp_path / "first.csv", [(i, truth[int(i)]) for i in batch[:4]])
    result = runner.invoke(app, ["label", "--project", project, str(first)])
    assert result.exit_code == 0 and "6 of the batch's 10 stay unlabeled" in result.stdout, result.output
    seq = open_project(project).seq
    again = runner.invoke(app, ["label", "--project", project, str(first)])
    assert again.exit_code == 0 and "nothing changed" in again.stdout
    assert open_project(project).seq == seq
    # The batch file itself, filled in, is an answer file too (its other columns are ignored).
    batch_file = tmp_path / "batch.csv"
    batch_file.write_text(artifact_text(project, "to_label/round_0.csv", tmp_path / "dl"))
    rows = read_rows(batch_file)
    with batch_file.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "label": str(truth[int(row["id"])]) if n >= 2 else ""} for n, row in enumerate(rows))
    result = runner.invoke(app, ["label", "--project", project, str(batch_file)])
    assert result.exit_code == 0, result.output
    labeled = open_project(project).labeled()
    assert [i for i, _, _ in labeled] == batch  # rows 0-1 from the first file, 2-9 from this one
    stored = read_rows(Path(client().download_artifacts(project, "labels/round_0.csv", str(tmp_path / "l"))))
    assert [(row["id"], row["label"]) for row in stored] == [(i, lab) for i, lab, _ in labeled]


# -- bad input ---------------------------------------------------------------------------------
def _one_error_line(stderr: str, message: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], stderr
    assert "Traceback" not in stderr


def _other_loop_run() -> str:
    c = mlflow.MlflowClient()
    exp = c.get_experiment_by_name("svpkit") or c.get_experiment(c.create_experiment("svpkit"))
    run = c.create_run(exp.experiment_id, tags={"svpkit.loop": "active_learning"})
    c.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


BAD_FILES = {
    "unknown-id": ("id,label\n{first},1\n99999,1\n", "rows cannot be imported (unknown id); nothing imported"),
    "label-outside-classes": ("id,label\n{first},10\n", "(label outside the classes)"),
    "duplicate-id": ("id,label\n{first},1\n{first},2\n", "(duplicate id)"),
    "no-header": ("{first},1\n", "the first line must be a CSV header naming the columns 'id' and 'label'"),
    "ragged-row": ("id,label\n{first},1,extra\n", "line 2: expected 2 fields, got 3; nothing imported"),
    "not-utf8": (None, "cannot read answer file"),
}


@pytest.mark.parametrize("row", list(BAD_FILES))
def test_a_bad_answer_file_imports_nothing(row: str, small_project: tuple[str, list[str], np.ndarray], tmp_path: Path) -> None:  # fmt: skip
    project, batch, truth = small_project
    text, message = BAD_FILES[row]
    file = tmp_path / "answers.csv"
    if text is None:
        file.write_bytes(b"id,label\n\xff\xfe,1\n")
    else:
        file.write_text(text.format(first=batch[0]))
    before = _project_view(project)
    result = CliRunner().invoke(app, ["label", "--project", project, str(file)])
    assert result.exit_code == 2, result.output
    _one_error_line(result.stderr, message)
    assert _project_view(project) == before


def test_bad_queries_and_projects(small_project: tuple[str, list[str], np.ndarray], tmp_path: Path) -> None:
    project, batch, _ = small_project
    hidden = ["--dataset", "npz", "--data-path", str(tmp_path / "hidden")]
    other = _other_loop_run()
    rows = {
        "k-larger-than-pool": (
            ["query", *hidden, "--project", project, "--k", "61"],
            "--k 61 is more than the 60 unlabeled",
        ),  # fmt: skip
        "nothing-unlabeled": (["query", "--dataset", "digits", "--k", "5"], "has no unlabeled training examples"),
        "changed-setting": (
            ["query", *hidden, "--project", project, "--selector", "greedy_k_center"],
            "uses --selector auto",  # the default a project started without --selector records
        ),  # fmt: skip
        "query-other-loop": (
            ["query", *hidden, "--project", other],
            "is a active_learning run, not a labeling project",
        ),  # fmt: skip
        "label-other-loop": (["label", "--project", other, str(tmp_path / "x.csv")], "not a labeling project"),
        "export-other-loop": (["export", "--project", other], "not a labeling project"),
        "missing-answer-file": (["label", "--project", project, str(tmp_path / "none.csv")], "does not exist"),
        "simulation-on-unlabeled": (["active-learning", "--quiet", *hidden], "needs every training label"),
        "core-set-on-unlabeled": (["core-set", "--quiet", *hidden], "needs every training label"),
        "train-on-unlabeled": (["train", "--quiet", *hidden], "needs every training label"),
    }
    before = _project_view(project)
    for name, (args, message) in rows.items():
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (name, result.output)
        _one_error_line(result.stderr, message)
        assert _project_view(project) == before, name
    running = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert not [r.info.run_id for r in running if r.info.status == "RUNNING"]


def test_a_label_error_in_a_real_process(small_project: tuple[str, list[str], np.ndarray], tracking_uri: str, tmp_path: Path) -> None:  # fmt: skip
    project, batch, _ = small_project
    file = write_answers(tmp_path / "bad.csv", [(batch[0], "eleven")])
    result = run_cli("label", "--project", project, str(file), env=cli_env(tracking_uri), cwd=tmp_path)
    assert result.returncode == 2
    _one_error_line(result.stderr, "(label outside the classes)")
    assert "'eleven'" in result.stdout  # the table of problems


# -- MLproject ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_query_and_label_entry_points(tracking_uri: str, tmp_path: Path) -> None:
    truth = hidden_digits(tmp_path / "hidden", 60)
    root = str(Path(__file__).resolve().parents[1])
    params = {"dataset": "npz", "data_path": str(tmp_path / "hidden"), "k": "6"}
    submitted = mlflow.projects.run(root, entry_point="query", parameters=params, env_manager="local", synchronous=True)
    project = submitted.run_id  # the run `mlflow run` opened is the project
    batch = open_project(project).rounds[0].batch
    answers = write_answers(tmp_path / "answers.csv", [(i, truth[int(i)]) for i in batch])
    labeled = mlflow.projects.run(
        root, entry_point="label", parameters={"project": project, "file": str(answers)}, env_manager="local", synchronous=True
    )  # fmt: skip
    assert client().get_run(labeled.run_id).data.tags["svpkit.resumed_run"] == project
    assert len(open_project(project).labeled()) == 6
    again = {**params, "project": project}
    mlflow.projects.run(root, entry_point="query", parameters=again, env_manager="local", synchronous=True)
    assert len(open_project(project).rounds) == 2
