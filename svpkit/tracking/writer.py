"""Writing runs: the loops' Tracker on an MLflow run, and opening and closing runs.

Tags, params, metrics with ``step`` = labeled count, artifacts, figures and ``log_input``; a run
is closed FINISHED, FAILED (with the reason in tag ``svpkit.error``) or KILLED.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunStatus, RunTag

from svpkit.contract import Tag, state_artifact
from svpkit.data.base import Dataset
from svpkit.errors import SvpkitError
from svpkit.tracking.memory import load_metrics
from svpkit.tracking.store import (
    TrackingError,
    client,
    ensure_experiment,
    ensure_experiment_of_run,
    one_line,
    unreachable,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_MAX_BATCH = 900


class MlflowTracker:
    """The loops' :class:`~svpkit.protocols.Tracker` on one MLflow run."""

    def __init__(self, run_id: str) -> None:
        self.client = client()
        self.run_id = run_id
        self.run = self.client.get_run(run_id)
        self.experiment_id = self.run.info.experiment_id
        self.state_extra: dict[str, object] = {}
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

    def log_params(self, params: Mapping[str, object]) -> None:
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

    def log_json(self, path: str, obj: object) -> None:
        self.client.log_dict(self.run_id, json.loads(json.dumps(obj, default=_json_default)), path)

    def log_text(self, path: str, text: str) -> None:
        self.client.log_text(self.run_id, text, path)

    def log_figure(self, figure: Figure, path: str) -> None:
        self.client.log_figure(self.run_id, figure, path)

    def save_state(self, state: dict[str, Any]) -> None:
        # One new file per finished round: a crash mid-write can only lose the newest file,
        # never the last good state.
        self.log_json(state_artifact(int(state.get("round", 0))), {**self.state_extra, **state})

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
        if phases := load_metrics(dataset):
            self.log_metrics(phases, step=0)

    def load_state(self) -> dict[str, object] | None:
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


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _open_run(experiment: str | None, run_name: str | None, tags: dict[str, str], resume_run_id: str | None) -> str:
    """The id of the run to log to: resumed, the one ``mlflow run`` opened, or a new one."""
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
            return run_id
        return c.create_run(ensure_experiment(experiment), run_name=run_name, tags=tags).info.run_id
    except SvpkitError:
        raise
    except Exception as exc:
        raise unreachable(exc) from exc


@contextmanager
def tracked_run(
    experiment: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    resume_run_id: str | None = None,
) -> Iterator[MlflowTracker]:
    """Open (or continue) a run; close it FINISHED, FAILED with the reason, or KILLED."""
    c = client()
    run_id = _open_run(experiment, run_name, tags or {}, resume_run_id)
    tracker = MlflowTracker(run_id)
    if tags:
        tracker.set_tags(tags)
    if resume_run_id:
        tracker.skip_logged_metrics()
        env_run = os.environ.get("MLFLOW_RUN_ID")
        if env_run and env_run != resume_run_id:
            # `mlflow run -P resume=ID` opened a fresh run; the work continues in run ID.
            c.set_tag(env_run, Tag.RESUMED_RUN, resume_run_id)
    try:
        yield tracker
    except KeyboardInterrupt as exc:
        # Ctrl-C or SIGTERM (svpkit.signals): KILLED, and the saved state stays resumable.
        try:
            c.set_tag(run_id, Tag.INTERRUPTED, str(exc) or "SIGINT")
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


def fail_run(run_id: str, exc: BaseException) -> None:
    """Mark a run FAILED with a one-line reason (best effort: the store may be the problem)."""
    try:
        c = client()
        c.set_tag(run_id, Tag.ERROR, f"{type(exc).__name__}: {one_line(exc)}"[:5000])
        c.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
    except Exception:
        pass


def fail_env_run(exc: BaseException) -> None:
    """Inside ``mlflow run`` the run exists before our code starts: record why it failed."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        fail_run(run_id, exc)
