"""``auto``: a budget-aware strategy, a cold-start selector first, then an uncertainty-type one.

Hacohen, Dekel & Weinshall (ICML 2022) show that the best queries change with the budget: with
few labels per class, *typical* examples (TypiClust, ProbCover) beat random and uncertainty
sampling loses to it; with many, uncertainty (and BADGE) win. They give no universal switch
point: it depends on the data set. svpkit therefore hands over on the run's own evidence that
the model has settled, evaluated every round:

    labeled per class = |L| / C  (C = the selector model's number of classes)
    κ = Cohen's κ between the last two rounds' targets on the run's stop set (svpkit.loops.stopping;
        Bloodgood & Vijay-Shanker 2009 read its stability as "the model has stopped changing")
    hand over  ⇔  |L| / C ≥ switch_per_class  and  κ ≥ switch_kappa in some round so far

With no κ yet (fewer than two target rounds) it stays in the cold-start phase. Where the loop
keeps no κ at all (``svpkit query``: no target is trained) only the count decides. Defaults:
``switch_per_class`` 5, ``switch_kappa`` 0.9 (the earlier count-only rule, switch at 5 per class,
lost to random on digits at 10 % labeled: docs/reproducing.md; ``switch_kappa=0`` restores it).
Once handed over it does not go back; the round that switches and why are in the round's
``selector_info`` (``timings.json``, the run's state) and the tag ``svpkit.auto_switch``. The
cold-start selector (``cold_start``, default ``maxherding``: chosen on issue 35's tuning seeds,
docs/reproducing.md; it was ``typiclust`` before) picks in the representation ``embedding``
names. Its default ``auto`` is resolved when the data set is loaded, before the run exists
(svpkit.loops.cold_start.settle_representation), and the run records the resolved value in
``svpkit.selector_options``:

- ``input`` where the training inputs are one in-memory tensor: the standardised inputs (vectors,
  decoded images), or with a backbone its stored embeddings (standardised);
- ``model`` where they are not (streamed image folders, shards, text without a backbone): the
  selector model's penultimate features, which the scoring pass computes anyway (``auto`` needs
  ``embeddings``), batch by batch, so the pool's pixels are never held as a whole.

A context whose ``embedding`` is still ``auto`` (built by hand) picks on the input embedding when
the context has one, else on the model's.

The hand-over selector ``then`` is ``badge`` (the default since issue 35: on its digits yardstick,
tuning seeds 100–119, BADGE's diverse batch beat least confidence's top-k, the default before, by
0.14 ± 0.12 AUC points; docs/algorithms.md), ``least_confidence``, ``margin``, ``entropy`` or
``uherding``: Uncertainty Herding (Bae, Oliveira & Sutherland, ICLR 2025), MaxHerding's coverage
with each pool point weighted by the selector model's margin uncertainty, in the cold-start half's
representation (svpkit.selectors.maxherding.select_uncertainty_herding). The cold-start half is
unchanged by it: a run that never hands over picks as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from svpkit.models.options import ModelOption
from svpkit.selectors.badge import check_badge, select_badge
from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec, SelectorUse, top_k_by_score
from svpkit.selectors.embedding import EMBEDDING_OPTION, PCA_OPTION, resolved_options
from svpkit.selectors.maxherding import select_maxherding, select_uncertainty_herding
from svpkit.selectors.probcover import select_probcover
from svpkit.selectors.typiclust import check_cold_start, select_typiclust
from svpkit.selectors.uncertainty import entropy_scores, least_confidence_scores, margin_scores

AUTO_EMBEDDING = "auto"
"""``auto``'s default ``embedding``: resolved from the data set (svpkit.selectors.embedding.representation_for)."""
COLD_START = {"typiclust": select_typiclust, "probcover": select_probcover, "maxherding": select_maxherding}
UNCERTAINTY = {"least_confidence": least_confidence_scores, "margin": margin_scores, "entropy": entropy_scores}


def auto_phase(
    labeled: int,
    classes: int,
    switch_per_class: float,
    kappas: Sequence[float] | None = None,
    switch_kappa: float = 0.0,
) -> tuple[bool, str]:
    """(hand over?, why) for a labeled set of ``labeled`` examples over ``classes`` classes and the
    κ history ``kappas`` (consecutive targets on the stop set; None: the loop keeps none).
    ``switch_kappa`` 0 ignores κ (the count alone decides)."""
    per_class = labeled / max(classes, 1)
    enough = per_class >= switch_per_class
    why = f"{labeled} labeled / {classes} classes = {per_class:.2f} per class {'≥' if enough else '<'} {switch_per_class:g}"
    if kappas is None or switch_kappa <= 0:
        return enough, why
    if not kappas:
        return False, f"{why}, no κ between consecutive targets yet"
    best = max(kappas)  # reached once, it stays reached: the hand-over is for good
    settled = best >= switch_kappa
    why = f"{why}, highest κ so far {best:.3f} {'≥' if settled else '<'} {switch_kappa:g}"
    return enough and settled, why


def select_auto(ctx: SelectionContext, k: int) -> Selection:
    """The cold-start selector below the switch point, the hand-over selector from it on."""
    if ctx.probabilities is None:
        raise RuntimeError("auto needs the selector model's probabilities of the pool")
    options = resolved_options(ctx.options, OPTIONS)
    classes = int(ctx.probabilities.shape[1])
    switch = float(options["switch_per_class"]), float(options["switch_kappa"])
    hand_over, why = auto_phase(len(ctx.labeled), classes, switch[0], ctx.stop_kappas, switch[1])
    if not hand_over:
        name = str(options["cold_start"])
        given = _representation(options, ctx) | {"classes": classes}
        selection = COLD_START[name](replace(ctx, options=given), k)
    else:
        name = str(options["then"])
        if name == "uherding":
            selection = select_uncertainty_herding(replace(ctx, options=_representation(options, ctx)), k)
        elif name == "badge":
            selection = select_badge(ctx, k)
        else:
            selection = top_k_by_score(ctx, UNCERTAINTY[name](ctx.probabilities.float()), k)
    phase = "hand-over" if hand_over else "cold start"
    selection.info = {**selection.info, "selector": name, "phase": phase, "reason": why}
    return selection


def _representation(options: dict[str, object], ctx: SelectionContext) -> dict[str, object]:
    """The representation options of the herding / clustering halves (``embedding=auto`` resolved)."""
    embedding = str(options["embedding"])
    if embedding == AUTO_EMBEDDING:
        embedding = "input" if ctx.inputs is not None else "model"
    return {"embedding": embedding, "pca": int(str(options["pca"]))}


def first_switch(infos: list[dict[str, str] | None]) -> str | None:
    """``round <k>: <reason>`` for the first round (1-based) whose selection handed over, else None."""
    for round_no, info in enumerate(infos, start=1):
        if info and info.get("phase") == "hand-over":
            return f"round {round_no}: {info['selector']} because {info['reason']}"
    return None


def check_auto(use: SelectorUse) -> None:
    check_cold_start(use)
    if use.options.get("then") == "badge":
        check_badge(use)


OPTIONS = (
    ModelOption("cold_start", str, "maxherding", "the selector below the switch point", choices=tuple(COLD_START)),
    ModelOption(
        "then",
        str,
        "badge",
        "the selector from the switch point on",
        choices=(*UNCERTAINTY, "badge", "uherding"),
    ),
    ModelOption("switch_per_class", float, 5.0, "hand over once |L| / classes reaches this", minimum=0.0),
    ModelOption(
        "switch_kappa",
        float,
        0.9,
        "and once Cohen's kappa between the last two targets on the stop set reaches this",
        minimum=0.0,
    ),
    ModelOption(
        "embedding",
        str,
        "auto",
        "the cold-start half's representation: input (standardised inputs; a backbone's stored embeddings), "
        "model (the selector model's penultimate features), auto: input where the training inputs are in memory, "
        "model where they stream or are text (resolved at load; the run records which)",
        choices=("auto", *EMBEDDING_OPTION.choices),
    ),
    PCA_OPTION,
)
NAMES = frozenset(o.name for o in OPTIONS)

SPECS = [
    SelectorSpec(
        "auto",
        select_auto,
        frozenset({"probabilities", "embeddings"}),
        "budget-aware: maxherding until switch_per_class labels per class and stable predictions (kappa), then badge",
        options=OPTIONS,
        check=check_auto,
    )
]
