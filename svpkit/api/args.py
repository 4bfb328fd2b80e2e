"""The arguments of the loops as the command line gives them, and their conversion from Python values.

Every way of starting a run (the Python API, the command line, presets, MLproject entries) ends in
one of these dataclasses, so a run is validated (:mod:`svpkit.loops.validate`) and described the
same way whatever started it. The text forms are the command line's: ``"0.1,0.2"`` budgets,
``"true"`` switches, ``"dim=50"`` model options; 0 counts mean "not given" (the MLproject's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Optional, TypeVar, Union

from svpkit.contract import format_options
from svpkit.errors import SvpkitError

Size = Union[float, int, str]
"""A fraction in (0, 1], a count, or their text."""
Switch = Union[bool, str]
"""True/False, or the command line's ``true``/``false``."""
Options = Union[Mapping[str, Any], str, None]
"""Model or selector options: a mapping, or the command line's ``name=value,...``."""


@dataclass
class LoopArgs:
    """The arguments that define a loop's run (the ones ``resume`` reuses); data first."""

    dataset: str
    data_path: Optional[str]
    train_limit: Optional[int]
    test_limit: Optional[int]
    dataset_options: Optional[str]


@dataclass
class SelectionArgs(LoopArgs):
    """The arguments both selection loops take."""

    selector: str
    proxy: str
    target: str
    seed: int
    device: str
    proxy_epochs: Optional[int]
    target_epochs: Optional[int]
    batch_size: Optional[int]
    agreement: str
    deterministic: str
    proxy_options: Optional[str]
    target_options: Optional[str]
    selector_options: Optional[str]
    class_balance: str


@dataclass
class ActiveLearningArgs(SelectionArgs):
    initial: str
    budgets: str
    train_target: bool
    initial_selector: str = "random"
    stop_when: str = ""


@dataclass
class CoreSetArgs(SelectionArgs):
    keep: Optional[str]
    subset_size: Optional[int]
    seed_size: str
    full_run: Optional[str]
    compare_full: str
    coverage: str
    ccs_cutoff: float
    ccs_bins: int
    score_models: int


@dataclass
class TrainArgs(LoopArgs):
    target: str
    size: str
    seed: int
    device: str
    target_epochs: Optional[int]
    batch_size: Optional[int]
    target_options: Optional[str]


A = TypeVar("A", bound=LoopArgs)


def collect(cls: type[A], values: Mapping[str, Any]) -> A:
    """``cls`` from a command's or a function's arguments (its ``locals()``), in their text forms."""
    return cls(**{f.name: as_text(f.name, values[f.name]) for f in fields(cls)})


def as_text(name: str, value: Any) -> Any:
    """A Python value of argument ``name`` as the command line writes it (text stays as it is)."""
    if isinstance(value, bool) and name != "train_target":
        return str(value).lower()
    if name.endswith("_options") and isinstance(value, Mapping):
        return format_options(value)
    if name == "budgets" and isinstance(value, Sequence) and not isinstance(value, str):
        return ",".join(str(v) for v in value)
    if name in ("initial", "size", "seed_size", "keep") and isinstance(value, (int, float)):
        return str(value)
    return value


def opt_int(value: Optional[int]) -> Optional[int]:
    """A count where 0 (the MLproject's "not given") means not given.

    The loops' validation pass (:mod:`svpkit.loops.validate`) rejects negative counts first.
    """
    return None if value is None or value <= 0 else value


def parse_deterministic(value: str, device: str) -> bool:
    """``deterministic``: on a CPU run, also pin the portable CPU numerics now, before torch first runs
    (:func:`svpkit.runtime.pin_portable_numerics`; docs/reliability.md)."""
    deterministic = parse_bool(value, "deterministic")
    if deterministic:
        from svpkit.runtime import pin_portable_numerics, resolve_device

        if resolve_device(device).type == "cpu":
            pin_portable_numerics()
    return deterministic


def parse_bool(value: str, what: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SvpkitError(f"{what} must be true or false, got {value!r}")
