"""The plugin's pure parts, without a server: labeling configs, task building, annotations → answers,
the Data Manager tab and the drift report (the server tests in test_labelstudio.py need Label Studio)."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image
from svpkit_labelstudio.names import CHOICES, FIELD_ID, FIELD_RANK, FIELD_ROUND, FIELD_RUN, FIELD_SCORE
from svpkit_labelstudio.rounds import drifts
from svpkit_labelstudio.tasks import (
    DATA_URI_MIN_SIDE,
    answer_of,
    config_choices,
    label_config,
    local_files_url,
    png_data_uri,
    pull,
    round_tasks,
    round_view,
)

from svpkit.errors import ConfigError
from svpkit.labeling.project import Round


def annotation(
    ident: int, choices: list[str], *, cancelled: bool = False, updated: str = "2026-01-01"
) -> dict[str, Any]:
    result = [{"from_name": CHOICES, "to_name": "image", "type": "choices", "value": {"choices": choices}}]
    return {"id": ident, "was_cancelled": cancelled, "updated_at": updated, "result": result}


@pytest.mark.parametrize("modality, tag", [("image", "Image"), ("text", "Text")])
def test_label_config_is_valid_xml_with_one_choice_per_class(modality: str, tag: str) -> None:
    classes = ["cat", 'say "hi"', "a<b & c>d", "ünïcode"]
    config = label_config(modality, classes)
    root = ET.fromstring(config)
    shown = root.find(tag)
    assert shown is not None and shown.get("value") == f"${modality}"
    control = root.find("Choices")
    assert control is not None and control.get("name") == CHOICES and control.get("toName") == modality
    assert control.get("choice") == "single"
    assert config_choices(config) == classes


def test_label_config_refuses_other_modalities() -> None:
    with pytest.raises(ConfigError, match="image or text data set, not a vector one"):
        label_config("vector", ["a", "b"])


def test_config_choices_of_a_broken_or_foreign_config() -> None:
    assert config_choices("<View><Choices") == []
    assert config_choices("<View><Text name='t' value='$text'/></View>") == []


def test_local_files_url_quotes_the_path_under_the_document_root(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    image = root / "my images" / "cat #1.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"")
    assert local_files_url(root, image) == "/data/local-files/?d=my%20images/cat%20%231.png"
    with pytest.raises(ConfigError, match="is not under Label Studio's local-files document root"):
        local_files_url(root, tmp_path / "elsewhere.png")


@pytest.mark.parametrize("channels", [1, 3])
def test_png_data_uri_round_trips_the_pixels_scaled_up(channels: int) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(8, 6, channels), dtype=np.uint8)
    uri = png_data_uri(image)
    assert uri.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    scale = -(-DATA_URI_MIN_SIDE // 8)
    assert decoded.shape[:2] == (8 * scale, 6 * scale)
    expected = image[..., 0] if channels == 1 else image
    np.testing.assert_array_equal(decoded[::scale, ::scale], expected)


def test_answer_of_takes_the_newest_annotation_that_was_not_cancelled() -> None:
    assert answer_of([]) == ("open", None)
    assert answer_of([annotation(1, ["cat"], cancelled=True)]) == ("skipped", None)
    older, newer = annotation(1, ["cat"], updated="2026-01-01"), annotation(2, ["dog"], updated="2026-02-01")
    assert answer_of([newer, older]) == ("finished", "dog")
    cancelled_newest = annotation(3, ["bird"], cancelled=True, updated="2026-03-01")
    assert answer_of([older, cancelled_newest]) == ("finished", "cat")
    same_time = [annotation(4, ["cat"]), annotation(9, ["dog"])]
    assert answer_of(same_time) == ("finished", "dog")  # ties: the higher annotation id
    assert answer_of([annotation(1, ["cat", "dog"])]) == ("unreadable", "2 choices")
    assert answer_of([annotation(1, [])]) == ("unreadable", "0 choices")
    foreign = {"id": 1, "result": [{"from_name": "other", "value": {"choices": ["cat"]}}]}
    assert answer_of([foreign]) == ("unreadable", "0 choices")


def test_pull_sorts_every_task_into_one_state() -> None:
    tasks = [
        {"id": 10, "annotations": [annotation(1, ["cat"])]},
        {"id": 11, "annotations": [annotation(2, ["cat"], cancelled=True)]},
        {"id": 12, "annotations": []},
        {"id": 13, "annotations": [annotation(3, ["cat", "dog"])]},
        {"id": 99, "annotations": [annotation(4, ["dog"])]},  # not this round's
    ]
    ids = {"a": 10, "b": 11, "c": 12, "d": 13, "e": 14}
    pulled = pull(tasks, ids)
    assert pulled.answers == {"a": "cat"}
    assert pulled.skipped == ["b"] and pulled.open == ["c"] and pulled.missing == ["e"]
    assert pulled.unreadable == {"d": "2 choices"}
    assert pulled.task_of == ids


def a_round(predictions: bool) -> Round:
    return Round(
        round=2, strategy="least_confidence", reason="", k=3, labeled_before=5, batch=["7", "3", "9"],
        predictions=["cat", "dog", "cat"] if predictions else [],
        confidences=[0.4, 0.5, 0.6] if predictions else [],
        scores=[0.9, 0.8, 0.7] if predictions else [],
    )  # fmt: skip


def test_round_tasks_carry_svpkit_fields_in_rank_order_and_the_proxys_predictions() -> None:
    tasks = round_tasks("run1", a_round(predictions=True), "image", lambda i: f"url/{i}", "image", "proxy-v")
    assert [t["data"][FIELD_ID] for t in tasks] == ["7", "3", "9"]
    assert [t["data"][FIELD_RANK] for t in tasks] == [1, 2, 3]
    first = tasks[0]
    assert first["data"]["image"] == "url/7" and first["data"][FIELD_ROUND] == 2
    assert first["data"][FIELD_SCORE] == 0.9 and first["data"][FIELD_RUN] == "run1"
    (prediction,) = first["predictions"]
    assert prediction["model_version"] == "proxy-v" and prediction["score"] == 0.4
    assert prediction["result"][0]["value"] == {"choices": ["cat"]}
    assert prediction["result"][0]["from_name"] == CHOICES


def test_a_random_round_has_no_predictions_or_scores() -> None:
    tasks = round_tasks("run1", a_round(predictions=False), "text", str, "text", "none")
    assert all("predictions" not in t for t in tasks)
    assert all(t["data"][FIELD_SCORE] is None for t in tasks)


def test_round_view_filters_one_round_in_rank_order() -> None:
    view = round_view(4)
    (item,) = view["filters"]["items"]
    assert item["filter"] == f"filter:tasks:data.{FIELD_ROUND}" and item["value"] == 4
    assert view["ordering"] == [f"tasks:data.{FIELD_RANK}"]
    assert "tasks:predictions_results" not in view["hiddenColumns"]["explore"]


def test_drifts_report_answers_changed_after_their_import() -> None:
    r1, r2 = a_round(predictions=False), a_round(predictions=False)
    r1.round, r2.round = 1, 2
    r1.answers = {"7": "cat", "3": "dog", "9": "cat"}
    r2.answers = {"7": "dog"}
    now = pull(
        [{"id": 1, "annotations": [annotation(1, ["cat"])]}, {"id": 2, "annotations": [annotation(2, ["cat"])]},
         {"id": 3, "annotations": []}],
        {"7": 1, "3": 2, "9": 3},
    )  # fmt: skip
    project = SimpleNamespace(rounds=[r1, r2])
    found = drifts(project, {1: now, 2: now}, closed_only=False)  # type: ignore[arg-type]
    assert [(d.round, d.id, d.imported, d.now) for d in found] == [
        (1, "3", "dog", "cat"),
        (1, "9", "cat", "(no annotation)"),
        (2, "7", "dog", "cat"),
    ]
    closed = drifts(project, {1: now, 2: now}, closed_only=True)  # type: ignore[arg-type]
    assert [d.round for d in closed] == [1, 1]
