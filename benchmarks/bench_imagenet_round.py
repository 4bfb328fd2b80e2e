"""One least-confidence round on an ImageNet-layout folder (1,000 classes, 32 px JPEGs), phase by phase (CPU).

A generated folder of ``N`` training JPEGs in 1,000 class folders (and ``N // 10`` val JPEGs) is
the pool of one active-learning round through the Python API, exactly as the command line runs it::

    svpkit active-learning --dataset imagefolder --data-path ROOT --dataset-options size=32,stream=on \\
      --proxy preact_resnet20 --target preact_resnet20 --no-train-target --initial I --budgets I+K \\
      --proxy-epochs 1 --selector least_confidence

Each arm runs in a fresh process, its peak memory sampled over the process tree (the main process
and its DataLoader workers; :class:`benchmarks.bench_data_scale.PeakRss`: summed PSS, and the data
held: anonymous pages of the main process + private dirty pages of the workers):

* ``svpkit cold``: the first run on the folder (an empty ``SVPKIT_CACHE``): listing, the pixel
  statistics pass, training, scoring the pool, selecting, the proxy's val error;
* ``svpkit cached``: the same run again: the statistics come from the cache
  (:mod:`svpkit.data.stats_cache`), so the run reaches scoring after the listing and the
  cache check only;
* ``plain``: ``torchvision.datasets.ImageFolder`` + ``DataLoader`` (the same workers, batch and
  normalisation) + ``torch.inference_mode()`` over the same model (preact_resnet20, channels_last,
  float32), keeping each batch's softmax and concatenating them, then the top-k of 1 − max p:
  the loop one would write by hand.

Per arm: the seconds of each phase (load = listing + statistics; train; score; select; eval:
``round/*`` metrics of the run), scoring images/s, the time from the process's start until the
pool's scoring starts, and peak PSS / data. Two pool sizes give the pool-size-dependent memory per
pool image (the slope of the peak between them). Run it on a quiet machine for absolute numbers;
on a shared one read the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_data_scale import PeakRss, synthetic_jpegs  # noqa: E402
from benchmarks.common import print_table, write_results  # noqa: E402

CLASSES = 1000
SIZE = 32
BATCH = 1024  # the torch learner's CPU inference batch
START = time.perf_counter()


def _svpkit_arm(root: Path, initial: int, k: int, workers: int) -> dict[str, Any]:
    """One round through the Python API, with the load and the start of scoring timed from outside."""
    import svpkit
    from svpkit.contract import Metric
    from svpkit.data import base
    from svpkit.loops import scoring

    marks: dict[str, float] = {}
    load, reduced = base.load_with_options, scoring.reduced_pool

    def timed_load(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return load(*a, **kw)
        finally:
            marks["load_seconds"] = time.perf_counter() - t0

    def marked(*a: Any, **kw: Any) -> Any:
        marks.setdefault("scoring_starts_after_seconds", time.perf_counter() - START)
        return reduced(*a, **kw)

    # the API looks load_with_options up when it loads; fill_selection_context looks up reduced_pool
    base.load_with_options = timed_load  # type: ignore[assignment]
    scoring.reduced_pool = marked  # type: ignore[assignment]

    with PeakRss() as rss:
        result = svpkit.active_learning(
            dataset="imagefolder",
            data_path=str(root),
            dataset_options=f"size={SIZE},stream=on,workers={workers}",
            selector="least_confidence",
            proxy="preact_resnet20",
            target="preact_resnet20",
            train_target=False,
            initial=str(initial),
            budgets=str(initial + k),
            proxy_epochs=1,
            device="cpu",
            track=False,
        )
    m = {key: values[-1][1] for key, values in result.tracker.metrics.items()}
    pool = _count(root, "train") - result.rounds[0].labeled_before
    phases = {
        "load": marks.get("load_seconds", float("nan")),
        "train": m[Metric.ROUND_TRAIN_SECONDS] + m[Metric.ROUND_WARMUP_SECONDS],
        "score": m[Metric.ROUND_INFERENCE_SECONDS],
        "select": m[Metric.ROUND_SELECTION_SECONDS],
        "eval": m[Metric.ROUND_EVAL_SECONDS],
    }
    return {
        "phases_seconds": phases,
        "pool": pool,
        "scoring_images_per_second": pool / phases["score"],
        "scoring_starts_after_seconds": marks.get("scoring_starts_after_seconds"),
        "proxy_val_error": m[Metric.SELECTOR_MODEL_ERROR],
        "proxy_val_interval": [m[Metric.SELECTOR_MODEL_ERROR_LOW], m[Metric.SELECTOR_MODEL_ERROR_HIGH]],
        "picks": [int(i) for i in result.selected[0][:5]],
        "peak_pss_mib": rss.peak_pss_kib / 1024,
        "peak_data_mib": rss.peak_data_kib / 1024,
    }


def _count(root: Path, split: str) -> int:
    return sum(1 for _ in (root / split).glob("*/*.jpg"))


def _plain_arm(root: Path, k: int, workers: int) -> dict[str, Any]:
    """ImageFolder + DataLoader + inference_mode over preact_resnet20; softmax kept, then top-k."""
    from torchvision import datasets, transforms

    from svpkit.plugins import get_plugins

    spec = get_plugins().models.get("preact_resnet20")
    assert spec.build is not None
    torch.manual_seed(0)
    model = spec.build(CLASSES, (SIZE, SIZE, 3)).eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    tf = transforms.Compose(
        [
            transforms.Resize(SIZE),
            transforms.CenterCrop(SIZE),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        ]
    )
    with PeakRss() as rss:
        t0 = time.perf_counter()
        folder = datasets.ImageFolder(str(root / "train"), transform=tf)
        loader = torch.utils.data.DataLoader(folder, batch_size=BATCH, num_workers=workers, shuffle=False)
        listed = time.perf_counter()
        probs = []
        with torch.inference_mode():
            for xb, _ in loader:
                probs.append(torch.softmax(model(xb.contiguous(memory_format=torch.channels_last)), 1))
        scored = time.perf_counter()
        picks = torch.topk(1 - torch.cat(probs).max(1).values, k).indices
        done = time.perf_counter()
    n = len(folder)
    return {
        "phases_seconds": {"load": listed - t0, "score": scored - listed, "select": done - scored},
        "pool": n,
        "scoring_images_per_second": n / (scored - listed),
        "picks": picks[:5].tolist(),
        "peak_pss_mib": rss.peak_pss_kib / 1024,
        "peak_data_mib": rss.peak_data_kib / 1024,
    }


def _run(arm: str, root: Path, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--arm", arm, "--root", str(root), "--workers", str(args.workers)]
    cmd += ["--initial", str(args.initial), "--k", str(args.k)]
    env = dict(os.environ, SVPKIT_CACHE=str(cache), OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"arm {arm} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pools", default="20000,40000", help="training pool sizes (two give the memory per image)")
    p.add_argument("--initial", type=int, default=2000, help="initial labeled set")
    p.add_argument("--k", type=int, default=2000, help="the round's batch")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (both pipelines)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--scratch", default="/tmp/svpkit_bench_imagenet_round")
    p.add_argument("--arm", default="", help=argparse.SUPPRESS)
    p.add_argument("--root", default="", help=argparse.SUPPRESS)
    p.add_argument("--machine", default="")
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.arm == "plain":
        print(json.dumps(_plain_arm(Path(args.root), args.k, args.workers)))
        return
    if args.arm:
        print(json.dumps(_svpkit_arm(Path(args.root), args.initial, args.k, args.workers)))
        return
    scratch = Path(args.scratch)
    results = []
    load_before = os.getloadavg()
    for n in (int(v) for v in args.pools.split(",") if v):
        t0 = time.perf_counter()
        root = synthetic_jpegs(scratch / f"imnet_{n}", n, SIZE, classes=CLASSES)
        print(f"folder of {n:,} JPEGs in {CLASSES} classes ready in {time.perf_counter() - t0:.1f} s", flush=True)
        cache = scratch / f"cache_{n}"
        subprocess.run(["rm", "-rf", str(cache)], check=True)
        for arm in ("svpkit cold", "svpkit cached", "plain"):
            record = {"pool_images": n, "arm": arm, **_run(arm, root, cache, args)}
            print(json.dumps(record), flush=True)
            results.append(record)
    summary = _summary(results)
    rows = [
        [
            r["pool_images"],
            r["arm"],
            *(r["phases_seconds"].get(ph, float("nan")) for ph in ("load", "train", "score", "select", "eval")),
            r["scoring_images_per_second"],
            r.get("scoring_starts_after_seconds") or float("nan"),
            r["peak_pss_mib"],
        ]
        for r in results
    ]
    columns = [
        "pool",
        "arm",
        "load s",
        "train s",
        "score s",
        "select s",
        "eval s",
        "score img/s",
        "to scoring s",
        "PSS MiB",
    ]
    print_table("one least-confidence round, 1,000 classes, 32 px", columns, rows)
    print(json.dumps(summary, indent=1))
    write_results(
        "imagenet_round",
        args,
        torch.device("cpu"),
        {
            "classes": CLASSES,
            "size": SIZE,
            "batch_size": BATCH,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "results": results,
            "summary": summary,
        },
    )


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Scoring images/s against the plain loop per pool, and the peak's slope between the two pools."""
    by = {(r["pool_images"], r["arm"]): r for r in results}
    pools = sorted({r["pool_images"] for r in results})
    out: dict[str, Any] = {"scoring_ratio_vs_plain": {}, "bytes_per_pool_image": {}}
    for n in pools:
        plain = by[(n, "plain")]["scoring_images_per_second"]
        out["scoring_ratio_vs_plain"][n] = {
            arm: by[(n, arm)]["scoring_images_per_second"] / plain for arm in ("svpkit cold", "svpkit cached")
        }
    if len(pools) >= 2:
        lo, hi = pools[0], pools[-1]
        for arm in ("svpkit cold", "svpkit cached", "plain"):
            for key in ("peak_pss_mib", "peak_data_mib"):
                slope = (by[(hi, arm)][key] - by[(lo, arm)][key]) * 2**20 / (hi - lo)
                out["bytes_per_pool_image"][f"{arm} ({key[5:-4]})"] = slope
    return out


if __name__ == "__main__":
    main()
