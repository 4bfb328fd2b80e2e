"""Per-batch reductions pick exactly what the full N × C matrix picks.

The scoring pass reduces each inference batch to what the selector needs (svpkit.selectors.reductions)
and keeps no pool × classes matrix. The reference here is the full-matrix computation the loops
used before: the pool's whole ``predict_proba`` (and, for BALD, the T × N × C MC-dropout samples),
then the scores of the whole matrix. The learner scores in batches of 64, so a pool of a few hundred
examples spans several batches and a last, smaller one.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from svpkit.data.digits import load_digits
from svpkit.learners import make_learner
from svpkit.loops.scoring import fill_selection_context, select_batch
from svpkit.plugins import get_plugins
from svpkit.protocols import LearnerOptions
from svpkit.selectors.bald import bald_scores, head_samples, keep_mask, mc_entropy_scores
from svpkit.selectors.base import RankContext, SelectionContext, ranking_by_score, top_k_by_score
from svpkit.selectors.reductions import reduce_examples
from svpkit.selectors.uncertainty import entropy_scores, least_confidence_scores, margin_scores

FULL_MATRIX = {"least_confidence": least_confidence_scores, "margin": margin_scores, "entropy": entropy_scores}


class DropoutMLP(nn.Module):
    """A digits MLP with a dropout layer (BALD then runs whole forward passes with it active)."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.3))
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@pytest.fixture(scope="module")
def fitted() -> tuple[object, np.ndarray, np.ndarray]:
    """A digits MLP fitted on 40 examples, scoring the other 260 in batches of 64."""
    data = load_digits().limited(train=300, test=60)
    spec = get_plugins().models.get("digits_mlp")
    learner = make_learner(spec, data, LearnerOptions(device="cpu", epochs=3, extra={"inference_batch_size": 64}))
    labeled = np.arange(40, dtype=np.int64)
    learner.fit(labeled)
    return learner, labeled, np.arange(40, 300, dtype=np.int64)


def _context(labeled: np.ndarray, pool: np.ndarray, **options: object) -> SelectionContext:
    return SelectionContext(pool, labeled, np.random.default_rng(7), options=dict(options))


@pytest.mark.parametrize("name", ["least_confidence", "margin", "entropy"])
def test_uncertainty_picks_equal_the_full_matrix_picks(fitted: tuple, name: str) -> None:
    learner, labeled, pool = fitted
    spec = get_plugins().selectors.get(name)
    ctx = _context(labeled, pool)
    fill_selection_context(ctx, learner, spec)
    assert ctx.probabilities is None  # one value per example, no N × C matrix
    assert set(ctx.per_example) == set(spec.needs) and ctx.per_example[next(iter(spec.needs))].shape == (260,)
    got = spec.select(ctx, 25)
    want = top_k_by_score(ctx, FULL_MATRIX[name](learner.predict_proba(pool).float()), 25)
    assert got.picks.tolist() == want.picks.tolist()
    assert np.array_equal(got.scores, want.scores)  # bit for bit, not only the order


def test_class_balance_picks_equal_the_full_matrix_picks(fitted: tuple) -> None:
    learner, labeled, pool = fitted
    spec = get_plugins().selectors.get("margin")
    proportions = np.bincount(np.arange(40) % 10, minlength=10)
    ctx = _context(labeled, pool)
    fill_selection_context(ctx, learner, spec, class_balance=True)
    probs = learner.predict_proba(pool)
    assert torch.equal(ctx.per_example["predicted_class"], probs.argmax(dim=1))
    got, got_report = select_batch(spec, ctx, 30, proportions)
    reference = _context(labeled, pool)
    reference.probabilities = probs  # the full-matrix path: scores and classes from the matrix
    want, want_report = select_batch(spec, reference, 30, proportions)
    assert got.picks.tolist() == want.picks.tolist() and got_report == want_report


def _mc_reference(learner: object, pool: np.ndarray, samples: int, seed: int) -> torch.Tensor:
    """T × N × C MC-dropout samples of the whole pool, sample by sample over the whole pool (the
    full-matrix path), with the masks of :func:`keep_mask`."""
    model = learner.model  # type: ignore[attr-defined]
    layers = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    rows = torch.as_tensor(pool)
    if not layers:  # embed the pool once, then dropout + the head, sample by sample
        head = model.fc
        feats = learner.embed(pool)  # type: ignore[attr-defined]
        return torch.stack(
            list(head_samples(feats, rows, head.weight.detach(), head.bias.detach(), samples, 0.5, seed))
        )
    seen, sample = [0], [0]

    def drop(module: nn.Module, args: tuple[torch.Tensor, ...], _out: torch.Tensor) -> torch.Tensor:
        x = args[0]
        keep = keep_mask(rows[seen[0] : seen[0] + len(x)], x.shape, sample[0], seed, module.p)  # type: ignore[arg-type]
        seen[0] += len(x)
        return x * keep / (1.0 - module.p)  # type: ignore[operator]

    handles = [m.register_forward_hook(drop) for m in layers]
    try:
        out = []
        for sample[0] in range(samples):
            seen[0] = 0
            out.append(learner.predict_proba(pool))  # type: ignore[attr-defined]
        return torch.stack(out)
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize("model", ["digits_mlp", "dropout_mlp"])
@pytest.mark.parametrize("name", ["bald", "mc_entropy"])
def test_bald_picks_equal_the_full_matrix_picks(name: str, model: str) -> None:
    """The per-batch MC reductions pick what the T × N × C samples of the whole pool pick, and an
    example's masks do not depend on the batch it is scored in."""
    data = load_digits().limited(train=200, test=30)
    spec = get_plugins().models.get("digits_mlp")
    if model == "dropout_mlp":
        spec = replace(spec, name="dropout_mlp", build=DropoutMLP)
    pool, labeled = np.arange(30, 200, dtype=np.int64), np.arange(30, dtype=np.int64)
    selector = get_plugins().selectors.get(name)
    full_scores = {"bald": bald_scores, "mc_entropy": mc_entropy_scores}[name]
    picked: dict[int, tuple[list[int], np.ndarray]] = {}
    for batch in (256, 48):
        learner = make_learner(
            spec, data, LearnerOptions(device="cpu", epochs=2, extra={"inference_batch_size": batch})
        )
        learner.fit(labeled)
        ctx = _context(labeled, pool, mc_samples=4, mc_dropout=0.5)
        seed = int(np.random.default_rng(7).integers(2**63 - 1))  # what the pass draws its mask seed with
        fill_selection_context(ctx, learner, selector)
        assert ctx.mc_probabilities is None and ctx.per_example[name].shape == (170,)
        got = selector.select(ctx, 20)
        want = top_k_by_score(ctx, full_scores(_mc_reference(learner, pool, 4, seed)), 20)
        assert got.picks.tolist() == want.picks.tolist()
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-6)
        if batch == 256:  # one batch: the very same float operations as the whole matrix
            assert np.array_equal(got.scores, want.scores)
        picked[batch] = got.picks.tolist(), got.scores
    assert picked[256][0] == picked[48][0]  # the masks follow the example, not its batch
    np.testing.assert_allclose(picked[256][1], picked[48][1], rtol=1e-5, atol=1e-6)


def test_masks_are_a_function_of_seed_sample_and_example() -> None:
    rows = torch.arange(100, 164)
    whole = keep_mask(rows, (64, 32), 2, 9, 0.3)
    parts = torch.cat([keep_mask(rows[:10], (10, 32), 2, 9, 0.3), keep_mask(rows[10:], (54, 32), 2, 9, 0.3)])
    assert torch.equal(whole, parts)
    assert abs(whole.float().mean().item() - 0.7) < 0.03  # keeps 1 - p of the entries
    assert not torch.equal(whole, keep_mask(rows, (64, 32), 3, 9, 0.3))  # another sample
    assert not torch.equal(whole, keep_mask(rows, (64, 32), 2, 10, 0.3))  # another seed
    assert not torch.equal(whole, keep_mask(rows, (64, 32), 2, 9, 0.3, layer=1))  # another layer


def test_core_set_ranking_equals_the_full_matrix_ranking(fitted: tuple) -> None:
    learner, _labeled, _pool = fitted
    spec = get_plugins().selectors.get("least_confidence")
    assert spec.rank is not None
    ctx = RankContext(learner, {}, 300, 100, 0, np.random.default_rng(0))
    got = spec.rank(ctx)
    want = ranking_by_score(least_confidence_scores(learner.predict_proba(None, "train").float()))
    assert got.order.tolist() == want.order.tolist() and np.array_equal(got.scores, want.scores)


def test_full_probabilities_live_in_a_memory_mapped_file(fitted: tuple) -> None:
    """BADGE reads the whole softmax: it is the full matrix's, in a file mapped into memory, and
    the selection is BADGE's on the full matrix."""
    learner, labeled, pool = fitted
    spec = get_plugins().selectors.get("badge")
    ctx = _context(labeled, pool, subpool=0, storage="fp32")
    fill_selection_context(ctx, learner, spec)
    assert ctx.probabilities is not None
    assert torch.equal(ctx.probabilities, learner.predict_proba(pool))
    maps = Path("/proc/self/maps").read_text()
    assert "svpkit-" in maps and "(deleted)" in maps  # file-backed pages, unlinked: not the heap
    got = spec.select(ctx, 10)
    reference = _context(labeled, pool, subpool=0, storage="fp32")
    reference.probabilities = learner.predict_proba(pool)
    reference.pool_embeddings, reference.labeled_embeddings = learner.embed(pool), learner.embed(labeled)
    assert got.picks.tolist() == spec.select(reference, 10).picks.tolist()


def test_a_learner_that_does_not_stream_is_asked_in_blocks(fitted: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin learner with only predict_proba/embed gets the same values, BLOCK rows at a time."""
    import svpkit.selectors.reductions as reductions

    learner, _labeled, pool = fitted
    asked: list[int] = []

    class Plain:
        device = torch.device("cpu")

        def predict_proba(self, indices: np.ndarray, split: str = "train") -> torch.Tensor:
            asked.append(len(indices))
            return learner.predict_proba(indices, split)

    monkeypatch.setattr(reductions, "BLOCK", 100)
    got = reduce_examples(Plain(), pool, {"entropy", "predicted_class"})  # type: ignore[arg-type]
    assert asked == [100, 100, 60]
    probs = learner.predict_proba(pool)
    assert torch.equal(got["entropy"], entropy_scores(probs)) and torch.equal(got["predicted_class"], probs.argmax(1))
