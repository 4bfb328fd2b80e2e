"""``svpkit query``, ``svpkit label`` and ``svpkit export``: labeling your own data (docs/labeling.md).

A project is one MLflow run (``svpkit.loop=labeling``). ``query`` trains the proxy on what is
labeled so far and asks for the next batch; ``label`` imports the annotators' answers to it;
``export`` writes every imported label for training elsewhere.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from svpkit.cli.base import app, out, plugins, print_run_link
from svpkit.cli.options import DATA, RUN, Selector, opt_int, parse_deterministic, with_shared
from svpkit.cli.runs import LoopArgs, collect, load_dataset
from svpkit.cli.tables import percent
from svpkit.errors import ConfigError

if TYPE_CHECKING:
    from svpkit.labeling.project import Project
    from svpkit.labeling.session import AnswerCheck
    from svpkit.loops.labeling import QueryRound

ProjectId = Annotated[Optional[str], typer.Option("--project", help="The labeling project's run id.")]
SHOWN_ROWS = 10


@dataclass
class QueryArgs(LoopArgs):
    """The settings a project keeps from its first query (``data_path`` and ``device`` may change)."""

    selector: str
    proxy: str
    seed: int
    device: str
    proxy_epochs: Optional[int]
    batch_size: Optional[int]
    proxy_options: Optional[str]
    deterministic: str


MAY_CHANGE = ("data_path", "device")
"""Settings a later query may give anew: the data can move, the next round can run elsewhere."""


@app.command("query")
@with_shared(DATA, ("seed", "device", "proxy_epochs", "batch_size", "proxy_options", "deterministic", *RUN))
def query(
    selector: Selector = "least_confidence",
    proxy: Annotated[
        str, typer.Option(help="The proxy: the selector model trained on the labeled set.")
    ] = "digits_mlp",
    k: Annotated[int, typer.Option("--k", help="How many examples to ask the annotators for.")] = 500,
    project: ProjectId = None,
    out_file: Annotated[
        Optional[str], typer.Option("--out", help="Also write the batch to this CSV file (for the annotation tool).")
    ] = None,
    **shared: Any,
) -> Any:  # the updated Project (Any: typer resolves these hints at import time)
    """Ask for the next batch to label: the proxy, trained on the labels so far, picks k of the unlabeled pool."""
    from svpkit.labeling.project import new_project
    from svpkit.labeling.session import RunInfo, commit_query
    from svpkit.learners.options import parse_model_options
    from svpkit.loops.labeling import QueryConfig, check_pool, describe_project, query_round
    from svpkit.progress import make_progress
    from svpkit.runtime import resolve_device

    opened, args = _settings(project or None, collect(QueryArgs, locals() | shared))
    registered = plugins()
    selector_spec, proxy_spec = registered.selectors.get(args.selector), registered.models.get(args.proxy)
    cfg = QueryConfig(
        k=k,
        seed=args.seed,
        device=args.device,
        proxy_epochs=opt_int(args.proxy_epochs),
        batch_size=opt_int(args.batch_size),
        deterministic=parse_deterministic(args.deterministic, args.device),
        proxy_options=parse_model_options(proxy_spec, args.proxy_options, "--proxy-options"),
    )
    resolve_device(args.device)
    data = load_dataset(args.dataset, args.data_path, args.train_limit, args.test_limit)
    state = opened or new_project({f.name: getattr(args, f.name) for f in fields(args)}, data.class_names)
    labeled, labels = state.training_set(data)
    check_pool(data, labeled, k)  # before any training
    with make_progress(shared["quiet"]) as progress:
        result = query_round(data, labeled, labels, selector_spec, proxy_spec, cfg, len(state.rounds), progress)
    tags, params = describe_project(data, selector_spec, proxy_spec, cfg)
    name = (
        shared["run_name"]
        or f"labeling-{args.selector}-{proxy_spec.name if selector_spec.needs else 'random'}-s{args.seed}"
    )
    updated, text, experiment_id = commit_query(state, result, data, RunInfo(name, tags, params, shared["experiment"]))
    if out_file:
        Path(out_file).write_text(text, encoding="utf-8")
    _print_query(updated, result, data, out_file)
    print_run_link(experiment_id, str(updated.run_id))
    return updated  # for commands that wrap this one (the Label Studio plugin's ls-query)


def _settings(project_id: Optional[str], given: QueryArgs) -> tuple[Optional[Project], QueryArgs]:
    """With ``--project``: the project and its own settings (a given one that differs is an error,
    except for :data:`MAY_CHANGE`)."""
    from svpkit.labeling.project import open_project

    if project_id is None:
        return None, given
    opened = open_project(project_id)
    defaults = inspect.signature(query).parameters
    chosen: dict[str, Any] = {}
    for f in fields(given):
        value, recorded = getattr(given, f.name), opened.invocation.get(f.name)
        explicit = _normal(value) != _normal(defaults[f.name].default)
        if explicit and f.name not in MAY_CHANGE and _normal(value) != _normal(recorded):
            flag = "--" + f.name.replace("_", "-")
            raise ConfigError(f"project {project_id} uses {flag} {recorded}, not {value}; leave {flag} out")
        chosen[f.name] = value if explicit and f.name in MAY_CHANGE else recorded
    return opened, replace(given, **chosen)


def _normal(value: Any) -> Any:
    """An option value as it acts: 0 or '' (the MLproject's "not given") are None."""
    return None if value in (0, "", None) else str(value)


def _print_query(project: Project, result: QueryRound, data: Any, out_file: Optional[str]) -> None:
    from svpkit.contract import to_label_artifact

    out.print(f"round {result.round}: {result.reason}")
    table = Table(title=f"to label: {result.picks.size} examples (first {min(SHOWN_ROWS, result.picks.size)})")
    for col in ("rank", "id", "example", "score"):
        table.add_column(col, overflow="fold")
    scores = result.pick_scores()
    for i, pick in enumerate(result.picks[:SHOWN_ROWS]):
        score = "" if scores is None else f"{scores[i]:.4g}"
        table.add_row(str(i + 1), escape(data.train.example_id(pick)), escape(data.example_text(pick)), score)
    out.print(table)
    where = to_label_artifact(result.round) + (f" and {out_file}" if out_file else "")
    out.print(f"batch written to {where}; answer with `svpkit label --project {project.run_id} FILE.csv` (id,label)")
    labeled = result.labeled.size
    out.print(f"labeled: {labeled} examples; unlabeled pool: {result.pool.size}")
    if not len(data.test):
        out.print("no test split: the proxy's test error is not measured")
    elif result.selector_model_error is not None:
        out.print(f"proxy test error: {percent(result.selector_model_error)} (trained on {labeled})")


# -- label -------------------------------------------------------------------------------------
@app.command("label")
def label(
    file: Annotated[Path, typer.Argument(help="The answers: a CSV file with the columns id,label.")],
    project: Annotated[str, typer.Option("--project", help="The labeling project's run id.")],
) -> None:
    """Import the annotators' answers to the project's newest batch (all or nothing)."""
    from svpkit.labeling.files import read_answers
    from svpkit.labeling.project import open_project
    from svpkit.labeling.session import check_answers, commit_answers, note_env_run

    opened = open_project(project)
    check = check_answers(opened, read_answers(file))
    if check.problems:
        _print_problems(check)
        kinds = ", ".join(sorted({p.kind for p in check.problems}))
        raise ConfigError(f"{file}: {len(check.problems)} rows cannot be imported ({kinds}); nothing imported")
    updated = commit_answers(opened, check)
    note_env_run(project)
    r = check.round
    if updated is None:
        out.print(f"nothing changed: project {project} already holds these answers for round {r.round}")
    else:
        changed = f", {len(check.changed)} changed" if check.changed else ""
        out.print(f"imported {len(check.accepted)} answers for round {r.round}{changed} (labels/round_{r.round}.csv)")
    if check.missing:
        _print_problems(check)
        out.print(f"{len(check.missing)} of the batch's {len(r.batch)} stay unlabeled (back in the pool next query)")
    total = len((updated or opened).labeled())
    out.print(f"project {project}: {total} imported labels")


def _print_problems(check: AnswerCheck) -> None:
    table = Table(title=f"answers to round {check.round.round}'s batch")
    for col in ("problem", "id", "line", "detail"):
        table.add_column(col, overflow="fold")
    for p in check.problems:
        table.add_row(p.kind, escape(p.id), str(p.line), escape(p.detail))
    for ident in check.missing[:SHOWN_ROWS]:
        table.add_row("missing id (stays unlabeled)", escape(ident), "", "")
    if len(check.missing) > SHOWN_ROWS:
        table.add_row("missing id (stays unlabeled)", f"… {len(check.missing) - SHOWN_ROWS} more", "", "")
    out.print(table)


# -- export ------------------------------------------------------------------------------------
@app.command("export")
def export(
    project: Annotated[str, typer.Option("--project", help="The labeling project's run id.")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the labeled set (CSV).")] = Path(
        "labeled.csv"
    ),
) -> None:
    """Write the project's labeled set (id,label,round) for training elsewhere."""
    from svpkit.labeling.files import EXPORT_COLUMNS, to_csv
    from svpkit.labeling.project import open_project

    opened = open_project(project)
    rows = opened.labeled()
    out_file.write_text(to_csv(EXPORT_COLUMNS, rows), encoding="utf-8")
    rounds = len({r for _, _, r in rows})
    out.print(f"wrote {len(rows)} labels from {rounds} rounds to {out_file} (the data set's own labels are not in it)")
