"""Data sets from the Python objects a notebook already holds (docs/python-api.md).

:func:`dataset_from` turns numpy arrays (``(x, y)``, ``(x, y, x_test, y_test)`` or a dict with
``x``, ``y``, ``x_test``, ``y_test``), a torch ``Dataset`` whose items are ``(x, y)``, or a Hugging
Face ``datasets.Dataset`` / ``DatasetDict`` with named columns into a :class:`Dataset`, converted
once and held in memory. The inputs decide the modality: float vectors N×D are ``vector``, uint8
images N×H×W(×C) are ``image`` (channels last), strings are ``text``. Inputs are used as given
(no standardisation). Integer labels ``0..C-1`` are kept; other labels (strings) become classes in
sorted order. Test data is required (the loops measure the test error on it).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from svpkit.data.base import Dataset, Split, pixel_stats
from svpkit.errors import DataError

INPUT_COLUMNS = ("image", "img", "pixel_values", "text", "sentence", "content", "features", "x", "input")
"""Input column names a ``datasets.Dataset`` is read from when ``x`` is not given (the first present)."""
LABEL_COLUMNS = ("label", "labels", "y", "target", "class")
"""Label column names read when ``y`` is not given (else the one ``ClassLabel`` column)."""
TEST_SPLITS = ("test", "validation", "valid", "val")
"""``DatasetDict`` splits used as the test data, in this order (the training split is ``train``)."""
WHAT = "numpy arrays (x, y) or (x, y, x_test, y_test), a dict of them, a torch Dataset or a datasets.Dataset"

HELD_OUT = 0.2
"""The fraction of each class held out as the test split of data given without one."""
HELD_OUT_SEED = 0
"""The seed of that split (fixed: the same data gives the same split, and the same digest)."""
Raw = tuple[Any, Any, "list[str] | None"]
"""One split's inputs, labels and the label names its source declares (None: none)."""


def qualname(obj: object) -> str:
    """``module.name`` of a function or class (what a run's tags record)."""
    target = obj if inspect.isfunction(obj) or inspect.isclass(obj) else type(obj)
    name = getattr(target, "__qualname__", type(obj).__name__)
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if module else name


def is_hf_dataset(obj: object) -> bool:
    """A Hugging Face ``datasets.Dataset`` (without importing ``datasets``)."""
    return (
        type(obj).__module__.startswith("datasets.") and hasattr(obj, "column_names") and not isinstance(obj, Mapping)
    )


def is_torch_dataset(obj: object) -> bool:
    return isinstance(obj, torch.utils.data.Dataset) and hasattr(obj, "__len__")


def is_data_object(obj: object) -> bool:
    """Whether ``obj`` is something :func:`dataset_from` reads (not a plugin's name)."""
    return isinstance(obj, (tuple, list, Mapping, Dataset)) or is_hf_dataset(obj) or is_torch_dataset(obj)


def kind_of(obj: object) -> str:
    """What the object is, as a run's ``svpkit.dataset_object`` tag says it."""
    if isinstance(obj, Dataset):
        return "svpkit Dataset"
    if is_hf_dataset(obj) or (isinstance(obj, Mapping) and any(is_hf_dataset(v) for v in obj.values())):
        return f"datasets.{type(obj).__name__}"
    if is_torch_dataset(obj) or (isinstance(obj, (tuple, list)) and obj and is_torch_dataset(obj[0])):
        first = obj if is_torch_dataset(obj) else obj[0]  # type: ignore[index]
        return f"torch Dataset {type(first).__module__}.{type(first).__qualname__}"
    return "numpy arrays"


def dataset_from(
    obj: object, *, name: str = "data", x: str | None = None, y: str | None = None, test: object = None
) -> Dataset:
    """``obj`` (see the module's doc) as a :class:`Dataset` named ``name``; ``x``/``y`` name the
    input and label columns of a ``datasets.Dataset``; ``test``: the test data when ``obj`` holds
    only the training data. A DataError (one sentence) for anything else."""
    if isinstance(obj, Dataset):
        return obj
    train, found_test = _sources(obj)
    if test is not None:
        if found_test is not None:
            raise DataError("the data already holds test data; give test= only with training data alone")
        found_test = test
    if found_test is not None:
        return _assemble(name, _raw(train, x, y, "training"), _raw(found_test, x, y, "test"), kind_of(obj))
    data = _assemble(name, *held_out(_raw(train, x, y, "training")), kind_of(obj))
    data.options = {"held_out": HELD_OUT, "held_out_seed": HELD_OUT_SEED}  # a run's dataset_options param
    return data


def held_out(train: Raw, fraction: float = HELD_OUT, seed: int = HELD_OUT_SEED) -> tuple[Raw, Raw]:
    """Training data without a test part, split: ``fraction`` of each class's examples (seeded;
    at least one of a class with two or more, never all of it) become the test split. Both parts
    keep the given order."""
    inputs, labels = train[0], np.asarray(train[1])
    if labels.ndim != 1 or len(labels) != len(inputs):
        raise DataError(f"the training data has {len(inputs)} inputs but labels of shape {labels.shape}")
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = min(max(int(round(fraction * len(members))), 1), len(members) - 1)
        is_test[rng.permutation(members)[:count]] = True
    if not is_test.any():
        raise DataError("the data has no test part and too few examples to hold some out; give test data")
    return _take(train, np.flatnonzero(~is_test)), _take(train, np.flatnonzero(is_test))


def _take(raw: Raw, index: np.ndarray) -> Raw:
    """The examples ``index`` of one split (inputs a list, a torch tensor or an array)."""

    def pick(values: Any) -> Any:
        if isinstance(values, (list, tuple)):
            return [values[i] for i in index]
        if isinstance(values, torch.Tensor):
            return values[torch.from_numpy(index)]
        return np.asarray(values)[index]

    return pick(raw[0]), pick(raw[1]), raw[2]


def _sources(obj: object) -> tuple[object, object]:
    """The training and test sources of ``obj`` (test None: not given)."""
    if is_hf_dataset(obj) or is_torch_dataset(obj):
        return obj, None
    if isinstance(obj, Mapping):
        if "x" in obj and "y" in obj:
            test = (obj["x_test"], obj["y_test"]) if "x_test" in obj and "y_test" in obj else None
            return (obj["x"], obj["y"]), test
        if "train" in obj:
            return obj["train"], next((obj[k] for k in TEST_SPLITS if k in obj), None)
        raise DataError(f"a data dict needs keys x and y (x_test, y_test) or train (test), got {sorted(map(str, obj))}")
    if isinstance(obj, (tuple, list)):
        if len(obj) == 2 and all(is_hf_dataset(o) or is_torch_dataset(o) for o in obj):
            return obj[0], obj[1]
        if len(obj) == 2:
            return (obj[0], obj[1]), None
        if len(obj) == 4:
            return (obj[0], obj[1]), (obj[2], obj[3])
        raise DataError(f"a data tuple is (x, y) or (x, y, x_test, y_test), got {len(obj)} items")
    raise DataError(f"svpkit cannot read a {type(obj).__name__} as a data set; give {WHAT}")


def _raw(source: object, x: str | None, y: str | None, what: str) -> Raw:
    if is_hf_dataset(source):
        return _from_hf(source, x, y, what)
    if is_torch_dataset(source):
        return _from_torch(source, what)
    if isinstance(source, (tuple, list)) and len(source) == 2:
        return source[0], source[1], None
    raise DataError(f"the {what} data is a {type(source).__name__}; give {WHAT}")


def _from_torch(source: Any, what: str) -> Raw:
    """Every item ``(x, y)`` of a torch Dataset, in order."""
    xs, ys = [], []
    for i in range(len(source)):
        item = source[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(f"item {i} of the {what} torch Dataset is a {type(item).__name__}, not an (x, y) pair")
        xs.append(item[0])
        ys.append(item[1].item() if isinstance(item[1], torch.Tensor) else item[1])
    if xs and not isinstance(xs[0], str):
        try:
            return torch.stack([torch.as_tensor(np.asarray(v)) for v in xs]), ys, None
        except (RuntimeError, TypeError, ValueError) as exc:
            raise DataError(f"the inputs of the {what} torch Dataset do not stack into one array ({exc})") from None
    return xs, ys, None


def _column(columns: Sequence[str], given: str | None, known: Sequence[str], what: str) -> str:
    if given is not None:
        if given not in columns:
            raise DataError(f"the datasets.Dataset has no column {given!r} (it has {', '.join(columns)})")
        return given
    found = next((c for c in known if c in columns), None)
    if found is None:
        raise DataError(f"none of the columns {', '.join(columns)} is a known {what} column; name it ({what[0]}='...')")
    return found


def _from_hf(source: Any, x: str | None, y: str | None, what: str) -> Raw:
    """The input and label columns of a ``datasets.Dataset`` (images as uint8 arrays); without a
    known input column, every other numeric column makes one vector (a CSV of features)."""
    columns = list(source.column_names)
    class_labels = [c for c, f in source.features.items() if type(f).__name__ == "ClassLabel"]
    label = y or (class_labels[0] if len(class_labels) == 1 and not set(LABEL_COLUMNS) & set(columns) else None)
    label = _column(columns, label, LABEL_COLUMNS, "label")
    feature = source.features[label]
    names = list(feature.names) if type(feature).__name__ == "ClassLabel" else None
    labels = list(source[label])
    others = [c for c in columns if c != label]
    numeric = [c for c in others if getattr(source.features[c], "dtype", "").startswith(("int", "float"))]
    if x is None and not set(INPUT_COLUMNS) & set(others) and others and numeric == others:
        return np.stack([np.asarray(list(source[c]), dtype=np.float32) for c in others], axis=1), labels, names
    values: Any = list(source[_column(columns, x, [c for c in INPUT_COLUMNS if c != label], "input")])
    if values and not isinstance(values[0], str):
        values = np.stack([np.asarray(v) for v in values])  # PIL images, lists of numbers
    return values, labels, names


def _labels(raw: Sequence[Raw]) -> tuple[list[np.ndarray], list[str] | None]:
    """Integer labels of every split and the class names (string labels: sorted, they name the classes)."""
    arrays = [np.asarray(r[1]) for r in raw]
    names = next((r[2] for r in raw if r[2] is not None), None)
    if all(a.dtype.kind in "iu" for a in arrays):
        return [a.astype(np.int64) for a in arrays], names
    if all(a.dtype.kind in "UO" for a in arrays):
        classes = sorted({str(v) for a in arrays for v in a.tolist()})
        index = {c: i for i, c in enumerate(classes)}
        return [np.array([index[str(v)] for v in a.tolist()], dtype=np.int64) for a in arrays], classes
    raise DataError(f"labels must be integers 0..C-1 or strings, got {arrays[0].dtype} values")


def _inputs(values: Any, what: str) -> tuple[Any, str]:
    """Inputs as svpkit holds them (float vectors, uint8 NHWC images, a list of strings) and the modality."""
    if isinstance(values, (list, tuple)) and values and all(isinstance(v, str) for v in values):
        return list(values), "text"
    array = values.numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.dtype.kind in "UO" and array.ndim == 1:
        return [str(v) for v in array.tolist()], "text"
    if array.dtype == np.uint8 and array.ndim in (3, 4):
        images = array[..., None] if array.ndim == 3 else array
        return torch.from_numpy(np.ascontiguousarray(images)), "image"
    if array.dtype.kind in "fiub" and array.ndim >= 2:
        vectors = array.reshape(len(array), -1).astype(np.float32, copy=False)  # float32 given: no copy
        return torch.from_numpy(np.ascontiguousarray(vectors)), "vector"
    raise DataError(
        f"the {what} inputs are {array.dtype} of shape {array.shape}; svpkit reads float vectors N×D, "
        "uint8 images N×H×W(×C) or strings"
    )


def _assemble(name: str, train: Raw, test: Raw, kind: str) -> Dataset:
    splits = [train, test]
    labels, classes = _labels(splits)
    inputs = [_inputs(raw[0], what) for raw, what in zip(splits, ("training", "test"))]
    for (x, _), y, what in zip(inputs, labels, ("training", "test")):
        if len(x) != len(y) or y.ndim != 1:
            raise DataError(f"the {what} data has {len(x)} inputs but labels of shape {y.shape}")
    modality = inputs[0][1]
    if inputs[1][1] != modality or _shape(inputs[1][0]) != _shape(inputs[0][0]):
        raise DataError(
            f"the test inputs are {_shape(inputs[1][0])} {inputs[1][1]}, the training inputs {_shape(inputs[0][0])}"
        )
    every = np.concatenate(labels)
    if len(every) == 0 or every.min() < 0:
        raise DataError("the training data is empty" if len(every) == 0 else "labels must be non-negative")
    num_classes = max(int(every.max()) + 1, len(classes or []))
    if num_classes < 2:
        raise DataError("the labels use one class; svpkit needs at least two")
    x_train = inputs[0][0]
    mean, std = pixel_stats(x_train) if modality == "image" else (None, None)
    return Dataset(
        name=name,
        train=Split(x_train, torch.from_numpy(labels[0])),
        test=Split(inputs[1][0], torch.from_numpy(labels[1])),
        num_classes=num_classes,
        modality=modality,
        input_shape=_shape(x_train) if modality != "text" else (1,),
        mean=mean,
        std=std,
        classes=classes,
        source=kind,
    )


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else (1,)


def shape_text(data: Dataset) -> str:
    """``train 1438x64, test 359x64`` (text: the example counts)."""
    return ", ".join(
        f"{what} {'x'.join(str(n) for n in (len(split), *(data.input_shape if data.modality != 'text' else ())))}"
        for what, split in (("train", data.train), ("test", data.test))
    )
