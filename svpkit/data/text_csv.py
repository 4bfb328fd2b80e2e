"""Text classification from CSV files in a folder: ``train.csv`` and ``test.csv`` (each may be
gzipped, ``.csv.gz``). Two layouts are recognised from the first row:

* a header ``label,text`` (more columns are ignored): labels are 0-based integers — the layout of
  ``shared/data/sst2`` (GLUE SST-2; its ``dev`` file is not used);
* no header, as in Zhang et al. 2015 (AG News, Yelp, Amazon Review …): ``"label","title","text"``
  (or ``"label","text"``, or more text columns), labels 1-based; the text fields are joined with
  a space, as the paper's reference does. A ``classes.txt`` beside them names the classes.

Examples keep the file's order; ``x`` is a list of strings (models encode them: VDCNN quantises
characters, fastText tokenises words).

For labeling projects (docs/labeling.md) a training row may leave its label empty: the example is
unlabeled (``UNLABELED``). An ``id`` column in the header layout gives the examples' stable ids
(else the row's position). ``test.csv`` may then be absent (no test error), and ``classes.txt``
names the classes when too few are labeled to tell.
"""

from __future__ import annotations

import csv
import gzip
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from svpkit.data.base import UNLABELED, Dataset, DatasetSpec, Split
from svpkit.errors import DataError

csv.field_size_limit(2**31 - 1)


def _find(root: Path, split: str) -> Path | None:
    for name in (f"{split}.csv", f"{split}.csv.gz"):
        if (root / name).is_file():
            return root / name
    return None


def _missing(root: Path, split: str) -> DataError:
    return DataError(f"{root} has no {split}.csv or {split}.csv.gz")


def _rows(file: Path) -> Iterator[list[str]]:
    """The file's CSV rows, read as a stream: never the whole file (or its rows) in memory at once,
    so a 3.6M-review Amazon file costs its texts only."""
    opener: Any = gzip.open if file.suffix == ".gz" else open
    try:
        with opener(file, "rt", encoding="utf-8", newline="") as fh:
            yield from csv.reader(fh)
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {file} ({type(exc).__name__}: {exc})") from None


def _parse(file: Path, unlabeled: bool = False) -> tuple[list[str], list[int], str, list[str] | None]:
    """(texts, 0-based labels, layout, ids from an ``id`` column) of one file; with ``unlabeled``
    an empty label is :data:`UNLABELED`."""
    rows = (r for r in _rows(file) if r)
    first = next(rows, None)
    if first is None:
        raise DataError(f"{file} is empty")
    header = [c.strip().lower() for c in first]
    texts: list[str] = []
    labels: list[int] = []
    ids: list[str] | None = None
    if "label" in header or "text" in header:
        if "label" not in header or "text" not in header:
            raise DataError(f"{file}: header must name columns 'label' and 'text', got {','.join(first)}")
        li, ti = header.index("label"), header.index("text")
        id_column = header.index("id") if "id" in header else None
        ids = [] if id_column is not None else None
        for line, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise DataError(f"{file} line {line}: expected {len(header)} fields, got {len(row)}")
            labels.append(_label(row[li], file, line, base=0, unlabeled=unlabeled))
            texts.append(row[ti])
            if ids is not None and id_column is not None:
                ids.append(row[id_column].strip())
        layout = "label,text header"
    else:
        width = len(first)
        if width < 2:
            raise DataError(f'{file}: expected a \'label,text\' header or Zhang et al. rows "label","title","text"')
        for line, row in enumerate(itertools.chain([first], rows), start=1):
            if len(row) != width:
                raise DataError(f"{file} line {line}: expected {width} fields, got {len(row)}")
            labels.append(_label(row[0], file, line, base=1, unlabeled=unlabeled))
            texts.append(" ".join(field.strip() for field in row[1:]))
        layout = "Zhang et al. (no header, 1-based labels)"
    if not labels:
        raise DataError(f"{file} has a header but no examples")
    if ids is not None and (len(set(ids)) != len(ids) or "" in ids):
        raise DataError(f"{file}: the 'id' column must hold a distinct, non-empty id on every row")
    return texts, labels, layout, ids


def _label(value: str, file: Path, line: int, base: int, unlabeled: bool) -> int:
    if unlabeled and not value.strip():
        return UNLABELED
    try:
        label = int(value.strip())
    except ValueError:
        raise DataError(f"{file} line {line}: label {value!r} is not an integer") from None
    if label < base:
        kind = "1-based (Zhang et al. layout)" if base else "non-negative"
        raise DataError(f"{file} line {line}: label {label} is invalid; labels are {kind}")
    return label - base


def load_text_csv(path: str | Path | None = None) -> Dataset:
    """Read ``train.csv[.gz]`` and ``test.csv[.gz]`` from the folder ``path``."""
    if not path:
        raise DataError("text_csv needs a data path (a folder with train.csv[.gz] and test.csv[.gz])")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"text data folder {root} does not exist")
    train_file, test_file = _find(root, "train"), _find(root, "test")
    if train_file is None:
        raise _missing(root, "train")
    xtr, ytr, layout, ids = _parse(train_file, unlabeled=True)
    if test_file is not None:
        xte, yte, test_layout, _ = _parse(test_file)
        if layout != test_layout:
            raise DataError(f"{train_file} and {test_file} use different layouts ({layout} vs {test_layout})")
    elif UNLABELED in ytr:
        xte, yte = [], []  # a labeling project without a test split: no test error
    else:
        raise _missing(root, "test")
    num_classes = max([*ytr, *yte]) + 1
    classes = None
    classes_file = root / "classes.txt"
    if classes_file.is_file():
        classes = [c.strip() for c in classes_file.read_text(encoding="utf-8").splitlines() if c.strip()]
        if len(classes) < num_classes:
            raise DataError(f"{classes_file} names {len(classes)} classes but the labels need {num_classes}")
        num_classes = len(classes)
    if num_classes < 2:
        hint = "; name the classes in classes.txt" if UNLABELED in ytr else ""
        raise DataError(f"{root}: need at least two classes, the labels only use {num_classes}{hint}")
    return Dataset(
        name="text_csv",
        train=Split(xtr, torch.tensor(ytr, dtype=torch.int64), ids),
        test=Split(xte, torch.tensor(yte, dtype=torch.int64)),
        num_classes=num_classes,
        modality="text",
        input_shape=(1,),
        classes=classes,
        source=f"{root} ({layout})",
    )


SPEC = DatasetSpec(
    name="text_csv",
    load=load_text_csv,
    description="text classification CSVs: train/test.csv[.gz] with a label,text header (SST-2) or Zhang et al. rows;"
    " empty training labels are unlabeled",
    needs_path=True,
    modality="text",
)
