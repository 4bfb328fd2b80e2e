"""Forgetting events: the paper's counting rule, the vectorised tracker, the learner hook."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from svpkit.data.digits import load_digits
from svpkit.errors import ConfigError
from svpkit.learners import make_learner
from svpkit.plugins import get_plugins
from svpkit.protocols import LearnerOptions
from svpkit.selectors.base import SelectionContext
from svpkit.selectors.forgetting import PRESENTATIONS, SIGNAL, ForgettingTracker, select_forgetting


def _logits_for(correct: list[bool], targets: torch.Tensor, classes: int = 3) -> torch.Tensor:
    """Logits whose argmax is the target where ``correct`` and another class elsewhere."""
    predicted = torch.where(torch.tensor(correct), targets, (targets + 1) % classes)
    return torch.nn.functional.one_hot(predicted, classes).float() * 5.0


def reference_forgetting(presentations: list[tuple[int, bool]], n: int) -> list[float]:
    """Plain Python Alg. 2: per example, count correct → incorrect between consecutive presentations."""
    last = [False] * n  # "not yet correct": the first presentation is never an event
    ever = [False] * n
    events = [0] * n
    for i, correct in presentations:
        if last[i] and not correct:
            events[i] += 1
        last[i] = correct
        ever[i] = ever[i] or correct
    return [float(e) if ever[i] else math.inf for i, e in enumerate(events)]


def test_hand_computed_sequence() -> None:
    # Correctness at five presentations of each example (example 6 is never presented).
    sequences = {
        0: [1, 0, 0, 0, 0],  # learned then forgotten once: 1 event
        1: [0, 0, 0, 0, 0],  # never learned: +inf
        2: [1, 1, 1, 1, 1],  # never forgotten: 0
        3: [0, 1, 0, 1, 0],  # 2 events
        4: [1, 0, 1, 0, 1],  # 2 events
        5: [0, 0, 0, 0, 1],  # learned at the end: 0
    }
    n = 7
    targets_all = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    tracker = ForgettingTracker()
    tracker.on_fit_start(n, torch.device("cpu"))
    rng = np.random.default_rng(0)
    for epoch in range(5):
        order = rng.permutation(6)
        for batch in np.array_split(order, 3):  # three minibatches per epoch, shuffled
            idx = torch.as_tensor(batch)
            correct = [bool(sequences[int(i)][epoch]) for i in batch]
            tracker.on_train_batch(idx, _logits_for(correct, targets_all[idx]), targets_all[idx])
    scores = tracker.result()[SIGNAL]
    assert scores.tolist() == [1.0, math.inf, 0.0, 2.0, 2.0, 0.0, math.inf]
    assert tracker.result()[PRESENTATIONS].tolist() == [5, 5, 5, 5, 5, 5, 0]
    # Ranking: most events first, never-learned (+inf) first of all, ties towards the lower index.
    ctx = SelectionContext(pool=np.arange(6), labeled=np.empty(0, dtype=np.int64), rng=rng)
    ctx.signals = tracker.result()
    assert select_forgetting(ctx, 6).picks.tolist() == [1, 3, 4, 0, 2, 5]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_tracker_equals_python_reference(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    n, classes, epochs, batch = 97, 4, 9, 16
    targets_all = torch.randint(0, classes, (n,), generator=gen)
    trained = torch.randperm(n, generator=gen)[:80]  # some examples are never presented
    tracker = ForgettingTracker()
    tracker.on_fit_start(n, torch.device("cpu"))
    presentations: list[tuple[int, bool]] = []
    for _ in range(epochs):
        order = trained[torch.randperm(trained.numel(), generator=gen)]
        for start in range(0, order.numel(), batch):
            idx = order[start : start + batch]
            logits = torch.randn(idx.numel(), classes, generator=gen)
            # Bias towards correct answers so that learning and forgetting both happen.
            logits[torch.arange(idx.numel()), targets_all[idx]] += torch.rand(idx.numel(), generator=gen) * 2
            tracker.on_train_batch(idx, logits, targets_all[idx])
            correct = (logits.argmax(1) == targets_all[idx]).tolist()
            presentations.extend(zip(idx.tolist(), correct))
    expected = reference_forgetting(presentations, n)
    got = tracker.result()[SIGNAL].tolist()
    assert got == expected
    assert any(0 < e < math.inf for e in expected) and math.inf in expected


def test_learner_hook_sees_every_training_minibatch() -> None:
    data = load_digits().limited(train=200, test=50)
    spec = get_plugins().models.get("digits_mlp")
    learner = make_learner(spec, data, LearnerOptions(seed=0, device="cpu", epochs=3, batch_size=32))
    tracker = ForgettingTracker()
    trained = np.arange(0, 200, 2)
    learner.fit(trained, observers=[tracker])
    result = tracker.result()
    presented = result[PRESENTATIONS]
    assert presented[trained].tolist() == [3] * trained.size
    assert int(presented.sum()) == 3 * trained.size
    untrained = np.arange(1, 200, 2)
    assert torch.isinf(result[SIGNAL][untrained]).all()
    # In active learning the pool was never trained on: a clear error instead of arbitrary picks.
    ctx = SelectionContext(pool=untrained, labeled=trained, rng=np.random.default_rng(0), signals=result)
    with pytest.raises(ConfigError, match="never presented"):
        select_forgetting(ctx, 5)
    ctx = SelectionContext(pool=trained, labeled=untrained, rng=np.random.default_rng(0), signals=result)
    picks = select_forgetting(ctx, 10).picks
    assert set(picks.tolist()) <= set(trained.tolist()) and picks.size == 10


def test_registered_as_training_dynamics_selector() -> None:
    spec = get_plugins().selectors.get("forgetting_events")
    assert spec.needs == frozenset({"training_dynamics"})
    assert isinstance(spec.observer(), ForgettingTracker)  # type: ignore[misc]


@pytest.mark.gpu
def test_tracker_on_cuda_matches_cpu() -> None:
    gen = torch.Generator().manual_seed(5)
    n, classes = 300, 5
    targets_all = torch.randint(0, classes, (n,), generator=gen)
    trackers = {dev: ForgettingTracker() for dev in ("cpu", "cuda")}
    for dev, tracker in trackers.items():
        tracker.on_fit_start(n, torch.device(dev))
    for _ in range(6):
        order = torch.randperm(n, generator=gen)
        for idx in order.split(64):
            logits = torch.randn(idx.numel(), classes, generator=gen)
            logits[torch.arange(idx.numel()), targets_all[idx]] += 1.0
            for dev, tracker in trackers.items():
                tracker.on_train_batch(idx.to(dev), logits.to(dev), targets_all[idx].to(dev))
    cuda_scores = trackers["cuda"].result()[SIGNAL]
    assert cuda_scores.device.type == "cuda"
    assert cuda_scores.cpu().tolist() == trackers["cpu"].result()[SIGNAL].tolist()
