"""The loop commands' validation pass: every problem that is known before the data set is loaded.

``svpkit active-learning``, ``core-set`` and ``train`` run it first, before the tracking store is
touched, and stop at its first problem (one ``error:`` line, exit code 2, no run); ``svpkit run
PRESET`` runs it over every planned run before the first one starts and lists every problem.

It checks the names (with a did-you-mean), the counts (``--train-limit``, ``--test-limit``,
``--batch-size``, ``--subset-size``: 0 means "not given"; negative is an error), the epochs (at least
1, or 0: the model's default), the seed (numpy's range), the sizes and size lists (no empty item),
the model options, the device, that each model that is trained reads the data set's inputs (the
``modality`` its :class:`~svpkit.data.base.DatasetSpec` declares; ``"vector/image"`` when the files
decide), and that the selector fits the loop. What needs the data set's size (budgets larger than
the pool, budgets that do not increase) is checked once the data is loaded, still before a run
exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from svpkit.contract import ACTIVE_LEARNING, TRAIN
from svpkit.data.base import DatasetSpec, resolve_dataset_options
from svpkit.errors import ConfigError, SvpkitError
from svpkit.loops.budgets import check_size, one_size, parse_fraction, parse_sizes
from svpkit.models.base import ModelSpec
from svpkit.selectors.base import SelectorSpec, parse_selector_options

if TYPE_CHECKING:
    from svpkit.backbones.base import Backbone

T = TypeVar("T")
SEED_MAX = 2**32 - 1
"""The largest seed (numpy's legacy seeding takes 0 to 2**32 - 1)."""
COUNTS = {
    "train_limit": "all examples",
    "test_limit": "all examples",
    "batch_size": "each model's own",
    "subset_size": "--keep decides",
    "proxy_epochs": "the model's default",
    "target_epochs": "the model's default",
    "eval_sample": "the whole test split",
}
"""Count options and what their 0 (the MLproject's "not given") means."""


def flag(name: str) -> str:
    """The command-line option of a parameter: ``proxy_epochs`` → ``--proxy-epochs``."""
    return "--" + name.replace("_", "-")


class _Problems:
    """Runs checks and keeps what each raised, so that one pass finds every problem."""

    def __init__(self) -> None:
        self.found: list[SvpkitError] = []

    def attempt(self, check: Callable[..., T], *args: Any) -> T | None:
        try:
            return check(*args)
        except SvpkitError as exc:
            self.found.append(exc)
            return None


@dataclass
class Resolved:
    """What the validation pass looked up and parsed: the specs and the typed options (None where a
    problem was found). Loops are built from it, so names are looked up and options parsed once."""

    dataset: DatasetSpec | None = None
    selector: SelectorSpec | None = None
    proxy: ModelSpec | None = None
    target: ModelSpec | None = None
    proxy_options: dict[str, Any] = field(default_factory=dict)
    target_options: dict[str, Any] = field(default_factory=dict)
    selector_options: dict[str, Any] = field(default_factory=dict)
    backbone: Backbone | None = None
    """``--backbone`` resolved, its weights file verified (None: none given, or a problem)."""
    problems: list[SvpkitError] = field(default_factory=list)


def resolve(loop: str, values: Mapping[str, Any]) -> Resolved:
    """Every problem of a ``loop`` run (``active_learning``, ``core_set``, ``train``) with these
    arguments, keyed by the command's parameter names (``proxy_epochs``, ``data_path``, ...), and
    the specs and options it resolved on the way."""
    from svpkit.plugins import get_plugins

    registry = get_plugins()
    p = _Problems()
    got = Resolved(problems=p.found)
    got.dataset = p.attempt(_dataset_spec, registry, values)
    if got.dataset is not None:
        p.attempt(resolve_dataset_options, got.dataset, values.get("dataset_options"))
    if values.get("backbone"):
        got.backbone = p.attempt(_backbone, registry, got.dataset, values)
    if loop != TRAIN.name:
        got.selector = p.attempt(registry.selectors.get, values["selector"])
        got.proxy = p.attempt(registry.models.get, values["proxy"])
    got.target = p.attempt(registry.models.get, values["target"])
    _sizes(p, loop, values)
    p.attempt(_seed, values["seed"])
    for name, zero in COUNTS.items():
        if values.get(name) is not None:
            p.attempt(_count, name, values[name], zero)
    p.attempt(_device, values["device"])
    for role, spec in (("proxy", got.proxy), ("target", got.target)):
        if spec is not None:
            parsed = p.attempt(_model_options, spec, values.get(f"{role}_options"), f"--{role}-options")
            setattr(got, f"{role}_options", parsed or {})
    if got.selector is not None:
        got.selector_options = p.attempt(parse_selector_options, got.selector, values.get("selector_options")) or {}
        if loop == ACTIVE_LEARNING.name:
            p.attempt(_fits_active_learning, got.selector)
    if loop == ACTIVE_LEARNING.name:
        p.attempt(_initial_selector, registry, values.get("initial_selector", "random"))
        p.attempt(_stop_when, values.get("stop_when"), values.get("train_target", True))
    _check_reads(p, got, values)
    return got


def _check_reads(p: _Problems, got: Resolved, values: Mapping[str, Any]) -> None:
    """Each model that is trained reads the data set's inputs (with a backbone: its vectors)."""
    if got.dataset is None or (values.get("backbone") and got.backbone is None):
        return
    trained = [("target", got.target)] if values.get("train_target", True) else []
    if got.selector is not None and got.selector.needs:
        trained.insert(0, ("proxy", got.proxy))
    for role, spec in trained:
        if spec is not None:
            p.attempt(_reads, role, spec, got.dataset, "vector" if got.backbone else got.dataset.modality)


def problems(loop: str, values: Mapping[str, Any]) -> list[SvpkitError]:
    """Every problem of a ``loop`` run with these arguments (see :func:`resolve`)."""
    return resolve(loop, values).problems


def check(loop: str, values: Mapping[str, Any]) -> Resolved:
    """What :func:`resolve` found; its first problem is raised (the one a command reports)."""
    got = resolve(loop, values)
    if got.problems:
        raise got.problems[0]
    return got


def require_path(spec: DatasetSpec, path: str | None) -> None:
    if spec.needs_path and not path:
        raise ConfigError(f"data set {spec.name!r} needs --data-path (a directory or file with its data)")


def _dataset_spec(registry: Any, values: Mapping[str, Any]) -> DatasetSpec:
    spec: DatasetSpec = registry.datasets.get(values["dataset"])
    require_path(spec, values.get("data_path"))
    return spec


def _sizes(p: _Problems, loop: str, values: Mapping[str, Any]) -> None:
    """The sizes of the loop, as far as they can be checked without the data set."""
    if loop == ACTIVE_LEARNING.name:
        initial = p.attempt(one_size, values["initial"], "initial")
        budgets = p.attempt(parse_sizes, values["budgets"]) or []
        for size, what in [(initial, "initial"), *((b, "budget") for b in budgets)]:
            if size is not None:
                p.attempt(check_size, size, what)
    elif loop == TRAIN.name:
        size = p.attempt(one_size, values["size"], "size")
        if size is not None:
            p.attempt(check_size, size, "size")
    else:
        p.attempt(_keep, values.get("keep"))
        p.attempt(one_size, values["seed_size"], "seed size")  # its range depends on the selector and the data


def _keep(value: str | None) -> None:
    keep = parse_fraction(value, "keep")
    if keep is not None and not 0 < keep <= 1:
        raise ConfigError(f"keep {keep:g} is outside (0, 1] (the fraction of the training set to keep)")


def _seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"--seed must be a whole number from 0 to {SEED_MAX} (numpy's seed range), got {seed}")


def _count(name: str, value: int, zero: str) -> None:
    if value < 0:
        raise ConfigError(f"{flag(name)} must be at least 1 (or 0: {zero}), got {value}")


def _device(device: str) -> None:
    """A device name; whether this machine has it is checked where the run runs (a preset may submit elsewhere)."""
    import torch

    try:
        if device != "auto":
            torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {device!r} is not a device (auto, cpu, cuda, cuda:N)") from None


def _model_options(spec: ModelSpec, text: str | None, option: str) -> dict[str, Any]:
    from svpkit.learners.options import parse_model_options

    return parse_model_options(spec, text, option)


def _fits_active_learning(selector: SelectorSpec) -> None:
    if "training_dynamics" in selector.needs:
        raise ConfigError(
            f"selector {selector.name!r} needs the training dynamics of a model trained on the pool, and active "
            "learning trains its selector model on the labeled set only; use it with `svpkit core-set`"
        )
    if "labels" in selector.needs:
        raise ConfigError(
            f"selector {selector.name!r} needs the labels of the examples it scores, and pool examples have no "
            "label until they are picked; use it with `svpkit core-set`"
        )


def _initial_selector(registry: Any, name: str) -> None:
    from svpkit.loops.cold_start import check_initial_selector

    if name != "random":
        check_initial_selector(registry.selectors.get(name))


def _stop_when(text: str | None, train_target: bool) -> None:
    from svpkit.loops.stopping import StopRule

    if StopRule.parse(text) is not None and not train_target:
        raise ConfigError("--stop-when reads the target trained at every level; it needs --train-target")


def _reads(role: str, spec: ModelSpec, data: DatasetSpec, modality: str) -> None:
    if not set(modality.split("/")) & set(spec.modalities):
        seen = "seen through --backbone is vector" if modality != data.modality else f"is {modality}"
        raise ConfigError(
            f"--{role}: model {spec.name!r} takes {'/'.join(spec.modalities)} inputs but data set {data.name!r} {seen}"
        )


def _backbone(registry: Any, dataset: DatasetSpec | None, values: Mapping[str, Any]) -> Backbone:
    """The backbone exists, its options are known, its weights file is there and matches, it reads the data set."""
    from svpkit.backbones.base import check_reads, resolve_backbone

    spec = registry.backbones.get(values["backbone"])
    if dataset is not None:
        check_reads(spec, dataset.name, dataset.modality)
    return resolve_backbone(spec, values.get("backbone_options"))
