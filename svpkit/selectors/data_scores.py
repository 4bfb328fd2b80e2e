"""EL2N and GraNd data-difficulty scores (Paul, Ganguli & Dziugaite, NeurIPS 2021).

Both score a labelled training example early in training; higher means harder, and a core set
keeps the highest scores first (ranking and ties are the caller's: highest first, ties towards
the lower position, :func:`svpkit.selectors.base.rank_descending`). The paper averages either
score over several independently initialised models (:func:`average_scores`).

- EL2N: ‖softmax(f(x)) − onehot(y)‖₂ (:func:`el2n_scores`).
- GraNd: ‖∇_θ CE(f(x), y)‖₂ over all parameters (:func:`grand_scores`, one gradient per example
  with ``torch.func``), or its cheap last-layer variant (:func:`grand_last_layer_scores`): the
  gradient with respect to the final linear layer's weight and bias is (p − y) ⊗ [h, 1], whose
  norm is ‖p − y‖ · sqrt(‖h‖² + 1) for penultimate features ``h``.

All scores are float32 on the inputs' device (the model's, for :func:`grand_scores`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.func import functional_call, grad, vmap

from svpkit.errors import ConfigError
from svpkit.options import ModelOption
from svpkit.protocols import TorchInputs
from svpkit.selectors.base import (
    RankContext,
    Ranking,
    Selection,
    SelectionContext,
    SelectorSpec,
    SelectorUse,
    ranking_by_score,
)

LABELS_REASON = (
    "needs the labels of the examples it scores; in {loop} the scored pool examples have no label until "
    "they are picked, so use it for core-set selection (svpkit core-set --selector {name})"
)
CHUNK = 1024


def el2n_scores(probs: torch.Tensor, labels: torch.Tensor, chunk: int = 65_536) -> torch.Tensor:
    """‖p_i − onehot(y_i)‖₂ per example for N × C probabilities and N integer labels."""
    if probs.shape[0] != labels.shape[0]:
        raise ValueError(f"{probs.shape[0]} probability rows but {labels.shape[0]} labels")
    out = torch.empty(probs.shape[0], dtype=torch.float32, device=probs.device)
    for i in range(0, probs.shape[0], chunk):
        p = probs[i : i + chunk].float()
        y = labels[i : i + chunk].to(p.device, torch.long)[:, None]
        out[i : i + chunk] = p.scatter_add(1, y, -torch.ones_like(y, dtype=p.dtype)).norm(dim=1)
    return out


def grand_last_layer_scores(
    probs: torch.Tensor, labels: torch.Tensor, features: torch.Tensor, chunk: int = 65_536
) -> torch.Tensor:
    """‖p − y‖ · sqrt(‖h‖² + 1): the gradient norm for the final layer's weight and bias only."""
    if features.shape[0] != probs.shape[0]:
        raise ValueError(f"{probs.shape[0]} probability rows but {features.shape[0]} feature rows")
    h_sq = torch.empty(features.shape[0], dtype=torch.float32, device=probs.device)
    for i in range(0, features.shape[0], chunk):
        h_sq[i : i + chunk] = features[i : i + chunk].to(probs.device).float().square().sum(dim=1)
    return el2n_scores(probs, labels, chunk) * (h_sq + 1.0).sqrt()


def grand_scores(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """‖∇_θ CE(f(x_i), y_i)‖₂ over every parameter of ``model``, one example at a time.

    Per-example gradients come from ``torch.func`` (``vmap`` over ``grad`` of a
    ``functional_call``), ``chunk`` examples at once (memory: ``chunk`` × the parameter count).
    The model runs in eval mode (batch-norm statistics, no dropout), restored afterwards; inputs
    move chunk by chunk to the model's device. Squared norms are summed in float32.
    """
    if inputs.shape[0] != labels.shape[0]:
        raise ValueError(f"{inputs.shape[0]} inputs but {labels.shape[0]} labels")
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    if not params:
        raise ValueError(f"{type(model).__name__} has no parameters to take gradients of")
    device = next(iter(params.values())).device

    def loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (p, buffers), (x[None],))
        return torch.nn.functional.cross_entropy(logits, y[None])

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))
    out = torch.empty(inputs.shape[0], dtype=torch.float32, device=device)
    was_training = model.training
    model.eval()
    try:
        for i in range(0, inputs.shape[0], chunk):
            x = inputs[i : i + chunk].to(device)
            y = labels[i : i + chunk].to(device, torch.long)
            grads = per_example(params, x, y)
            out[i : i + chunk] = sum(g.float().square().flatten(1).sum(dim=1) for g in grads.values())
    finally:
        model.train(was_training)
    return out.sqrt_()


def average_scores(scores: Sequence[torch.Tensor]) -> torch.Tensor:
    """The mean of per-example scores from several models (``--score-models N``), in float32."""
    if not scores:
        raise ValueError("average_scores needs at least one score vector")
    total = scores[0].float().clone()
    for s in scores[1:]:
        if s.shape != total.shape:
            raise ValueError(f"score vectors of shapes {tuple(total.shape)} and {tuple(s.shape)}")
        total += s.to(total.device).float()
    return total / len(scores)


def _check_core_set(name: str) -> Callable[[SelectorUse], None]:
    def check(use: SelectorUse) -> None:
        if use.loop != "core_set":
            raise ConfigError(f"{name} {LABELS_REASON.format(loop=use.loop.replace('_', ' '), name=name)}")

    return check


def _refuse_select(ctx: SelectionContext, k: int) -> Selection:
    raise ConfigError("EL2N and GraNd score labeled training examples: core-set selection only")


def _labels(ctx: RankContext) -> torch.Tensor:
    if ctx.learner is None or ctx.labels is None:
        raise RuntimeError("EL2N and GraNd need a trained proxy and the training labels")
    return ctx.labels


def rank_el2n(ctx: RankContext) -> Ranking:
    """Every training example by EL2N of the proxy's eval-mode softmax, hardest first."""
    labels = _labels(ctx)
    assert ctx.learner is not None
    return ranking_by_score(el2n_scores(ctx.learner.predict_proba(None, "train"), labels))


def _all_parameter_scores(learner: object, labels: torch.Tensor) -> torch.Tensor:
    """GraNd over every parameter of a torch learner's model (inputs prepared chunk by chunk)."""
    if not isinstance(learner, TorchInputs) or not isinstance(learner.model, torch.nn.Module):
        raise ConfigError("grand with layers=all needs svpkit's torch learner (use layers=last otherwise)")
    model, prepare = learner.model, learner.prepare
    x_all, _ = learner.inputs("train")
    out = [
        grand_scores(model, prepare(x_all[i : i + CHUNK].to(learner.device)), labels[i : i + CHUNK])
        for i in range(0, labels.shape[0], CHUNK)
    ]
    return torch.cat(out) if out else torch.empty(0)


def rank_grand(ctx: RankContext) -> Ranking:
    """Every training example by its gradient norm (``layers``: all parameters or the last layer)."""
    labels = _labels(ctx)
    learner = ctx.learner
    assert learner is not None
    if ctx.options.get("layers", "all") == "last":
        probs = learner.predict_proba(None, "train")
        scores = grand_last_layer_scores(probs, labels, learner.embed(None, "train"))
    else:
        scores = _all_parameter_scores(learner, labels)
    return ranking_by_score(scores)


def _spec(
    name: str, rank: Callable[[RankContext], Ranking], needs: set[str], description: str, **kw: Any
) -> SelectorSpec:
    return SelectorSpec(
        name,
        _refuse_select,
        frozenset({"labels", *needs}),
        description,
        rank=rank,
        check=_check_core_set(name),
        score_based=True,
        **kw,
    )


GRAND_OPTIONS = (
    ModelOption(
        "layers", str, "all", "gradient of every parameter (all) or of the final layer only (last)", ("all", "last")
    ),
)

SPECS = [
    _spec("el2n", rank_el2n, {"probabilities"}, "highest error L2 norm |softmax - onehot(y)| first (core-set)"),
    _spec("grand", rank_grand, set(), "highest per-example gradient norm first (core-set)", options=GRAND_OPTIONS),
]
