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
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from svpkit.contract import ACTIVE_LEARNING, CORE_SET, TRAIN
from svpkit.data.base import DATASET_OPTIONS_FLAG, DatasetSpec, resolve_dataset_options
from svpkit.errors import ConfigError, SvpkitError
from svpkit.loops.budgets import check_size, one_size, parse_fraction, parse_sizes
from svpkit.loops.plan import Plan
from svpkit.models.base import ModelSpec
from svpkit.options import parse_options_text
from svpkit.selectors.base import SelectorSpec, resolve_selector_options

if TYPE_CHECKING:
    from svpkit.backbones.base import Backbone
    from svpkit.loops.stopping import StopRule
    from svpkit.plugins import Plugins

T = TypeVar("T")
P = ParamSpec("P")
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
SWITCHES = ("deterministic", "class_balance", "compare_full")
"""Switches: true or false."""
SUGGEST_PROXY = "suggest_proxy"
"""The loop name of ``svpkit suggest-proxy``'s pilot (the runs it logs are not loop runs)."""


def flag(name: str) -> str:
    """The command-line option of a parameter: ``proxy_epochs`` → ``--proxy-epochs``."""
    return "--" + name.replace("_", "-")


class _Problems:
    """Runs checks and keeps what each raised, so that one pass finds every problem."""

    def __init__(self) -> None:
        self.found: list[SvpkitError] = []

    def attempt(self, check: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        try:
            return check(*args, **kwargs)
        except SvpkitError as exc:
            self.found.append(exc)
            return None


def resolve(loop: str, values: Mapping[str, Any]) -> Plan:
    """Every problem of a ``loop`` run (``active_learning``, ``core_set``, ``train``, ``labeling``,
    ``suggest_proxy``) with these settings, keyed by the command's parameter names (``proxy_epochs``,
    ``data_path``, ...; text as the command line gives it, or Python values), and the plan: each
    value looked up or parsed once. A setting the command does not take is not in ``values``."""
    from svpkit.plugins import get_plugins

    registry = get_plugins()
    p = _Problems()
    got: dict[str, Any] = {"data_path": values.get("data_path") or None, "seed": values["seed"]}
    got["dataset"] = dataset = p.attempt(_dataset_spec, registry, values)
    if dataset is not None:
        options = p.attempt(_option_values, values.get("dataset_options"), DATASET_OPTIONS_FLAG)
        got["dataset_options"] = p.attempt(resolve_dataset_options, dataset, options) or {}
    if values.get("backbone"):
        got["backbone"] = p.attempt(_backbone, registry, dataset, values)
    for role, kind in (("selector", registry.selectors), ("proxy", registry.models), ("target", registry.models)):
        if role in values:
            got[role] = p.attempt(kind.get, values[role])
    got |= _sizes(p, loop, values)
    p.attempt(_seed, values["seed"])
    for name, zero in COUNTS.items():
        if values.get(name) is not None:
            p.attempt(_count, name, values[name], zero)
            got[name] = values[name] if name == "eval_sample" or values[name] > 0 else None
    p.attempt(_device, values["device"])
    got["device"], got["agreement"] = values["device"], values.get("agreement", "auto")
    for name in SWITCHES:
        if name in values:
            got[name] = p.attempt(parse_switch, values[name], name) or False
    for role in ("proxy", "target", "selector"):
        if got.get(role) is not None and f"{role}_options" in values:
            got[f"{role}_options"] = p.attempt(_typed_options, role, got[role], values[f"{role}_options"]) or {}
    if loop == ACTIVE_LEARNING.name:
        if got["selector"] is not None:
            p.attempt(_fits_active_learning, got["selector"])
        got["initial_selector"] = p.attempt(_initial_selector, registry, values.get("initial_selector", "random"))
        got["stop_rule"] = p.attempt(_stop_when, values.get("stop_when"), values.get("train_target", True))
    got.pop("eval_sample", None)
    plan = Plan(**got, problems=tuple(p.found))
    if loop in (ACTIVE_LEARNING.name, CORE_SET.name, TRAIN.name):
        p.attempt(_check_reads, plan, values)
    return replace(plan, problems=tuple(p.found))


def _check_reads(got: Plan, values: Mapping[str, object]) -> None:
    """Each model that is trained reads the data set's inputs (with a backbone: its vectors)."""
    if got.dataset is None or (values.get("backbone") and got.backbone is None):
        return
    trained = [("target", got.target)] if values.get("train_target", True) else []
    if got.selector is not None and got.selector.needs:
        trained.insert(0, ("proxy", got.proxy))
    for role, spec in trained:
        if spec is not None:
            _reads(role, spec, got.dataset, "vector" if got.backbone else got.dataset.modality)


def problems(loop: str, values: Mapping[str, object]) -> list[SvpkitError]:
    """Every problem of a ``loop`` run with these arguments (see :func:`resolve`)."""
    return list(resolve(loop, values).problems)


def check(loop: str, values: Mapping[str, object]) -> Plan:
    """What :func:`resolve` found; its first problem is raised (the one a command reports)."""
    got = resolve(loop, values)
    if got.problems:
        raise got.problems[0]
    return got


def require_path(spec: DatasetSpec, path: str | None) -> None:
    if spec.needs_path and not path:
        raise ConfigError(f"data set {spec.name!r} needs --data-path (a directory or file with its data)")


def _dataset_spec(registry: Plugins, values: Mapping[str, Any]) -> DatasetSpec:
    spec: DatasetSpec = registry.datasets.get(values["dataset"])
    require_path(spec, values.get("data_path"))
    return spec


def _sizes(p: _Problems, loop: str, values: Mapping[str, Any]) -> dict[str, object]:
    """The sizes of the loop, parsed, as far as they can be checked without the data set."""
    if loop == ACTIVE_LEARNING.name:
        initial = p.attempt(one_size, values["initial"], "initial")
        budgets = p.attempt(parse_sizes, values["budgets"]) or []
        for size, what in [(initial, "initial"), *((b, "budget") for b in budgets)]:
            if size is not None:
                p.attempt(check_size, size, what)
        return {"initial": initial, "budgets": tuple(budgets)}
    if loop in (TRAIN.name, SUGGEST_PROXY):
        name = "size" if loop == TRAIN.name else "pilot"
        size = p.attempt(one_size, values[name], name)
        if size is not None and loop == TRAIN.name:
            p.attempt(check_size, size, "size")
        return {name: size}
    if loop == CORE_SET.name:  # the seed size's range depends on the selector and the data
        return {
            "keep": p.attempt(_keep, values.get("keep")),
            "seed_size": p.attempt(one_size, values["seed_size"], "seed size"),
        }
    return {}


def _keep(value: str | float | None) -> float | None:
    keep = parse_fraction(value, "keep")
    if keep is not None and not 0 < keep <= 1:
        raise ConfigError(f"keep {keep:g} is outside (0, 1] (the fraction of the training set to keep)")
    return keep


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


def _option_values(given: Mapping[str, object] | str | None, flag: str) -> Mapping[str, object]:
    """Options as a mapping (the Python API's) or the command line's ``name=value,...``, parsed once."""
    return dict(given) if isinstance(given, Mapping) else parse_options_text(given or None, flag)


def _typed_options(role: str, spec: Any, given: Mapping[str, object] | str | None) -> dict[str, Any]:
    """``--proxy-options``, ``--target-options`` or ``--selector-options``, typed against ``spec``."""
    from svpkit.learners.options import resolve_model_options

    flag = f"--{role}-options"
    values = _option_values(given, flag)
    if role == "selector":
        return resolve_selector_options(spec, values, flag)
    return resolve_model_options(spec, values, flag)


def parse_switch(value: bool | str, name: str) -> bool:
    """A switch: True/False, or the command line's true/false (also 1/0, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SvpkitError(f"{name.replace('_', '-')} must be true or false, got {value!r}")


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


def _initial_selector(registry: Plugins, name: str) -> SelectorSpec | str | None:
    """The initial set's selector, checked to pick without a model (None: ``random``; ``auto``:
    settled once the data set is loaded, svpkit.loops.cold_start.settle_initial_selector)."""
    from svpkit.loops.cold_start import AUTO, check_initial_selector

    if name == "random":
        return None
    if name == AUTO:
        return AUTO
    spec = registry.selectors.get(name)
    check_initial_selector(spec)
    return spec


def _stop_when(text: str | None, train_target: bool) -> StopRule | None:
    from svpkit.loops.stopping import StopRule

    rule = StopRule.parse(text)
    if rule is not None and not train_target:
        raise ConfigError("--stop-when reads the target trained at every level; it needs --train-target")
    return rule


def _reads(role: str, spec: ModelSpec, data: DatasetSpec, modality: str) -> None:
    if not set(modality.split("/")) & set(spec.modalities):
        seen = "seen through --backbone is vector" if modality != data.modality else f"is {modality}"
        raise ConfigError(
            f"--{role}: model {spec.name!r} takes {'/'.join(spec.modalities)} inputs but data set {data.name!r} {seen}"
        )


def _backbone(registry: Plugins, dataset: DatasetSpec | None, values: Mapping[str, Any]) -> Backbone:
    """The backbone exists, its options are known, its weights file is there and matches, it reads the data set."""
    from svpkit.backbones.base import check_reads, resolve_backbone

    spec = registry.backbones.get(values["backbone"])
    if dataset is not None:
        check_reads(spec, dataset.name, dataset.modality)
    return resolve_backbone(spec, values.get("backbone_options"))
