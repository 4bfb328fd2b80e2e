"""Greedy k-center (paper Algorithm 1; Sener & Savarese 2018).

Keeps one running minimum distance per pool point (O(N) memory, never an N×k matrix): each step
picks the point farthest from every centre so far and lowers the running minima with its
distances. Squared Euclidean distances give the same picks as Euclidean ones. Ties go to the
lowest pool position (``torch.argmax`` returns the first maximum).

How it stays fast at scale (1,000,000 × 512 features, 100,000 picks on one GPU):
- a step is one matrix-vector product per chunk, ``|p|² − 2 p·c + |c|²`` with the squared norms
  ``|p|²`` computed once, accumulated in float32 whatever the storage dtype (bf16/fp16 features
  halve the memory and traffic; picks then follow the rounded features);
- the whole step runs on the device without a host synchronisation (argmax, the gather of the
  new centre and the update stay tensors), so the GPU never waits for Python;
- a pool that does not fit in device memory stays in host memory and streams through the device
  chunk by chunk (``device=`` a CUDA device with a CPU pool); the running minima stay on the
  device.
"""

from __future__ import annotations

import torch

from svpkit.errors import ConfigError
from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec


def _sq_norms(x: torch.Tensor, chunk: int, device: torch.device) -> torch.Tensor:
    out = torch.empty(x.shape[0], dtype=torch.float32, device=device)
    for i in range(0, x.shape[0], chunk):
        out[i : i + chunk] = x[i : i + chunk].to(device, non_blocking=True).float().square().sum(dim=1)
    return out


def _dots(p: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """``p @ center`` in float32 for a float32 ``center`` (a pool row, so exact in ``p``'s dtype).

    16-bit ``p`` on CUDA: one GEMM that reads the 16-bit features and accumulates and writes in
    float32 (``mm`` with ``out_dtype``); elsewhere the chunk is widened first.
    """
    if p.dtype == torch.float32:
        return p @ center
    if p.is_cuda:
        try:
            return torch.mm(p, center.to(p.dtype)[:, None], out_dtype=torch.float32).squeeze(1)
        except (RuntimeError, TypeError):  # a torch without mm(out_dtype=…)
            pass
    return p.float() @ center


def min_sq_distances(points: torch.Tensor, centers: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Squared distance from each point to its nearest centre, computed chunk by chunk.

    Uses ``|p|² − 2 p·c + |c|²`` in float32 (a matrix product per chunk pair), clamped at zero.
    """
    device = points.device
    out = torch.full((points.shape[0],), float("inf"), device=device, dtype=torch.float32)
    centers_sq = _sq_norms(centers, chunk, device)
    for i in range(0, points.shape[0], chunk):
        p = points[i : i + chunk].float()
        p_sq = p.square().sum(dim=1, keepdim=True)
        best = out[i : i + chunk]
        for j in range(0, centers.shape[0], chunk):
            c = centers[j : j + chunk].to(device).float()
            d = torch.addmm(p_sq + centers_sq[None, j : j + chunk], p, c.T, alpha=-2.0)
            best = torch.minimum(best, d.min(dim=1).values)
        out[i : i + chunk] = best.clamp_min_(0.0)
    return out


def greedy_k_center(
    pool: torch.Tensor,
    centers: torch.Tensor,
    k: int,
    chunk: int = 262_144,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick ``k`` pool rows greedily; returns (positions in pick order, initial min distances).

    ``centers`` are the initial centres (labeled or seed points; never candidates). At least one
    is required: with none, the first pick would be arbitrary rather than farthest-first.
    ``pool`` may be float32, bfloat16 or float16 (distances accumulate in float32). ``device``
    defaults to the pool's; a CUDA ``device`` with a host pool streams the pool chunk by chunk.
    Both results live on ``device``.
    """
    if centers.shape[0] == 0:
        raise ConfigError("greedy k-center needs at least one initial centre (labeled or seed point)")
    n = pool.shape[0]
    if k > n:
        raise ConfigError(f"greedy k-center cannot pick {k} points from a pool of {n}")
    dev = torch.device(device) if device is not None else pool.device
    streaming = pool.device != dev
    if streaming and pool.device.type == "cpu" and dev.type == "cuda":
        pool = pool.pin_memory()
    min_d = torch.empty(n, dtype=torch.float32, device=dev)
    centers = centers.to(dev)
    for i in range(0, n, chunk):
        min_d[i : i + chunk] = min_sq_distances(pool[i : i + chunk].to(dev, non_blocking=True), centers)
    initial = min_d.clone()
    pool_sq = _sq_norms(pool, chunk, dev)
    picks = torch.empty(k, dtype=torch.long, device=dev)
    for step in range(k):
        idx = torch.argmax(min_d)
        picks[step] = idx
        # Indexing with a device tensor keeps the step free of host synchronisation; a host
        # pool needs the position on the host.
        center = (pool[int(idx)] if streaming else pool[idx]).to(dev).float()
        center_sq = center.square().sum()
        for i in range(0, n, chunk):
            p = pool[i : i + chunk].to(dev, non_blocking=True)
            dot = _dots(p, center)
            d = (pool_sq[i : i + chunk] + center_sq).add_(dot, alpha=-2.0)
            torch.minimum(min_d[i : i + chunk], d, out=min_d[i : i + chunk])
        # A picked point is a centre now; -1 keeps it out even where rounding left it above 0.
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
