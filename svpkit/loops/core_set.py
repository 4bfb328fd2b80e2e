"""Core-set selection with a proxy (paper §3.2 / §4.2; docs/algorithms.md).

Stage 1: train the proxy on the whole training set (with the selector's training observer, if it
needs training dynamics) and rank *every* training example, best first. Stage 2: keep the head of
the ranking (``keep`` fraction or ``subset_size`` examples) and train the target from scratch on
it. Stage 3 (optional): the target on all data, the reference for the end-to-end speed-up
``full train seconds / (proxy train + ranking + target train on the subset)``.

Rankings (:func:`rank_training_set`, :func:`rank_with_proxy`) are plain functions so that other
code (comparisons, presets) can rank a data set without running the loop. A selector with a
``rank`` (uncertainty, greedy k-center, forgetting events: see their modules) ranks the training
set itself; any other selector (plugins, ``random``) is asked to pick the whole pool in order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from svpkit.contract import CORE_SET, Artifact, Metric, Tag
from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.loops.budgets import to_count
from svpkit.loops.common import learner_options, selection_run_params, selection_run_tags
from svpkit.loops.core_set_report import CoreSetResult, log_summary
from svpkit.loops.reference import FullReference
from svpkit.loops.train import TrainOutcome, train_and_evaluate
from svpkit.models.base import ModelSpec
from svpkit.progress import NullProgress, Progress
from svpkit.protocols import Learner, LearnerOptions, Tracker, TrainObserver
from svpkit.runtime import derive_seed, resolve_device
from svpkit.selectors.base import RankContext, Ranking, SelectionContext, SelectorSpec
from svpkit.timing import Timer

DEFAULT_KEEP = 0.5
DEFAULT_SEED_SIZE = 1000


@dataclass
class CoreSetConfig:
    keep: float | None = None
    """Fraction of the training set to keep, in (0, 1]; default 0.5 when ``subset_size`` is unset."""
    subset_size: int | None = None
    """Number of examples to keep (instead of ``keep``)."""
    seed_size: float | int = DEFAULT_SEED_SIZE
    """k-center's random seed points (count, or fraction of the training set)."""
    seed: int = 0
    device: str = "auto"
    proxy_epochs: int | None = None
    target_epochs: int | None = None
    batch_size: int | None = None
    compare_full: bool = False
    full_reference: FullReference | None = None
    deterministic: bool = False
    """PyTorch's deterministic algorithms (svpkit.determinism; matters on GPU)."""
    proxy_options: dict[str, Any] = field(default_factory=dict)
    """Options of the proxy (``--proxy-options``; svpkit.models.options)."""
    target_options: dict[str, Any] = field(default_factory=dict)


# -- validation ------------------------------------------------------------------------------
def resolve_sizes(n: int, selector: SelectorSpec, cfg: CoreSetConfig) -> tuple[int, int]:
    """(subset size, k-center seed count) for ``n`` training examples; ConfigError when impossible."""
    if cfg.keep is not None and cfg.subset_size is not None:
        raise ConfigError("give keep (a fraction) or subset_size (a count), not both")
    if cfg.subset_size is not None:
        if cfg.subset_size < 1:
            raise ConfigError(f"subset size {cfg.subset_size} must be at least 1")
        if cfg.subset_size > n:
            raise ConfigError(f"subset size {cfg.subset_size} is larger than the {n} training examples")
        m = int(cfg.subset_size)
    else:
        keep = DEFAULT_KEEP if cfg.keep is None else float(cfg.keep)
        if not 0 < keep <= 1:
            raise ConfigError(f"keep {keep:g} is outside (0, 1] (the fraction of the training set to keep)")
        m = int(round(keep * n))
        if m < 1:
            raise ConfigError(f"keep {keep:g} of {n} examples is less than one example")
    seeds = 0
    if "embeddings" in selector.needs:
        if isinstance(cfg.seed_size, (int, float)) and cfg.seed_size <= 0:
            raise ConfigError(f"{selector.name} needs at least one seed point (seed size {cfg.seed_size})")
        seeds = to_count(cfg.seed_size, n, "seed size")
        if seeds > m:
            raise ConfigError(
                f"{selector.name}: the {seeds} seed points count toward the subset but the subset has only {m} "
                "examples (lower --seed-size, e.g. a fraction like 0.02)"
            )
    return m, seeds


def describe_run(
    dataset: Dataset, selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, cfg: CoreSetConfig
) -> tuple[dict[str, str], dict[str, Any]]:
    """Tags and params of a core-set run (validated: raises ConfigError on impossible sizes)."""
    n = len(dataset.train)
    m, seeds = resolve_sizes(n, selector, cfg)
    tags = selection_run_tags(CORE_SET.name, dataset, selector, proxy, target, cfg)
    tags[Tag.SUBSET_SIZE] = str(m)
    if cfg.full_reference is not None:
        tags[Tag.FULL_RUN] = cfg.full_reference.source
    elif cfg.compare_full:
        tags[Tag.FULL_RUN] = "this run"
    params = selection_run_params(dataset, selector, proxy, target, cfg) | {
        "keep": "" if cfg.keep is None and cfg.subset_size is not None else (cfg.keep or DEFAULT_KEEP),
        "subset_size": m,
        "seed_size": seeds,
        "compare_full": cfg.compare_full,
        "full_run": cfg.full_reference.source if cfg.full_reference else "",
    }
    return tags, params


# -- ranking ---------------------------------------------------------------------------------
def rank_training_set(
    selector: SelectorSpec,
    learner: Learner | None,
    signals: dict[str, torch.Tensor],
    num_train: int,
    subset_size: int,
    seed_count: int,
    rng: np.random.Generator,
) -> Ranking:
    """Rank all ``num_train`` training examples with ``selector`` using a trained ``learner``.

    ``signals`` is what the selector's training observer returned (training-dynamics selectors).
    ``subset_size`` and ``seed_count`` matter only for k-center (it grows the seed set to the
    subset size); ``rng`` draws the seeds and feeds random/plugin selectors.
    """
    if selector.needs - {"training_dynamics"} and learner is None:
        raise ValueError(f"selector {selector.name!r} needs a trained selector model")
    ctx = RankContext(learner, signals, num_train, subset_size, seed_count, rng)
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
    ctx = SelectionContext(pool=pool, labeled=seeds, rng=rank_ctx.rng, device=device, signals=dict(rank_ctx.signals))
    if learner is not None and "probabilities" in selector.needs:
        ctx.probabilities = learner.predict_proba(pool, "train")
    if learner is not None and "embeddings" in selector.needs:
        ctx.pool_embeddings = learner.embed(pool, "train")
        ctx.labeled_embeddings = learner.embed(seeds, "train")
    selection = selector.select(ctx, pool.size)
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
            signals.update(obs.result())  # type: ignore[attr-defined]
        ranking = rank_training_set(selector, learner, signals, n, subset_size, seed_count, rng)
    ranking_s = t_rank.seconds
    return ranking, train_s, ranking_s, error


# -- the loop --------------------------------------------------------------------------------
def run_core_set(
    dataset: Dataset,
    selector: SelectorSpec,
    proxy: ModelSpec,
    target: ModelSpec,
    cfg: CoreSetConfig,
    tracker: Tracker,
    progress: Progress | None = None,
    resume_state: dict[str, Any] | None = None,
) -> CoreSetResult:
    """Rank with the proxy, train the target on the head of the ranking, compare with all data.

    State is saved after each stage (1 = ranking, 2 = target on the subset, 3 = full reference);
    with ``resume_state`` the finished stages are skipped. Every stage has its own derived seed,
    so a resumed run produces what an uninterrupted one would.
    """
    progress = progress or NullProgress()
    m, seed_count = resolve_sizes(len(dataset.train), selector, cfg)
    state = _initial_state(resume_state)
    stages = _Stages(dataset, selector, proxy, target, cfg, tracker, progress, state, m, seed_count)
    with progress.task(f"core-set: {selector.name} via {proxy.name}", total=3) as advance:
        advance(min(int(state["round"]), 3))
        if state["round"] < 1:
            stages.rank()
            advance(1)
        if state["round"] < 2:
            stages.train_target(_saved_ranking(state).order[:m].copy())
            advance(1)
        if cfg.full_reference is None and cfg.compare_full and state["round"] < 3:
            stages.train_full()
        advance(1)
    ranking = _saved_ranking(state)
    full = cfg.full_reference
    if full is None and cfg.compare_full:
        full = FullReference(**state["full"])
    result = CoreSetResult(
        ranking=ranking,
        subset=ranking.order[:m].copy(),
        proxy_train_seconds=float(state["proxy_train_seconds"]),
        ranking_seconds=float(state["ranking_seconds"]),
        proxy_error=state["proxy_error"],
        target=TrainOutcome(**state["target"]),
        full=full,
    )
    log_summary(tracker, result, dataset, selector, proxy, target)
    return result


@dataclass
class _Stages:
    """The stages of one core-set run; ``state`` is what ``--resume`` reads (``round`` = stages done)."""

    dataset: Dataset
    selector: SelectorSpec
    proxy: ModelSpec
    target: ModelSpec
    cfg: CoreSetConfig
    tracker: Tracker
    progress: Progress
    state: dict[str, Any]
    subset_size: int
    seed_count: int

    def options(self, role: str, epochs: int | None) -> LearnerOptions:
        model_options = self.cfg.proxy_options if role == "proxy" else self.cfg.target_options
        return learner_options(self.cfg, derive_seed(self.cfg.seed, role), epochs, model_options)

    def save(self, stage: int) -> None:
        self.state["round"] = stage
        self.tracker.save_state(self.state)

    def rank(self) -> None:
        """Stage 1: the proxy on all data ranks every training example; logs the ranking and the subset."""
        n, m = len(self.dataset.train), self.subset_size
        ranking, proxy_s, rank_s, proxy_error = rank_with_proxy(
            self.dataset,
            self.selector,
            self.proxy,
            self.options("proxy", self.cfg.proxy_epochs),
            m,
            self.seed_count,
            np.random.default_rng(derive_seed(self.cfg.seed, "rank")),
            self.progress,
        )
        _check_order(ranking.order, n, self.selector.name)
        metrics = {Metric.PROXY_TRAIN_SECONDS: proxy_s, Metric.RANKING_SECONDS: rank_s}
        if proxy_error is not None:
            metrics[Metric.PROXY_ERROR] = proxy_error
        self.tracker.log_metrics(metrics, step=n)
        self.tracker.log_metrics({Metric.SELECTION_TOTAL_SECONDS: proxy_s + rank_s}, step=m)
        self.tracker.log_array(Artifact.RANKING_ORDER, ranking.order)
        self.tracker.log_array(Artifact.RANKING_SCORES, ranking.scores)
        if ranking.seeds.size:
            self.tracker.log_array(Artifact.RANKING_SEEDS, ranking.seeds)
        self.tracker.log_array(Artifact.SUBSET, ranking.order[:m].copy())
        self.state.update(
            proxy_train_seconds=proxy_s,
            ranking_seconds=rank_s,
            proxy_error=proxy_error,
            order=ranking.order.tolist(),
            scores=[float(s) for s in ranking.scores],
            seeds=ranking.seeds.tolist(),
        )
        self.save(1)

    def train_target(self, subset: np.ndarray) -> None:
        """Stage 2: the target from scratch on the head of the ranking."""
        options = self.options("target", self.cfg.target_epochs)
        outcome = train_and_evaluate(self.target, self.dataset, subset, options, self.progress, "target")[0]
        metrics = {Metric.TARGET_TRAIN_SECONDS: outcome.train_seconds, Metric.TARGET_ERROR: outcome.test_error}
        self.tracker.log_metrics(metrics, step=self.subset_size)
        self.state["target"] = asdict(outcome)
        self.save(2)

    def train_full(self) -> None:
        """Stage 3 (``compare_full``): the target on all data, this run's own full-data reference."""
        everything = np.arange(len(self.dataset.train), dtype=np.int64)
        options = self.options("full", self.cfg.target_epochs)
        outcome = train_and_evaluate(self.target, self.dataset, everything, options, self.progress, "full")[0]
        self.state["full"] = asdict(FullReference(outcome.train_seconds, outcome.test_error, "this run"))
        self.save(3)


def _initial_state(resume_state: dict[str, Any] | None) -> dict[str, Any]:
    state: dict[str, Any] = dict(resume_state or {"loop": CORE_SET.name, "round": 0})
    if state.get("loop") != CORE_SET.name:
        raise ConfigError(f"cannot resume a core-set run from {state.get('loop')!r} state")
    return state


def _saved_ranking(state: dict[str, Any]) -> Ranking:
    """The ranking as stage 1 saved it (the same whether this process ranked or resumed)."""
    return Ranking(
        np.asarray(state["order"], dtype=np.int64),
        np.asarray(state["scores"], dtype=np.float32),
        np.asarray(state["seeds"], dtype=np.int64),
    )


def _check_order(order: np.ndarray, n: int, name: str) -> None:
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise RuntimeError(f"ranking by {name!r} is not a permutation of the {n} training examples")
