"""``svpkit compare``, ``svpkit correlate`` and ``svpkit run PRESET``: working over many runs."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from svpkit.cli.base import app, err, out, print_run_link, uses_store
from svpkit.cli.options import RunName

if TYPE_CHECKING:
    from svpkit.presets import LoopCommands


@app.command("correlate")
@uses_store
def correlate(
    run_ids: Annotated[
        Optional[list[str]], typer.Argument(help="Runs to compare (core-set or active-learning).")
    ] = None,
    runs: Annotated[Optional[str], typer.Option("--runs", help="More run ids, comma- or space-separated.")] = None,
    experiment: Annotated[
        Optional[str], typer.Option(help="Experiment to search (and to log to; default 'svpkit').")
    ] = None,
    filters: Annotated[
        Optional[list[str]],
        typer.Option("--filter", help="MLflow filter on the searched runs, e.g. \"tags.svpkit.loop = 'core_set'\"."),
    ] = None,
    round_no: Annotated[int, typer.Option("--round", help="Which active-learning round's pool scores to use.")] = 1,
    k: Annotated[str, typer.Option(help="Overlap@k sizes: counts or fractions of the shared examples.")] = "0.1,0.5",
    run_name: RunName = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the tables.")] = False,
) -> None:
    """Spearman/Pearson rank correlation and overlap@k between the rankings of several runs."""
    from svpkit import tracking
    from svpkit.analysis import correlation

    ids = [*(run_ids or []), *((runs or "").replace(",", " ").split())]
    experiment = experiment or None
    filter_text = " and ".join(f.strip() for f in (filters or []) if f.strip())
    data = correlation.load_rankings(ids, experiment, filter_text, round_no)
    report = correlation.correlate(data, correlation.parse_k(k, data.num_shared), round_no)
    for table in correlation.rich_tables(report):
        out.print(table)
    for note in report.notes:
        err.print(f"note: {note}", style="yellow", highlight=False)
    exp_name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if exp_name is None and not os.environ.get("MLFLOW_EXPERIMENT_ID"):
        exp_name = tracking.experiment_name(data.sources[0].experiment_id)
    with tracking.tracked_run(exp_name, run_name or f"correlate-{len(data.sources)}-runs", report.tags()) as tracker:
        correlation.log_report(tracker, report)
    print_run_link(tracker.experiment_id, tracker.run_id)


@app.command("compare")
@uses_store
def compare(
    experiment: Annotated[
        Optional[str], typer.Option(help="Experiment to compare (default: 'svpkit', or mlflow run's).")
    ] = None,
    log: Annotated[bool, typer.Option("--log/--no-log", help="Log tables and figures to a new compare run.")] = True,
    run_name: RunName = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tables as JSON.")] = False,
) -> None:
    """Pair proxy runs with their baseline: target error and data-selection speed-up per budget level."""
    from svpkit.analysis import compare as comparison
    from svpkit.api.analysis import compare as run_compare

    done = run_compare(experiment, log=log, run_name=run_name)
    if as_json:
        print(comparison.as_json(done.comparison))
    else:
        for table in comparison.rich_tables(done.comparison):
            out.print(table)
        for line in comparison.summary_lines(done.comparison):
            err.print(f"note: {line}", highlight=False)
    if done.run_id:
        print_run_link(str(done.experiment_id), done.run_id)


@app.command("run")
@uses_store
def run_preset(
    preset: Annotated[str, typer.Argument(help="A preset TOML file, e.g. projects/digits_quick.toml.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the runs (and which are done) without running.")
    ] = False,
    experiment: Annotated[Optional[str], typer.Option(help="Override the preset's experiment name.")] = None,
    subprocess_runs: Annotated[
        bool, typer.Option("--subprocess/--in-process", help="Run each run in its own Python process.")
    ] = False,
    compare_after: Annotated[bool, typer.Option("--compare/--no-compare", help="End with svpkit compare.")] = True,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel", "-j", help="Runs at once as separate processes (at most one per GPU when there are GPUs)."
        ),
    ] = 1,
    backend: Annotated[
        Optional[str],
        typer.Option(help="Submit every run through MLflow Projects' backend instead: local, kubernetes, ..."),
    ] = None,
    backend_config: Annotated[
        Optional[str], typer.Option(help="The backend's config, e.g. kubernetes_config.json.")
    ] = None,
    project: Annotated[
        Optional[str],
        typer.Option(help="MLproject directory for --backend (default: the repository; docker/ for kubernetes)."),
    ] = None,
) -> None:
    """Expand a preset into runs, skip the ones already FINISHED, run the rest, then compare."""
    from svpkit import presets

    presets.run_preset(
        preset,
        loop_commands(),
        dry_run=dry_run,
        experiment=experiment or None,
        subprocess_runs=subprocess_runs,
        compare=compare_after,
        parallel=parallel,
        backend=backend or None,
        backend_config=backend_config or None,
        project=project or None,
        out=out,
        err=err,
    )


def loop_commands() -> LoopCommands:
    """What presets need of the loop commands: their options, their parsing, and a way to run one in this process."""
    import click
    import typer.main

    from svpkit.api.entries import preset_schema
    from svpkit.presets import LOOP_COMMANDS, CommandOption, LoopCommands, RejectedArguments

    group = typer.main.get_command(app)
    commands = {loop: group.commands[command] for loop, command in LOOP_COMMANDS.items()}  # type: ignore[attr-defined]
    options = {
        loop: {name: CommandOption(*spelling) for name, spelling in preset_schema(command).items()}
        for loop, command in LOOP_COMMANDS.items()
    }

    def parse(loop: str, args: list[str]) -> dict[str, object]:
        try:
            with commands[loop].make_context(LOOP_COMMANDS[loop], list(args)) as ctx:
                return dict(ctx.params)
        except click.ClickException as exc:
            raise RejectedArguments(exc.format_message()) from None

    return LoopCommands(options, parse)
