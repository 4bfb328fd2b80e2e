"""One round of a labeling project (docs/labeling.md): the proxy picks the next batch to label.

Given the training examples labeled so far (in the order they were labeled) and their labels, a
round trains a fresh proxy on them, scores the unlabeled pool with what the selector needs and
picks ``k``. Round numbers, derived seeds and orders are the active-learning loop's
(:mod:`svpkit.loops.active_learning`), so a project whose annotators answer with the true labels
asks for the same batches as ``svpkit active-learning`` with the same seed and sizes:

- with no labels at all the batch is the active-learning loop's initial set at its default
  ``--initial-selector auto`` (svpkit.loops.cold_start.settle_initial_selector): the selector's
  own cold start (``auto``: MaxHerding) on inputs held in memory, else a seeded random sample of
  the pool, ascending (``default_rng(seed)``). Not k-center on the untrained proxy's features:
  those say nothing about the classes yet, so they would only spread the batch by input distance
  at the price of a forward pass over the whole pool. With a pretrained backbone (``--backbone``)
  the inputs already are features that say something about the classes, so a selector without a
  cold start of its own gets MaxHerding's first batch on them (:data:`COLD_START`);
- round ``r`` trains the proxy with ``derive_seed(seed, "selector", r)`` and selects with
  ``derive_seed(seed, "select", r)``. The default selector is ``auto`` (svpkit.selectors.auto): its
  cold-start half (MaxHerding, on the standardised inputs or the backbone's embeddings, or on the
  proxy's features where the inputs stream) while the project has fewer than ``switch_per_class``
  labels per class (a project trains no target, so the count alone decides), least confidence from
  there on; which half picked and why is the round's ``selector_info`` and its reason.

The learner sees a copy of the data set whose training labels are the project's (imported labels
filled in); rows still unlabeled carry a placeholder 0 there, which no fit ever reads (a fit
trains on the labeled indices only; a warm-up's throwaway model may step on the first rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from svpkit.contract import LABELING, Tag, format_options, setting_tags
from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.loops import scoring
from svpkit.loops.agreement import observer_signals, selector_observers
from svpkit.loops.cold_start import AUTO, initial_set, lazy_inputs, settle_initial_selector
from svpkit.loops.common import numerics_tags
from svpkit.loops.fitting import timed_fit
from svpkit.loops.settings import LoopSettings
from svpkit.loops.stopping import mean_uncertainty, stop_set
from svpkit.models.base import ModelSpec
from svpkit.progress import NullProgress, Progress
from svpkit.protocols import Learner
from svpkit.runtime import derive_seed, resolve_device
from svpkit.selectors.base import SelectionContext, SelectorSpec
from svpkit.timing import Timer

RANDOM = "random"
"""``QueryRound.strategy`` of a batch drawn at random because nothing is labeled yet."""
RANDOM_REASON = (
    "nothing is labeled yet, so this batch is a seeded random sample (the active-learning loop's initial set): "
    "an untrained proxy's features say nothing about the classes"
)
COLD_START = "maxherding"
"""The selector of a project's first batch when its data set is seen through a backbone."""
COLD_START_REASON = (
    "nothing is labeled yet, so {name} (a cold-start selector: it needs no model) picks this batch on {where}: "
    "typical examples that cover the pool"
)


def first_batch_selector(dataset: Dataset, selector: SelectorSpec, cfg: QueryConfig) -> str:
    """Who picks a project's first batch: the loop's settled ``--initial-selector auto``, or with a
    backbone MaxHerding for a selector without a cold start of its own (module docstring)."""
    settled = settle_initial_selector(dataset, selector, cfg.settings.selector_options, AUTO)
    name = settled if isinstance(settled, str) else settled.name
    return COLD_START if name == RANDOM and dataset.backbone else name


@dataclass(frozen=True)
class QueryConfig:
    """A project's query: ``k`` (it may change from round to round) and the shared settings (the
    proxy's are read)."""

    k: int
    settings: LoopSettings = field(default_factory=LoopSettings)


@dataclass
class QueryRound:
    """What one query asked for: ``picks`` in rank order (best first), ``scores`` aligned with
    ``pool`` (None for a random batch), the seconds the selection took."""

    round: int
    strategy: str
    reason: str
    labeled: np.ndarray
    pool: np.ndarray
    picks: np.ndarray
    scores: np.ndarray | None
    train_seconds: float = 0.0
    inference_seconds: float = 0.0
    selection_seconds: float = 0.0
    warmup_seconds: float = 0.0
    selector_model_error: float | None = None
    selector_info: dict[str, str] | None = None
    """What the selector said about its choice (``auto``: which half picked and why)."""
    stop_predictions: np.ndarray | None = None
    """The proxy's predicted classes on the project's stop set (svpkit.loops.stopping), when one was trained."""
    stop_uncertainty: float | None = None
    """The proxy's mean 1 − max p on the stop set."""
    predicted: np.ndarray | None = None
    """The proxy's class index for every pick, in rank order (None for a random batch)."""
    confidence: np.ndarray | None = None
    """The proxy's probability of that class."""

    @property
    def total_seconds(self) -> float:
        return self.warmup_seconds + self.train_seconds + self.inference_seconds + self.selection_seconds

    def pick_scores(self) -> np.ndarray | None:
        """The score of every pick, in rank order."""
        if self.scores is None:
            return None
        return np.asarray(self.scores, dtype=np.float64)[np.searchsorted(self.pool, self.picks)]

    def timings(self) -> dict[str, float]:
        return {
            "warmup_seconds": self.warmup_seconds,
            "train_seconds": self.train_seconds,
            "inference_seconds": self.inference_seconds,
            "selection_seconds": self.selection_seconds,
            "total_seconds": self.total_seconds,
        }


def describe_project(
    dataset: Dataset, selector: SelectorSpec, proxy: ModelSpec, cfg: QueryConfig
) -> tuple[dict[str, str], dict[str, object]]:
    """Tags and params of a labeling project's run."""
    chosen = cfg.settings
    settings = {
        "device": str(resolve_device(chosen.device)),
        "proxy_epochs": chosen.proxy_epochs or proxy.train.epochs,
        "proxy_options": format_options(chosen.proxy_options),
        **({"selector_options": format_options(chosen.selector_options)} if chosen.selector_options else {}),
        **dataset.backbone,
    }
    tags = {
        Tag.LOOP: LABELING.name,
        Tag.DATASET: dataset.name,
        Tag.SELECTOR: selector.name,
        Tag.SELECTOR_MODEL: proxy.name if selector.needs else "none",
        Tag.SEED: str(chosen.seed),
        **setting_tags(settings),
        **numerics_tags(chosen.device),
    }
    params = {
        "dataset": dataset.name,
        "selector": selector.name,
        "proxy": proxy.name,
        "seed": chosen.seed,
        **settings,
        "batch_size": chosen.batch_size or "model default",
        "deterministic": chosen.deterministic,
        "train_size": len(dataset.train),
        "test_size": len(dataset.test),
        "dataset_digest": dataset.digest,
    }
    return tags, params


def check_pool(dataset: Dataset, labeled: np.ndarray, k: int) -> np.ndarray:
    """The unlabeled pool (ascending); a ConfigError when it cannot give ``k`` examples."""
    if not dataset.unlabeled_indices().size:
        raise ConfigError(f"data set {dataset.name!r} has no unlabeled training examples: there is nothing to label")
    mask = np.ones(len(dataset.train), dtype=bool)
    mask[labeled] = False
    pool = np.flatnonzero(mask).astype(np.int64)
    if k < 1:
        raise ConfigError(f"--k must be at least 1, got {k}")
    if k > pool.size:
        raise ConfigError(f"--k {k} is more than the {pool.size} unlabeled training examples left in the pool")
    return pool


def query_round(
    dataset: Dataset,
    labeled: np.ndarray,
    labels: np.ndarray,
    selector: SelectorSpec,
    proxy: ModelSpec,
    cfg: QueryConfig,
    round_no: int,
    progress: Progress | None = None,
) -> QueryRound:
    """Round ``round_no``: train the proxy on ``labeled`` (with ``labels``), pick ``cfg.k`` of the pool."""
    pool = check_pool(dataset, labeled, cfg.k)
    first = first_batch_selector(dataset, selector, cfg) if not labeled.size else RANDOM
    if first != RANDOM:
        picks = initial_set(dataset, first, cfg.k, cfg.settings.seed, cfg.settings.selector_options)
        where = "the backbone's embeddings" if dataset.backbone else "the standardised inputs"
        reason = COLD_START_REASON.format(name=first, where=where)
        return QueryRound(round_no, first, reason, labeled, pool, picks, None)
    if not labeled.size:
        rng = np.random.default_rng(cfg.settings.seed)
        picks = np.sort(pool[rng.choice(pool.size, size=cfg.k, replace=False)]).astype(np.int64)
        return QueryRound(round_no, RANDOM, RANDOM_REASON, labeled, pool, picks, None)
    device = resolve_device(cfg.settings.device)
    rng = np.random.default_rng(derive_seed(cfg.settings.seed, "select", round_no))
    ctx = SelectionContext(pool, labeled, rng, device, options=dict(cfg.settings.selector_options))
    ctx.inputs = lazy_inputs(dataset)
    result = QueryRound(round_no, selector.name, f"selected by {selector.name}", labeled, pool, pool[:0], None)
    learner = None
    if selector.needs:
        data = _training_copy(dataset, labeled, labels)
        learner = _score(ctx, data, selector, proxy, cfg, result, progress or NullProgress())
    with Timer(device) as t:
        selection = scoring.select(selector, ctx, cfg.k)
    result.selection_seconds = t.seconds
    if selection.info:
        result.selector_info = {k: str(v) for k, v in selection.info.items()}
        info = result.selector_info
        result.reason += f" ({info.get('phase', '')}: {info.get('selector', '')}, {info.get('reason', '')})"
    if learner is not None:
        result.reason += f" on the scores of {proxy.name} trained on the {labeled.size} labeled examples"
    result.picks = np.asarray(selection.picks, dtype=np.int64)
    result.scores = np.asarray(selection.scores, dtype=np.float32)
    if result.picks.shape != (cfg.k,) or np.unique(result.picks).size != cfg.k or not np.isin(result.picks, pool).all():
        raise RuntimeError(f"selector {selector.name!r} did not return {cfg.k} distinct examples of the pool")
    if learner is not None:  # the proxy's guess for every pick (an annotation tool's pre-annotation)
        probabilities = learner.predict_proba(result.picks).float().cpu()
        top = probabilities.max(dim=1)
        result.predicted, result.confidence = top.indices.numpy().astype(np.int64), top.values.numpy()
    return result


def _training_copy(dataset: Dataset, labeled: np.ndarray, labels: np.ndarray) -> Dataset:
    """The data set as the learner sees it: the project's labels, a placeholder 0 on the rest."""
    y = np.zeros(len(dataset.train), dtype=np.int64)
    y[labeled] = labels
    return dataset.with_labels(np.arange(y.size), y)


def _score(
    ctx: SelectionContext,
    data: Dataset,
    selector: SelectorSpec,
    proxy: ModelSpec,
    cfg: QueryConfig,
    result: QueryRound,
    progress: Progress,
) -> Learner:
    """Fit a fresh proxy on ``ctx.labeled`` and fill ``ctx`` with what the selector needs (as the
    active-learning loop's rounds do); the seconds and the proxy's test error go into ``result``."""
    settings = cfg.settings
    options = settings.learner_options("proxy", derive_seed(settings.seed, "selector", result.round))
    observers = selector_observers(selector)
    task = f"round {result.round}: train {proxy.name} on {ctx.labeled.size}"
    fitted = timed_fit(proxy, data, options, ctx.labeled, progress, task, observers, warm=True)
    learner, result.warmup_seconds, result.train_seconds = fitted.learner, fitted.warmup_seconds, fitted.seconds
    with Timer(ctx.device) as t:
        scoring.fill_selection_context(ctx, learner, selector)
        ctx.signals.update(observer_signals(observers))
    result.inference_seconds = t.seconds
    result.selector_model_error = learner.error("test") if len(data.test) else None
    probs = learner.predict_proba(stop_set(len(data.train), settings.seed)).float().cpu().numpy()  # stopping criteria
    result.stop_predictions, result.stop_uncertainty = probs.argmax(axis=1), mean_uncertainty(probs)
    return learner
