"""The GPU evidence's SVP table: real ``svpkit active-learning`` runs on a CIFAR-10 part, in MLflow.

Three runs of least-confidence active learning (the ``random`` one selects at random) share the
data, the seed, the initial set and the budgets (10 %, 20 %, … 50 % of the part) and train the same
target (ResNet56) at every level: the *proxy* run selects with a ResNet20 trained for a third of
the target's epochs, the *baseline* with the target itself. Epochs are chosen to fit a time budget
from the two models' throughput, measured first with short fits (:func:`plan_epochs`). (``--tiny``,
the CI check of the script: two levels, the target a ResNet20 trained for 2 epochs, the proxy the
same for 1.)
Every run is a separate ``python -m svpkit active-learning`` process logging to
``<out>/mlflow.db`` (artifacts in ``<out>/mlruns``); :func:`al_table` reads the table back.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

PROXY, TARGET = "preact_resnet20", "preact_resnet56"
MODELS = {"full": (PROXY, TARGET), "tiny": (PROXY, PROXY)}
TINY_PLAN = {"target_epochs": 2, "proxy_epochs": 1, "images_per_second": {}}
# --initial and --budgets: the paper's 2 % random start, then 10 % … 50 % (tiny: two levels only).
SCHEDULE = {"full": ("0.02", "0.1,0.2,0.3,0.4,0.5"), "tiny": ("0.125", "0.25,0.5")}
LEVELS, SELECTOR_SETS = 0.1 + 0.2 + 0.3 + 0.4 + 0.5, 0.02 + 0.1 + 0.2 + 0.3 + 0.4  # full: fractions of the part
EXPERIMENT = "gpu-evidence"
RUN_OVERHEAD_S = 25.0  # one CLI process: imports, data, store, warm-ups


def runs(data: Path, device: str, proxy_epochs: int, target_epochs: int, size: str) -> dict[str, list[str]]:
    """The three runs' command lines, by role."""
    initial, budgets = SCHEDULE[size]
    proxy, target = MODELS[size]
    base = ["active-learning", "--quiet", "--dataset", "cifar10", "--data-path", str(data), "--device", device]
    base += ["--initial", initial, "--budgets", budgets, "--target", target, "--target-epochs", str(target_epochs)]
    base += ["--experiment", EXPERIMENT, "--seed", "0"]
    lc = ["--selector", "least_confidence"]
    return {
        "random": [*base, "--selector", "random", "--proxy", proxy, "--run-name", "random"],
        "proxy": [*base, *lc, "--proxy", proxy, "--proxy-epochs", str(proxy_epochs), "--run-name", "proxy"],
        "baseline": [*base, *lc, "--proxy", target, "--proxy-epochs", str(target_epochs), "--run-name", "baseline"],
    }


def throughput(model: str, data: Path, device: str, images: int = 2000, epochs: int = 2) -> float:
    """Training images/s of ``model`` on ``device`` (after its warm-up), from a short fit."""
    from svpkit.data.cifar import load_cifar10
    from svpkit.learners import make_learner
    from svpkit.plugins import get_plugins
    from svpkit.protocols import LearnerOptions
    from svpkit.timing import Timer

    dataset = load_cifar10(str(data)).limited(train=images, test=100)
    learner: Any = make_learner(get_plugins().models.get(model), dataset, LearnerOptions(device=device, epochs=epochs))
    learner.warm_up()
    with Timer(device) as t:
        learner.fit(np.arange(images))
    return images * epochs / t.seconds


def plan_epochs(n_train: int, ips: dict[str, float], budget_s: float, most: int = 60) -> dict[str, Any]:
    """Target epochs (proxy: a third) so that the three runs fit ``budget_s`` at the measured speeds."""
    target_images = (3 * LEVELS + SELECTOR_SETS) * n_train  # per target epoch: three runs' targets, baseline's selector
    proxy_images = SELECTOR_SETS * n_train / 3  # per target epoch, at a third of the epochs
    per_epoch = target_images / ips[TARGET] + proxy_images / ips[PROXY]
    fit = (budget_s - 3 * RUN_OVERHEAD_S) / per_epoch
    target_epochs = max(1, min(most, math.floor(fit)))
    return {
        "target_epochs": target_epochs,
        "proxy_epochs": max(1, target_epochs // 3),
        "images_per_second": ips,
        "budget_seconds": budget_s,
        "estimated_seconds": 3 * RUN_OVERHEAD_S + per_epoch * target_epochs,
    }


def run_all(commands: dict[str, list[str]], out: Path, env: dict[str, str], deadline: float) -> dict[str, Any]:
    """Run the CLI commands one after another in ``out`` (the default store there); rc and seconds."""
    env = {
        **env,
        "MLFLOW_TRACKING_URI": f"sqlite:///{out / 'mlflow.db'}",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(var, None)
    done: dict[str, Any] = {}
    for role, args in commands.items():
        left = deadline - time.monotonic()
        if left < RUN_OVERHEAD_S:
            done[role] = {"skipped": f"{left:.0f} s left"}
            continue
        t0 = time.monotonic()
        rc: int | str
        with open(out / f"al_{role}.log", "w") as log:
            try:
                rc = subprocess.run(
                    [sys.executable, "-m", "svpkit", *args],
                    cwd=out,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=left,
                ).returncode
            except subprocess.TimeoutExpired:
                rc = "timed out"
        done[role] = {"rc": rc, "seconds": time.monotonic() - t0, "command": ["svpkit", *args]}
        print(f"active learning, {role}: {done[role]['rc']} in {done[role]['seconds']:.0f} s", flush=True)
    return done


def al_table(out: Path) -> list[dict[str, Any]]:
    """Per run of the experiment in ``<out>/mlflow.db``: role, status, target error by labeled count,
    selection seconds."""
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{out / 'mlflow.db'}"
    from svpkit.contract import Metric, Tag
    from svpkit.tracking.reader import experiment_id_for, find_runs, metric_history

    experiment = experiment_id_for(EXPERIMENT)
    if experiment is None:
        return []
    rows = []
    for run in sorted(find_runs([experiment], finished_only=False), key=lambda r: r.start_time):
        rows.append(
            {
                "run_id": run.run_id,
                "role": run.tags.get(Tag.ROLE, "?"),
                "status": run.status,
                "amp": run.tags.get(Tag.AMP, ""),
                "selector": run.tags.get(Tag.SELECTOR, ""),
                "selector_model": run.tags.get(Tag.SELECTOR_MODEL, ""),
                "target_error": metric_history(run.run_id, Metric.TARGET_ERROR),
                "selection_seconds": run.metrics.get(Metric.SELECTION_CUMULATIVE_SECONDS, float("nan")),
                "target_train_seconds": sum(metric_history(run.run_id, Metric.TARGET_TRAIN_SECONDS).values()),
            }
        )
    return rows
