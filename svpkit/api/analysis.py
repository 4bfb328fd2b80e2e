"""``compare``: pair the proxy runs of an experiment with their baselines (``svpkit compare``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from svpkit.analysis.compare import Comparison


@dataclass
class CompareOutcome:
    """The comparison (tables per budget level, verdicts) and the compare run (None: not logged)."""

    comparison: Comparison
    run_id: str | None
    experiment_id: str | None


def compare(experiment: Optional[str] = None, *, log: bool = True, run_name: Optional[str] = None) -> CompareOutcome:
    """Pair proxy runs with their baseline: target error and data-selection speed-up per budget
    level; ``log`` writes the tables and figures to a new compare run."""
    from svpkit.analysis import compare as comparison

    result = comparison.compare_experiment(experiment or None)
    if not log:
        return CompareOutcome(result, None, None)
    experiment_id, run_id = comparison.log_comparison(result, run_name)
    return CompareOutcome(result, run_id, experiment_id)
