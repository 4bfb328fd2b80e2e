"""``svpkit query``, ``svpkit label`` and ``svpkit export``: labeling your own data (docs/labeling.md).

A project is one MLflow run (``svpkit.loop=labeling``). ``query`` trains the proxy on what is
labeled so far and asks for the next batch; ``label`` imports the annotators' answers to it;
``export`` writes every imported label for training elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from svpkit.cli.base import app, out, print_run_link
from svpkit.cli.options import settings_of, takes_settings
from svpkit.cli.tables import percent

if TYPE_CHECKING:
    from svpkit.data.base import Dataset
    from svpkit.labeling.project import Project
    from svpkit.labeling.session import AnswerCheck
    from svpkit.loops.labeling import QueryRound

SHOWN_ROWS = 10


@app.command("query")
@takes_settings("query")
def query(**values: Any) -> Any:  # the updated Project (Any: typer resolves these hints at import time)
    """Ask for the next batch to label: the proxy, trained on the labels so far, picks k of the unlabeled pool."""
    from svpkit.api.labeling import QueryArgs, StopCriterionHolds, query_args

    given, out_file = settings_of(QueryArgs, values), values["out"]
    try:
        done = query_args(
            given,
            values["k"],
            values["project"] or None,
            out_file,
            (values["experiment"], values["run_name"]),
            not values["quiet"],
        )
    except StopCriterionHolds as stop:  # not an error: the project is done (docs/labeling.md)
        out.print(f"stop: {stop}; no batch written (`--stop-when off` asks anyway)")
        raise typer.Exit(StopCriterionHolds.exit_code) from None
    _print_query(done.project, done.round, done.dataset, out_file)
    print_run_link(done.experiment_id, done.run_id)
    return done.project  # for commands that wrap this one (the Label Studio plugin's ls-query)


def _print_query(project: Project, result: QueryRound, data: Dataset, out_file: Optional[str]) -> None:
    from svpkit.contract import to_label_artifact

    out.print(f"round {result.round}: {result.reason}")
    stopping = project.latest.stopping if project.latest else None
    if stopping is not None:  # svpkit.loops.stopping: after each round of labels, how settled the proxy is
        k = "—" if stopping["kappa"] is None else f"{stopping['kappa']:.3f}"
        out.print(f"stopping criteria: kappa vs the previous proxy {k}, mean uncertainty {stopping['uncertainty']:.3f}")
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
    from svpkit.api.labeling import AnswersRejected
    from svpkit.api.labeling import label as import_answers

    try:
        done = import_answers(file, project=project)
    except AnswersRejected as exc:
        _print_problems(exc.check)
        raise
    check, r = done.check, done.check.round
    if done.updated is None:
        out.print(f"nothing changed: project {project} already holds these answers for round {r.round}")
    else:
        changed = f", {len(check.changed)} changed" if check.changed else ""
        out.print(f"imported {len(check.accepted)} answers for round {r.round}{changed} (labels/round_{r.round}.csv)")
    if check.missing:
        _print_problems(check)
        out.print(f"{len(check.missing)} of the batch's {len(r.batch)} stay unlabeled (back in the pool next query)")
    out.print(f"project {project}: {len(done.project.labeled())} imported labels")
    _print_stop_status(done.project)


def _print_stop_status(project: Project) -> None:
    """After an import: where the project's ``--stop-when`` stands (the proxies so far)."""
    from svpkit.labeling.session import STOP_OFF, stop_status

    rule = project.invocation.get("stop_when")
    if rule in STOP_OFF:
        return
    if holds := stop_status(project, rule):
        out.print(f"stop: the stopping criterion {rule} holds: {holds}; stop labeling")
    else:
        proxies = sum(1 for r in project.rounds if r.stopping)
        out.print(
            f"stopping criterion {rule}: not met after {proxies} proxies; the next query checks it with these labels"
        )


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
