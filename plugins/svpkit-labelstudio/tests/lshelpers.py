"""Helpers of the Label Studio plugin's tests: svpkit processes, an annotator through the API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests


@dataclass
class Server:
    url: str
    legacy_token: str
    pat: str
    document_root: Path
    email: str
    password: str
    log: Path


def cli_env(tracking_uri: str, **extra: str) -> dict[str, str]:
    """The environment of an ``svpkit`` process of a test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_RUN", "MLFLOW_EXPERIMENT", "LABEL_STUDIO"))}
    env.update(MLFLOW_TRACKING_URI=tracking_uri, OMP_NUM_THREADS="1", **extra)
    return env


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "svpkit", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class Annotator:
    """Someone annotating in Label Studio, through its REST API (what the UI does on Submit,
    Skip and Update), with a personal access token."""

    def __init__(self, url: str, pat: str) -> None:
        self.url = url
        access = requests.post(f"{url}/api/token/refresh", json={"refresh": pat}, timeout=30)
        access.raise_for_status()
        self.headers = {"Authorization": f"Bearer {access.json()['access']}"}

    def get(self, path: str, **params: Any) -> Any:
        reply = requests.get(self.url + path, headers=self.headers, params=params, timeout=30)
        reply.raise_for_status()
        return reply.json()

    def tasks(self, project: int) -> list[dict[str, Any]]:
        return list(self.get("/api/tasks/", project=project, page_size=1000, fields="all")["tasks"])

    def submit(self, task: dict[str, Any], choice: str) -> int:
        to_name = "image" if "image" in task["data"] else "text"
        result = [{"from_name": "label", "to_name": to_name, "type": "choices", "value": {"choices": [choice]}}]
        reply = requests.post(
            f"{self.url}/api/tasks/{task['id']}/annotations/", headers=self.headers, json={"result": result}, timeout=30
        )
        reply.raise_for_status()
        return int(reply.json()["id"])

    def skip(self, task: dict[str, Any]) -> None:
        body = {"result": [], "was_cancelled": True}
        reply = requests.post(
            f"{self.url}/api/tasks/{task['id']}/annotations/", headers=self.headers, json=body, timeout=30
        )
        reply.raise_for_status()

    def change(self, task: dict[str, Any], choice: str) -> None:
        """Update the task's (only) annotation to ``choice``."""
        annotation = self.get(f"/api/tasks/{task['id']}/annotations/")[0]
        to_name = "image" if "image" in task["data"] else "text"
        result = [{"from_name": "label", "to_name": to_name, "type": "choices", "value": {"choices": [choice]}}]
        reply = requests.patch(
            f"{self.url}/api/annotations/{annotation['id']}/", headers=self.headers, json={"result": result}, timeout=30
        )
        reply.raise_for_status()
