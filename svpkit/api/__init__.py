"""svpkit's Python API: one function per loop, for notebooks and scripts (docs/python-api.md).

``active_learning``, ``core_set``, ``train``, ``suggest_proxy``, ``compare``, ``query`` and
``label`` take the settings of their commands as one settings object (``ActiveLearningArgs``,
``CoreSetArgs``, ``TrainArgs``, ``SuggestArgs``, ``QueryArgs``: the defaults live there) and/or
as keyword arguments (Python values, or the command line's text), track to MLflow unless ``track=False``, raise :class:`~svpkit.errors.SvpkitError`
(one sentence) on bad input and return the result record with the run's id. The command line,
presets and the MLproject entries are thin callers of these. Importing this package is cheap:
each function imports what it runs when it runs.
"""

from svpkit.api.analysis import CompareOutcome, compare
from svpkit.api.args import ActiveLearningArgs, CoreSetArgs, TrainArgs
from svpkit.api.flow import RunResult, RunSettings
from svpkit.api.labeling import AnswersRejected, LabelOutcome, QueryArgs, QueryOutcome, label, query
from svpkit.api.loops import active_learning, core_set, train
from svpkit.api.suggest import SuggestArgs, SuggestOutcome, suggest_proxy

__all__ = [
    "ActiveLearningArgs",
    "AnswersRejected",
    "CoreSetArgs",
    "QueryArgs",
    "SuggestArgs",
    "TrainArgs",
    "CompareOutcome",
    "LabelOutcome",
    "QueryOutcome",
    "RunResult",
    "RunSettings",
    "SuggestOutcome",
    "active_learning",
    "compare",
    "core_set",
    "label",
    "query",
    "suggest_proxy",
    "train",
]
