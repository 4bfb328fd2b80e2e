"""The ``svpkit`` command line (typer + rich)."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from svpkit.errors import SvpkitError

app = typer.Typer(
    name="svpkit",
    help="Selection via Proxy: choose training data with a cheap proxy model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
plugins_app = typer.Typer(help="Installed plugins.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
selectors_app = typer.Typer(help="Registered selectors.", no_args_is_help=True)
datasets_app = typer.Typer(help="Registered data sets.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
app.add_typer(models_app, name="models")
app.add_typer(selectors_app, name="selectors")
app.add_typer(datasets_app, name="datasets")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_STATE = {"debug": bool(os.environ.get("SVPKIT_DEBUG"))}

F = TypeVar("F", bound=Callable[..., Any])


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    if debug:
        _STATE["debug"] = True


def clean_errors(func: F) -> F:
    """One clear line on stderr and a non-zero exit instead of a traceback (unless --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            err.print("interrupted", highlight=False)
            raise typer.Exit(130) from None
        except Exception as exc:
            from svpkit import tracking

            tracking.fail_env_run(exc)
            if _STATE["debug"]:
                raise
            if isinstance(exc, SvpkitError):
                message, code = str(exc), exc.exit_code
            else:
                message, code = f"{type(exc).__name__}: {exc} (run with --debug for the traceback)", 1
            first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
            print(f"error: {first}", file=sys.stderr)
            raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]


def _plugins():  # type: ignore[no-untyped-def]
    from svpkit.plugins import get_plugins

    return get_plugins()


# -- listings --------------------------------------------------------------------------------
@plugins_app.command("list")
@clean_errors
def plugins_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every plugin: distribution, version, hooks, what it registered, and load errors."""
    infos = _plugins().plugins()
    if as_json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    table = Table(title="svpkit plugins")
    for col in ("plugin", "distribution", "version", "hooks", "registered", "status"):
        table.add_column(col)
    for info in infos:
        registered = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.registered.items() if names)
        status = "[green]ok[/]" if info.ok else "[red]" + " | ".join(info.errors) + "[/]"
        table.add_row(info.name, info.distribution, info.version, ", ".join(info.hooks), registered, status)
    out.print(table)


@models_app.command("list")
@clean_errors
def models_list(
    pattern: Optional[str] = typer.Argument(None, help="Wildcard filter, e.g. 'resnet*' or 'timm/*'."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Registered models with family, inputs and parameter count."""
    rows = []
    for entry in _plugins().models.entries(pattern):
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


@selectors_app.command("list")
@clean_errors
def selectors_list(
    pattern: Optional[str] = typer.Argument(None), as_json: bool = typer.Option(False, "--json")
) -> None:
    """Registered selectors and what each needs from the selector model."""
    rows = [
        {
            "name": e.spec.name,
            "needs": ", ".join(sorted(e.spec.needs)) or "nothing",
            "plugin": e.distribution,
            "description": e.spec.description,
        }
        for e in _plugins().selectors.entries(pattern)
    ]
    _print_rows(rows, "svpkit selectors", as_json)


@datasets_app.command("list")
@clean_errors
def datasets_list(pattern: Optional[str] = typer.Argument(None), as_json: bool = typer.Option(False, "--json")) -> None:
    """Registered data sets."""
    rows = [
        {
            "name": e.spec.name,
            "inputs": e.spec.modality,
            "needs_path": e.spec.needs_path,
            "plugin": e.distribution,
            "description": e.spec.description,
        }
        for e in _plugins().datasets.entries(pattern)
    ]
    _print_rows(rows, "svpkit datasets", as_json)


def _print_rows(rows: list[dict[str, Any]], title: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=title)
    for col in rows[0] if rows else ["name"]:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(
            *(
                "" if v is None else f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
                for v in row.values()
            )
        )
    out.print(table)


# -- runs ------------------------------------------------------------------------------------
def load_dataset(
    name: str, path: Optional[str], train_limit: Optional[int] = None, test_limit: Optional[int] = None
) -> Any:
    """Load a registered data set; ``*_limit`` shrink it for quick runs (see Dataset.limited)."""
    spec = _plugins().datasets.get(name)
    path = path or None
    if spec.needs_path and not path:
        raise SvpkitError(f"data set {name!r} needs --data-path (a directory or file with its data)")
    data = spec.load(path) if path else spec.load()
    return data.limited(_opt_int(train_limit), _opt_int(test_limit))


def _opt_int(value: Optional[int]) -> Optional[int]:
    return None if value is None or value <= 0 else value


@app.command("active-learning")
@clean_errors
def active_learning(
    dataset: str = typer.Option("digits", help="Data set name (svpkit datasets list)."),
    data_path: Optional[str] = typer.Option(None, help="Where the data set's files are."),
    train_limit: Optional[int] = typer.Option(None, help="Use only the first N training examples."),
    test_limit: Optional[int] = typer.Option(None, help="Use a stratified sample of N test examples."),
    selector: str = typer.Option("least_confidence", help="Selector name (svpkit selectors list)."),
    proxy: str = typer.Option("digits_mlp", help="Selector model: the proxy (or the target for a baseline)."),
    target: str = typer.Option("digits_cnn", help="Target model, trained at every budget level."),
    initial: str = typer.Option("0.01", help="Random initial labeled set: fraction in (0,1] or count."),
    budgets: str = typer.Option("0.1,0.2,0.3,0.4,0.5", help="Cumulative labeled sizes: fractions or counts."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
    proxy_epochs: Optional[int] = typer.Option(None, help="Train the proxy for this many epochs (schedule scaled)."),
    target_epochs: Optional[int] = typer.Option(None, help="Train the target for this many epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Override the models' batch size."),
    train_target: bool = typer.Option(True, help="Train and evaluate the target at every budget level."),
    experiment: Optional[str] = typer.Option(None, help="MLflow experiment name (default 'svpkit')."),
    run_name: Optional[str] = typer.Option(None),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Batch active learning: a selector model picks each batch, the target is trained at each level."""
    from svpkit import tracking
    from svpkit.loops.active_learning import ALConfig, describe_run, run_active_learning
    from svpkit.loops.budgets import parse_sizes, resolve_budgets
    from svpkit.progress import make_progress

    plugins = _plugins()
    selector_spec = plugins.selectors.get(selector)
    proxy_spec = plugins.models.get(proxy)
    target_spec = plugins.models.get(target)
    init_size = parse_sizes(initial, "initial")
    if len(init_size) != 1:
        raise SvpkitError(f"initial must be one size, got {initial!r}")
    cfg = ALConfig(
        initial=init_size[0],
        budgets=parse_sizes(budgets),
        seed=seed,
        device=device,
        proxy_epochs=_opt_int(proxy_epochs),
        target_epochs=_opt_int(target_epochs),
        batch_size=_opt_int(batch_size),
        train_target=train_target,
    )
    from svpkit.train import resolve_device

    resolve_device(device)
    data = load_dataset(dataset, data_path, train_limit, test_limit)
    resolve_budgets(cfg.initial, cfg.budgets, len(data.train))
    tags, params = describe_run(data, selector_spec, proxy_spec, target_spec, cfg)
    name = run_name or f"al-{selector}-{proxy_spec.name if selector_spec.needs else 'random'}-s{seed}"
    with tracking.tracked_run(experiment, name, tags) as tracker:
        tracker.log_params(params)
        tracker.log_dataset(data)
        progress = make_progress(quiet)
        with progress:
            result = run_active_learning(data, selector_spec, proxy_spec, target_spec, cfg, tracker, progress)
    _print_al_result(result, tracker)


def _print_al_result(result: Any, tracker: Any) -> None:
    from svpkit import tracking

    table = Table(title="active learning")
    for col in ("round", "labeled", "selector model error", "target error", "train s", "infer s", "select s"):
        table.add_column(col, justify="right")
    for r in result.rounds:
        table.add_row(
            str(r.round),
            str(r.labeled_after),
            "" if r.selector_model_error is None else f"{100 * r.selector_model_error:.2f}%",
            "" if r.target_error is None else f"{100 * r.target_error:.2f}%",
            f"{r.train_seconds:.2f}",
            f"{r.inference_seconds:.3f}",
            f"{r.selection_seconds:.3f}",
        )
    out.print(table)
    out.print(f"total selection time: {result.selection_seconds:.2f} s")
    out.print(f"run {tracker.run_id}: {tracking.runs_url(tracker.experiment_id, tracker.run_id)}")


def main() -> None:
    from svpkit.plugins import get_plugins

    try:
        get_plugins().register_commands(app)
    except Exception as exc:  # a broken plugin must not take the CLI down
        print(f"warning: plugin commands not loaded: {exc}", file=sys.stderr)
    app()


if __name__ == "__main__":
    main()
