"""Models from a notebook's module factories (docs/python-api.md#your-own-data-and-model).

:func:`model_spec` makes the :class:`ModelSpec` a plugin would register from a function or class
that builds a fresh ``torch.nn.Module``: it is called with what it asks for (nothing,
``num_classes``, or ``num_classes, input_shape``: the shape of one example, images H×W×C; image
batches arrive N×C×H×W) and trained by the torch learner like any torch model. A text model also
gives ``encode`` (the examples' strings → a float tensor N×D).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from svpkit.data.base import Dataset
from svpkit.data.objects import qualname
from svpkit.errors import ConfigError, DataError
from svpkit.models.base import ModelSpec, TrainConfig

DEFAULT_TRAIN = TrainConfig(epochs=30, batch_size=32, lr=0.05, milestones=(15, 23))
"""How a model from a factory is trained unless ``train=`` says otherwise (the digits models' schedule)."""
MODALITIES: tuple[str, ...] = ("vector", "image")
"""What a factory's module reads unless ``modalities=`` (or, given in a call, the call's data set) says otherwise."""
Encoder = Callable[[list[str]], Any]
"""A text model's encoding: the examples' strings → one row of floats each."""


def _factory_call(factory: Callable[..., Any]) -> Callable[[int, tuple[int, ...]], Any]:
    """How to call ``factory`` with what svpkit knows: ``num_classes`` and ``input_shape``."""
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = {p.name for p in params}
    if names & {"num_classes", "input_shape"}:
        wanted = [n for n in ("num_classes", "input_shape") if n in names]
        return lambda c, s: factory(**{n: v for n, v in zip(("num_classes", "input_shape"), (c, s)) if n in wanted})
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in positional and p.default is p.empty]
    if len(required) > 2:
        raise ConfigError(
            f"model factory {qualname(factory)} takes {len(required)} arguments; svpkit passes at most "
            "(num_classes, input_shape)"
        )
    return lambda c, s: factory(*(c, s)[: len(required)])


def model_spec(
    factory: Callable[..., Any],
    name: str,
    train: TrainConfig | None = None,
    modalities: tuple[str, ...] = ("vector", "image"),
    encode: Encoder | None = None,
) -> ModelSpec:
    """A :class:`ModelSpec` whose ``build`` calls ``factory`` (see the module's doc); ``modalities``:
    the inputs it reads (they also decide the torch learner's CPU precision: bf16 for images);
    ``encode``: for text, the examples' strings → a float tensor N×D, the module's input (the
    factory's ``input_shape`` is then ``(1,)``: it sizes the module for what ``encode`` gives)."""
    if isinstance(factory, torch.nn.Module):
        raise ConfigError(
            f"give a function that builds a fresh {type(factory).__name__} (e.g. lambda: {type(factory).__name__}()), "
            "not a module instance: every round trains a new model from scratch"
        )
    call = _factory_call(factory)

    def build(num_classes: int, input_shape: tuple[int, ...]) -> torch.nn.Module:
        module = call(num_classes, input_shape)
        if not isinstance(module, torch.nn.Module):
            raise ConfigError(
                f"model factory {qualname(factory)} returned a {type(module).__name__}, not a torch.nn.Module"
            )
        return module

    encoder = None
    if encode is not None:

        def encoder(data: Dataset, split: str, options: Mapping[str, object]) -> torch.Tensor:
            return encoded(encode, getattr(data, split).x)

        encoder.__qualname__ = f"encode[{qualname(encode)}]"  # the learner caches inputs per encoder
    return ModelSpec(
        name=name,
        family="in-process",
        train=train or DEFAULT_TRAIN,
        build=build,
        modalities=("text",) if encode is not None else tuple(modalities),
        description=f"factory {qualname(factory)}",
        encode=encoder,
    )


def encoded(encode: Encoder, texts: Any) -> torch.Tensor:
    """``encode(texts)`` as a float tensor with one row per text; a DataError for anything else."""
    out = encode(list(texts))
    x = out if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out))
    if x.ndim < 2 or x.shape[0] != len(texts):
        raise DataError(
            f"encoder {qualname(encode)} gave shape {tuple(x.shape)} for {len(texts)} texts, not one row each"
        )
    return x.float()
