"""``svpkit plugins|models|selectors|datasets list`` and ``svpkit models options``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from svpkit.cli.base import app, out, plugins
from svpkit.cli.options import Json, Pattern

plugins_app = typer.Typer(help="Installed plugins.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
selectors_app = typer.Typer(help="Registered selectors.", no_args_is_help=True)
datasets_app = typer.Typer(help="Registered data sets.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
app.add_typer(models_app, name="models")
app.add_typer(selectors_app, name="selectors")
app.add_typer(datasets_app, name="datasets")


@plugins_app.command("list")
def plugins_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every plugin: distribution, version, hooks, what it registered, and load errors."""
    infos = plugins().plugins()
    if as_json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    table = Table(title="svpkit plugins")
    for col in ("plugin", "distribution", "version", "hooks", "registered", "status"):
        table.add_column(col, overflow="fold")
    for info in infos:
        registered = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.registered.items() if names)
        status = "[green]ok[/]" if info.ok else "[red]" + " | ".join(info.errors) + "[/]"
        table.add_row(info.name, info.distribution, info.version, ", ".join(info.hooks), registered, status)
    out.print(table)


@models_app.command("list")
def models_list(
    pattern: Annotated[Optional[str], typer.Argument(help="Wildcard filter, e.g. 'resnet*' or 'timm/*'.")] = None,
    as_json: Json = False,
) -> None:
    """Registered models with family, inputs and parameter count."""
    rows = []
    for entry in plugins().models.entries(pattern):
        spec = entry.spec
        try:
            params = spec.num_parameters()
        except Exception:
            params = None
        rows.append(
            {
                "name": spec.name,
                "family": spec.family,
                "inputs": "/".join(spec.modalities),
                "parameters": params,
                "epochs": spec.train.epochs,
                "plugin": entry.distribution,
                "description": spec.description,
            }
        )
    _print_rows(rows, "svpkit models", as_json)


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
            "needs": ", ".join(sorted(e.spec.needs)) or "nothing",
            "plugin": e.distribution,
            "description": e.spec.description,
        }
        for e in plugins().selectors.entries(pattern)
    ]
    _print_rows(rows, "svpkit selectors", as_json)


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


def _print_rows(rows: list[dict[str, Any]], title: str, as_json: bool) -> None:
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
