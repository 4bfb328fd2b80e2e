"""Greedy k-center at scale: chunking, reduced-precision storage and host streaming keep the picks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from svpkit.selectors.k_center import greedy_k_center, min_sq_distances

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_k_center import matrix_k_center  # noqa: E402


def brute_force(pool: np.ndarray, centers: np.ndarray, k: int) -> list[int]:
    """Paper Algorithm 1 in float64 with the full pool×centre distance matrix; ties to the lowest index."""
    d = ((pool[:, None, :] - centers[None, :, :]) ** 2).sum(-1).min(axis=1)
    picks: list[int] = []
    for _ in range(k):
        masked = d.copy()
        masked[picks] = -1.0
        i = int(np.argmax(masked))
        picks.append(i)
        d = np.minimum(d, ((pool - pool[i]) ** 2).sum(-1))
    return picks


def features(seed: int, n: int, m: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + m, dim, generator=g, dtype=torch.float64) * 3 + 1  # off the origin: |p|² − 2p·c + |c|² cancels
    return x[:n].float(), x[n:].float()


@pytest.mark.parametrize(
    "seed,n,m,dim,k,chunk",
    [(0, 1000, 3, 16, 120, 97), (1, 777, 50, 8, 300, 1000), (2, 300, 1, 32, 299, 64), (3, 2048, 10, 4, 64, 2048)],
)
def test_chunked_running_min_equals_brute_force(seed: int, n: int, m: int, dim: int, k: int, chunk: int) -> None:
    pool, centers = features(seed, n, m, dim)
    picks, initial = greedy_k_center(pool, centers, k, chunk=chunk)
    assert picks.tolist() == brute_force(pool.double().numpy(), centers.double().numpy(), k)
    expected = ((pool.double()[:, None] - centers.double()[None]) ** 2).sum(-1).min(1).values
    assert torch.allclose(initial.double(), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_min_sq_distances_matches_exact(chunk: int) -> None:
    pool, centers = features(4, 123, 45, 6)
    exact = torch.cdist(pool.double(), centers.double()).square().min(1).values
    got = min_sq_distances(pool, centers, chunk=chunk)
    assert got.dtype == torch.float32 and bool((got >= 0).all())
    assert torch.allclose(got.double(), exact, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_storage_picks_follow_the_rounded_features(dtype: torch.dtype) -> None:
    """Storage in 16 bits rounds the features; accumulating in float32 keeps the picks of the rounded data."""
    pool, centers = features(5, 1500, 20, 24)
    low = pool.to(dtype)
    picks, _ = greedy_k_center(low, centers, 100, chunk=333)
    assert picks.tolist() == brute_force(low.double().numpy(), centers.double().numpy(), 100)


def test_matrix_baseline_of_the_benchmark_agrees() -> None:
    pool, centers = features(6, 400, 5, 10)
    picks, dist = matrix_k_center(pool, centers, 40)
    assert dist.shape == (400, 45)
    assert picks.tolist() == greedy_k_center(pool, centers, 40)[0].tolist()


def test_duplicates_and_ties_go_to_the_lowest_position() -> None:
    pool = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [3.0, 0.0], [1.0, 0.0]])
    picks, _ = greedy_k_center(pool, torch.zeros(1, 2), 3, chunk=2)
    # Points 1, 2 and 3 are all at distance 3; 1 first, then 2 (3 coincides with 1, distance 0).
    assert picks.tolist()[:2] == [1, 2]
    assert sorted(set(picks.tolist())) == sorted(picks.tolist())


@pytest.mark.gpu
def test_gpu_and_host_streamed_pools_pick_like_the_cpu() -> None:
    pool, centers = features(7, 50_000, 100, 64)
    cpu_picks, _ = greedy_k_center(pool, centers, 200)
    gpu_picks, _ = greedy_k_center(pool.cuda(), centers.cuda(), 200, chunk=8192)
    streamed, _ = greedy_k_center(pool, centers, 200, chunk=8192, device="cuda")
    assert gpu_picks.device.type == "cuda" and streamed.device.type == "cuda"
    assert gpu_picks.cpu().tolist() == cpu_picks.tolist() == streamed.cpu().tolist()
    half_cpu, _ = greedy_k_center(pool.bfloat16(), centers, 200)
    half_gpu, _ = greedy_k_center(pool.bfloat16().cuda(), centers.cuda(), 200, chunk=8192)
    assert half_gpu.cpu().tolist() == half_cpu.tolist()
