"""Many runs at once: a preset's runs in parallel, locally or through an MLflow Projects backend.

``svpkit run PRESET --parallel N`` runs up to N runs at a time as separate ``svpkit`` processes on
this machine. With GPUs the pool is bounded by them: each run gets one GPU of its own
(``CUDA_VISIBLE_DEVICES``), so N is at most the GPU count; on CPU the cores are split between the
runs (``OMP_NUM_THREADS``). ``--backend kubernetes --backend-config kubernetes_config.json`` (or
``local``, or any backend MLflow knows) submits every run with :func:`mlflow.projects.run`
instead, without waiting for one before submitting the next, then waits for all. Either way
every run is the preset's pre-created, tagged run (``MLFLOW_RUN_ID``), and the preset ends with
one ``svpkit compare`` over the experiment.

Analysis/orchestration only: the loops never see this module.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from svpkit.errors import ConfigError
from svpkit.presets.plan import PlannedRun, Preset
from svpkit.presets.runner import preset_tags, run_subprocess, start_run

Outcome = tuple[str, "str | None"]
"""(run id, the error line when the run failed, else None)."""


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def pool_size(parallel: int, runs: int, gpus: int | None = None) -> int:
    """How many runs go at once: ``parallel``, at most one per GPU (when there are GPUs) and per run."""
    if parallel < 1:
        raise ConfigError(f"--parallel must be at least 1, got {parallel}")
    gpus = gpu_count() if gpus is None else gpus
    bound = gpus if gpus > 0 else (os.cpu_count() or 1)
    return max(1, min(parallel, bound, runs))


def run_locally(
    runs: Sequence[tuple[PlannedRun, str]],
    parallel: int,
    tracking_uri: str,
    gpus: int | None = None,
    announce: Callable[[str], None] = lambda message: None,
) -> list[Outcome]:
    """Each (planned run, run id) as ``python -m svpkit <command> ... --quiet``, ``parallel`` at a time."""
    gpus = gpu_count() if gpus is None else gpus
    workers = pool_size(parallel, len(runs), gpus)
    slots: queue.Queue[str | None] = queue.Queue()
    for slot in range(workers):
        slots.put(str(slot) if gpus > 0 else None)
    threads = str(max(1, (os.cpu_count() or 1) // workers))

    def one(item: tuple[PlannedRun, str]) -> Outcome:
        run, run_id = item
        gpu = slots.get()
        try:
            announce(f"started {run.name}: run {run_id}" + (f" on GPU {gpu}" if gpu is not None else ""))
            env = {"OMP_NUM_THREADS": threads} | ({} if gpu is None else {"CUDA_VISIBLE_DEVICES": gpu})
            _, problem = run_subprocess(run, run_id, tracking_uri, **env)
        finally:
            slots.put(gpu)
        return run_id, problem

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, runs))


def entry_parameters(run: PlannedRun, project: Path) -> dict[str, str]:
    """The MLproject parameters of a planned run (its options must all be entry parameters)."""
    from svpkit.tracking.projects import entry_point_parameters

    known = entry_point_parameters(project, run.loop)
    params: dict[str, str] = {}
    for key, value in run.options.items():
        if key not in known:
            raise ConfigError(
                f"option {key!r} of {run.name} is not a parameter of entry {run.loop!r} in {project / 'MLproject'}"
            )
        if key == "data_path" and value:
            value = run.args[run.args.index("--data-path") + 1]  # resolved like a local run
        params[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return params


def submit_all(
    preset: Preset,
    runs: Sequence[PlannedRun],
    backend: str,
    backend_config: str | None,
    project: Path,
    announce: Callable[[str], None] = lambda message: None,
) -> list[Outcome]:
    """Submit every run through MLflow Projects' ``backend`` (asynchronously), then wait for all.

    The local backend continues the preset's pre-created run; other backends (Kubernetes) create
    their own run, which is then tagged like one the preset created.
    """
    from svpkit import tracking

    if not (project / "MLproject").is_file():
        raise ConfigError(f"no MLproject in {project}")
    if backend == "kubernetes" and not backend_config:
        raise ConfigError("--backend kubernetes needs --backend-config (e.g. kubernetes_config.json)")
    parameters = [entry_parameters(run, project) for run in runs]  # all checked before any submission
    experiment_id = tracking.ensure_experiment(preset.experiment)
    submitted = [
        _submit(preset, run, params, experiment_id, backend, backend_config, project, announce)
        for run, params in zip(runs, parameters)
    ]
    outcomes: list[Outcome] = []
    for run_id, handle, problem in submitted:
        if handle is not None and not handle.wait():
            problem = f"{backend} run ended {handle.get_status()}"
        outcomes.append((run_id, problem))
    return outcomes


def _submit(
    preset: Preset,
    run: PlannedRun,
    params: dict[str, str],
    experiment_id: str,
    backend: str,
    backend_config: str | None,
    project: Path,
    announce: Callable[[str], None],
) -> tuple[str, Any, str | None]:
    """Submit one run without waiting: (run id, the submitted run or None, the error line or None)."""
    from svpkit import tracking
    from svpkit.tracking.projects import submit, tag_run

    run_id = start_run(preset, run) if backend == "local" else None
    try:
        handle = submit(
            project,
            run.loop,
            params,
            experiment_id=experiment_id,
            backend=backend,
            backend_config=backend_config,
            run_id=run_id,
            run_name=run.name,
        )
    except Exception as exc:  # one bad submission must not orphan the others
        problem = f"error: submission failed: {(str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]}"
        if run_id:
            tracking.fail_run(run_id, exc)
        return run_id or "", None, problem
    if run_id is None:
        tag_run(handle.run_id, preset_tags(preset, run))
    announce(f"submitted {run.name}: run {handle.run_id} ({backend})")
    return handle.run_id, handle, None


def fan_out(
    preset: Preset,
    runs: Sequence[PlannedRun],
    parallel: int = 1,
    backend: str | None = None,
    backend_config: str | None = None,
    project: str | Path | None = None,
    announce: Callable[[str], None] = lambda message: None,
) -> list[Outcome]:
    """Run a preset's ``runs`` at once: a local pool (``backend`` None) or MLflow Projects' backend.

    ``project`` (MLflow backends): the project directory; default the repository holding the
    preset, and its ``docker/`` twin for ``kubernetes``.
    """
    from svpkit import tracking

    if backend:
        if project is None:
            repo = preset.path.resolve().parent.parent
            project = repo / "docker" if backend == "kubernetes" else repo
        return submit_all(preset, runs, backend, backend_config, Path(project), announce)
    started = [(run, start_run(preset, run)) for run in runs]
    return run_locally(started, parallel, tracking.client().tracking_uri, announce=announce)
