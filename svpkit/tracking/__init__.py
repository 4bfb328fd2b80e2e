"""MLflow: the only package that imports mlflow.

- :mod:`~svpkit.tracking.store`: the connection (one client per store, sqlite opened under a
  file lock), experiments and UI links;
- :mod:`~svpkit.tracking.writer`: the loops' Tracker on an MLflow run; opening, resuming and
  closing runs FINISHED, FAILED (reason in tag ``svpkit.error``) or KILLED;
- :mod:`~svpkit.tracking.reader`: reading runs back (records, metric histories, artifacts, state);
- :mod:`~svpkit.tracking.memory`: trackers that are not runs (in memory; nothing, off rank 0);
- :mod:`~svpkit.tracking.resume`: ``--resume RUN_ID``.

Compare, correlate and resume read MLflow only through this package.
"""

from svpkit.tracking.reader import (
    RunRecord,
    experiment_id_for,
    experiment_name,
    find_runs,
    get_run_record,
    load_run_array,
    load_run_state,
    metric_history,
    resolve_experiment,
)
from svpkit.tracking.store import TrackingError, client, ensure_experiment, runs_url
from svpkit.tracking.writer import MlflowTracker, fail_env_run, fail_run, tracked_run

__all__ = [
    "MlflowTracker",
    "RunRecord",
    "TrackingError",
    "client",
    "ensure_experiment",
    "experiment_id_for",
    "experiment_name",
    "fail_env_run",
    "fail_run",
    "find_runs",
    "get_run_record",
    "load_run_array",
    "load_run_state",
    "metric_history",
    "resolve_experiment",
    "runs_url",
    "tracked_run",
]
