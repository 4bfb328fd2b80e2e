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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_data_scale import PeakRss, synthetic_jpegs  # noqa: E402
from benchmarks.common import print_table, round_phases, write_results  # noqa: E402
from svpkit.progress import NullProgress  # noqa: E402

CLASSES = 1000
SIZE = 32
BATCH = 1024  # the torch learner's CPU inference batch
START = time.perf_counter()


def _svpkit_arm(
    root: Path,
    initial: int,
    k: int,
    workers: int,
    selector: str = "least_confidence",
    stop_at_scoring: bool = False,
    score_limit: int = 0,
) -> dict[str, Any]:
    """One round through the Python API, with the load and the start of scoring timed from outside.

    ``selector``: a name, ``name[opt=value,...]`` for its options, ``+balance`` appended for
    ``--class-balance``. ``stop_at_scoring``: the process reports and exits when the pool's scoring
    starts (what a second run on a cached folder is checked for); ``score_limit``: when that many
    pool images are scored (the round cut short: its load, training, scoring rate and peak so far)."""
    import svpkit
    from svpkit.contract import Metric
    from svpkit.data import base
    from svpkit.loops import scoring

    marks: dict[str, float] = {}
    load, reduced = base.load_with_options, scoring.reduced_pool

    def timed_load(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        data = load(*a, **kw)
        marks["load_seconds"] = time.perf_counter() - t0
        marks.update({f"{phase}_seconds": v for phase, v in data.load_seconds.items()})
        marks["train_size"] = len(data.train)
        return data

    def marked(*a: Any, **kw: Any) -> Any:
        marks.setdefault("scoring_starts_after_seconds", time.perf_counter() - START)
        if stop_at_scoring:
            print(json.dumps({**_stopped(marks, rss), "pool": len(a[1])}), flush=True)
            os._exit(0)
        marks["pool"] = len(a[1])

        def cut(seconds: float, scored: int) -> None:  # --score-limit: report what was measured, then stop
            rate = {"scoring_images_per_second": scored / seconds, "scored_before_cut": scored}
            record = {**_stopped(marks, rss), **rate, "pool": len(a[1]), "scoring_timeline": timeline}
            print(json.dumps(record), flush=True)
            os._exit(0)

        return reduced(a[0], a[1], a[2], a[3], _Timeline(timeline, rss, score_limit, cut), **kw)

    name, options, balance = _selector(selector)
    timeline: list[tuple[float, int]] = []

    # the API looks load_with_options up when it loads; fill_selection_context looks up reduced_pool
    base.load_with_options = timed_load  # type: ignore[assignment]
    scoring.reduced_pool = marked  # type: ignore[assignment]

    with PeakRss() as rss:
        result = svpkit.active_learning(
            dataset="imagefolder",
            data_path=str(root),
            dataset_options=f"size={SIZE},stream=on,workers={workers}",
            selector=name,
            selector_options=options,
            class_balance=balance,
            proxy="preact_resnet20",
            target="preact_resnet20",
            train_target=False,
            initial=str(initial),
            budgets=str(initial + k),
            proxy_epochs=1,
            device="cpu",
            track=False,
        )
    m, round_seconds = round_phases(result)
    pool = marks.get("pool", marks["train_size"] - result.rounds[0].labeled_before)  # k-center: no reduced pass
    if Metric.SELECTION_CANDIDATES in m:  # subpool=M: only the M candidates were scored
        pool = int(m[Metric.SELECTION_CANDIDATES])
    phases = {"load": marks.get("load_seconds", float("nan")), **round_seconds}
    return {
        "phases_seconds": phases,
        "pool": pool,
        "pool_size": marks["train_size"] - result.rounds[0].labeled_before,
        "scoring_images_per_second": pool / phases["score"],
        "scoring_starts_after_seconds": marks.get("scoring_starts_after_seconds"),
        "listing_seconds": marks.get("listing_seconds"),
        "statistics_seconds": marks.get("statistics_seconds"),
        "scoring_timeline": timeline,
        "proxy_val_error": m[Metric.SELECTOR_MODEL_ERROR],
        "proxy_val_interval": [m[Metric.SELECTOR_MODEL_ERROR_LOW], m[Metric.SELECTOR_MODEL_ERROR_HIGH]],
        "picks": [int(i) for i in result.selected[0][:5]],
        "peak_pss_mib": rss.peak_pss_kib / 1024,
        "peak_data_mib": rss.peak_data_kib / 1024,
    }


class _Timeline(NullProgress):
    """A progress for the pool's scoring that keeps (seconds since it started, images scored) about
    every 2 % and prints them with the peak so far to stderr (a run cut short still shows its rate)."""

    def __init__(
        self, points: list[tuple[float, int]], rss: PeakRss, limit: int = 0, cut: Callable[[float, int], None] = print
    ) -> None:
        self.points, self.rss, self.limit, self.cut = points, rss, limit, cut

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        t0, done, step = time.perf_counter(), [0, 0], max(1, (total or 1) // 50)

        def advance(n: int = 1) -> None:
            done[0] += n
            if done[0] - done[1] >= step or done[0] == total:
                done[1] = done[0]
                self.points.append((time.perf_counter() - t0, done[0]))
                print(
                    f"scored {done[0]:,}/{total:,} in {self.points[-1][0]:.0f} s, peak PSS "
                    f"{self.rss.peak_pss_kib / 1024:.0f} MiB, load {os.getloadavg()[0]:.1f}",
                    file=sys.stderr,
                    flush=True,
                )
            if self.limit and done[0] >= self.limit:
                self.cut(time.perf_counter() - t0, done[0])

        yield advance


def _selector(text: str) -> tuple[str, str | None, bool]:
    """``name[options]+balance`` → (name, options or None, class balance)."""
    balance = text.endswith("+balance")
    text = text.removesuffix("+balance")
    name, _, options = text.partition("[")
    return name, (options.rstrip("]") or None), balance


def _stopped(marks: dict[str, float], rss: PeakRss) -> dict[str, Any]:
    """What an arm stopped at the start of scoring reports."""
    return {
        "phases_seconds": {"load": marks.get("load_seconds", float("nan"))},
        "listing_seconds": marks.get("listing_seconds"),
        "statistics_seconds": marks.get("statistics_seconds"),
        "scoring_starts_after_seconds": marks["scoring_starts_after_seconds"],
        "scoring_images_per_second": float("nan"),
        "peak_pss_mib": rss.peak_pss_kib / 1024,
        "peak_data_mib": rss.peak_data_kib / 1024,
    }


def _plain_arm(root: Path, k: int, workers: int, limit: int = 0) -> dict[str, Any]:
    """ImageFolder + DataLoader + inference_mode over preact_resnet20; softmax kept, then top-k.
    ``limit``: score only the first ``limit`` images (a prefix in the folder's order)."""
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
        scored_set = torch.utils.data.Subset(folder, range(limit)) if 0 < limit < len(folder) else folder
        loader = torch.utils.data.DataLoader(scored_set, batch_size=BATCH, num_workers=workers, shuffle=False)
        listed = time.perf_counter()
        probs = []
        with torch.inference_mode():
            for xb, _ in loader:
                probs.append(torch.softmax(model(xb.contiguous(memory_format=torch.channels_last)), 1))
        scored = time.perf_counter()
        picks = torch.topk(1 - torch.cat(probs).max(1).values, k).indices
        done = time.perf_counter()
    n = len(scored_set)
    return {
        "phases_seconds": {"load": listed - t0, "score": scored - listed, "select": done - scored},
        "pool": n,
        "folder_images": len(folder),
        "scoring_images_per_second": n / (scored - listed),
        "picks": picks[:5].tolist(),
        "peak_pss_mib": rss.peak_pss_kib / 1024,
        "peak_data_mib": rss.peak_data_kib / 1024,
    }


def _run(arm: str, root: Path, cache: Path, args: argparse.Namespace, selector: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--arm", arm, "--root", str(root), "--workers", str(args.workers)]
    cmd += ["--initial", str(args.initial), "--k", str(args.k), "--selectors", selector]
    cmd += ["--plain-limit", str(args.plain_limit), "--score-limit", str(args.score_limit)]
    env = dict(os.environ, SVPKIT_CACHE=str(cache), OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)  # stderr: the arm's timeline
    if done.returncode != 0:
        raise SystemExit(f"arm {arm} failed (its stderr is above)")
    return {"load_average_after": os.getloadavg(), **json.loads(done.stdout.splitlines()[-1])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pools", default="20000,40000", help="training pool sizes (two give the memory per image)")
    p.add_argument("--initial", type=int, default=2000, help="initial labeled set")
    p.add_argument("--k", type=int, default=2000, help="the round's batch")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (both pipelines)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--scratch", default="/tmp/svpkit_bench_imagenet_round")
    p.add_argument("--val", type=int, default=0, help="val images of a generated folder (0: a tenth of the pool)")
    p.add_argument("--arms", default="svpkit cold,svpkit cached,plain", help="arms per pool (comma-separated)")
    p.add_argument(
        "--selectors",
        default="least_confidence",
        help="selectors of the svpkit arms, ';'-separated: name, name[opt=v,...], +balance for class balance",
    )
    p.add_argument("--stop-cached", action="store_true", help="the cached arm stops when the pool's scoring starts")
    p.add_argument("--score-limit", type=int, default=0, help="svpkit arms stop after scoring this many (0: all)")
    p.add_argument("--keep-cache", action="store_true", help="keep the statistics cache of an earlier run")
    p.add_argument("--plain-limit", type=int, default=0, help="the plain arm scores this prefix only (0: all)")
    p.add_argument("--arm", default="", help=argparse.SUPPRESS)
    p.add_argument("--root", default="", help=argparse.SUPPRESS)
    p.add_argument("--machine", default="")
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.arm == "plain":
        print(json.dumps(_plain_arm(Path(args.root), args.k, args.workers, args.plain_limit)))
        return
    if args.arm:
        stop = args.arm == "svpkit cached (to scoring)"
        record = _svpkit_arm(
            Path(args.root), args.initial, args.k, args.workers, args.selectors, stop, args.score_limit
        )
        print(json.dumps(record))
        return
    scratch = Path(args.scratch)
    results = []
    load_before = os.getloadavg()
    for n in (int(v) for v in args.pools.split(",") if v):
        t0 = time.perf_counter()
        root = synthetic_jpegs(scratch / f"imnet_{n}", n, SIZE, classes=CLASSES, val=args.val or None)
        print(f"folder of {n:,} JPEGs in {CLASSES} classes ready in {time.perf_counter() - t0:.1f} s", flush=True)
        cache = scratch / f"cache_{n}"
        if not args.keep_cache:
            subprocess.run(["rm", "-rf", str(cache)], check=True)
        arms = [a.strip() for a in args.arms.split(",") if a.strip()]
        for arm in arms:
            for selector in args.selectors.split(";") if arm.startswith("svpkit") else ["least_confidence"]:
                name = "svpkit cached (to scoring)" if arm == "svpkit cached" and args.stop_cached else arm
                record = {
                    "pool_images": n,
                    "arm": name,
                    "selector": selector,
                    **_run(name, root, cache, args, selector),
                }
                print(json.dumps(record), flush=True)
                results.append(record)
    summary = _summary(results)
    rows = [
        [
            r["pool_images"],
            r["arm"],
            r["selector"],
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
        "selector",
        "load s",
        "train s",
        "score s",
        "select s",
        "eval s",
        "score img/s",
        "to scoring s",
        "PSS MiB",
    ]
    print_table("one active-learning round, 1,000 classes, 32 px", columns, rows)
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
    """Per pool: each arm's scoring images/s against the plain loop's, the time to scoring, and
    each selector's peak against least confidence's; the peak's slope between the smallest and
    the largest pool per (arm, selector)."""
    by = {(r["pool_images"], r["arm"], r["selector"]): r for r in results}
    pools = sorted({r["pool_images"] for r in results})
    out: dict[str, Any] = {"scoring_ratio_vs_plain": {}, "peak_vs_least_confidence": {}, "bytes_per_pool_image": {}}
    for n in pools:
        rows = [r for r in results if r["pool_images"] == n]
        plain = by.get((n, "plain", "least_confidence"))
        lc = by.get((n, "svpkit cold", "least_confidence"))
        for r in rows:
            label = f"{r['arm']} {r['selector']}"
            if (
                plain is not None
                and r["arm"] != "plain"
                and r["scoring_images_per_second"] == r["scoring_images_per_second"]
            ):
                ratio = r["scoring_images_per_second"] / plain["scoring_images_per_second"]
                out["scoring_ratio_vs_plain"].setdefault(n, {})[label] = ratio
            if lc is not None and r["arm"].startswith("svpkit cached") and r["selector"] == "least_confidence":
                # no second load pass: the second run reaches scoring within 60 s of the first's listing
                late = r["scoring_starts_after_seconds"] - lc["listing_seconds"]
                out.setdefault("second_run", {})[n] = {
                    "to_scoring_minus_first_listing_s": late,
                    "within_60_s": late <= 60,
                }
            if lc is not None and r["arm"] == "svpkit cold":
                out["peak_vs_least_confidence"].setdefault(n, {})[r["selector"]] = (
                    r["peak_pss_mib"] / lc["peak_pss_mib"]
                )
    if len(pools) >= 2:
        lo, hi = pools[0], pools[-1]
        for (n, arm, selector), r in by.items():
            if n != hi or (lo, arm, selector) not in by:
                continue
            for key in ("peak_pss_mib", "peak_data_mib"):
                slope = (r[key] - by[(lo, arm, selector)][key]) * 2**20 / (hi - lo)
                out["bytes_per_pool_image"][f"{arm} {selector} ({key[5:-4]})"] = slope
    return out


if __name__ == "__main__":
    main()
