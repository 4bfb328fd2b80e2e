"""The connection to the tracking store: one client per store, experiments and their UI links."""

from __future__ import annotations

import os

import mlflow
from mlflow.tracking import MlflowClient

from svpkit.contract import Tag
from svpkit.errors import SvpkitError

EXPERIMENT_KIND_TAG = Tag.EXPERIMENT_KIND
EXPERIMENT_KIND = "custom_model_development"
DEFAULT_EXPERIMENT = "svpkit"


class TrackingError(SvpkitError):
    """The tracking store is unreachable or a run id is wrong."""


_READY_STORES: set[str] = set()


PROBE_TIMEOUT_S = 5.0


def client() -> MlflowClient:
    """A client of the current store; a tracking server is probed first (:func:`probe`)."""
    uri = mlflow.get_tracking_uri()
    if uri in _READY_STORES:
        return MlflowClient(uri)
    probe(uri)
    c = _open_store(uri)
    _READY_STORES.add(uri)
    return c


def is_server(uri: str) -> bool:
    """Whether ``uri`` is a tracking server (http or https) rather than a local store."""
    return uri.split(":", 1)[0].lower() in ("http", "https")


_ANSWERED: set[str] = set()
_UNANSWERED: dict[str, TrackingError] = {}


def probe(uri: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast when the tracking server ``uri`` (default: the current one) does not answer.

    One request, ``timeout`` seconds, no retries (MLflow's own retries would take minutes), once
    per process and server; any HTTP answer, even an error status, means the server is there.
    MLflow's retry settings still apply to everything after. Nothing to do for a local store.
    """
    import http.client
    import socket
    import urllib.error
    import urllib.request

    uri = uri or mlflow.get_tracking_uri()
    if not is_server(uri) or uri in _ANSWERED:
        return
    if uri in _UNANSWERED:
        raise _UNANSWERED[uri]
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        pass  # it answered
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, ConnectionRefusedError):
            cause = "connection refused"
        elif isinstance(reason, TimeoutError):
            cause = f"no answer within {timeout:g} s"
        elif isinstance(reason, socket.gaierror):
            cause = "unknown host"
        else:
            cause = one_line(reason) if isinstance(reason, BaseException) else str(reason)
        _UNANSWERED[uri] = TrackingError(f"cannot reach tracking server {uri} ({cause})")
        raise _UNANSWERED[uri] from None
    _ANSWERED.add(uri)


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
        raise TrackingError(f"cannot open tracking store {uri!r}: {one_line(exc)}") from exc


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def unreachable(exc: BaseException) -> TrackingError:
    """The error for a store that did not answer."""
    return TrackingError(f"cannot reach tracking store {mlflow.get_tracking_uri()!r}: {one_line(exc)}")


def experiment_name_or_default(name: str | None) -> str:
    """``name``, else the experiment ``mlflow run`` named, else the default experiment."""
    return name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def ensure_experiment(name: str | None) -> str:
    """The experiment id for ``name`` (created if needed), or the one ``mlflow run`` chose."""
    c = client()
    env_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    try:
        if name is None and env_id:
            exp_id = env_id
        else:
            name = experiment_name_or_default(name)
            exp = c.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp is not None else _create_experiment(c, name)
        _mark_kind(c, exp_id)
    except SvpkitError:
        raise
    except Exception as exc:
        raise unreachable(exc) from exc
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


def _mark_kind(c: MlflowClient, experiment_id: str) -> None:
    exp = c.get_experiment(experiment_id)
    if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        # MLflow 3's UI opens experiments in its GenAI view unless told otherwise.
        c.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


def ensure_experiment_of_run(run_id: str) -> None:
    c = client()
    _mark_kind(c, c.get_run(run_id).info.experiment_id)


LOCAL_UI = "http://127.0.0.1:5000"
"""Where ``mlflow ui`` serves a local store by default."""


def runs_url(experiment_id: str, run_id: str | None = None) -> str:
    """The experiment's (or run's) page: on the tracking server itself, else on a local ``mlflow ui``."""
    uri = mlflow.get_tracking_uri()
    root = uri.rstrip("/") if is_server(uri) else LOCAL_UI
    base = f"{root}/#/experiments/{experiment_id}/runs"
    return f"{base}/{run_id}?workflowType=machine_learning" if run_id else f"{base}?workflowType=machine_learning"


def ui_command() -> str | None:
    """The command that serves the current local store in a browser (None for a tracking server)."""
    uri = mlflow.get_tracking_uri()
    return None if is_server(uri) else f"mlflow ui --backend-store-uri {uri}"


def run_link(experiment_id: str, run_id: str, what: str = "run") -> list[str]:
    """Where to see a run: its page on the tracking server; for a local store, the UI command, then the page."""
    command = ui_command()
    url = runs_url(experiment_id, run_id)
    return [f"{what} {run_id}: {url}"] if command is None else [f"{what} {run_id}: {command}", f"  then open {url}"]
