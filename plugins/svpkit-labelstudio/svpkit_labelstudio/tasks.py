"""A round as Label Studio tasks, and Label Studio's annotations as svpkit answers.

- the labeling config: image classification (``Image`` + ``Choices``) for image data sets, text
  classification (``Text`` + ``Choices``) for text data sets, one choice per class of the data set;
- a task per batch entry: the example (an image URL Label Studio can serve, or the text), svpkit's
  id, round, rank and the selector's score in ``data``, and the proxy's class as a prediction
  (Label Studio's pre-annotation; none for the random first batch);
- a task's answer: its newest annotation that was not cancelled; a task whose annotations are
  all cancelled is *skipped*, a task without any is *open*.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.labeling.project import Round
from svpkit_labelstudio.names import CHOICES, FIELD_ID, FIELD_RANK, FIELD_ROUND, FIELD_RUN, FIELD_SCORE

IMAGE_FOLDER = "imagefolder"
"""The data set whose images are files Label Studio serves through a Local Files storage."""
DATA_URI_MIN_SIDE = 96
"""Array images (npz) go into the task as PNG data URIs, scaled up to at least this many pixels."""


def label_config(modality: str, classes: list[str]) -> str:
    """Label Studio's labeling config for single-choice classification into ``classes``."""
    if modality == "image":
        shown = '  <Image name="image" value="$image" zoom="true"/>'
        target = "image"
    elif modality == "text":
        shown = '  <Text name="text" value="$text"/>'
        target = "text"
    else:
        raise ConfigError(f"Label Studio rounds need an image or text data set, not a {modality} one")
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in classes)
    return (
        "<View>\n"
        f"{shown}\n"
        f'  <Header value="svpkit id $svpkit_id, round $svpkit_round, rank $svpkit_rank"/>\n'
        f'  <Choices name="{CHOICES}" toName="{target}" choice="single" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>"
    )


def config_choices(config: str) -> list[str]:
    """The choice values of a labeling config (to check that a reused project fits the classes)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(config)
    except ET.ParseError:
        return []
    return [str(c.get("value")) for c in root.iter("Choice")]


def local_files_url(document_root: Path, file: Path) -> str:
    """The URL Label Studio serves ``file`` under (``/data/local-files/?d=<path under the root>``)."""
    relative = os.path.relpath(file.resolve(), document_root.resolve())
    if relative.startswith(".."):
        raise ConfigError(f"{file} is not under Label Studio's local-files document root {document_root}")
    return "/data/local-files/?d=" + quote(Path(relative).as_posix())


def png_data_uri(image: np.ndarray) -> str:
    """An H×W×C uint8 image as a PNG data URI, scaled up (nearest) so that small images are visible."""
    from PIL import Image

    scale = max(1, -(-DATA_URI_MIN_SIDE // max(image.shape[:2])))
    pixels = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class Examples:
    """What a task shows for an id: an image URL (files or data URIs) or a text."""

    modality: str
    field: str
    value_of: dict[str, str]


def examples_of(dataset_name: str, data: Dataset | None, data_root: Path | None, document_root: Path | None) -> Any:
    """A function id → what the task shows (``image`` or ``text``), and the task's data field."""
    if dataset_name == IMAGE_FOLDER:
        assert data_root is not None and document_root is not None
        return "image", lambda ident: local_files_url(document_root, data_root / ident)
    assert data is not None
    position = {ident: i for i, ident in enumerate(data.train.example_ids())}
    if data.modality == "text":
        return "text", lambda ident: str(data.train.x[position[ident]])
    return "image", lambda ident: png_data_uri(data.train.x[position[ident]].numpy())


def round_tasks(
    run_id: str, r: Round, field_name: str, shown: Any, to_name: str, model_version: str
) -> list[dict[str, Any]]:
    """The tasks of round ``r``, in rank order, with the proxy's predictions."""
    tasks = []
    for rank, ident in enumerate(r.batch):
        data = {
            field_name: shown(ident),
            FIELD_ID: ident,
            FIELD_ROUND: r.round,
            FIELD_RANK: rank + 1,
            FIELD_SCORE: r.scores[rank] if r.scores else None,
            FIELD_RUN: run_id,
        }
        task: dict[str, Any] = {"data": data}
        if r.predictions:
            choice = {"choices": [r.predictions[rank]]}
            result = {"from_name": CHOICES, "to_name": to_name, "type": "choices", "value": choice}
            score = r.confidences[rank] if r.confidences else None
            task["predictions"] = [{"model_version": model_version, "score": score, "result": [result]}]
        tasks.append(task)
    return tasks


# -- annotations → answers ---------------------------------------------------------------------
@dataclass
class Pulled:
    """A round's tasks as Label Studio has them now."""

    answers: dict[str, str] = field(default_factory=dict)
    """svpkit id → the chosen class (finished tasks)."""
    task_of: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    open: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Ids whose task is gone from the Label Studio project."""
    unreadable: dict[str, str] = field(default_factory=dict)
    """Ids whose newest annotation chooses no single class → what it holds."""


def answer_of(annotations: list[dict[str, Any]]) -> tuple[str, str | None]:
    """(``"finished"``, class) / (``"skipped"``, None) / (``"open"``, None) / (``"unreadable"``, what)."""
    if not annotations:
        return "open", None
    kept = [a for a in annotations if not a.get("was_cancelled")]
    if not kept:
        return "skipped", None
    newest = max(kept, key=lambda a: (str(a.get("updated_at") or ""), int(a.get("id") or 0)))
    chosen = [
        c
        for item in newest.get("result") or []
        if item.get("from_name") == CHOICES
        for c in (item.get("value") or {}).get("choices", [])
    ]
    if len(chosen) != 1:
        return "unreadable", f"{len(chosen)} choices"
    return "finished", str(chosen[0])


def pull(tasks: list[dict[str, Any]], task_ids: dict[str, int]) -> Pulled:
    """The answers to the tasks ``task_ids`` (svpkit id → task id) among Label Studio's ``tasks``."""
    by_id = {int(t["id"]): t for t in tasks}
    pulled = Pulled(task_of=dict(task_ids))
    for ident, task_id in task_ids.items():
        task = by_id.get(int(task_id))
        if task is None:
            pulled.missing.append(ident)
            continue
        state, value = answer_of(list(task.get("annotations") or []))
        if state == "finished":
            pulled.answers[ident] = str(value)
        elif state == "skipped":
            pulled.skipped.append(ident)
        elif state == "open":
            pulled.open.append(ident)
        else:
            pulled.unreadable[ident] = str(value)
    return pulled


HIDDEN_COLUMNS = [
    f"tasks:{c}"
    for c in (
        "inner_id", "annotations_ids", "predictions_model_versions", "file_upload", "storage_filename",
        "created_at", "updated_at", "updated_by", "avg_lead_time", "draft_exists", f"data.{FIELD_RUN}",
        "completed_at", "total_predictions", "annotators",
    )
]  # fmt: skip
"""Columns a round's tab hides; the predicted class (``predictions_results``) and its score are shown."""


def round_view(round_no: int) -> dict[str, Any]:
    """A Data Manager tab with round ``round_no``'s tasks, in rank order, showing the predictions."""
    number = {"filter": f"filter:tasks:data.{FIELD_ROUND}", "operator": "equal", "type": "Number", "value": round_no}
    return {
        "title": f"svpkit round {round_no}",
        "filters": {"conjunction": "and", "items": [number]},
        "ordering": [f"tasks:data.{FIELD_RANK}"],
        "hiddenColumns": {"explore": HIDDEN_COLUMNS, "labeling": HIDDEN_COLUMNS},
        "columnsWidth": {"tasks:predictions_results": 480, "tasks:annotations_results": 300},
    }
