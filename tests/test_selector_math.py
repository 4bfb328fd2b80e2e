"""The selection mathematics of BALD, BADGE, EL2N/GraNd and CCS against plain NumPy definitions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from svpkit.selectors import coverage
from svpkit.selectors.badge import GradientEmbedding, badge_select, has_final_linear
from svpkit.selectors.bald import MCAccumulator, bald_scores, mc_entropy_scores, mc_head_probabilities
from svpkit.selectors.coverage import allocate_budget, ccs_select, class_balanced_top_k, class_quotas, within_quotas
from svpkit.selectors.data_scores import average_scores, el2n_scores, grand_last_layer_scores, grand_scores


def random_probs(rng: np.random.Generator, *shape: int, zeros: bool = True) -> np.ndarray:
    p = rng.dirichlet(np.full(shape[-1], 0.5), size=shape[:-1])
    if zeros:  # exact zeros exercise 0·log 0 = 0
        p[..., 0] = 0.0
        p /= p.sum(-1, keepdims=True)
    return p.astype(np.float32)


def np_entropy(p: np.ndarray) -> np.ndarray:
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(-1)


# --- BALD ---------------------------------------------------------------------------------------


def test_bald_and_mc_entropy_match_the_definition() -> None:
    mc = random_probs(np.random.default_rng(0), 7, 50, 5).astype(np.float64)
    mean = mc.mean(axis=0)
    mutual_information = np_entropy(mean) - np_entropy(mc).mean(axis=0)
    scores = bald_scores(torch.from_numpy(mc).float())
    assert scores.dtype == torch.float32 and not torch.isnan(scores).any()
    assert scores.numpy() == pytest.approx(np.maximum(mutual_information, 0.0), abs=1e-5)
    assert mc_entropy_scores(torch.from_numpy(mc).float()).numpy() == pytest.approx(np_entropy(mean), abs=1e-5)


def test_bald_is_zero_when_the_samples_agree() -> None:
    p = torch.from_numpy(random_probs(np.random.default_rng(1), 40, 4))
    assert bald_scores(p.expand(5, -1, -1)).abs().max().item() < 1e-6


def test_streaming_accumulator_equals_the_full_tensor() -> None:
    mc = torch.from_numpy(random_probs(np.random.default_rng(2), 6, 30, 3))
    acc = MCAccumulator()
    for sample in mc:
        acc.add(sample.to(torch.bfloat16))  # any float dtype; math in float32
    full = bald_scores(mc.to(torch.bfloat16).float())
    assert torch.equal(acc.bald(), full)
    assert torch.equal(acc.entropy(), mc_entropy_scores(mc.to(torch.bfloat16).float()))
    assert acc.sum_probs is not None and acc.sum_probs.shape == (30, 3)
    with pytest.raises(ValueError, match="no Monte-Carlo sample"):
        MCAccumulator().bald()


def np_head(h: np.ndarray, w: np.ndarray, b: np.ndarray, masks: list[np.ndarray], dropout: float) -> np.ndarray:
    out = []
    for keep in masks:
        logits = (h * keep) @ w.T / (1.0 - dropout) + b
        e = np.exp(logits - logits.max(1, keepdims=True))
        out.append(e / e.sum(1, keepdims=True))
    return np.stack(out)


def test_mc_head_probabilities_is_dropout_then_the_linear_head() -> None:
    rng = np.random.default_rng(3)
    n, d, c, t, p, chunk = 23, 6, 4, 5, 0.3, 10
    h, w, b = (rng.normal(size=s).astype(np.float32) for s in [(n, d), (c, d), (c,)])
    replay = torch.Generator().manual_seed(7)
    masks = [
        np.concatenate([torch.rand((min(chunk, n - i), d), generator=replay).numpy() >= p for i in range(0, n, chunk)])
        for _ in range(t)
    ]
    gen = torch.Generator().manual_seed(7)
    got = mc_head_probabilities(torch.from_numpy(h), torch.from_numpy(w), torch.from_numpy(b), t, p, gen, chunk)
    samples = torch.stack(list(got))
    assert samples.shape == (t, n, c)
    assert samples.numpy() == pytest.approx(np_head(h, w, b, masks, p), abs=1e-5)
    no_dropout = mc_head_probabilities(torch.from_numpy(h), torch.from_numpy(w), None, 3, 0.0, gen, chunk)
    assert bald_scores(torch.stack(list(no_dropout))).abs().max().item() < 1e-6


@pytest.mark.parametrize(
    "samples,dropout,match", [(1, 0.5, "mc_samples"), (4, 1.0, "mc_dropout"), (4, -0.1, "mc_dropout")]
)
def test_mc_options_are_checked(samples: int, dropout: float, match: str) -> None:
    gen = torch.Generator()
    with pytest.raises(ValueError, match=match):
        next(mc_head_probabilities(torch.zeros(2, 3), torch.zeros(4, 3), None, samples, dropout, gen))


# --- BADGE --------------------------------------------------------------------------------------


def np_gradient_embeddings(p: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(p − onehot(argmax p)) ⊗ h, materialised as N × (C·d)."""
    a = p.astype(np.float64).copy()
    a[np.arange(len(p)), p.argmax(1)] -= 1.0
    return (a[:, :, None] * h.astype(np.float64)[:, None, :]).reshape(len(p), -1)


def np_kmeans_pp(g: np.ndarray, k: int, seed: int) -> list[int]:
    """The authors' init_centers on materialised embeddings, with the same uniforms as badge_select."""
    uniforms = torch.Generator().manual_seed(seed)
    picks = [int(np.argmax(np.linalg.norm(g, axis=1)))]
    d2 = np.full(len(g), np.inf)
    while len(picks) < k:
        d2 = np.minimum(d2, ((g - g[picks[-1]]) ** 2).sum(1))
        d2[picks] = 0.0
        cdf = np.cumsum(d2)
        u = torch.rand((), generator=uniforms, dtype=torch.float64).item()
        picks.append(int(np.searchsorted(cdf, u * cdf[-1], side="right")))
    return picks


def badge_inputs(seed: int, n: int, c: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return random_probs(rng, n, c, zeros=False), rng.normal(size=(n, d)).astype(np.float32)


def test_factorised_distances_equal_the_materialised_ones() -> None:
    p, h = badge_inputs(4, 60, 5, 7)
    g = np_gradient_embeddings(p, h)
    emb = GradientEmbedding(torch.from_numpy(p), torch.from_numpy(h), chunk=16)
    assert emb.sq_norms.numpy() == pytest.approx((g**2).sum(1), rel=1e-5)
    for j in [0, 17, 59]:
        got = torch.full((60,), float("inf"))
        emb.lower_min(got, torch.tensor(j))
        want = ((g - g[j]) ** 2).sum(1)
        assert got.numpy() == pytest.approx(want, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("seed,n,c,d,k", [(5, 80, 4, 6, 12), (6, 40, 10, 3, 40), (7, 200, 3, 16, 25)])
def test_badge_picks_match_kmeans_pp_on_materialised_embeddings(seed: int, n: int, c: int, d: int, k: int) -> None:
    p, h = badge_inputs(seed, n, c, d)
    gen = torch.Generator().manual_seed(seed)
    picks, norms = badge_select(torch.from_numpy(p), torch.from_numpy(h), k, gen, chunk=13)
    g = np_gradient_embeddings(p, h)
    assert picks.tolist() == np_kmeans_pp(g, k, seed)
    assert len(set(picks.tolist())) == k
    assert norms.numpy() == pytest.approx(np.linalg.norm(g, axis=1), rel=1e-5)


def test_badge_takes_the_lowest_unpicked_position_when_all_mass_is_gone() -> None:
    p = torch.tensor([[0.7, 0.3]] * 5)
    h = torch.ones(5, 3)
    picks, _ = badge_select(p, h, 5, torch.Generator().manual_seed(0))
    assert picks.tolist() == [0, 1, 2, 3, 4]  # identical points: argmax takes 0, then D² is 0 everywhere
    with pytest.raises(ValueError, match="cannot pick 6"):
        badge_select(p, h, 6, torch.Generator())


def test_has_final_linear() -> None:
    assert has_final_linear(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)))
    assert not has_final_linear(torch.nn.Conv1d(1, 1, 1))
    assert not has_final_linear(object())


class LargestTensor(TorchDispatchMode):
    """Records the byte size of the largest tensor any torch operation returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel() * t.element_size())
        return out


def test_badge_never_materialises_the_gradient_embeddings() -> None:
    n, d, c = 200_000, 64, 10
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(n, d, generator=gen)
    p = torch.softmax(torch.randn(n, c, generator=gen), dim=1)
    with LargestTensor() as mode:
        picks, _ = badge_select(p, h, 6, torch.Generator().manual_seed(1), chunk=32_768)
    assert len(set(picks.tolist())) == 6
    materialised = n * c * d * 4
    assert mode.largest <= materialised // 20, f"largest tensor {mode.largest} bytes"


# --- EL2N and GraNd -----------------------------------------------------------------------------


def test_el2n_is_the_distance_to_the_one_hot_label() -> None:
    rng = np.random.default_rng(8)
    p = random_probs(rng, 70, 6)
    y = rng.integers(0, 6, size=70)
    onehot = np.eye(6)[y]
    got = el2n_scores(torch.from_numpy(p), torch.from_numpy(y), chunk=16)
    assert got.numpy() == pytest.approx(np.linalg.norm(p - onehot, axis=1), rel=1e-6, abs=1e-7)


def autograd_norms(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The GraNd definition by hand: one backward pass per example, eval mode."""
    model.eval()
    out = []
    for i in range(len(x)):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        out.append(
            np.sqrt(sum(float(p.grad.double().square().sum()) for p in model.parameters() if p.grad is not None))
        )
    model.zero_grad()
    return np.array(out)


def test_grand_last_layer_is_the_gradient_norm_of_the_linear_head() -> None:
    torch.manual_seed(9)
    head = torch.nn.Linear(5, 4)
    h = torch.randn(30, 5)
    y = torch.randint(0, 4, (30,))
    probs = torch.softmax(head(h), dim=1).detach()
    cheap = grand_last_layer_scores(probs, y, h, chunk=7)
    assert cheap.numpy() == pytest.approx(autograd_norms(head, h, y), rel=1e-5)
    assert grand_scores(head, h, y, chunk=8).numpy() == pytest.approx(cheap.numpy(), rel=1e-5)


def test_grand_is_the_full_per_example_gradient_norm_in_eval_mode() -> None:
    torch.manual_seed(10)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3)
    )
    model(torch.randn(16, 4))  # move the batch-norm statistics off their defaults
    x, y = torch.randn(21, 4), torch.randint(0, 3, (21,))
    model.train()
    got = grand_scores(model, x, y, chunk=5)
    assert model.training  # restored
    assert got.numpy() == pytest.approx(autograd_norms(model, x, y), rel=1e-5)


def test_average_scores_is_the_mean_over_models() -> None:
    rng = np.random.default_rng(11)
    runs = [rng.random(9).astype(np.float32) for _ in range(3)]
    assert average_scores([torch.from_numpy(r) for r in runs]).numpy() == pytest.approx(np.mean(runs, axis=0))
    with pytest.raises(ValueError, match="at least one"):
        average_scores([])
    with pytest.raises(ValueError, match="shapes"):
        average_scores([torch.zeros(3), torch.zeros(4)])


# --- CCS and class quotas -----------------------------------------------------------------------


def np_ccs_budgets(scores: np.ndarray, budget: int, cutoff: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 1 of Zheng et al.: (kept positions' strata, budget per stratum)."""
    kept = np.argsort(-scores, kind="stable")[int(cutoff * len(scores)) :]
    s = scores[kept].astype(np.float64)
    width = (s.max() - s.min()) / bins
    stratum = np.minimum(((s - s.min()) / width).astype(int), bins - 1) if width > 0 else np.zeros(len(s), int)
    sizes = np.bincount(stratum, minlength=bins)
    budgets = np.zeros(bins, int)
    left, remaining = budget, list(range(bins))
    while remaining:
        smallest = min(remaining, key=lambda b: (sizes[b], b))
        budgets[smallest] = min(sizes[smallest], left // len(remaining))
        left -= budgets[smallest]
        remaining.remove(smallest)
    full = np.full(len(scores), -1)
    full[kept] = stratum
    return full, budgets


@pytest.mark.parametrize(
    "seed,n,budget,cutoff,bins", [(12, 500, 120, 0.1, 10), (13, 300, 290, 0.0, 7), (14, 97, 5, 0.5, 50)]
)
def test_ccs_spreads_the_budget_over_strata_as_algorithm_1(
    seed: int, n: int, budget: int, cutoff: float, bins: int
) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.exponential(size=n).astype(np.float32)  # skewed: the hard strata are small
    strata, budgets = np_ccs_budgets(scores, budget, cutoff, bins)
    result = ccs_select(torch.from_numpy(scores), budget, cutoff, bins, torch.Generator().manual_seed(seed))
    picks = result.picks.numpy()
    assert len(picks) == budget == len(set(picks.tolist()))
    assert (strata[picks] >= 0).all(), "a cut-off example was picked"
    assert np.bincount(strata[picks], minlength=bins).tolist() == budgets.tolist() == result.bin_budgets
    assert result.bin_sizes == np.bincount(strata[strata >= 0], minlength=bins).tolist()
    other = ccs_select(torch.from_numpy(scores), budget, cutoff, bins, torch.Generator().manual_seed(seed + 1))
    assert sorted(other.picks.tolist()) != sorted(picks.tolist())  # the generator draws within strata


def test_ccs_samples_uniformly_within_a_stratum() -> None:
    counts = np.zeros(10)
    for seed in range(400):
        counts[ccs_select(torch.zeros(10), 3, 0.0, 4, torch.Generator().manual_seed(seed)).picks.numpy()] += 1
    assert counts.sum() == 1200 and np.abs(counts - 120).max() < 40  # equal scores: one stratum, 3 of 10


@pytest.mark.parametrize(
    "budget,cutoff,bins,match", [(5, 0.0, 0, "at least one bin"), (5, 1.0, 3, "cutoff"), (9, 0.2, 3, "budget 9")]
)
def test_ccs_options_are_checked(budget: int, cutoff: float, bins: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ccs_select(torch.arange(10.0), budget, cutoff, bins, torch.Generator())


def test_allocation_gives_out_the_whole_budget() -> None:
    # smallest first: 0 → 0, 2 → min(2, 30 // 3), 7 → min(7, 28 // 2), 50 → the 21 left
    assert allocate_budget([2, 50, 0, 7], 30) == [2, 21, 0, 7]
    assert allocate_budget([5, 5, 5], 7) == [2, 2, 3]


def test_class_quotas_use_largest_remainders() -> None:
    assert class_quotas([0.5, 0.3, 0.2], 7) == [4, 2, 1]
    assert class_quotas([1, 1], 3) == [2, 1]  # equal remainders: the lower class
    assert class_quotas([3, 0, 1], 10) == [8, 0, 2]
    with pytest.raises(ValueError, match="non-negative"):
        class_quotas([0.5, -0.1], 3)


def np_class_balanced(scores: np.ndarray, classes: np.ndarray, quotas: list[int], k: int) -> list[int]:
    order = np.argsort(-scores, kind="stable")
    chosen: list[int] = []
    for c, q in enumerate(quotas):
        chosen += [int(i) for i in order if classes[i] == c][:q]
    chosen += [int(i) for i in order if i not in chosen][: k - len(chosen)]
    return sorted(chosen, key=lambda i: (-scores[i], i))


def test_class_balanced_top_k_fills_short_classes_from_the_best_remaining() -> None:
    rng = np.random.default_rng(15)
    scores = rng.integers(0, 20, size=60).astype(np.float32)  # many ties
    classes = np.where(np.arange(60) < 3, 2, rng.integers(0, 2, size=60))  # class 2 has only 3 candidates
    proportions = [0.4, 0.3, 0.3]
    result = class_balanced_top_k(torch.from_numpy(scores), torch.from_numpy(classes), 20, proportions)
    assert result.quotas == [8, 6, 6]
    assert result.picks.tolist() == np_class_balanced(scores, classes, result.quotas, 20)
    assert len(result.filled) == 3 and set(result.filled.tolist()) <= set(result.picks.tolist())
    assert not (classes[result.filled.numpy()] == 2).any()


def test_quotas_chunk_by_chunk_pick_what_the_whole_pool_does(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(16)
    n, k = 3000, 200
    scores = rng.integers(0, 50, size=n).astype(np.float32)  # many ties across chunk boundaries
    classes = np.where(rng.random(n) < 0.002, 3, rng.integers(0, 3, size=n))  # class 3: fewer than its quota
    proportions = [0.3, 0.3, 0.2, 0.2]
    quotas = class_quotas(proportions, k)
    ranked = torch.from_numpy(classes)[torch.argsort(-torch.from_numpy(scores), stable=True)]
    seen = [0] * len(quotas)
    expected = []
    for c in ranked.tolist():
        expected.append(seen[c] < quotas[c])
        seen[c] += 1
    for chunk in (1, 7, 100, n, 2 * n):
        assert within_quotas(ranked, quotas, chunk).tolist() == expected
    monkeypatch.setattr(coverage, "QUOTA_CHUNK", 97)
    result = class_balanced_top_k(torch.from_numpy(scores), torch.from_numpy(classes), k, proportions)
    assert len(result.filled) > 0
    assert result.picks.tolist() == np_class_balanced(scores, classes, quotas, k)
