"""Options shared by several commands, declared once, and the parsing of their text values.

Each alias carries the option's declaration and help; the command gives the default
(``dataset: Dataset = "digits"``). Options that only one command takes are declared there.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from svpkit.errors import SvpkitError

# -- data --------------------------------------------------------------------------------------
Dataset = Annotated[str, typer.Option(help="Data set name (svpkit datasets list).")]
DataPath = Annotated[Optional[str], typer.Option(help="Where the data set's files are.")]
TrainLimit = Annotated[Optional[int], typer.Option(help="Use only the first N training examples.")]
TestLimit = Annotated[Optional[int], typer.Option(help="Use a stratified sample of N test examples.")]

# -- training ----------------------------------------------------------------------------------
Seed = Annotated[int, typer.Option()]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")]
ProxyEpochs = Annotated[Optional[int], typer.Option(help="Train the proxy for this many epochs (schedule scaled).")]
TargetEpochs = Annotated[Optional[int], typer.Option(help="Train the target for this many epochs.")]
BatchSize = Annotated[Optional[int], typer.Option(help="Override the models' batch size.")]
ProxyOptions = Annotated[
    Optional[str],
    typer.Option(help="Options of the selector model, e.g. 'dim=50,word_ngrams=1' (svpkit models options NAME)."),
]
TargetOptions = Annotated[
    Optional[str],
    typer.Option(help="Options of the target model, e.g. 'max_length=256' (svpkit models options NAME)."),
]
Deterministic = Annotated[str, typer.Option(help="true: PyTorch's deterministic algorithms (GPU reproducibility).")]

# -- the run -----------------------------------------------------------------------------------
Experiment = Annotated[Optional[str], typer.Option(help="MLflow experiment name (default 'svpkit').")]
RunName = Annotated[Optional[str], typer.Option()]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]

# -- listings ----------------------------------------------------------------------------------
Json = Annotated[bool, typer.Option("--json")]
Pattern = Annotated[Optional[str], typer.Argument()]


def opt_int(value: Optional[int]) -> Optional[int]:
    """A count option where 0 (the MLproject's "not given") or less means not given."""
    return None if value is None or value <= 0 else value


def parse_bool(value: str, what: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SvpkitError(f"{what} must be true or false, got {value!r}")


def parse_fraction(value: Optional[str], what: str) -> Optional[float]:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise SvpkitError(f"{what} {value!r} is not a number") from None


def one_size(value: str, what: str) -> float | int:
    """One size (a fraction in (0, 1] or a count), as ``parse_sizes`` reads it."""
    from svpkit.loops.budgets import parse_sizes

    sizes = parse_sizes(value, what)
    if len(sizes) != 1:
        raise SvpkitError(f"{what} must be one size, got {value!r}")
    return sizes[0]
