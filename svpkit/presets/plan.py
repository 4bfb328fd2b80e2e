"""Reading a preset: TOML → the planned runs, each checked against its loop command's options.

A preset names an experiment, the loop, defaults shared by all runs, and ``[[runs]]`` tables::

    [preset]
    experiment = "digits-quick"        # MLflow experiment the runs go to
    loop = "active_learning"           # or "core_set"; a [[runs]] table may override it
    description = "..."

    [defaults]                         # options of `svpkit active-learning` / `svpkit core-set`
    dataset = "digits"
    budgets = [0.1, 0.2, 0.3]          # budgets: a list joined with commas (not an axis)
    seed = [0, 1]                      # any other list is an axis: one run per value
    target_options = {max_length = 256}  # model options: a table (a list of tables is an axis)

    [[runs]]
    selector = ["least_confidence", "greedy_k_center"]
    proxy = "digits_cnn"

Keys are the loop command's option names (``data_path``, ``proxy_epochs``, ...), checked against
the command, so a typo is an error before anything runs. Relative ``data_path`` values are looked
up against the working directory, then the repository (the preset's parent folder) and the preset's
own folder. The CLI hands over what is needed of its commands as :class:`LoopCommands`.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svpkit.contract import RUN_LOOPS, Tag, format_options, model_label
from svpkit.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

LOOP_COMMANDS = {name: loop.command for name, loop in RUN_LOOPS.items()}
"""Loop → its command (the contract's :data:`~svpkit.contract.RUN_LOOPS`)."""
# Options the preset machinery sets itself.
_RESERVED = {"experiment", "run_name", "quiet", "help"}
# List-valued options that are one value (joined with commas), not an axis.
_JOINED = {"budgets"}
# Model options: a table (``proxy_options = {dim = 50}``) is one value; a list of tables an axis.
_OPTION_TABLES = {"proxy_options", "target_options", "dataset_options", "backbone_options"}
_ALIASES = {"seeds": "seed"}
PRESET_TAG = Tag.PRESET
KEY_TAG = Tag.PRESET_KEY


class PresetError(ConfigError):
    """A preset file that cannot be read or expanded."""


class RejectedArguments(PresetError):
    """A loop command rejected a planned run's arguments before it ran (e.g. a value of the wrong type)."""


@dataclass(frozen=True)
class CommandOption:
    """One option of a loop command, as a preset writes it on the command line."""

    is_flag: bool
    on: str
    """The option itself (``--train-target``); for a flag, how to switch it on."""
    off: str | None = None
    """How to switch a flag off (``--no-train-target``), if it can be."""


@dataclass(frozen=True)
class LoopCommands:
    """What presets need of the CLI's loop commands."""

    options: Mapping[str, Mapping[str, CommandOption]]
    """Loop (``active_learning``, ...) → the command's option names → how to write them."""
    parse: Callable[[str, list[str]], Mapping[str, object]]
    """``parse(loop, args)``: the loop command's parameters for ``args`` (typed, defaults filled in) without
    running it; raises :class:`RejectedArguments` when the command rejects them."""


@dataclass
class PlannedRun:
    """One run of a preset: the loop, its options as written, and what the command gets."""

    index: int
    loop: str
    name: str
    options: dict[str, object]
    key: str
    args: list[str] = field(default_factory=list)
    done_run_id: str | None = None

    @property
    def command(self) -> str:
        return LOOP_COMMANDS[self.loop]


@dataclass
class Preset:
    path: Path
    name: str
    experiment: str
    description: str
    runs: list[PlannedRun]


def load_preset(
    path: str | Path, commands: LoopCommands, experiment: str | None = None, check_options: bool = True
) -> Preset:
    """Read and expand a preset file (``check_options``: validate keys against the loop commands)."""
    file = Path(path)
    doc = _read(file, path)
    head = doc.get("preset", {})
    name = str(head.get("name") or file.stem)
    default_loop = str(head.get("loop", "active_learning"))
    defaults = _normalise(doc.get("defaults", {}), file, "defaults")
    tables = doc.get("runs") or []
    if not isinstance(tables, list) or not tables:
        raise PresetError(f"preset {file}: no [[runs]] tables")
    planned: list[PlannedRun] = []
    seen: set[str] = set()
    for t, table in enumerate(tables, start=1):
        if not isinstance(table, dict):
            raise PresetError(f"preset {file}: runs entry {t} is not a table")
        table = dict(table)
        label = str(table.pop("name", ""))
        loop = str(table.pop("loop", default_loop))
        if loop not in LOOP_COMMANDS:
            raise PresetError(f"preset {file}: unknown loop {loop!r} (use {', '.join(LOOP_COMMANDS)})")
        merged = defaults | _normalise(table, file, f"runs[{t}]")
        options = commands.options[loop]
        if check_options:
            _check_options(loop, merged, options, file)
        for run_options in _expand(merged):
            key = run_key(loop, run_options)
            if key in seen:
                continue  # the same run listed twice
            seen.add(key)
            args = _to_args(run_options, options, file)
            planned.append(
                PlannedRun(len(planned) + 1, loop, _run_name(loop, label, run_options), run_options, key, args)
            )
    if len({r.options.get("target") for r in planned}) > 1:
        for r in planned:  # several targets: say which one each run trains
            r.name = f"{r.name}-for-{r.options.get('target')}" if r.loop != "train" else r.name
    experiment = experiment or str(head.get("experiment") or name)
    return Preset(
        path=file, name=name, experiment=experiment, description=str(head.get("description", "")), runs=planned
    )


def problems(preset: Preset, commands: LoopCommands) -> list[str]:
    """Every problem of every planned run, one line each: the loop commands' own validation pass
    (:mod:`svpkit.loops.validate`) over each run's arguments, before any run exists."""
    from svpkit.loops.validate import problems as run_problems

    lines = []
    for run in preset.runs:
        try:
            found: list[Exception] = [*run_problems(run.loop, commands.parse(run.loop, run.args))]
        except RejectedArguments as exc:
            found = [exc]
        lines += [f"run {run.index} ({run.name}): {problem}" for problem in found]
    return lines


def _read(file: Path, path: str | Path) -> dict[str, Any]:
    if not file.is_file():
        raise PresetError(f"preset {str(path)!r} not found")
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PresetError(f"preset {file}: {exc}") from None
    unknown = set(doc) - {"preset", "defaults", "runs"}
    if unknown:
        raise PresetError(
            f"preset {file}: unknown section(s) {', '.join(sorted(unknown))} (use preset, defaults, runs)"
        )
    return doc


def _normalise(table: Mapping[str, object], file: Path, where: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in table.items():
        key = _ALIASES.get(key, key).replace("-", "_")
        if key in _RESERVED:
            raise PresetError(f"preset {file}: {where}: {key!r} is set by the preset itself")
        if key in _OPTION_TABLES:
            value = [_options_text(v) for v in value] if isinstance(value, list) else _options_text(value)
        elif isinstance(value, dict):
            raise PresetError(f"preset {file}: {where}: {key!r} must be a value or a list, not a table")
        if key in _JOINED and isinstance(value, list):
            value = ",".join(str(v) for v in value)
        out[key] = value
    return out


def _options_text(value: object) -> str:
    """A model-options table as the command line's ``name=value,...`` (strings pass through)."""
    return format_options(value) if isinstance(value, dict) else str(value)


def _expand(options: dict[str, object]) -> Iterator[dict[str, object]]:
    axes = {k: v for k, v in options.items() if isinstance(v, list)}
    for values in itertools.product(*axes.values()):
        run = dict(options)
        run.update(zip(axes, values))
        yield run


def run_key(loop: str, options: Mapping[str, object]) -> str:
    """A stable identity of a run (options as written, so moving the checkout keeps it)."""
    text = json.dumps({"loop": loop, **options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run_name(loop: str, label: str, options: Mapping[str, object]) -> str:
    prefix = RUN_LOOPS[loop].prefix
    parts = [prefix] + ([label] if label else [])
    selector = options.get("selector")
    if selector is not None:
        parts.append(str(selector))
        if selector != "random":
            parts.append(model_label(str(options.get("proxy", "")), str(options.get("proxy_options", ""))))
            if options.get("proxy_epochs") and options.get("proxy_epochs") != options.get("target_epochs"):
                parts.append(f"{options['proxy_epochs']}ep")
    else:
        parts.append(model_label(str(options.get("target", "")), str(options.get("target_options", ""))))
    for size_key in ("keep", "subset_size", "size"):
        if size_key in options:
            parts.append(f"{size_key}{options[size_key]}")
    parts.append(f"s{options.get('seed', 0)}")
    return "-".join(p for p in parts if p)


def _check_options(loop: str, options: Mapping[str, object], known: Mapping[str, CommandOption], file: Path) -> None:
    for key in options:
        if key not in known or key in _RESERVED:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PresetError(f"preset {file}: {LOOP_COMMANDS[loop]} has no option {key!r}{hint}")


def _to_args(options: Mapping[str, object], known: Mapping[str, CommandOption], file: Path) -> list[str]:
    args: list[str] = []
    for key, value in options.items():
        option = known.get(key)
        if option is not None and option.is_flag:
            if value is True:
                args.append(option.on)
            elif value is False and option.off:
                args.append(option.off)
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        if key == "data_path" and value:
            value = resolve_data_path(str(value), file)
        args += ["--" + key.replace("_", "-"), str(value)]
    return args


def resolve_data_path(path: str, preset_file: Path) -> str:
    """A relative path against the working directory, else the repository, else the preset's folder."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return str(p)
    folder = preset_file.resolve().parent
    for base in (Path.cwd(), folder.parent, folder):
        if (base / p).exists():
            return str((base / p).resolve())
    return str((Path.cwd() / p).resolve())
