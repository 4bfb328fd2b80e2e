"""``svpkit suggest-proxy``: which cheap model picks what the target would, measured on a pilot."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from svpkit.cli.base import app, out, plugins, print_run_link
from svpkit.cli.options import DATA, RUN, opt_int, with_shared
from svpkit.errors import ConfigError


@app.command("suggest-proxy")
@with_shared(DATA, ("target_epochs", "target_options", "seed", "device", "batch_size", *RUN))
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
    from svpkit import tracking
    from svpkit.analysis import suggest, suggest_report
    from svpkit.cli.runs import load_dataset
    from svpkit.loops.budgets import one_size
    from svpkit.loops.suggest import SuggestConfig, check_seeds, pilot_size, run_suggest
    from svpkit.progress import make_progress
    from svpkit.runtime import resolve_device

    seed, device = shared["seed"], shared["device"]
    suggest.check_min_overlap(min_overlap)
    suggest.check_min_spearman(min_spearman)
    parsed = suggest.parse_candidates(candidates)
    selector_spec = plugins().selectors.get(selector)
    if not selector_spec.needs:
        raise ConfigError(f"selector {selector!r} uses no model: there is no proxy to choose")
    target_model = _contender(target, opt_int(shared["target_epochs"]), shared["target_options"], "--target-options")
    contenders = [_contender(c.name, c.epochs, c.options, f"candidate {c.text!r}", c.text) for c in parsed]
    cfg = SuggestConfig(one_size(pilot, "pilot"), k, check_seeds(seeds), seed, device, opt_int(shared["batch_size"]))
    resolve_device(device)
    data = load_dataset(*(shared[option] for option in DATA))
    for model in [target_model, *contenders]:
        if data.modality not in model.spec.modalities:
            raise ConfigError(f"{model.label}: model {model.spec.name!r} does not read {data.modality} inputs")
    count = pilot_size(cfg.pilot, len(data.train), k)
    with make_progress(shared["quiet"] or as_json):
        rows = run_suggest(data, selector_spec, target_model, contenders, cfg)
    meta = {"dataset": data.name, "selector": selector, "target": target_model.label, "pilot": count, "k": k}
    report = suggest_report.summarise(rows, parsed, meta, min_overlap, min_spearman)
    params = {**meta, "candidates": candidates, "seeds": seeds, "seed": seed, "device": device}
    params |= {"min_overlap": min_overlap, "min_spearman": min_spearman, "dataset_digest": data.digest}
    name = shared["run_name"] or f"suggest-{target}-{selector}-s{seed}"
    with tracking.tracked_run(shared["experiment"] or None, name, suggest_report.tags(report)) as tracker:
        suggest_report.log_report(tracker, report, params)
    if as_json:
        print(suggest_report.dumps(report))
        return
    out.print(suggest_report.rich_table(report))
    style = "green" if report.recommendation.choice is not None else "yellow"
    out.print(f"recommendation: {report.recommendation.message}", style=style, highlight=False)
    print_run_link(tracker.experiment_id, tracker.run_id)


def _contender(name: str, epochs: Optional[int], options: Optional[str], flag: str, label: str = "") -> Any:
    """A target or candidate with its options checked against the model (svpkit.learners.options)."""
    from svpkit.learners.options import parse_model_options
    from svpkit.loops.suggest import Contender

    spec = plugins().models.get(name)
    return Contender(label or name, spec, epochs, parse_model_options(spec, options or None, flag))
