"""BALD and MC-dropout scores (Houlsby et al. 2011; Gal, Islam & Ghahramani 2017).

BALD ranks a pool point by the mutual information between its label and the model parameters,
estimated from ``T`` stochastic forward passes (Monte-Carlo dropout):

    I[y; θ | x] ≈ H(1/T Σ_t p_t) − 1/T Σ_t H(p_t),     H(p) = −Σ_c p_c log p_c, 0·log 0 = 0.

The first term alone (:func:`mc_entropy_scores`) is "max entropy" under MC dropout. Scores are
float32 on the probabilities' device; ranking them (highest first) is the caller's, with ties
towards the lower pool position (:func:`svpkit.selectors.base.rank_descending`).

The scoring pass runs the ``T`` passes batch by batch and keeps one value per pool example
(:mod:`svpkit.selectors.reductions`): :class:`MCAccumulator` takes a batch's samples one by one, and
:func:`mc_head_probabilities` yields them one by one (dropout on the penultimate features, then
the final linear layer: the network body runs once per batch, only the head ``T`` times).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from svpkit.errors import ConfigError
from svpkit.options import ModelOption
from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec, SelectorUse, top_k_by_score
from svpkit.selectors.scores import MCAccumulator, has_final_linear

MC_OPTIONS = (
    ModelOption("mc_samples", int, 20, "Monte-Carlo dropout passes (at least 2)"),
    ModelOption("mc_dropout", float, 0.5, "dropout probability on the penultimate features (models without dropout)"),
)


def validate_mc_options(samples: int, dropout: float) -> None:
    """``mc_samples`` ≥ 2 (one pass has no disagreement to measure) and ``mc_dropout`` in [0, 1)."""
    if samples < 2:
        raise ValueError(f"mc_samples must be at least 2 (got {samples}): BALD needs several stochastic passes")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"mc_dropout must be in [0, 1) (got {dropout})")


def _accumulate(mc_probs: torch.Tensor) -> MCAccumulator:
    if mc_probs.dim() != 3:
        raise ValueError(f"expected MC probabilities of shape T × N × C, got {tuple(mc_probs.shape)}")
    acc = MCAccumulator()
    for sample in mc_probs:
        acc.add(sample)
    return acc


def bald_scores(mc_probs: torch.Tensor) -> torch.Tensor:
    """BALD mutual information per point from a T × N × C tensor of MC-dropout probabilities."""
    return _accumulate(mc_probs).bald()


def mc_entropy_scores(mc_probs: torch.Tensor) -> torch.Tensor:
    """Entropy of the MC mean per point from a T × N × C tensor of MC-dropout probabilities."""
    return _accumulate(mc_probs).entropy()


def mc_head_probabilities(
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    samples: int,
    dropout: float,
    generator: torch.Generator,
    chunk: int = 65_536,
) -> Iterator[torch.Tensor]:
    """Yield ``samples`` N × C softmax matrices: dropout on ``features``, then the linear head.

    ``features`` (N × d) are the penultimate activations, embedded once (eval mode); ``weight``
    (C × d) and ``bias`` (C) are the final ``nn.Linear``'s. Each pass zeroes every feature
    independently with probability ``dropout`` and scales the rest by 1/(1 − ``dropout``)
    (``nn.Dropout``'s training-mode semantics), drawing masks from ``generator`` (on the features'
    device) sample by sample, chunk by chunk in row order. Math in float32.
    """
    validate_mc_options(samples, dropout)
    device = features.device
    w_t = weight.to(device).float().T
    b = torch.zeros(w_t.shape[1], device=device) if bias is None else bias.to(device).float()
    scale = 1.0 / (1.0 - dropout)
    for _ in range(samples):
        out = torch.empty(features.shape[0], w_t.shape[1], dtype=torch.float32, device=device)
        for i in range(0, features.shape[0], chunk):
            h = features[i : i + chunk].float()
            keep = torch.rand(h.shape, generator=generator, device=device) >= dropout
            logits = torch.addmm(b, h * keep, w_t, alpha=scale)
            out[i : i + chunk] = torch.softmax(logits, dim=1)
        yield out


_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)  # splitmix64's constants as signed int64
_M2 = 0x94D049BB133111EB - (1 << 64)
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 (logical shifts: the sign bits are masked off)."""
    x = x ^ ((x >> 30) & ((1 << 34) - 1))
    x = x * _M1
    x = x ^ ((x >> 27) & ((1 << 37) - 1))
    x = x * _M2
    return x ^ ((x >> 31) & ((1 << 33) - 1))


def keep_mask(
    rows: torch.Tensor, shape: torch.Size | tuple[int, ...], sample: int, seed: int, dropout: float, layer: int = 0
) -> torch.Tensor:
    """The dropout keep-mask (``shape``, bool) of MC sample ``sample`` for the examples ``rows``
    (training indices, one per leading entry of ``shape``) at dropout layer ``layer``.

    Each entry is a function of (seed, sample, layer, example, position) alone, a counter-based
    draw (splitmix64): an example gets the same masks whatever batch, shard or pool it is scored
    in, so BALD's scores do not depend on the inference batch size or on ``torchrun``'s shards.
    """
    device = rows.device
    rest = 1
    for d in shape[1:]:
        rest *= int(d)
    start = (seed + _GOLDEN * (1 + sample) + _M1 * layer + (1 << 63)) % (1 << 64) - (1 << 63)  # wrapped to int64
    stream = _mix(torch.tensor(start, dtype=torch.int64)).to(device)
    key = rows.to(torch.int64)[:, None] * rest + torch.arange(rest, device=device, dtype=torch.int64)[None, :]
    bits = (_mix(_mix(key ^ stream)) >> 11) & ((1 << 53) - 1)
    return (bits.double() * 2.0**-53 >= dropout).reshape(shape)


def head_samples(
    features: torch.Tensor,
    rows: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    samples: int,
    dropout: float,
    seed: int,
) -> Iterator[torch.Tensor]:
    """Yield ``samples`` softmax matrices of the examples ``rows``: dropout (:func:`keep_mask`) on
    their penultimate ``features``, then the linear head (``nn.Dropout``'s training-mode scaling)."""
    validate_mc_options(samples, dropout)
    device = features.device
    w_t = weight.to(device).float().T
    b = torch.zeros(w_t.shape[1], device=device) if bias is None else bias.to(device).float()
    h = features.float()
    for t in range(samples):
        keep = keep_mask(rows, h.shape, t, seed, dropout)
        yield torch.softmax(torch.addmm(b, h * keep, w_t, alpha=1.0 / (1.0 - dropout)), dim=1)


def check_mc(use: SelectorUse) -> None:
    """The options are valid and the proxy is a torch classifier with a final linear layer."""
    try:
        validate_mc_options(int(use.options["mc_samples"]), float(use.options["mc_dropout"]))
    except ValueError as e:
        raise ConfigError(f"--selector-options: {e}") from None
    if not has_final_linear(use.build_proxy()):
        raise ConfigError(f"MC dropout needs a torch classifier with a final nn.Linear layer; {use.proxy!r} has none")


def _mc_scores(ctx: SelectionContext, need: str) -> torch.Tensor:
    """The pool's ``need`` (``bald``/``mc_entropy``), reduced batch by batch as the pool was scored;
    from ``ctx.mc_probabilities`` for a context that holds the MC sums instead."""
    if need in ctx.per_example:
        return ctx.per_example[need]
    if ctx.mc_probabilities is None:
        raise RuntimeError("this selector needs the MC-dropout passes over the pool (none were computed)")
    return ctx.mc_probabilities.bald() if need == "bald" else ctx.mc_probabilities.entropy()


def select_bald(ctx: SelectionContext, k: int) -> Selection:
    return top_k_by_score(ctx, _mc_scores(ctx, "bald"), k)


def select_mc_entropy(ctx: SelectionContext, k: int) -> Selection:
    return top_k_by_score(ctx, _mc_scores(ctx, "mc_entropy"), k)


def _spec(name: str, select: Callable[[SelectionContext, int], Selection], description: str) -> SelectorSpec:
    return SelectorSpec(
        name,
        select,
        frozenset({name}),
        description,
        options=MC_OPTIONS,
        check=check_mc,
        score_based=True,
        scores_per_example=True,
    )


SPECS = [
    _spec("bald", select_bald, "highest mutual information between label and weights under MC dropout first"),
    _spec("mc_entropy", select_mc_entropy, "highest entropy of the MC-dropout mean prediction first"),
]
