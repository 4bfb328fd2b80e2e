"""Greedy k-center (paper Algorithm 1; Sener & Savarese 2018).

Keeps one running minimum distance per pool point (O(N) memory, never an N×k matrix): each step
picks the point farthest from every centre so far and lowers the running minima with its
distances. Distance computations are chunked so pools larger than memory stream through.
Squared Euclidean distances give the same picks as Euclidean ones. Ties go to the lowest pool
position (``torch.argmax`` returns the first maximum).
"""

from __future__ import annotations

import torch

from svpkit.errors import ConfigError
from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec


def min_sq_distances(points: torch.Tensor, centers: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Squared distance from each point to its nearest centre, computed chunk by chunk."""
    out = torch.full((points.shape[0],), float("inf"), device=points.device, dtype=torch.float32)
    exact = points.device.type != "cuda"
    mode = "donot_use_mm_for_euclid_dist" if exact else "use_mm_for_euclid_dist"
    for i in range(0, points.shape[0], chunk):
        p = points[i : i + chunk].float()
        best = out[i : i + chunk]
        for j in range(0, centers.shape[0], chunk):
            c = centers[j : j + chunk].float()
            d = torch.cdist(p, c, compute_mode=mode).square_()
            best = torch.minimum(best, d.min(dim=1).values)
        out[i : i + chunk] = best
    return out


def greedy_k_center(
    pool: torch.Tensor, centers: torch.Tensor, k: int, chunk: int = 65536
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick ``k`` pool rows greedily; returns (positions in pick order, initial min distances).

    ``centers`` are the initial centres (labeled or seed points; never candidates). At least one
    is required: with none, the first pick would be arbitrary rather than farthest-first.
    """
    if centers.shape[0] == 0:
        raise ConfigError("greedy k-center needs at least one initial centre (labeled or seed point)")
    n = pool.shape[0]
    if k > n:
        raise ConfigError(f"greedy k-center cannot pick {k} points from a pool of {n}")
    min_d = min_sq_distances(pool, centers)
    initial = min_d.clone()
    picks = torch.empty(k, dtype=torch.long, device=pool.device)
    for step in range(k):
        idx = torch.argmax(min_d)
        picks[step] = idx
        center = pool[idx].float()
        for i in range(0, n, chunk):
            d = (pool[i : i + chunk].float() - center).square_().sum(dim=1)
            torch.minimum(min_d[i : i + chunk], d, out=min_d[i : i + chunk])
        # A picked point is a centre now; its distance is 0 already, -1 keeps it out on ties.
        min_d[idx] = -1.0
    return picks, initial


def select_k_center(ctx: SelectionContext, k: int) -> Selection:
    assert ctx.pool_embeddings is not None and ctx.labeled_embeddings is not None
    positions, initial = greedy_k_center(ctx.pool_embeddings, ctx.labeled_embeddings, k)
    return Selection(picks=ctx.pool[positions.cpu().numpy()], scores=initial.sqrt().cpu().numpy())


SPECS = [
    SelectorSpec(
        "greedy_k_center",
        select_k_center,
        frozenset({"embeddings"}),
        "farthest-first traversal of penultimate features (paper Alg. 1)",
    )
]
