"""``svpkit suggest-proxy``: which cheap model picks what the target would, measured on a pilot."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from svpkit.cli.base import app, out, print_run_link
from svpkit.cli.options import DATA, RUN, with_shared


@app.command("suggest-proxy")
@with_shared(DATA, ("target_epochs", "target_options", "seed", "device", "batch_size", "deterministic", *RUN))
def suggest_proxy(
    target: Annotated[str, typer.Option(help="The target model the proxy selects for.")] = "digits_cnn",
    selector: Annotated[str, typer.Option(help="Selector (svpkit selectors list); it must use a model.")] = (
        "least_confidence"
    ),
    candidates: Annotated[
        str, typer.Option(help="Proxies to try: model[:epochs][{options}], comma-separated.")
    ] = "digits_mlp:10,digits_cnn:3,digits_cnn:10",
    pilot: Annotated[
        str, typer.Option(help="The random pilot labeled set: fraction of the training set in (0,1) or count.")
    ] = "0.1",
    k: Annotated[int, typer.Option("--k", help="The batch each model picks from the rest (the pool).")] = 100,
    seeds: Annotated[int, typer.Option(help="Pilots (seeds SEED, SEED+1, ...) the agreement is averaged over.")] = 3,
    min_overlap: Annotated[float, typer.Option(help="Top-k overlap a recommended proxy reaches, in [0, 1].")] = 0.5,
    min_spearman: Annotated[float, typer.Option(help="Spearman a recommended proxy reaches, in [-1, 1].")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (for scripts).")] = False,
    **shared: Any,
) -> None:
    """Train the target and each candidate on a pilot, compare their picks, recommend the cheapest that agrees."""
    from svpkit.analysis import suggest_report
    from svpkit.api.suggest import suggest_proxy as run_suggest_proxy

    quiet = shared.pop("quiet")
    done = run_suggest_proxy(
        target=target,
        selector=selector,
        candidates=candidates,
        pilot=pilot,
        k=k,
        seeds=seeds,
        min_overlap=min_overlap,
        min_spearman=min_spearman,
        **shared,
        progress=not (quiet or as_json),
    )
    report = done.report
    if as_json:
        print(suggest_report.dumps(report))
        return
    out.print(suggest_report.rich_table(report))
    style = "green" if report.recommendation.choice is not None else "yellow"
    out.print(f"recommendation: {report.recommendation.message}", style=style, highlight=False)
    print_run_link(str(done.experiment_id), str(done.run_id))
