"""The flow every loop shares: resume, validation, device and data, the tracked run.

Under torchrun every rank runs the loop; only rank 0 reads or writes MLflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, Optional, TypeVar

from svpkit.api.args import OBJECT_FIELDS, A, LoopArgs, opt_int, recorded

if TYPE_CHECKING:
    from svpkit.data.base import Dataset, DatasetSpec
    from svpkit.loops.plan import Plan
    from svpkit.parallel import DistInfo
    from svpkit.protocols import Tracker
    from svpkit.tracking.resume import ResumePoint

R = TypeVar("R")
C = TypeVar("C")


@dataclass
class ResumeState(Generic[A]):
    """The arguments a run is made of (the run's own when it is resumed) and where it continues."""

    args: A
    given: dict[str, object]
    """The arguments as given."""
    plan: Plan
    """What the validation pass looked up and parsed (:mod:`svpkit.loops.validate`)."""
    point: ResumePoint | None = None

    @property
    def invocation(self) -> dict[str, object]:
        """What the run's saved states record as its arguments."""
        return self.given if self.point is None else self.point.invocation


def validated(loop: str, args: LoopArgs) -> Plan:
    """The validation pass over ``args`` (:mod:`svpkit.loops.validate`): its first problem is the
    error; else the plan every later step uses."""
    from svpkit.loops.validate import check

    return check(loop, vars(args))


def resolve_resume(loop: str, resume: Optional[str], given: A) -> ResumeState[A]:
    """The validated arguments of the run; with ``resume`` (a run id), the run's own (read on rank 0).

    A new run's arguments are validated before the tracking store is touched.
    """
    from svpkit import parallel
    from svpkit.tracking.resume import find_resume_point

    values = recorded(given)
    if not resume:
        return ResumeState(given, values, validated(loop, given))
    from svpkit.api.objects import check_resume

    point = parallel.from_main(lambda: find_resume_point(resume, loop))
    saved = point.invocation
    check_resume(resume, values, saved, OBJECT_FIELDS)
    args = replace(given, **{k: saved[k] for k in values if k in saved})
    return ResumeState(args, values, validated(loop, args), point)


def load_dataset(
    dataset: DatasetSpec | str | object,
    data_path: Optional[str] = None,
    train_limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    dataset_options: Mapping[str, object] | str | None = None,
    backbone: Optional[str] = None,
    backbone_options: Mapping[str, object] | str | None = None,
    device: str = "cpu",
) -> Dataset:
    """A data set as the loops load it (``svpkit.load_dataset``): by name or spec, or from a
    notebook's object (:mod:`svpkit.api.objects`), with its ``dataset_options`` checked first;
    ``*_limit`` shrink it for quick runs (see Dataset.limited); with a ``backbone``, its embedded
    pool (svpkit.backbones.embed: from the embedding store, computed there first where missing)."""
    from svpkit.data.base import DatasetSpec, load_with_options
    from svpkit.loops.validate import require_path
    from svpkit.plugins import get_plugins

    if not isinstance(dataset, DatasetSpec):
        from svpkit.api.objects import dataset_name

        dataset = get_plugins().datasets.get(dataset if isinstance(dataset, str) else dataset_name(dataset))
    path = data_path or None
    require_path(dataset, path)
    data = load_with_options(dataset, path, dataset_options)
    data = data.limited(opt_int(train_limit), opt_int(test_limit))
    if not backbone:
        return data
    from svpkit.backbones.base import resolve_backbone
    from svpkit.backbones.embed import embedded_dataset
    from svpkit.progress import current_or_new

    resolved = resolve_backbone(get_plugins().backbones.get(backbone), backbone_options)
    with current_or_new() as bars:
        return embedded_dataset(data, resolved, device, bars)


def prepare(plan: Plan, dist_info: DistInfo, build: Callable[[str], C], progress: bool = False) -> tuple[Dataset, C]:
    """This rank's device for the plan's, ``build(device)`` (the loop's config), the device checked
    on this machine, then the planned data set (``progress``: its listing and statistics passes
    show progress bars on rank 0)."""
    from svpkit import parallel
    from svpkit.progress import make_progress, shown
    from svpkit.runtime import resolve_device

    device = parallel.replace_device(dist_info, plan.device)
    built = build(device)
    where = str(resolve_device(device))
    # a backbone under torchrun: each rank embeds its shard of the pool into the store (embed_splits)
    with make_progress(not progress or not dist_info.is_main) as bars, shown(bars):
        data = load_planned(plan, where)
    return data, built


def load_planned(plan: Plan, device: str) -> Dataset:
    """The data set of a validated plan (options, limits and backbone as the plan resolved them), on ``device``."""
    from svpkit.data.base import load_with_options

    assert plan.dataset is not None  # the validation pass stops at an unknown data set
    data = load_with_options(plan.dataset, plan.data_path, plan.dataset_options)
    data = data.limited(plan.train_limit, plan.test_limit)
    if plan.backbone is None:
        return data
    from svpkit.backbones.embed import embedded_dataset
    from svpkit.progress import current_or_new

    with current_or_new() as bars:
        return embedded_dataset(data, plan.backbone, device, bars)


@dataclass
class RunResult(Generic[R]):
    """A loop's result record and the run that holds it (``run_id`` None: not tracked).

    Attributes of the result (``selected``, ``rounds``, ``ranking``, ...) read through.
    """

    result: R
    run_id: str | None
    experiment_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, object] = field(default_factory=dict)
    tracker: Tracker | None = None
    """The tracker the loop reported to (a :class:`~svpkit.tracking.memory.MemoryTracker` when not
    tracked: every logged value)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "result":
            raise AttributeError(name)
        return getattr(self.result, name)


@dataclass
class LoopRun:
    """One loop run, ready to go: ``loop(*loop_args, tracker, progress, resume_state=...)``."""

    loop: Callable[..., Any]
    loop_args: tuple[Any, ...]
    """The data set first."""
    name: str
    tags: dict[str, str]
    params: dict[str, object]
    first_state: dict[str, object] | None = None
    """Saved as soon as a fresh run opens (resumable from its first stage on)."""
    resumed: ResumeState[Any] | None = None
    """None for a loop without ``resume``."""


@dataclass(frozen=True)
class RunSettings:
    """How a run is kept and shown: the MLflow experiment and run name, tracking, progress bars."""

    experiment: Optional[str] = None
    run_name: Optional[str] = None
    track: bool = True
    """False: no MLflow run; the result's tracker holds what the run logged."""
    progress: bool = False
    """Progress bars on stderr."""


def _opened(run: LoopRun, settings: RunSettings, dist_info: DistInfo) -> AbstractContextManager[Tracker]:
    from svpkit import tracking
    from svpkit.tracking.memory import memory_run, null_run

    if not dist_info.is_main:
        return null_run()
    if not settings.track:
        return memory_run()
    point = None if run.resumed is None else run.resumed.point
    return tracking.tracked_run(
        settings.experiment, run.name, run.tags, resume_run_id=None if point is None else point.run_id
    )


def run_tracked(run: LoopRun, settings: RunSettings, dist_info: DistInfo) -> RunResult[Any]:
    """Open (or resume) the run on rank 0, run the loop in it; the result and the run's ids.

    A fresh run gets its params and dataset input, a resumed one a ``svpkit.resumed_from_round`` tag.
    """
    from svpkit import parallel
    from svpkit.api.objects import STATE_DIGEST, check_digest
    from svpkit.contract import Tag
    from svpkit.progress import make_progress

    point = None if run.resumed is None else run.resumed.point
    data = run.loop_args[0]
    if point is not None:
        check_digest(point.run_id, point.state, data)
    with _opened(run, settings, dist_info) as tracker:
        if not settings.track:
            tracker.set_tags(run.tags)
        tracker.state_extra[STATE_DIGEST] = data.digest  # resume refuses other data
        if run.resumed is not None:
            tracker.state_extra["invocation"] = run.resumed.invocation
        if point is None:
            tracker.log_params(run.params | (parallel.run_params(dist_info) if dist_info.enabled else {}))
            tracker.log_dataset(data)
            if run.first_state is not None:
                tracker.save_state(run.first_state)
        else:
            tracker.set_tags({Tag.RESUMED_FROM_ROUND: str(point.round)})
        with make_progress(not settings.progress or not dist_info.is_main) as progress:
            result = run.loop(*run.loop_args, tracker, progress, resume_state=None if point is None else point.state)
    return RunResult(result, tracker.run_id, tracker.experiment_id, run.tags, run.params, tracker)
