"""MLflow: the only module that imports mlflow.

Implements the loops' Tracker on an MLflow run (tags, params, metrics with ``step`` = labeled
count, artifacts, figures, ``log_input``), opens/resumes runs and closes them with the right
status: FINISHED, FAILED (with the reason in tag ``svpkit.error``) or KILLED.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from svpkit.data.base import Dataset
from svpkit.errors import SvpkitError

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
DEFAULT_EXPERIMENT = "svpkit"
_MAX_BATCH = 900


class TrackingError(SvpkitError):
    """The tracking store is unreachable or a run id is wrong."""


_READY_STORES: set[str] = set()


def client() -> MlflowClient:
    uri = mlflow.get_tracking_uri()
    if uri in _READY_STORES:
        return MlflowClient(uri)
    c = _open_store(uri)
    _READY_STORES.add(uri)
    return c


def _open_store(uri: str) -> MlflowClient:
    """The first client of a store in this process; for sqlite, created under a file lock.

    Two runs started at the same moment against a new sqlite file would both run MLflow's schema
    migrations (in ``MlflowClient()``) and one would fail ("duplicate column"): the first opener
    creates the tables while holding ``<file>.lock``, the other waits and then finds them.
    """
    import logging

    # "Creating initial MLflow database tables..." is not news worth a line on stderr.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    lock_path = None
    if uri.startswith("sqlite:///") and ":memory:" not in uri:
        lock_path = uri[len("sqlite:///") :].split("?")[0] + ".lock"
    try:
        try:
            import fcntl
        except ImportError:  # Windows: no lock
            lock_path = None
        if lock_path is None:
            return MlflowClient(uri)
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                return MlflowClient(uri)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    except Exception as exc:
        raise TrackingError(f"cannot open tracking store {uri!r}: {_one_line(exc)}") from exc


def ensure_experiment(name: str | None) -> str:
    """The experiment id for ``name`` (created if needed), or the one ``mlflow run`` chose."""
    c = client()
    env_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    try:
        if name is None and env_id:
            exp_id = env_id
        else:
            name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
            exp = c.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp is not None else _create_experiment(c, name)
        exp = c.get_experiment(exp_id)
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            # MLflow 3's UI opens experiments in its GenAI view unless told otherwise.
            c.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    except SvpkitError:
        raise
    except Exception as exc:
        raise TrackingError(f"cannot reach tracking store {mlflow.get_tracking_uri()!r}: {_one_line(exc)}") from exc
    return exp_id


def _create_experiment(c: MlflowClient, name: str) -> str:
    try:
        return c.create_experiment(name)
    except Exception:
        # Another process created it between our lookup and now (concurrent first runs).
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def runs_url(experiment_id: str, run_id: str | None = None) -> str:
    base = f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs"
    return f"{base}/{run_id}?workflowType=machine_learning" if run_id else f"{base}?workflowType=machine_learning"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


class MlflowTracker:
    """The loops' :class:`~svpkit.loops.tracker.Tracker` on one MLflow run."""

    def __init__(self, run_id: str) -> None:
        self.client = client()
        self.run_id = run_id
        self.run = self.client.get_run(run_id)
        self.experiment_id = self.run.info.experiment_id
        self.state_extra: dict[str, Any] = {}
        """Merged into every saved state (the CLI puts the run's invocation here for ``--resume``)."""
        self._logged_steps: set[tuple[str, int]] | None = None

    def skip_logged_metrics(self) -> None:
        """On resume: never log a (metric, step) the run already has.

        A run killed after logging a round's metrics but before saving that round's state redoes
        the round; its metrics keep the first values instead of gaining duplicate steps.
        """
        run = self.client.get_run(self.run_id)
        self._logged_steps = {
            (key, m.step) for key in run.data.metrics for m in self.client.get_metric_history(self.run_id, key)
        }

    def log_params(self, params: dict[str, Any]) -> None:
        existing = self.client.get_run(self.run_id).data.params
        items = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in existing]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def set_tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, int(step)) for k, v in metrics.items()]
        if self._logged_steps is not None:
            items = [m for m in items if (m.key, m.step) not in self._logged_steps]
            self._logged_steps.update((m.key, m.step) for m in items)
        for i in range(0, len(items), _MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + _MAX_BATCH])

    def log_array(self, path: str, array: np.ndarray) -> None:
        directory, name = os.path.split(path)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / name
            np.save(local, np.asarray(array))
            self.client.log_artifact(self.run_id, str(local), artifact_path=directory or None)

    def log_json(self, path: str, obj: Any) -> None:
        self.client.log_dict(self.run_id, json.loads(json.dumps(obj, default=_json_default)), path)

    def log_text(self, path: str, text: str) -> None:
        self.client.log_text(self.run_id, text, path)

    def log_figure(self, figure: Any, path: str) -> None:
        self.client.log_figure(self.run_id, figure, path)

    def save_state(self, state: dict[str, Any]) -> None:
        # One new file per finished round: a crash mid-write can only lose the newest file,
        # never the last good state.
        self.log_json(f"state/{int(state.get('round', 0)):05d}.json", {**self.state_extra, **state})

    def log_dataset(self, dataset: Dataset, context: str = "training") -> None:
        from mlflow.data.code_dataset_source import CodeDatasetSource
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        source = CodeDatasetSource(tags={"source": dataset.source or dataset.name})
        ds = MetaDataset(source=source, name=dataset.name, digest=dataset.digest)  # type: ignore[abstract]
        entity = ds._to_mlflow_entity()
        self.client.log_inputs(
            self.run_id, datasets=[DatasetInput(dataset=entity, tags=[InputTag("mlflow.data.context", context)])]
        )

    def load_state(self) -> dict[str, Any] | None:
        """The newest readable state file of the run, if any."""
        try:
            files = self.client.list_artifacts(self.run_id, "state")
        except Exception:
            return None
        for f in sorted((f.path for f in files), reverse=True):
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    local = self.client.download_artifacts(self.run_id, f, tmp)
                    return json.loads(Path(local).read_text())
            except (OSError, ValueError):
                continue
        return None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


@contextmanager
def tracked_run(
    experiment: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    resume_run_id: str | None = None,
) -> Iterator[MlflowTracker]:
    """Open (or continue) a run; close it FINISHED, FAILED with the reason, or KILLED."""
    c = client()
    run_id = resume_run_id or os.environ.get("MLFLOW_RUN_ID")
    try:
        if run_id:
            try:
                c.get_run(run_id)
            except Exception as exc:
                raise TrackingError(f"run {run_id!r} not found in {mlflow.get_tracking_uri()!r}") from exc
            ensure_experiment_of_run(run_id)
            if resume_run_id:
                c.update_run(run_id, status="RUNNING")
        else:
            exp_id = ensure_experiment(experiment)
            run_id = c.create_run(exp_id, run_name=run_name, tags=tags or {}).info.run_id
    except SvpkitError:
        raise
    except Exception as exc:
        raise TrackingError(f"cannot reach tracking store {mlflow.get_tracking_uri()!r}: {_one_line(exc)}") from exc
    tracker = MlflowTracker(run_id)
    if tags:
        tracker.set_tags(tags)
    if resume_run_id:
        tracker.skip_logged_metrics()
        env_run = os.environ.get("MLFLOW_RUN_ID")
        if env_run and env_run != resume_run_id:
            # `mlflow run -P resume=ID` opened a fresh run; the work continues in run ID.
            c.set_tag(env_run, "svpkit.resumed_run", resume_run_id)
    try:
        yield tracker
    except KeyboardInterrupt as exc:
        # Ctrl-C or SIGTERM (svpkit.signals): KILLED, and the saved state stays resumable.
        try:
            c.set_tag(run_id, "svpkit.interrupted", str(exc) or "SIGINT")
            c.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
        except Exception:
            pass
        exc.run_id = run_id  # type: ignore[attr-defined]
        raise
    except BaseException as exc:
        fail_run(run_id, exc)
        raise
    else:
        c.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


def ensure_experiment_of_run(run_id: str) -> None:
    c = client()
    exp_id = c.get_run(run_id).info.experiment_id
    exp = c.get_experiment(exp_id)
    if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        c.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


def fail_run(run_id: str, exc: BaseException) -> None:
    """Mark a run FAILED with a one-line reason (best effort: the store may be the problem)."""
    try:
        c = client()
        c.set_tag(run_id, "svpkit.error", f"{type(exc).__name__}: {_one_line(exc)}"[:5000])
        c.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
    except Exception:
        pass


def fail_env_run(exc: BaseException) -> None:
    """Inside ``mlflow run`` the run exists before our code starts: record why it failed."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        fail_run(run_id, exc)


# -- reading runs back (analysis: core-set full references, correlate) ---------------------------
@dataclass
class RunRecord:
    """What analysis needs of a finished run, read once."""

    run_id: str
    experiment_id: str
    status: str
    start_time: int
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]


def _record(run: Any) -> RunRecord:
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
        exp = c.get_experiment_by_name(name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT)
    except Exception as exc:
        raise TrackingError(f"cannot reach tracking store {mlflow.get_tracking_uri()!r}: {_one_line(exc)}") from exc
    return exp.experiment_id if exp is not None else None


def experiment_name(experiment_id: str) -> str:
    return client().get_experiment(experiment_id).name


def find_runs(experiment_ids: list[str], filter_string: str = "", finished_only: bool = True) -> list[RunRecord]:
    """Runs of the experiments matching an MLflow filter string, newest first."""
    clauses = [f for f in (filter_string.strip(), "attributes.status = 'FINISHED'" if finished_only else "") if f]
    query = " and ".join(clauses)
    try:
        runs = mlflow.search_runs(
            experiment_ids=experiment_ids, filter_string=query, output_format="list", order_by=["start_time DESC"]
        )
    except Exception as exc:
        raise TrackingError(f"cannot search runs with filter {filter_string!r}: {_one_line(exc)}") from exc
    return [_record(r) for r in runs]  # type: ignore[union-attr]


def load_run_array(run_id: str, path: str) -> np.ndarray:
    """A ``.npy`` artifact of a run; TrackingError when it is missing."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bar per small file
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client().download_artifacts(run_id, path, tmp)
        except Exception as exc:
            raise TrackingError(f"run {run_id} has no artifact {path!r}") from exc
        return np.load(local, allow_pickle=False)


def list_run_artifacts(run_id: str, path: str | None = None) -> list[str]:
    """Artifact paths directly under ``path`` of a run."""
    try:
        return [f.path for f in client().list_artifacts(run_id, path)]
    except Exception:
        return []


def load_run_state(run_id: str) -> dict[str, Any] | None:
    """The newest readable resume state (``state/*.json``) of a run, if any."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep stderr to one line
    try:
        return MlflowTracker(run_id).load_state()
    except Exception as exc:
        raise TrackingError(f"cannot read run {run_id!r}: {_one_line(exc)}") from exc
