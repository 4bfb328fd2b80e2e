"""Your own objects where the API takes names: data sets, models and selectors (docs/python-api.md).

Every object becomes the spec a plugin would register (:class:`~svpkit.data.base.DatasetSpec`,
:class:`~svpkit.models.base.ModelSpec`, :class:`~svpkit.selectors.base.SelectorSpec`; the
conversions are ``objects`` of :mod:`svpkit.data`, :mod:`svpkit.models` and :mod:`svpkit.selectors`)
under a name in this process's registries, so a run with objects goes through the same
validation, loops and tracking as a run with plugin names:

- a data set: what :func:`svpkit.data.objects.dataset_from` reads (numpy arrays, a torch
  ``Dataset``, a ``datasets.Dataset``/``DatasetDict``), a loaded ``Dataset`` or a ``DatasetSpec``;
  named ``data-<digest>`` (its content digest) unless :func:`register` names it;
- a model: a factory of a fresh ``torch.nn.Module`` (a class or a function taking nothing,
  ``num_classes``, or ``num_classes, input_shape``: the shape of one example, images H×W×C; image
  batches arrive N×C×H×W) or a ``ModelSpec``; named after the factory;
- a selector: a scoring function ``probs -> scores`` (the pool's softmax probabilities N×C in,
  one score per example out, higher is picked first: active learning takes the top k, core-set
  selection keeps the highest) or a ``SelectorSpec``; named after the function.

Before a run opens, each factory builds its module and runs a batch of two examples and each
scoring function scores a small probability matrix (a ConfigError with one sentence when they
fail); the run's tags record what the objects were (:class:`svpkit.contract.Tag`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar, Union

import torch

from svpkit.contract import Tag
from svpkit.data.base import Dataset, DatasetSpec
from svpkit.data.objects import WHAT, dataset_from, is_data_object, kind_of, qualname, shape_text
from svpkit.errors import ConfigError, DataError
from svpkit.models.base import ModelSpec
from svpkit.models.objects import MODALITIES, encoded, model_spec
from svpkit.plugins import IN_PROCESS, get_plugins, register_in_process
from svpkit.registry import ConflictError
from svpkit.selectors.base import SelectorSpec
from svpkit.selectors.objects import checked_scores, selector_spec

Spec = Union[DatasetSpec, ModelSpec, SelectorSpec]
MODEL_TAGS = {"proxy": (Tag.PROXY_CLASS, Tag.PROXY_PARAMETERS), "target": (Tag.TARGET_CLASS, Tag.TARGET_PARAMETERS)}
STATE_DIGEST = "dataset_digest"
"""The key of the data set's digest in a run's saved states."""


@dataclass(frozen=True)
class Origin:
    """What object a name in this process stands for: its kind and qualified name."""

    kind: str
    what: str
    obj: object = None
    """The scoring function of a selector, the encoder of a text model (tried before a run), else None."""


_ORIGINS: dict[tuple[str, str], Origin] = {}
"""(kind, name) → the object behind an in-process name."""


# -- names --------------------------------------------------------------------------------------
def _adapt(kind: str, obj: object, name: str, how: Mapping[str, Any]) -> tuple[Spec, str]:
    """``obj`` as a spec of ``kind`` named ``name`` and what the object is."""
    if kind == "dataset":
        if how.keys() - {"x", "y", "test"}:
            raise ConfigError(f"a data set takes x=, y= and test=, not {sorted(how.keys() - {'x', 'y', 'test'})}")
        if isinstance(obj, DatasetSpec):
            return obj, f"DatasetSpec {obj.name}"
        data = replace(dataset_from(obj, **how), name=name)
        loaded = lambda: replace(data)  # noqa: E731 - a copy per load: the loops add caches to it
        return DatasetSpec(name, loaded, f"{kind_of(obj)} ({shape_text(data)})", modality=data.modality), kind_of(obj)
    allowed = {"train", "modalities", "encode"} if kind == "model" else set()
    if how.keys() - allowed:
        raise ConfigError(
            f"a {kind} takes no options {sorted(how.keys() - allowed)} (a model: train=, modalities=, encode=)"
        )
    if kind == "model":
        if isinstance(obj, ModelSpec):
            return obj, f"ModelSpec {obj.name}"
        if callable(obj):
            spec = model_spec(obj, name, how.get("train"), how.get("modalities", MODALITIES), how.get("encode"))
            return spec, qualname(obj)
        raise ConfigError(
            f"a model is a plugin's name, a ModelSpec or a function that builds a torch.nn.Module, not a {type(obj).__name__}"
        )
    if isinstance(obj, SelectorSpec):
        return obj, f"SelectorSpec {obj.name}"
    if callable(obj) and not inspect.isclass(obj):
        return selector_spec(obj, name), qualname(obj)  # a scoring function
    raise ConfigError(
        f"a selector is a plugin's name, a SelectorSpec or a scoring function probs -> scores, not a {type(obj).__name__}"
    )


def _kind_of(obj: object) -> str:
    if isinstance(obj, DatasetSpec) or (not callable(obj) and is_data_object(obj)) or isinstance(obj, Dataset):
        return "dataset"
    if isinstance(obj, ModelSpec) or (inspect.isclass(obj) and issubclass(obj, torch.nn.Module)):
        return "model"
    if isinstance(obj, SelectorSpec):
        return "selector"
    raise ConfigError(
        f"say what {qualname(obj)} is: svpkit.register(name, obj, kind='model') for a module factory, "
        "kind='selector' for a scoring function"
    )


def register(name: str, obj: object, *, kind: str | None = None, **how: Any) -> str:
    """Give ``obj`` (a data set, model or selector object: see the module's doc) the ``name`` that
    the API's name arguments, presets run in this process and ``resume`` look up; returns it.

    ``kind`` (``dataset``, ``model``, ``selector``) is needed for a plain function; ``how`` is
    what the object needs: ``x=``, ``y=`` (the input and label columns of a ``datasets.Dataset``) and
    ``test=`` (the test data) for a data set; ``train=`` (a :class:`TrainConfig`), ``modalities=``
    and, for text, ``encode=`` (strings → a float tensor N×D) for a model factory.
    A name an installed plugin holds is a ConfigError; registering a name again replaces it."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ConfigError(f"a registered name is letters, digits, '_', '.' and '-', got {name!r}")
    kind = kind or _kind_of(obj)
    if kind not in ("dataset", "model", "selector"):
        raise ConfigError(f"kind must be dataset, model or selector, got {kind!r}")
    spec, what = _adapt(kind, obj, name, how)
    if spec.name != name:
        spec = replace(spec, name=name)  # type: ignore[type-var]
    try:
        register_in_process(kind, name, spec)
    except ConflictError as exc:
        raise ConfigError(f"{exc}; register yours under another name") from None
    probe = obj if kind == "selector" and not isinstance(obj, SelectorSpec) else how.get("encode")
    _ORIGINS[(kind, name)] = Origin(kind, what, probe)
    return name


def _auto_name(kind: str, obj: object, used: Mapping[str, object]) -> str:
    """The name a model or selector object gets when it is given in place of a name: its own
    (``user_`` first when a plugin holds it), numbered when another object of the call has it."""
    spec_name = obj.name if isinstance(obj, (DatasetSpec, ModelSpec, SelectorSpec)) else None
    base = re.sub(r"[^A-Za-z0-9_.\-]+", "", spec_name or getattr(obj, "__name__", "") or type(obj).__name__) or kind
    held = get_plugins().registry(kind)
    if base in held and held.entry(base).distribution != IN_PROCESS:
        base = f"user_{base}"
    name, n = base, 1
    while name in used and used[name] is not obj:  # two objects of one call (proxy and target lambdas)
        n += 1
        name = f"{base}-{n}"
    return name


A = TypeVar("A")


def adopt(args: A, kinds: Mapping[str, str]) -> A:
    """``args`` (a loop's settings) with every object in a name field (``kinds``: field → kind,
    :data:`svpkit.api.args.OBJECT_FIELDS`) registered in this process and replaced by its name; a
    module factory reads the modality of the call's data set."""
    names: dict[str, object] = {}
    used: dict[tuple[str, str], object] = {}
    modalities: tuple[str, ...] = MODALITIES
    for f in fields(args):  # type: ignore[arg-type]  # the data set comes first
        value = getattr(args, f.name)
        kind = kinds.get(f.name)
        if kind is None or value is None:
            continue
        if not isinstance(value, str):
            name = _named(kind, value, used, modalities)
            used[(kind, name)] = value
            names[f.name] = value = name
        if kind == "dataset" and value in get_plugins().datasets:
            modality = get_plugins().datasets.get(value).modality
            modalities = (modality,) if modality in MODALITIES else MODALITIES
    return replace(args, **names) if names else args  # type: ignore[type-var]


def dataset_name(data: object) -> str:
    """The in-process name of a data object (``data-<digest>``), registered on first use."""
    return _named("dataset", data, {}, MODALITIES)


def _named(kind: str, value: object, used: Mapping[tuple[str, str], object], modalities: tuple[str, ...]) -> str:
    """``value`` registered under its automatic name (:func:`_auto_name`; data: ``data-<digest>``)."""
    if kind == "dataset" and not isinstance(value, DatasetSpec):
        if not is_data_object(value):
            raise DataError(f"svpkit cannot read a {type(value).__name__} as a data set; give a name or {WHAT}")
        data = dataset_from(value)
        name = f"data-{data.digest[:8]}"
        register(name, data, kind=kind)
        _ORIGINS[(kind, name)] = Origin(kind, kind_of(value))
        return name
    name = _auto_name(kind, value, {n: o for (k, n), o in used.items() if k == kind})
    how = {"modalities": modalities} if kind == "model" and not isinstance(value, ModelSpec) else {}
    return register(name, value, kind=kind, **how)


def origin(kind: str, name: str) -> Origin | None:
    """What object the in-process ``name`` stands for (None: a plugin's name)."""
    return _ORIGINS.get((kind, name))


# -- before and after a run --------------------------------------------------------------------
def check_run(data: Dataset, models: Mapping[str, ModelSpec | None], selector: SelectorSpec | None) -> dict[str, str]:
    """Each factory's module built and run on two examples of ``data`` (``models``: role → spec),
    the scoring function tried on a small probability matrix (a ConfigError, before any run
    exists, when they fail); the tags that record what the objects were."""
    tags: dict[str, str] = {}
    found = origin("dataset", data.name)
    if found is not None:
        tags |= {Tag.DATASET_OBJECT: found.what, Tag.DATASET_SHAPE: shape_text(data)}
    for role, spec in models.items():
        found = None if spec is None else origin("model", spec.name)
        if spec is not None and found is not None and spec.build is not None:
            module = _tried(spec, data, role, found.obj)
            count = sum(p.numel() for p in module.parameters())
            class_tag, count_tag = MODEL_TAGS[role]
            tags |= {class_tag: qualname(module), count_tag: str(count)}
    found = None if selector is None else origin("selector", selector.name)
    if found is not None and found.obj is not None:
        probs = torch.softmax(torch.randn(3, data.num_classes, generator=torch.Generator().manual_seed(0)), dim=1)
        try:
            checked_scores(found.obj, probs)  # type: ignore[arg-type]
        except DataError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"selector {found.what} fails on probabilities of shape (3, {data.num_classes}): "
                f"{type(exc).__name__}: {exc}"
            ) from None
        tags[Tag.SELECTOR_FUNCTION] = found.what
    return tags


def _tried(spec: ModelSpec, data: Dataset, role: str, encode: object = None) -> torch.nn.Module:
    """``spec``'s module for ``data``, checked on a batch of two (zero, or two encoded texts) examples."""
    assert spec.build is not None
    module = spec.build(data.num_classes, data.input_shape)
    shape = data.input_shape
    if data.modality == "text":
        if encode is None:  # a ModelSpec's own encoding: its learner reads the texts
            return module
        x = encoded(encode, data.train.x[:2])  # type: ignore[arg-type]
    else:
        x = torch.zeros((2, shape[-1], *shape[:-1]) if data.modality == "image" else (2, *shape))
    batch = tuple(x.shape)
    try:
        with torch.no_grad():
            out = module.eval()(x)
    except Exception as exc:
        raise ConfigError(
            f"--{role} {spec.name!r} ({qualname(module)}) fails on a batch of shape {batch} of {data.name!r}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, data.num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"--{role} {spec.name!r} ({qualname(module)}) gives {got} for a batch of 2, not (2, {data.num_classes}): "
            f"one logit per class of {data.name!r}"
        )
    return module


def check_resume(
    run_id: str, given: Mapping[str, object], recorded: Mapping[str, object], kinds: Mapping[str, str]
) -> None:
    """A resumed run needs the objects it was made with: the same data (same digest) and the same
    in-process model and selector names (a ConfigError or DataError naming what differs);
    ``kinds``: the name fields and their kinds."""
    registries = get_plugins()
    for field, kind in kinds.items():
        was, now = recorded.get(field), given.get(field)
        if was is None or was == now or not isinstance(was, str):
            continue
        if kind == "dataset" and was.startswith("data-") and str(now).startswith("data-"):
            raise DataError(
                f"run {run_id} was made on data with digest {was[5:]}…, the given data's is {str(now)[5:]}…; "
                "resume needs the same data"
            )
        if was not in registries.registry(kind):
            raise ConfigError(
                f"run {run_id} was made with the {kind} {was!r}, which this process does not know; give the same "
                f"object ({field}=...) or svpkit.register it to resume"
            )
        if isinstance(now, str) and origin(kind, now) is not None:
            raise ConfigError(f"run {run_id} was made with {field} {was!r}, not {now!r}; resume needs the same objects")


def check_digest(run_id: str, state: Mapping[str, object], data: Dataset) -> None:
    """The data of a resumed run has the digest its saved state records (states before it: not checked)."""
    recorded = state.get(STATE_DIGEST)
    if recorded is not None and recorded != data.digest:
        raise DataError(
            f"run {run_id} was made on data with digest {recorded}, the given data's is {data.digest}; "
            "resume needs the same data"
        )
