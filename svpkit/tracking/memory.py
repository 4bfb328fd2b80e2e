"""Trackers that are not MLflow runs: in memory (tests, loops used as a library) and nothing at all
(ranks other than 0 of a distributed run: rank 0 logs the run)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from svpkit.contract import DATA_PHASE_METRICS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from svpkit.data.base import Dataset


class MemoryTracker:
    """Keeps everything in memory: for tests and for using loops as a library (``track=False``)."""

    run_id: str | None = None
    experiment_id: str | None = None

    def __init__(self) -> None:
        self.state_extra: dict[str, object] = {}
        self.texts: dict[str, str] = {}
        self.datasets: list[str] = []
        self.params: dict[str, object] = {}
        self.tags: dict[str, str] = {}
        self.metrics: dict[str, list[tuple[int, float]]] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.json: dict[str, object] = {}
        self.figures: list[str] = []
        self.states: list[dict[str, object]] = []

    def log_params(self, params: Mapping[str, object]) -> None:
        self.params.update(params)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tags.update(tags)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.metrics.setdefault(key, []).append((step, float(value)))

    def log_array(self, path: str, array: np.ndarray) -> None:
        self.arrays[path] = np.array(array, copy=True)

    def log_json(self, path: str, obj: object) -> None:
        self.json[path] = json.loads(json.dumps(obj))

    def log_figure(self, figure: Figure, path: str) -> None:
        self.figures.append(path)

    def save_state(self, state: Mapping[str, object]) -> None:
        self.states.append(json.loads(json.dumps({**self.state_extra, **state})))

    def log_text(self, path: str, text: str) -> None:
        self.texts[path] = text

    def log_dataset(self, dataset: Dataset, context: str = "training") -> None:
        self.datasets.append(f"{dataset.name} ({context})")
        if phases := load_metrics(dataset):
            self.log_metrics(phases, step=0)


def load_metrics(dataset: Dataset) -> dict[str, float]:
    """The data set's measured load phases as metrics (``data/listing_seconds``, ...)."""
    return {DATA_PHASE_METRICS[k]: float(v) for k, v in dataset.load_seconds.items() if k in DATA_PHASE_METRICS}


class NullTracker:
    """What ranks other than 0 report to: everything is dropped (rank 0 logs the run)."""

    run_id = ""
    experiment_id = ""

    def __init__(self) -> None:
        self.state_extra: dict[str, object] = {}

    def log_params(self, params: Mapping[str, object]) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_array(self, path: str, array: np.ndarray) -> None:
        pass

    def log_json(self, path: str, obj: object) -> None:
        pass

    def log_text(self, path: str, text: str) -> None:
        pass

    def log_figure(self, figure: Figure, path: str) -> None:
        pass

    def save_state(self, state: Mapping[str, object]) -> None:
        pass

    def log_dataset(self, dataset: Dataset, context: str = "training") -> None:
        pass


@contextmanager
def memory_run() -> Iterator[MemoryTracker]:
    """The tracked-run stand-in of an untracked run (``track=False``): everything kept in memory."""
    yield MemoryTracker()


@contextmanager
def null_run() -> Iterator[NullTracker]:
    """The tracked-run stand-in for ranks other than 0."""
    yield NullTracker()
