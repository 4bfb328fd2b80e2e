"""A rank's memory in one selection round under ``torchrun --nproc_per_node 2`` against one process (CPU, gloo).

What grows with the pool in a round is the folder's listing (file list and labels), the pool's
index array, the selector's per-example reductions, what is gathered across ranks and the pool's
scores. This benchmark loads an ImageNet-layout folder (``--root``: streamed, 32 px; the pixel
statistics from a cache given by ``--stats-from``, so no decoding pass), builds the round's pool as
the active-learning loop does (``--initial`` random labeled images), fills the least-confidence
context and selects ``--k`` — the same functions the loop calls (``fill_selection_context``,
``select_batch``) — and samples the process's proportional memory (PSS, ``/proc/PID/smaps_rollup``
as ``bench_data_scale.PeakRss`` does) throughout, in three arms, each in fresh processes:

* ``one``: one process;
* ``ranks``: 2 ranks (what svpkit does now: each rank keeps its shard's reductions, exchanges only
  candidates, rank 0 alone gathers the pool's scores; the listing is one memory-mapped file that the
  ranks share, ``svpkit.data.shared_listing``, which local rank 0 alone lists, spooling it into that
  file, while the other rank waits and maps it, ``svpkit.data.listing_handoff``);
* ``ranks before``: 2 ranks as before the sharded reductions (every rank lists the folder, holds a
  private listing and gathers the whole pool's reductions).

``--arms`` picks some of them. The peak is sampled over the load (``peak_load_pss_mib``) and over
the rest of the round (``peak_round_pss_mib``) apart; ``listing_phase`` says whether the process
listed the folder (``listing``) or waited for local rank 0's (``listing_wait``).

The selector model is a stand-in: the softmax of a fixed function of (training index, class) per
row, 1,000 classes, scored in batches of 1,024 rows as a streaming learner is (the CPU learner's
inference batch; :class:`StreamedStandIn`), the pool index the loop's (``pool_index``: int32). A model
adds the same fixed memory in every arm and the decoding workers stream; neither grows with the
pool, and scoring 1.28M real images takes hours on 2 cores. The picks of all arms must be equal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_data_scale import PeakRss, _memory_kib  # noqa: E402
from benchmarks.common import print_table, write_results  # noqa: E402

CLASSES = 1000
BATCH = 1024
"""Rows per scored batch of the stand-in (the CPU learner's inference batch)."""
ARMS = ("one", "ranks", "ranks before")


class StandIn:
    """A selector model's softmax without a model: row ``i``, class ``j`` from sin(0.618 i + 0.377 j)."""

    device = torch.device("cpu")

    def predict_proba(self, rows: np.ndarray, split: str = "train") -> torch.Tensor:
        i = torch.from_numpy(np.asarray(rows, dtype=np.float32))[:, None]
        j = torch.arange(CLASSES, dtype=torch.float32)[None, :]
        return torch.softmax(torch.sin(i * 0.618 + j * 0.377) * 4, dim=1)


class StreamedStandIn(StandIn):
    """:class:`StandIn` scored as a streaming learner is: batches of :data:`BATCH` rows
    (``StreamsBatches``: the scoring pass reduces each batch as it comes), the C heap's free pages
    given back every ``TRIM_EVERY`` batches as the streamed image pass does
    (svpkit.data.streaming). Through the block path instead, each call would make 16,384 × 1,000
    softmax rows at once (65 MB and its temporaries): a transient a real streamed round never has."""

    def input_batches(self, indices: np.ndarray | None = None, split: str = "train") -> Iterator[torch.Tensor]:
        from svpkit.data.streaming import TRIM_EVERY
        from svpkit.runtime import release_free_memory

        rows = np.asarray(indices if indices is not None else [], dtype=np.int64)
        for step, start in enumerate(range(0, len(rows), BATCH), 1):
            yield torch.from_numpy(rows[start : start + BATCH])
            if step % TRIM_EVERY == 0:
                release_free_memory()

    def outputs(self, x: torch.Tensor, embed: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.predict_proba(x.numpy()), None


def _pss_mib() -> float:
    return _memory_kib(os.getpid())[1] / 1024


def _mapped(address: int) -> bool:
    """Whether ``address`` lies in a file mapping of this process (not private heap)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if lo <= address < hi:
            return len(fields) > 5 and fields[5].startswith("/")
    return False


def _arm(arm: str, root: Path, initial: int, k: int) -> dict[str, Any]:
    """One process (or one rank) of ``arm``: load, fill, select, with the memory at each step."""
    torch.set_num_threads(1)
    from svpkit import parallel
    from svpkit.data import imagefolder
    from svpkit.loops.scoring import fill_selection_context, pool_index, select_batch
    from svpkit.plugins import get_plugins
    from svpkit.selectors import reductions
    from svpkit.selectors.base import SelectionContext

    info = parallel.init_from_env("cpu")
    if arm == "ranks before":  # every rank lists, a private listing per rank
        imagefolder.several_ranks = lambda: False  # type: ignore[assignment]
        imagefolder.one_lister_per_machine = lambda: False  # type: ignore[assignment]
    reductions.BLOCK = 1024
    selector = get_plugins().selectors.get("least_confidence")
    steps: dict[str, Any] = {"start_pss_mib": _pss_mib()}
    with PeakRss() as rss_load:
        t0 = time.perf_counter()
        data = imagefolder.load_imagefolder(root, size=32, stream="on", workers=0)
        steps |= {"load_seconds": time.perf_counter() - t0, "after_load_pss_mib": _pss_mib()}
    steps |= {"listing_phase": next(k for k in data.load_seconds if k.startswith("listing"))}
    steps |= {"load_phase_seconds": dict(data.load_seconds)}
    with PeakRss() as rss:
        files, labels = data.train.x.files, data.train.y  # type: ignore[union-attr]
        parts = {"file list": (files.blob, files.offsets), "labels": (labels,)}
        address = {"file list": files.blob.ctypes.data, "labels": labels.data_ptr()}
        listing = {n: sum(a.nbytes for a in arrays) for n, arrays in parts.items()}
        private = {n: 0 if _mapped(address[n]) else b for n, b in listing.items()}
        n = len(data.train)
        labeled = np.random.default_rng(0).choice(n, initial, replace=False)
        pool = pool_index(n, labeled)
        ctx = SelectionContext(pool, labeled, np.random.default_rng(1))
        t0 = time.perf_counter()
        fill_selection_context(ctx, StreamedStandIn(), selector, keep_shard=arm != "ranks before")  # type: ignore[arg-type]
        steps |= {"score_seconds": time.perf_counter() - t0, "after_score_pss_mib": _pss_mib()}
        held = sum(v.nbytes for v in ctx.per_example.values())
        t0 = time.perf_counter()
        selection, _ = select_batch(selector, ctx, k)
        steps |= {"select_seconds": time.perf_counter() - t0, "after_select_pss_mib": _pss_mib()}
        scores = np.asarray(selection.scores).nbytes
    return {
        "arm": arm,
        "rank": info.rank,
        "train_images": n,
        "pool": len(pool),
        "peak_pss_mib": max(rss_load.peak_pss_kib, rss.peak_pss_kib) / 1024,
        "peak_load_pss_mib": rss_load.peak_pss_kib / 1024,
        "peak_round_pss_mib": rss.peak_pss_kib / 1024,
        **steps,
        "bytes": {
            "listing (file list + labels)": sum(listing.values()),
            "listing private": sum(private.values()),
            "pool index": pool.nbytes,
            "reductions held": held,
            "pool scores held": scores,
        },
        "picks_head": [int(i) for i in selection.picks[:10]],
        "picks_sum": int(np.asarray(selection.picks).sum()),
    }


def _pool_bytes(r: dict[str, Any]) -> int:
    """The bytes that grow with the pool held by the process: the listing (a shared file at its
    share of the pages, 1/2 on 2 ranks), pool index and mask, reductions, pool scores."""
    b = r["bytes"]
    listing = b["listing (file list + labels)"]
    shared = listing - b["listing private"]
    share = shared // 2 if r["arm"] != "one" else shared
    return b["listing private"] + share + b["pool index"] + b["reductions held"] + b["pool scores held"]


def _launch(arm: str, args: argparse.Namespace, env: dict[str, str]) -> list[dict[str, Any]]:
    this = [str(Path(__file__).resolve()), "--arm", arm, "--root", args.root]
    this += ["--initial", str(args.initial), "--k", str(args.k)]
    if arm == "one":
        cmd = ["nice", "-n", "10", sys.executable, *this]
    else:
        cmd = ["nice", "-n", "10", sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
        cmd += this
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{arm} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return sorted(records, key=lambda r: r["rank"])


def round_arguments(p: argparse.ArgumentParser, scratch: str) -> None:
    """The options of a benchmark that loads a folder and runs one round per arm in fresh processes."""
    p.add_argument("--root", required=True, help="an ImageNet-layout folder (read only)")
    p.add_argument("--stats-from", default="", help="an SVPKIT_CACHE holding the folder's image_moments")
    p.add_argument("--initial", type=int, default=2000)
    p.add_argument("--k", type=int, default=4000)
    p.add_argument("--scratch", default=scratch, help="the benchmark's SVPKIT_CACHE")
    p.add_argument("--arm", default="", help=argparse.SUPPRESS)
    p.add_argument("--machine", default="")
    p.add_argument("--out", default="")


def scratch_env(args: argparse.Namespace) -> dict[str, str]:
    """An empty ``--scratch`` as the arms' SVPKIT_CACHE (holding ``--stats-from``'s statistics: no
    decoding pass) and the environment of the arms' processes (one thread, this repository first)."""
    scratch = Path(args.scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    if args.stats_from:
        shutil.copytree(Path(args.stats_from) / "image_moments", scratch / "image_moments")
    env = {**os.environ, "SVPKIT_CACHE": str(scratch), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    return env


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    round_arguments(p, "/tmp/svpkit_bench_shard_memory")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    args = p.parse_args()
    if args.arm:
        print(json.dumps(_arm(args.arm, Path(args.root), args.initial, args.k)), flush=True)
        return
    env = scratch_env(args)
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(var, None)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if not arms or set(arms) - set(ARMS):
        raise SystemExit(f"--arms: choose among {', '.join(ARMS)}")
    results = [r for arm in arms for r in _launch(arm, args, env)]
    picks = {(r["picks_sum"], tuple(r["picks_head"])) for r in results}
    rows = [
        [r["arm"], r["rank"], r["listing_phase"], r["peak_pss_mib"], r["start_pss_mib"], r["peak_load_pss_mib"]]
        + [r["after_load_pss_mib"], r["after_score_pss_mib"], r["after_select_pss_mib"], *r["bytes"].values()]
        for r in results
    ]
    columns = [
        "arm",
        "rank",
        "listed",
        "peak PSS MiB",
        "start",
        "load peak",
        "after load",
        "after score",
        "after select",
    ]
    print_table("memory per process", columns + list(results[0]["bytes"]), rows)
    summary = {
        "same_picks_in_every_arm": len(picks) == 1,
        "peak_pss_mib": {f"{r['arm']} rank {r['rank']}": r["peak_pss_mib"] for r in results},
        "peak_minus_start_mib": {
            f"{r['arm']} rank {r['rank']}": r["peak_pss_mib"] - r["start_pss_mib"] for r in results
        },
        "load_peak_minus_start_mib": {
            f"{r['arm']} rank {r['rank']}": r["peak_load_pss_mib"] - r["start_pss_mib"] for r in results
        },
        "pool_dependent_bytes": {f"{r['arm']} rank {r['rank']}": _pool_bytes(r) for r in results},
    }
    print(json.dumps(summary, indent=2))
    out = write_results("shard_memory", args, torch.device("cpu"), {"results": results, "summary": summary})
    text = (
        out.read_text()
        .replace(str(Path(args.root).resolve().parent), "$DATA")
        .replace(str(Path(args.scratch)), "$SCRATCH")
    )
    if args.stats_from:
        text = text.replace(str(Path(args.stats_from).resolve().parent), "$DATA")
    out.write_text(text)  # the result names no local path


if __name__ == "__main__":
    main()
