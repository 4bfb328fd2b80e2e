"""``svpkit suggest-proxy``: which cheap model picks what the target would, measured on a pilot."""

from __future__ import annotations

from typing import Any

from svpkit.api.flow import RunSettings
from svpkit.cli.base import app, out, print_run_link
from svpkit.cli.options import settings_of, takes_settings


@app.command("suggest-proxy")
@takes_settings("suggest-proxy")
def suggest_proxy(**values: Any) -> None:
    """Train the target and each candidate on a pilot, compare their picks, recommend the cheapest that agrees."""
    from svpkit.analysis import suggest_report
    from svpkit.api.suggest import SuggestArgs, suggest_proxy_args

    as_json = values["as_json"]
    done = suggest_proxy_args(
        settings_of(SuggestArgs, values),
        RunSettings(values["experiment"], values["run_name"], progress=not (values["quiet"] or as_json)),
    )
    report = done.report
    if as_json:
        print(suggest_report.dumps(report))
        return
    out.print(suggest_report.rich_table(report))
    style = "green" if report.recommendation.choice is not None else "yellow"
    out.print(f"recommendation: {report.recommendation.message}", style=style, highlight=False)
    print_run_link(str(done.experiment_id), str(done.run_id))
