"""Training speed: the svpkit learner against the plain PyTorch pipeline of the reference code.

Both train the same pre-activation ResNet from the same initial weights with the same recipe
(the paper's: batch 128, SGD momentum 0.9, weight decay 5e-4, lr 0.1 with step decays) on the
same CIFAR-10 images, in one process on one device. svpkit may run several *arms* (``--arms``:
learner options over the base ones, e.g. ``amp=off`` ``amp=on`` ``amp=on,compile=on``); runs
alternate plain, arms…, arms reversed, plain (``--repeats 2``) so that load from other jobs hits
every side alike; the table shows the means.

svpkit's time is split into warm-up (one-off process costs, ``TorchLearner.warm_up``; with
``compile=on`` it includes the compilation), compile (the first compiled step of the fit) and the
rest of the fit; *total* includes all of them. The plain pipeline may run fewer epochs than
svpkit (``--plain-epochs``): its time is then extrapolated per epoch to svpkit's epoch count
(first epoch as measured, the others at the mean of the later epochs), and its test error is the
one after the epochs it ran.

Roofline (``benchmarks/roofline.py``): the model's training FLOPs per image, the device's matmul
peak at float32 and bfloat16 measured in this run, and for each side the achieved GFLOP/s with
its fraction of the peak at the precision it trains in (and of the bf16 peak). For a compiled
arm, *break-even steps* = its extra one-off seconds over the seconds it saves per full-size step
against the eager arm of the same precision: the fit length from which compiling pays.

Presets (``--preset``): ``cpu`` trains ResNet20 on the first 2,000 CIFAR-10 images (ResNet110/164:
512) for one epoch (a few minutes on 2 cores); ``gpu`` trains ResNet20 for 181 epochs on all 50,000
(plain: 5 epochs, extrapolated) or, for ResNet110/164, 2 epochs (plain: 1) projected to 181.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, preset_config, print_table, setup, write_results  # noqa: E402
from benchmarks.roofline import (  # noqa: E402
    measure_peaks,
    peak_text,
    percent_text,
    precision_of,
    roofline,
    training_flops_per_image,
)

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
FULL_CIFAR = (181, 50_000)  # the paper's schedule on all of CIFAR-10, for the projections


def default_data_path() -> str:
    """CIFAR-10 in the data folder beside the checkout, where there is one ("" otherwise)."""
    candidate = Path(__file__).resolve().parent.parent.parent / "shared/data/cifar10"
    return str(candidate) if candidate.is_dir() else ""


def parse_args() -> argparse.Namespace:
    p = base_parser(__doc__ or "")
    p.add_argument("--model", default="preact_resnet20", help="preact_resnet20/56/110/164")
    p.add_argument("--data", default=default_data_path(), help="CIFAR-10 folder (npz parts or torchvision layout)")
    p.add_argument("--train-size", type=int, default=None, help="first N training images (0: all)")
    p.add_argument("--test-size", type=int, default=None, help="N test images, class-stratified (0: all)")
    p.add_argument("--epochs", type=int, default=None, help="svpkit epochs (schedule scaled to them)")
    p.add_argument("--plain-epochs", type=int, default=None, help="plain epochs (extrapolated to --epochs)")
    p.add_argument("--repeats", type=int, default=None, help="rounds of runs, in the order P A B … B A P …")
    p.add_argument("--workers", type=int, default=None, help="plain DataLoader workers")
    p.add_argument("--compile", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. reduce-overhead")
    p.add_argument("--amp", default=None, choices=["auto", "on", "off"], help="svpkit bf16 autocast (default: auto)")
    p.add_argument("--batch-size", type=int, default=None, help="svpkit batch size (plain keeps 128)")
    p.add_argument("--lr-scaling", default="none", choices=["none", "linear", "sqrt"])
    p.add_argument("--arms", nargs="+", default=[""], help="svpkit arms: learner options over the base ones")
    p.add_argument("--peak-size", type=int, default=None, help="matmul size for the peak (default 2048 CPU, 8192 CUDA)")
    p.add_argument("--skip-plain", action="store_true", help="time only svpkit")
    return p.parse_args()


def arm_options(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """(label, ``LearnerOptions.extra``) of every svpkit arm: the base options, then the arm's."""
    from svpkit.models.options import parse_options_text

    base: dict[str, Any] = {"compile": args.compile, "lr_scaling": args.lr_scaling}
    if args.compile_mode:
        base["compile_mode"] = args.compile_mode
    if args.amp:
        base["amp"] = args.amp
    arms = []
    for text in args.arms:
        label = f"svpkit ({text})" if text else "svpkit"
        arms.append((label, {**base, **parse_options_text(text, "--arms")}))
    return arms


def run_order(labels: list[str], repeats: int, plain: bool) -> list[str]:
    """P A B …, then … B A P, alternating, ``repeats`` times."""
    one = (["plain"] if plain else []) + labels
    return [name for i in range(repeats) for name in (one if i % 2 == 0 else one[::-1])]


def svpkit_run(learner: Any, n_train: int, warm: float | None) -> dict[str, Any]:
    """One timed svpkit fit (warm-up first, when ``warm`` is None) and its test error."""
    from svpkit.timing import Timer

    device = learner.device
    warm = learner.warm_up() if warm is None else warm
    cpu0 = time.process_time()
    with Timer(device) as t:
        learner.fit(np.arange(n_train))
    cpu_s = time.process_time() - cpu0
    with Timer(device) as te:
        error = learner.error("test")
    timings = learner.timings
    return {
        "warmup_seconds": warm,
        "compile_seconds": timings["compile_seconds"],
        "fit_seconds": t.seconds,
        "fit_process_cpu_seconds": cpu_s,
        "total_seconds": warm + t.seconds,
        "images_per_second": timings["images"] / t.seconds,
        "steps": timings["steps"],
        "test_error": error,
        "eval_seconds": te.seconds,
        "final_train_loss": float(learner.loss_history[-1]),
        "compiled": bool(timings["compiled"]),
        "precision": precision_of(learner),
    }


def plain_run(spec: Any, dataset: Any, config: Any, device: torch.device, cfg: dict[str, Any], seed: int) -> dict:
    """One run of the reference-style pipeline, its time extrapolated to svpkit's epochs."""
    from benchmarks.plain_pipeline import evaluate_plain, train_plain
    from svpkit.timing import Timer

    epochs, plain_epochs = int(cfg["epochs"]), min(int(cfg["plain_epochs"]), int(cfg["epochs"]))
    mean, std = dataset.mean or (0.0, 0.0, 0.0), dataset.std or (1.0, 1.0, 1.0)
    cpu0 = time.process_time()
    run = train_plain(
        lambda: spec.build(dataset.num_classes, dataset.input_shape),
        dataset.train.x.numpy(),
        dataset.train.y.numpy(),
        mean,
        std,
        config,
        device,
        epochs=plain_epochs,
        num_workers=int(cfg["workers"]),
        seed=seed,
    )
    cpu_s = time.process_time() - cpu0
    assert run.model is not None
    with Timer(device) as te:
        x_test, y_test = dataset.test.x.numpy(), dataset.test.y.numpy()
        error = evaluate_plain(run.model, x_test, y_test, mean, std, device, num_workers=int(cfg["workers"]))
    secs = run.epoch_seconds
    later = statistics.fmean(secs[1:]) if len(secs) > 1 else secs[0]
    return {
        "epochs_run": len(secs),
        "epoch_seconds": secs,
        "measured_seconds": sum(secs),
        "process_cpu_seconds": cpu_s,
        "total_seconds": secs[0] + later * (epochs - 1),
        "extrapolated": len(secs) < epochs,
        "images_per_second": len(dataset.train) * len(secs) / sum(secs),
        "test_error_after_epochs_run": error,
        "eval_seconds": te.seconds,
        "final_train_loss": run.losses[-1],
        "precision": "float32",
    }


def mean(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.fmean(float(r[key]) for r in runs) if runs else float("nan")


def summarise_arms(
    arms: list[dict[str, Any]], plain: list[dict[str, Any]], flops: float, peaks: dict[str, dict]
) -> None:
    """Add speed-ups, roofline and (compiled arms) break-even steps to every arm, in place."""
    bf16_peak = peaks["bfloat16"]["gflops"]
    for arm in arms:
        runs = arm["runs"]
        ips = mean(runs, "images_per_second")
        arm["precision"] = runs[0]["precision"]
        arm["roofline"] = {
            **roofline(flops, ips, peaks[arm["precision"]]["gflops"]),
            "fraction_of_bf16_peak": roofline(flops, ips, bf16_peak)["fraction_of_peak"],
        }
        arm["speedup_total"] = mean(plain, "total_seconds") / mean(runs, "total_seconds") if plain else float("nan")
        arm["speedup_images_per_second"] = ips / mean(plain, "images_per_second") if plain else float("nan")
    for arm in arms:
        runs = arm["runs"]
        eager = [a for a in arms if not a["runs"][0]["compiled"] and a["precision"] == arm["precision"]]
        if not runs[0]["compiled"] or not eager:
            continue
        base = eager[0]["runs"]
        steps = mean(runs, "steps")
        eager_step = mean(base, "fit_seconds") / steps
        compiled_step = (mean(runs, "fit_seconds") - mean(runs, "compile_seconds")) / max(steps - 1, 1)
        one_off = mean(runs, "warmup_seconds") - mean(base, "warmup_seconds") + mean(runs, "compile_seconds")
        saved = eager_step - compiled_step
        arm["compile_vs"] = eager[0]["label"]
        arm["seconds_saved_per_step"] = saved
        arm["break_even_steps"] = one_off / saved if saved > 0 else float("inf")


def comparison(
    arms: list[dict[str, Any]], plain: list[dict[str, Any]], flops: float, peaks: dict[str, dict], device: torch.device
) -> dict[str, Any]:
    """The results' comparison fields: the first arm against the plain pipeline, and projections."""
    first = arms[0]
    full = FULL_CIFAR[0] * FULL_CIFAR[1]
    projected = [mean(a["runs"], "warmup_seconds") + full / mean(a["runs"], "images_per_second") for a in arms]
    return {
        "svpkit": first["runs"],
        "arms": arms,
        "plain": plain,
        "plain_roofline": roofline(flops, mean(plain, "images_per_second"), peaks["float32"]["gflops"]),
        "speedup_total": first["speedup_total"],
        "cpu_seconds_ratio": (
            mean(plain, "process_cpu_seconds") / mean(first["runs"], "fit_process_cpu_seconds")
            if plain and device.type == "cpu"
            else float("nan")
        ),
        "speedup_best_of_runs": (
            min(r["total_seconds"] for r in plain) / min(r["total_seconds"] for r in first["runs"])
            if plain
            else float("nan")
        ),
        "speedup_images_per_second": first["speedup_images_per_second"],
        "projected_181_epochs_full_cifar_seconds": {
            "plain": full / mean(plain, "images_per_second") if plain else float("nan"),
            "svpkit": projected[0],
            **{a["label"]: seconds for a, seconds in zip(arms, projected)},
        },
        "notes": (
            "svpkit total = warm-up + fit (compile included); plain total extrapolated per epoch when it ran fewer "
            "epochs; plain test error is after the epochs it ran; 'svpkit' = the first arm; projections: warm-up + "
            "the images at the measured images/s; roofline = training FLOPs per image (FlopCounterMode, "
            "forward+backward) x images/s over the matmul peak measured in this run at the arm's precision"
        ),
    }


def print_summary(title: str, arms: list[dict[str, Any]], plain: list[dict[str, Any]], record: dict) -> None:
    epochs, plain_epochs = record["epochs"], record["plain_epochs"]
    rows = []
    if plain:
        pr = record["plain_roofline"]
        rows.append(
            [
                "plain (reference style)",
                f"{plain_epochs}{' (extrapolated)' if plain_epochs < epochs else ''}",
                "-",
                "-",
                mean(plain, "total_seconds"),
                mean(plain, "images_per_second"),
                f"{pr['achieved_gflops']:.1f} ({percent_text(pr['fraction_of_peak'])} fp32)",
                mean(plain, "test_error_after_epochs_run"),
                1.0,
                "-",
            ]
        )
    for arm in arms:
        runs, rl = arm["runs"], arm["roofline"]
        short = "bf16" if arm["precision"] == "bfloat16" else "fp32"
        rows.append(
            [
                arm["label"],
                str(epochs),
                mean(runs, "warmup_seconds"),
                mean(runs, "compile_seconds"),
                mean(runs, "total_seconds"),
                mean(runs, "images_per_second"),
                f"{rl['achieved_gflops']:.1f} ({percent_text(rl['fraction_of_peak'])} {short})",
                mean(runs, "test_error"),
                arm["speedup_total"],
                f"{arm['break_even_steps']:,.0f}" if "break_even_steps" in arm else "-",
            ]
        )
    columns = [
        "pipeline",
        "epochs run",
        "warm-up s",
        "compile s",
        f"seconds ({epochs} ep.)",
        "images/s",
        "GFLOP/s (of peak)",
        "test error",
        "speed-up",
        "break-even steps",
    ]
    print_table(title, columns, rows)
    peaks = record["matmul_peaks"]
    print(
        f"training FLOPs per image {record['flops_per_image'] / 1e6:,.1f} M; matmul peak "
        f"fp32 {peak_text(peaks['float32'])}, bf16 {peak_text(peaks['bfloat16'])} GFLOP/s"
    )


def main() -> None:
    args = parse_args()
    device, preset = setup(args)
    from svpkit.data.cifar import load_cifar10
    from svpkit.learners import make_learner
    from svpkit.plugins import get_plugins
    from svpkit.protocols import LearnerOptions
    from svpkit.timing import Timer

    depth = int(args.model.removeprefix("preact_resnet"))
    given = {k: getattr(args, k) for k in ("epochs", "plain_epochs", "repeats", "workers")}
    cfg = preset_config(
        PRESETS[preset]["small" if depth <= 56 else "large"], train=args.train_size, test=args.test_size, **given
    )
    if not args.data:
        sys.exit("error: no CIFAR-10 folder found; pass --data")
    dataset = load_cifar10(args.data).limited(train=cfg["train"] or None, test=cfg["test"] or None)
    spec = get_plugins().models.get(args.model)
    n_train, n_test, epochs = len(dataset.train), len(dataset.test), int(cfg["epochs"])
    plain_epochs = min(int(cfg["plain_epochs"]), epochs)

    def learner_for(extra: dict[str, Any]) -> Any:
        opts = LearnerOptions(
            seed=args.seed, device=str(device), epochs=epochs, batch_size=args.batch_size, extra=extra
        )
        return make_learner(spec, dataset, opts)

    arms: list[dict[str, Any]] = [{"label": label, "options": extra, "runs": []} for label, extra in arm_options(args)]
    print(
        f"{args.model} on {n_train} CIFAR-10 images ({n_test} test), svpkit {epochs} epochs ({len(arms)} arms), "
        f"plain {plain_epochs} epochs, device {device}, preset {preset}, threads {args.threads or 'all'}"
    )
    # The device's own start-up (CUDA context, cuDNN/oneDNN libraries) is paid once here, so
    # that whichever pipeline runs first is not charged for it; reported separately.
    with Timer(device) as t_init:
        conv = torch.nn.Conv2d(3, 8, 3).to(device)
        conv(torch.zeros(2, 3, 8, 8, device=device)).sum().backward()
    print(f"device start-up: {t_init.seconds:.2f} s (charged to neither pipeline)")
    peaks = measure_peaks(device, args.peak_size)
    flops = training_flops_per_image(learner_for(arms[0]["options"]))
    plain_runs: list[dict[str, Any]] = []
    by_label = {arm["label"]: arm for arm in arms}
    order = run_order(list(by_label), int(cfg["repeats"]), not args.skip_plain)
    for which in order:
        if which == "plain":
            plain_runs.append(plain_run(spec, dataset, spec.train.with_epochs(epochs), device, cfg, args.seed))
            print(f"plain: {plain_runs[-1]}")
            continue
        arm = by_label[which]
        # One-off per process and arm: measured before the arm's first fit, charged to every one.
        warm = arm["runs"][0]["warmup_seconds"] if arm["runs"] else None
        arm["runs"].append(svpkit_run(learner_for(arm["options"]), n_train, warm))
        print(f"{which}: {arm['runs'][-1]}")
    summarise_arms(arms, plain_runs, flops, peaks)
    record: dict[str, Any] = {
        "preset": preset,
        "model": args.model,
        "train_images": n_train,
        "test_images": n_test,
        "epochs": epochs,
        "plain_epochs": plain_epochs,
        "order": order,
        "device_startup_seconds": t_init.seconds,
        "flops_per_image": flops,
        "matmul_peaks": peaks,
        **comparison(arms, plain_runs, flops, peaks, device),
    }
    print_summary(
        f"{args.model}, {n_train} train / {n_test} test images, {epochs} epochs, {device}", arms, plain_runs, record
    )
    projected = record["projected_181_epochs_full_cifar_seconds"]
    print(f"projected {FULL_CIFAR[0]} epochs on {FULL_CIFAR[1]:,} images: {projected}")
    write_results(f"train_{args.model}", args, device, record)


if __name__ == "__main__":
    main()
