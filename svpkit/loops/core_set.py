"""Core-set selection with a proxy (paper §3.2 / §4.2, DESIGN.md).

Stage 1: train the proxy on the whole training set (with the selector's training observer, if it
needs training dynamics) and rank *every* training example, best first. Stage 2: keep the head of
the ranking (``keep`` fraction or ``subset_size`` examples) and train the target from scratch on
it. Stage 3 (optional): the target on all data, the reference for the end-to-end speed-up
``full train seconds / (proxy train + ranking + target train on the subset)``.

Rankings (:func:`rank_training_set`, :func:`rank_with_proxy`) are plain functions so that other
code (comparisons, presets) can rank a data set without running the loop.

- Uncertainty selectors (least confidence, entropy, margin): score every example from the proxy's
  eval-mode softmax; order = stable descending sort (ties towards the lower index).
- ``greedy_k_center``: ``seed_size`` random seed points are the initial centres and count toward
  the subset; the greedy traversal grows it to the subset size. Order = seeds (ascending), then
  picks in pick order, then the remaining points by their final distance to the nearest centre,
  farthest first. Scores are Euclidean distances to the nearest centre when the point was picked
  (remaining points: at the end), seeds +∞; sorting them descending reproduces the order up to ties.
- ``forgetting_events``: counts from the proxy's training minibatches (+∞ = never learned).
- Any other selector (plugins, ``random``) is asked to pick the whole pool in order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from svpkit import plots
from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.loops.budgets import to_count
from svpkit.loops.common import learner_options, resolved_settings, selection_run_params, selection_run_tags
from svpkit.loops.tracker import run_setting
from svpkit.loops.train_only import TrainOutcome, train_and_evaluate
from svpkit.models.base import ModelSpec
from svpkit.progress import NullProgress, Progress
from svpkit.protocols import Learner, LearnerOptions, Tracker, TrainObserver
from svpkit.runtime import derive_seed, resolve_device
from svpkit.selectors.base import SelectionContext, SelectorSpec, rank_descending
from svpkit.selectors.k_center import greedy_k_center, min_sq_distances
from svpkit.selectors.uncertainty import entropy_scores, least_confidence_scores, margin_scores
from svpkit.timing import Timer

SCORE_FUNCTIONS = {
    "least_confidence": least_confidence_scores,
    "entropy": entropy_scores,
    "margin": margin_scores,
}
DEFAULT_KEEP = 0.5
DEFAULT_SEED_SIZE = 1000


@dataclass
class FullReference:
    """The target trained on all data: where the end-to-end speed-up's numerator comes from."""

    train_seconds: float
    test_error: float
    source: str
    """A run id, or ``"this run"`` when the loop trained it (``compare_full``)."""


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


@dataclass
class Ranking:
    """``order``: every training index, best (kept first) to worst. ``scores[i]``: the score of
    training example ``i`` (higher = kept sooner). ``seeds``: k-center's seed points (else empty)."""

    order: np.ndarray
    scores: np.ndarray
    seeds: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


@dataclass
class CoreSetResult:
    ranking: Ranking
    subset: np.ndarray
    proxy_train_seconds: float
    ranking_seconds: float
    proxy_error: float | None
    target: TrainOutcome
    full: FullReference | None

    @property
    def selection_seconds(self) -> float:
        return self.proxy_train_seconds + self.ranking_seconds

    @property
    def end_to_end_seconds(self) -> float:
        return self.selection_seconds + self.target.train_seconds

    @property
    def speedup(self) -> float | None:
        if self.full is None or self.end_to_end_seconds <= 0:
            return None
        return self.full.train_seconds / self.end_to_end_seconds


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
    tags = selection_run_tags("core_set", dataset, selector, proxy, target, cfg)
    tags["svpkit.subset_size"] = str(m)
    if cfg.full_reference is not None:
        tags["svpkit.full_run"] = cfg.full_reference.source
    elif cfg.compare_full:
        tags["svpkit.full_run"] = "this run"
    params = selection_run_params(dataset, selector, proxy, target, cfg) | {
        "keep": "" if cfg.keep is None and cfg.subset_size is not None else (cfg.keep or DEFAULT_KEEP),
        "subset_size": m,
        "seed_size": seeds,
        "compare_full": cfg.compare_full,
        "full_run": cfg.full_reference.source if cfg.full_reference else "",
    }
    return tags, params


# -- ranking ---------------------------------------------------------------------------------
def k_center_ranking(
    embeddings: torch.Tensor, seeds: np.ndarray, subset_size: int
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Greedy k-center from ``seeds`` to ``subset_size`` centres over all rows of ``embeddings``.

    Returns (order of all rows, squared distance of each pick when picked, final squared
    distance of each remaining row), the last two aligned with ``order`` after the seeds.
    """
    n = embeddings.shape[0]
    if seeds.size == 0:
        raise ConfigError("greedy k-center needs at least one seed point")
    seeds = np.sort(np.asarray(seeds, dtype=np.int64))
    mask = np.ones(n, dtype=bool)
    mask[seeds] = False
    pool = np.flatnonzero(mask)
    dev = embeddings.device
    pool_t = torch.as_tensor(pool, device=dev)
    pool_emb = embeddings[pool_t]
    seed_emb = embeddings[torch.as_tensor(seeds, device=dev)]
    k = subset_size - seeds.size
    positions, initial = greedy_k_center(pool_emb, seed_emb, k)
    picked = torch.zeros(pool.size, dtype=torch.bool, device=dev)
    picked[positions] = True
    rest = torch.nonzero(~picked).flatten()
    picked_emb = pool_emb[positions]
    final = initial[rest]
    if k > 0 and rest.numel():
        final = torch.minimum(final, min_sq_distances(pool_emb[rest], picked_emb))
    by_distance = rank_descending(final)
    rest_order, final = rest[by_distance], final[by_distance]
    order = np.concatenate([seeds, pool[positions.cpu().numpy()], pool[rest_order.cpu().numpy()]])
    return order, pick_distances(picked_emb, initial[positions]), final


def pick_distances(picked: torch.Tensor, to_seeds: torch.Tensor) -> torch.Tensor:
    """Squared distance of each greedy pick to its nearest centre at the time it was picked.

    Replays the traversal over the picks only (O(k²·D) for k picks, at most a fraction of the
    greedy's O(k·N·D)); it is part of ``ranking/seconds`` because the logged scores come from it.
    """
    current = to_seeds.clone().float()
    out = torch.empty_like(current)
    for t in range(picked.shape[0]):
        out[t] = current[t]
        if t + 1 < picked.shape[0]:
            d = (picked[t + 1 :].float() - picked[t].float()).square_().sum(dim=1)
            torch.minimum(current[t + 1 :], d, out=current[t + 1 :])
    return out


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
    n = num_train
    if selector.needs - {"training_dynamics"} and learner is None:
        raise ValueError(f"selector {selector.name!r} needs a trained selector model")
    if selector.name in SCORE_FUNCTIONS and selector.needs == frozenset({"probabilities"}):
        assert learner is not None
        uncertainty = SCORE_FUNCTIONS[selector.name](learner.predict_proba(None, "train").float())
        order = rank_descending(uncertainty).cpu().numpy()
        return Ranking(order.astype(np.int64), uncertainty.cpu().numpy().astype(np.float32))
    if selector.name == "greedy_k_center" and selector.needs == frozenset({"embeddings"}):
        assert learner is not None
        seeds = np.sort(rng.choice(n, size=seed_count, replace=False)).astype(np.int64)
        order, picks_d, rest_d = k_center_ranking(learner.embed(None, "train"), seeds, subset_size)
        distances = np.full(n, np.inf, dtype=np.float32)
        distances[order[seeds.size :]] = torch.cat([picks_d, rest_d]).clamp_min(0).sqrt().cpu().numpy()
        return Ranking(order.astype(np.int64), distances, seeds)
    return _rank_by_selecting_everything(selector, learner, signals, n, seed_count, rng)


def _rank_by_selecting_everything(
    selector: SelectorSpec,
    learner: Learner | None,
    signals: dict[str, torch.Tensor],
    n: int,
    seed_count: int,
    rng: np.random.Generator,
) -> Ranking:
    """Any selector: seeds (if it needs embeddings), then its picks of the whole remaining pool."""
    seeds = np.empty(0, dtype=np.int64)
    if "embeddings" in selector.needs:
        seeds = np.sort(rng.choice(n, size=seed_count, replace=False)).astype(np.int64)
    mask = np.ones(n, dtype=bool)
    mask[seeds] = False
    pool = np.flatnonzero(mask)
    device = learner.device if learner is not None else torch.device("cpu")
    ctx = SelectionContext(pool=pool, labeled=seeds, rng=rng, device=device, signals=dict(signals))
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
    n = len(dataset.train)
    m, seed_count = resolve_sizes(n, selector, cfg)
    state: dict[str, Any] = dict(resume_state or {"loop": "core_set", "round": 0})
    if state.get("loop") != "core_set":
        raise ConfigError(f"cannot resume a core-set run from {state.get('loop')!r} state")

    def options(role: str, epochs: int | None) -> LearnerOptions:
        model_options = cfg.proxy_options if role == "proxy" else cfg.target_options
        return learner_options(cfg, derive_seed(cfg.seed, role), epochs, model_options)

    def save(stage: int) -> None:
        state["round"] = stage
        tracker.save_state(state)

    with progress.task(f"core-set: {selector.name} via {proxy.name}", total=3) as advance:
        advance(min(int(state["round"]), 3))
        if state["round"] < 1:
            ranking, proxy_s, rank_s, proxy_error = rank_with_proxy(
                dataset,
                selector,
                proxy,
                options("proxy", cfg.proxy_epochs),
                m,
                seed_count,
                np.random.default_rng(derive_seed(cfg.seed, "rank")),
                progress,
            )
            _check_order(ranking.order, n, selector.name)
            subset = ranking.order[:m].copy()
            metrics = {"proxy/train_seconds": proxy_s, "ranking/seconds": rank_s}
            if proxy_error is not None:
                metrics["proxy/test_error"] = proxy_error
            tracker.log_metrics(metrics, step=n)
            tracker.log_metrics({"selection/total_seconds": proxy_s + rank_s}, step=m)
            tracker.log_array("ranking/order.npy", ranking.order)
            tracker.log_array("ranking/scores.npy", ranking.scores)
            if ranking.seeds.size:
                tracker.log_array("ranking/seeds.npy", ranking.seeds)
            tracker.log_array("subset/indices.npy", subset)
            state.update(
                proxy_train_seconds=proxy_s,
                ranking_seconds=rank_s,
                proxy_error=proxy_error,
                order=ranking.order.tolist(),
                scores=[float(s) for s in ranking.scores],
                seeds=ranking.seeds.tolist(),
            )
            save(1)
            advance(1)
        ranking = Ranking(
            np.asarray(state["order"], dtype=np.int64),
            np.asarray(state["scores"], dtype=np.float32),
            np.asarray(state["seeds"], dtype=np.int64),
        )
        subset = ranking.order[:m].copy()
        if state["round"] < 2:
            outcome, learner = train_and_evaluate(
                target, dataset, subset, options("target", cfg.target_epochs), progress, "target"
            )
            del learner
            tracker.log_metrics(
                {"target/train_seconds": outcome.train_seconds, "target/test_error": outcome.test_error}, step=m
            )
            state["target"] = asdict(outcome)
            save(2)
            advance(1)
        target_outcome = TrainOutcome(**state["target"])
        full = cfg.full_reference
        if full is None and cfg.compare_full:
            if state["round"] < 3:
                outcome, learner = train_and_evaluate(
                    target, dataset, np.arange(n, dtype=np.int64), options("full", cfg.target_epochs), progress, "full"
                )
                del learner
                state["full"] = asdict(FullReference(outcome.train_seconds, outcome.test_error, "this run"))
                save(3)
            full = FullReference(**state["full"])
        advance(1)
    result = CoreSetResult(
        ranking=ranking,
        subset=subset,
        proxy_train_seconds=float(state["proxy_train_seconds"]),
        ranking_seconds=float(state["ranking_seconds"]),
        proxy_error=state["proxy_error"],
        target=target_outcome,
        full=full,
    )
    _log_summary(tracker, result, dataset, selector, proxy, target)
    return result


def _check_order(order: np.ndarray, n: int, name: str) -> None:
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise RuntimeError(f"ranking by {name!r} is not a permutation of the {n} training examples")


def _log_summary(
    tracker: Tracker,
    result: CoreSetResult,
    dataset: Dataset,
    selector: SelectorSpec,
    proxy: ModelSpec,
    target: ModelSpec,
) -> None:
    n, m = len(dataset.train), int(result.subset.size)
    timings: dict[str, Any] = {
        "proxy_train_seconds": result.proxy_train_seconds,
        "ranking_seconds": result.ranking_seconds,
        "selection_seconds": result.selection_seconds,
        "target_train_seconds": result.target.train_seconds,
        "end_to_end_seconds": result.end_to_end_seconds,
    }
    if result.full is not None:
        tracker.log_metrics(
            {"full/train_seconds": result.full.train_seconds, "full/test_error": result.full.test_error}, step=n
        )
        timings["full_train_seconds"] = result.full.train_seconds
        timings["full_source"] = result.full.source
        if result.speedup is not None:
            tracker.log_metrics({"core_set/end_to_end_speedup": result.speedup}, step=m)
            timings["end_to_end_speedup"] = result.speedup
    tracker.log_json("timings.json", timings)
    tracker.log_json(
        "summary.json",
        {
            "loop": "core_set",
            "dataset": dataset.describe(),
            "selector": selector.name,
            "selector_model": proxy.name if selector.needs else None,
            "target_model": target.name,
            "subset_size": m,
            "keep_fraction": m / n,
            "seed_points": int(result.ranking.seeds.size),
            "proxy_error": result.proxy_error,
            "target_error": result.target.test_error,
            "full_error": result.full.test_error if result.full else None,
            "full_source": result.full.source if result.full else None,
            "end_to_end_speedup": result.speedup,
            **{k: v for k, v in timings.items() if k.endswith("seconds")},
        },
    )
    fig = ranking_figure(result, selector.name, proxy.name, target.name, dataset.name)
    tracker.log_figure(fig, "figures/core_set.png")
    plots.close(fig)


def ranking_figure(result: CoreSetResult, selector: str, proxy: str, target: str, dataset: str) -> Any:
    """Left: score distribution of kept vs dropped examples. Right: test error and seconds."""
    fig, (ax_s, ax_e) = plots.plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    scores = result.ranking.scores
    kept = np.zeros(scores.size, dtype=bool)
    kept[result.subset] = True
    finite = np.isfinite(scores)
    bins = np.histogram_bin_edges(scores[finite], bins=30) if finite.any() else 10
    ax_s.hist([scores[finite & kept], scores[finite & ~kept]], bins=bins, stacked=True, label=["kept", "dropped"])
    infinite = int((~finite & kept).sum())
    ax_s.set_title(f"{selector} scores from {proxy}" + (f" (+{infinite} at +inf, kept)" if infinite else ""))
    ax_s.set_xlabel("score (higher = kept sooner)")
    ax_s.set_ylabel("training examples")
    ax_s.legend()
    labels = [f"target on {result.subset.size}"]
    errors = [100 * result.target.test_error]
    seconds = [result.end_to_end_seconds]
    if result.full is not None:
        labels.append(f"target on all {scores.size}")
        errors.append(100 * result.full.test_error)
        seconds.append(result.full.train_seconds)
    bars = ax_e.bar(labels, errors, color=["tab:blue", "tab:gray"][: len(labels)])
    for bar, s in zip(bars, seconds):
        ax_e.annotate(f"{s:.1f} s", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    ax_e.set_ylabel("top-1 test error (%)  [labels: end-to-end seconds]")
    ax_e.set_title(f"{dataset}: {target}" + (f", speed-up {result.speedup:.2f}x" if result.speedup else ""))
    fig.tight_layout()
    return fig


# -- the full-data reference -----------------------------------------------------------------
def full_reference_mismatch(
    record: Any, dataset: Dataset, target: ModelSpec, cfg: CoreSetConfig, strict: bool = True
) -> str | None:
    """Why a run (``tracking.RunRecord``-like: status, tags, params, metrics) cannot serve as the
    target-on-all-data reference, or None when it can. ``strict`` (the automatic lookup) also
    demands the same target epochs, target options and device, so that the seconds are comparable."""
    tags, params, metrics = record.tags, record.params, record.metrics
    n = len(dataset.train)
    checks = [
        (record.status == "FINISHED", f"it is {record.status}, not FINISHED"),
        (tags.get("svpkit.loop") == "train", f"it is a {tags.get('svpkit.loop', 'non-svpkit')!r} run, not a train run"),
        (tags.get("svpkit.dataset") == dataset.name, f"its data set is {tags.get('svpkit.dataset')!r}"),
        (params.get("dataset_digest") == dataset.digest, "its data set's content digest differs"),
        (tags.get("svpkit.subset_size") == str(n), f"it trained on {tags.get('svpkit.subset_size')} of {n} examples"),
        (tags.get("svpkit.target_model") == target.name, f"its target is {tags.get('svpkit.target_model')!r}"),
        (
            "target/train_seconds" in metrics and "target/test_error" in metrics,
            "it has no target/train_seconds and target/test_error metrics",
        ),
    ]
    if strict:
        want = {k: str(v) for k, v in resolved_settings(None, target, cfg).items()}
        got = {name: run_setting(tags, params, name) for name in want}
        checks += [
            (
                got["target_epochs"] == want["target_epochs"],
                f"it trained {got['target_epochs']} epochs, not {want['target_epochs']}",
            ),
            (
                got["target_options"] == want["target_options"],
                f"its target options are {got['target_options'] or 'none'!r}, not {want['target_options'] or 'none'!r}",
            ),
            (got["device"] == want["device"], f"it ran on {got['device']}"),
        ]
    for ok, reason in checks:
        if not ok:
            return reason
    return None


def choose_full_reference(
    records: list[Any], dataset: Dataset, target: ModelSpec, cfg: CoreSetConfig
) -> FullReference | None:
    """The matching train run of the same seed if any, else the newest matching one."""
    matching = [r for r in records if full_reference_mismatch(r, dataset, target, cfg) is None]
    if not matching:
        return None
    matching.sort(key=lambda r: (r.tags.get("svpkit.seed") == str(cfg.seed), r.start_time), reverse=True)
    best = matching[0]
    return FullReference(
        float(best.metrics["target/train_seconds"]), float(best.metrics["target/test_error"]), best.run_id
    )
