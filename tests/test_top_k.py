"""The top k of a score without sorting the whole pool (svpkit.selectors.base.top_k_positions):
exactly the positions, in exactly the order, of the stable descending sort — ties towards the lower
position — on generated scores with many ties, signed zeros, infinities and NaN; and a shard's
candidates (svpkit.selectors.shard_top_k.candidates) are the ones the whole-shard argsort gave."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from svpkit.selectors import base
from svpkit.selectors.base import rank_descending, top_k_descending, top_k_positions
from svpkit.selectors.coverage import within_quotas
from svpkit.selectors.shard_top_k import candidates


def brute_force_order(scores: list[float]) -> list[int]:
    """Every position, best first: NaN first (as torch's descending sort), then the higher score,
    then the lower position."""
    return sorted(range(len(scores)), key=lambda i: (not math.isnan(scores[i]), -scores[i], i))


def argsort_candidates(
    scores: torch.Tensor, k: int, classes: torch.Tensor | None, quotas: list[int] | None
) -> torch.Tensor:
    """The shard's candidates as they were taken before: the whole shard sorted."""
    order = rank_descending(scores.float())
    wanted = torch.zeros(order.shape[0], dtype=torch.bool)
    wanted[: min(k, order.shape[0])] = True
    if classes is not None and quotas is not None:
        wanted |= within_quotas(classes.long()[order], quotas)
    return torch.sort(order[wanted]).values


def generated(kind: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == 0:  # few distinct values: ties everywhere
        return rng.integers(0, 4, n).astype(np.float32) / 4
    if kind == 1:
        return rng.random(n).astype(np.float32)
    if kind == 2:
        return rng.choice(np.array([-0.0, 0.0, 1.0, np.inf, -np.inf], dtype=np.float32), n)
    if kind == 3:
        return np.where(rng.random(n) < 0.05, np.nan, rng.integers(0, 2, n)).astype(np.float32)
    return np.full(n, 0.5, dtype=np.float32)  # one value: all ties


@pytest.mark.parametrize("kind", range(5))
def test_top_k_is_the_stable_descending_sorts_head(kind: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "TOP_K_BLOCK", 7)  # many blocks, ties across block borders
    rng = np.random.default_rng(kind)
    for n in (0, 1, 6, 7, 8, 29, 64, 101):
        values = generated(kind, n, rng)
        scores = torch.from_numpy(values)
        expected = brute_force_order(values.tolist())
        assert rank_descending(scores).tolist() == expected
        for k in range(n + 2):
            got = top_k_descending(scores, k)
            assert got.dtype == torch.int64 and got.tolist() == expected[:k], (kind, n, k)
            assert top_k_positions(scores, k).tolist() == sorted(expected[:k]), (kind, n, k)


def test_the_top_k_sorts_only_k_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    sorted_sizes: list[int] = []

    def spy(scores: torch.Tensor) -> torch.Tensor:
        sorted_sizes.append(scores.shape[0])
        return rank_descending(scores)

    monkeypatch.setattr(base, "rank_descending", spy)
    monkeypatch.setattr(base, "TOP_K_BLOCK", 1000)
    scores = torch.from_numpy(np.random.default_rng(5).integers(0, 50, 10_000).astype(np.float32))
    got = top_k_descending(scores, 40)
    assert got.tolist() == rank_descending(scores)[:40].tolist()
    assert sorted_sizes == [40]  # the candidates only, never the 10,000
    sorted_sizes.clear()
    assert top_k_descending(scores, 5_000).tolist() == rank_descending(scores)[:5_000].tolist()
    assert sorted_sizes[0] == 10_000  # k above a quarter of the scores: one whole sort


@pytest.mark.parametrize("kind", range(5))
def test_a_shards_candidates_are_the_argsorts(kind: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "TOP_K_BLOCK", 5)
    rng = np.random.default_rng(10 + kind)
    for n in (1, 9, 40, 97):
        scores = torch.from_numpy(generated(kind, n, rng))
        classes = torch.from_numpy(rng.integers(0, 3, n))
        for k in (1, 3, 9, 30, 120):
            plain = candidates(scores, k, None, None)
            assert plain.tolist() == argsort_candidates(scores, k, None, None).tolist(), (kind, n, k)
            quotas = [k // 2, k - k // 2 - k // 4, k // 4]
            balanced = candidates(scores, k, classes, quotas)
            assert balanced.tolist() == argsort_candidates(scores, k, classes, quotas).tolist(), (kind, n, k)
