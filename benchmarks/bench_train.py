"""Training speed: the svpkit learner against the plain PyTorch pipeline of the reference code.

Both train the same pre-activation ResNet from the same initial weights with the same recipe
(the paper's: batch 128, SGD momentum 0.9, weight decay 5e-4, lr 0.1 with step decays) on the
same CIFAR-10 images, in one process on one device. Runs alternate plain, svpkit, svpkit, plain
(``--repeats 2``) so that load from other jobs hits both alike; the table shows the mean.

svpkit's time is split into warm-up (one-off process costs, ``TorchLearner.warm_up``), compile
(the first compiled step, when compiling) and the rest of the fit; *total* includes all of
them. The plain pipeline may run fewer epochs than svpkit (``--plain-epochs``): its time is then
extrapolated per epoch to svpkit's epoch count (first epoch as measured, the others at the mean
of the later epochs), and its test error is the one after the epochs it ran.

Presets (``--preset``): ``cpu`` trains ResNet20 on the first 2,000 CIFAR-10 images (ResNet110/164:
512) for one epoch (a few minutes on 2 cores); ``gpu`` trains ResNet20 for 181 epochs on all 50,000 (plain: 5 epochs,
extrapolated) or, for ResNet110/164, 2 epochs (plain: 1) projected to 181.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, preset_config, print_table, setup, write_results  # noqa: E402

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        "small": {"train": 2000, "test": 1000, "epochs": 1, "plain_epochs": 1, "repeats": 2, "workers": 0},
        "large": {"train": 512, "test": 256, "epochs": 1, "plain_epochs": 1, "repeats": 2, "workers": 0},
    },
    "gpu": {
        "small": {"train": 0, "test": 0, "epochs": 181, "plain_epochs": 5, "repeats": 1, "workers": 4},
        "large": {"train": 0, "test": 0, "epochs": 2, "plain_epochs": 1, "repeats": 1, "workers": 4},
    },
}


def default_data_path() -> str:
    for candidate in (Path(__file__).resolve().parent.parent.parent / "shared/data/cifar10", Path("/tmp/c10")):
        if candidate.is_dir():
            return str(candidate)
    return ""


def main() -> None:
    p = base_parser(__doc__ or "")
    p.add_argument("--model", default="preact_resnet20", help="preact_resnet20/56/110/164")
    p.add_argument("--data", default=default_data_path(), help="CIFAR-10 folder (npz parts or torchvision layout)")
    p.add_argument("--train-size", type=int, default=None, help="first N training images (0: all)")
    p.add_argument("--test-size", type=int, default=None, help="N test images, class-stratified (0: all)")
    p.add_argument("--epochs", type=int, default=None, help="svpkit epochs (schedule scaled to them)")
    p.add_argument("--plain-epochs", type=int, default=None, help="plain epochs (extrapolated to --epochs)")
    p.add_argument("--repeats", type=int, default=None, help="pairs of runs, in the order P S S P …")
    p.add_argument("--workers", type=int, default=None, help="plain DataLoader workers")
    p.add_argument("--compile", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. reduce-overhead")
    p.add_argument("--batch-size", type=int, default=None, help="svpkit batch size (plain keeps 128)")
    p.add_argument("--lr-scaling", default="none", choices=["none", "linear", "sqrt"])
    p.add_argument("--skip-plain", action="store_true", help="time only svpkit")
    args = p.parse_args()
    device, preset = setup(args)

    from benchmarks.plain_pipeline import evaluate_plain, train_plain
    from svpkit.data.cifar import load_cifar10
    from svpkit.plugins import get_plugins
    from svpkit.protocols import LearnerOptions

    depth = int(args.model.removeprefix("preact_resnet"))
    size = "small" if depth <= 56 else "large"
    cfg = preset_config(
        PRESETS[preset][size],
        train=args.train_size,
        test=args.test_size,
        epochs=args.epochs,
        plain_epochs=args.plain_epochs,
        repeats=args.repeats,
        workers=args.workers,
    )
    if not args.data:
        sys.exit("error: no CIFAR-10 folder found; pass --data")
    dataset = load_cifar10(args.data).limited(train=cfg["train"] or None, test=cfg["test"] or None)
    spec = get_plugins().models.get(args.model)
    n_train, n_test = len(dataset.train), len(dataset.test)
    epochs = int(cfg["epochs"])
    plain_epochs = min(int(cfg["plain_epochs"]), epochs)
    extra: dict[str, Any] = {"compile": args.compile, "lr_scaling": args.lr_scaling}
    if args.compile_mode:
        extra["compile_mode"] = args.compile_mode
    options = LearnerOptions(seed=args.seed, device=str(device), epochs=epochs, batch_size=args.batch_size, extra=extra)
    config = spec.train.with_epochs(epochs)
    x_np, y_np = dataset.train.x.numpy(), dataset.train.y.numpy()
    xt_np, yt_np = dataset.test.x.numpy(), dataset.test.y.numpy()
    print(
        f"{args.model} on {n_train} CIFAR-10 images ({n_test} test), svpkit {epochs} epochs, "
        f"plain {plain_epochs} epochs, device {device}, preset {preset}, threads {args.threads or 'all'}"
    )

    from svpkit.timing import Timer

    # The device's own start-up (CUDA context, cuDNN/oneDNN libraries) is paid once here, so
    # that whichever pipeline runs first is not charged for it; reported separately.
    with Timer(device) as t_init:
        conv = torch.nn.Conv2d(3, 8, 3).to(device)
        conv(torch.zeros(2, 3, 8, 8, device=device)).sum().backward()
    print(f"device start-up: {t_init.seconds:.2f} s (charged to neither pipeline)")
    svp_runs: list[dict[str, float]] = []
    plain_runs: list[dict[str, Any]] = []
    order: list[str] = []
    for i in range(int(cfg["repeats"])):
        order += ["plain", "svpkit"] if i % 2 == 0 else ["svpkit", "plain"]
    if args.skip_plain:
        order = [o for o in order if o == "svpkit"]
    for which in order:
        if which == "svpkit":
            learner = spec.make_learner(dataset, options)
            # One-off per process: measured before the first svpkit fit, charged to every one.
            warm = learner.warm_up() if not svp_runs else svp_runs[0]["warmup_seconds"]
            cpu0 = time.process_time()
            with Timer(device) as t:
                learner.fit(np.arange(n_train))
            cpu_s = time.process_time() - cpu0
            with Timer(device) as te:
                error = learner.error("test")
            timings = learner.timings
            svp_runs.append(
                {
                    "warmup_seconds": warm,
                    "compile_seconds": timings["compile_seconds"],
                    "fit_seconds": t.seconds,
                    "fit_process_cpu_seconds": cpu_s,
                    "total_seconds": warm + t.seconds,
                    "images_per_second": n_train * epochs / t.seconds,
                    "test_error": error,
                    "eval_seconds": te.seconds,
                    "final_train_loss": float(learner.loss_history[-1]),
                    "compiled": bool(timings["compiled"]),
                }
            )
            print(f"svpkit: {svp_runs[-1]}")
            del learner
        else:
            cpu0 = time.process_time()
            run = train_plain(
                lambda: spec.build(dataset.num_classes, dataset.input_shape),  # type: ignore[misc]
                x_np,
                y_np,
                dataset.mean or (0.0, 0.0, 0.0),
                dataset.std or (1.0, 1.0, 1.0),
                config,
                device,
                epochs=plain_epochs,
                num_workers=int(cfg["workers"]),
                seed=args.seed,
            )
            cpu_s = time.process_time() - cpu0
            with Timer(device) as te:
                error = evaluate_plain(
                    run.model,  # type: ignore[arg-type]
                    xt_np,
                    yt_np,
                    dataset.mean or (0.0, 0.0, 0.0),
                    dataset.std or (1.0, 1.0, 1.0),
                    device,
                    num_workers=int(cfg["workers"]),
                )
            secs = run.epoch_seconds
            later = statistics.fmean(secs[1:]) if len(secs) > 1 else secs[0]
            projected = secs[0] + later * (epochs - 1)
            plain_runs.append(
                {
                    "epochs_run": len(secs),
                    "epoch_seconds": secs,
                    "measured_seconds": sum(secs),
                    "process_cpu_seconds": cpu_s,
                    "total_seconds": projected,
                    "extrapolated": len(secs) < epochs,
                    "images_per_second": n_train * len(secs) / sum(secs),
                    "test_error_after_epochs_run": error,
                    "eval_seconds": te.seconds,
                    "final_train_loss": run.losses[-1],
                }
            )
            print(f"plain: {plain_runs[-1]}")
            del run

    def mean(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.fmean(float(r[key]) for r in runs) if runs else float("nan")

    rows = []
    if plain_runs:
        rows.append(
            [
                "plain (reference style)",
                f"{plain_epochs}{' (extrapolated)' if plain_epochs < epochs else ''}",
                "-",
                "-",
                mean(plain_runs, "total_seconds"),
                mean(plain_runs, "images_per_second"),
                mean(plain_runs, "test_error_after_epochs_run"),
                1.0,
            ]
        )
    ratio = mean(plain_runs, "total_seconds") / mean(svp_runs, "total_seconds") if plain_runs else float("nan")
    rows.append(
        [
            "svpkit",
            str(epochs),
            mean(svp_runs, "warmup_seconds"),
            mean(svp_runs, "compile_seconds"),
            mean(svp_runs, "total_seconds"),
            mean(svp_runs, "images_per_second"),
            mean(svp_runs, "test_error"),
            ratio,
        ]
    )
    print_table(
        f"{args.model}, {n_train} train / {n_test} test images, {epochs} epochs, {device}",
        [
            "pipeline",
            "epochs run",
            "warm-up s",
            "compile s",
            f"seconds ({epochs} ep.)",
            "images/s",
            "test error",
            "speed-up",
        ],
        rows,
    )
    full_cifar_181 = {
        "svpkit": 181 * 50_000 / mean(svp_runs, "images_per_second"),
        "plain": 181 * 50_000 / mean(plain_runs, "images_per_second") if plain_runs else float("nan"),
    }
    print(f"projected 181 epochs on 50,000 images at these rates: {full_cifar_181}")
    write_results(
        f"train_{args.model}",
        args,
        device,
        {
            "preset": preset,
            "model": args.model,
            "train_images": n_train,
            "test_images": n_test,
            "epochs": epochs,
            "plain_epochs": plain_epochs,
            "order": order,
            "device_startup_seconds": t_init.seconds,
            "svpkit": svp_runs,
            "plain": plain_runs,
            "speedup_total": ratio,
            "cpu_seconds_ratio": (
                mean(plain_runs, "process_cpu_seconds") / mean(svp_runs, "fit_process_cpu_seconds")
                if plain_runs and device.type == "cpu"
                else float("nan")
            ),
            "speedup_best_of_runs": (
                min(r["total_seconds"] for r in plain_runs) / min(r["total_seconds"] for r in svp_runs)
                if plain_runs
                else float("nan")
            ),
            "speedup_images_per_second": (
                mean(svp_runs, "images_per_second") / mean(plain_runs, "images_per_second")
                if plain_runs
                else float("nan")
            ),
            "projected_181_epochs_full_cifar_seconds": full_cifar_181,
            "notes": (
                "svpkit total = warm-up + fit (compile included); plain total extrapolated per epoch "
                "when it ran fewer epochs; plain test error is after the epochs it ran"
            ),
        },
    )


if __name__ == "__main__":
    main()
