"""What loops report to. :mod:`svpkit.tracking` implements it on MLflow; loops never import mlflow."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from svpkit.models.options import model_label


def setting_tags(settings: dict[str, Any]) -> dict[str, str]:
    """Tags ``svpkit.<name>`` for the resolved run settings that other runs are matched by.

    The same names are params too, but under ``mlflow run`` the entry point has already logged
    its raw parameters (``proxy_epochs=0`` for "the model's default", ``''`` for an empty value,
    ``device=auto``) and MLflow never changes a param; tags hold what the run really used.
    """
    return {f"svpkit.{name}": str(value) for name, value in settings.items()}


def run_setting(tags: dict[str, str], params: dict[str, str], name: str, default: str = "") -> str:
    """A run's resolved setting: its ``svpkit.<name>`` tag, else (older runs) its param."""
    value = tags.get(f"svpkit.{name}")
    return value if value is not None else params.get(name, default)


def selector_model_label(tags: dict[str, str], params: dict[str, str], missing: str = "none") -> str:
    """A run's selector model as comparisons name it: ``fasttext[lr=0.5]`` when it had options;
    ``none`` (random selection trains no selector model) stays ``none``."""
    name = tags.get("svpkit.selector_model", missing)
    return name if name in ("none", missing) else model_label(name, run_setting(tags, params, "proxy_options"))


class MemoryTracker:
    """Keeps everything in memory: for tests and for using loops as a library."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.tags: dict[str, str] = {}
        self.metrics: dict[str, list[tuple[int, float]]] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.json: dict[str, Any] = {}
        self.figures: list[str] = []
        self.states: list[dict[str, Any]] = []

    def log_params(self, params: dict[str, Any]) -> None:
        self.params.update(params)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tags.update(tags)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.metrics.setdefault(key, []).append((step, float(value)))

    def log_array(self, path: str, array: np.ndarray) -> None:
        self.arrays[path] = np.array(array, copy=True)

    def log_json(self, path: str, obj: Any) -> None:
        self.json[path] = json.loads(json.dumps(obj))

    def log_figure(self, figure: Any, path: str) -> None:
        self.figures.append(path)

    def save_state(self, state: dict[str, Any]) -> None:
        self.states.append(json.loads(json.dumps(state)))
