"""The embedding store under ``torchrun --nproc_per_node 2`` (gloo, CPU): each rank embeds only its
own contiguous rows of each split into the one memory-mapped store, and every rank then reads the
whole split, equal to what one process stores; ranks that do not share the store (nodes without a
shared file system) embed the rows missing from their own.

The backbone is a small seeded convolution (its weights file verified by sha256, as every
backbone's), given to :func:`svpkit.backbones.embed.embed_splits` directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST = 21, 7


def _embed(cache: Path, weights: Path) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(train, test, rows this process encoded) of the test data set, through the store at ``cache``."""
    from svpkit.backbones.base import BackboneSpec, Preprocessing, Weights, resolve_backbone
    from svpkit.backbones.embed import embed_splits
    from svpkit.data.base import Dataset, Split
    from svpkit.data.embeddings import file_digest

    encoded: list[int] = []

    def load(path: Path, device: str):  # type: ignore[no-untyped-def]
        net = _network()
        net.load_state_dict(torch.load(path, weights_only=True))

        def encode(x: torch.Tensor) -> torch.Tensor:
            encoded.append(len(x))
            return net(x).flatten(1)

        return encode

    spec = BackboneSpec(
        "tiny_conv", "image", 5, Weights(lambda: weights, "test", "MIT", file_digest(weights)), load,
        Preprocessing(size=8, scale="minus_one_one"), batch_size=4,
    )  # fmt: skip
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.integers(0, 256, (N_TRAIN + N_TEST, 8, 8, 3), dtype=np.uint8))
    y = torch.arange(N_TRAIN + N_TEST) % 3
    data = Dataset("blobs", Split(x[:N_TRAIN], y[:N_TRAIN]), Split(x[N_TRAIN:], y[N_TRAIN:]), 3, "image", (8, 8, 3))
    _key, train, test = embed_splits(data, resolve_backbone(spec, "dtype=float32"), "cpu", root=cache)
    return np.array(train), np.array(test), encoded


def _network() -> torch.nn.Module:
    torch.manual_seed(11)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))


def _worker(cache: Path, weights: Path, out: Path) -> None:
    from svpkit import parallel

    torch.set_num_threads(1)
    info = parallel.init_from_env("cpu")
    assert info.enabled and info.backend == "gloo"
    train, test, encoded = _embed(cache, weights)
    np.savez(out / f"rank{info.rank}.npz", train=train, test=test)
    # Two "nodes" that do not share a file system: each rank's store is its own.
    alone_train, _alone_test, alone = _embed(cache.parent / f"node{info.rank}", weights)
    np.save(out / f"alone{info.rank}.npy", alone_train)
    (out / f"rank{info.rank}.json").write_text(json.dumps({"encoded_rows": sum(encoded), "alone_rows": sum(alone)}))


@pytest.mark.slow
def test_each_rank_embeds_its_shard_and_reads_the_whole_store(tmp_path: Path) -> None:
    weights = tmp_path / "tiny.pt"
    torch.save(_network().state_dict(), weights)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MLFLOW_RUN_ID"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__, "--worker"]
    proc = subprocess.run(
        [*cmd, str(tmp_path / "ranks"), str(weights), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    one_train, one_test, one_encoded = _embed(tmp_path / "one", weights)
    assert sum(one_encoded) == N_TRAIN + N_TEST
    counts = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    # Each rank encoded its own rows only: 11 + 10 of the training split, 4 + 3 of the test split.
    assert [c["encoded_rows"] for c in counts] == [15, 13]
    # Stores not shared: each rank found the other's rows missing in its own store and embedded them.
    assert [c["alone_rows"] for c in counts] == [28, 28]
    for r in range(2):
        ranks = np.load(tmp_path / f"rank{r}.npz")
        np.testing.assert_allclose(ranks["train"], one_train, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ranks["test"], one_test, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.load(tmp_path / f"alone{r}.npy"), one_train, rtol=1e-5, atol=1e-6)
    # Stored once, complete: a later one-process run reads it without encoding a row.
    again_train, _again_test, again_encoded = _embed(tmp_path / "ranks", weights)
    assert again_encoded == [] and np.array_equal(again_train, np.load(tmp_path / "rank0.npz")["train"])


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
