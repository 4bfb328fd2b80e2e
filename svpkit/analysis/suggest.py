"""``svpkit suggest-proxy``, the pure parts: candidate syntax, thresholds, recommendation, Pareto front.

Candidates are one comma list of ``model[:epochs][{options}]``, e.g.
``digits_mlp:10,digits_cnn:3,digits_cnn:10,fasttext{lr=0.5,dim=20}`` (commas inside braces belong
to the options). Each candidate is scored by its agreement with the target (top-k overlap and
Spearman, :mod:`svpkit.selectors.agreement`, mean ± 95 % CI over seeds) and its selection
speed-up over the target. The recommendation is the cheapest (highest speed-up) candidate whose
mean agreement reaches both thresholds; :func:`pareto_front` lists the candidates no other beats
on both agreement and speed-up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from svpkit.analysis.stats import Interval
from svpkit.errors import ConfigError
from svpkit.options import parse_options_text

DEFAULT_MIN_OVERLAP = 0.5
"""At least half of each batch the proxy picks would be picked by the target too: the two then
share more of a batch than they differ on. Random picks share ``k/|pool|`` (a few to ~20 % in
the usual rounds) with a hypergeometric spread of a few points, so 0.5 is far above chance; where
``k/|pool|`` itself approaches 0.5 the threshold says little, and the agreement table's
``random_overlap`` column is the reference."""

DEFAULT_MIN_SPEARMAN = 0.5
"""A strong rank correlation by the usual convention, and far above chance: unrelated scores over
a pool of N examples correlate within about ``±2/√(N−1)`` (±0.06 for N = 1000). It leaves room
for proxies that order the pool only roughly like the target, which selection via proxy tolerates
since the target still trains on whatever is picked."""

NO_RECOMMENDATION = "none of the candidates agrees with the target; use the target or a larger proxy"

_ITEM = re.compile(r"(?P<name>[A-Za-z0-9_][A-Za-z0-9_.\-]*)(?::(?P<epochs>[^{}:]*))?(?:\{(?P<options>[^{}]*)\})?")


class SuggestInputError(ConfigError, ValueError):
    """A malformed candidate list or threshold (a ValueError; the CLI prints it on one line)."""


@dataclass(frozen=True)
class Candidate:
    """A proxy to try: model name, epochs (None: the model's default) and options text (``""``: none)."""

    name: str
    epochs: int | None
    options: str

    @property
    def text(self) -> str:
        """The candidate as written on the command line."""
        epochs = "" if self.epochs is None else f":{self.epochs}"
        return self.name + epochs + (f"{{{self.options}}}" if self.options else "")


@dataclass(frozen=True)
class CandidateResult:
    """A candidate's agreement with the target over seeds and its selection speed-up (higher = cheaper)."""

    candidate: Candidate
    overlap: Interval
    spearman: Interval
    speedup: float

    def __post_init__(self) -> None:
        if not self.speedup > 0:
            raise ValueError(f"{self.candidate.text}: speed-up must be positive, got {self.speedup}")


@dataclass(frozen=True)
class Recommendation:
    choice: CandidateResult | None
    message: str


def _split_items(text: str) -> list[str]:
    """Split at commas outside braces; braces must pair up and not nest."""
    items, start, depth = [], 0, 0
    for i, char in enumerate(text):
        if char == "{":
            if depth:
                raise SuggestInputError(f"candidates: nested '{{' at position {i} of {text!r}")
            depth = 1
        elif char == "}":
            if not depth:
                raise SuggestInputError(f"candidates: '}}' without '{{' at position {i} of {text!r}")
            depth = 0
        elif char == "," and not depth:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise SuggestInputError(f"candidates: '{{' is never closed in {text!r}")
    return [*items, text[start:]]


def _parse_item(item: str) -> Candidate:
    match = _ITEM.fullmatch(item)
    if match is None:
        raise SuggestInputError(f"candidate {item!r} is not model[:epochs][{{options}}], e.g. digits_cnn:3{{lr=0.1}}")
    epochs_text, options = match["epochs"], match["options"]
    epochs = None
    if epochs_text is not None:
        if not re.fullmatch(r"\s*[0-9]+\s*", epochs_text) or int(epochs_text) < 1:
            raise SuggestInputError(f"candidate {item!r}: epochs must be a positive integer, got {epochs_text!r}")
        epochs = int(epochs_text)
    if options is not None:
        if not options.strip():
            raise SuggestInputError(f"candidate {item!r}: empty braces; leave them out for no options")
        try:
            parse_options_text(options, f"candidate {item!r}")
        except ConfigError as exc:
            raise SuggestInputError(str(exc)) from None
    return Candidate(match["name"], epochs, (options or "").strip())


def parse_candidates(text: str) -> list[Candidate]:
    """``"digits_mlp:10,fasttext{lr=0.5,dim=20}"`` → candidates in the given order (no repeats)."""
    if not text.strip():
        raise SuggestInputError("candidates: give at least one model[:epochs][{options}]")
    candidates: list[Candidate] = []
    for position, item in enumerate(_split_items(text), start=1):
        if not item.strip():
            raise SuggestInputError(f"candidates: item {position} of {text!r} is empty (stray comma?)")
        candidate = _parse_item(item.strip())
        same = [c for c in candidates if _identity(c) == _identity(candidate)]
        if same:
            raise SuggestInputError(f"candidates: {candidate.text!r} repeats {same[0].text!r}")
        candidates.append(candidate)
    return candidates


def _identity(c: Candidate) -> tuple[str, int | None, tuple[tuple[str, str], ...]]:
    return c.name, c.epochs, tuple(sorted(parse_options_text(c.options, "options").items()))


def _check_range(flag: str, value: float, low: float, high: float) -> float:
    if not low <= value <= high:
        raise SuggestInputError(f"{flag} must be between {low:g} and {high:g}, got {value}")
    return value


def check_min_overlap(value: float) -> float:
    """``--min-overlap``: a fraction of the batch, in [0, 1]."""
    return _check_range("--min-overlap", value, 0.0, 1.0)


def check_min_spearman(value: float) -> float:
    """``--min-spearman``: a rank correlation, in [−1, 1]."""
    return _check_range("--min-spearman", value, -1.0, 1.0)


def recommend(
    rows: Sequence[CandidateResult],
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    min_spearman: float = DEFAULT_MIN_SPEARMAN,
) -> Recommendation:
    """The highest-speed-up candidate whose mean overlap and mean Spearman reach both thresholds
    (ties: the first given), else :data:`NO_RECOMMENDATION`."""
    check_min_overlap(min_overlap)
    check_min_spearman(min_spearman)
    agreeing = [r for r in rows if r.overlap.mean >= min_overlap and r.spearman.mean >= min_spearman]
    if not agreeing:
        return Recommendation(None, NO_RECOMMENDATION)
    best = max(agreeing, key=lambda r: r.speedup)
    speedup = "∞" if math.isinf(best.speedup) else f"{best.speedup:.1f}"
    return Recommendation(
        best,
        f"{best.candidate.text}: the cheapest candidate that agrees with the target (top-k overlap "
        f"{best.overlap.mean:.3f} ≥ {min_overlap:g}, Spearman {best.spearman.mean:.3f} ≥ {min_spearman:g}; "
        f"{speedup}× faster selection)",
    )


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices (in the given order) of the (agreement, speed-up) points no other point dominates,
    both maximised: dominated means another point is at least as high on both and higher on one."""
    if any(math.isnan(v) for p in points for v in p):
        raise ValueError(f"points must not contain NaN, got {list(points)}")

    def dominated(p: tuple[float, float]) -> bool:
        return any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)

    return [i for i, p in enumerate(points) if not dominated(p)]
