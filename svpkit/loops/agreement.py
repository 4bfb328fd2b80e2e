"""Proxy agreement inside a run: does the target, trained on the proxy's labeled set, pick what the proxy picked?

Active learning (:class:`InRunAgreement`): the target trained at the end of round ``r − 1`` saw
exactly the labeled set the proxy of round ``r`` is trained on. Before it is dropped it scores
round ``r``'s pool through the same selector (the same :func:`svpkit.loops.scoring.fill_selection_context`
path, its own training dynamics for training-dynamics selectors, the same initial centres for
k-center: the labeled set), and :func:`svpkit.selectors.agreement.pool_agreement` compares the
two selections. Its randomness comes from ``derive_seed(seed, "agreement", round)``, never from
the selection's generator, so the proxy's picks are those of a run without agreement. The
seconds go to ``agreement/seconds``, outside the selection timers (the speed-up keeps the
paper's definition). A resumed run refits the previous round's target (same seed, so the same
model on the CPU) for its first round's measurement, and its state carries the history, so it
logs what an uninterrupted run logs.

Modes (``--agreement``): ``off``; ``full``: the target runs the selection of the same ``k``;
``scores``: the same, except that selectors needing embeddings (greedy k-center, BADGE: each pick
is a pass over the pool) select one point only, for their pool scores, so only Spearman is logged;
``auto``: ``full`` when the target is trained at every level and the selector has a model, else
``off``. Core-set runs (:func:`core_set_agreement`) compare the proxy's ranking with the target's
ranking of its in-run full-data fit (``--compare-full true``); both modes rank the whole set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from svpkit import plots
from svpkit.contract import Artifact, Metric, Tag
from svpkit.errors import ConfigError
from svpkit.loops import scoring
from svpkit.loops.common import run_role
from svpkit.loops.settings import LoopSettings
from svpkit.models.base import ModelSpec
from svpkit.protocols import Learner, Tracker, TrainObserver
from svpkit.runtime import derive_seed
from svpkit.selectors.agreement import RoundAgreement, pool_agreement, proxy_warning
from svpkit.selectors.base import Ranking, Selection, SelectionContext, SelectorSpec
from svpkit.timing import Timer

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODES = ("auto", "off", "scores", "full")


def check_mode(value: str) -> str:
    """``--agreement``: one of :data:`MODES` (case-insensitive)."""
    mode = value.strip().lower()
    if mode not in MODES:
        raise ConfigError(f"agreement must be one of {', '.join(MODES)}, got {value!r}")
    return mode


def resolve_mode(
    mode: str, selector: SelectorSpec, target_trained: bool, needs: str, baseline: bool, options: Any = None
) -> str:
    """The mode a run uses (tag ``svpkit.agreement``): ``off``, ``scores`` or ``full``.

    Agreement needs a selector model and ``target_trained``: a target trained on the proxy's
    training set in this run (``needs`` says how). ``auto`` is ``full`` then, unless the run is a
    ``baseline`` (the selector model is the target), else ``off``; an explicit ``scores``/``full``
    that cannot be measured is a ConfigError.
    """
    mode = check_mode(mode)
    has_model = selector.trains_model(options or {})  # options: e.g. embedding=input needs no model
    possible = has_model and target_trained
    if mode == "auto":
        return "full" if possible and not baseline else "off"
    if mode != "off" and not possible:
        raise ConfigError(f"--agreement {mode} needs {'a selector with a model' if not has_model else needs}")
    return mode


def active_learning_mode(
    selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, settings: LoopSettings, train_target: bool
) -> str:
    """The resolved mode of an active-learning run (``settings.agreement``; ``train_target``: the
    target is trained at every level, which the measurement needs)."""
    needs = "the target trained at every level (--train-target)"
    baseline = run_role(selector, proxy, target, settings) == "baseline"
    return resolve_mode(settings.agreement, selector, train_target, needs, baseline, settings.selector_options)


def selector_observers(selector: SelectorSpec) -> list[TrainObserver]:
    return [selector.observer()] if selector.observer is not None else []


def observer_signals(observers: list[TrainObserver]) -> dict[str, torch.Tensor]:
    signals: dict[str, torch.Tensor] = {}
    for obs in observers:
        signals.update(obs.result())
    return signals


@dataclass
class InRunAgreement:
    """The agreement of one active-learning run, round by round (inactive when ``mode`` is ``off``)."""

    selector: SelectorSpec
    mode: str
    seed: int
    device: torch.device
    previous: tuple[Learner, list[TrainObserver]] | None = None
    pending: dict[str, float] = field(default_factory=dict)
    history: list[RoundAgreement] = field(default_factory=list)
    rows: list[dict[str, float]] = field(default_factory=list)
    extra_seconds: float = 0.0
    """Agreement-only work before the next :meth:`measure` (a resumed run refits the previous target)."""

    @classmethod
    def for_run(
        cls,
        selector: SelectorSpec,
        models: tuple[ModelSpec, ModelSpec],
        settings: LoopSettings,
        train_target: bool,
        device: torch.device,
    ) -> InRunAgreement:
        """The agreement of an active-learning run with these (proxy, target) ``models``."""
        mode = active_learning_mode(selector, *models, settings, train_target)
        return cls(selector, mode, settings.seed, device)

    def missing_target(self, round_no: int) -> bool:
        """True when round ``round_no`` should be measured but has no kept target (the first round after a resume)."""
        return self.mode != "off" and self.previous is None and round_no >= 2

    def state(self) -> dict[str, object]:
        """What a resumed run needs to go on with the same warning and figure (merged into the loop's state)."""
        return {"agreement": {"history": [asdict(h) for h in self.history], "rows": self.rows}}

    def restore(self, resume_state: dict[str, Any] | None) -> None:
        saved = (resume_state or {}).get("agreement") or {}
        self.history = [RoundAgreement(**h) for h in saved.get("history", [])]
        self.rows = [dict(r) for r in saved.get("rows", [])]

    def target_observers(self) -> list[TrainObserver]:
        """Observers for the target's fit (its own training dynamics), none when inactive."""
        return selector_observers(self.selector) if self.mode != "off" else []

    def keep(self, learner: Learner, observers: list[TrainObserver]) -> None:
        """The target just trained on the next round's labeled set (dropped at the next :meth:`measure`)."""
        if self.mode != "off":
            self.previous = (learner, observers)

    def measure(self, round_no: int, ctx: SelectionContext, proxy: Selection, k: int) -> None:
        """The round's agreement metrics, kept for :meth:`log` (none before a kept target); ``ctx`` is not touched."""
        if self.previous is None:
            return
        learner, observers = self.previous
        self.previous = None
        rng = np.random.default_rng(derive_seed(self.seed, "agreement", round_no))
        options = {k: v for k, v in ctx.options.items() if k != scoring.SHARD_OPTION}  # set again by the fill
        ours = SelectionContext(pool=ctx.pool, labeled=ctx.labeled, rng=rng, device=ctx.device, options=options)
        # The same representation and hand-over evidence as the proxy's pick (auto: input embedding, κ).
        ours.inputs, ours.stop_kappas = ctx.inputs, ctx.stop_kappas
        picks_k = 1 if self.mode == "scores" and "embeddings" in self.selector.needs else k
        with Timer(self.device) as t:
            scoring.fill_selection_context(ours, learner, self.selector, keep_shard=True)
            ours.signals.update(observer_signals(observers))
            target = scoring.select(self.selector, ours, picks_k)
        proxy_picks = np.asarray(proxy.picks, dtype=np.int64)
        target_picks = np.asarray(target.picks, dtype=np.int64)
        size = len(ctx.pool)
        if len(proxy.scores) != size or len(target.scores) != size:
            return  # torchrun: the pool's scores are on rank 0 only (svpkit.selectors.shard_top_k), which logs
        if picks_k < k:  # scores only: the picks compared are the proxy's own, i.e. Spearman alone
            target_picks = proxy_picks
        values = pool_agreement(proxy.scores, target.scores, proxy_picks, target_picks, size)
        metrics = {
            Metric.AGREEMENT_SPEARMAN: values["spearman"],
            Metric.AGREEMENT_SECONDS: t.seconds + self.extra_seconds,
        }
        self.extra_seconds = 0.0
        if picks_k == k:
            metrics[Metric.AGREEMENT_TOP_K] = values["top_k_overlap"]
            metrics[Metric.AGREEMENT_RANDOM] = values["random_overlap"]
            self.history.append(RoundAgreement(round_no, k, size, values["top_k_overlap"]))
        self.pending = metrics

    def log(self, tracker: Tracker, step: int) -> None:
        """Log the measured round's metrics at ``step`` (the labeled count after the round)."""
        if self.pending:
            tracker.log_metrics(self.pending, step=step)
            self.rows.append({Metric.LABELED_COUNT: float(step), **self.pending})
            self.pending = {}

    def finish(self, tracker: Tracker, title: str) -> str | None:
        """The figure and, when the overlap stayed within noise of random, the warning tag; returns the warning."""
        if not self.rows:
            return None
        fig = agreement_figure(self.rows, title)
        tracker.log_figure(fig, Artifact.AGREEMENT_FIGURE)
        plots.close(fig)
        warning = proxy_warning(self.history)
        if warning is not None:
            tracker.set_tags({Tag.PROXY_WARNING: warning})
        return warning


def agreement_figure(rows: list[dict[str, float]], title: str) -> Figure:
    """Top-k overlap with its random line, and Spearman, against the labeled count."""
    fig, ax = plots.plt.subplots(figsize=(6, 4), dpi=100)
    for key, label, style in (
        (Metric.AGREEMENT_TOP_K, "top-k overlap with the target", "o-"),
        (Metric.AGREEMENT_RANDOM, "random picks (k / |pool|)", "--"),
        (Metric.AGREEMENT_SPEARMAN, "Spearman of pool scores", "s-"),
    ):
        points = [(r[Metric.LABELED_COUNT], r[key]) for r in rows if key in r]
        if points:
            ax.plot(*zip(*points), style, label=label)
    ax.set_xlabel("labeled examples after the round")
    ax.set_ylabel("agreement of proxy and target")
    ax.set_ylim(min(-0.05, *(r[Metric.AGREEMENT_SPEARMAN] for r in rows)), 1.05)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def core_set_agreement(proxy: Ranking, target: Ranking, subset_size: int) -> dict[str, float]:
    """Agreement of two core-set rankings over the points they choose (k-center's shared seeds left out).

    Spearman of the scores over the non-seed points; top-k overlap of the two kept subsets beyond the
    seeds (``k = subset size − seeds``; none when the seeds fill the subset).
    """
    seeds = proxy.seeds
    pool = np.setdiff1d(np.arange(proxy.scores.size), seeds)
    k = subset_size - seeds.size
    ours, theirs = (proxy.order[seeds.size : subset_size], target.order[seeds.size : subset_size]) if k else ([0], [0])
    values = pool_agreement(proxy.scores[pool], target.scores[pool], np.asarray(ours), np.asarray(theirs), pool.size)
    metrics = {Metric.AGREEMENT_SPEARMAN: values["spearman"]}
    if k:
        metrics[Metric.AGREEMENT_TOP_K] = values["top_k_overlap"]
        metrics[Metric.AGREEMENT_RANDOM] = values["random_overlap"]
    return metrics
