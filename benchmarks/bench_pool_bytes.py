"""Bytes held per pool image by a streamed ImageNet-size round: measured, at two folder sizes.

What grows with the pool in an active-learning round over a streamed image folder is what the
process holds per file (the compact file list, the labels), the round's pool index and the
scoring pass's reductions (one float32 per pool image for least confidence). This benchmark loads
each folder exactly as ``svpkit active-learning --dataset imagefolder --dataset-options
size=32,stream=on`` does (:func:`svpkit.data.imagefolder.load_imagefolder`), each in a fresh
process under :mod:`tracemalloc` (numpy's buffers are traced; torch tensors made from numpy arrays
are too), then builds the round's pool index (:func:`svpkit.loops.scoring.pool_index`) and a
reduction of the pool's size, and records:

* the traced bytes held after the load, per training image, and the transient peak of the listing;
* the parts by name (file list blob and offsets, labels, pool index, reduction);
* between the two folders, the slope of what is held per pool image: the pool-size-dependent part
  (issue goal: at most 50 bytes per pool image).

The statistics pass is not what is measured: give each folder's ``SVPKIT_CACHE`` (``--caches``)
holding its cached pixel statistics, or the load decodes the whole folder once.

    python benchmarks/bench_pool_bytes.py --roots SMALL,BIG --caches SMALL_CACHE,BIG_CACHE \\
        --out benchmarks/results/pool_bytes_cpu.json
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

import torch  # noqa: E402

from benchmarks.common import print_table, write_results  # noqa: E402

INITIAL = 2000


def measure(root: str) -> dict[str, Any]:
    """One folder's load + pool index + reduction under tracemalloc (run in a fresh process)."""
    import gc
    import tracemalloc

    import numpy as np
    import torch

    from svpkit.data.imagefolder import load_imagefolder
    from svpkit.data.streaming import StreamedImages
    from svpkit.loops.scoring import pool_index

    tracemalloc.start()
    t0 = time.perf_counter()
    data = load_imagefolder(root, size=32, stream="on")
    load_s = time.perf_counter() - t0
    gc.collect()
    after_load, load_peak = tracemalloc.get_traced_memory()
    train = data.train
    n = len(train.y)
    assert isinstance(train.x, StreamedImages)
    labeled = np.sort(np.random.default_rng(0).choice(n, size=min(INITIAL, n // 2), replace=False))
    tracemalloc.reset_peak()
    pool = pool_index(n, labeled)
    reduction = torch.from_numpy(np.empty(len(pool), dtype=np.float32))  # the max-probability reduction
    gc.collect()
    held, round_peak = tracemalloc.get_traced_memory()
    files = train.x.files
    test_files = data.test.x.files if isinstance(data.test.x, StreamedImages) else None
    parts = {
        "train file list blob": files.blob.nbytes,
        "train file list offsets": files.offsets.nbytes,
        "train labels": train.y.numel() * train.y.element_size(),
        "test file list": test_files.nbytes if test_files is not None else 0,
        "test labels": data.test.y.numel() * data.test.y.element_size(),
        "pool index": pool.nbytes,
        "reduction (float32)": reduction.numel() * reduction.element_size(),
    }
    return {
        "folder": Path(root).name,
        "train_images": n,
        "test_images": len(data.test.y),
        "pool_images": len(pool),
        "load_seconds": load_s,
        "traced_after_load": after_load,
        "traced_listing_peak": load_peak,
        "traced_during_round": held,
        "traced_round_peak": round_peak,
        "offsets_dtype": str(files.offsets.dtype),
        "pool_index_dtype": str(pool.dtype),
        "parts_bytes": parts,
        "parts_per_pool_image": {k: v / len(pool) for k, v in parts.items()},
        "held_per_pool_image": held / len(pool),
        "listing_peak_per_file": load_peak / (n + len(data.test.y)),
    }


def _child(root: str, cache: str) -> dict[str, Any]:
    env = dict(os.environ, SVPKIT_CACHE=cache) if cache else dict(os.environ)
    code = f"import json,sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r}); "
    code += f"from benchmarks.bench_pool_bytes import measure; print(json.dumps(measure({root!r})))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--roots", required=True, help="two image folders, small,big (comma-separated)")
    p.add_argument("--caches", default="", help="their SVPKIT_CACHE folders (comma-separated; empty: the default)")
    p.add_argument("--machine", default="")
    p.add_argument("--out", default="")
    a = p.parse_args()
    roots = a.roots.split(",")
    caches = a.caches.split(",") if a.caches else [""] * len(roots)
    results = [_child(r, c) for r, c in zip(roots, caches)]
    rows = [
        [r["folder"], f"{r['pool_images']:,}", f"{r['held_per_pool_image']:.1f}", f"{r['listing_peak_per_file']:.1f}"]
        for r in results
    ]
    summary: dict[str, Any] = {}
    if len(results) == 2:
        small, big = results
        slope = (big["traced_during_round"] - small["traced_during_round"]) / (
            big["pool_images"] - small["pool_images"]
        )
        summary["bytes_per_pool_image_slope"] = slope
        summary["goal_bytes_per_pool_image"] = 50
        rows.append(["slope", "", f"{slope:.1f}", ""])
    print_table(
        "bytes held per pool image", ["folder", "pool images", "bytes held / pool image", "listing peak / file"], rows
    )
    write_results("pool_bytes", a, torch.device("cpu"), {"results": results, "summary": summary})


if __name__ == "__main__":
    main()
