"""Per-example reductions of the selector model's outputs, computed batch by batch as it scores.

A selector names what it needs per pool example (``SelectorSpec.needs``) and the scoring pass
reduces each inference batch to exactly that before it takes the next, so no N × C probability
matrix exists for the selectors that read one number per example:

============================  ======================================================  =========
need                          per example                                             selectors
============================  ======================================================  =========
``max_probability``           max_c p(c)                                              least confidence
``margin``                    p₁ − p₂ (the two most likely classes)                   margin
``entropy``                   −Σ p log p                                              entropy
``predicted_class``           argmax_c p(c) (int64)                                   ``--class-balance``
``bald``                      BALD's mutual information under MC dropout              bald
``mc_entropy``                entropy of the MC-dropout mean                          mc_entropy
============================  ======================================================  =========

Each value is computed from one batch's rows exactly as the whole-pool matrix would give it (the
same float32 operations row by row), so picks are the same as from the full matrix; the tests hold
the full-matrix computation as their reference. ``probabilities`` (the full N × C softmax, for BADGE,
``auto`` and third-party rules) is written batch by batch into a memory-mapped file
(:func:`file_tensor`), never onto the heap. MC-dropout needs run their ``mc_samples`` passes per
batch (the batch is decoded once); each example's masks are a function of the run's seed and its
training index (:func:`svpkit.selectors.bald.keep_mask`), so they do not depend on batches or shards.

A learner with :class:`svpkit.protocols.StreamsBatches` (the torch learner) streams its inference
batches; any other learner is asked for blocks of :data:`BLOCK` rows.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from svpkit.errors import ConfigError
from svpkit.models.base import final_linear
from svpkit.protocols import HasModule, Learner, StreamsBatches
from svpkit.selectors.bald import head_samples, keep_mask
from svpkit.selectors.scores import MCAccumulator, entropy_scores

Reduction = Callable[[torch.Tensor], torch.Tensor]


def _margin(probs: torch.Tensor) -> torch.Tensor:
    top2 = probs.topk(min(2, probs.shape[1]), dim=1).values
    second = top2[:, 1] if top2.shape[1] > 1 else torch.zeros_like(top2[:, 0])
    return top2[:, 0] - second


PROBABILITY_REDUCTIONS: dict[str, Reduction] = {
    "max_probability": lambda p: p.max(dim=1).values,
    "margin": _margin,
    "entropy": entropy_scores,
    "predicted_class": lambda p: p.argmax(dim=1),
}
"""Reductions of one batch's softmax (rows align with the batch)."""

MC_REDUCTIONS: dict[str, Callable[[MCAccumulator], torch.Tensor]] = {
    "bald": MCAccumulator.bald,
    "mc_entropy": MCAccumulator.entropy,
}
"""Reductions of one batch's MC-dropout sums."""

REDUCTIONS = frozenset(PROBABILITY_REDUCTIONS) | frozenset(MC_REDUCTIONS)
FULL = "probabilities"
"""The need for the whole N × C softmax (memory-mapped)."""
MC_FULL = "mc_probabilities"
"""The need for the MC sums themselves (:class:`MCAccumulator` over the pool: N × C on the heap)."""
BLOCK = 16_384
"""Rows per call of ``predict_proba``/``embed`` for a learner that does not stream its batches."""
SCRATCH_ENV = "SVPKIT_SCRATCH"
"""Folder of the memory-mapped probability files (default: the system's temporary folder)."""


@dataclass(frozen=True)
class MCDropout:
    """``samples`` stochastic passes per batch; the masks are keyed by ``seed`` (:func:`keep_mask`)."""

    samples: int
    dropout: float
    seed: int


def file_tensor(rows: int, cols: int, dtype: np.dtype = np.dtype(np.float32)) -> torch.Tensor:
    """A zero-filled ``rows`` × ``cols`` tensor backed by a memory-mapped file (unlinked at once, so
    it goes when the tensor does): its pages are the page cache's, not the heap's."""
    fd, name = tempfile.mkstemp(prefix="svpkit-", suffix=".f32", dir=os.environ.get(SCRATCH_ENV) or None)
    os.close(fd)
    try:
        array = np.memmap(name, dtype=dtype, mode="w+", shape=(max(rows, 1), max(cols, 1)))
    finally:
        os.unlink(name)
    return torch.from_numpy(array)[:rows, :cols]


def _batches(learner: Learner, indices: np.ndarray, split: str) -> Iterator[_Batch]:
    """One scored unit at a time: an inference batch (streaming learners) or a block of rows."""
    if isinstance(learner, StreamsBatches):
        streams, start = learner, 0
        for x in streams.input_batches(indices, split):

            def batch(e: bool, x: torch.Tensor = x) -> tuple[torch.Tensor, torch.Tensor | None]:
                return streams.outputs(x, e)

            yield _Batch(batch, indices[start : start + len(x)])
            start += len(x)
        return
    for start in range(0, len(indices), BLOCK):
        rows = indices[start : start + BLOCK]

        def block(e: bool, rows: np.ndarray = rows) -> tuple[torch.Tensor, torch.Tensor | None]:
            return learner.predict_proba(rows, split), (learner.embed(rows, split) if e else None)

        yield _Batch(block, rows)


@dataclass(frozen=True)
class _Batch:
    outputs: Callable[[bool], tuple[torch.Tensor, torch.Tensor | None]]
    """(probabilities, features if asked) of the batch; a second call runs the model again."""
    indices: np.ndarray
    """The batch's examples (training indices)."""

    @property
    def rows(self) -> int:
        return len(self.indices)


def reduce_examples(
    learner: Learner,
    indices: np.ndarray,
    needs: Iterable[str],
    split: str = "train",
    mc: MCDropout | None = None,
    advance: Callable[[int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """The per-example values ``needs`` (names of :data:`REDUCTIONS`, :data:`FULL`, :data:`MC_FULL`)
    of examples ``indices`` of ``split``, one batch at a time; rows align with ``indices``.
    ``mc`` is required for the MC needs; ``advance(rows)`` follows the pass."""
    wanted = set(needs)
    mc_wanted = wanted & (set(MC_REDUCTIONS) | {MC_FULL})
    if mc_wanted and mc is None:
        raise ValueError(f"{sorted(mc_wanted)} need MC-dropout settings")
    out = _Collected(wanted, len(indices))
    with _MCPasses(learner, mc if mc_wanted else None) as passes:
        eval_pass = bool(wanted & (set(PROBABILITY_REDUCTIONS) | {FULL})) or passes.head is not None
        for batch in _batches(learner, indices, split):
            rows = batch.rows
            if eval_pass:
                probs, features = batch.outputs(passes.head is not None)
                out.add_probabilities(probs)
            if mc_wanted:
                out.add_mc(passes.sums(batch, features if passes.head is not None else None))
            out.start += rows
            if advance is not None:
                advance(rows)
    return out.result()


class _Collected:
    """The reductions of the batches so far, each written into its slice of one tensor of all the
    rows (allocated at the first batch; the full softmax in its file). No per-batch part outlives its
    batch: small parts kept between each batch's large transient outputs would pin the heap's free
    space, and the process would grow by about a batch of outputs per batch."""

    def __init__(self, wanted: set[str], rows: int) -> None:
        self.wanted, self.rows, self.start = wanted, rows, 0
        self.values: dict[str, torch.Tensor] = {}
        self.full: torch.Tensor | None = None

    def _put(self, name: str, value: torch.Tensor) -> None:
        if name not in self.values:
            self.values[name] = value.new_empty((self.rows, *value.shape[1:]))
        self.values[name][self.start : self.start + len(value)] = value

    def add_probabilities(self, probs: torch.Tensor) -> None:
        for name in self.wanted & set(PROBABILITY_REDUCTIONS):
            self._put(name, PROBABILITY_REDUCTIONS[name](probs))
        if FULL in self.wanted:
            if self.full is None:
                self.full = file_tensor(self.rows, probs.shape[1])
            self.full[self.start : self.start + len(probs)] = probs.cpu()

    def add_mc(self, acc: MCAccumulator) -> None:
        for name in self.wanted & set(MC_REDUCTIONS):
            self._put(name, MC_REDUCTIONS[name](acc))
        if MC_FULL in self.wanted:
            assert acc.sum_probs is not None and acc.sum_entropy is not None
            self._put(MC_FULL, torch.cat([acc.sum_probs, acc.sum_entropy[:, None]], dim=1))

    def result(self) -> dict[str, torch.Tensor]:
        out = {name: self.values.get(name, torch.empty(0)) for name in self.wanted - {FULL}}
        if FULL in self.wanted:
            out[FULL] = self.full if self.full is not None else torch.empty((0, 0))
        return out


def accumulator(rows: torch.Tensor, samples: int) -> MCAccumulator:
    """The :class:`MCAccumulator` of ``[Σ p | Σ H]`` rows (the :data:`MC_FULL` reduction)."""
    acc = MCAccumulator()
    acc.sum_probs, acc.sum_entropy, acc.count = rows[:, :-1].contiguous(), rows[:, -1].contiguous(), samples
    return acc


class _MCPasses:
    """MC dropout over a learner's model, batch by batch. While open, a model with dropout layers
    has hooks on them that drop (:func:`keep_mask`) during :meth:`sums` only; a model
    without has ``head`` (its final linear layer): the passes are dropout on the batch's features,
    then that head."""

    def __init__(self, learner: Learner, mc: MCDropout | None) -> None:
        self.learner, self.mc = learner, mc
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        self.head: torch.nn.Linear | None = None
        self.rows: torch.Tensor | None = None
        """The training indices of the batch in an MC pass (None: no pass, the hooks do nothing)."""
        self.sample = 0

    def __enter__(self) -> _MCPasses:
        if self.mc is None:
            return self
        if not isinstance(self.learner, HasModule) or not isinstance(self.learner.model, torch.nn.Module):
            raise ConfigError("MC dropout needs a torch model (the learner has no nn.Module)")
        model = self.learner.model
        layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
        if not layers:
            self.head = final_linear(model)
            return self
        seed, dropout = self.mc.seed, self.mc.dropout

        def dropper(layer: int) -> Callable[[torch.nn.Module, tuple[torch.Tensor, ...], torch.Tensor], torch.Tensor]:
            def drop(module: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
                if self.rows is None:
                    return out
                x = args[0]
                p = float(getattr(module, "p", dropout))
                keep = keep_mask(self.rows.to(x.device), x.shape, self.sample, seed, p, layer)
                return x * keep / (1.0 - p)

            return drop

        self.handles = [m.register_forward_hook(dropper(i)) for i, m in enumerate(layers)]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def sums(self, batch: _Batch, features: torch.Tensor | None) -> MCAccumulator:
        """The MC sums of one batch (``features``: its penultimate activations, head passes only)."""
        mc = self.mc
        assert mc is not None
        acc = MCAccumulator()
        if self.head is not None:
            assert features is not None
            head = self.head
            bias = None if head.bias is None else head.bias.detach()
            rows = torch.as_tensor(batch.indices, device=features.device)
            for p in head_samples(features, rows, head.weight.detach(), bias, mc.samples, mc.dropout, mc.seed):
                acc.add(p)
            return acc
        self.rows = torch.as_tensor(batch.indices)
        try:
            for self.sample in range(mc.samples):
                acc.add(batch.outputs(False)[0])
        finally:
            self.rows = None
        return acc
