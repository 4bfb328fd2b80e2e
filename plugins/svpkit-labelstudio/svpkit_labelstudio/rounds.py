"""Sending a round to Label Studio and pulling its annotations back (the commands' work).

The svpkit side is the core labeling project (``svpkit.labeling``): the batch comes from the
core ``svpkit query`` and the answers go through the same check and import as a CSV file
(``check_answers`` / ``commit_answers``). What this module adds is kept in the project's run:
the tags :data:`~svpkit_labelstudio.names.TAG_URL` and ``TAG_PROJECT`` and, per round, the
artifact ``label_studio/round_<r>.json`` (server, project, svpkit id → task id).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.labeling.project import Project, Round
from svpkit.tracking import MlflowTracker, client
from svpkit_labelstudio.client import LabelStudio
from svpkit_labelstudio.names import FIELD_ID, FIELD_ROUND, FIELD_RUN, TAG_PROJECT, TAG_URL, round_artifact
from svpkit_labelstudio.tasks import (
    IMAGE_FOLDER,
    Pulled,
    config_choices,
    examples_of,
    label_config,
    pull,
    round_tasks,
    round_view,
)


@dataclass
class Target:
    """Where a round goes: the server and a project (an existing one's id, or a title to create)."""

    url: str
    project: str

    def existing(self, ls: LabelStudio) -> dict[str, Any] | None:
        """The Label Studio project this names (by id, else by title), None when it is to be created."""
        if self.project.isdigit():
            return ls.project(int(self.project))
        same = [p for p in ls.projects() if p.get("title") == self.project]
        if len(same) > 1:
            ids = ", ".join(str(p["id"]) for p in same)
            raise ConfigError(
                f"Label Studio has {len(same)} projects titled {self.project!r} (ids {ids}); give --ls-project ID"
            )
        return same[0] if same else None


@dataclass
class Source:
    """How a task shows the examples of the project's data set."""

    dataset: str
    data: Dataset | None
    data_root: Path | None
    document_root: Path | None


def prepare_source(dataset: str, data_path: str | None, document_root: str | None, load: Any) -> Source:
    """Check, before any round is asked for, that Label Studio can be shown the examples:
    an image folder must lie under the server's local-files document root; other data sets are
    loaded here (``load()``) and must hold images or texts."""
    if dataset == IMAGE_FOLDER:
        if not data_path:
            raise ConfigError("--data-path is required for an image folder")
        if not document_root:
            raise ConfigError(
                "Label Studio serves an image folder's files from its local-files document root: "
                "give --ls-document-root (the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)"
            )
        root, folder = Path(document_root).resolve(), Path(data_path).resolve()
        if root != folder and root not in folder.parents:
            raise ConfigError(f"the image folder {folder} is not under Label Studio's document root {root}")
        return Source(dataset, None, folder, root)
    data = load()
    if data.modality not in ("image", "text"):
        raise ConfigError(f"Label Studio rounds need an image or text data set; {dataset!r} holds {data.modality}s")
    return Source(dataset, data, None, None)


def read_round_info(run_id: str, round_no: int) -> dict[str, Any] | None:
    """The artifact ``label_studio/round_<r>.json`` of the run, None when the round was not sent."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bar per small file
    path = round_artifact(round_no)
    if path not in {f.path for f in client().list_artifacts(run_id, str(Path(path).parent))}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = client().download_artifacts(run_id, path, tmp)
        return dict(json.loads(Path(local).read_text(encoding="utf-8")))


def push_round(ls: LabelStudio, project: Project, target: Target, source: Source) -> tuple[dict[str, Any], bool]:
    """Send the project's newest round to Label Studio (once: a round already sent is left as
    it is); returns the round's info and whether tasks were imported now."""
    run_id, r = str(project.run_id), project.latest
    assert r is not None
    known = read_round_info(run_id, r.round)
    if known is not None:
        return known, False
    ls_project = target.existing(ls)
    modality = "image" if source.dataset == IMAGE_FOLDER else source.data.modality  # type: ignore[union-attr]
    if ls_project is None:
        description = f"svpkit labeling project {run_id}: rounds of {source.dataset} picked by the proxy"
        ls_project = ls.create_project(target.project, label_config(modality, project.classes), description)
    elif config_choices(str(ls_project.get("label_config", ""))) != project.classes:
        raise ConfigError(
            f"Label Studio project {ls_project['id']} ({ls_project.get('title')!r}) does not choose among the "
            f"project's classes {project.classes}; use another --ls-project"
        )
    pid = int(ls_project["id"])
    if source.data_root is not None:
        _ensure_local_storage(ls, pid, source.data_root)
    field_name, shown = examples_of(source.dataset, source.data, source.data_root, source.document_root)
    task_ids = _round_task_ids(ls, pid, run_id, r)
    imported = not task_ids
    if imported:
        version = f"svpkit {project.invocation.get('proxy')} round {r.round}"
        ls.import_tasks(pid, round_tasks(run_id, r, field_name, shown, field_name, version))
        task_ids = _round_task_ids(ls, pid, run_id, r)
    if not any((v.get("data") or {}).get("title") == f"svpkit round {r.round}" for v in ls.views(pid)):
        ls.add_view(pid, round_view(r.round))
    if set(task_ids) != set(r.batch):
        raise ConfigError(f"Label Studio project {pid} holds {len(task_ids)} of round {r.round}'s {len(r.batch)} tasks")
    info = {"url": ls.url, "project": pid, "round": r.round, "tasks": {i: task_ids[i] for i in r.batch}}
    tracker = MlflowTracker(run_id)
    tracker.log_json(round_artifact(r.round), info)
    client().set_tag(run_id, TAG_URL, ls.url)
    client().set_tag(run_id, TAG_PROJECT, str(pid))
    return info, imported


def _ensure_local_storage(ls: LabelStudio, pid: int, folder: Path) -> None:
    for storage in ls.local_storages(pid):
        path = Path(str(storage.get("path", ""))).resolve()
        if path == folder or path in folder.parents:
            return
    ls.add_local_storage(pid, str(folder), f"svpkit data {folder.name}")


def _round_task_ids(ls: LabelStudio, pid: int, run_id: str, r: Round) -> dict[str, int]:
    """svpkit id → task id of the round's tasks already in the project."""
    found = {}
    for task in ls.tasks(pid):
        data = task.get("data") or {}
        if data.get(FIELD_RUN) == run_id and data.get(FIELD_ROUND) == r.round:
            found[str(data.get(FIELD_ID))] = int(task["id"])
    return found


def pull_round(ls: LabelStudio, info: dict[str, Any], tasks: list[dict[str, Any]] | None = None) -> Pulled:
    """The round's annotations as Label Studio has them now."""
    return pull(tasks if tasks is not None else ls.tasks(int(info["project"])), dict(info["tasks"]))


@dataclass
class Drift:
    """An answer svpkit holds that Label Studio now shows differently."""

    round: int
    id: str
    imported: str
    now: str


def drifts(project: Project, pulled: dict[int, Pulled], closed_only: bool) -> list[Drift]:
    """Answers imported earlier that differ from Label Studio's annotations now (changed, skipped,
    reopened or deleted there after the import). ``closed_only``: only rounds before the newest."""
    found = []
    rounds = project.rounds[:-1] if closed_only else project.rounds
    for r in rounds:
        if r.round not in pulled:
            continue
        p = pulled[r.round]
        for ident, label in r.answers.items():
            if ident in p.answers:
                now = p.answers[ident]
            elif ident in p.skipped:
                now = "(skipped)"
            elif ident in p.open:
                now = "(no annotation)"
            elif ident in p.missing:
                now = "(task deleted)"
            else:
                now = f"({p.unreadable.get(ident, '?')})"
            if now != label:
                found.append(Drift(r.round, ident, label, now))
    return found
