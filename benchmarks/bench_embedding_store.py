"""The embedding store at ImageNet scale: the embedding pass against a plain loop, then a round from the store (CPU).

On a streamed ImageNet-layout folder (``bench_imagenet_round.py`` generates one: 1,000 classes of
32-px JPEGs), three arms, each in a fresh process with its peak memory sampled over the process
tree (:class:`benchmarks.bench_data_scale.PeakRss`: summed PSS of the process and its DataLoader
workers):

* ``store``: the first ``--train`` training images (``--train-limit``) and the val split (or
  ``--test`` of its images, ``--test-limit``) embedded into an empty embedding store (:func:`svpkit.backbones.embed.embed_splits`: loader
  workers decode, the backbone runs on each batch, fp16 rows written to the memory-mapped store);
* ``plain``: the loop one would write with the same backbone network and weights: torchvision
  ``ImageFolder`` (a prefix of ``--plain`` images in the folder's order) + ``DataLoader`` (the same
  workers and batch) + ``torch.no_grad()``, the pooled features kept as fp16 and concatenated;
* ``round``: one least-confidence active-learning round from the filled store through the Python
  API: ``linear_head`` as the selector model trained on ``--initial`` labeled images for
  ``--epochs`` epochs, the pool scored, ``--k`` picked (the target is not trained). Its seconds
  include the load (listing, the statistics cache check, reading and standardising the stored
  vectors); the round's own phases are the ``round/*`` metrics.

The backbone is ``efficientnet_lite0`` (plugin svpkit-pretrained) at ``--size`` pixels
(``--backbone-options size=``, part of the store's key): at its own 224 px it costs about 71 ms per
image and thread on this machine's CPU, a million images would take days on 2 cores; the generated
folder's images are 32 px, so ``size=32`` reads them as decoded (no upsampling). Images/s of the
store pass and the plain loop are compared within one run; on a shared machine read the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_data_scale import PeakRss  # noqa: E402
from benchmarks.common import linear_head_round, print_table, round_record, write_results  # noqa: E402
from svpkit.progress import NullProgress  # noqa: E402

BACKBONE = "efficientnet_lite0"


class _Timed(NullProgress):
    """A progress that keeps each task's seconds and rows (and prints a line every ~5 %)."""

    def __init__(self, rss: PeakRss) -> None:
        self.rss = rss
        self.tasks: dict[str, dict[str, float]] = {}

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        t0, done, step = time.perf_counter(), [0, 0], max(1, (total or 1) // 20)

        def advance(n: int = 1) -> None:
            done[0] += n
            if done[0] - done[1] >= step:
                done[1] = done[0]
                print(
                    f"{description}: {done[0]:,}/{total:,} in {time.perf_counter() - t0:.0f} s, peak PSS "
                    f"{self.rss.peak_pss_kib / 1024:.0f} MiB, load {os.getloadavg()[0]:.1f}",
                    file=sys.stderr,
                    flush=True,
                )

        yield advance
        self.tasks[description] = {"seconds": time.perf_counter() - t0, "rows": done[0]}


def _store_arm(args: argparse.Namespace) -> dict[str, Any]:
    from svpkit.api.flow import load_dataset
    from svpkit.backbones.base import resolve_backbone
    from svpkit.backbones.embed import embed_splits
    from svpkit.plugins import get_plugins

    with PeakRss() as rss:
        t0 = time.perf_counter()
        data = load_dataset("imagefolder", args.root, args.train, args.test or None, dataset_options=_options(args))
        loaded = time.perf_counter()
        backbone = resolve_backbone(get_plugins().backbones.get(BACKBONE), _backbone_options(args))
        timed = _Timed(rss)
        key, train, test = embed_splits(data, backbone, "cpu", timed)
        done = time.perf_counter()
    passes = {d.split(" ")[2]: v for d, v in timed.tasks.items()}  # "embedding <data> <split> with ..."
    return {
        "train_images": int(train.shape[0]),
        "test_images": int(test.shape[0]),
        "store_key": key.label(),
        "load_seconds": loaded - t0,
        "listing_seconds": data.load_seconds.get("listing"),
        "statistics_seconds": data.load_seconds.get("statistics"),
        "pass_seconds": {s: v["seconds"] for s, v in passes.items()},
        "images_per_second": passes["train"]["rows"] / passes["train"]["seconds"],
        "total_seconds": done - t0,
        "first_row": [float(v) for v in np.asarray(train[0, :4], dtype=np.float32)],
        "peak_pss_mib": rss.peak_pss_kib / 1024,
        "peak_data_mib": rss.peak_data_kib / 1024,
    }


def _plain_arm(args: argparse.Namespace) -> dict[str, Any]:
    from svpkit_pretrained import efficientnet_lite0, efficientnet_weights_file
    from torchvision import datasets, transforms

    model: Any = efficientnet_lite0(efficientnet_weights_file())
    tf = transforms.Compose(
        [
            transforms.Resize(args.size),
            transforms.CenterCrop(args.size),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # [-1, 1]
        ]
    )
    with PeakRss() as rss:
        t0 = time.perf_counter()
        folder = datasets.ImageFolder(str(Path(args.root) / "train"), transform=tf)
        prefix = torch.utils.data.Subset(folder, range(min(args.plain, len(folder))))
        loader = torch.utils.data.DataLoader(prefix, batch_size=args.batch, num_workers=args.workers)
        listed = time.perf_counter()
        rows = []
        with torch.no_grad():
            for xb, _ in loader:
                rows.append(model.forward_head(model.forward_features(xb), pre_logits=True).half().numpy())
        features = np.concatenate(rows)
        done = time.perf_counter()
    return {
        "images": int(features.shape[0]),
        "load_seconds": listed - t0,
        "pass_seconds": done - listed,
        "images_per_second": features.shape[0] / (done - listed),
        "first_row": [float(v) for v in features[0, :4].astype(np.float32)],
        "peak_pss_mib": rss.peak_pss_kib / 1024,
        "peak_data_mib": rss.peak_data_kib / 1024,
    }


def _round_arm(args: argparse.Namespace) -> dict[str, Any]:
    with PeakRss() as rss:
        t0 = time.perf_counter()
        result = linear_head_round(
            args.initial,
            args.k,
            args.epochs,
            dataset="imagefolder",
            data_path=args.root,
            dataset_options=_options(args),
            train_limit=args.train,
            test_limit=args.test or None,
            backbone=BACKBONE,
            backbone_options=_backbone_options(args),
        )
        total = time.perf_counter() - t0
    _, record = round_record(result, rss.peak_pss_kib, rss.peak_data_kib)
    return {"total_seconds": total, **record}


def _options(args: argparse.Namespace) -> str:
    return f"size={args.size},stream=on,workers={args.workers}"


def _backbone_options(args: argparse.Namespace) -> str:
    return f"size={args.size},batch_size={args.batch}"


ARMS = {"store": _store_arm, "plain": _plain_arm, "round": _round_arm}


def _run(arm: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--arm", arm, *sys.argv[1:]]
    env = dict(os.environ, SVPKIT_CACHE=str(args.cache), OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)  # stderr: the arm's progress
    if done.returncode != 0:
        raise SystemExit(f"arm {arm} failed (its stderr is above)")
    return {"arm": arm, "load_average_after": os.getloadavg(), **json.loads(done.stdout.splitlines()[-1])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="an ImageNet-layout folder (train/<class>/, val/<class>/)")
    p.add_argument("--train", type=int, default=1_000_000, help="training images embedded (the folder's first)")
    p.add_argument("--test", type=int, default=0, help="val images embedded (a class-stratified sample; 0: all)")
    p.add_argument("--plain", type=int, default=100_000, help="images of the plain loop (a prefix)")
    p.add_argument("--size", type=int, default=32, help="image side the backbone reads")
    p.add_argument("--batch", type=int, default=64, help="images per backbone call (both pipelines)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (both pipelines)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--initial", type=int, default=10_000, help="labeled images of the round")
    p.add_argument("--k", type=int, default=10_000, help="the round's picks")
    p.add_argument("--epochs", type=int, default=5, help="linear head epochs in the round")
    p.add_argument("--arms", default="plain,store,round")
    p.add_argument("--cache", default="/tmp/svpkit_bench_embedding_store", help="SVPKIT_CACHE (emptied first)")
    p.add_argument("--keep-cache", action="store_true", help="keep a store filled by an earlier run")
    p.add_argument("--arm", default="", help=argparse.SUPPRESS)
    p.add_argument("--machine", default="")
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.arm:
        print(json.dumps(ARMS[args.arm](args)))
        return
    if not args.keep_cache:
        subprocess.run(["rm", "-rf", str(args.cache)], check=True)
    load_before = os.getloadavg()
    results = []
    for arm in (a.strip() for a in args.arms.split(",") if a.strip()):
        record = _run(arm, args)
        print(json.dumps(record), flush=True)
        results.append(record)
    by = {r["arm"]: r for r in results}
    summary: dict[str, Any] = {}
    if "store" in by and "plain" in by:
        summary["store_vs_plain_images_per_second"] = (
            by["store"]["images_per_second"] / by["plain"]["images_per_second"]
        )
    if "round" in by:
        summary["round_seconds"] = by["round"]["round_seconds"]
        summary["round_total_seconds"] = by["round"]["total_seconds"]
    rows = [
        [
            r["arm"],
            r.get("images_per_second", float("nan")),
            r.get("total_seconds", r.get("pass_seconds")),
            r["peak_pss_mib"],
        ]
        for r in results
    ]
    print_table(f"{BACKBONE} at {args.size} px into the embedding store", ["arm", "img/s", "seconds", "PSS MiB"], rows)
    print(json.dumps(summary, indent=1))
    write_results(
        "embedding_store",
        args,
        torch.device("cpu"),
        {
            "backbone": BACKBONE,
            "size": args.size,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "results": results,
            "summary": summary,
        },
    )


if __name__ == "__main__":
    main()
