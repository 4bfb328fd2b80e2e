"""Options shared by several commands, declared once, and the parsing of their text values.

Each alias carries the option's declaration and help; the command gives the default
(``dataset: Dataset = "digits"``). Options that only one command takes are declared there.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Optional, TypeVar

import typer

from svpkit.api.args import opt_int as opt_int
from svpkit.api.args import parse_bool as parse_bool
from svpkit.api.args import parse_deterministic as parse_deterministic

# -- data --------------------------------------------------------------------------------------
Dataset = Annotated[str, typer.Option(help="Data set name (svpkit datasets list).")]
DataPath = Annotated[Optional[str], typer.Option(help="Where the data set's files are.")]
TrainLimit = Annotated[Optional[int], typer.Option(help="Use only the first N training examples (0: all).")]
TestLimit = Annotated[Optional[int], typer.Option(help="Use a stratified sample of N test examples (0: all).")]
DatasetOptions = Annotated[
    Optional[str],
    typer.Option(help="Options of the data set, e.g. 'size=64' (svpkit datasets options NAME)."),
]
Backbone = Annotated[
    Optional[str],
    typer.Option(help="Pretrained backbone (svpkit backbones list): models and selectors see its stored embeddings."),
]
BackboneOptions = Annotated[
    Optional[str], typer.Option(help="Options of the backbone, e.g. 'size=96,dtype=float32' (docs/pretrained.md).")
]

Selector = Annotated[str, typer.Option(help="Selector name (svpkit selectors list).")]

# -- training ----------------------------------------------------------------------------------
Seed = Annotated[int, typer.Option(help="Seed of every random choice of the run, 0 to 4294967295.")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")]
ProxyEpochs = Annotated[
    Optional[int], typer.Option(help="Train the proxy for this many epochs, schedule scaled (0: the model's default).")
]
TargetEpochs = Annotated[
    Optional[int], typer.Option(help="Train the target for this many epochs (0: the model's default).")
]
BatchSize = Annotated[Optional[int], typer.Option(help="Override the models' batch size (0: each model's own).")]
ProxyOptions = Annotated[
    Optional[str],
    typer.Option(help="Options of the selector model, e.g. 'dim=50,word_ngrams=1' (svpkit models options NAME)."),
]
TargetOptions = Annotated[
    Optional[str],
    typer.Option(help="Options of the target model, e.g. 'max_length=256' (svpkit models options NAME)."),
]
SelectorOptions = Annotated[
    Optional[str],
    typer.Option(help="Options of the selector, e.g. 'mc_samples=20,mc_dropout=0.5' (svpkit selectors list)."),
]
ClassBalance = Annotated[
    str,
    typer.Option(help="true: keep the class proportions (labeled set by predicted class; core-set: training set)."),
]
Coverage = Annotated[
    str, typer.Option(help="ccs: coverage-centric sampling of the subset over score strata (none: the top).")
]
CcsCutoff = Annotated[float, typer.Option(help="CCS: drop the hardest fraction first, in [0, 1).")]
CcsBins = Annotated[int, typer.Option(help="CCS: equal-width score strata to sample evenly from.")]
ScoreModels = Annotated[int, typer.Option(help="Average the ranking scores of N proxies trained from different seeds.")]
Deterministic = Annotated[str, typer.Option(help="true: PyTorch's deterministic algorithms (GPU reproducibility).")]
Agreement = Annotated[
    str,
    typer.Option(
        help="Proxy agreement with the target (agreement/* metrics): auto (on when the target trains on the "
        "proxy's labeled set), off, scores (no second k-center selection), full."
    ),
]

# -- the run -----------------------------------------------------------------------------------
Experiment = Annotated[Optional[str], typer.Option(help="MLflow experiment name (default 'svpkit').")]
RunName = Annotated[Optional[str], typer.Option()]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]

# -- listings ----------------------------------------------------------------------------------
Json = Annotated[bool, typer.Option("--json")]
Pattern = Annotated[Optional[str], typer.Argument()]

F = TypeVar("F", bound=Callable[..., Any])


def _declare(**options: tuple[Any, Any]) -> dict[str, inspect.Parameter]:
    return {
        name: inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=alias, default=default)
        for name, (alias, default) in options.items()
    }


SHARED = _declare(
    dataset=(Dataset, "digits"),
    data_path=(DataPath, None),
    train_limit=(TrainLimit, None),
    test_limit=(TestLimit, None),
    dataset_options=(DatasetOptions, None),
    backbone=(Backbone, None),
    backbone_options=(BackboneOptions, None),
    seed=(Seed, 0),
    device=(Device, "auto"),
    proxy_epochs=(ProxyEpochs, None),
    target_epochs=(TargetEpochs, None),
    batch_size=(BatchSize, None),
    proxy_options=(ProxyOptions, None),
    target_options=(TargetOptions, None),
    selector_options=(SelectorOptions, None),
    class_balance=(ClassBalance, "false"),
    agreement=(Agreement, "auto"),
    deterministic=(Deterministic, "false"),
    experiment=(Experiment, None),
    run_name=(RunName, None),
    quiet=(Quiet, False),
)
"""The options several commands take, with the same help and default: name -> its parameter."""
DATA = ("dataset", "data_path", "train_limit", "test_limit", "dataset_options", "backbone", "backbone_options")
RUN = ("experiment", "run_name", "quiet")
SELECTION = tuple(
    "seed device proxy_epochs target_epochs batch_size proxy_options target_options selector_options class_balance"
    " agreement deterministic".split()
)
"""The options both selection loops (active learning and core-set selection) take."""


def with_shared(before: Sequence[str], after: Sequence[str]) -> Callable[[F], F]:
    """A command taking the :data:`SHARED` options ``before`` and ``after`` its own, in its ``**shared``.

    typer reads the options from the command's ``__signature__``: the shared ones, then the
    command's own parameters, then ``after``.
    """

    def declare(command: F) -> F:
        hints = typing.get_type_hints(command, include_extras=True)
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name])
            for p in inspect.signature(command).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        params = [*(SHARED[n] for n in before), *own, *(SHARED[n] for n in after)]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return command

    return declare
