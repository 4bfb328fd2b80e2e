"""The container and Kubernetes pieces, checked with MLflow's own loaders (no Docker engine or
cluster is needed): docker/MLproject (the docker_env twin of MLproject), kubernetes_config.json and
kubernetes_job_template.yaml, and the Job MLflow would submit for an entry point.

``python tests/test_settings_declared.py --write`` regenerates MLproject and docker/MLproject from the
settings declarations (``python tests/test_kubernetes_config.py --write`` does the same).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "svpkit:latest"
IMAGE_REPO_DIR = "/opt/svpkit"  # WORKDIR of the Dockerfile


def docker_mlproject(text: str) -> str:
    """docker/MLproject from MLproject (svpkit.api.entries.docker_twin)."""
    from svpkit.api.entries import docker_twin

    return docker_twin(text)


def _load(path: Path):  # type: ignore[no-untyped-def]
    from mlflow.projects._project_spec import load_project

    return load_project(str(path))


def test_docker_mlproject_is_the_docker_twin_of_mlproject() -> None:
    expected = docker_mlproject((ROOT / "MLproject").read_text())
    actual = (ROOT / "docker" / "MLproject").read_text()
    assert actual == expected, "docker/MLproject is stale: run `python tests/test_settings_declared.py --write`"
    from mlflow.projects.docker import validate_docker_env

    plain, docker = _load(ROOT), _load(ROOT / "docker")
    validate_docker_env(docker)  # MLflow's own check that a docker_env project names an image
    assert docker.docker_env == {"image": IMAGE} and plain.docker_env is None
    assert set(docker._entry_points) == set(plain._entry_points)
    assert {"active_learning", "active_learning_ddp"} <= set(docker._entry_points)


def test_dockerfile_installs_what_the_entries_run() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"WORKDIR {IMAGE_REPO_DIR}" in dockerfile
    for path in ("pyproject.toml", "README.md", "svpkit", "plugins", "projects", "MLproject"):
        assert (ROOT / path).exists() and path in dockerfile
    assert "torch==2.14.1" in dockerfile  # the version CI and python_env.yaml pin
    assert "torch==2.14.1" in (ROOT / "python_env.yaml").read_text()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "mlruns" in ignored and "mlflow.db" in ignored and ".git" in ignored


def test_kubernetes_config_loads_with_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.projects import _parse_kubernetes_config

    monkeypatch.chdir(ROOT)  # the template path is relative to where `mlflow run` is started
    config = _parse_kubernetes_config(json.loads((ROOT / "kubernetes_config.json").read_text()))
    template = config["kube-job-template"]
    assert template["apiVersion"] == "batch/v1" and template["kind"] == "Job"
    assert config["repository-uri"]
    container = template["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert template["spec"]["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("entry", ["active_learning", "active_learning_ddp"])
def test_job_mlflow_would_submit(entry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the Job exactly as ``--backend kubernetes`` does, and read it back as a V1Job."""
    import kubernetes  # in svpkit[dev]; mlflow's Kubernetes backend needs it too
    from mlflow.projects import _parse_kubernetes_config
    from mlflow.projects import kubernetes as kb
    from mlflow.projects.utils import get_entry_point_command, get_run_env_vars

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", "http://mlflow.mlflow.svc:5000")
    config = _parse_kubernetes_config(json.loads((ROOT / "kubernetes_config.json").read_text()))
    project = _load(ROOT / "docker")
    command = get_entry_point_command(project, entry, {"selector": "greedy_k_center", "seed": "3"}, str(tmp_path))
    job = kb._get_kubernetes_job_definition(
        project.name,
        f"{config['repository-uri']}:abc1234",
        "sha256:" + "0" * 64,
        kb._get_run_command(command),
        get_run_env_vars(run_id="0" * 32, experiment_id="1"),
        config["kube-job-template"],
    )

    class _Response:
        data = json.dumps(job)

    v1job = kubernetes.client.ApiClient().deserialize(_Response(), "V1Job")
    container = v1job.spec.template.spec.containers[0]
    assert container.image == f"{config['repository-uri']}:abc1234@sha256:{'0' * 64}"
    argv = container.command
    assert (
        argv[:3] == ["python", "-m", "torch.distributed.run"] if entry.endswith("ddp") else ["python", "-m", "svpkit"]
    )
    tail = argv[argv.index("svpkit") + 1 :]
    assert tail[0] == "active-learning"
    assert tail[tail.index("--selector") + 1] == "greedy_k_center" and tail[tail.index("--seed") + 1] == "3"
    env = {e.name: e.value for e in container.env}
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.mlflow.svc:5000"
    assert env["MLFLOW_RUN_ID"] == "0" * 32 and env["MLFLOW_EXPERIMENT_ID"] == "1"
    assert v1job.spec.template.spec.volumes[0].empty_dir.medium == "Memory"


if __name__ == "__main__" and "--write" in sys.argv:
    from test_settings_declared import write_generated

    write_generated()
