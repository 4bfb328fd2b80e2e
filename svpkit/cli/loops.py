"""``svpkit active-learning``, ``svpkit core-set`` and ``svpkit train``: the SVP loops as commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple, Optional

import typer

from svpkit.cli.base import app, err, out, plugins, uses_store
from svpkit.cli.options import (
    DATA,
    RUN,
    SELECTION,
    CcsBins,
    CcsCutoff,
    Coverage,
    ScoreModels,
    Selector,
    opt_int,
    parse_bool,
    parse_deterministic,
    with_shared,
)
from svpkit.cli.runs import LoopArgs, LoopRun, ResumeState, collect, prepare, resolve_resume, run_tracked, validated
from svpkit.cli.tables import print_active_learning, print_core_set
from svpkit.errors import SvpkitError
from svpkit.loops.budgets import one_size, parse_fraction, parse_sizes


@dataclass
class SelectionArgs(LoopArgs):
    """The arguments both selection loops take."""

    selector: str
    proxy: str
    target: str
    seed: int
    device: str
    proxy_epochs: Optional[int]
    target_epochs: Optional[int]
    batch_size: Optional[int]
    agreement: str
    deterministic: str
    proxy_options: Optional[str]
    target_options: Optional[str]
    selector_options: Optional[str]
    class_balance: str


@dataclass
class ActiveLearningArgs(SelectionArgs):
    initial: str
    budgets: str
    train_target: bool


@dataclass
class CoreSetArgs(SelectionArgs):
    keep: Optional[str]
    subset_size: Optional[int]
    seed_size: str
    full_run: Optional[str]
    compare_full: str
    coverage: str
    ccs_cutoff: float
    ccs_bins: int
    score_models: int


@dataclass
class TrainArgs(LoopArgs):
    target: str
    size: str
    seed: int
    device: str
    target_epochs: Optional[int]
    batch_size: Optional[int]
    target_options: Optional[str]


class Specs(NamedTuple):
    """The selector, the selector model (proxy) and the target of a selection run."""

    selector: Any
    proxy: Any
    target: Any

    @classmethod
    def look_up(cls, args: SelectionArgs) -> Specs:
        registered = plugins()
        return cls(
            registered.selectors.get(args.selector),
            registered.models.get(args.proxy),
            registered.models.get(args.target),
        )

    def config(self, args: SelectionArgs, device: str) -> dict[str, Any]:
        """The config fields both selection loops take (after each loop's own, so errors come in that order)."""
        from svpkit.learners.options import parse_model_options
        from svpkit.selectors.base import parse_selector_options

        return {
            "seed": args.seed,
            "device": device,
            "proxy_epochs": opt_int(args.proxy_epochs),
            "target_epochs": opt_int(args.target_epochs),
            "batch_size": opt_int(args.batch_size),
            "deterministic": parse_deterministic(args.deterministic, device),
            "agreement": args.agreement,
            "proxy_options": parse_model_options(self.proxy, args.proxy_options, "--proxy-options"),
            "target_options": parse_model_options(self.target, args.target_options, "--target-options"),
            "selector_options": parse_selector_options(self.selector, args.selector_options),
            "class_balance": parse_bool(args.class_balance, "class-balance"),
        }

    def selector_model(self, random: str) -> str:
        """The proxy's name, or ``random`` for a selector that needs no model."""
        return self.proxy.name if self.selector.needs else random

    def run_name(self, prefix: str, args: SelectionArgs) -> str:
        return f"{prefix}-{args.selector}-{self.selector_model('random')}-s{args.seed}"


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
    initial: Annotated[str, typer.Option(help="Random initial labeled set: fraction in (0,1] or count.")] = "0.01",
    budgets: Annotated[
        str, typer.Option(help="Cumulative labeled sizes: fractions or counts.")
    ] = "0.1,0.2,0.3,0.4,0.5",
    train_target: Annotated[bool, typer.Option(help="Train and evaluate the target at every budget level.")] = True,
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
    from svpkit import parallel
    from svpkit.loops.active_learning import describe_run, run_active_learning

    given = collect(ActiveLearningArgs, locals() | shared)
    # Under torchrun: join the process group; only rank 0 reads or writes MLflow.
    dist_info = parallel.init_from_env(given.device, sync_batchnorm)
    resumed = resolve_resume("active_learning", resume, given)
    args = resumed.args
    data, (specs, cfg) = prepare(args, args.device, dist_info, lambda on: _active_learning_config(args, on))
    tags, params = describe_run(data, *specs, cfg)  # validates the budgets
    name = shared["run_name"] or specs.run_name("al", args)
    run = LoopRun(run_active_learning, (data, *specs, cfg), name, tags, params, resumed=resumed)
    run_tracked(
        run, experiment=shared["experiment"], dist_info=dist_info, quiet=shared["quiet"], report=_report_active_learning
    )


def _report_active_learning(result: Any) -> None:
    """The rounds' table, then the proxy warning (svpkit.proxy_warning) in yellow."""
    print_active_learning(result)
    if result.proxy_warning:
        err.print(f"warning: {result.proxy_warning}", style="yellow", highlight=False)


def _active_learning_config(args: ActiveLearningArgs, device: str) -> tuple[Specs, Any]:
    from svpkit.loops.active_learning import ALConfig

    specs = Specs.look_up(args)
    initial = one_size(args.initial, "initial")
    budgets = parse_sizes(args.budgets)
    return specs, ALConfig(
        initial=initial, budgets=budgets, train_target=args.train_target, **specs.config(args, device)
    )


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
    from svpkit import parallel
    from svpkit.loops.core_set import describe_run, run_core_set

    given = collect(CoreSetArgs, locals() | shared)
    # Under torchrun: DDP training on every rank; only rank 0 reads or writes MLflow.
    dist_info = parallel.init_from_env(given.device)
    resumed = resolve_resume("core_set", resume, given)
    args = resumed.args
    data, (specs, cfg) = prepare(args, args.device, dist_info, lambda on: _core_set_config(args, on))
    describe_run(data, *specs, cfg)  # validates sizes before any run exists
    if dist_info.is_main:  # the full-data reference is looked up on rank 0 and broadcast
        cfg.full_reference = _full_reference(resumed, shared["experiment"], data, specs.target, cfg)
    cfg.full_reference = parallel.from_main(lambda: cfg.full_reference)
    tags, params = describe_run(data, *specs, cfg)
    first_state = {"loop": "core_set", "round": 0}  # resumable from its first stage on
    name = shared["run_name"] or specs.run_name("cs", args)
    run = LoopRun(run_core_set, (data, *specs, cfg), name, tags, params, first_state, resumed)
    title = f"core-set: {args.selector} via {specs.selector_model('no model')}"
    run_tracked(
        run,
        experiment=shared["experiment"],
        dist_info=dist_info,
        quiet=shared["quiet"],
        report=lambda r: print_core_set(r, title),
    )


def _core_set_config(args: CoreSetArgs, device: str) -> tuple[Specs, Any]:
    from svpkit.loops.core_set import CoreSetConfig

    specs = Specs.look_up(args)
    keep = parse_fraction(args.keep, "keep")
    seed_size = one_size(args.seed_size, "seed size")
    compare_full = parse_bool(args.compare_full, "compare-full")
    subset_size = None if not args.subset_size else args.subset_size  # the MLproject's "0" means "not given"
    given = {k: getattr(args, k) for k in ("coverage", "ccs_cutoff", "ccs_bins", "score_models")}
    given |= {"keep": keep, "subset_size": subset_size, "seed_size": seed_size, "compare_full": compare_full}
    return specs, CoreSetConfig(**given, **specs.config(args, device))


def _full_reference(
    resumed: ResumeState[CoreSetArgs], experiment: Optional[str], data: Any, target: Any, cfg: Any
) -> Any:
    """The speed-up reference: ``--full-run``, else a matching ``train`` run of the experiment."""
    from svpkit import tracking
    from svpkit.loops.reference import FullReference, choose_full_reference, full_reference_mismatch

    full_run = resumed.args.full_run
    if resumed.point is not None:  # the same reference as before the interruption (no new search)
        tagged = resumed.point.tags.get("svpkit.full_run")
        full_run = tagged if tagged != "this run" else None
    if full_run:
        record = tracking.get_run_record(full_run)
        reason = full_reference_mismatch(record, data, target, cfg, strict=False)
        if reason:
            raise SvpkitError(f"run {full_run} cannot be the full-data reference: {reason}")
        chosen = choose_full_reference([record], data, target, cfg)
        if chosen is None:  # a reference the user chose, though its settings differ: its own numbers
            m = record.metrics
            chosen = FullReference(float(m["target/train_seconds"]), float(m["target/test_error"]), record.run_id)
        return chosen
    if resumed.point is None:
        exp_id = tracking.experiment_id_for(experiment)
        if exp_id is not None:
            records = tracking.find_runs([exp_id], "tags.`svpkit.loop` = 'train'")
            return choose_full_reference(records, data, target, cfg)
    return cfg.full_reference


# -- training on all (or part) of the data ----------------------------------------------------
@app.command("train")
@uses_store
@with_shared(DATA, ("seed", "device", *RUN))
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
    from svpkit import parallel
    from svpkit.loops.train import describe_train_run, run_train

    args = validated("train", collect(TrainArgs, locals() | shared))
    dist_info = parallel.init_from_env(args.device)  # torchrun: DDP; only rank 0 logs
    data, (target_spec, cfg) = prepare(args, args.device, dist_info, lambda on: _train_config(args, on))
    tags, params = describe_train_run(data, target_spec, cfg)
    subset = tags["svpkit.subset_size"]
    name = shared["run_name"] or f"train-{target_spec.name}-{subset}-s{args.seed}"
    run = LoopRun(run_train, (data, target_spec, cfg), name, tags, params)

    def report(outcome: Any) -> None:
        out.print(
            f"{target_spec.name} on {subset} of {len(data.train)} examples: "
            f"test error {100 * outcome.test_error:.2f}%, {outcome.train_seconds:.2f} s training"
        )

    run_tracked(run, experiment=shared["experiment"], dist_info=dist_info, quiet=shared["quiet"], report=report)


def _train_config(args: TrainArgs, device: str) -> tuple[Any, Any]:
    from svpkit.learners.options import parse_model_options
    from svpkit.loops.train import TrainRunConfig

    target_spec = plugins().models.get(args.target)
    cfg = TrainRunConfig(
        size=one_size(args.size, "size"),
        seed=args.seed,
        device=device,
        target_epochs=opt_int(args.target_epochs),
        batch_size=opt_int(args.batch_size),
        target_options=parse_model_options(target_spec, args.target_options, "--target-options"),
    )
    return target_spec, cfg
