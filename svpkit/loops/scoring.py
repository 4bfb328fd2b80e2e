"""What a selector needs from the selector model, computed across ``torchrun`` ranks.

The pool is scored batch by batch and each batch is reduced at once to what the selector needs
per example (``SelectorSpec.needs``; :mod:`svpkit.selectors.reductions`): least confidence keeps
one float per pool example, not the pool's N × C softmax. Under ``torchrun`` each rank reduces a
contiguous shard of the pool. A top-k selector of per-example scores (``scores_per_example``:
least confidence, margin, entropy, BALD, MC entropy; with or without class balance) keeps only its
shard's reductions when the caller asks (``keep_shard``: the active-learning loop does), and the
ranks exchange only their shards' candidates (:mod:`svpkit.selectors.shard_top_k`); otherwise the
reductions are gathered in pool order (:func:`svpkit.parallel.gather_shards`), so every rank holds
what one process would. The full
softmax, for the selectors that read it (``probabilities``: BADGE, ``auto``), goes batch by batch
into a memory-mapped file, gathered block by block under ``torchrun``. A selector with a sharded
implementation (``SelectorSpec.select_sharded``: greedy k-center) keeps only this rank's shard of
the pool embeddings; its picks are identical on every rank, so all ranks keep the same labeled set.

MC dropout (``bald``, ``mc_entropy``) runs its ``mc_samples`` passes per batch: a model without
dropout layers embeds the batch once and runs the passes as dropout (``mc_dropout``) + its final
linear layer; a model with dropout layers runs that many forward passes with its dropout layers
active. The masks are a function of a seed drawn from the selection RNG and of each example's
training index (:func:`svpkit.selectors.bald.keep_mask`), so BALD's scores are the same whatever
the inference batch and under ``torchrun`` as in one process.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from svpkit import parallel
from svpkit.contract import POOL_SHARD_OPTION, format_options
from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.loops.settings import LoopSettings
from svpkit.models.base import ModelSpec
from svpkit.progress import NullProgress, Progress
from svpkit.protocols import Learner
from svpkit.selectors import shard_top_k, subpool
from svpkit.selectors.base import (
    MC_NEEDS,
    PER_EXAMPLE,
    Selection,
    SelectionContext,
    SelectorSpec,
    SelectorUse,
    resolve_selector_options,
)
from svpkit.selectors.coverage import class_balanced_top_k
from svpkit.selectors.reductions import FULL, MC_FULL, MCDropout, accumulator, file_tensor, reduce_examples
from svpkit.selectors.scores import MCAccumulator

SHARD_OPTION = POOL_SHARD_OPTION
"""``SelectionContext.options`` key: (start, stop) of this rank's pool shard (the contract's)."""


def pool_index(n: int, labeled: np.ndarray) -> np.ndarray:
    """The training indices not in ``labeled``, ascending: int32 while ``n`` fits one (4 bytes per
    pool image for the round; selections and picks are int64), else int64."""
    mask = np.ones(n, dtype=bool)
    mask[labeled] = False
    dtype = np.int32 if n <= np.iinfo(np.int32).max else np.int64
    pool = np.empty(n - int(np.count_nonzero(~mask)), dtype=dtype)
    np.copyto(pool, np.flatnonzero(mask), casting="same_kind")
    return pool


def fill_selection_context(
    ctx: SelectionContext,
    learner: Learner,
    selector: SelectorSpec,
    class_balance: bool = False,
    progress: Progress | None = None,
    k: int | None = None,
    keep_shard: bool = False,
) -> None:
    """Compute what ``selector`` needs over ``ctx.pool`` / ``ctx.labeled``, sharded across ranks.

    One pass over the pool gives every per-example need (and the memory-mapped softmax where the
    selector reads it); embeddings are a pass of their own. ``class_balance`` adds the pool's
    predicted classes. ``progress`` shows the passes. Given the batch ``k``, a selector's
    ``subpool`` is drawn first and only its candidates are scored (``ctx.candidates``).
    ``keep_shard``: a selector with ``scores_per_example`` and only per-example needs keeps this
    rank's shard of them, nothing is gathered, and :func:`select`/:func:`select_batch` exchange only
    candidates (:mod:`svpkit.selectors.shard_top_k`; the selection's scores are then on rank 0 only).
    """
    progress = progress or NullProgress()
    needs = set(selector.needs) & (PER_EXAMPLE | {FULL, MC_FULL})
    if class_balance:
        needs.add("predicted_class")
    if k is not None and not class_balance and not needs & (PER_EXAMPLE | MC_NEEDS | {MC_FULL}):
        ctx.candidates = subpool.draw_candidates(ctx, k)  # the selection RNG's first draw, as before
    pool = ctx.pool if ctx.candidates is None else ctx.pool[ctx.candidates]
    if needs:
        mc = None
        if needs & MC_NEEDS:
            seed = int(ctx.rng.integers(2**63 - 1))
            options = resolve_selector_options(selector, {}) | ctx.options  # defaults where a context has none
            mc = MCDropout(int(options["mc_samples"]), float(options["mc_dropout"]), seed)
        shard = parallel.local_shard(len(pool))
        sharded = keep_shard and shard is not None and selector.scores_per_example and needs <= PER_EXAMPLE
        values = reduced_pool(learner, pool, needs, mc, progress, gather=not sharded)
        if sharded:
            ctx.options[SHARD_OPTION] = shard
        if FULL in values:
            ctx.probabilities = values.pop(FULL)
        if MC_FULL in values:
            assert mc is not None
            ctx.mc_probabilities = accumulator(values.pop(MC_FULL), mc.samples)
        ctx.per_example.update(values)
    if "embeddings" in selector.needs:
        ctx.labeled_embeddings = parallel.sharded_rows(lambda ix: learner.embed(ix), ctx.labeled)
        sharded = selector.select_sharded is not None and ctx.candidates is None
        shard = parallel.local_shard(len(pool)) if sharded else None
        if shard is not None:
            start, stop = shard
            ctx.pool_embeddings = embed_stored(learner, pool[start:stop], ctx.options)
            ctx.options[SHARD_OPTION] = shard
        else:
            ctx.pool_embeddings = parallel.sharded_rows(lambda ix: embed_stored(learner, ix, ctx.options), pool)


def reduced_pool(
    learner: Learner,
    pool: np.ndarray,
    needs: set[str],
    mc: MCDropout | None,
    progress: Progress,
    gather: bool = True,
) -> dict[str, torch.Tensor]:
    """:func:`~svpkit.selectors.reductions.reduce_examples` of ``pool``, each rank its shard, the
    reductions gathered in pool order (the full softmax block by block, into its file); with
    ``gather`` False, this rank's shard of them only."""
    shard = parallel.local_shard(len(pool))
    start, stop = shard if shard is not None else (0, len(pool))
    with progress.task(f"score the pool ({stop - start:,} examples)", total=stop - start) as advance:
        local = reduce_examples(learner, pool[start:stop], needs, mc=mc, advance=advance)
    if shard is None or not gather:
        return local
    # One collective per need, in the same order on every rank (a set's order differs between processes).
    out = {name: parallel.gather_shards(local[name], len(pool)) for name in sorted(local) if name != FULL}
    if FULL in local:
        full = local[FULL]
        out[FULL] = parallel.gather_shards_into(full, file_tensor(len(pool), full.shape[1]))
    return out


EMBED_BLOCK = 65_536
"""Pool rows embedded at a time when the selector keeps 16-bit embeddings (a multiple of the
learners' inference batch sizes, so each row's float32 value is the one a whole-pool pass gives)."""


def embed_stored(learner: Learner, rows: np.ndarray, options: Mapping[str, object]) -> torch.Tensor:
    """``learner.embed(rows)`` in the selector's ``storage`` dtype: with 16-bit storage, block by
    block, so the float32 embeddings of the whole pool never exist at once."""
    if subpool.storage_dtype(options) == torch.float32 or not len(rows):
        return learner.embed(rows)
    blocks = range(0, len(rows), EMBED_BLOCK)
    return torch.cat([subpool.stored(learner.embed(rows[i : i + EMBED_BLOCK]), options) for i in blocks])


def select(selector: SelectorSpec, ctx: SelectionContext, k: int) -> Selection:
    """Run ``selector``: its sharded implementation when the context holds a pool shard (the top k
    of the shards' candidates for a selector with ``scores_per_example``)."""
    if SHARD_OPTION in ctx.options and selector.select_sharded is not None:
        return selector.select_sharded(ctx, k)
    if SHARD_OPTION in ctx.options and selector.scores_per_example:
        return shard_top_k.select_top_k(selector, ctx, k).selection
    return selector.select(ctx, k)


def check_picks(picks: np.ndarray, pool: np.ndarray, k: int, name: str) -> None:
    """A selector plugin's output is checked before it can corrupt a run."""
    if picks.shape != (k,):
        raise RuntimeError(f"selector {name!r} returned {picks.size} picks, expected {k}")
    if np.unique(picks).size != k or not np.isin(picks, pool).all():
        raise RuntimeError(f"selector {name!r} returned duplicate or already-labeled indices")


def mc_accumulate(learner: Learner, indices: np.ndarray, samples: int, dropout: float, seed: int) -> MCAccumulator:
    """``samples`` MC-dropout softmax passes over training examples ``indices``, summed (N × C)."""
    rows = reduce_examples(learner, indices, {MC_FULL}, mc=MCDropout(samples, dropout, seed))[MC_FULL]
    return accumulator(rows, samples)


def select_batch(
    selector: SelectorSpec, ctx: SelectionContext, k: int, proportions: np.ndarray | None = None
) -> tuple[Selection, dict[str, object] | None]:
    """:func:`select`, or with class ``proportions`` (``--class-balance``) the selector's top ``k``
    pool scores under class quotas, the pool's classes predicted by the selector model. Returns
    the selection and what the quotas did (None without class balance)."""
    if proportions is not None and SHARD_OPTION in ctx.options and selector.scores_per_example:
        top = shard_top_k.select_top_k(selector, ctx, k, proportions.tolist())
        assert top.quotas is not None
        report = balance_report(top.quotas.quotas, None, top.quotas.filled, "predicted", top.available)
        return top.selection, report
    selection = select(selector, ctx, k)
    if proportions is None:
        return selection, None
    if "predicted_class" in ctx.per_example:
        predicted = ctx.per_example["predicted_class"].cpu()
    elif ctx.probabilities is not None:  # a context built by hand
        predicted = ctx.probabilities.argmax(dim=1).cpu()
    else:
        raise RuntimeError("class balance needs the selector model's predicted classes of the pool")
    scores = torch.as_tensor(np.asarray(selection.scores, dtype=np.float32))
    chosen = class_balanced_top_k(scores, predicted, k, proportions.tolist())
    picks = ctx.pool[chosen.picks.numpy()].astype(np.int64)
    return Selection(picks, selection.scores), balance_report(chosen.quotas, predicted, chosen.filled, "predicted")


def balance_report(
    quotas: list[int],
    classes: torch.Tensor | None,
    filled: torch.Tensor,
    source: str,
    available: list[int] | None = None,
) -> dict[str, object]:
    """What class balance did (``class_balance.json``): quotas, candidates per class (counted from
    ``classes``, or given as ``available``), fills."""
    if available is None:
        assert classes is not None
        available = torch.bincount(classes.cpu().long(), minlength=len(quotas)).tolist()
    short = [c for c, (q, a) in enumerate(zip(quotas, available)) if a < q]
    return {
        "quotas": quotas,
        "candidates": available,
        "classes_of_candidates": source,
        "short_classes": short,
        "filled_from_other_classes": int(filled.numel()),
        "note": (
            f"classes {short} had fewer candidates than their quota; {int(filled.numel())} picks were filled "
            "from the best remaining candidates of the other classes"
            if short
            else "every class met its quota"
        ),
    }


VARIANT_DEFAULTS: dict[str, object] = {
    "class_balance": False,
    "coverage": "none",
    "score_models": 1,
    "initial_selector": "random",
}
"""Selection settings beyond the selector (``svpkit.selection`` tag when not at these defaults;
``initial_selector``: who picked the active-learning initial set)."""


SCALE_DEFAULTS = {o.name: o.default for o in subpool.OPTIONS}
"""The large-pool options of k-center and BADGE (``subpool``, ``storage``) at their defaults change
nothing, so they are not written there: plain runs keep the label they had before the options existed."""


def selector_settings(settings: LoopSettings, variant: Mapping[str, object]) -> dict[str, str]:
    """The resolved settings ``selector_options`` and ``selection`` (tags ``svpkit.<name>``): the
    selector's options (less the large-pool options at their defaults) and the loop's selection
    ``variant`` (class balance, initial selector, coverage, score models, …) where it differs from
    :data:`VARIANT_DEFAULTS`."""
    options = {k: v for k, v in settings.selector_options.items() if SCALE_DEFAULTS.get(k, object()) != v}
    return {
        "selector_options": format_options(options),
        "selection": format_options({k: v for k, v in variant.items() if v != VARIANT_DEFAULTS.get(k)}),
    }


def check_selection(
    selector: SelectorSpec, loop: str, proxy: ModelSpec, dataset: Dataset, settings: LoopSettings
) -> None:
    """The selector's own ``check`` and the class-balance rule of ``loop`` (ConfigError before any run)."""
    if settings.class_balance and loop != "core_set":
        if not selector.needs or not selector.score_based:
            what = "trains no selector model" if not selector.needs else "does not pick the top-k of a score"
            raise ConfigError(
                f"--class-balance in {loop.replace('_', ' ')} balances the selector's top scores over the selector "
                f"model's predicted classes; {selector.name!r} {what}"
            )
    if selector.check is None:
        return

    def build_proxy() -> object | None:
        return proxy.build(dataset.num_classes, dataset.input_shape) if proxy.build is not None else None

    selector.check(SelectorUse(loop, proxy.name, build_proxy, settings.selector_options))
