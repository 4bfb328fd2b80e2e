"""The CSV files of a labeling project: the batch to label, the answers, the exported labeled set.

- the batch (``to_label/round_<r>.csv``, ``svpkit query --out``): ``id,example,score,rank,label``
  — the example's stable id, what the annotator looks at (an image's path relative to the data
  folder, a text excerpt, else the id), the selector's score (empty for a random batch), its rank
  (1 = wanted most) and an empty ``label`` column to fill in;
- the answers (``svpkit label FILE``): a header naming ``id`` and ``label`` (more columns are
  ignored, so the batch file itself can come back filled in); an empty label leaves the example
  unlabeled;
- ``labels/round_<r>.csv``: ``id,label`` as imported; ``svpkit export``: ``id,label,round``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from svpkit.errors import ConfigError

BATCH_COLUMNS = ("id", "example", "score", "rank", "label")
ANSWER_COLUMNS = ("id", "label")
EXPORT_COLUMNS = ("id", "label", "round")


def to_csv(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def batch_csv(ids: Sequence[str], examples: Sequence[str], scores: Sequence[float] | None) -> str:
    """The batch file of ``ids`` in rank order."""
    rows = [
        (ident, examples[i], "" if scores is None else f"{scores[i]:.6g}", i + 1, "") for i, ident in enumerate(ids)
    ]
    return to_csv(BATCH_COLUMNS, rows)


@dataclass(frozen=True)
class Answer:
    """One row of an answer file (``line`` counts the header as line 1)."""

    line: int
    id: str
    label: str


def read_answers(path: Path) -> list[Answer]:
    """The rows of an answer file; a ConfigError (nothing imported) when it is not a CSV with the
    columns ``id`` and ``label`` and one field per column on every row."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"answer file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read answer file {path} ({type(exc).__name__}: {exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, row) for row in reader if row]
    except csv.Error as exc:
        raise ConfigError(f"{path} is not a readable CSV file ({exc}); nothing imported") from None
    header = [c.strip().lower() for c in rows[0][1]] if rows else []
    if "id" not in header or "label" not in header:
        raise ConfigError(f"{path}: the first line must be a CSV header naming the columns 'id' and 'label'")
    ii, li = header.index("id"), header.index("label")
    answers = []
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise ConfigError(f"{path} line {line}: expected {len(header)} fields, got {len(row)}; nothing imported")
        answers.append(Answer(line, row[ii].strip(), row[li].strip()))
    return answers
