"""Scoring an image pool that is streamed vs held decoded in memory vs a plain torchvision pipeline (CPU).

For ImageNet-layout folders of synthetic JPEGs (``train/<class>/*.jpg``, ``val/<class>/*.jpg``)
at two pool sizes, and optionally real CIFAR-10 training images written as PNG folders, three
pipelines score the training pool once, each in its own fresh process:

* ``svpkit stream``: ``imagefolder`` with ``stream=on`` (:mod:`svpkit.data.streaming`): the
  load lists the files and takes the pixel statistics in one streamed pass, then the pool is
  scored through ``row_batches`` (DataLoader workers decode and resize) and the learner's
  normalisation;
* ``svpkit memory``: ``imagefolder`` with ``stream=off``: every image decoded at load, then scored
  from memory;
* ``plain``: ``torchvision.datasets.ImageFolder`` + ``DataLoader`` (Resize, CenterCrop,
  PILToTensor, the same workers), the pipeline one would write by hand.

The model is the same small probe in every pipeline (a strided 3×3 convolution, global pooling,
a linear layer), so the numbers measure the data path. Reported per pipeline: images/s of the
scoring pass (after load) and the peak memory of the process tree (the main process plus its
DataLoader workers, sampled every 20 ms from /proc). ``peak_data_mib`` is the data the pipeline
holds: the main process's anonymous pages (heap, tensors; shared with forked workers or not) plus
each worker's private dirty pages (what it wrote beyond the pages it shares with the main process)
plus shared-memory batches in flight. Library code is left out: its pages count as private (USS,
kept as ``peak_rss_mib``) whenever no other process maps them, so the USS of the main process
jumps by the size of torch's libraries the moment its workers exit (measured: 0.8 to 3.4 GiB on
the same run), and their proportional share (PSS, ``peak_pss_mib``) moves with the other torch
processes on the machine. The load time includes importing torchvision. Run the arms side by side on a quiet machine; on a shared one,
compare the ratios of one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import print_table, write_results  # noqa: E402

ARMS = ("svpkit stream", "svpkit memory", "plain")
BATCH = 256


def _rollup_kib(pid: int) -> dict[str, int]:
    """The fields of a process's ``/proc/PID/smaps_rollup`` in KiB (empty once it has exited)."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[name] = int(value.split()[0])
    except OSError:
        pass
    return fields


def _memory_kib(pid: int, main: bool = True) -> tuple[int, int, int]:
    """(USS, PSS, data) of a process in KiB: its private pages; private plus its share of shared
    pages; the data it holds (the main process: anonymous pages and its share of shared-memory pages; a forked
    worker: its private dirty pages, what it wrote beyond what it shares with the main process)."""
    f = _rollup_kib(pid)
    uss = f.get("Private_Clean", 0) + f.get("Private_Dirty", 0)
    data = f.get("Anonymous", 0) + f.get("Pss_Shmem", 0) if main else f.get("Private_Dirty", 0)
    return uss, f.get("Pss", 0), data


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


class PeakRss:
    """Peak memory of this process and its descendants, sampled in a thread: summed USS (pages
    private to one of them), summed PSS, and the data they hold (:func:`_memory_kib`)."""

    def __init__(self, every: float = 0.02) -> None:
        self.peak_kib = self.peak_pss_kib = self.peak_data_kib = 0
        self.every, self._stop = every, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids, totals, seen = [os.getpid()], [0, 0, 0], set()
            while pids:
                pid = pids.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                totals = [t + m for t, m in zip(totals, _memory_kib(pid, main=pid == os.getpid()))]
                pids += _children(pid)
            self.peak_kib = max(self.peak_kib, totals[0])
            self.peak_pss_kib = max(self.peak_pss_kib, totals[1])
            self.peak_data_kib = max(self.peak_data_kib, totals[2])
            time.sleep(self.every)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def probe() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(16, 10),
    ).eval()  # fmt: skip


def run_arm(arm: str, root: Path, size: int, workers: int, device: str = "cpu") -> dict[str, Any]:
    """One pipeline in this (fresh) process: load, then one scoring pass over the training pool
    (the probe on ``device``; batches leave the loader on the host, as in svpkit's learner)."""
    model = probe().to(device)
    with PeakRss() as rss:
        t0 = time.perf_counter()
        if arm == "plain":
            batches, n = _plain(root, size, workers)
        else:
            batches, n = _svpkit(root, size, workers, stream=arm == "svpkit stream")
        loaded = time.perf_counter()
        seen = 0
        with torch.inference_mode():
            for xb in batches:
                torch.softmax(model(xb.to(device, non_blocking=True)), 1).cpu()
                seen += xb.shape[0]
        done = time.perf_counter()
    assert seen == n, (seen, n)
    return {
        "arm": arm,
        "images": n,
        "load_seconds": loaded - t0,
        "score_seconds": done - loaded,
        "images_per_second": n / (done - loaded),
        "peak_rss_mib": rss.peak_kib / 1024,
        "peak_pss_mib": rss.peak_pss_kib / 1024,
        "peak_data_mib": rss.peak_data_kib / 1024,
    }


def _svpkit(root: Path, size: int, workers: int, stream: bool) -> tuple[Any, int]:
    from svpkit.data.imagefolder import load_imagefolder
    from svpkit.data.streaming import row_batches

    data = load_imagefolder(root, size=size, stream="on" if stream else "off", workers=workers)
    mean = torch.tensor(data.mean).view(1, 3, 1, 1)
    inv_std = 1 / torch.tensor(data.std).view(1, 3, 1, 1)
    x = data.train.x
    return ((raw.permute(0, 3, 1, 2).float() - mean) * inv_std for raw in row_batches(x, None, BATCH)), len(x)


def _plain(root: Path, size: int, workers: int) -> tuple[Any, int]:
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [
            transforms.Resize(size),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        ]
    )
    folder = datasets.ImageFolder(str(root / "train"), transform=tf)
    loader = torch.utils.data.DataLoader(folder, batch_size=BATCH, num_workers=workers, shuffle=False)
    return (xb for xb, _ in loader), len(folder)


def synthetic_jpegs(root: Path, n: int, size: int, classes: int = 10, seed: int = 0, val: int | None = None) -> Path:
    """An ImageNet-layout folder of ``n`` training and ``val`` (default ``n // 10``) validation JPEGs (smooth noise)."""
    from torchvision.io import encode_jpeg

    if (root / "done").is_file():
        return root
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("val", max(n // 10 if val is None else val, classes))):
        for i in range(count):
            folder = root / split / f"c{i % classes:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            coarse = torch.from_numpy(rng.integers(0, 256, size=(3, 8, 8), dtype=np.uint8))
            image = torch.nn.functional.interpolate(coarse[None].float(), size=(size, size + 8), mode="bilinear")
            (folder / f"{i:06d}.jpg").write_bytes(encode_jpeg(image[0].to(torch.uint8), quality=90).numpy().tobytes())
    (root / "done").write_text("ok")
    return root


def cifar_pngs(root: Path, n: int) -> Path | None:
    """The first ``n`` CIFAR-10 training images (lossless) as a PNG folder, if the files are here."""
    from torchvision.io import write_png

    source = Path(__file__).resolve().parents[2] / "shared/data/cifar10/train_part0.npz"
    if not source.is_file():
        return None
    if (root / "done").is_file():
        return root
    with np.load(source) as npz:
        x, y = npz["x"][:n], npz["y"][:n]
    for split, rows in (("train", range(n - n // 10)), ("val", range(n - n // 10, n))):
        for i in rows:
            folder = root / split / f"c{int(y[i])}"
            folder.mkdir(parents=True, exist_ok=True)
            write_png(torch.from_numpy(np.ascontiguousarray(x[i].transpose(2, 0, 1))), str(folder / f"{i:05d}.png"))
    (root / "done").write_text("ok")
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pools", default="8000,32000", help="synthetic JPEG pool sizes")
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cifar", type=int, default=10000, help="CIFAR-10 training images as PNG (0: skip)")
    p.add_argument("--scratch", default="/tmp/svpkit_bench_data_scale")
    p.add_argument("--arms", default=",".join(ARMS), help="pipelines to run (comma-separated)")
    p.add_argument("--device", default="cpu", help="where the probe scores (the data path stays on the host)")
    p.add_argument("--arm", default="", help=argparse.SUPPRESS)
    p.add_argument("--root", default="", help=argparse.SUPPRESS)
    p.add_argument("--machine", default="")
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.set_num_threads(1)  # the workers decode on the other core(s)
    if args.arm:
        print(json.dumps(run_arm(args.arm, Path(args.root), args.size, args.workers, args.device)))
        return
    scratch = Path(args.scratch)
    pools: list[tuple[str, Path, int]] = []
    for n in (int(v) for v in args.pools.split(",") if v):
        t0 = time.perf_counter()
        pools.append((f"synthetic JPEG {n:,}", synthetic_jpegs(scratch / f"jpeg_{n}", n, args.size), args.size))
        print(f"pool of {n:,} JPEGs ready in {time.perf_counter() - t0:.1f} s")
    cifar = cifar_pngs(scratch / f"cifar_png_{args.cifar}", args.cifar) if args.cifar else None
    if cifar is not None:
        pools.append((f"CIFAR-10 PNG {args.cifar - args.cifar // 10:,}", cifar, 32))
    results = []
    for name, root, size in pools:
        for arm in [a for a in ARMS if a in args.arms.split(",")]:
            cmd = [
                sys.executable,
                __file__,
                "--arm",
                arm,
                "--root",
                str(root),
                "--size",
                str(size),
                "--device",
                args.device,
            ]
            done = subprocess.run([*cmd, "--workers", str(args.workers)], capture_output=True, text=True, check=True)
            record = {"pool": name, "size": size, "workers": args.workers, **json.loads(done.stdout.splitlines()[-1])}
            print(record)
            results.append(record)
    rows = [
        [
            r["pool"],
            r["arm"],
            r["images"],
            r["load_seconds"],
            r["images_per_second"],
            r["peak_data_mib"],
            r["peak_rss_mib"],
        ]
        for r in results
    ]
    columns = ["pool", "pipeline", "images", "load s", "images/s", "peak data MiB", "peak USS MiB"]
    print_table("scoring a pool once", columns, rows)
    args.threads = 1
    write_results("data_scale", args, torch.device(args.device), {"batch_size": BATCH, "results": results})


if __name__ == "__main__":
    main()
