"""Each selector's memory in one round over a whole pool (CPU): the peak against least confidence's.

What grows with the pool in a round is the folder's listing, the pool's index, the selector's
per-example reductions (what it keeps per pool image: a float32 score; the predicted class with
``--class-balance``; BALD's value after its MC passes) and the pool's scores. This benchmark loads an
ImageNet-layout folder (``--root``: streamed, 32 px; the pixel statistics from the cache given by
``--stats-from``, so no decoding pass), builds the round's pool as the active-learning loop does
(``--initial`` random labeled images; ``svpkit.loops.scoring.pool_index``), fills the selector's
context over the **whole** pool and selects ``--k`` through the loop's own functions
(``fill_selection_context`` with ``keep_shard`` as the loop passes it, ``select_batch`` with the
labeled set's class proportions for ``+balance``, ``check_picks``), and samples the process's
proportional memory (PSS, :class:`benchmarks.bench_data_scale.PeakRss`) and its anonymous memory
(``data``: the heap, which does not move with what other processes map as PSS does) throughout:
over the whole arm and, apart, over the round (fill + select, started after the load). One fresh
process per arm.

The selector model is :class:`benchmarks.bench_shard_memory.StandIn` (the softmax of a fixed
function of (training index, class), 1,000 classes, in blocks of 1,024 rows) with penultimate
features (a fixed function of (index, dimension), ``DIM`` of them) and a final ``nn.Linear``
(seeded): BALD's MC dropout then runs exactly as for a learner whose model has no dropout layers,
dropout on each block's features with the masks of :func:`svpkit.selectors.bald.keep_mask` (seeded
from the selection RNG), then that linear head, ``mc_samples`` times. Greedy k-center and BADGE
(``subpool=M``) embed with the same features. A real proxy adds a fixed amount (its weights, its
activations, the decoding workers) that does not grow with the pool; the real model's cut rounds are
``benchmarks/bench_imagenet_round.py --score-limit``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_data_scale import PeakRss, _memory_kib  # noqa: E402
from benchmarks.bench_imagenet_round import _selector  # noqa: E402
from benchmarks.bench_shard_memory import CLASSES, StandIn, _pss_mib, round_arguments, scratch_env  # noqa: E402
from benchmarks.common import print_table, write_results  # noqa: E402

DIM = 64
SELECTORS = (
    "least_confidence;margin;entropy;bald[mc_samples=10];least_confidence+balance;"
    "greedy_k_center[subpool=5000];badge[subpool=5000]"
)
REFERENCE = "least_confidence"


class StandInWithHead(StandIn):
    """:class:`StandIn` with penultimate features (row ``i``, dimension ``j``: cos(0.414 i + 0.271 j))
    and a final linear layer ``model`` (``DIM`` → 1,000, seeded), what MC dropout and BADGE read."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(DIM, CLASSES))

    def embed(self, rows: np.ndarray, split: str = "train") -> torch.Tensor:
        i = torch.from_numpy(np.asarray(rows, dtype=np.float32))[:, None]
        j = torch.arange(DIM, dtype=torch.float32)[None, :]
        return torch.cos(i * 0.414 + j * 0.271)


def _data_mib() -> float:
    """The anonymous memory of this process (MiB): what it holds, whatever maps the same libraries."""
    return _memory_kib(os.getpid())[2] / 1024


def _held(ctx: Any) -> dict[str, Any]:
    """The bytes of what the filled context holds, by kind (the softmax file: page cache, not heap)."""
    tensors = {
        "reductions held": list(ctx.per_example.values()),
        "embeddings held": [t for t in (ctx.pool_embeddings, ctx.labeled_embeddings) if t is not None],
        "softmax file (mapped)": [ctx.probabilities] if ctx.probabilities is not None else [],
    }
    out: dict[str, Any] = {name: sum(t.nbytes for t in ts) for name, ts in tensors.items()}
    return out | {"reductions by need": {name: t.nbytes for name, t in ctx.per_example.items()}}


def _arm(text: str, root: Path, initial: int, k: int) -> dict[str, Any]:
    """One selector in this (fresh) process: load, fill over the whole pool, select; memory throughout."""
    torch.set_num_threads(1)
    from svpkit.data import imagefolder
    from svpkit.loops.scoring import check_picks, fill_selection_context, pool_index, select_batch
    from svpkit.plugins import get_plugins
    from svpkit.selectors import reductions
    from svpkit.selectors.base import SelectionContext, parse_selector_options

    reductions.BLOCK = 1024  # the CPU learner's inference batch
    name, options, balance = _selector(text)
    spec = get_plugins().selectors.get(name)
    steps: dict[str, Any] = {"start_pss_mib": _pss_mib(), "start_data_mib": _data_mib()}
    with PeakRss() as rss:
        t0 = time.perf_counter()
        data = imagefolder.load_imagefolder(root, size=32, stream="on", workers=0)
        steps |= {"load_seconds": time.perf_counter() - t0, "after_load_pss_mib": _pss_mib()}
        steps["after_load_data_mib"] = _data_mib()
        n = len(data.train)
        labeled = np.random.default_rng(0).choice(n, initial, replace=False)
        pool = pool_index(n, labeled)
        ctx = SelectionContext(pool, labeled, np.random.default_rng(1), options=parse_selector_options(spec, options))
        proportions = data.train.y[labeled].bincount(minlength=CLASSES).numpy() if balance else None
        with PeakRss() as round_rss:
            t0 = time.perf_counter()
            fill_selection_context(ctx, StandInWithHead(), spec, balance, k=k, keep_shard=True)  # type: ignore[arg-type]
            steps |= {"score_seconds": time.perf_counter() - t0, "after_score_pss_mib": _pss_mib()}
            held = _held(ctx)
            t0 = time.perf_counter()
            selection, _ = select_batch(spec, ctx, k, proportions)
            steps |= {"select_seconds": time.perf_counter() - t0, "after_select_pss_mib": _pss_mib()}
        picks = np.asarray(selection.picks, dtype=np.int64)
        check_picks(picks, pool, k, name)
    scored = len(pool) if ctx.candidates is None else len(ctx.candidates)
    return {
        "selector": text,
        "train_images": n,
        "pool": len(pool),
        "scored": scored,
        "peak_pss_mib": max(rss.peak_pss_kib, round_rss.peak_pss_kib) / 1024,  # two samplers: the higher
        "round_peak_pss_mib": round_rss.peak_pss_kib / 1024,
        "peak_data_mib": max(rss.peak_data_kib, round_rss.peak_data_kib) / 1024,
        **steps,
        "bytes": {
            "pool index": pool.nbytes,
            **held,
            "pool scores held": np.asarray(selection.scores).nbytes,
        },
        "picks_head": [int(i) for i in picks[:10]],
        "picks_sum": int(picks.sum()),
    }


def _launch(text: str, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--arm", text, "--root", args.root]
    cmd += ["--initial", str(args.initial), "--k", str(args.k)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{text} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    record = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    return {"load_average_after": os.getloadavg(), **record}


MEASURES: dict[str, Callable[[dict[str, Any]], float]] = {
    "peak": lambda r: r["peak_pss_mib"],
    "peak_minus_start": lambda r: r["peak_pss_mib"] - r["start_pss_mib"],
    "round_growth": lambda r: r["round_peak_pss_mib"] - r["after_load_pss_mib"],
    "peak_data": lambda r: r["peak_data_mib"],
    "peak_data_minus_start": lambda r: r["peak_data_mib"] - r["start_data_mib"],
}
"""What the summary compares (MiB): the PSS peak, its growth from the process's start and from
after the load (the round: fill + select), and the same peak and growth of the anonymous memory."""


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per selector, the median over the repeats of each of :data:`MEASURES` and its ratio to least
    confidence's (goal: the peak within 10 %)."""
    selectors = list(dict.fromkeys(r["selector"] for r in results))
    median = {
        m: {s: statistics.median(f(r) for r in results if r["selector"] == s) for s in selectors}
        for m, f in MEASURES.items()
    }
    ratio = {m: {s: v / values[REFERENCE] for s, v in values.items()} for m, values in median.items()}
    within = {s: abs(ratio["peak"][s] - 1) <= 0.1 for s in selectors}
    return {"median_mib": median, "vs_least_confidence": ratio, "peak_within_10_percent": within}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    round_arguments(p, "/tmp/svpkit_bench_selector_memory")
    p.add_argument("--repeats", type=int, default=1, help="runs of every arm, interleaved (the summary: medians)")
    p.add_argument("--selectors", default=SELECTORS, help="';'-separated: name, name[opt=v,...], +balance")
    p.add_argument(
        "--before", default="", help="an earlier results file of this benchmark, kept beside (a run before a fix)"
    )
    args = p.parse_args()
    if args.arm:
        print(json.dumps(_arm(args.arm, Path(args.root), args.initial, args.k)), flush=True)
        return
    scratch = Path(args.scratch)
    env = scratch_env(args) | {"SVPKIT_SCRATCH": str(scratch)}
    load_before = os.getloadavg()
    results = []
    for repeat in range(args.repeats):  # the arms in turn, so load from other jobs hits them alike
        for text in [s for s in args.selectors.split(";") if s]:
            results.append({"repeat": repeat, **_launch(text, args, env)})
            print(json.dumps(results[-1]), flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    columns = ["selector", "scored", "peak PSS MiB", "start", "after load", "round peak", "peak data", "start data"]
    rows = [
        [r["selector"], r["scored"], r["peak_pss_mib"], r["start_pss_mib"], r["after_load_pss_mib"]]
        + [r["round_peak_pss_mib"], r["peak_data_mib"], r["start_data_mib"]]
        for r in results
    ]
    print_table("one round over the whole pool, stand-in selector model", columns, rows)
    summary = _summary(results)
    print(json.dumps(summary, indent=1))
    data = str(Path(args.root).resolve().parent)  # the results name no path outside the repository
    sys.argv = [a.replace(data, "$DATA") for a in sys.argv]
    payload = {"classes": CLASSES, "stand_in_dim": DIM, "initial": args.initial, "k": args.k}
    payload |= {"load_average_before": load_before, "results": results, "summary": summary}
    if args.before:
        earlier = json.loads(Path(args.before).read_text())
        payload["before"] = {key: earlier[key] for key in ("date", "command", "results", "summary")}
    write_results("selector_memory", args, torch.device("cpu"), payload)


if __name__ == "__main__":
    main()
