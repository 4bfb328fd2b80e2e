"""The arguments of the loops as the command line gives them, and their conversion from Python values.

Every way of starting a run (the Python API, the command line, presets, MLproject entries) ends in
one of these dataclasses, so a run is validated (:mod:`svpkit.loops.validate`) and described the
same way whatever started it. The text forms are the command line's: ``"0.1,0.2"`` budgets,
``"true"`` switches, ``"dim=50"`` model options; 0 counts mean "not given" (the MLproject's).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Optional, TypeVar, Union

from svpkit.contract import format_options
from svpkit.errors import ConfigError, SvpkitError

Size = Union[float, int, str]
"""A fraction in (0, 1], a count, or their text."""
Switch = Union[bool, str]
"""True/False, or the command line's ``true``/``false``."""
Options = Union[Mapping[str, Any], str, None]
"""Model or selector options: a mapping, or the command line's ``name=value,...``."""


Sizes = Union[str, Sequence[Union[float, int]]]
"""Budgets: a list of fractions or counts, or their text (``"0.1,0.2"``)."""
OBJECT_FIELDS = {
    "dataset": "dataset",
    "proxy": "model",
    "target": "model",
    "selector": "selector",
    "initial_selector": "selector",
}
"""The name arguments that also take objects (:mod:`svpkit.api.objects`), and the kind of each."""
OBJECT_HINTS = {
    "dataset": "str | arrays (x, y[, x_test, y_test]) | torch Dataset | datasets.Dataset | DatasetSpec",
    "model": "str | Callable[..., torch.nn.Module] | ModelSpec",
    "selector": "str | Callable[[probs], scores] | SelectorSpec",
}
"""What the signature of an API function shows for them."""


@dataclass
class LoopArgs:
    """The arguments that define a loop's run (the ones ``resume`` reuses); data first."""

    dataset: str = "digits"
    data_path: Optional[str] = None
    train_limit: Optional[int] = None
    test_limit: Optional[int] = None
    dataset_options: Options = None
    backbone: Optional[str] = None
    """A pretrained backbone (svpkit backbones list): the loop sees the embedded pool (docs/pretrained.md)."""
    backbone_options: Options = None


@dataclass
class RunArgs(LoopArgs):
    """What every run of a model takes beside the data: its seed, device, batch size and determinism."""

    seed: int = 0
    device: str = "auto"
    batch_size: Optional[int] = None
    deterministic: Switch = False


@dataclass
class SelectionArgs(RunArgs):
    """The arguments both selection loops take."""

    selector: str = "least_confidence"
    proxy: str = "digits_mlp"
    target: str = "digits_cnn"
    proxy_epochs: Optional[int] = None
    target_epochs: Optional[int] = None
    agreement: str = "auto"
    proxy_options: Options = None
    target_options: Options = None
    selector_options: Options = None
    class_balance: Switch = False


@dataclass
class ActiveLearningArgs(SelectionArgs):
    """``svpkit active-learning``'s settings: also the initial set, the budget levels, the target
    at every level, the initial set's selector and when to stop."""

    initial: Size = "0.01"
    budgets: Sizes = "0.1,0.2,0.3,0.4,0.5"
    train_target: bool = True
    initial_selector: str = "random"
    stop_when: str = ""
    eval_sample: int = 10_000


@dataclass
class CoreSetArgs(SelectionArgs):
    """``svpkit core-set``'s settings: also the subset's size and spread and the full-data reference."""

    selector: str = "forgetting_events"
    keep: Optional[Size] = None
    subset_size: Optional[int] = None
    seed_size: Size = "1000"
    full_run: Optional[str] = None
    compare_full: Switch = False
    coverage: str = "none"
    ccs_cutoff: float = 0.0
    ccs_bins: int = 50
    score_models: int = 1


@dataclass
class TrainArgs(RunArgs):
    """``svpkit train``'s settings: the target on all (or a seeded random part) of the data."""

    target: str = "digits_cnn"
    size: Size = "1.0"
    target_epochs: Optional[int] = None
    target_options: Options = None


A = TypeVar("A", bound=LoopArgs)
F = TypeVar("F", bound=Callable[..., Any])


def collect(cls: type[A], values: Mapping[str, Any]) -> A:
    """``cls`` from a command's or a function's arguments (its ``locals()``), in their text forms."""
    return cls(**{f.name: as_text(f.name, values[f.name]) for f in fields(cls)})


def settle(cls: type[A], settings: Optional[A], given: Mapping[str, Any]) -> A:
    """The settings of an API call: ``settings`` (or the defaults) with the ``given`` keyword
    arguments over them, in their text forms; an unknown name is a ConfigError (did-you-mean)."""
    known = {f.name for f in fields(cls)}
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown setting {name!r} of {cls.__name__}{hint}")
    base = settings if settings is not None else cls()
    if not isinstance(base, cls):
        raise ConfigError(f"settings must be a {cls.__name__}, got {type(base).__name__}")
    args = collect(cls, {f.name: getattr(base, f.name) for f in fields(cls)} | dict(given))
    if any(not isinstance(getattr(args, name, ""), (str, type(None))) for name in OBJECT_FIELDS):
        from svpkit.api.objects import adopt  # objects in place of names: registered in this process

        return adopt(args, OBJECT_FIELDS)
    return args


def takes(cls: type[LoopArgs]) -> Callable[[F], F]:
    """Show ``cls``'s fields as the keyword arguments of an API function that takes
    ``(settings=None, /, *, ..., **given)`` (``help()``, IDEs and notebooks read the signature)."""

    def decorate(func: F) -> F:
        own = inspect.signature(func)
        hints = {
            f.name: OBJECT_HINTS[OBJECT_FIELDS[f.name]] if f.name in OBJECT_FIELDS else f.type for f in fields(cls)
        }
        shown = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        shown += [
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=getattr(cls(), f.name), annotation=hints[f.name]
            )
            for f in fields(cls)
        ]
        func.__signature__ = own.replace(parameters=shown)  # type: ignore[attr-defined]
        return func

    return decorate


def as_text(name: str, value: Any) -> Any:
    """A Python value of argument ``name`` as the command line writes it (text stays as it is)."""
    if isinstance(value, bool) and name != "train_target":
        return str(value).lower()
    if name.endswith("_options") and isinstance(value, Mapping):
        return format_options(value)
    if name == "budgets" and isinstance(value, Sequence) and not isinstance(value, str):
        return ",".join(str(v) for v in value)
    if name in ("initial", "size", "seed_size", "keep", "pilot") and isinstance(value, (int, float)):
        return str(value)
    return value


def options_text(value: Options) -> Optional[str]:
    """Options as the command line writes them (``name=value,...``; None: none given)."""
    return format_options(value) if isinstance(value, Mapping) else value


def opt_int(value: Optional[int]) -> Optional[int]:
    """A count where 0 (the MLproject's "not given") means not given.

    The loops' validation pass (:mod:`svpkit.loops.validate`) rejects negative counts first.
    """
    return None if value is None or value <= 0 else value


def parse_deterministic(value: Switch, device: str) -> bool:
    """``deterministic``: on a CPU run, also pin the portable CPU numerics now, before torch first runs
    (:func:`svpkit.runtime.pin_portable_numerics`; docs/reliability.md)."""
    deterministic = parse_bool(value, "deterministic")
    if deterministic:
        from svpkit.runtime import pin_portable_numerics, resolve_device

        if resolve_device(device).type == "cpu":
            pin_portable_numerics()
    return deterministic


def parse_bool(value: Switch, what: str) -> bool:
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SvpkitError(f"{what} must be true or false, got {value!r}")
