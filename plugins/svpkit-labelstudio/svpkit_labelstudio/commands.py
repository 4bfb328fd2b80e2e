"""``svpkit ls-query``, ``svpkit ls-push`` and ``svpkit ls-label``: labeling rounds in Label Studio.

- ``ls-query`` is ``svpkit query`` (the same options: the core command, as the ``app`` the
  ``register_commands`` hook gets holds it, runs) plus the Label Studio options: it checks the
  server and the token first, then asks for the batch, then sends it to Label Studio as tasks;
- ``ls-push`` sends a project's newest round (again, when ``ls-query`` could not);
- ``ls-label`` pulls the round's annotations and imports them with ``svpkit.label(answers=...)``,
  as ``svpkit label FILE.csv`` imports a file.

svpkit's public surface only (``svpkit.load_dataset``, ``svpkit.label``, the lower layers); never
the CLI's modules (tests/test_architecture.py checks).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Optional, Union

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from svpkit.errors import ConfigError
from svpkit_labelstudio.names import DOCUMENT_ROOT_ENV, TAG_PROJECT, TAG_URL, TOKEN_ENV, URL_ENV

out = Console(width=None if sys.stdout.isatty() else 160)
"""Where the commands print (as svpkit's own commands do)."""
_CORE: dict[str, Callable[..., Any]] = {}
"""The core commands ``ls-query`` wraps, from the app (:func:`register`)."""

LabelStudioUrl = Annotated[
    Optional[str],
    typer.Option(
        "--label-studio",
        envvar=URL_ENV,
        help="The Label Studio server, e.g. http://localhost:8080 (default: the project's, or $LABEL_STUDIO_URL).",
    ),
]
Token = Annotated[
    Optional[str],
    typer.Option(
        "--ls-token",
        envvar=TOKEN_ENV,
        show_default=False,
        help="A Label Studio personal access token or legacy API token (default: $LABEL_STUDIO_API_KEY).",
    ),
]
LsProject = Annotated[
    Optional[str],
    typer.Option(
        "--ls-project", help="The Label Studio project: an id, or a title (reused when it exists, else created)."
    ),
]
DocumentRoot = Annotated[
    Optional[str],
    typer.Option(
        "--ls-document-root",
        envvar=DOCUMENT_ROOT_ENV,
        help="The server's local-files document root (image folders must lie under it).",
    ),
]


def _keyword(name: str, annotation: Any) -> inspect.Parameter:
    """An option the Label Studio commands add to a core command's (keyword-only, default None)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


LS_OPTIONS = {
    p.name: p
    for p in (
        _keyword("label_studio", LabelStudioUrl),
        _keyword("ls_project", LsProject),
        _keyword("ls_token", Token),
        _keyword("ls_document_root", DocumentRoot),
    )
}


def _target(project_id: Optional[str], url: Optional[str], ls_project: Optional[str]) -> Any:
    """The server and project: given, else the ones the svpkit project's run already uses."""
    from svpkit.tracking import get_run_record
    from svpkit_labelstudio.rounds import Target

    tags = get_run_record(project_id).tags if project_id else {}
    url = url or tags.get(TAG_URL)
    ls_project = ls_project or tags.get(TAG_PROJECT)
    if not url:
        raise ConfigError("no Label Studio server: give --label-studio URL (or set $LABEL_STUDIO_URL)")
    if not ls_project:
        raise ConfigError("no Label Studio project: give --ls-project NAME|ID")
    return Target(url, ls_project)


def ls_query(**kwargs: Any) -> None:
    """`svpkit query` with the batch sent to Label Studio as tasks (with the proxy's predictions)."""
    from svpkit.api.args import args_of
    from svpkit.api.labeling import QueryArgs, project_settings
    from svpkit_labelstudio.client import connect
    from svpkit_labelstudio.rounds import prepare_source, push_round

    ls_args = {name: kwargs.pop(name) for name in LS_OPTIONS}
    project_id = kwargs.get("project") or None
    target = _target(project_id, ls_args["label_studio"], ls_args["ls_project"])
    ls = connect(target.url, ls_args["ls_token"])  # a wrong token or server: nothing has happened yet
    if target.project.isdigit():
        target.existing(ls)  # an id that does not exist is an error now, not after the query
    # The project's own settings over the given ones, as `svpkit query` resolves them (svpkit.api.labeling).
    _, settings = project_settings(project_id, args_of(QueryArgs, kwargs))
    limits = (settings.train_limit, settings.test_limit, settings.dataset_options)
    source = prepare_source(
        settings.dataset,
        settings.data_path,
        ls_args["ls_document_root"],
        lambda: load_dataset(settings.dataset, settings.data_path, *limits),
    )
    project = _CORE["query"](**kwargs)
    info, _ = push_round(ls, project, target, source)
    out.print(
        f"round {info['round']}: {len(info['tasks'])} tasks in Label Studio project {info['project']} "
        f"({ls.url}/projects/{info['project']}/data); pull the annotations with "
        f"`svpkit ls-label --project {project.run_id}`"
    )


def ls_push(
    project: Annotated[str, typer.Option("--project", help="The labeling project's run id.")],
    label_studio: LabelStudioUrl = None,
    ls_project: Annotated[
        Optional[str], typer.Option("--ls-project", help="The Label Studio project: an id, or a title.")
    ] = None,
    ls_token: Token = None,
    ls_document_root: Annotated[
        Optional[str], typer.Option("--ls-document-root", envvar=DOCUMENT_ROOT_ENV, help="The server's document root.")
    ] = None,
    data_path: Annotated[Optional[str], typer.Option("--data-path", help="Where the data set is now.")] = None,
) -> None:
    """Send the project's newest round to Label Studio (nothing when it was sent already)."""
    from svpkit.labeling.project import open_project
    from svpkit_labelstudio.client import connect
    from svpkit_labelstudio.rounds import prepare_source, push_round

    target = _target(project, label_studio, ls_project)
    ls = connect(target.url, ls_token)
    opened = open_project(project)
    inv = opened.invocation
    path = data_path or inv.get("data_path")
    source = prepare_source(
        inv["dataset"],
        path,
        ls_document_root,
        lambda: load_dataset(
            inv["dataset"], path, inv.get("train_limit"), inv.get("test_limit"), inv.get("dataset_options")
        ),
    )
    info, imported = push_round(ls, opened, target, source)
    what = "sent" if imported else "already in Label Studio"
    out.print(f"round {info['round']}: {len(info['tasks'])} tasks {what} (project {info['project']})")


def ls_label(
    project: Annotated[str, typer.Option("--project", help="The labeling project's run id.")],
    take_finished: Annotated[
        bool,
        typer.Option(
            "--take-finished",
            help="Import the finished tasks of a round that still has open ones (default: nothing until all are done).",
        ),
    ] = False,
    label_studio: LabelStudioUrl = None,
    ls_token: Token = None,
) -> None:
    """Import the annotations of the newest round's Label Studio tasks, checked like `svpkit label FILE.csv`."""
    import svpkit
    from svpkit.labeling.files import Answer
    from svpkit.labeling.project import open_project
    from svpkit_labelstudio.client import connect
    from svpkit_labelstudio.rounds import drifts, pull_round, read_round_info

    opened = open_project(project)
    latest = opened.latest
    if latest is None:
        raise ConfigError(f"project {project} has not asked for a batch yet: run `svpkit ls-query` first")
    info = read_round_info(project, latest.round)
    if info is None:
        raise ConfigError(f"round {latest.round} of project {project} is not in Label Studio: run `svpkit ls-push`")
    ls = connect(label_studio or str(info["url"]), ls_token)
    tasks = ls.tasks(int(info["project"]))
    pulled = {latest.round: pull_round(ls, info, tasks)}
    for r in opened.rounds[:-1]:
        earlier = read_round_info(project, r.round)
        if earlier is not None and int(earlier["project"]) == int(info["project"]):
            pulled[r.round] = pull_round(ls, earlier, tasks)
    now = pulled[latest.round]
    _print_status(latest.round, now, len(latest.batch))
    if now.open and not take_finished:
        raise ConfigError(
            f"{len(now.open)} of round {latest.round}'s {len(latest.batch)} tasks are still open in Label Studio; "
            f"nothing imported (--take-finished imports the {len(now.answers)} finished ones)"
        )
    if now.unreadable:
        ident, what = next(iter(now.unreadable.items()))
        raise ConfigError(
            f"{len(now.unreadable)} annotations choose no single class (task {now.task_of[ident]}: {what}); nothing imported"
        )
    answers = [Answer(now.task_of[i], i, label) for i, label in now.answers.items()]
    try:
        done = svpkit.label(project=project, answers=answers, source=f"round {latest.round}'s annotations")
    except svpkit.AnswersRejected as rejected:
        table = Table(title=f"annotations of round {latest.round}")
        for col in ("problem", "id", "task", "detail"):
            table.add_column(col, overflow="fold")
        for p in rejected.check.problems:
            table.add_row(p.kind, escape(p.id), str(p.line), escape(p.detail))
        out.print(table)
        kinds = ", ".join(sorted({p.kind for p in rejected.check.problems}))
        problems = len(rejected.check.problems)
        raise ConfigError(f"{problems} annotations cannot be imported ({kinds}); nothing imported") from None
    check, updated = done.check, done.updated
    changed = {i: check.round.answers[i] for i in check.changed}
    if updated is None:
        out.print(f"nothing changed: project {project} already holds these answers for round {latest.round}")
    else:
        out.print(f"imported {len(check.accepted)} answers for round {latest.round} (labels/round_{latest.round}.csv)")
    for ident, old in changed.items():
        out.print(f"changed in Label Studio after import: {escape(ident)}: {old} → {check.accepted[ident]} (imported)")
    for d in drifts(updated or opened, pulled, closed_only=False):
        kept = "round closed" if d.round != latest.round else "not an answer"
        out.print(
            f"changed in Label Studio after import: round {d.round} {escape(d.id)}: {d.imported} → {d.now} "
            f"(svpkit keeps {d.imported}: {kept})"
        )
    out.print(f"project {project}: {len((updated or opened).labeled())} imported labels")


def _print_status(round_no: int, pulled: Any, total: int) -> None:
    out.print(
        f"round {round_no} in Label Studio: {len(pulled.answers)} of {total} tasks annotated, "
        f"{len(pulled.skipped)} skipped, {len(pulled.open)} open"
        + (f", {len(pulled.missing)} deleted" if pulled.missing else "")
    )
    if pulled.skipped:
        shown = ", ".join(pulled.skipped[:10]) + (" …" if len(pulled.skipped) > 10 else "")
        out.print(f"skipped (cancelled) in Label Studio, they stay unlabeled: {escape(shown)}")


def register(app: typer.Typer) -> None:
    """Add the commands; ``ls-query`` takes the options of the app's ``query`` command and its own."""
    core = next((c.callback for c in app.registered_commands if c.name == "query" and c.callback is not None), None)
    if core is None:
        raise ConfigError("the svpkit app has no query command for ls-query to wrap")
    _CORE["query"] = core
    ls_query.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*inspect.signature(core).parameters.values(), *LS_OPTIONS.values()]
    )
    app.command("ls-query")(ls_query)
    app.command("ls-push")(ls_push)
    app.command("ls-label")(ls_label)


def load_dataset(
    name: str,
    path: Optional[str],
    train_limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    dataset_options: Union[Mapping[str, Any], str, None] = None,
) -> Any:
    """The project's data set by name, as ``svpkit query`` loads it (options and limits included)."""
    import svpkit

    return svpkit.load_dataset(name, path, train_limit, test_limit, dataset_options)
