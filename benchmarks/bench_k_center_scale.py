"""Greedy k-center on a 1,000,000 × 32 pool, 1,000 picks per round (issue 23's setting), CPU.

One active-learning round's selection through the real selector (``greedy_k_center``'s
``select`` with ``--selector-options``) on generated features (Gaussian, seeded) with 2,000
labeled centres, for each arm:

* ``fp32`` — the plain float32 path (the default; what svpkit did before the options existed);
* ``bf16`` / ``fp16`` — ``storage=bf16|fp16`` (16-bit embeddings, float32 arithmetic);
* ``subpool`` — ``subpool=100000`` (a random tenth of the pool per round), float32.

Each arm's round is timed whole through the selector, then again split into its two parts with
the selector's own kernels (the initial distances from the pool to the labeled centres, then
the picks; the split run must pick what the selector picked), reported as seconds per 1,000 picks. The same
process measures the machine's memory bandwidth STREAM-like (``sum`` of a 1 GiB float32 tensor:
read; ``copy_`` into another: read + write) with the same threads, between the arms, and
reports which fraction of it a pick reaches (bytes a pick must move: the features, the squared
norms, the running minima read and written). Arms run interleaved (fp32, subpool, bf16, fp16,
subpool, fp32) and the load average is recorded before and after, since the machine is shared.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, print_table, write_results  # noqa: E402

ARMS = {"fp32": "", "subpool": "subpool=100000", "bf16": "storage=bf16", "fp16": "storage=fp16"}
ORDER = ["fp32", "subpool", "bf16", "fp16", "subpool", "fp32"]


def bandwidth(gib: float = 1.0) -> dict[str, float]:
    """STREAM-like GB/s: read (sum) and copy (read + write, both counted), best of 3 each."""
    n = int(gib * 2**30 / 4)
    a = torch.ones(n)
    b = torch.empty(n)
    b.copy_(a)  # pages touched before timing
    read, copy = [], []
    for _ in range(3):
        t = time.perf_counter()
        float(a.sum())
        read.append(a.numel() * 4 / (time.perf_counter() - t) / 1e9)
        t = time.perf_counter()
        b.copy_(a)
        copy.append(2 * a.numel() * 4 / (time.perf_counter() - t) / 1e9)
    return {"read_gb_s": max(read), "copy_gb_s": max(copy), "best_gb_s": max(read + copy)}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def one_round(name: str, pool: torch.Tensor, labeled: torch.Tensor, k: int, seed: int) -> dict[str, Any]:
    """One selection round of arm ``name``: seconds, the initial distances' seconds, the picks."""
    from svpkit.plugins import get_plugins
    from svpkit.selectors import subpool
    from svpkit.selectors.base import SelectionContext, parse_selector_options
    from svpkit.selectors.k_center import CPU_WIDEN_CHUNK, greedy_picks, initial_min_distances

    spec = get_plugins().selectors.get("greedy_k_center")
    options = parse_selector_options(spec, ARMS[name])
    n = pool.shape[0]
    ctx = SelectionContext(
        pool=np.arange(n, dtype=np.int64),
        labeled=np.arange(n, n + labeled.shape[0], dtype=np.int64),
        rng=np.random.default_rng(seed),
        pool_embeddings=pool,
        labeled_embeddings=labeled,
        options=options,
    )
    t = time.perf_counter()
    selection = spec.select(ctx, k)
    seconds = time.perf_counter() - t
    # The same work split in two (the selector's kernels on the rows it saw): initial distances, picks.
    candidates = subpool.draw_candidates(
        SelectionContext(ctx.pool, ctx.labeled, np.random.default_rng(seed), options=options), k
    )
    rows = subpool.restrict(pool, candidates, options)
    chunk = 262_144 if rows.dtype == torch.float32 else CPU_WIDEN_CHUNK
    t = time.perf_counter()
    centres = subpool.stored(labeled, options).float()  # as the selector rounds them
    min_d = initial_min_distances(rows, centres, chunk, rows.device)
    initial = time.perf_counter() - t
    t = time.perf_counter()
    positions = greedy_picks(rows, min_d, k, chunk, rows.device)
    picks_s = time.perf_counter() - t
    mapped = ctx.pool[positions.numpy() if candidates is None else candidates[positions.numpy()]]
    assert mapped.tolist() == selection.picks.tolist(), "the split timing must pick what the selector picked"
    m = rows.shape[0]
    per_pick_bytes = m * rows.shape[1] * rows.element_size() + 3 * m * 4
    return {
        "arm": name,
        "options": ARMS[name],
        "candidates": m,
        "round_seconds": seconds,
        "initial_seconds": initial,
        "picks_seconds": picks_s,
        "seconds_per_1000_picks": 1000 * picks_s / k,
        "bytes_per_pick": per_pick_bytes,
        "achieved_gb_s": per_pick_bytes * k / picks_s / 1e9,
        "picks": selection.picks.tolist(),
    }


def summarise(records: list[dict[str, Any]], bw: list[dict[str, float]], k: int) -> dict[str, Any]:
    """Per arm: mean seconds per 1,000 picks, the fraction of the bandwidth, agreement with fp32."""
    best_bw = statistics.median(b["best_gb_s"] for b in bw)
    fp32_picks = next(r["picks"] for r in records if r["arm"] == "fp32")
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["arm"] for r in records):
        rs = [r for r in records if r["arm"] == name]
        per = statistics.fmean(r["seconds_per_1000_picks"] for r in rs)
        achieved = statistics.fmean(r["achieved_gb_s"] for r in rs)
        out[name] = {
            "options": rs[0]["options"],
            "candidates": rs[0]["candidates"],
            "runs": len(rs),
            "round_seconds": statistics.fmean(r["round_seconds"] for r in rs),
            "initial_seconds": statistics.fmean(r["initial_seconds"] for r in rs),
            "seconds_per_1000_picks": per,
            "seconds_per_1000_picks_each": [r["seconds_per_1000_picks"] for r in rs],
            "achieved_gb_s": achieved,
            "fraction_of_bandwidth": achieved / best_bw,
            "same_picks_every_run": all(r["picks"] == rs[0]["picks"] for r in rs),
            "picks_agreeing_with_fp32": len(set(rs[0]["picks"]) & set(fp32_picks)) / k,
        }
    return out


def main() -> None:
    p = base_parser(__doc__ or "")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--labeled", type=int, default=2000)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--bandwidth-gib", type=float, default=1.0)
    args = p.parse_args()
    torch.set_num_threads(args.threads or 1)
    device = torch.device("cpu")
    g = torch.Generator().manual_seed(args.seed)
    features = torch.randn(args.n + args.labeled, args.dim, generator=g)
    pool, labeled = features[: args.n], features[args.n :]
    load_before = load_average()
    one_round("fp32", pool[:20_000], labeled[:50], 5, args.seed)  # warm-up (allocator, kernels)
    bw, records = [bandwidth(args.bandwidth_gib)], []
    for name in ORDER:
        records.append(one_round(name, pool, labeled, args.k, args.seed))
        bw.append(bandwidth(args.bandwidth_gib))
        r = records[-1]
        print(f"{name}: round {r['round_seconds']:.1f} s, {r['seconds_per_1000_picks']:.1f} s / 1,000 picks; {bw[-1]}")
    arms = summarise(records, bw, args.k)
    base = arms["fp32"]["seconds_per_1000_picks"]
    rows = [
        [
            name,
            f"{a['candidates']:,}",
            a["round_seconds"],
            a["seconds_per_1000_picks"],
            a["fraction_of_bandwidth"],
            base / a["seconds_per_1000_picks"],
        ]
        for name, a in arms.items()
    ]
    print_table(
        f"greedy k-center {args.n:,} × {args.dim}, {args.labeled:,} labeled, {args.k:,} picks, {torch.get_num_threads()} thread(s)",
        ["arm", "candidates", "round s", "s / 1,000 picks", "of bandwidth", "speed-up"],
        rows,
    )
    write_results(
        "k_center_scale",
        args,
        device,
        {
            "n": args.n,
            "dim": args.dim,
            "labeled": args.labeled,
            "picks": args.k,
            "threads": torch.get_num_threads(),
            "order": ORDER,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "bandwidth": bw,
            "bandwidth_gb_s": statistics.median(b["best_gb_s"] for b in bw),
            "arms": arms,
            "notes": (
                "round_seconds = the selector's select(); initial_seconds and seconds_per_1000_picks = the same work "
                "split (initial distances, then the picks) and timed apart; "
                "bytes_per_pick = features + squared norms + running minima read and written; "
                "bandwidth = STREAM-like sum/copy of a 1 GiB float32 tensor, median of the best per measurement"
            ),
        },
    )


if __name__ == "__main__":
    main()
