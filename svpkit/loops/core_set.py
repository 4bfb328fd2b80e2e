"""Core-set selection with a proxy (paper §3.2 / §4.2; docs/algorithms.md).

Stage 1: train the proxy on the whole training set (with the selector's training observer, if it
needs training dynamics) and rank *every* training example, best first. Stage 2: keep the head of
the ranking (``keep`` fraction or ``subset_size`` examples) and train the target from scratch on
it. Stage 3 (optional): the target on all data, the reference for the end-to-end speed-up
``full train seconds / (proxy train + ranking + target train on the subset)``.

Rankings are plain functions of :mod:`svpkit.loops.ranking`; which examples the subset keeps
beyond the head of one ranking (``--score-models``, ``--coverage ccs``, ``--class-balance``) is
:mod:`svpkit.loops.core_set_subset`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from svpkit.contract import CORE_SET, FULL_RUN_THIS_RUN, Artifact, Metric, Tag
from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.loops.agreement import core_set_agreement, observer_signals, resolve_mode, selector_observers
from svpkit.loops.budgets import to_count
from svpkit.loops.common import run_role, selection_run_params, selection_run_tags
from svpkit.loops.core_set_report import CoreSetResult, log_summary
from svpkit.loops.core_set_subset import (
    SubsetVariant,
    average_rankings,
    check_variants,
    choose_subset,
    score_model_seed,
)
from svpkit.loops.evaluation import log_class_errors
from svpkit.loops.ranking import rank_training_set, rank_with_proxy, training_labels
from svpkit.loops.reference import FullReference
from svpkit.loops.scoring import check_selection
from svpkit.loops.settings import LoopSettings, Role
from svpkit.loops.train import TrainOutcome, train_and_evaluate
from svpkit.models.base import ModelSpec
from svpkit.progress import NullProgress, Progress
from svpkit.protocols import Learner, LearnerOptions, Tracker, TrainObserver
from svpkit.runtime import derive_seed, resolve_device
from svpkit.selectors.base import Ranking, SelectorSpec
from svpkit.timing import Timer

DEFAULT_KEEP = 0.5
DEFAULT_SEED_SIZE = 1000


@dataclass(frozen=True)
class CoreSetConfig:
    """A core-set run: the shared settings (``settings``), the subset's size and spread, and the
    full-data reference of the speed-up."""

    keep: float | None = None
    """Fraction of the training set to keep, in (0, 1]; default 0.5 when ``subset_size`` is unset."""
    subset_size: int | None = None
    """Number of examples to keep (instead of ``keep``)."""
    seed_size: float | int = DEFAULT_SEED_SIZE
    """k-center's random seed points (count, or fraction of the training set)."""
    settings: LoopSettings = field(default_factory=LoopSettings)
    subset: SubsetVariant = field(default_factory=SubsetVariant)
    compare_full: bool = False
    full_reference: FullReference | None = None

    def selection_variant(self) -> dict[str, object]:
        """The selection settings beyond the selector (svpkit.loops.scoring.selector_settings)."""
        return {"class_balance": self.settings.class_balance, **self.subset.described()}


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
    check_variants(selector, cfg.subset, cfg.settings.class_balance, n, m)
    return m, seeds


def reference_description(cfg: CoreSetConfig) -> tuple[dict[str, str], dict[str, str]]:
    """The tag and param that name the run's full-data reference (a run id, or this run)."""
    tags = {}
    if cfg.full_reference is not None:
        tags[Tag.FULL_RUN] = cfg.full_reference.source
    elif cfg.compare_full:
        tags[Tag.FULL_RUN] = FULL_RUN_THIS_RUN
    return tags, {"full_run": cfg.full_reference.source if cfg.full_reference else ""}


def describe_run(
    dataset: Dataset, selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, cfg: CoreSetConfig
) -> tuple[dict[str, str], dict[str, object]]:
    """Tags and params of a core-set run (validated: raises ConfigError on impossible sizes)."""
    n = len(dataset.train)
    m, seeds = resolve_sizes(n, selector, cfg)
    check_selection(selector, CORE_SET.name, proxy, dataset, cfg.settings)
    tags = selection_run_tags(CORE_SET.name, dataset, selector, proxy, target, cfg)
    tags[Tag.SUBSET_SIZE] = str(m)
    tags[Tag.AGREEMENT] = agreement_mode(selector, proxy, target, cfg)
    reference_tags, reference_params = reference_description(cfg)
    tags |= reference_tags
    params = selection_run_params(dataset, selector, proxy, target, cfg) | {
        "keep": "" if cfg.keep is None and cfg.subset_size is not None else (cfg.keep or DEFAULT_KEEP),
        "subset_size": m,
        "seed_size": seeds,
        "compare_full": cfg.compare_full,
        **reference_params,
        "coverage": cfg.subset.coverage,
        "ccs_cutoff": cfg.subset.ccs_cutoff,
        "ccs_bins": cfg.subset.ccs_bins,
        "class_balance": cfg.settings.class_balance,
        "score_models": cfg.subset.score_models,
    }
    return tags, params


# -- the loop --------------------------------------------------------------------------------
def run_core_set(
    dataset: Dataset,
    selector: SelectorSpec,
    proxy: ModelSpec,
    target: ModelSpec,
    cfg: CoreSetConfig,
    tracker: Tracker,
    progress: Progress | None = None,
    resume_state: dict[str, object] | None = None,
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
    state: dict[str, object]
    subset_size: int
    seed_count: int

    @property
    def settings(self) -> LoopSettings:
        return self.cfg.settings

    def options(self, role: Role, seed_role: str, seed: int | None = None) -> LearnerOptions:
        """The ``role`` learner's options, seeded from ``seed_role`` (or with ``seed``)."""
        return self.settings.learner_options(role, derive_seed(self.settings.seed, seed_role) if seed is None else seed)

    def save(self, stage: int) -> None:
        self.state["round"] = stage
        self.tracker.save_state(self.state)

    def rank(self) -> None:
        """Stage 1: the proxy on all data ranks every training example; logs the ranking and the subset."""
        n, m = len(self.dataset.train), self.subset_size
        ranking, proxy_s, rank_s, proxy_error = self.rank_all()
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

    def rank_all(self) -> tuple[Ranking, float, float, float | None]:
        """``--score-models`` proxies rank the training set, their scores averaged, then the subset
        variant (coverage, class balance) orders its head: (ranking, proxy train seconds over all
        proxies, ranking seconds over all, mean proxy test error)."""
        rng = np.random.default_rng(derive_seed(self.settings.seed, "rank"))
        rankings, errors = [], []
        proxy_s = rank_s = 0.0
        for model in range(self.cfg.subset.score_models):
            options = self.options("proxy", "proxy", score_model_seed(self.settings.seed, model))
            ranking, train_s, ranking_s, error = rank_with_proxy(
                self.dataset,
                self.selector,
                self.proxy,
                options,
                self.subset_size,
                self.seed_count,
                rng,
                self.progress,
                self.settings.selector_options,
            )
            rankings.append(ranking)
            proxy_s, rank_s = proxy_s + train_s, rank_s + ranking_s
            errors += [] if error is None else [error]
        with Timer(resolve_device(self.settings.device)) as t:
            ranking = average_rankings(rankings)
            labels, classes = self.dataset.train.y, self.dataset.num_classes
            ranking, reports = choose_subset(ranking, self.subset_size, self.cfg.subset, self.settings, labels, classes)
        for path, report in reports.items():
            self.tracker.log_json(path, report)
        return ranking, proxy_s, rank_s + t.seconds, float(np.mean(errors)) if errors else None

    def train_target(self, subset: np.ndarray) -> None:
        """Stage 2: the target from scratch on the head of the ranking."""
        options = self.options("target", "target")
        outcome = train_and_evaluate(self.target, self.dataset, subset, options, self.progress, "target")[0]
        metrics = {Metric.TARGET_TRAIN_SECONDS: outcome.train_seconds, Metric.TARGET_ERROR: outcome.test_error}
        self.tracker.log_metrics(metrics, step=self.subset_size)
        log_class_errors(self.tracker, self.dataset, outcome.class_errors, self.subset_size, True, Artifact.PER_CLASS)
        self.state["target"] = asdict(outcome)
        self.save(2)

    def train_full(self) -> None:
        """Stage 3 (``compare_full``): the target on all data, this run's own full-data reference."""
        everything = np.arange(len(self.dataset.train), dtype=np.int64)
        options = self.options("target", "full")
        on = agreement_mode(self.selector, self.proxy, self.target, self.cfg) != "off"
        observers = selector_observers(self.selector) if on else []
        outcome, learner = train_and_evaluate(
            self.target, self.dataset, everything, options, self.progress, "full", observers
        )
        self.state["full"] = asdict(FullReference(outcome.train_seconds, outcome.test_error, FULL_RUN_THIS_RUN))
        if on:
            self.log_agreement(learner, observers)
        self.save(3)

    def log_agreement(self, learner: Learner, observers: list[TrainObserver]) -> None:
        """The full-data target ranks the training set too (same selector, same k-center seeds):
        ``agreement/*`` of the two rankings at step = subset size, outside every speed-up timer."""
        with Timer(learner.device) as t:
            rng = np.random.default_rng(derive_seed(self.settings.seed, "rank"))  # a fresh copy: the same seeds
            n = len(self.dataset.train)
            signals, labels = observer_signals(observers), training_labels(self.selector, self.dataset, learner.device)
            ranking = rank_training_set(
                self.selector,
                learner,
                signals,
                n,
                self.subset_size,
                self.seed_count,
                rng,
                labels,
                self.settings.selector_options,
            )
        metrics = core_set_agreement(_saved_ranking(self.state), ranking, self.subset_size)
        self.tracker.log_metrics(metrics | {Metric.AGREEMENT_SECONDS: t.seconds}, step=self.subset_size)


def agreement_mode(selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, cfg: CoreSetConfig) -> str:
    """The resolved ``--agreement`` of a core-set run: on with an in-run full-data fit of the target."""
    in_run = cfg.compare_full and cfg.full_reference is None
    needs = "the target trained on all data in this run (--compare-full true, no --full-run)"
    baseline = run_role(selector, proxy, target, cfg.settings) == "baseline"
    return resolve_mode(cfg.settings.agreement, selector, in_run, needs, baseline)


def _initial_state(resume_state: dict[str, Any] | None) -> dict[str, Any]:
    state: dict[str, object] = dict(resume_state or {"loop": CORE_SET.name, "round": 0})
    if state.get("loop") != CORE_SET.name:
        raise ConfigError(f"cannot resume a core-set run from {state.get('loop')!r} state")
    return state


def _saved_ranking(state: Mapping[str, object]) -> Ranking:
    """The ranking as stage 1 saved it (the same whether this process ranked or resumed)."""
    return Ranking(
        np.asarray(state["order"], dtype=np.int64),
        np.asarray(state["scores"], dtype=np.float32),
        np.asarray(state["seeds"], dtype=np.int64),
    )


def _check_order(order: np.ndarray, n: int, name: str) -> None:
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise RuntimeError(f"ranking by {name!r} is not a permutation of the {n} training examples")
