"""Greedy k-center at scale: svpkit's running minimum against an N×k distance-matrix version.

* ``running-min`` — ``svpkit.selectors.k_center.greedy_k_center``: O(N) extra memory (one float
  per pool point), one matrix-vector product per pick, no host synchronisation per pick;
  ``running-min bf16`` stores the features in bfloat16 (distances still accumulate in float32) and
  reports how many picks agree with float32 features (rounded features may reorder near-ties).
* ``matrix`` — the straightforward implementation: it keeps the N×(m+k) matrix of distances from
  every pool point to every centre (the m initial ones and each pick), fills one column per pick
  with ``torch.cdist`` and reads the argmax on the host (``.item()``) every step. Same picks,
  O(N·(m+k)) memory. The benchmark runs it at the largest k that fits (halving k after an
  out-of-memory error) and reports where it ran out.

Both run on the same random features (Gaussian, seeded) in one process; ``--repeats 2`` runs
them in the order A B B A. Presets: ``cpu`` 200,000 × 128 with 1,000 initial centres, 250
picks (a few minutes on 2 busy cores); ``gpu`` 1,000,000 × 512 with 1,000 initial centres, 100,000 picks (plus a host-streamed
run of 1,000 picks for pools larger than GPU memory).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    base_parser,
    peak_memory_bytes,
    peak_memory_reset,
    print_table,
    setup,
    write_results,
)

PRESETS = {
    "cpu": {"n": 200_000, "dim": 128, "initial": 1000, "k": 250, "repeats": 2, "stream_k": 0},
    "gpu": {"n": 1_000_000, "dim": 512, "initial": 1000, "k": 100_000, "repeats": 1, "stream_k": 1000},
}


def matrix_k_center(pool: torch.Tensor, centers: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The straightforward version: an N×(m+k) distance matrix, one cdist column per pick."""
    n, m = pool.shape[0], centers.shape[0]
    dist = torch.empty((n, m + k), dtype=torch.float32, device=pool.device)
    dist[:, :m] = torch.cdist(pool, centers).square_()
    min_d = dist[:, :m].min(dim=1).values
    picks = []
    for step in range(k):
        i = int(torch.argmax(min_d).item())
        picks.append(i)
        dist[:, m + step] = torch.cdist(pool, pool[i : i + 1]).square_().squeeze(1)
        torch.minimum(min_d, dist[:, m + step], out=min_d)
        min_d[i] = -1.0
    return torch.tensor(picks, device=pool.device), dist


def _available_host_bytes() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 2**62


def _time(device: torch.device, fn: Any) -> tuple[float, Any]:
    from svpkit.timing import Timer

    peak_memory_reset(device)
    with Timer(device) as t:
        out = fn()
    return t.seconds, out


def _largest_matrix_run(
    device: torch.device,
    pool: torch.Tensor,
    centers: torch.Tensor,
    k: int,
    reference: torch.Tensor | None,
    oom: list[dict[str, Any]],
) -> dict[str, Any] | None:
    """The matrix version at the largest number of picks up to ``k`` that fits (halving after an
    out-of-memory error, each recorded in ``oom``); None when not even one pick fits."""
    n, m = pool.shape[0], centers.shape[0]
    kk = k
    while kk >= 1:
        need = n * (m + kk) * 4
        try:
            if device.type == "cpu" and need > 0.8 * _available_host_bytes():
                raise MemoryError(f"needs {need / 2**30:.1f} GiB")
            secs, (picks, dist) = _time(device, lambda kk=kk: matrix_k_center(pool, centers, kk))
            del dist
            same = bool(torch.equal(picks, reference[:kk].to(picks.device))) if reference is not None else None
            return {
                "seconds": secs,
                "picks": kk,
                "peak_bytes": peak_memory_bytes(device),
                "matrix_bytes": need,
                "extra_bytes": need + n * 4,
                "same_picks_as_running_min": same,
            }
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
            if "memory" not in str(exc).lower() and not isinstance(exc, torch.OutOfMemoryError | MemoryError):
                raise
            oom.append({"picks": kk, "matrix_bytes": need, "error": str(exc).splitlines()[0][:200]})
            print(f"matrix: out of memory at {kk:,} picks ({need / 2**30:.1f} GiB)")
            if device.type == "cuda":
                torch.cuda.empty_cache()
            kk //= 2
    return None


def _summary(rs: list[dict[str, Any]]) -> dict[str, Any]:
    """The last run of an implementation with the mean seconds of all and ms per pick."""
    if not rs:
        return {}
    secs = statistics.fmean(r["seconds"] for r in rs)
    return {**rs[-1], "seconds": secs, "ms_per_pick": 1000 * secs / rs[-1]["picks"]}


def print_summary(
    runs: dict[str, list[dict[str, Any]]], stream: dict[str, Any] | None, device: torch.device, n: int, dim: int, m: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Print the table; the running-min and matrix summaries."""
    rm, bf, mx = (_summary(runs[name]) for name in ("running-min", "running-min bf16", "matrix"))
    rows = []
    for name, s in (("running-min (svpkit, fp32)", rm), ("running-min (svpkit, bf16 storage)", bf), ("N×k matrix", mx)):
        if not s:
            rows.append([name, "out of memory", "-", "-", "-", "-", "-"])
            continue
        peak = s.get("peak_bytes")
        rows.append(
            [
                name,
                f"{s['picks']:,}",
                s["seconds"],
                s["ms_per_pick"],
                f"{s['extra_bytes'] / 2**20:,.1f}",
                f"{peak / 2**20:,.0f}" if peak else "-",
                rm["ms_per_pick"] and s["ms_per_pick"] / rm["ms_per_pick"],
            ]
        )
    if stream:
        rows.append(
            [
                "running-min, pool streamed from host",
                f"{stream['picks']:,}",
                stream["seconds"],
                1000 * stream["seconds"] / stream["picks"],
                f"{3 * n * 4 / 2**20:,.1f}",
                f"{stream['peak_bytes'] / 2**20:,.0f}",
                "-",
            ]
        )
    print_table(
        f"greedy k-center, {n:,} × {dim}, {m:,} initial centres, {device}",
        ["implementation", "picks", "seconds", "ms / pick", "extra MiB", "peak GPU MiB", "time / running-min"],
        rows,
    )
    return rm, mx


def _streamed_run(
    device: torch.device, pool: torch.Tensor, centers: torch.Tensor, k: int, reference: torch.Tensor | None
) -> dict[str, Any]:
    """Running-min picks from a host-resident pool streamed through the GPU chunk by chunk."""
    from svpkit.selectors.k_center import greedy_k_center

    host_pool = pool.cpu()
    secs, (picks, _) = _time(device, lambda: greedy_k_center(host_pool, centers, k, device=device))
    same = bool(torch.equal(picks, reference[:k])) if reference is not None else None
    stream = {"seconds": secs, "picks": k, "peak_bytes": peak_memory_bytes(device), "same_picks": same}
    print("running-min, pool streamed from host", stream)
    return stream


def _measure(
    order: list[str],
    device: torch.device,
    pool: torch.Tensor,
    pool_bf16: torch.Tensor,
    centers: torch.Tensor,
    k: int,
    matrix_k: int,
) -> tuple[dict[str, list[dict[str, Any]]], torch.Tensor | None, list[dict[str, Any]]]:
    """Every timed run in ``order``; (runs by implementation, the fp32 picks, the matrix's out-of-memory steps)."""
    from svpkit.selectors.k_center import greedy_k_center

    n = pool.shape[0]
    runs: dict[str, list[dict[str, Any]]] = {"running-min": [], "running-min bf16": [], "matrix": []}
    reference: torch.Tensor | None = None
    matrix_oom: list[dict[str, Any]] = []
    for which in order:
        if which == "running-min":
            secs, (picks, _) = _time(device, lambda: greedy_k_center(pool, centers, k))
            reference = picks
            runs[which].append(
                {"seconds": secs, "picks": k, "peak_bytes": peak_memory_bytes(device), "extra_bytes": 3 * n * 4}
            )
        elif which == "running-min bf16":
            secs, (picks, _) = _time(device, lambda: greedy_k_center(pool_bf16, centers, k))
            agree = float((picks == reference).float().mean()) if reference is not None else float("nan")
            runs[which].append(
                {
                    "seconds": secs,
                    "picks": k,
                    "peak_bytes": peak_memory_bytes(device),
                    "extra_bytes": 3 * n * 4,
                    "agreement_with_fp32": agree,
                }
            )
        else:
            record = _largest_matrix_run(device, pool, centers, matrix_k, reference, matrix_oom)
            if record is not None:
                runs[which].append(record)
        print(which, runs[which][-1] if runs[which] else "-")

    return runs, reference, matrix_oom


def main() -> None:
    p = base_parser(__doc__ or "")
    p.add_argument("--n", type=int, default=None, help="pool size")
    p.add_argument("--dim", type=int, default=None, help="feature dimension")
    p.add_argument("--initial", type=int, default=None, help="initial centres")
    p.add_argument("--k", type=int, default=None, help="picks")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--stream-k", type=int, default=None, help="picks for the host-streamed run (CUDA; 0: skip)")
    p.add_argument("--matrix-k", type=int, default=None, help="picks for the matrix version (default: --k)")
    args = p.parse_args()
    device, preset = setup(args)
    cfg = {**PRESETS[preset]}
    for key in ("n", "dim", "initial", "k", "repeats", "stream_k"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    n, dim, m, k = cfg["n"], cfg["dim"], cfg["initial"], cfg["k"]

    from svpkit.selectors.k_center import greedy_k_center

    g = torch.Generator(device="cpu").manual_seed(args.seed)
    features = torch.randn(n + m, dim, generator=g)
    pool, centers = features[:n].to(device), features[n:].to(device)
    pool_bf16 = pool.to(torch.bfloat16)
    print(f"greedy k-center: pool {n:,} × {dim}, {m:,} initial centres, {k:,} picks, device {device}")

    # One-off costs (allocator, BLAS/cuBLAS handles, kernels) are paid here, outside the timings.
    warmup_seconds, _ = _time(
        device,
        lambda: (
            greedy_k_center(pool[:1000], centers[:10], 2),
            greedy_k_center(pool_bf16[:1000], centers[:10], 2),
            matrix_k_center(pool[:1000], centers[:10], 2),
        ),
    )
    print(f"warm-up: {warmup_seconds:.2f} s (not in the timings below)")
    pairs = (["running-min", "matrix"] if i % 2 == 0 else ["matrix", "running-min"] for i in range(int(cfg["repeats"])))
    order = [*(which for pair in pairs for which in pair), "running-min bf16"]
    runs, reference, matrix_oom = _measure(order, device, pool, pool_bf16, centers, k, args.matrix_k or k)
    stream = None
    if device.type == "cuda" and cfg["stream_k"]:
        stream = _streamed_run(device, pool, centers, int(cfg["stream_k"]), reference)

    rm, mx = print_summary(runs, stream, device, n, dim, m)
    write_results(
        "k_center",
        args,
        device,
        {
            "preset": preset,
            "n": n,
            "dim": dim,
            "initial_centres": m,
            "picks": k,
            "warmup_seconds": warmup_seconds,
            "order": order,
            "runs": runs,
            "matrix_out_of_memory": matrix_oom,
            "streamed": stream,
            "speedup_per_pick_matrix_over_running_min": (
                mx["ms_per_pick"] / rm["ms_per_pick"] if mx and rm else float("nan")
            ),
            "notes": (
                "extra_bytes = memory beyond the features, computed (running-min: min distances, their initial "
                "copy and squared norms; matrix: the N x (m+k) matrix and the minima); peak_bytes = "
                "torch.cuda.max_memory_allocated including the pool (CUDA only)"
            ),
        },
    )


if __name__ == "__main__":
    main()
