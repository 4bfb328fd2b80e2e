"""``svpkit plugins|models|selectors|datasets|backbones list`` and ``svpkit models options``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from svpkit.cli.base import app, out, plugins
from svpkit.cli.options import Json, Pattern

if TYPE_CHECKING:
    from svpkit.models.base import ModelSpec
    from svpkit.plugins import PluginInfo
    from svpkit.registry import Entry
    from svpkit.selectors.base import SelectorSpec

plugins_app = typer.Typer(help="Installed plugins.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
selectors_app = typer.Typer(help="Registered selectors.", no_args_is_help=True)
datasets_app = typer.Typer(help="Registered data sets.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
app.add_typer(models_app, name="models")
app.add_typer(selectors_app, name="selectors")
app.add_typer(datasets_app, name="datasets")
backbones_app = typer.Typer(help="Registered pretrained backbones (--backbone).", no_args_is_help=True)
app.add_typer(backbones_app, name="backbones")


SUMMARISED_AT = 6
"""A plugin that registers more names than this is one summary line (``1,371 models (timm/*)``)."""


@plugins_app.command("list")
def plugins_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (every name).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Every hook and registered name.")] = False,
) -> None:
    """Every plugin, one line each: distribution, version, what it registered, and load errors."""
    registered = plugins()
    registered.register_commands(app)  # records what each plugin's commands hook does, and its errors
    infos = registered.plugins()
    if as_json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    table = Table(title="svpkit plugins")
    columns = ("plugin", "distribution", "version", *(("hooks", "registered") if verbose else ("provides",)), "status")
    for col in columns:
        table.add_column(col, overflow="fold")
    for info in infos:
        if verbose:
            names = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.registered.items() if names)
            status = "[green]ok[/]" if info.ok else "[red]" + escape(" | ".join(info.errors)) + "[/]"
            cells = [", ".join(info.hooks), escape(names), status]
        else:
            errors = f"[red]{len(info.errors)} error{'s' if len(info.errors) > 1 else ''}[/]"
            cells = [escape(_provides(info)), "[green]ok[/]" if info.ok else errors]
        table.add_row(escape(info.name), escape(info.distribution), escape(info.version), *cells)
    out.print(table)
    if not verbose:
        for info in infos:
            for error in info.errors:
                out.print(f"{info.name}: {error}", markup=False, highlight=False, soft_wrap=True)


def _provides(info: PluginInfo) -> str:
    """What a plugin registered, in short: ``10 models, 6 selectors``; ``1,371 models (timm/*)``."""
    parts = [_summary(names, kind) for kind, names in info.registered.items() if names]
    if info.commands:
        parts.append(_summary(info.commands, "command"))
    return ", ".join(parts) or "nothing"


def _summary(names: list[str], kind: str) -> str:
    counted = f"{len(names):,} {kind}{'s' if len(names) != 1 else ''}"
    if len(names) <= 3:
        return f"{counted} ({', '.join(names)})"
    prefix = os.path.commonprefix(names)
    return f"{counted} ({prefix}*)" if prefix else counted


@models_app.command("list")
def models_list(
    pattern: Annotated[Optional[str], typer.Argument(help="Wildcard filter, e.g. 'resnet*' or 'timm/*'.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Every model, each plugin's too.")] = False,
    as_json: Json = False,
) -> None:
    """Registered models with family, inputs and parameter count.

    Without a pattern or --all, a plugin with many models is one summary row (``svpkit models list 'timm/*'``).
    """
    entries = plugins().models.entries(pattern)
    if pattern or show_all or as_json:
        _print_rows([_model_row(entry) for entry in entries], "svpkit models", as_json)
        return
    by_plugin: dict[str, list[Entry[ModelSpec]]] = {}
    for entry in entries:
        by_plugin.setdefault(entry.distribution, []).append(entry)
    rows = []
    for distribution, group in by_plugin.items():
        if distribution == "svpkit" or len(group) <= SUMMARISED_AT:
            rows += [_model_row(entry) for entry in group]
        else:
            rows.append(_model_summary(distribution, group))
    _print_rows(rows, "svpkit models", as_json=False)


def _model_row(entry: Entry[ModelSpec]) -> dict[str, object]:
    spec = entry.spec
    try:
        params = spec.num_parameters()
    except Exception:
        params = None
    return {
        "name": spec.name,
        "family": spec.family,
        "inputs": "/".join(spec.modalities),
        "parameters": params,
        "epochs": spec.train.epochs,
        "plugin": entry.distribution,
        "description": spec.description,
    }


def _model_summary(distribution: str, group: list[Entry[ModelSpec]]) -> dict[str, object]:
    """One row for a plugin's many models."""
    names = [e.name for e in group]
    glob = os.path.commonprefix(names) + "*"
    families = {e.spec.family for e in group}
    epochs = {e.spec.train.epochs for e in group}
    return {
        "name": glob,
        "family": families.pop() if len(families) == 1 else f"{len(families):,} families",
        "inputs": "/".join(sorted({m for e in group for m in e.spec.modalities})),
        "parameters": None,
        "epochs": epochs.pop() if len(epochs) == 1 else None,
        "plugin": distribution,
        "description": f"{len(names):,} models: svpkit models list '{glob}'",
    }


@models_app.command("options")
def models_options(
    name: Annotated[str, typer.Argument(help="Model name (svpkit models list).")],
    as_json: Json = False,
) -> None:
    """The options a model takes (--proxy-options / --target-options 'name=value,...')."""
    from svpkit.learners.options import option_specs

    spec = plugins().models.get(name)
    own = {o.name for o in spec.options}
    rows = [
        {
            "option": o.name,
            "type": o.type.__name__,
            "default": "auto" if o.default is None else o.default,
            "of": "model" if o.name in own else "torch learner",
            "choices": ", ".join(o.choices),
            "description": o.help,
        }
        for o in sorted(option_specs(spec).values(), key=lambda o: o.name not in own)  # the model's own first
    ]
    if not rows and not as_json:
        out.print(f"model {spec.name!r} takes no options")
        return
    _print_rows(rows, f"options of {spec.name}", as_json)


@selectors_app.command("list")
def selectors_list(pattern: Pattern = None, as_json: Json = False) -> None:
    """Registered selectors and what each needs from the selector model."""
    rows = [
        {
            "name": e.spec.name,
            "needs": _needs_text(e.spec),
            "plugin": e.distribution,
            "description": e.spec.description,
        }
        for e in plugins().selectors.entries(pattern)
    ]
    _print_rows(rows, "svpkit selectors", as_json)


def _needs_text(spec: SelectorSpec) -> str:
    """What a selector needs; a selector that needs no model at its defaults says so (``embedding=input``)."""
    needs = ", ".join(sorted(spec.needs)) or "nothing"
    defaults = {o.name: o.default for o in spec.options}
    if spec.needs and not spec.trains_model(defaults):
        return f"nothing by default ({needs} with embedding=model)"
    return needs


@datasets_app.command("list")
def datasets_list(pattern: Pattern = None, as_json: Json = False) -> None:
    """Registered data sets."""
    rows = [
        {
            "name": e.spec.name,
            "inputs": e.spec.modality,
            "needs_path": e.spec.needs_path,
            "plugin": e.distribution,
            "description": e.spec.description,
        }
        for e in plugins().datasets.entries(pattern)
    ]
    _print_rows(rows, "svpkit datasets", as_json)


@backbones_app.command("list")
def backbones_list(pattern: Pattern = None, as_json: Json = False) -> None:
    """Registered backbones: inputs, embedding width, input size, weights' source, license and sha256."""
    rows = [
        {
            "name": e.spec.name,
            "inputs": e.spec.modality,
            "dim": e.spec.dim,
            "preprocessing": e.spec.preprocessing.text() if e.spec.modality == "image" else "text",
            "weights": e.spec.weights.source,
            "license": e.spec.weights.license,
            "sha256": e.spec.weights.sha256[:16] + "…",
            "plugin": e.distribution,
        }
        for e in plugins().backbones.entries(pattern)
    ]
    _print_rows(rows, "svpkit backbones", as_json)


def _print_rows(rows: Sequence[Mapping[str, object]], title: str, as_json: bool) -> None:
    from svpkit.contract import format_value

    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=title)
    for col in rows[0] if rows else ["name"]:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(
            *("" if v is None else f"{v:,}" if type(v) is int else escape(format_value(v)) for v in row.values())
        )
    out.print(table)


@datasets_app.command("options")
def datasets_options(
    name: Annotated[str, typer.Argument(help="Data set name (svpkit datasets list).")],
    as_json: Json = False,
) -> None:
    """The options a data set takes (--dataset-options 'name=value,...')."""
    spec = plugins().datasets.get(name)
    rows = [
        {
            "option": o.name,
            "type": o.type.__name__,
            "default": "auto" if o.default is None else o.default,
            "choices": ", ".join(o.choices),
            "description": o.help,
        }
        for o in spec.options
    ]
    if not rows and not as_json:
        out.print(f"data set {spec.name!r} takes no options")
        return
    _print_rows(rows, f"options of {spec.name}", as_json)
