"""The SVP loops as functions: ``active_learning``, ``core_set`` and ``train``.

Each takes the settings of its command as keyword arguments (Python values or the command line's
text), validates them once (:mod:`svpkit.loops.validate`: names looked up, options parsed), loads
the data, describes the run once and runs the loop in an MLflow run (``track=False``: in memory).
The command line, presets and the MLproject entries call these; they return the loop's result
record with the run's id (:class:`~svpkit.api.flow.RunResult`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from svpkit.api.args import ActiveLearningArgs, CoreSetArgs, SelectionArgs, TrainArgs, args_of, settle, takes
from svpkit.api.flow import LoopRun, ResumeState, RunResult, RunSettings, prepare, resolve_resume
from svpkit.contract import ACTIVE_LEARNING, CORE_SET, TRAIN, Tag
from svpkit.errors import ConfigError

if TYPE_CHECKING:
    from svpkit.data.base import Dataset
    from svpkit.loops.active_learning import ALConfig, ALResult
    from svpkit.loops.core_set import CoreSetConfig
    from svpkit.loops.core_set_report import CoreSetResult
    from svpkit.loops.plan import Plan
    from svpkit.loops.reference import FullReference
    from svpkit.loops.train import TrainOutcome
    from svpkit.models.base import ModelSpec
    from svpkit.parallel import DistInfo
    from svpkit.selectors.base import SelectorSpec


class Specs(NamedTuple):
    """The selector, the selector model (proxy) and the target of a selection run."""

    selector: SelectorSpec
    proxy: ModelSpec
    target: ModelSpec

    @classmethod
    def of(cls, plan: Plan) -> Specs:
        assert plan.selector and plan.proxy and plan.target  # the validation pass found them
        return cls(plan.selector, plan.proxy, plan.target)

    def selector_model(self, random: str) -> str:
        """The proxy's name, or ``random`` for a selector that needs no model."""
        return self.proxy.name if self.selector.needs else random

    def run_name(self, prefix: str, args: SelectionArgs) -> str:
        return f"{prefix}-{args.selector}-{self.selector_model('random')}-s{args.seed}"


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
    args, plan = resumed.args, resumed.plan
    specs = Specs.of(plan)
    data, cfg = prepare(plan, dist_info, lambda on: _al_config(args, plan, on), settings.progress)
    cfg = _settled(data, specs.selector, cfg)
    tags, params = describe_run(data, *specs, cfg)  # validates the budgets
    tags |= _object_tags(data, {"proxy": specs.proxy, "target": specs.target}, specs.selector)
    name = settings.run_name or specs.run_name("al", args)
    run = LoopRun(run_active_learning, (data, *specs, cfg), name, tags, params, resumed=resumed)
    return _run(run, settings, dist_info)


def _al_config(args: ActiveLearningArgs, plan: Plan, device: str) -> ALConfig:
    from svpkit.loops.active_learning import ALConfig

    assert plan.initial is not None  # the validation pass parsed it
    return ALConfig(
        initial=plan.initial,
        budgets=list(plan.budgets),
        train_target=args.train_target,
        initial_selector=plan.initial_selector or args.initial_selector,  # a spec, "auto" or "random"
        stop_when=plan.stop_rule,
        eval_sample=args.eval_sample,
        settings=plan.loop_settings(device),
    )


def _settled(data: Dataset, selector: SelectorSpec, cfg: ALConfig) -> ALConfig:
    """``cfg`` with the selector's representation settled for the loaded data (``embedding=auto``
    resolved, so the run records it; svpkit.loops.cold_start), or a ConfigError before any run."""
    from svpkit.loops.cold_start import settle_initial_selector, settle_representation

    options = settle_representation(data, selector, cfg.settings.selector_options, cfg.initial_selector)
    initial = settle_initial_selector(data, selector, options, cfg.initial_selector)
    return replace(cfg, initial_selector=initial, settings=replace(cfg.settings, selector_options=options))


@takes(ActiveLearningArgs)
def active_learning(
    settings: Optional[ActiveLearningArgs] = None,
    /,
    *,
    resume: Optional[str] = None,
    sync_batchnorm: bool = False,
    experiment: Optional[str] = None,
    run_name: Optional[str] = None,
    track: bool = True,
    progress: bool = False,
    **given: Any,
) -> RunResult[ALResult]:
    """Batch active learning (``svpkit active-learning``): a selector model picks each batch, the
    target is trained at each level. ``settings`` (an :class:`ActiveLearningArgs`) and/or its fields
    as keyword arguments; returns the rounds, the picks and the run id."""
    args = settle(ActiveLearningArgs, settings, given)
    return run_active_learning_args(args, RunSettings(experiment, run_name, track, progress), resume, sync_batchnorm)


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
    args, plan = resumed.args, resumed.plan
    specs = Specs.of(plan)
    data, checked = prepare(plan, dist_info, lambda on: _core_set_config(args, plan, on), settings.progress)
    tags, params = describe_run(data, *specs, checked)  # validates sizes before any run exists
    tags |= _object_tags(data, {"proxy": specs.proxy, "target": specs.target}, specs.selector)
    # The full-data reference is looked up on rank 0 (once the run is known valid) and broadcast.
    found = _full_reference(resumed, settings, data, specs.target, checked) if dist_info.is_main else None
    cfg = replace(checked, full_reference=parallel.from_main(lambda: found))
    more_tags, more_params = reference_description(cfg)
    first_state = {"loop": CORE_SET.name, "round": 0}  # resumable from its first stage on
    name = settings.run_name or specs.run_name("cs", args)
    run = LoopRun(run_core_set, (data, *specs, cfg), name, tags | more_tags, params | more_params, first_state, resumed)
    return _run(run, settings, dist_info)


def _core_set_config(args: CoreSetArgs, plan: Plan, device: str) -> CoreSetConfig:
    from svpkit.loops.core_set import CoreSetConfig
    from svpkit.loops.core_set_subset import SubsetVariant

    assert plan.seed_size is not None  # the validation pass parsed it
    return CoreSetConfig(
        keep=plan.keep,
        subset_size=plan.subset_size,
        seed_size=plan.seed_size,
        settings=plan.loop_settings(device),
        subset=SubsetVariant(args.coverage, args.ccs_cutoff, args.ccs_bins, args.score_models),
        compare_full=plan.compare_full,
    )


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
        return given_full_reference(tracking.get_run_record(full_run), data, target, cfg.settings)
    if resumed.point is None and settings.track:
        exp_id = tracking.experiment_id_for(settings.experiment)
        if exp_id is not None:
            records = tracking.find_runs([exp_id], f"tags.`{Tag.LOOP}` = '{TRAIN.name}'")
            return choose_full_reference(records, data, target, cfg.settings)
    return None


@takes(CoreSetArgs)
def core_set(
    settings: Optional[CoreSetArgs] = None,
    /,
    *,
    resume: Optional[str] = None,
    experiment: Optional[str] = None,
    run_name: Optional[str] = None,
    track: bool = True,
    progress: bool = False,
    **given: Any,
) -> RunResult[CoreSetResult]:
    """Core-set selection (``svpkit core-set``): rank every training example with a proxy, train the
    target on the best part. ``settings`` (a :class:`CoreSetArgs`) and/or its fields as keyword
    arguments; returns the ranking, the subset, the errors and the run id."""
    args = settle(CoreSetArgs, settings, given)
    return run_core_set_args(args, RunSettings(experiment, run_name, track, progress), resume)


# -- training on all (or part) of the data -----------------------------------------------------
def run_train_args(given: TrainArgs, settings: RunSettings) -> RunResult[TrainOutcome]:
    """A train run of ``given`` (the command's arguments)."""
    from svpkit import parallel
    from svpkit.api.flow import validated
    from svpkit.loops.train import TrainRunConfig, describe_train_run, run_train

    plan = validated(TRAIN.name, given)
    dist_info = parallel.init_from_env(given.device)  # torchrun: DDP; only rank 0 logs
    target, size = plan.target, plan.size
    assert target is not None and size is not None  # the validation pass found them

    def config(device: str) -> TrainRunConfig:
        return TrainRunConfig(size=size, settings=plan.loop_settings(device))

    data, cfg = prepare(plan, dist_info, config)
    tags, params = describe_train_run(data, target, cfg)
    tags |= _object_tags(data, {"target": target}, None)
    name = settings.run_name or f"train-{target.name}-{tags[Tag.SUBSET_SIZE]}-s{given.seed}"
    return _run(LoopRun(run_train, (data, target, cfg), name, tags, params), settings, dist_info)


@takes(TrainArgs)
def train(
    settings: Optional[TrainArgs] = None,
    /,
    *,
    experiment: Optional[str] = None,
    run_name: Optional[str] = None,
    track: bool = True,
    progress: bool = False,
    **given: Any,
) -> RunResult[TrainOutcome]:
    """The target on all (or a seeded random part) of the training data (``svpkit train``): the
    reference for core-set speed-ups. ``settings`` (a :class:`TrainArgs`) and/or its fields as
    keyword arguments; returns the test error, the training seconds and the run id."""
    return run_train_args(settle(TrainArgs, settings, given), RunSettings(experiment, run_name, track, progress))


def run_loop(loop: str, params: Mapping[str, Any], settings: RunSettings | None = None) -> RunResult[Any]:
    """A ``loop`` run (``active_learning``, ``core_set``, ``train``) from its command's parsed
    parameters (the name → value mapping the command line gives; a preset's run in this process)."""
    settings = settings or RunSettings(params.get("experiment"), params.get("run_name"))
    if loop == ACTIVE_LEARNING.name:
        given = args_of(ActiveLearningArgs, params)
        return run_active_learning_args(given, settings, params.get("resume"), bool(params.get("sync_batchnorm")))
    if loop == CORE_SET.name:
        return run_core_set_args(args_of(CoreSetArgs, params), settings, params.get("resume"))
    if loop == TRAIN.name:
        return run_train_args(args_of(TrainArgs, params), settings)
    raise ConfigError(f"no loop {loop!r}: one of {ACTIVE_LEARNING.name}, {CORE_SET.name}, {TRAIN.name}")


def _object_tags(
    data: Dataset, models: Mapping[str, ModelSpec | None], selector: SelectorSpec | None
) -> dict[str, str]:
    from svpkit.api.objects import check_run

    return check_run(data, models, selector)


def _run(run: LoopRun, settings: RunSettings, dist_info: DistInfo) -> RunResult[Any]:
    from svpkit.api.flow import run_tracked

    return run_tracked(run, settings, dist_info)
