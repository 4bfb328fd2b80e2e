"""Ranking a whole training set with a selector and a proxy (core-set selection's stage 1).

Plain functions, so that other code (comparisons, presets, the proxy-agreement check) can rank a
data set without running the loop. A selector with a ``rank`` (uncertainty, greedy k-center,
forgetting events, EL2N, GraNd: see their modules) ranks the training set itself; any other
selector (plugins, ``random``, BALD, BADGE) is asked to pick the whole pool in order.
"""

from __future__ import annotations

import numpy as np
import torch

from svpkit.data.base import Dataset
from svpkit.loops import scoring
from svpkit.loops.train import train_and_evaluate
from svpkit.models.base import ModelSpec
from svpkit.progress import NullProgress, Progress
from svpkit.protocols import Learner, LearnerOptions, TrainObserver
from svpkit.runtime import resolve_device
from svpkit.selectors.base import RankContext, Ranking, SelectionContext, SelectorSpec, resolve_selector_options
from svpkit.timing import Timer


def rank_training_set(
    selector: SelectorSpec,
    learner: Learner | None,
    signals: dict[str, torch.Tensor],
    num_train: int,
    subset_size: int,
    seed_count: int,
    rng: np.random.Generator,
    labels: torch.Tensor | None = None,
    options: dict[str, object] | None = None,
) -> Ranking:
    """Rank all ``num_train`` training examples with ``selector`` using a trained ``learner``.

    ``signals`` is what the selector's training observer returned (training-dynamics selectors).
    ``subset_size`` and ``seed_count`` matter only for k-center (it grows the seed set to the
    subset size); ``rng`` draws the seeds and feeds random/plugin selectors. ``labels`` are the
    training labels (selectors that need ``labels``), ``options`` the selector's options.
    """
    if selector.needs - {"training_dynamics"} and learner is None:
        raise ValueError(f"selector {selector.name!r} needs a trained selector model")
    if "labels" in selector.needs and labels is None:
        raise ValueError(f"selector {selector.name!r} needs the training labels")
    options = resolve_selector_options(selector, options or {})
    ctx = RankContext(learner, signals, num_train, subset_size, seed_count, rng, labels, options)
    if selector.rank is not None:
        return selector.rank(ctx)
    return _rank_by_selecting_everything(selector, ctx)


def _rank_by_selecting_everything(selector: SelectorSpec, rank_ctx: RankContext) -> Ranking:
    """Any selector: seeds (if it needs embeddings), then its picks of the whole remaining pool."""
    n, learner = rank_ctx.num_train, rank_ctx.learner
    seeds = rank_ctx.draw_seeds() if "embeddings" in selector.needs else np.empty(0, dtype=np.int64)
    mask = np.ones(n, dtype=bool)
    mask[seeds] = False
    pool = np.flatnonzero(mask)
    device = learner.device if learner is not None else torch.device("cpu")
    signals = dict(rank_ctx.signals)
    ctx = SelectionContext(pool, seeds, rank_ctx.rng, device, signals=signals, options=dict(rank_ctx.options))
    if learner is not None:
        scoring.fill_selection_context(ctx, learner, selector)
    selection = scoring.select(selector, ctx, pool.size)
    picks = np.asarray(selection.picks, dtype=np.int64)
    if picks.shape != pool.shape or not np.array_equal(np.sort(picks), pool):
        raise RuntimeError(f"selector {selector.name!r} did not return every pool example exactly once")
    scores = np.full(n, np.inf, dtype=np.float32)
    scores[pool] = np.asarray(selection.scores, dtype=np.float32)
    return Ranking(np.concatenate([seeds, picks]), scores, seeds)


def rank_with_proxy(
    dataset: Dataset,
    selector: SelectorSpec,
    proxy: ModelSpec,
    options: LearnerOptions,
    subset_size: int,
    seed_count: int,
    rng: np.random.Generator,
    progress: Progress | None = None,
    selector_options: dict[str, object] | None = None,
) -> tuple[Ranking, float, float, float | None]:
    """Train ``proxy`` on the whole training set and rank it: (ranking, proxy train seconds,
    ranking seconds, proxy test error). Selectors with no needs train nothing."""
    progress = progress or NullProgress()
    n = len(dataset.train)
    learner: Learner | None = None
    signals: dict[str, torch.Tensor] = {}
    train_s = 0.0
    error: float | None = None
    device = resolve_device(options.device)
    observers: list[TrainObserver] = []
    if selector.needs:
        observers = [selector.observer()] if selector.observer is not None else []
        outcome, learner = train_and_evaluate(
            proxy, dataset, np.arange(n, dtype=np.int64), options, progress, "proxy", observers
        )
        train_s, error = outcome.train_seconds, outcome.test_error
        device = learner.device
    # Collecting the observer's result is part of ranking (it may move or finalise tensors).
    with Timer(device) as t_rank:
        for obs in observers:
            signals.update(obs.result())
        labels = training_labels(selector, dataset, device)
        ranking = rank_training_set(
            selector, learner, signals, n, subset_size, seed_count, rng, labels, selector_options
        )
    ranking_s = t_rank.seconds
    return ranking, train_s, ranking_s, error


def training_labels(selector: SelectorSpec, dataset: Dataset, device: torch.device) -> torch.Tensor | None:
    """Every training label on ``device`` for a selector that needs ``labels``, else None."""
    return dataset.train.y.to(device) if "labels" in selector.needs else None
