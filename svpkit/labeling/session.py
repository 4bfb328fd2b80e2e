"""Writing a labeling project's rounds to its run: a query's batch, an import's answers.

Both end with the project's new state (:mod:`svpkit.labeling.project`), written last: a command
killed before it leaves the project as it was. An import never changes the run's status (a
``SIGKILL`` cannot leave it RUNNING); a query opens the run like a loop does and closes it
FINISHED.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np

from svpkit.contract import (
    Artifact,
    Metric,
    Tag,
    labels_artifact,
    round_artifact,
    state_artifact,
    to_label_artifact,
)
from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.labeling.files import ANSWER_COLUMNS, Answer, batch_csv, to_csv
from svpkit.labeling.project import Project, Round
from svpkit.loops.labeling import QueryRound
from svpkit.loops.stopping import StopRule, kappa
from svpkit.tracking import MlflowTracker, client, tracked_run

STOP_OFF = (None, "", "off", "none")
"""``--stop-when`` values that turn a project's criterion off."""


@dataclass
class RunInfo:
    """Where a project's run is and what a fresh one is opened with."""

    name: str
    tags: dict[str, str]
    params: dict[str, object]
    experiment: str | None = None


def stopping_of(project: Project, result: QueryRound) -> dict[str, object] | None:
    """The round's stopping criteria: κ against the newest earlier round with a proxy, mean uncertainty."""
    if result.stop_predictions is None:
        return None
    earlier = next((r.stopping for r in reversed(project.rounds) if r.stopping), None)
    previous = None if earlier is None else np.asarray(earlier["predictions"], dtype=np.int64)
    value = None if previous is None else kappa(previous, result.stop_predictions)
    return {"kappa": value, "uncertainty": result.stop_uncertainty, "predictions": result.stop_predictions.tolist()}


def stop_status(project: Project, stop_when: str | None, newest: dict[str, object] | None = None) -> str | None:
    """``--stop-when`` on the project's history of stopping criteria (and the ``newest`` values of a
    query not yet committed): why it holds, or None (no rule, too few rounds, or it does not hold)."""
    rule = StopRule.parse(None if stop_when in STOP_OFF else stop_when)
    if rule is None:
        return None
    history = [r.stopping for r in project.rounds if r.stopping] + ([newest] if newest else [])
    values = [float(h[rule.criterion]) for h in history if h.get(rule.criterion) is not None]
    return rule.holds(values)


def _round_of(result: QueryRound, dataset: Dataset, k: int) -> Round:
    ids = dataset.train.example_ids()
    names = dataset.class_names
    predicted = [] if result.predicted is None else [names[int(c)] for c in result.predicted]
    return Round(
        round=result.round,
        strategy=result.strategy,
        reason=result.reason,
        selector_info=result.selector_info,
        k=k,
        labeled_before=int(result.labeled.size),
        batch=[ids[i] for i in result.picks],
        timings=result.timings(),
        selector_model_error=result.selector_model_error,
        predictions=predicted,
        confidences=_list(result.confidence) or [],
        scores=_list(result.pick_scores()) or [],
    )


def commit_query(project: Project, result: QueryRound, dataset: Dataset, run: RunInfo) -> tuple[Project, str, str]:
    """Log round ``result.round`` to the project's run (a new run for a new project); returns the
    updated project, the batch file's text and the run's experiment id."""
    new_round = _round_of(result, dataset, int(result.picks.size))
    new_round.stopping = stopping_of(project, result)
    updated = replace(project, rounds=[*project.rounds, new_round], seq=project.seq + 1)
    text = batch_csv(new_round.batch, [dataset.example_text(i) for i in result.picks], _list(result.pick_scores()))
    with tracked_run(run.experiment, run.name, run.tags, resume_run_id=project.run_id) as tracker:
        if project.run_id is None:
            tracker.log_params(run.params)
            tracker.log_dataset(dataset)
        updated.run_id = tracker.run_id
        tracker.log_text(to_label_artifact(result.round), text)
        tracker.log_array(round_artifact(result.round, "selected.npy"), result.picks)
        tracker.log_array(round_artifact(result.round, "labeled.npy"), np.sort(result.labeled))
        if result.scores is not None:
            tracker.log_array(round_artifact(result.round, "scores.npy"), result.scores)
        _log_metrics(tracker, updated, result)
        tracker.log_json(state_artifact(updated.seq), updated.state())  # last: the round now exists
    return updated, text, tracker.experiment_id


def _list(values: np.ndarray | None) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


def _log_metrics(tracker: MlflowTracker, project: Project, result: QueryRound) -> None:
    step = int(result.labeled.size)
    metrics = {
        Metric.ROUND_WARMUP_SECONDS: result.warmup_seconds,
        Metric.ROUND_TRAIN_SECONDS: result.train_seconds,
        Metric.ROUND_INFERENCE_SECONDS: result.inference_seconds,
        Metric.ROUND_SELECTION_SECONDS: result.selection_seconds,
        Metric.ROUND_TOTAL_SECONDS: result.total_seconds,
        Metric.SELECTION_CUMULATIVE_SECONDS: sum(r.timings.get("total_seconds", 0.0) for r in project.rounds),
        Metric.LABELED_COUNT: float(step),
    }
    if result.selector_model_error is not None:
        metrics[Metric.SELECTOR_MODEL_ERROR] = result.selector_model_error
    stopping = project.rounds[-1].stopping if project.rounds else None
    if stopping is not None:
        metrics[Metric.STOP_UNCERTAINTY] = float(stopping["uncertainty"])
        if stopping["kappa"] is not None:
            metrics[Metric.STOP_KAPPA] = float(stopping["kappa"])
    tracker.log_metrics(metrics, step=step)
    rounds = [
        {
            "round": r.round,
            "strategy": r.strategy,
            **r.timings,
            **({"selector_info": r.selector_info} if r.selector_info else {}),
        }
        for r in project.rounds
    ]
    tracker.log_json(
        Artifact.TIMINGS, {"rounds": rounds, "selection_seconds": metrics[Metric.SELECTION_CUMULATIVE_SECONDS]}
    )


# -- importing answers -------------------------------------------------------------------------
@dataclass
class Problem:
    """Why a row of an answer file cannot be imported (``kind``: unknown id, duplicate id, bad label)."""

    kind: str
    id: str
    line: int
    detail: str


@dataclass
class AnswerCheck:
    """An answer file checked against the project's newest batch."""

    round: Round
    accepted: dict[str, str] = field(default_factory=dict)
    """id → class name, for the rows that answer."""
    problems: list[Problem] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Ids of the batch that neither this file nor an earlier import answers."""

    @property
    def merged(self) -> dict[str, str]:
        return {**self.round.answers, **self.accepted}

    @property
    def changed(self) -> list[str]:
        """Ids whose earlier answer this file changes."""
        return [i for i, label in self.accepted.items() if i in self.round.answers and self.round.answers[i] != label]


def class_of(label: str, classes: list[str]) -> str | None:
    """The class ``label`` names (by name, else by index), or None."""
    if label in classes:
        return label
    if label.isdigit() and int(label) < len(classes):
        return classes[int(label)]
    return None


def check_answers(project: Project, answers: list[Answer]) -> AnswerCheck:
    """Match every answer to the newest batch and the classes; nothing is written."""
    latest = project.latest
    if latest is None:
        raise ConfigError(f"project {project.run_id} has not asked for a batch yet: run `svpkit query` first")
    check = AnswerCheck(latest)
    batch, seen = set(latest.batch), dict[str, int]()
    for a in answers:
        if a.id in seen:
            check.problems.append(Problem("duplicate id", a.id, a.line, f"also on line {seen[a.id]}"))
            continue
        seen[a.id] = a.line
        label = class_of(a.label, project.classes)
        if a.id not in batch:
            check.problems.append(Problem("unknown id", a.id, a.line, f"not in round {latest.round}'s batch"))
        elif a.label and label is None:
            check.problems.append(Problem("label outside the classes", a.id, a.line, repr(a.label)))
        elif label is not None:
            check.accepted[a.id] = label
    merged = check.merged
    check.missing = [i for i in latest.batch if i not in merged]
    return check


def commit_answers(project: Project, check: AnswerCheck) -> Project | None:
    """Store the checked answers as ``labels/round_<r>.csv`` and then the new state; None when the
    file changes nothing (a re-import)."""
    if check.problems:
        raise ConfigError("answers with problems are never imported")
    if check.merged == check.round.answers:
        return None
    answered = replace(check.round, answers=check.merged)
    updated = replace(project, rounds=[*project.rounds[:-1], answered], seq=project.seq + 1)
    tracker = MlflowTracker(str(project.run_id))
    tracker.log_text(labels_artifact(answered.round), to_csv(ANSWER_COLUMNS, answered.answered()))
    tracker.log_json(state_artifact(updated.seq), updated.state())  # last: the import now counts
    return updated


def note_env_run(project_id: str) -> None:
    """Inside ``mlflow run`` the entry's own run points to the project the work went to."""
    env_run = os.environ.get("MLFLOW_RUN_ID")
    if env_run and env_run != project_id:
        client().set_tag(env_run, Tag.RESUMED_RUN, project_id)
