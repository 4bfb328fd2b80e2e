"""svpkit: Selection via Proxy as a plugin-based experiment platform.

The Python API (docs/python-api.md)::

    import svpkit
    run = svpkit.active_learning(selector="margin", budgets=[0.1, 0.2], track=False)
    run.selected, run.rounds  # the picks of each round, the rounds

``svpkit.active_learning``, ``core_set``, ``train``, ``suggest_proxy``, ``compare``, ``query``
and ``label`` (:mod:`svpkit.api`), their settings objects (``ActiveLearningArgs``, ...), the errors they raise (``SvpkitError``, ``ConfigError``,
``DataError``, ``AnswersRejected``), ``register`` (your own data, models and selectors by name),
``load_dataset`` (a data set as the loops load it), the specs objects
become (``DatasetSpec``, ``ModelSpec``, ``TrainConfig``, ``SelectorSpec``) and the plugin marker
``hookimpl`` are attributes of this package, imported on first use: ``import svpkit`` stays cheap
(no torch, no MLflow). ``dir(svpkit)`` lists exactly these public names.
"""

import importlib as _importlib
from typing import Any as _Any

__version__ = "0.1.0"

_EXPORTS = {
    "active_learning": "svpkit.api",
    "core_set": "svpkit.api",
    "train": "svpkit.api",
    "suggest_proxy": "svpkit.api",
    "compare": "svpkit.api",
    "query": "svpkit.api",
    "label": "svpkit.api",
    "RunResult": "svpkit.api",
    "ActiveLearningArgs": "svpkit.api",
    "CoreSetArgs": "svpkit.api",
    "TrainArgs": "svpkit.api",
    "SuggestArgs": "svpkit.api",
    "QueryArgs": "svpkit.api",
    "SvpkitError": "svpkit.errors",
    "ConfigError": "svpkit.errors",
    "DataError": "svpkit.errors",
    "register": "svpkit.api.objects",
    "load_dataset": "svpkit.api.flow",
    "AnswersRejected": "svpkit.api",
    "DatasetSpec": "svpkit.data.base",
    "ModelSpec": "svpkit.models.base",
    "TrainConfig": "svpkit.models.base",
    "SelectorSpec": "svpkit.selectors.base",
    "hookimpl": "svpkit.hookspecs",
}
"""Public name → the module that defines it (the package's API, imported lazily)."""
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> _Any:
    """The public names, imported on first use (a string import: the package stays a leaf)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'svpkit' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> "list[str]":
    """The public names only (each once)."""
    return sorted(__all__)
