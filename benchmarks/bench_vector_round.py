"""One selection round on a store-sized pool of vectors: train the head, score, pick (CPU).

What the embedding store hands a round at ImageNet scale is an N × D float16 memory-mapped array
(``svpkit.data.embeddings``). This benchmark writes such an array (``--train`` + ``--test`` rows of
``--dim`` features, float16, ``np.lib.format.open_memmap`` as the store does) from a seeded Gaussian
mixture of ``--classes`` classes (the round's cost depends on the sizes, not on the values; the
vectors are not a backbone's), then in a fresh process reads it back as a round from the store
does (:func:`svpkit.backbones.embed.standardised`: float32, standardised per feature) and runs one
least-confidence round through the Python API on the arrays: ``linear_head`` proxy trained on
``--initial`` labeled vectors, the pool scored, ``--k`` picked. Records the read/standardise
seconds, the round's phases (train, score, select, eval), the round's seconds (train + score +
select; goal < 60 s for 10,000 picks from 1,000,000 on 2 cores) and peak PSS.

    python benchmarks/bench_vector_round.py --scratch DIR --train 1000000 --test 10000 --k 10000
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.bench_data_scale import PeakRss  # noqa: E402
from benchmarks.common import linear_head_round, print_table, round_record, write_results  # noqa: E402

CHUNK = 65_536


def _write(path: Path, rows: int, dim: int, classes: int, seed: int) -> np.ndarray:
    """``rows`` float16 vectors (class centres + noise) into ``path``; returns their labels."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).standard_normal((classes, dim)).astype(np.float32)
    labels = rng.integers(0, classes, rows)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(rows, dim))
    for i in range(0, rows, CHUNK):
        y = labels[i : i + CHUNK]
        out[i : i + CHUNK] = (centres[y] + 2.0 * rng.standard_normal((len(y), dim), dtype=np.float32)).astype(
            np.float16
        )
    out.flush()
    return labels


def generate(scratch: Path, train: int, test: int, dim: int, classes: int) -> Path:
    folder = scratch / f"vectors_{train}x{dim}_{classes}"
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "train_y.npy", _write(folder / "train.npy", train, dim, classes, 1))
        np.save(folder / "test_y.npy", _write(folder / "test.npy", test, dim, classes, 2))
        (folder / "done").write_text("")
    return folder


def round_arm(folder: Path, initial: int, k: int, epochs: int) -> dict[str, Any]:
    from svpkit.backbones.embed import standardised
    from svpkit.contract import Metric

    with PeakRss() as rss:
        t0 = time.perf_counter()
        train, test = np.load(folder / "train.npy", mmap_mode="r"), np.load(folder / "test.npy", mmap_mode="r")
        x_train, x_test = standardised(train, test)
        read_s = time.perf_counter() - t0
        y_train, y_test = np.load(folder / "train_y.npy"), np.load(folder / "test_y.npy")
        t1 = time.perf_counter()
        result = linear_head_round(initial, k, epochs, dataset=(x_train.numpy(), y_train, x_test.numpy(), y_test))
        call_s = time.perf_counter() - t1
    m, record = round_record(result, rss.peak_pss_kib, rss.peak_data_kib)
    return {
        "read_and_standardise_seconds": read_s,
        "api_call_seconds": call_s,
        "pool": int(len(y_train) - initial),
        "proxy_val_error": m.get(Metric.SELECTOR_MODEL_ERROR),
        **record,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scratch", required=True)
    p.add_argument("--train", type=int, default=1_000_000)
    p.add_argument("--test", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=1280, help="EfficientNet-Lite0's pooled features")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--initial", type=int, default=10_000)
    p.add_argument("--k", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--arm", default="", help=argparse.SUPPRESS)
    p.add_argument("--machine", default="")
    p.add_argument("--out", default="")
    a = p.parse_args()
    if a.arm:
        torch.set_num_threads(a.threads)
        print(json.dumps(round_arm(Path(a.arm), a.initial, a.k, a.epochs)))
        return
    t0 = time.perf_counter()
    folder = generate(Path(a.scratch), a.train, a.test, a.dim, a.classes)
    generate_s = time.perf_counter() - t0
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    out = subprocess.run(
        [sys.executable, __file__, *sys.argv[1:], "--arm", str(folder)], env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    ph = r["phases_seconds"]
    print_table(
        f"one round on {a.train:,} × {a.dim} stored vectors",
        ["read+standardise s", "train s", "score s", "select s", "round s (goal < 60)", "peak PSS MiB"],
        [
            [
                r["read_and_standardise_seconds"],
                ph["train"],
                ph["score"],
                ph["select"],
                r["round_seconds"],
                r["peak_pss_mib"],
            ]
        ],
    )
    payload = {"train": a.train, "test": a.test, "dim": a.dim, "classes": a.classes, "initial": a.initial, "k": a.k}
    payload |= {"epochs": a.epochs, "generate_seconds": generate_s, "result": r}
    write_results("vector_round", a, torch.device("cpu"), payload)


if __name__ == "__main__":
    main()
