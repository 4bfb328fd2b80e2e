"""Labeling rounds through a real Label Studio server (started by ``conftest.ls_server``).

- three ``ls-query`` → annotate (the REST API, as the UI does) → ``ls-label`` rounds on digits as
  images reach exactly the batches of the CSV workflow (``query`` / ``label``) with the same seed;
  on the way: predictions and svpkit's fields in the tasks, an open task blocks the import unless
  ``--take-finished``, a skipped task is reported and stays unlabeled, re-running imports nothing,
  an annotation changed after its import is reported (and imported while its round is open);
- a text CSV round; an image folder served through a Local Files storage;
- a wrong token and an unreachable server: one ``error:`` line, exit 2, nothing created anywhere;
- headless Chromium opens the project's task list and sees the round with its predictions.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lshelpers import CHROMEDRIVER, CHROMIUM, Annotator, Server, cli_env, run_cli
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.data.digits import load_digits
from svpkit.labeling.project import open_project
from svpkit.plugins import get_plugins
from svpkit.tracking import client

pytestmark = pytest.mark.slow
RUN_LINE = re.compile(r"^run (\w+):", flags=re.M)
# least confidence, not the default auto: the rounds' scores are then the proxy's uncertainty in pick order
MODEL = ["--quiet", "--proxy", "preact_resnet20", "--proxy-epochs", "2", "--batch-size", "32", "--device", "cpu"]
MODEL += ["--selector", "least_confidence"]


@pytest.fixture(autouse=True, scope="module")
def _plugin_commands() -> Iterator[None]:
    """The app in this process has the plugin's commands while this module runs (what its
    ``register_commands`` hook does; ``svpkit.cli.main`` calls it); the app is restored afterwards."""
    from svpkit_labelstudio.commands import register

    assert "register_commands" in get_plugins().info["labelstudio"].hooks  # installed, through the hook
    before = list(app.registered_commands)
    register(app)
    yield
    app.registered_commands[:] = before


def svpkit(*args: str) -> str:
    """Run an ``svpkit`` command in this process; its output."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"svpkit {' '.join(args)}:\n{result.output}\n{result.exception!r}"
    return result.output


def run_id(output: str) -> str:
    match = RUN_LINE.search(output)
    assert match, output
    return match.group(1)


def digits_images(root: Path, n: int, labeled: int = 0) -> np.ndarray:
    """The first ``n`` digits as 8×8 uint8 images (npz), the first ``labeled`` with their labels; the truth."""
    digits = load_digits()
    images = lambda x: np.round(x.numpy() * 255 / 16).astype(np.uint8).reshape(-1, 8, 8, 1)  # noqa: E731
    truth = digits.train.y.numpy()[:n]
    y = np.where(np.arange(n) < labeled, truth, -1)
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "train.npz", x=images(digits.train.x[:n]), y=y)
    np.savez(root / "test.npz", x=images(digits.test.x[:60]), y=digits.test.y.numpy()[:60])
    return truth


def ls_tasks(ann: Annotator, info: dict[str, Any]) -> list[dict[str, Any]]:
    ids = set(info["tasks"].values())
    return sorted(
        (t for t in ann.tasks(int(info["project"])) if t["id"] in ids), key=lambda t: t["data"]["svpkit_rank"]
    )


def round_info(project: str, r: int, tmp: Path) -> dict[str, Any]:
    local = client().download_artifacts(project, f"label_studio/round_{r}.json", str(tmp / f"info{r}"))
    return dict(json.loads(Path(local).read_text()))


# -- three image rounds ------------------------------------------------------------------------
def test_three_image_rounds_reach_the_csv_workflows_batches(ls_server: Server, tracking_uri: str, tmp_path: Path) -> None:  # fmt: skip
    n, k, seed = 120, 12, 3
    truth = digits_images(tmp_path / "digits", n)
    data = ["--dataset", "npz", "--data-path", str(tmp_path / "digits"), "--seed", str(seed), "--k", str(k)]

    # The CSV workflow, answering with the true labels.
    csv_project = ""
    for r in range(3):
        more = ["--project", csv_project] if csv_project else []
        csv_project = run_id(svpkit("query", *MODEL, *data, *more, "--out", str(tmp_path / f"b{r}.csv")))
        ids = open_project(csv_project).rounds[r].batch
        (tmp_path / f"a{r}.csv").write_text("id,label\n" + "".join(f"{i},{truth[int(i)]}\n" for i in ids))
        svpkit("label", "--project", csv_project, str(tmp_path / f"a{r}.csv"))

    # The same through Label Studio.
    ann = Annotator(ls_server.url, ls_server.pat)
    ls = ["--label-studio", ls_server.url, "--ls-token", ls_server.pat]
    out = svpkit("ls-query", *MODEL, *data, *ls, "--ls-project", "svpkit digits")
    project = run_id(out)
    assert "12 tasks in Label Studio project" in out
    for r in range(3):
        if r:
            svpkit("ls-query", "--project", project, "--k", str(k), "--quiet", "--ls-token", ls_server.pat)
        info = round_info(project, r, tmp_path)
        state = open_project(project).rounds[r]
        tasks = ls_tasks(ann, info)
        assert [t["data"]["svpkit_id"] for t in tasks] == state.batch
        assert {t["data"]["svpkit_round"] for t in tasks} == {r}
        assert all(t["data"]["image"].startswith("data:image/png;base64,") for t in tasks)
        if r == 0:  # the random first batch: no proxy, no prediction, no score
            assert all(not t["predictions"] and t["data"]["svpkit_score"] is None for t in tasks)
        else:
            predicted = [t["predictions"][0]["result"][0]["value"]["choices"][0] for t in tasks]
            assert predicted == state.predictions and len(predicted) == k
            assert [t["data"]["svpkit_score"] for t in tasks] == pytest.approx(state.scores)
            assert state.scores == sorted(state.scores, reverse=True)
        if r == 1:  # an open task blocks the import; the finished ones only with --take-finished
            for t in tasks[:-1]:
                ann.submit(t, str(truth[int(t["data"]["svpkit_id"])]))
            blocked = CliRunner().invoke(app, ["ls-label", "--project", project, "--ls-token", ls_server.pat])
            assert blocked.exit_code == 2
            assert "1 of round 1's 12 tasks are still open in Label Studio; nothing imported" in blocked.output
            assert open_project(project).rounds[1].answers == {}
            ann.submit(tasks[-1], str(truth[int(tasks[-1]["data"]["svpkit_id"])]))
        else:
            for t in tasks:
                ann.submit(t, str(truth[int(t["data"]["svpkit_id"])]))
        out = svpkit("ls-label", "--project", project, "--ls-token", ls_server.pat)
        assert f"imported {k} answers for round {r}" in out
        assert "nothing changed" in svpkit("ls-label", "--project", project, "--ls-token", ls_server.legacy_token)
        if r == 0:  # changed in Label Studio after the import, while the round is open: reported and imported
            wrong = str((truth[int(tasks[0]["data"]["svpkit_id"])] + 1) % 10)
            ann.change(tasks[0], wrong)
            out = svpkit("ls-label", "--project", project, "--ls-token", ls_server.pat)
            assert "changed in Label Studio after import" in out and f"→ {wrong} (imported)" in out
            assert open_project(project).rounds[0].answers[tasks[0]["data"]["svpkit_id"]] == wrong
            ann.change(tasks[0], str(truth[int(tasks[0]["data"]["svpkit_id"])]))  # back, before round 1 is asked
            svpkit("ls-label", "--project", project, "--ls-token", ls_server.pat)

    assert [r.batch for r in open_project(project).rounds] == [r.batch for r in open_project(csv_project).rounds]
    assert open_project(project).labeled() == open_project(csv_project).labeled()

    # Round 1 is closed: an annotation changed there now is reported, and svpkit keeps its label.
    first = ls_tasks(ann, round_info(project, 1, tmp_path))[0]
    kept = str(truth[int(first["data"]["svpkit_id"])])
    ann.change(first, str((int(kept) + 1) % 10))
    out = svpkit("ls-label", "--project", project, "--ls-token", ls_server.pat)
    assert f"round 1 {first['data']['svpkit_id']}: {kept} → {(int(kept) + 1) % 10} (svpkit keeps {kept}" in out

    # A fourth round with a skipped and an open task: --take-finished imports the other ten.
    svpkit("ls-query", "--project", project, "--k", str(k), "--quiet", "--ls-token", ls_server.pat)
    tasks = ls_tasks(ann, round_info(project, 3, tmp_path))
    ann.skip(tasks[0])
    for t in tasks[2:]:
        ann.submit(t, str(truth[int(t["data"]["svpkit_id"])]))
    out = svpkit("ls-label", "--project", project, "--take-finished", "--ls-token", ls_server.pat)
    assert "10 of 12 tasks annotated, 1 skipped, 1 open" in out and "imported 10 answers for round 3" in out
    assert f"skipped (cancelled) in Label Studio, they stay unlabeled: {tasks[0]['data']['svpkit_id']}" in out
    assert len(open_project(project).rounds[3].answers) == 10


# -- text and an image folder -------------------------------------------------------------------
def test_a_text_csv_round(ls_server: Server, tracking_uri: str, tmp_path: Path) -> None:
    words = (["bad", "awful", "dull", "boring"], ["good", "great", "fine", "lovely"])
    rng = np.random.default_rng(0)
    rows, truth = ["id,label,text"], {}
    for i in range(30):
        truth[f"review-{i}"] = ("negative", "positive")[i % 2]
        rows.append(f"review-{i},{i % 2 if i < 8 else ''},{' '.join(rng.choice(words[i % 2], size=5))} film")
    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    (folder / "classes.txt").write_text("negative\npositive\n")
    model = ["--proxy", "vdcnn9", "--proxy-options", "max_length=32", "--proxy-epochs", "1", "--batch-size", "8"]
    out = svpkit(
        "ls-query", "--quiet", "--dataset", "text_csv", "--data-path", str(folder), *model, "--k", "4",
        "--label-studio", ls_server.url, "--ls-token", ls_server.legacy_token, "--ls-project", "svpkit reviews",
    )  # fmt: skip
    project = run_id(out)
    ann = Annotator(ls_server.url, ls_server.pat)
    info = round_info(project, 0, tmp_path)
    tasks = ls_tasks(ann, info)
    config = ann.get(f"/api/projects/{info['project']}/")["label_config"]
    assert '<Text name="text" value="$text"/>' in config and 'value="positive"' in config
    assert all(t["data"]["text"].endswith(" film") and t["predictions"] for t in tasks)
    for t in tasks:
        ann.submit(t, truth[t["data"]["svpkit_id"]])
    assert "imported 4 answers for round 0" in svpkit("ls-label", "--project", project, "--ls-token", ls_server.pat)
    assert sorted(open_project(project).labeled()) == sorted((t["data"]["svpkit_id"], truth[t["data"]["svpkit_id"]], 0) for t in tasks)  # fmt: skip


def test_an_image_folder_is_served_through_local_files(ls_server: Server, tracking_uri: str, tmp_path: Path) -> None:
    import torch
    from torchvision.io import write_png

    root = ls_server.document_root / f"photos-{os.getpid()}-{time.monotonic_ns()}"
    for c in ("cat", "dog"):
        (root / "train" / c).mkdir(parents=True)
    for j in range(6):
        (root / "unlabeled").mkdir(exist_ok=True)
        write_png(torch.full((3, 16, 16), 40 * j, dtype=torch.uint8), str(root / "unlabeled" / f"u{j}.png"))
    # Outside the document root: refused before anything is created.
    bad = CliRunner().invoke(app, [
        "ls-query", "--quiet", "--dataset", "imagefolder", "--data-path", str(tmp_path), "--selector", "random",
        "--k", "3", "--label-studio", ls_server.url, "--ls-token", ls_server.pat, "--ls-project", "photos",
        "--ls-document-root", str(ls_server.document_root),
    ])  # fmt: skip
    assert bad.exit_code == 2 and "is not under Label Studio's document root" in bad.output
    assert not client().search_runs([e.experiment_id for e in client().search_experiments()])
    out = svpkit(
        "ls-query", "--quiet", "--dataset", "imagefolder", "--data-path", str(root), "--selector", "random", "--k", "3",
        "--label-studio", ls_server.url, "--ls-token", ls_server.pat, "--ls-project", f"photos {root.name}",
        "--ls-document-root", str(ls_server.document_root),
    )  # fmt: skip
    project = run_id(out)
    ann = Annotator(ls_server.url, ls_server.pat)
    tasks = ls_tasks(ann, round_info(project, 0, tmp_path))
    assert len(tasks) == 3
    for t in tasks:
        url = t["data"]["image"]
        assert url.startswith("/data/local-files/?d=") and url.endswith(t["data"]["svpkit_id"])
        import requests

        reply = requests.get(ls_server.url + url, headers=ann.headers, timeout=30)
        assert reply.status_code == 200 and reply.content[:8] == b"\x89PNG\r\n\x1a\n"


# -- bad input ---------------------------------------------------------------------------------
def test_a_wrong_token_or_an_unreachable_server_creates_nothing(ls_server: Server, tracking_uri: str, tmp_path: Path) -> None:  # fmt: skip
    digits_images(tmp_path / "digits", 60)
    ann = Annotator(ls_server.url, ls_server.pat)
    before = ann.get("/api/projects/", page_size=1000)["count"]
    env = cli_env(tracking_uri)
    args = ["ls-query", "--quiet", "--dataset", "npz", "--data-path", str(tmp_path / "digits"), "--k", "5"]
    # A real process: one error line on stderr, exit code 2.
    result = run_cli(*args, "--label-studio", ls_server.url, "--ls-project", "never", env={**env, "LABEL_STUDIO_API_KEY": "0" * 40}, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert "refused the token" in result.stderr
    for url, token, message in [
        (ls_server.url, ls_server.pat[:-4] + "abcd", "refused the personal access token"),
        ("http://127.0.0.1:9", ls_server.pat, "cannot reach Label Studio at http://127.0.0.1:9"),
    ]:
        bad = CliRunner().invoke(app, [*args, "--label-studio", url, "--ls-project", "never", "--ls-token", token])
        errors = [line for line in bad.output.splitlines() if line.startswith("error:")]
        assert bad.exit_code == 2 and len(errors) == 1 and message in errors[0], bad.output
    assert ann.get("/api/projects/", page_size=1000)["count"] == before
    assert not client().search_runs([e.experiment_id for e in client().search_experiments()])


# -- the browser ---------------------------------------------------------------------------------
@pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)
def test_the_task_list_shows_the_round_with_its_predictions(ls_server: Server, tracking_uri: str, tmp_path: Path) -> None:  # fmt: skip
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    digits_images(tmp_path / "digits", 160, labeled=100)  # a labeled start: round 0 has a trained proxy
    out = svpkit(
        "ls-query", *MODEL, "--proxy-epochs", "6", "--dataset", "npz", "--data-path", str(tmp_path / "digits"), "--k", "8",
        "--label-studio", ls_server.url, "--ls-token", ls_server.pat, "--ls-project", "svpkit digits (browser)",
    )  # fmt: skip
    project = run_id(out)
    info = round_info(project, 0, tmp_path)
    state = open_project(project).rounds[0]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=2000,1000"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium'}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        wait = WebDriverWait(driver, 90)
        driver.get(f"{ls_server.url}/user/login/")
        wait.until(ec.presence_of_element_located((By.NAME, "email"))).send_keys(ls_server.email)
        driver.find_element(By.NAME, "password").send_keys(ls_server.password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
        wait.until(lambda d: "/user/login" not in d.current_url)
        ann = Annotator(ls_server.url, ls_server.pat)
        tab = next(
            v["id"]
            for v in ann.get("/api/dm/views/", project=info["project"])
            if v["data"]["title"] == "svpkit round 0"
        )
        driver.get(f"{ls_server.url}/projects/{info['project']}/data?tab={tab}")
        wait.until(lambda d: all(i in d.find_element(By.TAG_NAME, "body").text for i in state.batch))
        time.sleep(2)  # the images
        body = driver.find_element(By.TAG_NAME, "body").text
        shots = Path(os.environ.get("SVPKIT_SCREENSHOT_DIR", str(tmp_path)))
        shots.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shots / "label-studio-round.png"))
    finally:
        driver.quit()
    # The tab lists the round's tasks in rank order, each with the proxy's class in its prediction.
    assert re.findall(r"choices: \[([^\]]+)\]", body) == state.predictions and len(state.predictions) == 8
    assert "svpkit_score" in body and "Tasks: 8 / 8" in body
