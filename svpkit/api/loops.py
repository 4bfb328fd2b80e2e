"""The SVP loops as functions: ``active_learning``, ``core_set`` and ``train``.

Each takes the settings of its command as keyword arguments (Python values or the command line's
text), validates them once (:mod:`svpkit.loops.validate`: names looked up, options parsed), loads
the data, describes the run once and runs the loop in an MLflow run (``track=False``: in memory).
The command line, presets and the MLproject entries call these; they return the loop's result
record with the run's id (:class:`~svpkit.api.flow.RunResult`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from svpkit.api.args import (
    ActiveLearningArgs,
    CoreSetArgs,
    Options,
    SelectionArgs,
    Size,
    Switch,
    TrainArgs,
    collect,
    opt_int,
    parse_bool,
    parse_deterministic,
)
from svpkit.api.flow import LoopRun, ResumeState, RunResult, RunSettings, prepare, resolve_resume
from svpkit.contract import ACTIVE_LEARNING, CORE_SET, TRAIN, Tag

if TYPE_CHECKING:
    from svpkit.data.base import Dataset
    from svpkit.loops.active_learning import ALConfig, ALResult
    from svpkit.loops.core_set import CoreSetConfig
    from svpkit.loops.core_set_report import CoreSetResult
    from svpkit.loops.reference import FullReference
    from svpkit.loops.train import TrainOutcome
    from svpkit.loops.validate import Resolved
    from svpkit.models.base import ModelSpec
    from svpkit.parallel import DistInfo
    from svpkit.selectors.base import SelectorSpec


class Specs(NamedTuple):
    """The selector, the selector model (proxy) and the target of a selection run."""

    selector: SelectorSpec
    proxy: ModelSpec
    target: ModelSpec

    @classmethod
    def of(cls, resolved: Resolved) -> Specs:
        assert resolved.selector and resolved.proxy and resolved.target  # the validation pass found them
        return cls(resolved.selector, resolved.proxy, resolved.target)

    def selector_model(self, random: str) -> str:
        """The proxy's name, or ``random`` for a selector that needs no model."""
        return self.proxy.name if self.selector.needs else random

    def run_name(self, prefix: str, args: SelectionArgs) -> str:
        return f"{prefix}-{args.selector}-{self.selector_model('random')}-s{args.seed}"


def selection_config(args: SelectionArgs, resolved: Resolved, device: str) -> dict[str, Any]:
    """The config fields both selection loops take, from the validated arguments."""
    return {
        "seed": args.seed,
        "device": device,
        "proxy_epochs": opt_int(args.proxy_epochs),
        "target_epochs": opt_int(args.target_epochs),
        "batch_size": opt_int(args.batch_size),
        "deterministic": parse_deterministic(args.deterministic, device),
        "agreement": args.agreement,
        "proxy_options": resolved.proxy_options,
        "target_options": resolved.target_options,
        "selector_options": resolved.selector_options,
        "class_balance": parse_bool(args.class_balance, "class-balance"),
    }


# -- active learning ---------------------------------------------------------------------------
def run_active_learning_args(
    given: ActiveLearningArgs, settings: RunSettings, resume: Optional[str] = None, sync_batchnorm: bool = False
) -> RunResult[ALResult]:
    """An active-learning run of ``given`` (the command's arguments); ``resume``: a run id to continue."""
    from svpkit import parallel
    from svpkit.loops.active_learning import describe_run, run_active_learning

    # Under torchrun: join the process group; only rank 0 reads or writes MLflow.
    dist_info = parallel.init_from_env(given.device, sync_batchnorm)
    resumed = resolve_resume(ACTIVE_LEARNING.name, resume, given)
    args, specs = resumed.args, Specs.of(resumed.resolved)
    data, cfg = prepare(args, resumed.resolved, dist_info, lambda on: _al_config(args, resumed.resolved, on))
    tags, params = describe_run(data, *specs, cfg)  # validates the budgets
    name = settings.run_name or specs.run_name("al", args)
    run = LoopRun(run_active_learning, (data, *specs, cfg), name, tags, params, resumed=resumed)
    return _run(run, settings, dist_info)


def _al_config(args: ActiveLearningArgs, resolved: Resolved, device: str) -> ALConfig:
    from svpkit.loops.active_learning import ALConfig
    from svpkit.loops.budgets import one_size, parse_sizes

    initial, budgets = one_size(args.initial, "initial"), parse_sizes(args.budgets)
    return ALConfig(
        initial=initial,
        budgets=budgets,
        train_target=args.train_target,
        initial_selector=args.initial_selector,
        stop_when=args.stop_when or "",
        **selection_config(args, resolved, device),
    )


def active_learning(
    *,
    dataset: str = "digits",
    data_path: Optional[str] = None,
    train_limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    dataset_options: Options = None,
    selector: str = "least_confidence",
    proxy: str = "digits_mlp",
    target: str = "digits_cnn",
    initial: Size = "0.01",
    initial_selector: str = "random",
    stop_when: str = "",
    budgets: list[float] | list[int] | str = "0.1,0.2,0.3,0.4,0.5",
    train_target: bool = True,
    seed: int = 0,
    device: str = "auto",
    proxy_epochs: Optional[int] = None,
    target_epochs: Optional[int] = None,
    batch_size: Optional[int] = None,
    proxy_options: Options = None,
    target_options: Options = None,
    selector_options: Options = None,
    class_balance: Switch = False,
    agreement: str = "auto",
    deterministic: Switch = False,
    resume: Optional[str] = None,
    sync_batchnorm: bool = False,
    experiment: Optional[str] = None,
    run_name: Optional[str] = None,
    track: bool = True,
    progress: bool = False,
) -> RunResult[ALResult]:
    """Batch active learning (``svpkit active-learning``): a selector model picks each batch, the
    target is trained at each level. Returns the rounds, the picks and the run id."""
    given = collect(ActiveLearningArgs, locals())
    return run_active_learning_args(given, RunSettings(experiment, run_name, track, progress), resume, sync_batchnorm)


# -- core-set selection ------------------------------------------------------------------------
def run_core_set_args(
    given: CoreSetArgs, settings: RunSettings, resume: Optional[str] = None
) -> RunResult[CoreSetResult]:
    """A core-set run of ``given`` (the command's arguments); ``resume``: a run id to continue."""
    from svpkit import parallel
    from svpkit.loops.core_set import describe_run, reference_description, run_core_set

    # Under torchrun: DDP training on every rank; only rank 0 reads or writes MLflow.
    dist_info = parallel.init_from_env(given.device)
    resumed = resolve_resume(CORE_SET.name, resume, given)
    args, specs = resumed.args, Specs.of(resumed.resolved)
    data, checked = prepare(args, resumed.resolved, dist_info, lambda on: _core_set_config(args, resumed.resolved, on))
    tags, params = describe_run(data, *specs, checked)  # validates sizes before any run exists
    # The full-data reference is looked up on rank 0 (once the run is known valid) and broadcast.
    found = _full_reference(resumed, settings, data, specs.target, checked) if dist_info.is_main else None
    cfg = replace(checked, full_reference=parallel.from_main(lambda: found))
    more_tags, more_params = reference_description(cfg)
    first_state = {"loop": CORE_SET.name, "round": 0}  # resumable from its first stage on
    name = settings.run_name or specs.run_name("cs", args)
    run = LoopRun(run_core_set, (data, *specs, cfg), name, tags | more_tags, params | more_params, first_state, resumed)
    return _run(run, settings, dist_info)


def _core_set_config(args: CoreSetArgs, resolved: Resolved, device: str) -> CoreSetConfig:
    from svpkit.loops.budgets import one_size, parse_fraction
    from svpkit.loops.core_set import CoreSetConfig

    keep = parse_fraction(args.keep, "keep")
    seed_size = one_size(args.seed_size, "seed size")
    compare_full = parse_bool(args.compare_full, "compare-full")
    subset_size = None if not args.subset_size else args.subset_size  # the MLproject's "0" means "not given"
    given = {k: getattr(args, k) for k in ("coverage", "ccs_cutoff", "ccs_bins", "score_models")}
    given |= {"keep": keep, "subset_size": subset_size, "seed_size": seed_size, "compare_full": compare_full}
    return CoreSetConfig(**given, **selection_config(args, resolved, device))


def _full_reference(
    resumed: ResumeState[CoreSetArgs], settings: RunSettings, data: Dataset, target: ModelSpec, cfg: CoreSetConfig
) -> FullReference | None:
    """The speed-up reference: ``full_run``, else a matching ``train`` run of the experiment."""
    from svpkit import tracking
    from svpkit.contract import FULL_RUN_THIS_RUN
    from svpkit.loops.reference import choose_full_reference, given_full_reference

    full_run = resumed.args.full_run
    if resumed.point is not None:  # the same reference as before the interruption (no new search)
        tagged = resumed.point.tags.get(Tag.FULL_RUN)
        full_run = tagged if tagged != FULL_RUN_THIS_RUN else None
    if full_run:
        return given_full_reference(tracking.get_run_record(full_run), data, target, cfg)
    if resumed.point is None and settings.track:
        exp_id = tracking.experiment_id_for(settings.experiment)
        if exp_id is not None:
            records = tracking.find_runs([exp_id], f"tags.`{Tag.LOOP}` = '{TRAIN.name}'")
            return choose_full_reference(records, data, target, cfg)
    return None


def core_set(
    *,
    dataset: str = "digits",
    data_path: Optional[str] = None,
    train_limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    dataset_options: Options = None,
    selector: str = "forgetting_events",
    proxy: str = "digits_mlp",
    target: str = "digits_cnn",
    keep: Optional[Size] = None,
    subset_size: Optional[int] = None,
    seed_size: Size = "1000",
    full_run: Optional[str] = None,
    compare_full: Switch = False,
    coverage: str = "none",
    ccs_cutoff: float = 0.0,
    ccs_bins: int = 50,
    score_models: int = 1,
    seed: int = 0,
    device: str = "auto",
    proxy_epochs: Optional[int] = None,
    target_epochs: Optional[int] = None,
    batch_size: Optional[int] = None,
    proxy_options: Options = None,
    target_options: Options = None,
    selector_options: Options = None,
    class_balance: Switch = False,
    agreement: str = "auto",
    deterministic: Switch = False,
    resume: Optional[str] = None,
    experiment: Optional[str] = None,
    run_name: Optional[str] = None,
    track: bool = True,
    progress: bool = False,
) -> RunResult[CoreSetResult]:
    """Core-set selection (``svpkit core-set``): rank every training example with a proxy, train the
    target on the best part. Returns the ranking, the subset, the errors and the run id."""
    given = collect(CoreSetArgs, locals())
    return run_core_set_args(given, RunSettings(experiment, run_name, track, progress), resume)


# -- training on all (or part) of the data -----------------------------------------------------
def run_train_args(given: TrainArgs, settings: RunSettings) -> RunResult[TrainOutcome]:
    """A train run of ``given`` (the command's arguments)."""
    from svpkit import parallel
    from svpkit.api.flow import validated
    from svpkit.loops.budgets import one_size
    from svpkit.loops.train import TrainRunConfig, describe_train_run, run_train

    resolved = validated(TRAIN.name, given)
    dist_info = parallel.init_from_env(given.device)  # torchrun: DDP; only rank 0 logs
    assert resolved.target is not None  # the validation pass found it

    def config(device: str) -> TrainRunConfig:
        return TrainRunConfig(
            size=one_size(given.size, "size"),
            seed=given.seed,
            device=device,
            target_epochs=opt_int(given.target_epochs),
            batch_size=opt_int(given.batch_size),
            target_options=resolved.target_options,
        )

    data, cfg = prepare(given, resolved, dist_info, config)
    tags, params = describe_train_run(data, resolved.target, cfg)
    name = settings.run_name or f"train-{resolved.target.name}-{tags[Tag.SUBSET_SIZE]}-s{given.seed}"
    return _run(LoopRun(run_train, (data, resolved.target, cfg), name, tags, params), settings, dist_info)


def train(
    *,
    dataset: str = "digits",
    data_path: Optional[str] = None,
    train_limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    dataset_options: Options = None,
    target: str = "digits_cnn",
    size: Size = "1.0",
    seed: int = 0,
    device: str = "auto",
    target_epochs: Optional[int] = None,
    batch_size: Optional[int] = None,
    target_options: Options = None,
    experiment: Optional[str] = None,
    run_name: Optional[str] = None,
    track: bool = True,
    progress: bool = False,
) -> RunResult[TrainOutcome]:
    """The target on all (or a seeded random part) of the training data (``svpkit train``): the
    reference for core-set speed-ups. Returns the test error, the training seconds and the run id."""
    given = collect(TrainArgs, locals())
    return run_train_args(given, RunSettings(experiment, run_name, track, progress))


def _run(run: LoopRun, settings: RunSettings, dist_info: DistInfo) -> RunResult[Any]:
    from svpkit.api.flow import run_tracked

    return run_tracked(run, settings, dist_info)
