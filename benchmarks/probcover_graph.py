"""ProbCover's δ-ball graph on stored embeddings: why it loses to random on CIFAR-10 (docs/algorithms.md).

No measurement of speed: from an embedding store's ``train.npy`` (N × D) and the pool's labels it
recomputes, for the study's representation (standardised per feature, ``--pca`` components):

- the purity rule's δ (k-means into ``--classes`` clusters, ``--alpha``), the median distance to
  the nearest neighbour, the share of balls that hold only their centre, the mean ball size;
- per class: the share of singleton balls and how many of ``--picks`` greedy picks from an
  empty start fall into it;
- with ``--rounds``: the study's loop (``--levels``: ProbCover picks each round on labeled ∪
  pool with a fresh k-means, as ``svpkit active-learning`` does), per level the coverage, the
  smallest and largest class count, and the error of a logistic regression trained on the
  labeled set (all standardised features; error on the rest of the pool) against a random
  labeled set of the same size (``default_rng(seed).permutation``).

    python benchmarks/probcover_graph.py --store ~/.cache/svpkit/embeddings/<key>/train.npy \\
        --labels data/cifar10/train_part0.npz --pca 128 --rounds --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from benchmarks.common import ROOT  # noqa: F401  (puts the checkout on sys.path)
from svpkit.selectors.embedding import principal_components, sq_distances
from svpkit.selectors.probcover import Balls, impurity_radii, probcover_picks, purity_delta
from svpkit.selectors.typiclust import kmeans_labels


def nn_median(x: torch.Tensor, chunk: int = 1000) -> float:
    out = []
    for i in range(0, x.shape[0], chunk):
        d = sq_distances(x[i : i + chunk], x)
        d[np.arange(d.shape[0]), np.arange(i, i + d.shape[0])] = np.inf
        out.append(np.sqrt(d.min(axis=1)))
    return float(np.median(np.concatenate(out)))


def graph(x: torch.Tensor, y: np.ndarray, args: argparse.Namespace, seed: int) -> dict[str, object]:
    delta = purity_delta(impurity_radii(x, kmeans_labels(x, args.classes, seed)), args.alpha)
    balls = Balls.build(x, delta)
    sizes = np.diff(balls.start)
    cover = probcover_picks(balls, np.zeros(len(y), dtype=bool), args.picks, np.random.default_rng(seed))
    classes = np.unique(y)
    return {
        "delta": delta,
        "nn_median": nn_median(x),
        "singleton_balls": float((sizes == 1).mean()),
        "mean_ball_size": float(sizes.mean()),
        "coverage_after_picks": cover.coverage[1],
        "singleton_share_by_class": [round(float((sizes[y == c] == 1).mean()), 3) for c in classes],
        "picks_by_class": [int((y[cover.picks] == c).sum()) for c in classes],
    }


def yardstick(z: np.ndarray, y: np.ndarray, idx: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression

    rest = np.setdiff1d(np.arange(len(y)), idx)
    model = LogisticRegression(max_iter=2000).fit(z[idx], y[idx])
    return float(1 - model.score(z[rest], y[rest]))


def rounds(x: torch.Tensor, z: np.ndarray, y: np.ndarray, args: argparse.Namespace, seed: int) -> list[dict]:
    rng, labeled, rows = np.random.default_rng(seed), np.empty(0, dtype=np.int64), []
    order = np.random.default_rng(seed).permutation(len(y))
    for level in args.levels:
        pool = np.setdiff1d(np.arange(len(y)), labeled)
        points = torch.cat([x[labeled], x[pool]])
        mask = np.zeros(len(y), dtype=bool)
        mask[: labeled.size] = True
        clusters = kmeans_labels(points, args.classes, int(rng.integers(2**31 - 1)))
        balls = Balls.build(points, purity_delta(impurity_radii(points, clusters), args.alpha))
        cover = probcover_picks(balls, mask, level - labeled.size, rng)
        labeled = np.concatenate([labeled, pool[cover.picks - labeled.size]])
        counts = np.bincount(y[labeled], minlength=args.classes)
        rows.append(
            {
                "labeled": level,
                "coverage": round(cover.coverage[1], 4),
                "min_max_class_count": [int(counts.min()), int(counts.max())],
                "probcover_error": round(yardstick(z, y, labeled), 4),
                "random_error": round(yardstick(z, y, order[:level]), 4),
            }
        )
        print(seed, rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="an embedding store's train.npy")
    p.add_argument("--labels", required=True, help="an npz whose y holds the pool's labels (its first N)")
    p.add_argument("--pca", type=int, default=128)
    p.add_argument("--alpha", type=float, default=0.95)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--picks", type=int, default=200)
    p.add_argument("--seeds", default="0")
    p.add_argument("--rounds", action="store_true")
    p.add_argument("--levels", default="10,20,50,100,200,500")
    args = p.parse_args()
    args.levels = [int(v) for v in args.levels.split(",")]
    torch.set_num_threads(1)
    emb = np.load(args.store).astype(np.float64)
    y = np.load(args.labels)["y"][: emb.shape[0]].astype(np.int64)
    z = (emb - emb.mean(axis=0)) / (emb.std(axis=0) + 1e-3)  # what embedding=input reads
    x = torch.tensor(z).float()
    x = principal_components(x, args.pca) if 0 < args.pca < x.shape[1] else x
    for seed in (int(s) for s in args.seeds.split(",")):
        print(seed, json.dumps(graph(x, y, args, seed)), flush=True)
        if args.rounds:
            rounds(x, z, y, args, seed)


if __name__ == "__main__":
    main()
