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
from rich.markup import escape
from rich.table import Table

from svpkit.errors import SvpkitError
from svpkit.models.options import format_value, parse_model_options

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

# Wide tables when piped (rich assumes 80 columns without a terminal), folded rather than cut.
out = Console(width=None if sys.stdout.isatty() else 160)
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
        from svpkit.signals import interrupts_end_runs

        try:
            with interrupts_end_runs():  # SIGTERM ends a run as KILLED, like Ctrl-C
                return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", 2)
            run_id = getattr(exc, "run_id", None)
            where = f"; run {run_id} is KILLED, continue it with --resume {run_id}" if run_id else ""
            print(f"error: interrupted by {'SIGTERM' if signum == 15 else 'SIGINT'}{where}", file=sys.stderr)
            raise typer.Exit(128 + signum) from None
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
        table.add_column(col, overflow="fold")
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


@models_app.command("options")
@clean_errors
def models_options(
    name: str = typer.Argument(..., help="Model name (svpkit models list)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The options a model takes (--proxy-options / --target-options 'name=value,...')."""
    spec = _plugins().models.get(name)
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
        for o in sorted(spec.option_specs().values(), key=lambda o: o.name not in own)  # the model's own first
    ]
    if not rows and not as_json:
        out.print(f"model {spec.name!r} takes no options")
        return
    _print_rows(rows, f"options of {spec.name}", as_json)


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
            *("" if v is None else f"{v:,}" if type(v) is int else escape(format_value(v)) for v in row.values())
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


def _run_tracked(
    loop: Callable[..., Any],
    loop_args: tuple[Any, ...],
    *,
    experiment: Optional[str],
    run_name: str,
    tags: dict[str, str],
    params: dict[str, Any],
    resume: Optional[str],
    point: Any,
    given: dict[str, Any],
    dist_info: Any,
    quiet: bool,
    first_state: Optional[dict[str, Any]] = None,
) -> tuple[Any, Any]:
    """Open (or resume) the run — on rank 0 only under torchrun — and run a loop in it.

    ``loop(*loop_args, tracker, progress, resume_state=...)`` is one of the SVP loops; a fresh
    run gets its params and dataset input, a resumed one a ``svpkit.resumed_from_round`` tag.
    """
    from svpkit import distributed, tracking
    from svpkit.progress import make_progress

    data = loop_args[0]
    run = tracking.tracked_run(experiment, run_name, tags, resume_run_id=resume or None)
    with run if dist_info.is_main else distributed.null_run() as tracker:
        tracker.state_extra["invocation"] = given if point is None else point.invocation
        if point is None:
            tracker.log_params(params | (distributed.run_params(dist_info) if dist_info.enabled else {}))
            tracker.log_dataset(data)
            if first_state is not None:
                tracker.save_state(first_state)
        else:
            tracker.set_tags({"svpkit.resumed_from_round": str(point.round)})
        progress = make_progress(quiet or not dist_info.is_main)
        with progress:
            result = loop(*loop_args, tracker, progress, resume_state=None if point is None else point.state)
    return result, tracker


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
    proxy_options: Optional[str] = typer.Option(
        None, help="Options of the selector model, e.g. 'dim=50,word_ngrams=1' (svpkit models options NAME)."
    ),
    target_options: Optional[str] = typer.Option(
        None, help="Options of the target model, e.g. 'max_length=256' (svpkit models options NAME)."
    ),
    train_target: bool = typer.Option(True, help="Train and evaluate the target at every budget level."),
    deterministic: str = typer.Option("false", help="true: PyTorch's deterministic algorithms (GPU reproducibility)."),
    resume: Optional[str] = typer.Option(
        None, help="Continue this interrupted run from its last finished round (its own parameters are used)."
    ),
    experiment: Optional[str] = typer.Option(None, help="MLflow experiment name (default 'svpkit')."),
    run_name: Optional[str] = typer.Option(None),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    sync_batchnorm: bool = typer.Option(
        False, "--sync-batchnorm", help="Under torchrun on GPUs: BatchNorm statistics over all ranks' batches."
    ),
) -> None:
    """Batch active learning: a selector model picks each batch, the target is trained at each level."""
    from svpkit import distributed
    from svpkit.loops.active_learning import ALConfig, describe_run, run_active_learning
    from svpkit.loops.budgets import parse_sizes
    from svpkit.resume import find_resume_point, invocation

    given = invocation(locals(), _AL_ARGS)
    # Under torchrun: join the process group; only rank 0 reads or writes MLflow.
    dist_info = distributed.init_from_env(device, sync_batchnorm)
    point = distributed.from_main(lambda: find_resume_point(resume, "active_learning") if resume else None)
    if point is not None:
        (dataset, data_path, train_limit, test_limit, selector, proxy, target, initial, budgets, seed, device,
         proxy_epochs, target_epochs, batch_size, train_target, deterministic, proxy_options,
         target_options) = point.arguments(_AL_ARGS, given)  # fmt: skip
    device = distributed.replace_device(dist_info, device)
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
        deterministic=_parse_bool(deterministic, "deterministic"),
        proxy_options=parse_model_options(proxy_spec, proxy_options, "--proxy-options"),
        target_options=parse_model_options(target_spec, target_options, "--target-options"),
    )
    from svpkit.runtime import resolve_device

    resolve_device(device)
    data = load_dataset(dataset, data_path, train_limit, test_limit)
    tags, params = describe_run(data, selector_spec, proxy_spec, target_spec, cfg)  # validates the budgets
    name = run_name or f"al-{selector}-{proxy_spec.name if selector_spec.needs else 'random'}-s{seed}"
    result, tracker = _run_tracked(
        run_active_learning,
        (data, selector_spec, proxy_spec, target_spec, cfg),
        experiment=experiment,
        run_name=name,
        tags=tags,
        params=params,
        resume=resume,
        point=point,
        given=given,
        dist_info=dist_info,
        quiet=quiet,
    )
    if dist_info.is_main:
        _print_al_result(result, tracker)


_AL_ARGS = (
    "dataset",
    "data_path",
    "train_limit",
    "test_limit",
    "selector",
    "proxy",
    "target",
    "initial",
    "budgets",
    "seed",
    "device",
    "proxy_epochs",
    "target_epochs",
    "batch_size",
    "train_target",
    "deterministic",
    "proxy_options",
    "target_options",
)


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


# -- core-set selection, plain training, rank correlation ------------------------------------
def _parse_bool(value: str, what: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SvpkitError(f"{what} must be true or false, got {value!r}")


def _parse_fraction(value: Optional[str], what: str) -> Optional[float]:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise SvpkitError(f"{what} {value!r} is not a number") from None


def _one_size(value: str, what: str) -> float | int:
    from svpkit.loops.budgets import parse_sizes

    sizes = parse_sizes(value, what)
    if len(sizes) != 1:
        raise SvpkitError(f"{what} must be one size, got {value!r}")
    return sizes[0]


@app.command("core-set")
@clean_errors
def core_set(
    dataset: str = typer.Option("digits", help="Data set name (svpkit datasets list)."),
    data_path: Optional[str] = typer.Option(None, help="Where the data set's files are."),
    train_limit: Optional[int] = typer.Option(None, help="Use only the first N training examples."),
    test_limit: Optional[int] = typer.Option(None, help="Use a stratified sample of N test examples."),
    selector: str = typer.Option("forgetting_events", help="Selector that ranks the training set."),
    proxy: str = typer.Option("digits_mlp", help="Model trained on all data to rank it (the target for a baseline)."),
    target: str = typer.Option("digits_cnn", help="Model trained from scratch on the kept subset."),
    keep: Optional[str] = typer.Option(None, help="Fraction of the training set to keep, in (0,1] (default 0.5)."),
    subset_size: Optional[int] = typer.Option(None, help="Number of examples to keep (instead of --keep)."),
    seed_size: str = typer.Option(
        "1000", help="k-center's random seed points: count or fraction (count toward the subset)."
    ),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
    proxy_epochs: Optional[int] = typer.Option(None, help="Train the proxy for this many epochs (schedule scaled)."),
    target_epochs: Optional[int] = typer.Option(None, help="Train the target for this many epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Override the models' batch size."),
    proxy_options: Optional[str] = typer.Option(
        None, help="Options of the selector model, e.g. 'dim=50,word_ngrams=1' (svpkit models options NAME)."
    ),
    target_options: Optional[str] = typer.Option(
        None, help="Options of the target model, e.g. 'max_length=256' (svpkit models options NAME)."
    ),
    full_run: Optional[str] = typer.Option(
        None, help="Run id of a train run of the target on all data (speed-up reference)."
    ),
    compare_full: str = typer.Option(
        "false", help="true: train the target on all data in this run when no reference run exists."
    ),
    deterministic: str = typer.Option("false", help="true: PyTorch's deterministic algorithms (GPU reproducibility)."),
    resume: Optional[str] = typer.Option(
        None, help="Continue this interrupted run from its last finished stage (its own parameters are used)."
    ),
    experiment: Optional[str] = typer.Option(None, help="MLflow experiment name (default 'svpkit')."),
    run_name: Optional[str] = typer.Option(None),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Core-set selection: rank every training example with a proxy, train the target on the best part."""
    from svpkit import distributed
    from svpkit.resume import find_resume_point, invocation

    given = invocation(locals(), _CS_ARGS)
    # Under torchrun: DDP training on every rank; only rank 0 reads or writes MLflow.
    dist_info = distributed.init_from_env(device)
    point = distributed.from_main(lambda: find_resume_point(resume, "core_set") if resume else None)
    if point is not None:
        (dataset, data_path, train_limit, test_limit, selector, proxy, target, keep, subset_size, seed_size, seed,
         device, proxy_epochs, target_epochs, batch_size, full_run, compare_full, deterministic, proxy_options,
         target_options) = point.arguments(_CS_ARGS, given)  # fmt: skip
        # The same speed-up reference as before the interruption (no new search).
        full_run = point.tags.get("svpkit.full_run") if point.tags.get("svpkit.full_run") != "this run" else None
    from svpkit import tracking
    from svpkit.loops.core_set import (
        CoreSetConfig,
        choose_full_reference,
        describe_run,
        full_reference_mismatch,
        run_core_set,
    )
    from svpkit.runtime import resolve_device

    device = distributed.replace_device(dist_info, device)
    plugins = _plugins()
    selector_spec = plugins.selectors.get(selector)
    proxy_spec = plugins.models.get(proxy)
    target_spec = plugins.models.get(target)
    cfg = CoreSetConfig(
        keep=_parse_fraction(keep, "keep"),
        subset_size=None if not subset_size else subset_size,  # the MLproject's "0" means "not given"
        seed_size=_one_size(seed_size, "seed size"),
        seed=seed,
        device=device,
        proxy_epochs=_opt_int(proxy_epochs),
        target_epochs=_opt_int(target_epochs),
        batch_size=_opt_int(batch_size),
        compare_full=_parse_bool(compare_full, "compare-full"),
        deterministic=_parse_bool(deterministic, "deterministic"),
        proxy_options=parse_model_options(proxy_spec, proxy_options, "--proxy-options"),
        target_options=parse_model_options(target_spec, target_options, "--target-options"),
    )
    resolve_device(device)
    data = load_dataset(dataset, data_path, train_limit, test_limit)
    describe_run(data, selector_spec, proxy_spec, target_spec, cfg)  # validates sizes before any run exists
    if not dist_info.is_main:
        pass  # the full-data reference is looked up on rank 0 and broadcast below
    elif full_run:
        record = tracking.get_run_record(full_run)
        reason = full_reference_mismatch(record, data, target_spec, cfg, strict=False)
        if reason:
            raise SvpkitError(f"run {full_run} cannot be the full-data reference: {reason}")
        cfg.full_reference = choose_full_reference([record], data, target_spec, cfg) or _full_from(record)
    elif point is None:
        exp_id = tracking.experiment_id_for(experiment)
        if exp_id is not None:
            records = tracking.find_runs([exp_id], "tags.`svpkit.loop` = 'train'")
            cfg.full_reference = choose_full_reference(records, data, target_spec, cfg)
    cfg.full_reference = distributed.from_main(lambda: cfg.full_reference)
    tags, params = describe_run(data, selector_spec, proxy_spec, target_spec, cfg)
    name = run_name or f"cs-{selector}-{proxy_spec.name if selector_spec.needs else 'random'}-s{seed}"
    result, tracker = _run_tracked(
        run_core_set,
        (data, selector_spec, proxy_spec, target_spec, cfg),
        experiment=experiment,
        run_name=name,
        tags=tags,
        params=params,
        resume=resume,
        point=point,
        given=given,
        dist_info=dist_info,
        quiet=quiet,
        first_state={"loop": "core_set", "round": 0},  # resumable from its first stage on
    )
    if not dist_info.is_main:
        return
    table = Table(title=f"core-set: {selector} via {proxy_spec.name if selector_spec.needs else 'no model'}")
    for col in (
        "kept",
        "proxy error",
        "target error",
        "full-data error",
        "proxy s",
        "ranking s",
        "target s",
        "full s",
        "speed-up",
    ):
        table.add_column(col, justify="right")
    full = result.full
    table.add_row(
        f"{result.subset.size} of {result.ranking.order.size}",
        "" if result.proxy_error is None else f"{100 * result.proxy_error:.2f}%",
        f"{100 * result.target.test_error:.2f}%",
        "" if full is None else f"{100 * full.test_error:.2f}%",
        f"{result.proxy_train_seconds:.2f}",
        f"{result.ranking_seconds:.3f}",
        f"{result.target.train_seconds:.2f}",
        "" if full is None else f"{full.train_seconds:.2f}",
        "" if result.speedup is None else f"{result.speedup:.2f}x",
    )
    out.print(table)
    if full is None:
        out.print("no full-data reference: run `svpkit train` first, or pass --full-run or --compare-full true")
    else:
        out.print(f"full-data reference: {full.source}")
    out.print(f"run {tracker.run_id}: {tracking.runs_url(tracker.experiment_id, tracker.run_id)}")


_CS_ARGS = (
    "dataset",
    "data_path",
    "train_limit",
    "test_limit",
    "selector",
    "proxy",
    "target",
    "keep",
    "subset_size",
    "seed_size",
    "seed",
    "device",
    "proxy_epochs",
    "target_epochs",
    "batch_size",
    "full_run",
    "compare_full",
    "deterministic",
    "proxy_options",
    "target_options",
)


def _full_from(record: Any) -> Any:
    from svpkit.loops.core_set import FullReference

    return FullReference(
        float(record.metrics["target/train_seconds"]), float(record.metrics["target/test_error"]), record.run_id
    )


@app.command("train")
@clean_errors
def train(
    dataset: str = typer.Option("digits", help="Data set name (svpkit datasets list)."),
    data_path: Optional[str] = typer.Option(None, help="Where the data set's files are."),
    train_limit: Optional[int] = typer.Option(None, help="Use only the first N training examples."),
    test_limit: Optional[int] = typer.Option(None, help="Use a stratified sample of N test examples."),
    target: str = typer.Option("digits_cnn", help="Model to train."),
    size: str = typer.Option(
        "1.0", help="Training examples: fraction in (0,1] or count (a seeded random subset); 1.0 = all."
    ),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
    target_epochs: Optional[int] = typer.Option(None, help="Train for this many epochs (schedule scaled)."),
    batch_size: Optional[int] = typer.Option(None, help="Override the model's batch size."),
    target_options: Optional[str] = typer.Option(
        None, help="Options of the model, e.g. 'max_length=256' (svpkit models options NAME)."
    ),
    experiment: Optional[str] = typer.Option(None, help="MLflow experiment name (default 'svpkit')."),
    run_name: Optional[str] = typer.Option(None),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train a model on all (or part) of the training data: the reference for core-set speed-ups."""
    from svpkit import distributed, tracking
    from svpkit.loops.train_only import TrainRunConfig, describe_train_run, run_train
    from svpkit.progress import make_progress
    from svpkit.runtime import resolve_device

    dist_info = distributed.init_from_env(device)  # torchrun: DDP; only rank 0 logs
    device = distributed.replace_device(dist_info, device)
    target_spec = _plugins().models.get(target)
    cfg = TrainRunConfig(
        size=_one_size(size, "size"),
        seed=seed,
        device=device,
        target_epochs=_opt_int(target_epochs),
        batch_size=_opt_int(batch_size),
        target_options=parse_model_options(target_spec, target_options, "--target-options"),
    )
    resolve_device(device)
    data = load_dataset(dataset, data_path, train_limit, test_limit)
    tags, params = describe_train_run(data, target_spec, cfg)
    name = run_name or f"train-{target_spec.name}-{tags['svpkit.subset_size']}-s{seed}"
    run = tracking.tracked_run(experiment, name, tags)
    with run if dist_info.is_main else distributed.null_run() as tracker:
        tracker.log_params(params | (distributed.run_params(dist_info) if dist_info.enabled else {}))
        tracker.log_dataset(data)
        progress = make_progress(quiet or not dist_info.is_main)
        with progress:
            outcome = run_train(data, target_spec, cfg, tracker, progress)
    if not dist_info.is_main:
        return
    out.print(
        f"{target_spec.name} on {tags['svpkit.subset_size']} of {len(data.train)} examples: "
        f"test error {100 * outcome.test_error:.2f}%, {outcome.train_seconds:.2f} s training"
    )
    out.print(f"run {tracker.run_id}: {tracking.runs_url(tracker.experiment_id, tracker.run_id)}")


@app.command("correlate")
@clean_errors
def correlate(
    run_ids: Optional[list[str]] = typer.Argument(None, help="Runs to compare (core-set or active-learning)."),
    runs: Optional[str] = typer.Option(None, "--runs", help="More run ids, comma- or space-separated."),
    experiment: Optional[str] = typer.Option(None, help="Experiment to search (and to log to; default 'svpkit')."),
    filters: Optional[list[str]] = typer.Option(
        None, "--filter", help="MLflow filter on the searched runs, e.g. \"tags.svpkit.loop = 'core_set'\"."
    ),
    round_no: int = typer.Option(1, "--round", help="Which active-learning round's pool scores to use."),
    k: str = typer.Option("0.1,0.5", help="Overlap@k sizes: counts or fractions of the shared examples."),
    run_name: Optional[str] = typer.Option(None),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the tables."),
) -> None:
    """Spearman/Pearson rank correlation and overlap@k between the rankings of several runs."""
    from svpkit import correlation, tracking

    ids = [*(run_ids or []), *((runs or "").replace(",", " ").split())]
    experiment = experiment or None
    filter_text = " and ".join(f.strip() for f in (filters or []) if f.strip())
    data = correlation.load_rankings(ids, experiment, filter_text, round_no)
    report = correlation.correlate(data, correlation.parse_k(k, data.num_shared), round_no)
    for table in correlation.rich_tables(report):
        out.print(table)
    exp_name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if exp_name is None and not os.environ.get("MLFLOW_EXPERIMENT_ID"):
        exp_name = tracking.experiment_name(data.sources[0].experiment_id)
    with tracking.tracked_run(exp_name, run_name or f"correlate-{len(data.sources)}-runs", report.tags()) as tracker:
        correlation.log_report(tracker, report)
    out.print(f"run {tracker.run_id}: {tracking.runs_url(tracker.experiment_id, tracker.run_id)}")


@app.command("compare")
@clean_errors
def compare(
    experiment: Optional[str] = typer.Option(None, help="Experiment to compare (default: 'svpkit', or mlflow run's)."),
    log: bool = typer.Option(True, "--log/--no-log", help="Log tables and figures to a new compare run."),
    run_name: Optional[str] = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="Print the tables as JSON."),
) -> None:
    """Pair proxy runs with their baseline: target error and data-selection speed-up per budget level."""
    from svpkit import compare as comparison
    from svpkit import tracking

    result = comparison.compare_experiment(experiment or None)
    if as_json:
        print(comparison.as_json(result))
    else:
        for table in comparison.rich_tables(result):
            out.print(table)
        for line in comparison.summary_lines(result):
            err.print(f"note: {line}", highlight=False)
    if log:
        exp_id, run_id = comparison.log_comparison(result, run_name)
        out.print(f"run {run_id}: {tracking.runs_url(exp_id, run_id)}")


@app.command("run")
@clean_errors
def run_preset(
    preset: str = typer.Argument(..., help="A preset TOML file, e.g. projects/digits_quick.toml."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs (and which are done) without running."),
    experiment: Optional[str] = typer.Option(None, help="Override the preset's experiment name."),
    subprocess_runs: bool = typer.Option(
        False, "--subprocess/--in-process", help="Run each run in its own Python process."
    ),
    compare_after: bool = typer.Option(True, "--compare/--no-compare", help="End with svpkit compare."),
    parallel: int = typer.Option(
        1, "--parallel", "-j", help="Runs at once as separate processes (at most one per GPU when there are GPUs)."
    ),
    backend: Optional[str] = typer.Option(
        None, help="Submit every run through MLflow Projects' backend instead: local, kubernetes, ..."
    ),
    backend_config: Optional[str] = typer.Option(None, help="The backend's config, e.g. kubernetes_config.json."),
    project: Optional[str] = typer.Option(
        None, help="MLproject directory for --backend (default: the repository; docker/ for kubernetes)."
    ),
) -> None:
    """Expand a preset into runs, skip the ones already FINISHED, run the rest, then compare."""
    from svpkit import presets

    presets.run_preset(
        preset,
        dry_run=dry_run,
        experiment=experiment or None,
        subprocess_runs=subprocess_runs,
        compare=compare_after,
        parallel=parallel,
        backend=backend or None,
        backend_config=backend_config or None,
        project=project or None,
    )


def main() -> None:
    from svpkit.plugins import get_plugins

    try:
        get_plugins().register_commands(app)
    except Exception as exc:  # a broken plugin must not take the CLI down
        print(f"warning: plugin commands not loaded: {exc}", file=sys.stderr)
    app()


if __name__ == "__main__":
    main()
