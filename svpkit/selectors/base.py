"""The selector contract.

A selector declares what it needs from the selector model, and the loops compute only that. Per
pool example, reduced batch by batch as the pool is scored (:mod:`svpkit.selectors.reductions`;
``SelectionContext.per_example``): ``"max_probability"``, ``"margin"`` (p₁ − p₂), ``"entropy"``,
``"predicted_class"``, ``"bald"`` and ``"mc_entropy"`` (MC dropout, ``mc_samples`` passes per batch).
Whole matrices: ``"probabilities"`` (the pool's softmax, N × C, memory-mapped),
``"embeddings"`` (penultimate activations of the pool and of the labeled/seed set),
``"mc_probabilities"`` (the MC-dropout sums over the pool:
:class:`svpkit.selectors.scores.MCAccumulator`). Others: ``"training_dynamics"`` (a
:class:`TrainObserver` attached to the selector model's training) or ``"labels"`` (the labels of
the scored examples: core-set selection only, where every training label is known). A selector
with no needs (``random``) trains no model at all.

A selector declares its options (:class:`svpkit.models.options.ModelOption`, as models do; set
with ``--selector-options``, :func:`resolve_selector_options`) and may check a run before it
starts (``check``: the loop, the proxy, the options; raises ConfigError).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from svpkit.errors import ConfigError
from svpkit.options import ModelOption, check_known, parse_options_text
from svpkit.protocols import Learner, TrainObserver

if TYPE_CHECKING:
    from svpkit.selectors.scores import MCAccumulator

PER_EXAMPLE = frozenset({"max_probability", "margin", "entropy", "predicted_class", "bald", "mc_entropy"})
"""Needs reduced to one value per pool example as the pool is scored (svpkit.selectors.reductions)."""
MC_NEEDS = frozenset({"bald", "mc_entropy", "mc_probabilities"})
"""Needs computed from MC-dropout passes (the selector's ``mc_samples``/``mc_dropout`` options)."""
NEEDS = PER_EXAMPLE | {"probabilities", "embeddings", "training_dynamics", "mc_probabilities", "labels"}


@dataclass
class SelectionContext:
    """What a selector sees. Indices are training-set indices in the data set's original order.

    ``per_example`` values, ``probabilities`` and ``pool_embeddings`` rows align with ``pool``; ``labeled_embeddings``
    rows align with ``labeled`` (the initial centres for k-center). ``signals`` holds what a
    training-dynamics observer returned (over *all* training examples).
    """

    pool: np.ndarray
    labeled: np.ndarray
    rng: np.random.Generator
    device: torch.device = torch.device("cpu")
    probabilities: torch.Tensor | None = None
    pool_embeddings: torch.Tensor | None = None
    labeled_embeddings: torch.Tensor | None = None
    signals: dict[str, torch.Tensor] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    """The selector's resolved options (``--selector-options``, defaults filled in)."""
    per_example: dict[str, torch.Tensor] = field(default_factory=dict)
    """The per-example needs (:data:`PER_EXAMPLE`) by name, one value per pool example."""
    mc_probabilities: MCAccumulator | None = None
    """Running sums of the ``mc_samples`` MC-dropout softmax passes over ``pool`` (rows align)."""

    inputs: Callable[[np.ndarray], torch.Tensor] | None = None
    """The fixed input embedding of training indices (standardised inputs; svpkit.selectors.embedding),
    for selectors with ``embedding=input`` (cold start: no model yet)."""
    stop_kappas: list[float] | None = None
    """Cohen's κ between consecutive rounds' targets on the stop set so far (svpkit.loops.stopping),
    oldest first; None where the loop trains no target (``auto`` reads it)."""
    candidates: np.ndarray | None = None
    """Pool positions of a ``subpool`` drawn before scoring (svpkit.selectors.subpool): then only
    they were scored, and ``probabilities`` / ``pool_embeddings`` rows align with them, not ``pool``."""

    def value(self, need: str) -> torch.Tensor:
        """The per-example need ``need`` of the pool (a RuntimeError if it was not computed)."""
        if need not in self.per_example:
            raise RuntimeError(f"the pool's {need!r} was not computed (is it in the selector's needs?)")
        return self.per_example[need]


@dataclass
class Selection:
    """``picks``: chosen training indices in pick order; ``scores``: one float per pool entry
    (aligned with ``SelectionContext.pool``; higher means wanted sooner). A top-k over a pool
    sharded across ``torchrun`` ranks (:mod:`svpkit.selectors.shard_top_k`) has them on rank 0
    only: the other ranks' ``scores`` are empty."""

    picks: np.ndarray
    scores: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    """What the selector says about its choice (``auto``: which selector picked and why), logged per round."""

    def __post_init__(self) -> None:
        # picks index the training split: int64 whatever the pool's (possibly int32) index type
        self.picks = np.asarray(self.picks, dtype=np.int64)


@dataclass
class Ranking:
    """A core-set ranking. ``order``: every training index, best (kept first) to worst.
    ``scores[i]``: the score of training example ``i`` (higher = kept sooner). ``seeds``: random
    seed points that start the ranking (k-center; else empty)."""

    order: np.ndarray
    scores: np.ndarray
    seeds: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


@dataclass
class RankContext:
    """What a selector's ``rank`` sees: the proxy trained on all ``num_train`` training examples.

    ``learner`` is None for selectors with no needs; ``signals`` is what the training observer
    returned. ``subset_size`` and ``seed_count`` are the core-set sizes (k-center grows its
    ``seed_count`` random seeds to ``subset_size`` centres); ``rng`` draws the seeds.
    """

    learner: Learner | None
    signals: dict[str, torch.Tensor]
    num_train: int
    subset_size: int
    seed_count: int
    rng: np.random.Generator
    labels: torch.Tensor | None = None
    """Every training label (selectors that need ``labels``), on the learner's device."""
    options: dict[str, object] = field(default_factory=dict)
    """The selector's resolved options."""

    def draw_seeds(self) -> np.ndarray:
        """``seed_count`` distinct training indices drawn from ``rng``, ascending."""
        return np.sort(self.rng.choice(self.num_train, size=self.seed_count, replace=False)).astype(np.int64)


@dataclass(frozen=True)
class SelectorSpec:
    name: str
    select: Callable[[SelectionContext, int], Selection]
    needs: frozenset[str] = frozenset()
    description: str = ""
    observer: Callable[[], TrainObserver] | None = None
    """Factory of the training observer for ``training_dynamics`` selectors; its
    ``result()`` dict becomes ``SelectionContext.signals``."""
    rank: Callable[[RankContext], Ranking] | None = None
    """Core-set ranking of the whole training set; without it the core-set loop asks ``select``
    to pick the whole pool in order."""
    select_sharded: Callable[[SelectionContext, int], Selection] | None = None
    """``select`` for a pool split across ``torchrun`` ranks: ``pool_embeddings`` holds this rank's
    shard of the pool only (:func:`svpkit.parallel.shard_range` order); the picks must equal
    ``select`` on the whole pool, on every rank."""
    options: tuple[ModelOption, ...] = ()
    """The options the selector takes (``--selector-options``)."""
    check: Callable[[SelectorUse], None] | None = None
    """Refuses a run the selector cannot do (raises ConfigError), before any run exists."""
    score_based: bool = False
    """``select`` is the top-k of its ``scores`` and ``rank`` orders by ``Ranking.scores``, so class
    balance, ``--score-models`` averaging and coverage-centric sampling apply to its scores."""
    scores_per_example: bool = False
    """``select`` is the top-k of scores each computed from that example's ``per_example`` values
    alone, so under ``torchrun`` each rank takes its shard's candidates and only those are exchanged
    (:mod:`svpkit.selectors.shard_top_k`; the whole pool's values are never gathered)."""
    model_free: Callable[[Mapping[str, object]], bool] | None = None
    """Whether the selector picks without a selector model under these resolved options (cold-start
    selectors with ``embedding=input``); such a selector may also pick the initial set
    (``--initial-selector``). None: it needs a model whenever ``needs`` is not empty."""

    def trains_model(self, options: Mapping[str, object]) -> bool:
        """Whether a round of this selector with these resolved options trains a selector model."""
        if self.model_free is not None and self.model_free(options):
            return False
        return bool(self.needs)

    def __post_init__(self) -> None:
        unknown = set(self.needs) - NEEDS
        if unknown:
            raise ValueError(f"selector {self.name!r} needs unknown signals {sorted(unknown)}")
        if "training_dynamics" in self.needs and self.observer is None:
            raise ValueError(f"selector {self.name!r} needs training dynamics but has no observer")


@dataclass(frozen=True)
class SelectorUse:
    """What a selector's ``check`` sees: the loop (``svpkit.loop`` value), the proxy's name, an
    untrained proxy module (``build_proxy()``: None for a model that is no torch module) and the
    resolved options."""

    loop: str
    proxy: str
    build_proxy: Callable[[], object | None]
    options: Mapping[str, Any]


def resolve_selector_options(
    spec: SelectorSpec, given: Mapping[str, object], flag: str = "--selector-options"
) -> dict[str, Any]:
    """``given`` checked against ``spec.options`` (unknown name: did-you-mean), typed, defaults filled in."""
    known = {o.name: o for o in spec.options}
    for name in given:
        check_known(flag, f"selector {spec.name!r}", name, known)
    try:
        return {
            o.name: o.convert(given[o.name], spec.name, "selector") if o.name in given else o.default
            for o in spec.options
        }
    except ConfigError as e:
        raise ConfigError(f"{flag}: {e}") from None


def parse_selector_options(spec: SelectorSpec, text: str | None, flag: str = "--selector-options") -> dict[str, object]:
    """The command line's ``--selector-options "mc_samples=20,mc_dropout=0.5"`` for ``spec``, typed."""
    return resolve_selector_options(spec, parse_options_text(text, flag), flag)


def rank_descending(scores: torch.Tensor) -> torch.Tensor:
    """Positions sorted by score, highest first; ties keep the pool's (ascending index) order."""
    return torch.sort(scores, descending=True, stable=True).indices


TOP_K_BLOCK = 65_536
"""Scores read at a time by :func:`top_k_positions` (its transients are this many rows, not the pool)."""


def _kth_largest(scores: torch.Tensor, k: int) -> torch.Tensor | None:
    """The ``k``-th largest of ``scores`` (a 0-d tensor), block by block: only the running best
    ``k`` values and one block are held. None where a score is NaN (sorting places NaN first)."""
    best: torch.Tensor | None = None
    for lo in range(0, scores.shape[0], TOP_K_BLOCK):
        block = scores[lo : lo + TOP_K_BLOCK]
        if bool(torch.isnan(block).any()):
            return None
        both = block if best is None else torch.cat([best, block])
        best = torch.topk(both, min(k, both.shape[0]), sorted=False).values
    assert best is not None
    return best.min()


def top_k_positions(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The positions of ``rank_descending(scores)[:k]``, ascending (int64), without sorting the
    whole of ``scores``: every score above the ``k``-th largest and, of the scores equal to it, the
    lowest positions up to ``k`` in all (the stable sort's order among ties). Read block by block,
    so the transients are :data:`TOP_K_BLOCK` rows and the ``k`` positions; with ``k`` above a
    quarter of the scores, or a NaN among them, it sorts them all."""
    n = scores.shape[0]
    k = max(0, min(k, n))
    if k == 0:
        return torch.empty(0, dtype=torch.int64, device=scores.device)
    threshold = _kth_largest(scores, k) if 4 * k <= n else None
    if threshold is None:
        return torch.sort(rank_descending(scores)[:k]).values
    blocks = range(0, n, TOP_K_BLOCK)
    ties = k - sum(int((scores[lo : lo + TOP_K_BLOCK] > threshold).sum()) for lo in blocks)
    parts = []
    for lo in blocks:
        block = scores[lo : lo + TOP_K_BLOCK]
        wanted = block > threshold
        if ties > 0:
            equal = torch.nonzero(block == threshold).flatten()[:ties]
            wanted[equal] = True
            ties -= equal.shape[0]
        parts.append(torch.nonzero(wanted).flatten() + lo)
    return torch.cat(parts)


def top_k_descending(scores: torch.Tensor, k: int) -> torch.Tensor:
    """``rank_descending(scores)[:k]``, the same positions in the same order, sorting only the
    ``k`` of :func:`top_k_positions` (not the whole of ``scores``: no N int64 order array)."""
    positions = top_k_positions(scores, k)
    return positions[rank_descending(scores[positions])]


def ranking_by_score(scores: torch.Tensor) -> Ranking:
    """All training examples by ``scores`` (one per example), highest first, ties towards the lower index."""
    order = rank_descending(scores).cpu().numpy()
    return Ranking(order.astype(np.int64), scores.cpu().numpy().astype(np.float32))


def top_k_by_score(ctx: SelectionContext, scores: torch.Tensor, k: int) -> Selection:
    """The ``k`` best of the pool by ``scores`` (:func:`top_k_descending`: ties towards the lower
    position), with the pool's scores."""
    order = top_k_descending(scores, k).cpu().numpy()
    return Selection(picks=ctx.pool[order], scores=scores.float().cpu().numpy())
