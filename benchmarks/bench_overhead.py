"""Overhead of forgetting-event tracking and of per-epoch MLflow logging, in % of epoch time.

Three arms train the same ResNet20 on the same CIFAR-10 images with the svpkit learner, in one
process, interleaved (plain, forgetting, mlflow, mlflow, forgetting, plain, …):

* ``plain`` — no observer, no logging;
* ``forgetting`` — ``svpkit.selectors.forgetting.ForgettingTracker`` watches every minibatch
  (on the device, no host synchronisation);
* ``mlflow`` — every epoch logs the epoch's mean training loss and the epoch number through
  ``svpkit.tracking.MlflowTracker`` to a sqlite store in a temporary folder (``float(loss)`` syncs).

Differences between whole fits are noisy on a shared machine, so each cost is also measured in
isolation: the tracker's work replayed for one epoch's minibatches (synchronised), and the mean
of repeated ``log_metrics`` calls (and of MLflow's asynchronous ``log_batch``, which only enqueues). Goal: ≤2 % of an epoch each.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_train import default_data_path  # noqa: E402
from benchmarks.common import add_size_options, base_parser, print_table, setup, sized_config, write_results  # noqa: E402
from benchmarks.roofline import measure_peaks, precision_of, roofline, training_flops_per_image  # noqa: E402

PRESETS = {
    "cpu": {"train": 512, "epochs": 2, "repeats": 4},
    "gpu": {"train": 0, "epochs": 3, "repeats": 2},
}


def isolated_costs(learner: Any, tracker: Any, n: int) -> dict[str, float]:
    """Seconds per epoch of each tracking alone: forgetting (one epoch's minibatches replayed through
    a fresh tracker), one ``log_metrics`` call with its ``float(loss)`` sync, and the same through
    MLflow's asynchronous ``log_batch`` (enqueue only; flushed after the timing)."""
    from mlflow.entities import Metric

    from svpkit.selectors.forgetting import ForgettingTracker
    from svpkit.timing import Timer

    device, num_classes, run_id = learner.device, learner.dataset.num_classes, tracker.run_id
    bs = learner.config.batch_size
    batches = [torch.arange(i, min(i + bs, n), device=device) for i in range(0, n, bs)]
    logits = torch.randn(bs, num_classes, device=device)
    targets = torch.randint(0, num_classes, (bs,), device=device)
    replay = ForgettingTracker()
    replay.on_fit_start(n, device)
    reps = 5
    with Timer(device) as t:
        for _ in range(reps):
            for b in batches:
                replay.on_train_batch(b, logits[: b.numel()], targets[: b.numel()])
    forgetting_isolated = t.seconds / reps
    calls = 20
    with Timer(device) as t:
        for step in range(calls):
            loss = float(learner.loss_history[-1])
            tracker.log_metrics({"bench/loss": loss, "bench/epoch": float(step)}, step=1000 + step)
    mlflow_isolated = t.seconds / calls
    # The same through MLflow's asynchronous logging (the call only enqueues; flushed after).
    ops = []
    with Timer(device) as t:
        for step in range(calls):
            loss = float(learner.loss_history[-1])
            ts = int(1000 * step)
            metrics = [Metric("bench/loss", loss, ts, 2000 + step), Metric("bench/epoch", float(step), ts, 2000 + step)]
            ops.append(tracker.client.log_batch(run_id, metrics=metrics, synchronous=False))
    mlflow_async_isolated = t.seconds / calls
    for op in ops:
        if op is not None:
            op.wait()
    return {"forgetting": forgetting_isolated, "mlflow": mlflow_isolated, "mlflow async": mlflow_async_isolated}


def overhead(times: dict[str, list[float]], isolated: dict[str, float]) -> tuple[dict[str, Any], list[list[Any]]]:
    """Each tracking's overhead in % of an epoch, in the loop and isolated: (results, table rows)."""
    base = statistics.median(times["plain"])
    # Every arm does the same training work; the median over all of them is the steadiest
    # estimate of an epoch on a shared machine, and the denominator of the isolated costs.
    typical = statistics.median([t for arm in times.values() for t in arm])
    result: dict[str, Any] = {
        "epoch_seconds": times,
        "epoch_seconds_plain_median": base,
        "epoch_seconds_all_median": typical,
    }
    rows = [["none", base, "-", "-", "-"]]
    for arm, seconds in isolated.items():
        med = statistics.median(times[arm]) if arm in times else float("nan")
        in_loop = 100 * (med - base) / base if arm in times else float("nan")
        iso = 100 * seconds / typical
        result[arm] = {
            "epoch_seconds_median": med,
            "overhead_percent_in_loop": in_loop,
            "isolated_seconds_per_epoch": seconds,
            "overhead_percent_isolated": iso,
        }
        rows.append([arm, med, in_loop, seconds, iso])
    return result, rows


def timed_fits(new_learner: Any, order: list[str], tracker: Any, n: int) -> tuple[dict[str, list[float]], Any, Any]:
    """Seconds per epoch of a fit on ``n`` images per arm in ``order``; the last forgetting tracker and learner."""
    from svpkit.selectors.forgetting import ForgettingTracker
    from svpkit.timing import Timer

    times: dict[str, list[float]] = {"plain": [], "forgetting": [], "mlflow": []}
    last_tracker: ForgettingTracker | None = None
    for arm in order:
        learner = new_learner()
        observers: list[Any] = []
        progress = None
        if arm == "forgetting":
            last_tracker = ForgettingTracker()
            observers = [last_tracker]
        elif arm == "mlflow":
            state = {"epoch": 0}

            def progress(k: int, learner: Any = learner, state: dict[str, int] = state) -> None:
                state["epoch"] += k
                loss = float(learner.loss_history[-1])
                tracker.log_metrics({"train/loss": loss, "train/epoch": float(state["epoch"])}, step=state["epoch"])

        with Timer(learner.device) as t:
            learner.fit(np.arange(n), observers=observers, progress=progress)
        times[arm].append(t.seconds / learner.config.epochs)
        print(f"{arm}: {times[arm][-1]:.3f} s/epoch")
    return times, last_tracker, learner


def main() -> None:
    p = base_parser(__doc__ or "")
    p.add_argument("--model", default="preact_resnet20")
    p.add_argument("--data", default=default_data_path())
    add_size_options(p)
    args = p.parse_args()
    device, preset = setup(args)
    cfg = sized_config(PRESETS, preset, args)
    if not args.data:
        sys.exit("error: no CIFAR-10 folder found; pass --data")

    import mlflow

    from svpkit.data.cifar import load_cifar10
    from svpkit.learners import make_learner
    from svpkit.plugins import get_plugins
    from svpkit.protocols import LearnerOptions
    from svpkit.tracking import MlflowTracker

    dataset = load_cifar10(args.data).limited(train=cfg["train"] or None, test=1000)
    spec = get_plugins().models.get(args.model)
    n, epochs = len(dataset.train), int(cfg["epochs"])
    options = LearnerOptions(seed=args.seed, device=str(device), epochs=epochs)
    tmp = tempfile.TemporaryDirectory()
    mlflow.set_tracking_uri(f"sqlite:///{tmp.name}/mlflow.db")
    run = mlflow.start_run()
    tracker = MlflowTracker(run.info.run_id)
    tracker.log_metrics({"warmup": 0.0}, step=0)  # creates the store's tables outside the timings

    learner: Any = make_learner(spec, dataset, options)
    warm = learner.warm_up()
    print(f"{args.model} on {n} images, {epochs} epochs per fit, device {device}; warm-up {warm:.2f} s")

    arms = ["plain", "forgetting", "mlflow"]
    order = [arm for i in range(int(cfg["repeats"])) for arm in (arms if i % 2 == 0 else arms[::-1])]
    times, last_tracker, learner = timed_fits(lambda: make_learner(spec, dataset, options), order, tracker, n)
    isolated = isolated_costs(learner, tracker, n)
    mlflow.end_run()
    tmp.cleanup()

    result, rows = overhead(times, isolated)
    peaks = measure_peaks(device)
    flops = training_flops_per_image(learner)
    images_per_second = n / result["epoch_seconds_all_median"]
    result["roofline"] = {
        "flops_per_image": flops,
        "matmul_peaks": peaks,
        "precision": precision_of(learner),
        **roofline(flops, images_per_second, peaks[precision_of(learner)]["gflops"]),
    }
    print_table(
        f"per-epoch overhead, {args.model} on {n} images, {device}",
        ["tracking", "s / epoch (median)", "in-loop overhead %", "isolated s / epoch", "isolated overhead %"],
        rows,
    )
    if last_tracker is not None:
        result["forgetting_events_recorded"] = (
            int(last_tracker.presentations.sum()) if last_tracker.presentations is not None else 0
        )
    write_results(
        "overhead",
        args,
        device,
        {
            "preset": preset,
            "model": args.model,
            "train_images": n,
            "epochs_per_fit": epochs,
            "order": order,
            "warmup_seconds": warm,
            **result,
            "notes": (
                "in-loop = median epoch time with the tracking minus without, over the median without; "
                "isolated = the tracking work alone for one epoch (forgetting: replayed minibatches; "
                "mlflow: one log_metrics call with a float(loss) sync; mlflow async: the same through "
                "log_batch(synchronous=False), enqueue only), over the median epoch time of all arms"
            ),
        },
    )


if __name__ == "__main__":
    main()
