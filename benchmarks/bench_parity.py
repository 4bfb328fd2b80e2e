"""Accuracy parity of bf16 training, and what bf16 scoring would do to the picks.

The svpkit learner trains ResNet20 on the first ``--train-size`` CIFAR-10 training images for
``--epochs`` epochs, in float32 (``amp=off``) and under bf16 autocast (``amp=on``; master weights,
the loss and the scoring softmax stay float32), for each ``--seeds`` seed, interleaved
(fp32 s0, bf16 s0, bf16 s1, fp32 s1, …), and scores the whole test split. Verdict: bf16 is at
parity when the difference of the mean test errors is within the seed-to-seed spread (the
largest difference between two seeds of one precision).

Scoring check, on each trained model: the next ``--pool-size`` training images are scored twice,
by the learner (float32 softmax and embeddings: what selections use) and by the same model's
forward under bf16 autocast. Reported per selector: tied scores (least confidence, entropy) and
how many of the ``--k`` picks (uncertainty top-k; greedy k-center from the labeled images'
embeddings) bf16 scoring would change.

The run for the README (``benchmarks/cpu_evidence.sh``): 10,000 images, 15 epochs, seeds 0 and 1,
the full test set.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_train import default_data_path  # noqa: E402
from benchmarks.common import base_parser, print_table, setup, write_results  # noqa: E402

PRECISIONS = {"float32": "off", "bfloat16": "on"}


def bf16_outputs(learner: Any, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 softmax of bf16 logits, bf16 penultimate features as float32) of ``indices``."""
    from svpkit.models.base import final_linear

    model = learner.model
    model.eval()
    x_all, _ = learner.inputs("train")
    captured: list[torch.Tensor] = []
    handle = final_linear(model).register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    probs, feats = [], []
    try:
        with torch.inference_mode(), torch.autocast(device_type=learner.device.type, dtype=torch.bfloat16):
            for chunk in torch.as_tensor(indices, device=learner.device).split(learner.inference_batch_size):
                logits = model(learner.batch_inputs(x_all, chunk))
                probs.append(torch.softmax(logits.float(), dim=1))  # bf16 logits, as autocast leaves them
                feats.append(captured.pop().float().flatten(1))
    finally:
        handle.remove()
    return torch.cat(probs), torch.cat(feats)


def _ties(scores: torch.Tensor) -> int:
    return int(scores.numel() - torch.unique(scores).numel())


def _changed(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of the picks in ``a`` that are not among ``b`` (as sets)."""
    return 1.0 - len(set(a.tolist()) & set(b.tolist())) / max(a.numel(), 1)


def scoring_check(learner: Any, labeled: np.ndarray, pool: np.ndarray, k: int) -> dict[str, Any]:
    """What bf16 scoring would change against the learner's float32 scoring, per selector."""
    from svpkit.selectors.base import rank_descending
    from svpkit.selectors.k_center import greedy_k_center
    from svpkit.selectors.uncertainty import entropy_scores, least_confidence_scores

    probs32 = learner.predict_proba(pool).float()
    probs16, pool16 = bf16_outputs(learner, pool)
    _, labeled16 = bf16_outputs(learner, labeled)
    out: dict[str, Any] = {"pool": int(pool.size), "k": k}
    for name, fn in (("least_confidence", least_confidence_scores), ("entropy", entropy_scores)):
        s32, s16 = fn(probs32), fn(probs16)
        top32, top16 = rank_descending(s32)[:k], rank_descending(s16)[:k]
        out[name] = {"ties_float32": _ties(s32), "ties_bf16": _ties(s16), "picks_changed": _changed(top16, top32)}
    picks32, _ = greedy_k_center(learner.embed(pool).float(), learner.embed(labeled).float(), k)
    picks16, _ = greedy_k_center(pool16, labeled16, k)
    out["k_center"] = {
        "picks_changed": _changed(picks16, picks32),
        "same_order_prefix": int((picks16 == picks32).long().cumprod(0).sum()),
    }
    return out


def parity_verdict(errors: dict[str, list[float]]) -> dict[str, Any]:
    """bf16 is at parity when |mean difference| ≤ the largest seed-to-seed difference of a precision
    (undecided, None, with fewer than two seeds)."""
    spread = max(max(e) - min(e) for e in errors.values())
    diff = statistics.fmean(errors["bfloat16"]) - statistics.fmean(errors["float32"])
    decided = min(len(e) for e in errors.values()) >= 2
    return {"mean_difference": diff, "seed_spread": spread, "bf16_at_parity": abs(diff) <= spread if decided else None}


def train_and_check(learner: Any, labeled: np.ndarray, pool: np.ndarray, k: int) -> dict[str, Any]:
    """Fit ``learner`` on ``labeled``; its test error, speed and :func:`scoring_check`."""
    from svpkit.timing import Timer

    learner.warm_up()
    with Timer(learner.device) as t:
        learner.fit(labeled)
    return {
        "amp_in_effect": bool(learner.amp),
        "fit_seconds": t.seconds,
        "images_per_second": learner.timings["images"] / t.seconds,
        "test_error": learner.error("test"),
        "final_train_loss": float(learner.loss_history[-1]),
        "scoring_check": scoring_check(learner, labeled, pool, k),
    }


def print_parity(title: str, seeds: list[int], runs: list[dict[str, Any]], verdict: dict[str, Any]) -> None:
    rows = []
    for seed in seeds:
        by = {r["precision"]: r for r in runs if r["seed"] == seed}
        fp, bf = by["float32"], by["bfloat16"]
        check = bf["scoring_check"]
        lc = check["least_confidence"]
        rows.append(
            [
                seed,
                100 * fp["test_error"],
                100 * bf["test_error"],
                fp["images_per_second"],
                bf["images_per_second"],
                f"{100 * lc['picks_changed']:.1f} % ({lc['ties_bf16']} vs {lc['ties_float32']} ties)",
                f"{100 * check['k_center']['picks_changed']:.1f} %",
            ]
        )
    columns = ["seed", "fp32 test error %", "bf16 test error %", "fp32 img/s", "bf16 img/s"]
    print_table(title, [*columns, "LC picks changed by bf16 scoring", "k-center picks changed"], rows)
    state = {True: "bf16 at parity", False: "bf16 NOT at parity", None: "undecided (one seed)"}
    print(
        f"mean difference {100 * verdict['mean_difference']:+.2f} points, seed spread "
        f"{100 * verdict['seed_spread']:.2f} points: {state[verdict['bf16_at_parity']]}"
    )


def main() -> None:
    p = base_parser(__doc__ or "")
    p.add_argument("--model", default="preact_resnet20")
    p.add_argument("--data", default=default_data_path(), help="CIFAR-10 folder")
    p.add_argument("--train-size", type=int, default=10_000, help="first N training images to train on")
    p.add_argument("--test-size", type=int, default=0, help="N test images, class-stratified (0: all)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--pool-size", type=int, default=10_000, help="images after the training ones to score")
    p.add_argument("--k", type=int, default=1_000, help="picks compared by the scoring check")
    args = p.parse_args()
    device, _preset = setup(args)
    if not args.data:
        sys.exit("error: no CIFAR-10 folder found; pass --data")
    from svpkit.data.cifar import load_cifar10
    from svpkit.learners import make_learner
    from svpkit.plugins import get_plugins
    from svpkit.protocols import LearnerOptions

    n, pool_n, k = args.train_size, args.pool_size, min(args.k, args.pool_size)
    dataset = load_cifar10(args.data).limited(train=n + pool_n, test=args.test_size or None)
    spec = get_plugins().models.get(args.model)
    labeled, pool = np.arange(n), np.arange(n, n + pool_n)
    names = list(PRECISIONS)
    order = [(prec, seed) for i, seed in enumerate(args.seeds) for prec in (names if i % 2 == 0 else names[::-1])]
    title = f"{args.model}, {n} CIFAR-10 images, {args.epochs} epochs, float32 vs bf16 autocast, {device}"
    print(f"{title}; seeds {args.seeds}, {len(dataset.test)} test images")
    runs: list[dict[str, Any]] = []
    for precision, seed in order:
        options = LearnerOptions(
            seed=seed, device=str(device), epochs=args.epochs, extra={"amp": PRECISIONS[precision]}
        )
        run = {
            "precision": precision,
            "seed": seed,
            **train_and_check(make_learner(spec, dataset, options), labeled, pool, k),
        }
        runs.append(run)
        print(run)
    errors = {prec: [r["test_error"] for r in runs if r["precision"] == prec] for prec in PRECISIONS}
    verdict = parity_verdict(errors)
    print_parity(title, args.seeds, runs, verdict)
    record = {"model": args.model, "train_images": n, "test_images": len(dataset.test), "epochs": args.epochs}
    notes = (
        "seed_spread = largest difference between two seeds of one precision; parity when |mean bf16 error - "
        "mean fp32 error| <= seed_spread; scoring_check: the next pool images scored by the learner (float32) "
        "and by the same model under bf16 autocast"
    )
    record.update(seeds=args.seeds, pool_images=pool_n, order=order, runs=runs, errors=errors, **verdict, notes=notes)
    write_results("parity_" + args.model, args, device, record)


if __name__ == "__main__":
    main()
