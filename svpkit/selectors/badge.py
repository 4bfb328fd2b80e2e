"""BADGE: k-means++ seeding on last-layer gradient embeddings (Ash et al., ICLR 2020).

The gradient embedding of pool point ``i`` is the gradient of the cross-entropy at the model's
own prediction ŷ_i = argmax p_i with respect to the final linear layer's weight,

    g_i = (p_i − onehot(ŷ_i)) ⊗ h_i = a_i ⊗ h_i,      (C·d values; the bias is left out, as in
                                                        the authors' code, whose sign is flipped)

with ``h_i`` the penultimate features (the final layer's input). It is never materialised: with
the factors a_i (C) and h_i (d),

    ‖g_i‖² = ‖a_i‖²‖h_i‖²,     ‖g_i − g_j‖² = ‖g_i‖² + ‖g_j‖² − 2 (a_i·a_j)(h_i·h_j),

so a pick costs two matrix-vector products per chunk (``P @ a_c`` and ``H @ h_c``; a_i·a_c is
p_i·a_c − a_c[ŷ_i]) and memory stays O(N·(C + d)) for the inputs plus O(N) running state.

Seeding follows the authors' ``init_centers``: the first centre is the point of largest gradient
norm (``torch.argmax``: ties to the lowest pool position); each further centre is drawn with
probability proportional to D², the squared distance to its nearest centre so far (a running
minimum, lowered per pick chunk by chunk). A draw is one uniform ``u`` from the caller's
``torch.Generator`` and the inverse of the float64 cumulative D² (the first point whose
cumulative sum exceeds ``u``·ΣD²). Picked points have D² = 0 and are never drawn again; if every
remaining D² is 0 (duplicates of the centres), the lowest unpicked position is taken. The whole
loop stays on the device without host synchronisation.
"""

from __future__ import annotations

import torch

from svpkit.errors import ConfigError
from svpkit.selectors import subpool
from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec, SelectorUse
from svpkit.selectors.scores import has_final_linear


class GradientEmbedding:
    """The factors of the last-layer gradient embeddings of a pool (probabilities N × C, features N × d).

    Both inputs stay where they are (any float dtype, the features' device); per-point squared
    norms and the predicted classes are computed once, in float32, chunk by chunk.
    """

    def __init__(self, probs: torch.Tensor, features: torch.Tensor, chunk: int = 65_536) -> None:
        if probs.shape[0] != features.shape[0]:
            raise ValueError(f"{probs.shape[0]} probability rows but {features.shape[0]} feature rows")
        self.probs, self.features, self.chunk = probs, features, chunk
        device = features.device
        n = probs.shape[0]
        self.predicted = torch.empty(n, dtype=torch.long, device=device)
        a_sq = torch.empty(n, dtype=torch.float32, device=device)
        h_sq = torch.empty(n, dtype=torch.float32, device=device)
        for i in range(0, n, chunk):
            p = probs[i : i + chunk].to(device).float()
            y = p.argmax(dim=1)
            self.predicted[i : i + chunk] = y
            a_sq[i : i + chunk] = p.scatter_add(1, y[:, None], -torch.ones_like(p[:, :1])).square().sum(dim=1)
            h_sq[i : i + chunk] = features[i : i + chunk].float().square().sum(dim=1)
        self.sq_norms = a_sq * h_sq
        """‖g_i‖² per point (float32)."""

    def _factor_a(self, idx: torch.Tensor) -> torch.Tensor:
        p = self.probs[idx].to(self.features.device).float()
        classes = torch.arange(p.shape[0], device=p.device)
        return torch.where(classes == self.predicted[idx], p - 1.0, p)

    def lower_min(self, min_sq: torch.Tensor, idx: torch.Tensor) -> None:
        """``min_sq = min(min_sq, ‖g − g_idx‖²)`` in place, chunk by chunk (idx: a 0-d device tensor)."""
        a_c = self._factor_a(idx)
        h_c = self.features[idx].float()
        c_sq = self.sq_norms[idx]
        for i in range(0, min_sq.shape[0], self.chunk):
            p = self.probs[i : i + self.chunk].to(a_c.device).float()
            a_dot = (p @ a_c).sub_(a_c[self.predicted[i : i + self.chunk]])
            h_dot = self.features[i : i + self.chunk].float() @ h_c
            d = (self.sq_norms[i : i + self.chunk] + c_sq).sub_(a_dot.mul_(h_dot), alpha=2.0).clamp_min_(0.0)
            torch.minimum(min_sq[i : i + self.chunk], d, out=min_sq[i : i + self.chunk])


def _draw_d2(min_sq: torch.Tensor, picked: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One position drawn with probability ∝ ``min_sq`` (0-d device tensor; see the module doc)."""
    cdf = torch.cumsum(min_sq, dim=0, dtype=torch.float64)
    total = cdf[-1]
    u = torch.rand((), generator=generator, device=min_sq.device, dtype=torch.float64)
    # u < 1, but u·total may round up to total; the cap keeps the target below the last mass.
    target = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
    drawn = torch.searchsorted(cdf, target[None], right=True)[0].clamp_max_(min_sq.shape[0] - 1)
    first_unpicked = torch.argmax((~picked).to(torch.uint8))
    return torch.where(total > 0, drawn, first_unpicked)


def badge_select(
    probs: torch.Tensor,
    features: torch.Tensor,
    k: int,
    generator: torch.Generator,
    chunk: int = 65_536,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick ``k`` pool positions by k-means++ on gradient embeddings; returns (picks, norms).

    ``probs`` (N × C softmax) and ``features`` (N × d penultimate activations) align row by row;
    ``generator`` lives on the features' device and is seeded by the caller (the selection RNG).
    Returns the positions in pick order (long) and, for logging, the gradient-embedding norm
    ‖g_i‖ of every pool point (float32; the first pick is its argmax). Both on the features' device.
    """
    n = probs.shape[0]
    if not 0 <= k <= n:
        raise ValueError(f"BADGE cannot pick {k} points from a pool of {n}")
    emb = GradientEmbedding(probs, features, chunk)
    device = features.device
    picks = torch.empty(k, dtype=torch.long, device=device)
    if k == 0:
        return picks, emb.sq_norms.sqrt()
    picked = torch.zeros(n, dtype=torch.bool, device=device)
    min_sq = torch.full((n,), float("inf"), dtype=torch.float32, device=device)
    idx = torch.argmax(emb.sq_norms)
    for step in range(k):
        picks[step] = idx
        picked[idx] = True
        emb.lower_min(min_sq, idx)
        min_sq[idx] = 0.0  # a centre is at distance 0 even where rounding says otherwise (earlier ones stay 0)
        if step + 1 < k:
            idx = _draw_d2(min_sq, picked, generator)
    return picks, emb.sq_norms.sqrt()


def check_badge(use: SelectorUse) -> None:
    """BADGE embeds the gradient of the proxy's final linear layer: the proxy must have one."""
    if not has_final_linear(use.build_proxy()):
        raise ConfigError(
            f"badge needs a torch classifier with a final nn.Linear layer (its gradient embedding); {use.proxy!r} has none"
        )


def select_badge(ctx: SelectionContext, k: int) -> Selection:
    """k-means++ on the pool's (or this round's random subpool's) gradient embeddings, the
    generator seeded from the selection RNG after the subpool draw; factors in the ``storage`` dtype."""
    if ctx.probabilities is None or ctx.pool_embeddings is None:
        raise RuntimeError("badge needs the pool's probabilities and embeddings")
    device = ctx.pool_embeddings.device
    candidates = subpool.draw_candidates(ctx, k)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(ctx.rng.integers(2**63 - 1)))
    probs = subpool.restrict(ctx, ctx.probabilities.to(device), candidates)
    features = subpool.restrict(ctx, ctx.pool_embeddings, candidates)
    picks, norms = badge_select(probs, features, k, generator)
    return subpool.selection(ctx, candidates, picks, norms)


SPECS = [
    SelectorSpec(
        "badge",
        select_badge,
        frozenset({"probabilities", "embeddings"}),
        "k-means++ seeding on last-layer gradient embeddings (diverse and uncertain)",
        check=check_badge,
        options=subpool.OPTIONS,
    )
]
