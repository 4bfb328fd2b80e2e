"""Batch active learning with a selector model (paper §3.1; docs/algorithms.md).

Start from a random labeled subset; for every budget level: build a fresh selector model, train
it on all labeled points, score the unlabeled pool with what the selector needs, add the batch
that brings the labeled set to the level, then train the target from scratch on the labeled set
and measure its test error. The *baseline* is the run whose selector model is the target itself.
Selection time per round = train + inference + selection seconds of the selector model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from svpkit.contract import ACTIVE_LEARNING, Artifact, Tag, round_artifact
from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.loops import scoring
from svpkit.loops.agreement import InRunAgreement, active_learning_mode, observer_signals, selector_observers
from svpkit.loops.al_records import ALResult, RoundRecord, log_round, log_summary
from svpkit.loops.budgets import resolve_budgets
from svpkit.loops.cold_start import initial_selection, lazy_inputs, selector_name
from svpkit.loops.common import selection_run_params, selection_run_tags
from svpkit.loops.eval_sample import DEFAULT_EVAL_SAMPLE, ErrorEstimate, sample_error, stratified_sample
from svpkit.loops.evaluation import log_class_errors, split_errors
from svpkit.loops.fitting import timed_fit
from svpkit.loops.scoring import pool_index
from svpkit.loops.settings import LoopSettings, Role
from svpkit.loops.stopping import StopMonitor, StopRule
from svpkit.models.base import ModelSpec
from svpkit.progress import NullProgress, Progress
from svpkit.protocols import Learner, LearnerOptions, Tracker
from svpkit.runtime import derive_seed, resolve_device
from svpkit.selectors.base import SelectionContext, SelectorSpec
from svpkit.timing import Timer


@dataclass(frozen=True)
class ALConfig:
    """An active-learning run: the shared settings (``settings``) and the levels, the initial set's
    selector, whether the target is trained, and when to stop."""

    initial: float | int = 0.01
    budgets: list[float | int] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5])
    settings: LoopSettings = field(default_factory=LoopSettings)
    train_target: bool = True
    initial_selector: SelectorSpec | str = "random"
    """``--initial-selector``: who picks the initial set (svpkit.loops.cold_start), its spec or name."""
    stop_when: StopRule | str | None = None
    """``--stop-when``: end the run when a stopping criterion holds (svpkit.loops.stopping; None: never)."""
    eval_sample: int = DEFAULT_EVAL_SAMPLE
    """``--eval-sample``: test examples the selector model's error is measured on (svpkit.loops.eval_sample)."""

    def selection_variant(self) -> dict[str, object]:
        """The selection settings beyond the selector (svpkit.loops.scoring.selector_settings)."""
        return {"class_balance": self.settings.class_balance, "initial_selector": selector_name(self.initial_selector)}


def describe_run(
    dataset: Dataset, selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, cfg: ALConfig
) -> tuple[dict[str, str], dict[str, object]]:
    """Tags and params of an active-learning run (the cross-run comparison keys)."""
    n = len(dataset.train)
    init, levels = resolve_budgets(cfg.initial, cfg.budgets, n)
    scoring.check_selection(selector, ACTIVE_LEARNING.name, proxy, dataset, cfg.settings)
    tags = selection_run_tags(ACTIVE_LEARNING.name, dataset, selector, proxy, target, cfg)
    tags[Tag.BUDGETS] = ",".join(map(str, [init, *levels]))
    tags[Tag.AGREEMENT] = active_learning_mode(selector, proxy, target, cfg.settings, cfg.train_target)
    sizes = {"initial": cfg.initial, "budgets": ",".join(map(str, cfg.budgets)), "initial_count": init}
    flags = {"deterministic": cfg.settings.deterministic, "class_balance": cfg.settings.class_balance}
    params = selection_run_params(dataset, selector, proxy, target, cfg) | sizes | flags
    params["labeled_levels"] = ",".join(map(str, levels))
    return tags, params


def run_active_learning(
    dataset: Dataset,
    selector: SelectorSpec,
    proxy: ModelSpec,
    target: ModelSpec,
    cfg: ALConfig,
    tracker: Tracker,
    progress: Progress | None = None,
    resume_state: dict[str, Any] | None = None,
) -> ALResult:
    """Run every budget level as one round (see the module docstring); with ``resume_state`` the
    finished rounds are taken from it and the run goes on from the next one."""
    progress = progress or NullProgress()
    n = len(dataset.train)
    init_count, levels = resolve_budgets(cfg.initial, cfg.budgets, n)
    device = resolve_device(cfg.settings.device)
    first = initial_selection(
        dataset, cfg.initial_selector, init_count, cfg.settings.seed, cfg.settings.selector_options
    )
    initial = first.picks
    selected, records = _restore(resume_state, initial, tracker, cfg)
    if first.info and resume_state is None:
        said = {"selector": selector_name(cfg.initial_selector), **first.info}
        tracker.log_json(round_artifact(0, Artifact.INITIAL_SELECTOR_INFO), said)
    rounds = _Rounds(dataset, selector, proxy, target, cfg, progress, device)
    rounds.agreement.restore(resume_state)
    rounds.stopping.restore(resume_state)
    with progress.task(f"active learning: {selector.name} with {proxy.name}", total=len(levels)) as advance_rounds:
        advance_rounds(len(records))
        for round_no in range(len(records) + 1, len(levels) + 1):
            labeled = np.concatenate([initial, *selected])
            record, scores, picks = rounds.play(round_no, labeled, levels[round_no - 1])
            selected.append(picks)
            records.append(record)
            log_round(tracker, record, scores, picks, np.concatenate([labeled, picks]), records)
            if record.target_class_errors is not None:
                final = round_no == len(levels)
                artifact = round_artifact(round_no, Artifact.PER_CLASS)
                log_class_errors(tracker, dataset, record.target_class_errors, record.labeled_after, final, artifact)
            if rounds.balance is not None:
                tracker.log_json(round_artifact(round_no, Artifact.CLASS_BALANCE), rounds.balance)
            rounds.agreement.log(tracker, record.labeled_after)
            state = _state(round_no, initial, selected, records, cfg) | rounds.agreement.state()
            tracker.save_state(state | rounds.stopping.state())
            advance_rounds(1)
            if rounds.stopping.after_round(tracker, round_no):  # --stop-when held: later levels are not run
                break
    rounds.stopping.log_figure(tracker, f"{dataset.name}: stopping criteria ({selector.name})")
    result = ALResult(initial=initial, selected=selected, rounds=records, levels=levels[: len(records)])
    log_summary(tracker, result, dataset, selector, proxy, target)
    result.proxy_warning = rounds.agreement.finish(tracker, f"{dataset.name}: {proxy.name} vs target {target.name}")
    return result


def _restore(
    resume_state: dict[str, Any] | None, initial: np.ndarray, tracker: Tracker, cfg: ALConfig
) -> tuple[list[np.ndarray], list[RoundRecord]]:
    """The selected batches and records of the finished rounds (none for a new run, which logs round 0)."""
    if resume_state is None:
        tracker.log_array("rounds/0/labeled.npy", initial)
        # Round 0: a run interrupted during its first round is resumable too.
        tracker.save_state(_state(0, initial, [], [], cfg))
        return [], []
    # Randomness is derived from (seed, role, round), so the state needs no RNG snapshots;
    # the initial set is checked to catch a changed data set or seed.
    saved_initial = resume_state.get("initial")
    if saved_initial is not None and not np.array_equal(np.asarray(saved_initial, dtype=np.int64), initial):
        raise ConfigError("cannot resume: the data set or seed differs from the interrupted run's")
    selected = [np.asarray(s, dtype=np.int64) for s in resume_state["selected"]]
    return selected, [RoundRecord(**r) for r in resume_state["rounds"]]


@dataclass
class _Rounds:
    """Plays the rounds of one run; remembers which models already paid the process's warm-up."""

    dataset: Dataset
    selector: SelectorSpec
    proxy: ModelSpec
    target: ModelSpec
    cfg: ALConfig
    progress: Progress
    device: torch.device
    warmed: bool = False
    target_warmed: bool = False
    balance: dict[str, object] | None = None
    """What class balance did in the last round (``--class-balance``)."""
    agreement: InRunAgreement = field(init=False)
    stopping: StopMonitor = field(init=False)
    eval_positions: np.ndarray | None = field(init=False)
    """The test examples of the selector model's error (None: the whole split)."""

    def __post_init__(self) -> None:
        models = (self.proxy, self.target)
        self.agreement = InRunAgreement.for_run(
            self.selector, models, self.settings, self.cfg.train_target, self.device
        )
        self.stopping = StopMonitor.for_run(len(self.dataset.train), self.settings.seed, self.cfg.stop_when)
        labels = self.dataset.test.y.numpy()
        self.eval_positions = stratified_sample(labels, self.cfg.eval_sample, self.settings.seed)

    @property
    def settings(self) -> LoopSettings:
        return self.cfg.settings

    def options(self, role: Role, round_no: int) -> LearnerOptions:
        """Round ``round_no``'s options of the proxy (seeded as the ``selector``) or the target."""
        seed_role = "selector" if role == "proxy" else role
        return self.settings.learner_options(role, derive_seed(self.settings.seed, seed_role, round_no))

    def play(self, round_no: int, labeled: np.ndarray, level: int) -> tuple[RoundRecord, np.ndarray, np.ndarray]:
        """Round ``round_no``: select the batch that brings ``labeled`` to ``level``, then train the
        target on the new labeled set. Returns (record, the selector's pool scores, picks)."""
        k = level - len(labeled)
        pool = pool_index(len(self.dataset.train), labeled)
        rng = np.random.default_rng(derive_seed(self.settings.seed, "select", round_no))
        ctx = SelectionContext(pool, labeled, rng, self.device, options=dict(self.settings.selector_options))
        ctx.inputs = lazy_inputs(self.dataset)
        ctx.stop_kappas = [k for k in self.stopping.kappas if k is not None] if self.cfg.train_target else None
        train_s = infer_s = warm_s = eval_s = 0.0
        estimate: ErrorEstimate | None = None
        if self.selector.trains_model(ctx.options):
            train_s, infer_s, warm_s, estimate, eval_s = self.score(ctx, round_no, k)
        with Timer(self.device) as t, self.progress.task(f"round {round_no}: select {k:,} of {len(pool):,}", None):
            # a sharded pool under torchrun; --class-balance: the labeled set's class proportions
            y = self.dataset.train.y[labeled]
            balance = y.bincount(minlength=self.dataset.num_classes).numpy() if self.settings.class_balance else None
            selection, self.balance = scoring.select_batch(self.selector, ctx, k, balance)
        picks = np.asarray(selection.picks, dtype=np.int64)
        scoring.check_picks(picks, pool, k, self.selector.name)
        if self.agreement.missing_target(round_no):  # resumed: the previous round's target was not saved
            with Timer(self.device) as refit:
                self.fit_target(labeled, round_no - 1)
            self.agreement.extra_seconds = refit.seconds
        self.agreement.measure(round_no, ctx, selection, k)  # timed apart: not a selection cost
        target_error = target_s = class_errors = None
        if self.cfg.train_target:
            target_error, target_s, class_errors = self.train_target(np.concatenate([labeled, picks]), round_no)
        record = RoundRecord(
            round=round_no,
            labeled_before=level - k,
            labeled_after=level,
            train_seconds=train_s,
            inference_seconds=infer_s,
            selection_seconds=t.seconds,
            selector_model_error=None if estimate is None else estimate.error,
            target_error=target_error,
            target_train_seconds=target_s,
            warmup_seconds=warm_s,
            target_class_errors=class_errors,
            selector_info=selection.info or None,
            eval_seconds=eval_s,
        )
        if estimate is not None:
            record.selector_model_error_interval = [estimate.low, estimate.high]
            record.selector_model_eval_count = estimate.n
        return record, selection.scores, picks

    def score(self, ctx: SelectionContext, round_no: int, k: int) -> tuple[float, float, float, ErrorEstimate, float]:
        """Fit a fresh selector model on ``ctx.labeled`` and fill ``ctx`` with what the selector
        needs to pick ``k`` (a ``subpool``: only its candidates are scored). Returns (train, inference and warm-up seconds, the selector model's test error on the
        evaluation sample, the seconds of that pass)."""
        options = self.options("proxy", round_no)
        observers = selector_observers(self.selector)
        task = f"round {round_no}: train {self.proxy.name} on {len(ctx.labeled)}"
        # Round 1's warm-up is reported separately and counted in the round's total: otherwise
        # round 1 alone would carry the lazy start-up of torch (and any compilation).
        fitted = timed_fit(
            self.proxy, self.dataset, options, ctx.labeled, self.progress, task, observers, not self.warmed
        )
        self.warmed = True
        learner, train_s, warm_s = fitted.learner, fitted.seconds, fitted.warmup_seconds
        with Timer(self.device) as t:
            balance, progress = self.settings.class_balance, self.progress  # torchrun: each rank keeps its shard
            scoring.fill_selection_context(ctx, learner, self.selector, balance, progress, k, keep_shard=True)
            ctx.signals.update(observer_signals(observers))
        n = len(self.dataset.test) if self.eval_positions is None else len(self.eval_positions)
        with Timer(self.device) as t_eval, self.progress.task(f"round {round_no}: test error on {n:,}", None):
            estimate = sample_error(learner, self.dataset, self.eval_positions)
        return train_s, t.seconds, warm_s, estimate, t_eval.seconds

    def train_target(self, labeled: np.ndarray, round_no: int) -> tuple[float, float, list[float | None]]:
        """(test error, train seconds, per-class test errors) of a fresh target trained on ``labeled``."""
        learner, seconds = self.fit_target(labeled, round_no)
        self.stopping.observe(learner, len(labeled))  # the stopping criteria read the round's target
        error, class_errors = split_errors(learner, self.dataset)
        return error, seconds, class_errors

    def fit_target(self, labeled: np.ndarray, round_no: int) -> tuple[Learner, float]:
        """Round ``round_no``'s target fitted on ``labeled`` (kept for the next round's agreement); its fit seconds."""
        options = self.options("target", round_no)
        observers = self.agreement.target_observers()
        task = f"round {round_no}: train target {self.target.name} on {len(labeled)}"
        # The warm-up is not a selection cost; it keeps round 1's target time comparable.
        fitted = timed_fit(
            self.target, self.dataset, options, labeled, self.progress, task, observers, not self.target_warmed
        )
        self.target_warmed = True
        learner = fitted.learner
        self.agreement.keep(learner, observers)  # it scores the next round's pool
        return learner, fitted.seconds


def _state(
    round_no: int, initial: np.ndarray, selected: list[np.ndarray], records: list[RoundRecord], cfg: ALConfig
) -> dict[str, object]:
    """What ``--resume`` needs after a finished round (see svpkit.tracking.resume)."""
    return {
        "loop": ACTIVE_LEARNING.name,
        "round": round_no,
        "initial": initial.tolist(),
        "selected": [s.tolist() for s in selected],
        "rounds": [r.__dict__ for r in records],
        "rng": {"seed": cfg.settings.seed, "derivation": "derive_seed(seed, role, round)"},
        "remaining_levels": len(cfg.budgets) - round_no,
    }
