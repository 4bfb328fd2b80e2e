"""Per-batch reductions under ``torchrun --nproc_per_node 2`` (gloo): each rank scores only its
shard of a streamed image folder, only the reductions are gathered, and the picks equal one
process's for least confidence, margin, entropy, BALD, class balance, BADGE (whose full softmax
is gathered block by block into a memory-mapped file) and greedy k-center (each rank keeps only
its shard of the pool embeddings).

What a rank holds that grows with the pool falls with its shard: the reductions its scoring pass
produces and the pool embeddings k-center keeps are its shard's rows only (half of one process's
bytes, to the row); the gathered reductions, one float or int per pool example, are what every
rank then shares. The process's peak memory at ImageNet scale is measured by
``benchmarks/bench_imagenet_round.py`` (docs/scaling.md).

The selector model is the same fresh, seeded preact_resnet20 in every process (no training: DDP's
summation order is not what this checks), scoring in batches of 8. A row's float32 outputs may
differ in the last bits with the batch it is scored in, so scores are compared within rounding.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SELECTORS = ("least_confidence", "margin", "entropy", "bald", "badge", "greedy_k_center")
N_TRAIN = 45


def _folder(root: Path) -> None:
    from torchvision.io import write_png

    rng = np.random.default_rng(0)
    for split, n in (("train", N_TRAIN), ("val", 6)):
        for i in range(n):
            pixels = rng.integers(0, 160, size=(3, 16, 16)) + 40 * (i % 3)
            folder = root / split / f"c{i % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            write_png(torch.from_numpy(pixels.astype(np.uint8)), str(folder / f"{i:03d}.png"))


def _selections(root: Path) -> dict[str, Any]:
    """Each selector's picks (and what was scored) on this process's view of the pool."""
    from svpkit.data.imagefolder import load_imagefolder
    from svpkit.learners import make_learner
    from svpkit.loops import scoring
    from svpkit.loops.scoring import fill_selection_context, select_batch
    from svpkit.plugins import get_plugins
    from svpkit.protocols import LearnerOptions
    from svpkit.selectors.base import SelectionContext, resolve_selector_options
    from svpkit.selectors.reductions import FULL

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
    held: list[int] = []  # bytes of what this rank's scoring pass returned (before any gather)
    reduce = scoring.reduce_examples

    def measured(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        local = reduce(*args, **kwargs)
        held.append(sum(v.nbytes for k, v in local.items() if k != FULL))
        return local

    scoring.reduce_examples = measured  # type: ignore[assignment]
    labeled, pool = np.arange(0, N_TRAIN, 5), np.setdiff1d(np.arange(N_TRAIN), np.arange(0, N_TRAIN, 5))
    out: dict[str, Any] = {}
    for name in SELECTORS:
        selector = get_plugins().selectors.get(name)
        options = resolve_selector_options(selector, {"mc_samples": "3"} if name == "bald" else {})
        ctx = SelectionContext(pool, labeled, np.random.default_rng(11), options=options)
        scored.clear()
        held.clear()
        balance = name == "margin"  # class balance over the predicted classes
        fill_selection_context(ctx, learner, selector, class_balance=balance)
        proportions = np.array([3, 3, 3]) if balance else None
        selection, _report = select_batch(selector, ctx, 7, proportions)
        out[name] = {
            "picks": selection.picks.tolist(),
            "scores": np.asarray(selection.scores).tolist(),
            "scored_rows": sum(scored),  # BADGE: its softmax pass, then the embeddings of both sets
            "held_bytes": sum(held) + (ctx.pool_embeddings.nbytes if ctx.pool_embeddings is not None else 0),
        }
        if ctx.probabilities is not None:
            out[name]["probabilities"] = ctx.probabilities.clone()
    return out


def _worker(root: Path, out: Path) -> None:
    from svpkit import parallel

    torch.set_num_threads(1)
    info = parallel.init_from_env("cpu")
    assert info.enabled and info.backend == "gloo"
    parallel.GATHER_BLOCK = 5  # the full softmax gathered in several uneven blocks
    torch.save(_selections(root), out / f"rank{info.rank}.pt")


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
    for name in SELECTORS:
        if name in ("badge", "greedy_k_center"):
            continue  # checked below (its passes are the softmax's and the embeddings')
        assert one[name]["scored_rows"] == pool, name
        for rank in ranks:
            assert rank[name]["picks"] == one[name]["picks"], name
            # A row's float32 outputs may differ in the last bits with the batch it is scored in
            # (the shards cut the pool's batches elsewhere): the same picks, scores within rounding.
            np.testing.assert_allclose(rank[name]["scores"], one[name]["scores"], rtol=1e-5, atol=1e-6, err_msg=name)
        # Each rank scored its own shard of the pool only (18 and 18 of 36 rows).
        assert [r[name]["scored_rows"] for r in ranks] == [pool // 2, pool - pool // 2], name
    for name in set(SELECTORS) - {"badge"}:  # what grows with the pool on a rank: its shard's rows
        # (BADGE's softmax is in a memory-mapped file, checked below)
        held = one[name]["held_bytes"]
        assert held > 0, name
        assert [r[name]["held_bytes"] for r in ranks] == [held * (pool // 2) // pool, held * (pool - pool // 2) // pool]
    for name in ("badge", "greedy_k_center"):
        for rank in ranks:
            assert rank[name]["picks"] == one[name]["picks"]
            np.testing.assert_allclose(rank[name]["scores"], one[name]["scores"], rtol=1e-5, atol=1e-6)
    for rank in ranks:  # BADGE's softmax: gathered block by block, in pool order, identical on the ranks
        torch.testing.assert_close(rank["badge"]["probabilities"], one["badge"]["probabilities"])
        assert torch.equal(rank["badge"]["probabilities"], ranks[0]["badge"]["probabilities"])


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker(Path(sys.argv[2]), Path(sys.argv[3]))
