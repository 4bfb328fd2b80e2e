"""Which examples a core-set run keeps, beyond the head of one proxy's ranking.

- ``--score-models N``: the ranking scores of N proxies (trained from different seeds) are
  averaged and the training set is ordered by the mean, highest first (Paul et al. 2021's recipe
  for EL2N and GraNd); score-based selectors only.
- ``--coverage ccs`` (Zheng et al. 2023): the hardest ``--ccs-cutoff`` fraction is dropped, then
  the subset is sampled evenly over ``--ccs-bins`` equal-width score strata
  (:func:`svpkit.selectors.coverage.ccs_select`); score-based selectors only.
- ``--class-balance``: the subset keeps the training set's class proportions, taking each class's
  best-ranked examples (:func:`svpkit.selectors.coverage.class_balanced_top_k` over ranking
  positions: it works for every selector).

The result is again a ranking whose first ``subset_size`` entries are the subset (the chosen
examples in their selection order, then the others in ranking order), so the loop, its resume
state and its logs treat every variant alike. What a variant did is logged as JSON
(``coverage.json``, ``class_balance.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from svpkit.contract import Artifact
from svpkit.errors import ConfigError
from svpkit.loops.scoring import balance_report
from svpkit.loops.settings import LoopSettings
from svpkit.runtime import derive_seed
from svpkit.selectors.base import Ranking, SelectorSpec, ranking_by_score
from svpkit.selectors.coverage import ccs_select, class_balanced_top_k
from svpkit.selectors.data_scores import average_scores

COVERAGES = ("none", "ccs")


@dataclass(frozen=True)
class SubsetVariant:
    """How a core-set run spreads its subset beyond the head of one ranking (``CoreSetConfig.subset``)."""

    coverage: str = "none"
    """``ccs``: coverage-centric sampling of the subset."""
    ccs_cutoff: float = 0.0
    """CCS: the hardest fraction dropped first, in [0, 1)."""
    ccs_bins: int = 50
    """CCS: equal-width score strata."""
    score_models: int = 1
    """Proxies whose ranking scores are averaged (score-based selectors)."""

    def described(self) -> dict[str, object]:
        """The variant's settings for the ``selection`` tag (the CCS parameters only with CCS)."""
        ccs = {"ccs_cutoff": self.ccs_cutoff, "ccs_bins": self.ccs_bins} if self.coverage == "ccs" else {}
        return {"coverage": self.coverage, "score_models": self.score_models, **ccs}


def check_variants(selector: SelectorSpec, cfg: SubsetVariant, class_balance: bool, n: int, m: int) -> None:
    """ConfigError (before any run exists) for variants the selector or the sizes cannot take."""
    if cfg.coverage not in COVERAGES:
        raise ConfigError(f"--coverage must be one of {', '.join(COVERAGES)}, got {cfg.coverage!r}")
    if cfg.score_models < 1:
        raise ConfigError(f"--score-models must be at least 1, got {cfg.score_models}")
    needs_scores = [
        flag for flag, on in (("--coverage ccs", cfg.coverage == "ccs"), ("--score-models", cfg.score_models > 1)) if on
    ]
    if needs_scores and not (selector.score_based and selector.needs):
        raise ConfigError(
            f"{' and '.join(needs_scores)} need a selector that scores every example with a proxy "
            f"(el2n, grand, forgetting_events, least_confidence, ...); {selector.name!r} does not"
        )
    if cfg.coverage != "ccs":
        return
    if class_balance:
        raise ConfigError("--class-balance and --coverage ccs cannot be combined (pick one way to spread the subset)")
    if cfg.ccs_bins < 1:
        raise ConfigError(f"--ccs-bins must be at least 1, got {cfg.ccs_bins}")
    if not 0.0 <= cfg.ccs_cutoff < 1.0:
        raise ConfigError(f"--ccs-cutoff must be in [0, 1) (the hardest fraction dropped), got {cfg.ccs_cutoff:g}")
    left = n - int(cfg.ccs_cutoff * n)
    if m > left:
        raise ConfigError(
            f"--ccs-cutoff {cfg.ccs_cutoff:g} leaves {left} of {n} examples, fewer than the subset of {m} "
            "(lower the cutoff or keep less)"
        )


def score_model_seed(seed: int, model: int) -> int | None:
    """Proxy ``model``'s seed for ``--score-models``: None (the run's usual proxy seed) for the first,
    ``derive_seed(seed, "rank", model)`` for the others."""
    return None if model == 0 else derive_seed(seed, "rank", model)


def average_rankings(rankings: Sequence[Ranking]) -> Ranking:
    """One ranking by the mean of the rankings' scores (highest first, ties towards the lower index)."""
    if len(rankings) == 1:
        return rankings[0]
    return ranking_by_score(average_scores([torch.from_numpy(r.scores) for r in rankings]))


def choose_subset(
    ranking: Ranking, m: int, cfg: SubsetVariant, settings: LoopSettings, labels: torch.Tensor, num_classes: int
) -> tuple[Ranking, dict[str, object]]:
    """The ranking reordered so that its head of ``m`` is the subset, and the JSON artifacts to log."""
    if cfg.coverage == "ccs":
        scores = torch.from_numpy(ranking.scores.astype(np.float32))
        finite = torch.isfinite(scores)
        if not bool(finite.all()):  # never-learned (+inf) examples: the hardest, above every finite score
            top = float(scores[finite].max()) if bool(finite.any()) else 0.0
            scores = torch.where(finite, scores, torch.full_like(scores, top + 1.0))
        generator = torch.Generator().manual_seed(derive_seed(settings.seed, "coverage"))
        chosen = ccs_select(scores, m, cfg.ccs_cutoff, cfg.ccs_bins, generator)
        report = {
            "coverage": "ccs",
            "cutoff": cfg.ccs_cutoff,
            "bins": cfg.ccs_bins,
            "dropped_hardest": int(cfg.ccs_cutoff * ranking.order.size),
            "bin_sizes": chosen.bin_sizes,
            "bin_budgets": chosen.bin_budgets,
        }
        return _with_head(ranking, chosen.picks.numpy(), m), {Artifact.COVERAGE: report}
    if settings.class_balance:
        n = ranking.order.size
        priority = torch.empty(n, dtype=torch.float32)
        priority[torch.from_numpy(ranking.order)] = torch.arange(n, 0, -1, dtype=torch.float32)
        classes = labels.cpu().long()
        proportions = torch.bincount(classes, minlength=num_classes).tolist()
        chosen_q = class_balanced_top_k(priority, classes, m, proportions)
        report = balance_report(chosen_q.quotas, classes, chosen_q.filled, "training labels")
        return _with_head(ranking, chosen_q.picks.numpy(), m), {Artifact.CLASS_BALANCE: report}
    return ranking, {}


def _with_head(ranking: Ranking, head: np.ndarray, m: int) -> Ranking:
    """``ranking`` with ``head`` (``m`` distinct indices) first, the rest in ranking order."""
    head = np.asarray(head, dtype=np.int64)
    if head.size != m:
        raise RuntimeError(f"the subset has {head.size} examples, expected {m}")
    rest = ranking.order[~np.isin(ranking.order, head)]
    return Ranking(np.concatenate([head, rest]), ranking.scores, ranking.seeds)
