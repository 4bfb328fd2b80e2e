"""Experiment presets: a TOML file that expands into runs (``svpkit run projects/X.toml``).

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
own folder. Every run is tagged ``svpkit.preset`` and ``svpkit.preset_key`` (a hash of the run's
options as written); runs whose key already has a FINISHED run in the experiment are skipped, so
an interrupted preset continues where it stopped. The preset ends with ``svpkit compare``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svpkit.errors import ConfigError, SvpkitError
from svpkit.models.options import format_options, model_label

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

LOOP_COMMANDS = {"active_learning": "active-learning", "core_set": "core-set", "train": "train"}
# Options the preset machinery sets itself.
_RESERVED = {"experiment", "run_name", "quiet", "help"}
# List-valued options that are one value (joined with commas), not an axis.
_JOINED = {"budgets"}
# Model options: a table (``proxy_options = {dim = 50}``) is one value; a list of tables an axis.
_OPTION_TABLES = {"proxy_options", "target_options"}
_ALIASES = {"seeds": "seed"}
PRESET_TAG = "svpkit.preset"
KEY_TAG = "svpkit.preset_key"


class PresetError(ConfigError):
    """A preset file that cannot be read or expanded."""


class PresetInterrupted(SvpkitError):
    """SIGINT/SIGTERM during a run: stop the preset (finished runs are kept and skipped next time)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


_INTERRUPT_CODES = {130, 143, -2, -15}


@dataclass
class PlannedRun:
    """One run of a preset: the loop, its options as written, and what the command gets."""

    index: int
    loop: str
    name: str
    options: dict[str, Any]
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


# -- reading and expanding ----------------------------------------------------------------------
def load_preset(path: str | Path, experiment: str | None = None, check_options: bool = True) -> Preset:
    """Read and expand a preset file (``check_options``: validate keys against the loop commands)."""
    file = Path(path)
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
        if check_options:
            _check_options(loop, merged, file)
        for options in _expand(merged):
            key = run_key(loop, options)
            if key in seen:
                continue  # the same run listed twice
            seen.add(key)
            planned.append(
                PlannedRun(
                    index=len(planned) + 1,
                    loop=loop,
                    name=_run_name(loop, label, options),
                    options=options,
                    key=key,
                    args=_to_args(loop, options, file),
                )
            )
    if len({r.options.get("target") for r in planned}) > 1:
        for r in planned:  # several targets: say which one each run trains
            r.name = f"{r.name}-for-{r.options.get('target')}" if r.loop != "train" else r.name
    return Preset(
        path=file,
        name=name,
        experiment=experiment or str(head.get("experiment") or name),
        description=str(head.get("description", "")),
        runs=planned,
    )


def _normalise(table: dict[str, Any], file: Path, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
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


def _options_text(value: Any) -> str:
    """A model-options table as the command line's ``name=value,...`` (strings pass through)."""
    return format_options(value) if isinstance(value, dict) else str(value)


def _expand(options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    axes = [k for k, v in options.items() if isinstance(v, list)]
    for values in itertools.product(*(options[k] for k in axes)):
        run = dict(options)
        run.update(zip(axes, values))
        yield run


def run_key(loop: str, options: dict[str, Any]) -> str:
    """A stable identity of a run (options as written, so moving the checkout keeps it)."""
    text = json.dumps({"loop": loop, **options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run_name(loop: str, label: str, options: dict[str, Any]) -> str:
    prefix = {"active_learning": "al", "core_set": "cs", "train": "train"}[loop]
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


def _command_params(loop: str) -> dict[str, Any]:
    import typer.main

    from svpkit.cli import app

    group = typer.main.get_command(app)
    command = group.commands[LOOP_COMMANDS[loop]]  # type: ignore[attr-defined]
    return {p.name: p for p in command.params if p.name}


def _check_options(loop: str, options: dict[str, Any], file: Path) -> None:
    import difflib

    params = _command_params(loop)
    for key in options:
        if key not in params or key in _RESERVED:
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PresetError(f"preset {file}: {LOOP_COMMANDS[loop]} has no option {key!r}{hint}")


def _to_args(loop: str, options: dict[str, Any], file: Path) -> list[str]:
    params = _command_params(loop)
    args: list[str] = []
    for key, value in options.items():
        param = params.get(key)
        flag = "--" + key.replace("_", "-")
        if param is not None and getattr(param, "is_flag", False):
            if value is True:
                args.append(param.opts[0])
            elif value is False and param.secondary_opts:
                args.append(param.secondary_opts[0])
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        if key == "data_path" and value:
            value = resolve_data_path(str(value), file)
        args += [flag, str(value)]
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


# -- running --------------------------------------------------------------------------------------
def mark_done(preset: Preset) -> str | None:
    """Fill ``done_run_id`` from FINISHED runs in the experiment; the experiment id (None: not yet)."""
    from svpkit import tracking

    exp_id = tracking.experiment_id_for(preset.experiment)
    if exp_id is None:
        return None
    done: dict[str, str] = {}
    for rec in tracking.find_runs([exp_id], f"tags.`{PRESET_TAG}` = '{_quote(preset.name)}'"):
        key = rec.tags.get(KEY_TAG)
        if key and key not in done:
            done[key] = rec.run_id
    for run in preset.runs:
        run.done_run_id = done.get(run.key)
    return exp_id


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


@contextmanager
def _env(**values: str | None) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _start_run(preset: Preset, run: PlannedRun) -> str:
    """Create the run (tagged with the preset and key); the loop command continues it."""
    from svpkit import tracking

    exp_id = tracking.ensure_experiment(preset.experiment)
    tags = {PRESET_TAG: preset.name, KEY_TAG: run.key, "svpkit.preset_file": str(preset.path)}
    return tracking.client().create_run(exp_id, run_name=run.name, tags=tags).info.run_id


def _execute(run: PlannedRun, run_id: str, subprocess_runs: bool) -> str | None:
    """Run one planned run inside ``run_id``; the error line when it failed, else None."""
    from svpkit import tracking

    args = [run.command, *run.args, "--quiet"]
    if subprocess_runs:
        env = dict(os.environ, MLFLOW_RUN_ID=run_id, MLFLOW_TRACKING_URI=tracking.client().tracking_uri)
        env.pop("MLFLOW_EXPERIMENT_ID", None)
        proc = subprocess.run(
            [sys.executable, "-m", "svpkit", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if proc.returncode == 0:
            return None
        if proc.returncode in _INTERRUPT_CODES:
            raise PresetInterrupted(_interrupted(run), 128 + abs(proc.returncode) % 128)
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")] or proc.stderr.splitlines()[-1:]
        return lines[-1] if lines else f"exit code {proc.returncode}"
    import click
    import typer.main

    from svpkit.cli import app

    command = typer.main.get_command(app)
    with _env(MLFLOW_RUN_ID=run_id, MLFLOW_EXPERIMENT_ID=None):
        try:
            code = command.main(args=args, prog_name="svpkit", standalone_mode=False)
        except click.ClickException as exc:
            tracking.fail_run(run_id, exc)
            return f"error: {exc.format_message()}"
    if code in _INTERRUPT_CODES:
        raise PresetInterrupted(_interrupted(run), int(code))
    if code not in (None, 0):
        status = tracking.get_run_record(run_id).status
        return f"exit code {code} (run {status})"
    return None


def _interrupted(run: PlannedRun) -> str:
    return f"interrupted during run {run.name}; run the preset again to continue (finished runs are skipped)"


def plan_table(preset: Preset) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"preset {preset.name} → experiment {preset.experiment} ({len(preset.runs)} runs)")
    for col in ("#", "run", "status", "command"):
        table.add_column(col, overflow="fold")
    for run in preset.runs:
        status = f"[green]done[/] {run.done_run_id}" if run.done_run_id else "to run"
        table.add_row(str(run.index), escape(run.name), status, escape(" ".join([run.command, *run.args])))
    return table


def run_preset(
    path: str | Path,
    dry_run: bool = False,
    experiment: str | None = None,
    subprocess_runs: bool = False,
    compare: bool = True,
    console: Any = None,
    parallel: int = 1,
    backend: str | None = None,
    backend_config: str | None = None,
    project: str | None = None,
) -> Preset:
    """Expand, skip what is FINISHED, run the rest in order, then compare the experiment."""
    from rich.console import Console

    from svpkit import tracking

    out = console or Console(width=None if sys.stdout.isatty() else 160)
    preset = load_preset(path, experiment)
    # Inside `mlflow run -e experiment` that entry's own run exists already; it records the
    # plan, and the preset's runs (and the comparison) become runs of their own.
    outer_run = os.environ.get("MLFLOW_RUN_ID")
    with _env(MLFLOW_RUN_ID=None, MLFLOW_EXPERIMENT_ID=None):
        mark_done(preset)
        out.print(plan_table(preset))
        todo = [r for r in preset.runs if not r.done_run_id]
        out.print(f"{len(preset.runs) - len(todo)} already finished, {len(todo)} to run")
        if dry_run:
            return preset
        failures: list[str] = []
        fanned_out = None
        if parallel > 1 or backend:  # many runs at once (svpkit.fanout)
            from svpkit import fanout

            fanned_out = fanout.execute(
                preset, todo, parallel, backend, backend_config, project, lambda m: out.print(m, highlight=False)
            )
        for n, run in enumerate(todo, start=1):
            if fanned_out is not None:
                run_id, problem = fanned_out[n - 1]
            else:
                run_id = _start_run(preset, run)
                out.print(f"[{n}/{len(todo)}] {run.name}: run {run_id}", highlight=False)
                problem = _execute(run, run_id, subprocess_runs)
            if problem:
                failures.append(f"{run.name}: {problem}")
                out.print(f"  failed: {problem}", highlight=False)
            else:
                run.done_run_id = run_id
        compare_run = None
        if compare and any(r.done_run_id for r in preset.runs):
            from svpkit import compare as comparison

            result = comparison.compare_experiment(preset.experiment)
            for table in comparison.rich_tables(result):
                out.print(table)
            for line in comparison.summary_lines(result):
                out.print(f"note: {line}", highlight=False)
            exp_id, compare_run = comparison.log_comparison(result, f"compare-{preset.name}")
            out.print(f"comparison run {compare_run}: {tracking.runs_url(exp_id, compare_run)}")
    if outer_run:
        tracker = tracking.MlflowTracker(outer_run)
        tracker.set_tags(
            {"svpkit.loop": "preset", PRESET_TAG: preset.name, "svpkit.compare_run": compare_run or "none"}
        )
        tracker.log_params({"preset": str(preset.path), "experiment": preset.experiment, "runs": len(preset.runs)})
        tracker.log_text("preset/plan.txt", "\n".join(f"{r.name}\t{r.done_run_id or 'failed'}" for r in preset.runs))
    if failures:
        raise SvpkitError(f"{len(failures)} of {len(todo)} runs failed; first: {failures[0]}")
    return preset
