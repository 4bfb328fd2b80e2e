"""The labeling round of docs/labeling.md, through Label Studio, answered with the true labels.

Builds an image folder of CIFAR-10 photos (``--pool`` training images 33,334 onwards, outside the
pools of ``projects/pretrained_cifar10*.toml``, as ``unlabeled/NNNN.png``; empty class folders under
``train/``; the first ``--test`` lossless test images as ``val/<class>/NNNN.png``), starts a
headless Label Studio server on a free port of 127.0.0.1 (from the virtualenv of
``plugins/svpkit-labelstudio/tools/install_label_studio.sh``, as the plugin's tests do), and runs
each arm as a user would: ``svpkit ls-query`` (the first batch of ``--k``), the tasks answered
through Label Studio's REST API with the photos' true classes (what the UI's *Submit* does),
``svpkit ls-label``, then ``svpkit ls-query --project RUN_ID --k K`` again, until ``--labels``
examples are labeled; one last query trains the proxy on all of them (its batch is not answered).

Arms (``--arms``):

- ``backbone``: ``--backbone efficientnet_lite0 --backbone-options size=96`` (the proxy is then
  ``linear_head``, the first batch MaxHerding's on the embeddings); needs ``plugins/svpkit-pretrained``;
- ``scratch``: ``--proxy preact_resnet20`` on the pixels (181 epochs from random weights; the
  first batch a seeded random sample).

Both with ``--selector auto`` and ``--seed``. Recorded per query: labeled count, the proxy's test
error on the ``val/`` photos (the project run's ``selector_model/test_error``), the classes in the
batch, the seconds of the ``ls-query`` and ``ls-label`` processes.

    python benchmarks/bench_labeling_round.py --cifar10 /path/to/cifar10 --scratch /tmp/labeling
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

from benchmarks.common import base_parser, print_table, setup, write_results

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
POOL_START = 33_334  # the first image of train_part2.npz
ARMS = {
    "backbone": ["--backbone", "efficientnet_lite0", "--backbone-options", "size=96"],
    "scratch": ["--proxy", "preact_resnet20"],
}


def make_folder(cifar10: Path, root: Path, pool: int, test: int) -> dict[str, str]:
    """The photo folder; returns each unlabeled photo's id (its path under ``root``) → true class."""
    from PIL import Image

    with np.load(cifar10 / "train_part2.npz") as part, np.load(cifar10 / "test_lossless_first1000.npz") as test_part:
        train = {"x": part["x"][:pool], "y": part["y"][:pool]}
        lossless = {"x": test_part["x"][:test], "y": test_part["y"][:test]}
    truth = {}
    for c in CLASSES:
        (root / "train" / c).mkdir(parents=True, exist_ok=True)
        (root / "val" / c).mkdir(parents=True, exist_ok=True)
    (root / "unlabeled").mkdir(parents=True, exist_ok=True)
    for i in range(pool):
        rel = f"unlabeled/{i:04d}.png"
        Image.fromarray(train["x"][i]).save(root / rel)
        truth[rel] = CLASSES[int(train["y"][i])]
    for i in range(test):
        Image.fromarray(lossless["x"][i]).save(root / "val" / CLASSES[int(lossless["y"][i])] / f"{i:04d}.png")
    return truth


class LabelStudio:
    """A headless Label Studio server for the benchmark (stopped by :meth:`stop`)."""

    def __init__(self, document_root: Path, data: Path) -> None:
        from svpkit_labelstudio.local_server import NotStarted, start_local_server

        data.mkdir(parents=True, exist_ok=True)
        try:
            self.server = start_local_server(document_root, data, data / "server.log", timeout=600)
        except NotStarted as exc:
            raise SystemExit(str(exc)) from None
        self.url, self.token, self.start_seconds = self.server.url, self.server.token, self.server.start_seconds
        self.headers = {"Authorization": f"Token {self.token}"}

    def tasks(self, project: int, round_no: int) -> list[dict[str, Any]]:
        reply = requests.get(
            f"{self.url}/api/tasks/",
            headers=self.headers,
            params={"project": str(project), "page_size": "1000", "fields": "all"},
            timeout=60,
        )
        reply.raise_for_status()
        return [t for t in reply.json()["tasks"] if t["data"]["svpkit_round"] == round_no]

    def submit(self, task: dict[str, Any], choice: str) -> None:
        """What the UI's *Submit* does: one annotation choosing ``choice``."""
        result: Any = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]
        reply = requests.post(
            f"{self.url}/api/tasks/{task['id']}/annotations/", headers=self.headers, json={"result": result}, timeout=60
        )
        reply.raise_for_status()

    def stop(self) -> None:
        self.server.stop()


def svpkit(*args: str, env: dict[str, str]) -> tuple[str, float]:
    """Run one ``svpkit`` command as a user would; its output and seconds."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "svpkit", *args], capture_output=True, text=True, env=env, timeout=3600
    )
    seconds = time.monotonic() - started
    if done.returncode:
        raise SystemExit(
            f"svpkit {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout, seconds


def run_arm(arm: str, folder: Path, truth: dict[str, str], ls: LabelStudio, args: argparse.Namespace) -> dict[str, Any]:
    """One labeling project through Label Studio; a row per query."""
    import mlflow

    uri = f"sqlite:///{Path(args.scratch) / f'mlflow_{arm}.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_RUN", "MLFLOW_EXPERIMENT", "LABEL_STUDIO"))}
    env.update(MLFLOW_TRACKING_URI=uri, LABEL_STUDIO_URL=ls.url, LABEL_STUDIO_API_KEY=ls.token)
    env.update(LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(folder.parent), OMP_NUM_THREADS=str(args.svpkit_threads))
    first = ["--dataset", "imagefolder", "--data-path", str(folder), "--dataset-options", "size=32"]
    first += [*ARMS[arm], "--selector", "auto", "--seed", str(args.seed), "--ls-project", f"cifar10 {arm}"]
    queries: list[dict[str, Any]] = []
    project, ls_project, labeled = "", 0, 0
    while True:
        more = ["--project", project] if project else first
        out, seconds = svpkit("ls-query", *more, "--k", str(args.k), env=env)
        project = project or re.search(r"run ([0-9a-f]{32})", out).group(1)  # type: ignore[union-attr]
        ls_project = int(re.search(r"tasks in Label Studio project (\d+)", out).group(1))  # type: ignore[union-attr]
        error = re.search(r"proxy test error: ([\d.]+)% \(trained on (\d+)\)", out)
        round_no = len(queries)
        tasks = ls.tasks(ls_project, round_no)
        classes = sorted({truth[t["data"]["svpkit_id"]] for t in tasks})
        row = {
            "round": round_no,
            "labeled": labeled,
            "proxy_test_error": None if error is None else float(error.group(1)) / 100,
            "query_seconds": round(seconds, 1),
            "batch_classes": len(classes),
            "first_line": out.strip().splitlines()[0][:200],
        }
        queries.append(row)
        print(f"{arm} round {round_no}: labeled {labeled}, proxy test error {row['proxy_test_error']}, "
              f"batch classes {len(classes)}, {seconds:.0f} s", flush=True)  # fmt: skip
        if labeled >= args.labels:
            break
        for t in tasks:
            ls.submit(t, truth[t["data"]["svpkit_id"]])
        out, seconds = svpkit("ls-label", "--project", project, env=env)
        row["label_seconds"] = round(seconds, 1)
        labeled += len(tasks)
    client = mlflow.tracking.MlflowClient(uri)
    history = client.get_metric_history(project, "selector_model/test_error")
    return {
        "arm": arm,
        "options": ARMS[arm] + ["--selector", "auto", "--seed", str(args.seed), "--k", str(args.k)],
        "project_run": project,
        "label_studio_project": ls_project,
        "queries": queries,
        "mlflow_test_error": {int(m.step): m.value for m in history},
    }


def main() -> None:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument(
        "--cifar10", required=True, help="the CIFAR-10 npz folder (train_part2.npz, test_lossless_first1000.npz)"
    )
    p.add_argument("--scratch", required=True, help="a folder for the photos, the server's data and the MLflow stores")
    p.add_argument("--arms", default="backbone,scratch")
    p.add_argument("--pool", type=int, default=600)
    p.add_argument("--test", type=int, default=500)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--svpkit-threads", type=int, default=1, help="OMP_NUM_THREADS of the svpkit processes")
    p.add_argument("--labels", type=int, default=100, help="answer batches until this many examples are labeled")
    args = p.parse_args()
    device, _ = setup(args)
    scratch = Path(args.scratch)
    folder = scratch / "docs" / "photos"
    truth = make_folder(Path(args.cifar10), folder, args.pool, args.test)
    ls = LabelStudio(folder.parent, scratch / "label-studio")
    print(f"Label Studio started in {ls.start_seconds:.0f} s at {ls.url}", flush=True)
    arms: list[dict[str, Any]] = []
    try:
        for arm in args.arms.split(","):
            arms.append(run_arm(arm, folder, truth, ls, args))
            payload = {  # written after each arm: a stopped run keeps the arms it finished
                "data": {
                    "pool": f"CIFAR-10 training images {POOL_START}-{POOL_START + args.pool - 1}",
                    "test": args.test,
                },
                "svpkit_threads": args.svpkit_threads,
                "label_studio_start_seconds": round(ls.start_seconds, 1),
                "load_average": os.getloadavg(),
                "arms": arms,
            }
            write_results("labeling_round", args, device, payload)
    finally:
        ls.stop()
    levels = sorted({q["labeled"] for a in arms for q in a["queries"] if q["proxy_test_error"] is not None})
    rows = []
    for a in arms:
        errors = {q["labeled"]: q["proxy_test_error"] for q in a["queries"]}
        rows.append([a["arm"], *[f"{100 * errors[n]:.1f}" if errors.get(n) is not None else "-" for n in levels]])
    print_table("proxy test error (%) after N labels", ["arm", *map(str, levels)], rows)
    print(json.dumps({a["arm"]: a["mlflow_test_error"] for a in arms}))


if __name__ == "__main__":
    main()
