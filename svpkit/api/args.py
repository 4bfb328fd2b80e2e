"""The settings objects of the loops: one declaration per setting (:func:`svpkit.api.declare.setting`).

Every way of starting a run (the Python API, the command line, presets, MLproject entries) ends in
one of these dataclasses, so a run is validated (:mod:`svpkit.loops.validate`) and described the
same way whatever started it. A field holds a Python value (``[0.1, 0.2]``, ``True``, ``{"dim": 50}``)
or the command line's text (``"0.1,0.2"``, ``"true"``, ``"dim=50"``); the validation pass parses
each once. 0 counts mean "not given" (the MLproject's).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Optional, TypeVar, Union

from svpkit.api.declare import setting
from svpkit.errors import ConfigError

Size = Union[float, int, str]
"""A fraction in (0, 1], a count, or their text."""
Switch = Union[bool, str]
"""True/False, or the command line's ``true``/``false``."""
Options = Union[Mapping[str, object], str, None]
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

    dataset: str = setting("digits", "Data set name (svpkit datasets list).")
    data_path: Optional[str] = setting(None, "Where the data set's files are.")
    train_limit: Optional[int] = setting(None, "Use only the first N training examples (0: all).")
    test_limit: Optional[int] = setting(None, "Use a stratified sample of N test examples (0: all).")
    dataset_options: Options = setting(None, "Options of the data set, e.g. 'size=64' (svpkit datasets options NAME).")
    backbone: Optional[str] = setting(
        None, "Pretrained backbone (svpkit backbones list): models and selectors see its stored embeddings."
    )
    backbone_options: Options = setting(
        None, "Options of the backbone, e.g. 'size=96,dtype=float32' (docs/pretrained.md)."
    )


@dataclass
class RunArgs(LoopArgs):
    """What every run of a model takes beside the data: its seed, device, batch size and determinism."""

    seed: int = setting(0, "Seed of every random choice of the run, 0 to 4294967295.")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N.")
    batch_size: Optional[int] = setting(None, "Override the models' batch size (0: each model's own).")
    deterministic: Switch = setting(False, "true: PyTorch's deterministic algorithms (GPU reproducibility).")


_SELECTOR_AL = (
    "Selector name (svpkit selectors list); auto: MaxHerding (on the standardised inputs, or the proxy's "
    "features where the pool streams or is text) while few labels per class exist and the targets still "
    "change, then BADGE (docs/algorithms.md)."
)
_TARGET_EPOCHS = "Train the target for this many epochs (0: the model's default)."
_TARGET_OPTIONS = "Options of the target model, e.g. 'max_length=256' (svpkit models options NAME)."
_PROXY_EPOCHS = "Train the proxy for this many epochs, schedule scaled (0: the model's default)."
_PROXY_OPTIONS = "Options of the selector model, e.g. 'dim=50,word_ngrams=1' (svpkit models options NAME)."


@dataclass
class SelectionArgs(RunArgs):
    """The arguments both selection loops take."""

    selector: str = setting("auto", _SELECTOR_AL)
    proxy: str = setting("digits_mlp", "Selector model: the proxy (or the target for a baseline).")
    target: str = setting("digits_cnn", "Target model, trained at every budget level.")
    proxy_epochs: Optional[int] = setting(None, _PROXY_EPOCHS)
    target_epochs: Optional[int] = setting(None, _TARGET_EPOCHS)
    agreement: str = setting(
        "auto",
        "Proxy agreement with the target (agreement/* metrics): auto (on when the target trains on the "
        "proxy's labeled set), off, scores (no second k-center selection), full.",
    )
    proxy_options: Options = setting(None, _PROXY_OPTIONS)
    target_options: Options = setting(None, _TARGET_OPTIONS)
    selector_options: Options = setting(
        None, "Options of the selector, e.g. 'mc_samples=20,mc_dropout=0.5' (svpkit selectors list)."
    )
    class_balance: Switch = setting(
        False, "true: keep the class proportions (labeled set by predicted class; core-set: training set)."
    )


@dataclass
class ActiveLearningArgs(SelectionArgs):
    """``svpkit active-learning``'s settings: also the initial set, the budget levels, the target
    at every level, the initial set's selector and when to stop."""

    initial: Size = setting("0.01", "Initial labeled set: fraction in (0,1] or count.")
    budgets: Sizes = setting("0.1,0.2,0.3,0.4,0.5", "Cumulative labeled sizes: fractions or counts.")
    train_target: bool = setting(True, "Train and evaluate the target at every budget level.")
    initial_selector: str = setting(
        "auto",
        "Who picks the initial set: auto (the selector's own cold start where it has one and the inputs are in "
        "memory, else random), random, or a cold-start selector (maxherding, typiclust, probcover).",
    )
    stop_when: str = setting("", "End early when a stopping criterion holds: kappa:0.99[:3] or uncertainty:0.05[:1].")
    eval_sample: int = setting(
        10_000, "Test examples (stratified, fixed) the selector model's error is measured on; 0: all."
    )


@dataclass
class CoreSetArgs(SelectionArgs):
    """``svpkit core-set``'s settings: also the subset's size and spread and the full-data reference."""

    selector: str = setting("forgetting_events", "Selector that ranks the training set.")
    proxy: str = setting("digits_mlp", "Model trained on all data to rank it (the target for a baseline).")
    target: str = setting("digits_cnn", "Model trained from scratch on the kept subset.")
    keep: Optional[Size] = setting(None, "Fraction of the training set to keep, in (0,1] (default 0.5).")
    subset_size: Optional[int] = setting(None, "Number of examples to keep (instead of --keep).")
    seed_size: Size = setting("1000", "k-center's random seed points: count or fraction (count toward the subset).")
    full_run: Optional[str] = setting(None, "Run id of a train run of the target on all data (speed-up reference).")
    compare_full: Switch = setting(
        False, "true: train the target on all data in this run when no reference run exists."
    )
    coverage: str = setting("none", "ccs: coverage-centric sampling of the subset over score strata (none: the top).")
    ccs_cutoff: float = setting(0.0, "CCS: drop the hardest fraction first, in [0, 1).")
    ccs_bins: int = setting(50, "CCS: equal-width score strata to sample evenly from.")
    score_models: int = setting(1, "Average the ranking scores of N proxies trained from different seeds.")


@dataclass
class TrainArgs(RunArgs):
    """``svpkit train``'s settings: the target on all (or a seeded random part) of the data."""

    target: str = setting("digits_cnn", "Model to train.")
    size: Size = setting("1.0", "Training examples: fraction in (0,1] or count (a seeded random subset); 1.0 = all.")
    target_epochs: Optional[int] = setting(None, _TARGET_EPOCHS)
    target_options: Options = setting(None, _TARGET_OPTIONS)


A = TypeVar("A", bound=LoopArgs)
F = TypeVar("F", bound=Callable[..., Any])


def args_of(cls: type[A], values: Mapping[str, Any]) -> A:
    """``cls`` from a command's parsed parameters (a preset's run in this process: the values as
    the command line gives them; other parameters are left out)."""
    return cls(**{f.name: values[f.name] for f in fields(cls)})


def settle(cls: type[A], settings: Optional[A], given: Mapping[str, Any]) -> A:
    """The settings of an API call: ``settings`` (or the defaults) with the ``given`` keyword
    arguments over them, as given (the validation pass parses each once); an unknown name is a
    ConfigError (did-you-mean)."""
    known = {f.name for f in fields(cls)}
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown setting {name!r} of {cls.__name__}{hint}")
    base = settings if settings is not None else cls()
    if not isinstance(base, cls):
        raise ConfigError(f"settings must be a {cls.__name__}, got {type(base).__name__}")
    args = replace(base, **given)
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


def recorded(args: LoopArgs) -> dict[str, object]:
    """The settings as a run's saved states record them (``resume`` and labeling projects read them
    back): values of text options in the command line's text (``[40, 60]`` → ``"40,60"``)."""
    from svpkit.api.declare import declared, text_of

    text = {row.name for row in declared(type(args)) if row.kind is str}
    values = {f.name: getattr(args, f.name) for f in fields(args)}
    return {k: text_of(v) if k in text and v is not None and not isinstance(v, str) else v for k, v in values.items()}


def opt_int(value: Optional[int]) -> Optional[int]:
    """A count where 0 (the MLproject's "not given") means not given.

    The loops' validation pass (:mod:`svpkit.loops.validate`) rejects negative counts first.
    """
    return None if value is None or value <= 0 else value
