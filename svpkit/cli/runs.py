"""The flow every loop command shares: resume, device and data, the tracked run, the closing lines.

Under torchrun every rank runs the loop; only rank 0 reads or writes MLflow and prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Generic, Optional, TypeVar

from svpkit.cli.base import plugins, print_run_link
from svpkit.cli.options import opt_int

if TYPE_CHECKING:
    from svpkit.parallel import DistInfo
    from svpkit.tracking.resume import ResumePoint


@dataclass
class LoopArgs:
    """The arguments that define a loop command's run (the ones ``--resume`` reuses); data first."""

    dataset: str
    data_path: Optional[str]
    train_limit: Optional[int]
    test_limit: Optional[int]
    dataset_options: Optional[str]


A = TypeVar("A", bound=LoopArgs)
C = TypeVar("C")


def collect(cls: type[A], values: Mapping[str, Any]) -> A:
    """``cls`` from a command's arguments (its ``locals()``)."""
    return cls(**{f.name: values[f.name] for f in fields(cls)})


@dataclass
class ResumeState(Generic[A]):
    """The arguments a run is made of (the run's own when it is resumed) and where it continues."""

    args: A
    given: dict[str, Any]
    """The arguments as given on the command line."""
    point: ResumePoint | None = None

    @property
    def invocation(self) -> dict[str, Any]:
        """What the run's saved states record as its arguments."""
        return self.given if self.point is None else self.point.invocation


def validated(loop: str, args: A) -> A:
    """``args`` after the validation pass (:mod:`svpkit.loops.validate`): its first problem is the error."""
    from svpkit.loops.validate import check

    check(loop, vars(args))
    return args


def resolve_resume(loop: str, resume: Optional[str], given: A) -> ResumeState[A]:
    """The validated arguments of the run; with ``--resume RUN_ID``, the run's own (checked on rank 0).

    A new run's arguments are validated before the tracking store is touched.
    """
    from svpkit import parallel
    from svpkit.tracking.resume import find_resume_point

    values = {f.name: getattr(given, f.name) for f in fields(given)}
    if not resume:
        return ResumeState(validated(loop, given), values)
    point = parallel.from_main(lambda: find_resume_point(resume, loop))
    recorded = point.invocation
    args = replace(given, **{k: recorded[k] for k in values if k in recorded})
    return ResumeState(validated(loop, args), values, point)


def load_dataset(
    name: str,
    path: Optional[str],
    train_limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    dataset_options: Optional[str] = None,
) -> Any:
    """Load a registered data set with its ``--dataset-options``; ``*_limit`` shrink it for quick
    runs (see Dataset.limited)."""
    from svpkit.data.base import load_with_options
    from svpkit.loops.validate import require_path

    spec = plugins().datasets.get(name)
    path = path or None
    require_path(spec, path)
    data = load_with_options(spec, path, dataset_options)
    return data.limited(opt_int(train_limit), opt_int(test_limit))


def prepare(args: LoopArgs, device: str, dist_info: DistInfo, build: Callable[[str], C]) -> tuple[Any, C]:
    """This rank's device for ``--device``, ``build(device)`` (names and options checked), then the data."""
    from svpkit import parallel
    from svpkit.runtime import resolve_device

    device = parallel.replace_device(dist_info, device)
    built = build(device)
    resolve_device(device)
    return load_dataset(args.dataset, args.data_path, args.train_limit, args.test_limit, args.dataset_options), built


@dataclass
class LoopRun:
    """One loop run, ready to go: ``loop(*loop_args, tracker, progress, resume_state=...)``."""

    loop: Callable[..., Any]
    loop_args: tuple[Any, ...]
    """The data set first."""
    name: str
    tags: dict[str, str]
    params: dict[str, Any]
    first_state: dict[str, Any] | None = None
    """Saved as soon as a fresh run opens (resumable from its first stage on)."""
    resumed: ResumeState[Any] | None = None
    """None for a loop without ``--resume``."""


def run_tracked(
    run: LoopRun, *, experiment: Optional[str], dist_info: DistInfo, quiet: bool, report: Callable[[Any], None]
) -> None:
    """Open (or resume) the run on rank 0, run the loop in it, then ``report(result)`` and its link.

    A fresh run gets its params and dataset input, a resumed one a ``svpkit.resumed_from_round`` tag.
    """
    from svpkit import parallel, tracking
    from svpkit.progress import make_progress
    from svpkit.tracking.memory import null_run

    point = None if run.resumed is None else run.resumed.point
    opened = tracking.tracked_run(experiment, run.name, run.tags, resume_run_id=None if point is None else point.run_id)
    with opened if dist_info.is_main else null_run() as tracker:
        if run.resumed is not None:
            tracker.state_extra["invocation"] = run.resumed.invocation
        if point is None:
            tracker.log_params(run.params | (parallel.run_params(dist_info) if dist_info.enabled else {}))
            tracker.log_dataset(run.loop_args[0])
            if run.first_state is not None:
                tracker.save_state(run.first_state)
        else:
            tracker.set_tags({"svpkit.resumed_from_round": str(point.round)})
        progress = make_progress(quiet or not dist_info.is_main)
        with progress:
            result = run.loop(*run.loop_args, tracker, progress, resume_state=None if point is None else point.state)
    if dist_info.is_main:
        report(result)
        print_run_link(tracker.experiment_id, tracker.run_id)
