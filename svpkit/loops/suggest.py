"""``svpkit suggest-proxy``, the experiment: the target and every candidate on the same pilot, per seed.

For each seed ``s`` (``seed, seed + 1, …``): a random pilot labeled set (``derive_seed(s, "pilot")``,
the same for every model), then the target and every candidate proxy are trained from scratch on it
and score the rest of the training set (the pool) through the selector, which picks ``k`` examples
from the same initial state (selection generator ``derive_seed(s, "select", 1)``; the pilot is
k-center's initial centres). Each candidate's row: Spearman of its pool scores with the target's,
the overlap of its ``k`` picks with the target's (and ``k / |pool|``, the random expectation;
:func:`svpkit.selectors.agreement.pool_agreement`), its train + score seconds and its test error.
The one-off warm-up of each model is paid before its timed fit (as in the loops).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.loops import scoring
from svpkit.loops.agreement import observer_signals, selector_observers
from svpkit.loops.budgets import to_count
from svpkit.loops.settings import LoopSettings
from svpkit.loops.train import train_and_evaluate
from svpkit.models.base import ModelSpec
from svpkit.progress import NullProgress, Progress
from svpkit.runtime import derive_seed
from svpkit.selectors.agreement import pool_agreement
from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec
from svpkit.timing import Timer


@dataclass(frozen=True)
class Contender:
    """A model trained on the pilot: the target or a candidate (``label`` as written, e.g. ``digits_cnn:3``)."""

    label: str
    spec: ModelSpec
    epochs: int | None = None
    options: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class SuggestConfig:
    """suggest-proxy's pilot: its size, ``k`` picks, ``seeds`` pilots from ``settings.seed`` on,
    and the shared settings (seed, device, batch size, determinism; each model brings its schedule)."""

    pilot: float | int = 0.1
    """The pilot labeled set: a fraction of the training set in (0, 1) or a count."""
    k: int = 100
    seeds: int = 3
    settings: LoopSettings = field(default_factory=LoopSettings)


@dataclass(frozen=True)
class Scored:
    """One model of one seed: its selection over the pool, train + score seconds and test error."""

    selection: Selection
    seconds: float
    error: float


@dataclass(frozen=True)
class SeedRow:
    """A candidate against the target on one seed's pilot."""

    candidate: str
    seed: int
    spearman: float
    top_k_overlap: float
    random_overlap: float
    seconds: float
    target_seconds: float
    error: float
    target_error: float


def pilot_size(pilot: float | int, n: int, k: int) -> int:
    """The pilot's count; a ConfigError when it is not in [1, n) or leaves fewer than ``k`` pool points."""
    if k < 1:
        raise ConfigError(f"--k must be at least 1, got {k}")
    if isinstance(pilot, float) and not 0 < pilot < 1:
        raise ConfigError(f"--pilot {pilot:g} must be a fraction in (0, 1) or a count")
    count = to_count(pilot, n, "pilot")
    if not 1 <= count < n:
        raise ConfigError(f"--pilot {pilot} is {count} examples; the training set has {n}, the pilot must leave a pool")
    if n - count < k:
        raise ConfigError(f"--pilot {pilot} leaves {n - count} pool examples, fewer than --k {k}")
    return count


def check_seeds(seeds: int) -> int:
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    return seeds


def run_suggest(
    dataset: Dataset,
    selector: SelectorSpec,
    target: Contender,
    candidates: list[Contender],
    cfg: SuggestConfig,
    progress: Progress | None = None,
) -> list[SeedRow]:
    """Every candidate against the target on ``cfg.seeds`` pilots: one row per (seed, candidate)."""
    if not selector.needs:
        raise ConfigError(f"selector {selector.name!r} uses no model: every proxy agrees with it trivially")
    progress = progress or NullProgress()
    n = len(dataset.train)
    count = pilot_size(cfg.pilot, n, cfg.k)
    check_seeds(cfg.seeds)
    rows: list[SeedRow] = []
    with progress.task(f"suggest-proxy: {len(candidates)} candidates", total=cfg.seeds) as advance:
        for seed in range(cfg.settings.seed, cfg.settings.seed + cfg.seeds):
            pilot = np.sort(np.random.default_rng(derive_seed(seed, "pilot")).choice(n, count, replace=False))
            pool = np.setdiff1d(np.arange(n), pilot)
            theirs = _score(dataset, selector, target, pilot.astype(np.int64), pool, seed, cfg, progress)
            for candidate in candidates:
                ours = _score(dataset, selector, candidate, pilot.astype(np.int64), pool, seed, cfg, progress)
                rows.append(_row(candidate.label, seed, ours, theirs, pool.size))
            advance(1)
    return rows


def _score(
    dataset: Dataset,
    selector: SelectorSpec,
    model: Contender,
    pilot: np.ndarray,
    pool: np.ndarray,
    seed: int,
    cfg: SuggestConfig,
    progress: Progress,
) -> Scored:
    """Train ``model`` on the pilot, score the pool and select ``k`` (train + score seconds timed)."""
    options = cfg.settings.options_for(derive_seed(seed, "selector", 1), model.epochs, model.options)
    observers = selector_observers(selector)
    outcome, learner = train_and_evaluate(model.spec, dataset, pilot, options, progress, model.label, observers)
    rng = np.random.default_rng(derive_seed(seed, "select", 1))
    ctx = SelectionContext(pool=pool, labeled=pilot, rng=rng, device=learner.device)
    with Timer(learner.device) as t:
        scoring.fill_selection_context(ctx, learner, selector)
        ctx.signals.update(observer_signals(observers))
        selection = scoring.select(selector, ctx, cfg.k)
    return Scored(selection, outcome.train_seconds + t.seconds, outcome.test_error)


def _row(label: str, seed: int, ours: Scored, theirs: Scored, pool_size: int) -> SeedRow:
    values = pool_agreement(
        ours.selection.scores,
        theirs.selection.scores,
        np.asarray(ours.selection.picks, dtype=np.int64),
        np.asarray(theirs.selection.picks, dtype=np.int64),
        pool_size,
    )
    return SeedRow(
        candidate=label,
        seed=seed,
        spearman=values["spearman"],
        top_k_overlap=values["top_k_overlap"],
        random_overlap=values["random_overlap"],
        seconds=ours.seconds,
        target_seconds=theirs.seconds,
        error=ours.error,
        target_error=theirs.error,
    )
