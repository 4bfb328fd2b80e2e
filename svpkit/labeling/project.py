"""A labeling project as its run holds it: the rounds' batches and answers, read from the newest state.

Every change to a project (a query, an import) ends by writing a new ``state/<n>.json`` that
holds the whole project: the settings it was started with, the classes, and per round the batch
(ids in rank order) and the answers imported so far. Readers take the newest readable state
only, so a command killed before writing it leaves the project exactly as it was: the CSV
artifacts it may already have written (``to_label/…``, ``labels/…``) are rewritten by the next
command that gets that far.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from svpkit.contract import LABELING, Tag
from svpkit.data.base import Dataset
from svpkit.errors import ConfigError, DataError
from svpkit.tracking import get_run_record, load_run_state


@dataclass
class Round:
    """One query and the answers imported for it (``answers``: id → class name)."""

    round: int
    strategy: str
    reason: str
    k: int
    labeled_before: int
    batch: list[str]
    answers: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    selector_model_error: float | None = None
    stopping: dict[str, Any] | None = None
    """The stopping criteria after this round's proxy (``kappa`` against the previous proxy,
    ``uncertainty``, the stop-set ``predictions``; svpkit.loops.stopping); None without a proxy."""
    predictions: list[str] = field(default_factory=list)
    """The proxy's class for every batch entry, in rank order (empty for a random batch)."""
    confidences: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    """The selector's score for every batch entry (empty for a random batch)."""
    selector_info: dict[str, str] | None = None
    """What the selector said about its choice (``auto``: which half picked and why; None: nothing)."""

    def answered(self) -> list[tuple[str, str]]:
        """(id, label) of the answered examples, in the batch's rank order."""
        return [(i, self.answers[i]) for i in self.batch if i in self.answers]


@dataclass
class Project:
    """A labeling project: ``invocation`` holds the settings ``svpkit query`` started it with."""

    run_id: str | None
    invocation: dict[str, Any]
    classes: list[str]
    rounds: list[Round] = field(default_factory=list)
    seq: int = -1
    """The number of the newest state (-1: none yet)."""

    @property
    def latest(self) -> Round | None:
        return self.rounds[-1] if self.rounds else None

    def labeled(self) -> list[tuple[str, str, int]]:
        """(id, label, round) of every imported label, in labeling order (rounds, then rank)."""
        return [(i, label, r.round) for r in self.rounds for i, label in r.answered()]

    def state(self) -> dict[str, object]:
        return {
            "loop": LABELING.name,
            "seq": self.seq,
            "invocation": self.invocation,
            "classes": self.classes,
            "rounds": [asdict(r) for r in self.rounds],
        }

    def training_set(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """(indices, labels) the proxy trains on: the data set's own labeled examples ascending,
        then the imported ones in labeling order (the active-learning loop's order: initial set,
        then each round's picks)."""
        position = {ident: i for i, ident in enumerate(dataset.train.example_ids())}
        imported = self.labeled()
        missing = [ident for ident, _, _ in imported if ident not in position]
        if missing:
            raise DataError(
                f"the data set no longer has {len(missing)} examples the project labeled, e.g. {missing[0]!r}"
            )
        names = dataset.class_names
        if names != self.classes:
            raise DataError(f"the data set's classes {names} differ from the project's {self.classes}")
        index = np.array([position[ident] for ident, _, _ in imported], dtype=np.int64)
        labels = np.array([names.index(label) for _, label, _ in imported], dtype=np.int64)
        own = np.setdiff1d(dataset.labeled_indices(), index)
        own_labels = dataset.train.y.numpy()[own]
        return np.concatenate([own, index]).astype(np.int64), np.concatenate([own_labels, labels]).astype(np.int64)


def new_project(invocation: Mapping[str, object], classes: list[str]) -> Project:
    return Project(run_id=None, invocation=dict(invocation), classes=list(classes))


def open_project(run_id: str) -> Project:
    """The project in run ``run_id``; a ConfigError when the run is not a labeling project."""
    record = get_run_record(run_id)
    loop = record.tags.get(Tag.LOOP)
    if loop != LABELING.name:
        what = f"a {loop} run" if loop else "not an svpkit run"
        raise ConfigError(f"run {run_id} is {what}, not a labeling project (start one with `svpkit query`)")
    state = load_run_state(run_id)
    if state is None or state.get("loop") != LABELING.name:
        raise ConfigError(f"run {run_id} holds no labeling project state (its first `svpkit query` did not finish)")
    rounds = [Round(**r) for r in state.get("rounds", [])]
    return Project(run_id, dict(state["invocation"]), list(state["classes"]), rounds, int(state["seq"]))
