"""Which engine reads a sharded image pool: litdata vs mosaicml-streaming vs WebDataset vs files (CPU).

The setting of ``bench_data_scale.py`` (an ImageNet-layout folder of synthetic 64-px JPEGs, the
same probe model, 2 loader workers, batches of 256, peak USS of the process tree): the pool's
training JPEGs are written once into each engine's own shard format (litdata ``optimize`` chunks,
mosaicml-streaming MDS shards, WebDataset tars; about 1,000 images per shard), then each arm scores
the pool once in its own fresh process through a torch ``DataLoader`` whose workers fetch an
example's encoded bytes from the engine and decode them with svpkit's decoder:

* ``files``: one file per image (svpkit's streamed image folder, the baseline);
* ``litdata`` / ``mosaicml-streaming``: the engine's ``StreamingDataset[i]``, random access by index
  in pool order (what svpkit's scoring asks), and a second pass over 2,048 indices in a seeded random
  order (what training on a labeled subset asks);
* ``webdataset``: ``WebDataset`` over the tars, split by worker; it is an iterable: no access by index,
  so it has no random-order pass.

Needs ``pip install litdata mosaicml-streaming webdataset`` (mosaicml-streaming pins numpy < 2.2 and
pulls the cloud SDKs; run it in a virtual environment of its own).
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

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_data_scale import BATCH, PeakRss, probe, synthetic_jpegs  # noqa: E402
from benchmarks.common import print_table, write_results  # noqa: E402

ENGINES = ("files", "litdata", "mosaicml-streaming", "webdataset")
PER_SHARD = 1000
RANDOM_PICKS = 2048


def _train_files(root: Path) -> list[tuple[Path, int]]:
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    return [(f, c) for c, name in enumerate(classes) for f in sorted((root / "train" / name).glob("*.jpg"))]


def _litdata_item(item: tuple[str, int]) -> dict[str, Any]:
    return {"image": Path(item[0]).read_bytes(), "label": item[1]}


def write_shards(root: Path, out: Path) -> dict[str, float]:
    """The training JPEGs of ``root`` in each engine's format under ``out``; seconds per engine."""
    files, seconds = _train_files(root), {}
    t0 = time.perf_counter()
    if not (out / "litdata" / "index.json").is_file():
        from litdata import optimize

        chunk = int(np.mean([f.stat().st_size for f, _ in files[:100]]) * PER_SHARD)
        inputs = [(str(f), c) for f, c in files]
        optimize(_litdata_item, inputs, str(out / "litdata"), chunk_bytes=chunk, num_workers=1, reorder_files=False)
    seconds["litdata"], t0 = time.perf_counter() - t0, time.perf_counter()
    if not (out / "mds" / "index.json").is_file():
        from streaming import MDSWriter

        size = int(np.mean([f.stat().st_size for f, _ in files[:100]]) * PER_SHARD)
        with MDSWriter(out=str(out / "mds"), columns={"image": "bytes", "label": "int"}, size_limit=size) as w:
            for f, c in files:
                w.write({"image": f.read_bytes(), "label": c})
    seconds["mosaicml-streaming"], t0 = time.perf_counter() - t0, time.perf_counter()
    if not (out / "wds").is_dir():
        import webdataset as wds

        (out / "wds").mkdir(parents=True)
        with wds.ShardWriter(str(out / "wds" / "train-%06d.tar"), maxcount=PER_SHARD, verbose=0) as w:
            for i, (f, c) in enumerate(files):
                w.write({"__key__": f"{i:08d}", "jpg": f.read_bytes(), "cls": c})
    seconds["webdataset"] = time.perf_counter() - t0
    return seconds


class _Indexed(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Example ``i``: the engine's encoded bytes, decoded by svpkit (the engine opened in the main
    process: mosaicml-streaming's shared memory has to be registered there)."""

    def __init__(self, engine: str, where: Path, size: int) -> None:
        self.engine, self.where, self.size = engine, where, size
        self.data = self._open()

    def _open(self) -> Any:
        if self.engine == "files":
            return [f for f, _ in _train_files(self.where)]
        if self.engine == "litdata":
            from litdata import StreamingDataset

            return StreamingDataset(str(self.where / "litdata"))
        from streaming import StreamingDataset as MosaicDataset

        return MosaicDataset(local=str(self.where / "mds"), batch_size=BATCH, shuffle=False)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> torch.Tensor:
        from svpkit.data.streaming import decode_image_bytes

        item = self.data[i]
        raw = Path(item).read_bytes() if self.engine == "files" else item["image"]
        return decode_image_bytes(raw, self.size, f"example {i}")


def _loader(engine: str, where: Path, size: int, workers: int, order: list[int]) -> Any:
    from svpkit.data.streaming import import_decoders

    import_decoders()
    if engine == "webdataset":
        import webdataset as wds

        from svpkit.data.streaming import decode_image_bytes

        tars = sorted(str(t) for t in (where / "wds").glob("*.tar"))
        pipe = wds.WebDataset(
            tars, shardshuffle=False, nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker
        )
        pipe = pipe.map(lambda s: decode_image_bytes(s["jpg"], size, s["__key__"])).batched(
            BATCH, collation_fn=torch.stack
        )
        return torch.utils.data.DataLoader(pipe, batch_size=None, num_workers=workers)
    sampler = torch.utils.data.BatchSampler(order, BATCH, drop_last=False)  # type: ignore[arg-type]
    return torch.utils.data.DataLoader(_Indexed(engine, where, size), batch_sampler=sampler, num_workers=workers)


def run_arm(engine: str, where: Path, n: int, size: int, workers: int) -> dict[str, Any]:
    """Score the pool once in pool order; then (indexed engines) decode RANDOM_PICKS seeded random indices."""
    model, record = probe(), {"arm": engine, "images": n}
    with PeakRss() as rss:
        t0, seen = time.perf_counter(), 0
        with torch.inference_mode():
            for raw in _loader(engine, where, size, workers, list(range(n))):
                torch.softmax(model(raw.permute(0, 3, 1, 2).float() / 255), 1)
                seen += raw.shape[0]
        record["images_per_second"] = seen / (time.perf_counter() - t0)
        if engine != "webdataset":
            order = np.random.default_rng(0).permutation(n)[:RANDOM_PICKS].tolist()
            t0 = time.perf_counter()
            picked = sum(b.shape[0] for b in _loader(engine, where, size, workers, order))
            record["random_images_per_second"] = picked / (time.perf_counter() - t0)
    assert seen == n, (seen, n)
    return {**record, "peak_rss_mib": rss.peak_kib / 1024, "peak_pss_mib": rss.peak_pss_kib / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pool", type=int, default=8000, help="synthetic JPEGs in the pool")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--scratch", default="/tmp/svpkit_bench_shards")
    p.add_argument("--arm", default="", help=argparse.SUPPRESS)
    p.add_argument("--machine", default="")
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.set_num_threads(1)
    scratch = Path(args.scratch)
    root = scratch / f"jpeg_{args.pool}"
    if args.arm:
        print(json.dumps(run_arm(args.arm, root, args.pool, args.size, args.workers)))
        return
    synthetic_jpegs(root, args.pool, args.size)
    written = write_shards(root, root)
    results = []
    for engine in ENGINES:
        cmd = [sys.executable, __file__, "--arm", engine, "--pool", str(args.pool), "--size", str(args.size)]
        cmd += ["--workers", str(args.workers), "--scratch", str(scratch)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        record = {
            "pool": args.pool,
            "size": args.size,
            "workers": args.workers,
            **json.loads(done.stdout.splitlines()[-1]),
        }
        record["write_seconds"] = written.get(engine, 0.0)
        print(record)
        results.append(record)
    cols = ["engine", "images", "images/s", "random images/s", "peak USS MiB", "write s"]
    rows = [
        [r["arm"], r["images"], r["images_per_second"], r.get("random_images_per_second", "-"), r["peak_rss_mib"],
         r["write_seconds"]]
        for r in results
    ]  # fmt: skip
    print_table("scoring a sharded pool once", cols, rows)
    args.device, args.threads = "cpu", 1
    from importlib.metadata import version

    engines = {name: version(name) for name in ("litdata", "mosaicml-streaming", "webdataset", "numpy")}
    payload = {"batch_size": BATCH, "engine_versions": engines, "load_average": os.getloadavg(), "results": results}
    write_results("shards", args, torch.device("cpu"), payload)


if __name__ == "__main__":
    main()
