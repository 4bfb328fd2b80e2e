"""MLflow Projects: an MLproject's entry parameters, and submitting a run of an entry to a backend.

Presets (:mod:`svpkit.presets.backends`) fan their runs out through these two functions, so that
``tracking`` stays the only package that imports mlflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from svpkit.tracking.store import client


def entry_point_parameters(project: Path, entry_point: str) -> set[str]:
    """The parameter names of ``entry_point`` in ``project``'s MLproject."""
    from mlflow.projects._project_spec import load_project

    return set(load_project(str(project)).get_entry_point(entry_point).parameters)


def submit(
    project: Path,
    entry_point: str,
    parameters: dict[str, str],
    *,
    experiment_id: str,
    backend: str,
    backend_config: str | None,
    run_id: str | None,
    run_name: str,
) -> Any:
    """Submit a run of ``entry_point`` without waiting (the local backend continues ``run_id``);
    the submitted run (``run_id``, ``wait()``, ``get_status()``)."""
    import mlflow.projects

    return mlflow.projects.run(
        str(project),
        entry_point=entry_point,
        parameters=parameters,
        experiment_id=experiment_id,
        backend=backend,
        backend_config=backend_config,
        env_manager="local" if backend == "local" else None,
        synchronous=False,
        run_id=run_id,
        run_name=run_name,
    )


def tag_run(run_id: str, tags: dict[str, str]) -> None:
    """Set ``tags`` on a run in one call."""
    from mlflow.entities import RunTag

    client().log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
