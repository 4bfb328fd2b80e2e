"""VDCNN on short texts: the paper's 1,014 characters vs ``--target-options max_length=256``.

Both arms train the same VDCNN with the svpkit torch learner on the same SST-2 sentences (the
first ``--train`` of ``shared/data/sst2``), same seed, in one process, interleaved (long, short,
short, long, …), and score the test split. k-max pooling makes the network independent of the
length, so the arms differ only in how much padding the convolutions run over. Reported: seconds
per epoch and per inference pass, their ratio, how many texts the shorter length truncates, and
the test error of each arm (one seed: a sanity check, not a comparison).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, add_size_options, base_parser, print_table, setup, sized_config, write_results  # noqa: E402
from benchmarks.roofline import (  # noqa: E402
    measure_peaks,
    percent_text,
    precision_of,
    roofline,
    training_flops_per_image,
)

PRESETS = {
    "cpu": {"train": 2000, "epochs": 1, "repeats": 2},
    "gpu": {"train": 20000, "epochs": 2, "repeats": 3},
}


def main() -> None:
    p = base_parser(__doc__ or "")
    p.add_argument("--model", default="vdcnn9")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    p.add_argument("--short", type=int, default=256, help="the short arm's max_length")
    add_size_options(p)
    args = p.parse_args()
    device, preset = setup(args)
    cfg = sized_config(PRESETS, preset, args)

    from svpkit.data.text_csv import load_text_csv
    from svpkit.errors import SvpkitError
    from svpkit.learners import make_learner
    from svpkit.models.vdcnn import MAX_LENGTH
    from svpkit.plugins import get_plugins
    from svpkit.protocols import LearnerOptions
    from svpkit.timing import Timer

    try:
        data = load_text_csv(args.data).limited(cfg["train"], None)
    except SvpkitError as exc:
        sys.exit(f"error: {exc}")
    spec = get_plugins().models.get(args.model)
    indices = np.arange(len(data.train), dtype=np.int64)
    arms = {"long": MAX_LENGTH, "short": args.short}
    learners = {
        name: make_learner(
            spec,
            data,
            LearnerOptions(seed=args.seed, device=str(device), epochs=cfg["epochs"], extra={"max_length": length}),
        )
        for name, length in arms.items()
    }
    for learner in learners.values():
        learner.warm_up()  # type: ignore[attr-defined]
    peaks = measure_peaks(device)
    flops = {name: training_flops_per_image(learner) for name, learner in learners.items()}
    fit_s: dict[str, list[float]] = {name: [] for name in arms}
    infer_s: dict[str, list[float]] = {name: [] for name in arms}
    errors: dict[str, float] = {}
    order = [n for i in range(cfg["repeats"]) for n in (("long", "short") if i % 2 == 0 else ("short", "long"))]
    for name in order:
        learner = learners[name]
        with Timer(learner.device) as t_fit:
            learner.fit(indices)
        with Timer(learner.device) as t_inf:
            learner.predict_proba(None, "test")
        fit_s[name].append(t_fit.seconds / cfg["epochs"])
        infer_s[name].append(t_inf.seconds)
        errors[name] = learner.error("test")
    lengths = np.array([len(t) for t in (*data.train.x, *data.test.x)])
    truncated = int((lengths > args.short).sum())
    rows: list[list[Any]] = []
    result: dict[str, Any] = {"config": {**cfg, "model": args.model, "short": args.short, "data": args.data},
                              "matmul_peaks": peaks}  # fmt: skip
    for name, length in arms.items():
        epoch, infer = statistics.median(fit_s[name]), statistics.median(infer_s[name])
        precision = precision_of(learners[name])
        rl: dict[str, Any] = {
            "precision": precision,
            **roofline(flops[name], len(data.train) / epoch, peaks[precision]["gflops"]),
        }
        achieved = f"{rl['achieved_gflops']:.1f} ({percent_text(rl['fraction_of_peak'], 0)})"
        rows.append([f"{name} ({length} chars)", epoch, infer, achieved, 100 * errors[name]])
        result[name] = {"max_length": length, "epoch_seconds": fit_s[name], "inference_seconds": infer_s[name],
                        "test_error": errors[name], "flops_per_image": flops[name], "roofline": rl}  # fmt: skip
    speedup = statistics.median(fit_s["long"]) / statistics.median(fit_s["short"])
    infer_speedup = statistics.median(infer_s["long"]) / statistics.median(infer_s["short"])
    result.update(epoch_speedup=speedup, inference_speedup=infer_speedup, truncated_texts=truncated,
                  texts=int(lengths.size), longest_text=int(lengths.max()))  # fmt: skip
    print_table(
        f"{args.model} on {len(data.train)} SST-2 sentences ({device}), median of {cfg['repeats']}",
        ["arm", "s / epoch", "s / test pass", "GFLOP/s (of peak)", "test error %"],
        rows,
    )
    print(f"epoch speed-up {speedup:.2f}x, inference speed-up {infer_speedup:.2f}x; "
          f"{truncated} of {lengths.size} texts longer than {args.short} characters (longest {lengths.max()})")  # fmt: skip
    write_results(f"text_{args.model}", args, device, result)


if __name__ == "__main__":
    main()
