"""``svpkit active-learning``, ``svpkit core-set`` and ``svpkit train``: the SVP loops as commands."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from svpkit.api.args import ActiveLearningArgs, CoreSetArgs, TrainArgs, collect
from svpkit.api.flow import RunSettings
from svpkit.cli.base import app, err, out, uses_store
from svpkit.cli.options import DATA, RUN, SELECTION, CcsBins, CcsCutoff, Coverage, ScoreModels, Selector, with_shared
from svpkit.cli.runs import report_run
from svpkit.cli.tables import print_active_learning, print_core_set
from svpkit.contract import Tag


def _settings(shared: dict[str, Any]) -> RunSettings:
    return RunSettings(shared["experiment"], shared["run_name"], progress=not shared["quiet"])


# -- active learning ---------------------------------------------------------------------------
@app.command("active-learning")
@uses_store
@with_shared(DATA, SELECTION + RUN)
def active_learning(
    selector: Selector = "least_confidence",
    proxy: Annotated[
        str, typer.Option(help="Selector model: the proxy (or the target for a baseline).")
    ] = "digits_mlp",
    target: Annotated[str, typer.Option(help="Target model, trained at every budget level.")] = "digits_cnn",
    initial: Annotated[str, typer.Option(help="Initial labeled set: fraction in (0,1] or count.")] = "0.01",
    initial_selector: Annotated[
        str, typer.Option(help="Who picks the initial set: random, or a cold-start selector (typiclust, probcover).")
    ] = "random",
    stop_when: Annotated[
        str, typer.Option(help="End early when a stopping criterion holds: kappa:0.99[:3] or uncertainty:0.05[:1].")
    ] = "",
    budgets: Annotated[
        str, typer.Option(help="Cumulative labeled sizes: fractions or counts.")
    ] = "0.1,0.2,0.3,0.4,0.5",
    train_target: Annotated[bool, typer.Option(help="Train and evaluate the target at every budget level.")] = True,
    eval_sample: Annotated[
        int,
        typer.Option(help="Test examples (stratified, fixed) the selector model's error is measured on; 0: all."),
    ] = 10_000,
    resume: Annotated[
        Optional[str],
        typer.Option(help="Continue this interrupted run from its last finished round (its own parameters are used)."),
    ] = None,
    sync_batchnorm: Annotated[
        bool,
        typer.Option("--sync-batchnorm", help="Under torchrun on GPUs: BatchNorm statistics over all ranks' batches."),
    ] = False,
    **shared: Any,
) -> None:
    """Batch active learning: a selector model picks each batch, the target is trained at each level."""
    from svpkit.api.loops import run_active_learning_args

    given = collect(ActiveLearningArgs, locals() | shared)
    report_run(run_active_learning_args(given, _settings(shared), resume, sync_batchnorm), _report_active_learning)


def _report_active_learning(result: Any) -> None:
    """The rounds' table, then the proxy warning (svpkit.proxy_warning) in yellow."""
    print_active_learning(result)
    if result.proxy_warning:
        err.print(f"warning: {result.proxy_warning}", style="yellow", highlight=False)


# -- core-set selection ------------------------------------------------------------------------
@app.command("core-set")
@uses_store
@with_shared(DATA, SELECTION + RUN)
def core_set(
    selector: Annotated[str, typer.Option(help="Selector that ranks the training set.")] = "forgetting_events",
    proxy: Annotated[
        str, typer.Option(help="Model trained on all data to rank it (the target for a baseline).")
    ] = "digits_mlp",
    target: Annotated[str, typer.Option(help="Model trained from scratch on the kept subset.")] = "digits_cnn",
    keep: Annotated[
        Optional[str], typer.Option(help="Fraction of the training set to keep, in (0,1] (default 0.5).")
    ] = None,
    subset_size: Annotated[Optional[int], typer.Option(help="Number of examples to keep (instead of --keep).")] = None,
    seed_size: Annotated[
        str, typer.Option(help="k-center's random seed points: count or fraction (count toward the subset).")
    ] = "1000",
    full_run: Annotated[
        Optional[str], typer.Option(help="Run id of a train run of the target on all data (speed-up reference).")
    ] = None,
    compare_full: Annotated[
        str, typer.Option(help="true: train the target on all data in this run when no reference run exists.")
    ] = "false",
    coverage: Coverage = "none",
    ccs_cutoff: CcsCutoff = 0.0,
    ccs_bins: CcsBins = 50,
    score_models: ScoreModels = 1,
    resume: Annotated[
        Optional[str],
        typer.Option(help="Continue this interrupted run from its last finished stage (its own parameters are used)."),
    ] = None,
    **shared: Any,
) -> None:
    """Core-set selection: rank every training example with a proxy, train the target on the best part."""
    from svpkit.api.loops import run_core_set_args

    given = collect(CoreSetArgs, locals() | shared)
    ran = run_core_set_args(given, _settings(shared), resume)
    model = ran.tags[Tag.SELECTOR_MODEL]
    title = f"core-set: {ran.tags[Tag.SELECTOR]} via {model if model != 'none' else 'no model'}"
    report_run(ran, lambda r: print_core_set(r, title))


# -- training on all (or part) of the data ----------------------------------------------------
@app.command("train")
@uses_store
@with_shared(DATA, ("seed", "device", "deterministic", *RUN))
def train(
    target: Annotated[str, typer.Option(help="Model to train.")] = "digits_cnn",
    size: Annotated[
        str, typer.Option(help="Training examples: fraction in (0,1] or count (a seeded random subset); 1.0 = all.")
    ] = "1.0",
    target_epochs: Annotated[Optional[int], typer.Option(help="Train for this many epochs (schedule scaled).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Override the model's batch size.")] = None,
    target_options: Annotated[
        Optional[str], typer.Option(help="Options of the model, e.g. 'max_length=256' (svpkit models options NAME).")
    ] = None,
    **shared: Any,
) -> None:
    """Train a model on all (or part) of the training data: the reference for core-set speed-ups."""
    from svpkit.api.loops import run_train_args

    ran = run_train_args(collect(TrainArgs, locals() | shared), _settings(shared))
    subset, target_name, n = ran.tags[Tag.SUBSET_SIZE], ran.tags[Tag.TARGET_MODEL], ran.params["train_size"]

    def report(outcome: Any) -> None:
        out.print(
            f"{target_name} on {subset} of {n} examples: "
            f"test error {100 * outcome.test_error:.2f}%, {outcome.train_seconds:.2f} s training"
        )

    report_run(ran, report)
