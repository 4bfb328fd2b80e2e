"""Per-batch reductions under ``torchrun --nproc_per_node 2`` (gloo): each rank scores only its
shard of a streamed image folder, and the picks equal one process's for least confidence, margin
with class balance, entropy, BALD, MC entropy, BADGE (whose full softmax is gathered block by block
into a memory-mapped file) and greedy k-center (each rank keeps only its shard of the pool
embeddings).

What a rank holds that grows with the pool falls with its shard, to the byte: the top-k selectors'
reductions are its shard's rows only and only the shards' candidates are exchanged (at most 2k
per rank, whatever the pool: svpkit.selectors.shard_top_k); the pool's scores are gathered on rank
0 alone, which logs them; k-center's pool embeddings are its shard's rows; the folder's listing
(file list and labels) is one machine-wide memory-mapped file whose pages the two ranks share
(each rank's proportional share of them is half their size, read from /proc/self/smaps) and no
private copy, listed by local rank 0 alone (rank 1 waits for it and maps its files). Ties and class quotas (with a class short of candidates) are checked on generated
scores with many equal values. The process's peak memory at ImageNet scale is measured by
``benchmarks/bench_shard_memory.py`` (docs/scaling.md).

The selector model is the same fresh, seeded preact_resnet20 in every process (no training: DDP's
summation order is not what this checks), scoring in batches of 8. A row's float32 outputs may
differ in the last bits with the batch it is scored in, so scores are compared within rounding.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SELECTORS = ("least_confidence", "margin", "entropy", "bald", "mc_entropy", "badge", "greedy_k_center")
TOP_K = ("least_confidence", "margin", "entropy", "bald", "mc_entropy")
"""Top-k selectors of per-example scores: each rank keeps its shard, only candidates are exchanged."""
N_TRAIN = 45
K = {"entropy": 25}  # more than a rank's 18 pool examples: that rank sends all it has
"""Picks per selector (default 7)."""


def _folder(root: Path) -> None:
    from torchvision.io import write_png

    rng = np.random.default_rng(0)
    for split, n in (("train", N_TRAIN), ("val", 6)):
        for i in range(n):
            pixels = rng.integers(0, 160, size=(3, 16, 16)) + 40 * (i % 3)
            folder = root / split / f"c{i % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            write_png(torch.from_numpy(pixels.astype(np.uint8)), str(folder / f"{i:03d}.png"))


def _mapped_file(address: int) -> str | None:
    """The file mapped at ``address`` in this process (None: anonymous memory, e.g. the heap)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if lo <= address < hi:
            return fields[5] if len(fields) > 5 and fields[5].startswith("/") else None
    return None


def _listing_memory(data: Any) -> dict[str, Any]:
    """Where the training listing's arrays live: (nbytes, mapped file or None) of each."""
    files = data.train.x.files
    arrays = {
        "blob": (files.blob.nbytes, files.blob.ctypes.data),
        "offsets": (files.offsets.nbytes, files.offsets.ctypes.data),
        "labels": (data.train.y.nbytes, data.train.y.data_ptr()),
    }
    return {name: (nbytes, _mapped_file(ptr)) for name, (nbytes, ptr) in arrays.items()}


def _smaps(paths: set[str]) -> dict[str, int]:
    """Rss, Pss and the shared pages (kB) summed over this process's mappings of ``paths``."""
    total = {"Rss": 0, "Pss": 0, "Shared": 0}
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and ":" not in head[0]:  # a mapping's first line
            inside = len(head) > 5 and head[5] in paths
        elif inside and head and head[0] in ("Rss:", "Pss:", "Shared_Clean:", "Shared_Dirty:"):
            total[head[0][:-1].split("_")[0]] += int(head[1])
    return total


def _selections(root: Path) -> dict[str, Any]:
    """Each selector's picks (and what was scored and held) on this process's view of the pool."""
    from svpkit import parallel

    gather_rows = parallel.gather_rows
    try:
        return _select_all(root)
    finally:  # the counter below wraps it (this process also runs other tests)
        parallel.gather_rows = gather_rows  # type: ignore[assignment]


def _select_all(root: Path) -> dict[str, Any]:
    from svpkit import parallel
    from svpkit.data.imagefolder import load_imagefolder
    from svpkit.learners import make_learner
    from svpkit.loops.scoring import fill_selection_context, select_batch
    from svpkit.plugins import get_plugins
    from svpkit.protocols import LearnerOptions
    from svpkit.selectors.base import SelectionContext, resolve_selector_options

    data = load_imagefolder(root, size=16, stream="on", workers=0)
    spec = get_plugins().models.get("preact_resnet20")
    learner = make_learner(spec, data, LearnerOptions(seed=5, device="cpu", extra={"inference_batch_size": 8}))
    learner.model = learner.new_model()  # type: ignore[attr-defined]
    scored: list[int] = []
    batches = learner.input_batches  # type: ignore[attr-defined]

    def counted(indices: np.ndarray | None = None, split: str = "train") -> Any:
        for x in batches(indices, split):
            scored.append(len(x))
            yield x

    learner.input_batches = counted  # type: ignore[attr-defined]
    gathered: list[int] = []  # bytes of every all-gathered array (reductions, candidates)
    rows = parallel.gather_rows

    def measured(local: torch.Tensor, sizes: Any) -> torch.Tensor:
        out = rows(local, sizes)
        gathered.append(out.nbytes)
        return out

    parallel.gather_rows = measured  # type: ignore[assignment]
    labeled, pool = np.arange(0, N_TRAIN, 5), np.setdiff1d(np.arange(N_TRAIN), np.arange(0, N_TRAIN, 5))
    out: dict[str, Any] = {"listing": _listing_memory(data), "load_phases": sorted(data.load_seconds)}
    for name in SELECTORS:
        selector = get_plugins().selectors.get(name)
        mc = {"mc_samples": "3"} if name in ("bald", "mc_entropy") else {}
        ctx = SelectionContext(pool, labeled, np.random.default_rng(11), options=resolve_selector_options(selector, mc))
        scored.clear()
        gathered.clear()
        balance = name == "margin"  # class balance over the predicted classes
        fill_selection_context(ctx, learner, selector, class_balance=balance, keep_shard=True)
        reductions = sum(v.nbytes for v in ctx.per_example.values())
        proportions = np.array([3, 3, 3]) if balance else None
        selection, report = select_batch(selector, ctx, K.get(name, 7), proportions)
        scores = np.asarray(selection.scores)
        out[name] = {
            "picks": selection.picks.tolist(),
            "scores": scores.tolist(),
            "scores_bytes": scores.nbytes,
            "report": report,
            "scored_rows": sum(scored),  # BADGE: its softmax pass, then the embeddings of both sets
            "reduction_bytes": reductions,
            "embedding_bytes": ctx.pool_embeddings.nbytes if ctx.pool_embeddings is not None else 0,
            "gathered_bytes": sum(gathered),
        }
        if ctx.probabilities is not None:
            out[name]["probabilities"] = ctx.probabilities.clone()
    return out


def _ties() -> list[dict[str, Any]]:
    """Least confidence on 41 generated scores with many ties (and a class too small for its quota),
    selected from this rank's shard and, on this rank alone, from the whole pool."""
    from svpkit import parallel
    from svpkit.loops.scoring import SHARD_OPTION, select_batch
    from svpkit.plugins import get_plugins
    from svpkit.selectors.base import SelectionContext

    spec = get_plugins().selectors.get("least_confidence")
    rng = np.random.default_rng(3)
    top = torch.from_numpy(rng.integers(0, 4, 41).astype(np.float32) / 4)
    classes = torch.from_numpy(np.where(rng.random(41) < 0.1, 2, rng.integers(0, 2, 41)))
    pool, labeled = np.arange(100, 141), np.arange(100)
    start, stop = parallel.shard_range(41, parallel.dist.get_rank(), 2)
    results = []
    for proportions in (None, np.array([1, 1, 6])):  # class 2 has fewer examples than its quota 6 of k = 9
        whole = {"max_probability": top, "predicted_class": classes}
        mine = {k: v[start:stop] for k, v in whole.items()}
        one = SelectionContext(pool, labeled, np.random.default_rng(0), per_example=whole)
        ranks = SelectionContext(pool, labeled, np.random.default_rng(0), per_example=mine)
        ranks.options[SHARD_OPTION] = (start, stop)
        expected, expected_report = select_batch(spec, one, 9, proportions)
        got, report = select_batch(spec, ranks, 9, proportions)
        results.append(
            {"expected": expected.picks.tolist(), "got": got.picks.tolist(), "reports": (expected_report, report)}
        )
    return results


def _worker(root: Path, out: Path) -> None:
    from svpkit import parallel

    torch.set_num_threads(1)
    info = parallel.init_from_env("cpu")
    assert info.enabled and info.backend == "gloo"
    parallel.GATHER_BLOCK = 5  # the full softmax gathered in several uneven blocks
    result = _selections(root)
    result["ties"] = _ties()
    from svpkit.data.imagefolder import load_imagefolder

    gc.collect()  # the first load's mappings are gone: each rank maps the listing once
    data = load_imagefolder(root, size=16, stream="on", workers=0)
    files = data.train.x.files
    touched = int(files.blob.sum()) + int(files.offsets.sum()) + int(data.train.y.sum())  # every page resident
    parallel.dist.barrier()  # both ranks map and touched the listing's pages
    result["smaps"] = _smaps({path for _, path in _listing_memory(data).values() if path is not None})
    result["touched"] = touched
    parallel.dist.barrier()
    torch.save(result, out / f"rank{info.rank}.pt")


@pytest.mark.slow
def test_two_ranks_pick_what_one_process_picks(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    _folder(root)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MLFLOW_RUN_ID"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__]
    proc = subprocess.run(
        [*cmd, "--worker", str(root), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    one = _selections(root)
    pool = N_TRAIN - len(range(0, N_TRAIN, 5))
    shards = [pool // 2, pool - pool // 2]
    for name in SELECTORS:
        for rank in ranks:
            assert rank[name]["picks"] == one[name]["picks"], name
        if name in ("badge", "greedy_k_center"):
            continue  # checked below (its passes are the softmax's and the embeddings')
        assert one[name]["scored_rows"] == pool, name
        # Each rank scored its own shard of the pool only (18 and 18 of 36 rows).
        assert [r[name]["scored_rows"] for r in ranks] == shards, name
    _check_top_k(ranks, one, pool, shards)
    held = one["greedy_k_center"]["embedding_bytes"]  # k-center's pool embeddings: its shard's rows
    assert [r["greedy_k_center"]["embedding_bytes"] for r in ranks] == [held * s // pool for s in shards]
    for name in ("badge", "greedy_k_center"):
        for rank in ranks:
            np.testing.assert_allclose(rank[name]["scores"], one[name]["scores"], rtol=1e-5, atol=1e-6)
    for rank in ranks:  # BADGE's softmax: gathered block by block, in pool order, identical on the ranks
        torch.testing.assert_close(rank["badge"]["probabilities"], one["badge"]["probabilities"])
        assert torch.equal(rank["badge"]["probabilities"], ranks[0]["badge"]["probabilities"])
    _check_ties(ranks)
    _check_listing(ranks, one)


def _check_top_k(ranks: list[dict[str, Any]], one: dict[str, Any], pool: int, shards: list[int]) -> None:
    """Same picks and reports; a rank's reductions are its shard's bytes; only candidates are
    exchanged; the pool's scores are on rank 0 alone."""
    for name in TOP_K:
        whole = one[name]["reduction_bytes"]
        assert whole > 0 and one[name]["scores_bytes"] == 4 * pool and one[name]["gathered_bytes"] == 0, name
        k = K.get(name, 7)
        # a float32 score + an int64 position (+ an int64 class with class balance) per candidate,
        # at most min(2k, shard) of them per rank (only k without class balance), on both sides
        per_candidate = 20 if name == "margin" else 12
        bound = 2 * sum(min(2 * k if name == "margin" else k, s) for s in shards) * per_candidate
        for r, (rank, shard) in enumerate(zip(ranks, shards)):
            held = rank[name]["reduction_bytes"]
            assert held == whole * shard // pool, f"{name} rank {r}: {held} B of reductions, one process {whole} B"
            gathered = rank[name]["gathered_bytes"]
            assert 0 < gathered <= bound, f"{name} rank {r}: {gathered} B of candidates gathered (bound {bound} B)"
            assert rank[name]["report"] == one[name]["report"], name
        # rank 0 logs the pool's scores; rank 1 holds no whole-pool score vector
        assert [r[name]["scores_bytes"] for r in ranks] == [4 * pool, 0], name
        np.testing.assert_allclose(ranks[0][name]["scores"], one[name]["scores"], rtol=1e-5, atol=1e-6, err_msg=name)
    report = one["margin"]["report"]
    assert report is not None and sum(report["quotas"]) == 7 and sum(report["candidates"]) == pool


def _check_ties(ranks: list[dict[str, Any]]) -> None:
    for rank in ranks:
        plain, balanced = rank["ties"]
        assert plain["got"] == plain["expected"]  # equal scores: the lower pool position first, across shards
        assert balanced["got"] == balanced["expected"]
        expected_report, report = balanced["reports"]
        assert report == expected_report and report["short_classes"] == [2] and report["filled_from_other_classes"] > 0


def _check_listing(ranks: list[dict[str, Any]], one: dict[str, Any]) -> None:
    """One process holds the listing privately; the ranks map one file per array, shared page by
    page, which local rank 0 alone listed (rank 1 waited for it: svpkit.data.listing_handoff)."""
    private = sum(nbytes for nbytes, path in one["listing"].values() if path is None)
    assert private == sum(nbytes for nbytes, _ in one["listing"].values()) > 0
    assert one["load_phases"] == ["listing", "statistics"]
    assert [r["load_phases"] for r in ranks] == [["listing", "statistics"], ["listing_wait", "statistics"]]
    for r, rank in enumerate(ranks):
        paths = {name: path for name, (_, path) in rank["listing"].items()}
        assert all(p is not None and "/listings/" in p for p in paths.values()), paths
        assert paths == {name: path for name, (_, path) in ranks[0]["listing"].items()}  # the same files
        mine = sum(nbytes for nbytes, path in rank["listing"].values() if path is None)
        smaps = rank["smaps"]
        # every page of the listing is resident and shared by the two ranks: each one's PSS is half its RSS
        assert mine == 0 and smaps["Rss"] > 0 and smaps["Shared"] == smaps["Rss"], (
            f"rank {r}: {mine} B of the listing private (one process: {private} B); smaps {smaps}"
        )
        assert 2 * smaps["Pss"] == smaps["Rss"], f"rank {r}: listing PSS {smaps['Pss']} kB of RSS {smaps['Rss']} kB"


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker(Path(sys.argv[2]), Path(sys.argv[3]))
