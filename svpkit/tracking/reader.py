"""Reading runs back (analysis, core-set full references, ``--resume``): records, metrics, artifacts."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
from mlflow.tracking.fluent import SEARCH_MAX_RESULTS_PANDAS

from svpkit.errors import SvpkitError
from svpkit.tracking.store import TrackingError, client, experiment_name_or_default, one_line, unreachable
from svpkit.tracking.writer import MlflowTracker

if TYPE_CHECKING:
    from mlflow.entities import Run


@dataclass
class RunRecord:
    """What analysis needs of a run, read once."""

    run_id: str
    experiment_id: str
    status: str
    start_time: int
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]


def _record(run: Run) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        status=run.info.status,
        start_time=int(run.info.start_time or 0),
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
    )


def get_run_record(run_id: str) -> RunRecord:
    """One run by id; TrackingError (one clear line) when it does not exist."""
    try:
        return _record(client().get_run(run_id))
    except Exception as exc:
        raise TrackingError(f"run {run_id!r} not found in {mlflow.get_tracking_uri()!r}") from exc


def experiment_id_for(name: str | None) -> str | None:
    """The id of experiment ``name`` (None if it does not exist); without a name, the one
    ``mlflow run`` chose, else the default experiment's."""
    c = client()
    try:
        if name is None and os.environ.get("MLFLOW_EXPERIMENT_ID"):
            return os.environ["MLFLOW_EXPERIMENT_ID"]
        exp = c.get_experiment_by_name(experiment_name_or_default(name))
    except Exception as exc:
        raise unreachable(exc) from exc
    return exp.experiment_id if exp is not None else None


def resolve_experiment(experiment: str | None) -> tuple[str, str]:
    """(id, name) of an existing experiment, by name or id; without one, the experiment ``mlflow
    run`` chose, else the default; TrackingError when there is no such experiment."""
    c = client()
    try:
        env_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
        if experiment is None and env_id:
            env_exp = c.get_experiment(env_id)
            return env_exp.experiment_id, env_exp.name
        experiment = experiment_name_or_default(experiment)
        exp = c.get_experiment_by_name(experiment)
        if exp is None and experiment.isdigit():
            exp = c.get_experiment(experiment)
    except SvpkitError:
        raise
    except Exception as exc:
        raise TrackingError(f"cannot read experiment {experiment!r} from {mlflow.get_tracking_uri()!r}: {exc}") from exc
    if exp is None:
        raise TrackingError(f"no experiment named {experiment!r} in {mlflow.get_tracking_uri()!r}")
    return exp.experiment_id, exp.name


def experiment_name(experiment_id: str) -> str:
    return client().get_experiment(experiment_id).name


def find_runs(
    experiment_ids: list[str],
    filter_string: str = "",
    finished_only: bool = True,
    max_results: int = SEARCH_MAX_RESULTS_PANDAS,
) -> list[RunRecord]:
    """Runs of the experiments matching an MLflow filter string, newest first (at most ``max_results``)."""
    clauses = [f for f in (filter_string.strip(), "attributes.status = 'FINISHED'" if finished_only else "") if f]
    try:
        runs = mlflow.search_runs(
            experiment_ids=experiment_ids,
            filter_string=" and ".join(clauses),
            output_format="list",
            order_by=["start_time DESC"],
            max_results=max_results,
        )
    except Exception as exc:
        raise TrackingError(f"cannot search runs with filter {filter_string!r}: {one_line(exc)}") from exc
    return [_record(r) for r in runs]  # type: ignore[union-attr]


def metric_history(run_id: str, key: str) -> dict[int, float]:
    """Every logged value of a run's metric, by step."""
    return {int(m.step): float(m.value) for m in client().get_metric_history(run_id, key)}


def load_run_array(run_id: str, path: str) -> np.ndarray:
    """A ``.npy`` artifact of a run; TrackingError when it is missing."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bar per small file
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client().download_artifacts(run_id, path, tmp)
        except Exception as exc:
            raise TrackingError(f"run {run_id} has no artifact {path!r}") from exc
        return np.load(local, allow_pickle=False)


def load_run_state(run_id: str) -> dict[str, Any] | None:
    """The newest readable resume state (``state/*.json``) of a run, if any."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep stderr to one line
    try:
        return MlflowTracker(run_id).load_state()
    except Exception as exc:
        raise TrackingError(f"cannot read run {run_id!r}: {one_line(exc)}") from exc
