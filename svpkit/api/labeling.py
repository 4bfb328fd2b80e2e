"""Labeling your own data from Python: ``query`` asks for the next batch, ``label`` imports answers.

A project is one MLflow run (``svpkit.loop=labeling``, docs/labeling.md); both functions need
the tracking store. ``svpkit query`` and ``svpkit label`` print what these return.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from svpkit.api.args import Options, RunArgs, recorded, settle, takes
from svpkit.api.declare import setting
from svpkit.errors import ConfigError

if TYPE_CHECKING:
    from svpkit.data.base import Dataset
    from svpkit.labeling.files import Answer
    from svpkit.labeling.project import Project
    from svpkit.labeling.session import AnswerCheck
    from svpkit.loops.labeling import QueryConfig, QueryRound
    from svpkit.models.base import ModelSpec
    from svpkit.selectors.base import SelectorSpec


@dataclass
class QueryArgs(RunArgs):
    """The settings a project keeps from its first query (``data_path`` and ``device`` may change)."""

    selector: str = setting(
        "auto",
        "Selector name (svpkit selectors list); auto: MaxHerding (on the standardised inputs, or the proxy's features "
        "where the pool streams or is text) while under 5 labels per class exist, then BADGE.",
    )
    proxy: str = setting(
        "digits_mlp",
        "The proxy: the selector model trained on the labeled set (with --backbone and this default, a new project uses linear_head).",
    )
    proxy_epochs: Optional[int] = setting(
        None, "Train the proxy for this many epochs, schedule scaled (0: the model's default)."
    )
    proxy_options: Options = setting(
        None, "Options of the selector model, e.g. 'dim=50,word_ngrams=1' (svpkit models options NAME)."
    )
    stop_when: Optional[str] = setting(
        None, "Stop the project when a criterion holds: kappa:0.99[:3], uncertainty:0.05[:1], or off."
    )


MAY_CHANGE = ("data_path", "device", "stop_when")
"""Settings a later query may give anew: the data can move, the next round can run elsewhere,
the stopping criterion can be set, changed or turned off (``--stop-when off``)."""


@dataclass
class QueryOutcome:
    """A query: the updated project, the round (picks, scores, proxy error), the batch's CSV text."""

    project: Project
    round: QueryRound
    dataset: Dataset
    batch_csv: str
    run_id: str
    experiment_id: str


@takes(QueryArgs)
def query(
    settings: Optional[QueryArgs] = None,
    /,
    *,
    k: int = 500,
    project: Optional[str] = None,
    out: Union[str, Path, None] = None,
    experiment: Optional[str] = None,
    run_name: Optional[str] = None,
    progress: bool = False,
    **given: Any,
) -> QueryOutcome:
    """The next batch to label (``svpkit query``): the proxy, trained on the labels so far, picks
    ``k`` of the unlabeled pool; ``project`` None starts a project; ``out`` also writes the batch.
    ``settings`` (a :class:`QueryArgs`) and/or its fields as keyword arguments;
    :class:`StopCriterionHolds` (no batch, nothing written) when ``stop_when`` holds."""
    return query_args(settle(QueryArgs, settings, given), k, project or None, out, (experiment, run_name), progress)


def query_args(
    given: QueryArgs,
    k: int,
    project: Optional[str],
    out: Union[str, Path, None],
    run: tuple[Optional[str], Optional[str]],
    progress: bool,
) -> QueryOutcome:
    """A query with the command's arguments; ``run``: the experiment and run name of a new project."""
    from svpkit.labeling.project import new_project
    from svpkit.labeling.session import RunInfo, commit_query, stop_status, stopping_of
    from svpkit.loops.labeling import check_pool, describe_project, query_round
    from svpkit.progress import make_progress

    opened, args = project_settings(project, given)
    if opened is None:
        args = with_default_proxy(args)
    data, specs, cfg = _query_setup(args, k)
    state = opened or new_project(recorded(args), data.class_names)
    stop_status(state, args.stop_when)  # a bad --stop-when fails here, before any training
    if args.stop_when != state.invocation.get("stop_when"):  # set, changed or turned off: kept from now on
        state = replace(state, invocation=state.invocation | {"stop_when": args.stop_when})
    labeled, labels = state.training_set(data)
    check_pool(data, labeled, k)  # before any training
    with make_progress(not progress) as bars:
        result = query_round(data, labeled, labels, *specs, cfg, len(state.rounds), bars)
    if holds := stop_status(state, args.stop_when, stopping_of(state, result)):
        trained = f"the proxy trained on {labeled.size} labels"
        raise StopCriterionHolds(f"the stopping criterion holds with {trained}: {holds}; stop labeling")
    tags, params = describe_project(data, *specs, cfg)
    selector_model = specs[1].name if specs[0].needs else "random"
    name = run[1] or f"labeling-{args.selector}-{selector_model}-s{args.seed}"
    updated, text, experiment_id = commit_query(state, result, data, RunInfo(name, tags, params, run[0]))
    if out:
        Path(out).write_text(text, encoding="utf-8")
    return QueryOutcome(updated, result, data, text, str(updated.run_id), experiment_id)


BACKBONE_PROXY = "linear_head"
"""A project on a backbone's embeddings starts with the frozen-embedding head as its proxy
(docs/pretrained.md) unless another proxy is given: the default digits network does not read them."""


def with_default_proxy(args: QueryArgs) -> QueryArgs:
    """``args`` with the proxy a new project gets: ``linear_head`` when a backbone is given and the
    proxy was left at its declared default (``digits_mlp``), else the proxy as given."""
    if args.backbone and args.proxy in (None, "", QueryArgs().proxy):
        return replace(args, proxy=BACKBONE_PROXY)
    return args


def _query_setup(args: QueryArgs, k: int) -> tuple[Dataset, tuple[SelectorSpec, ModelSpec], QueryConfig]:
    """The data set, the selector and proxy, and the query's config (the validation pass: names
    looked up and options parsed once)."""
    from svpkit.api.flow import load_planned, validated
    from svpkit.contract import LABELING
    from svpkit.loops.cold_start import settle_representation
    from svpkit.loops.labeling import QueryConfig
    from svpkit.runtime import resolve_device
    from svpkit.selectors.base import resolve_selector_options

    plan = validated(LABELING.name, args)
    assert plan.selector is not None and plan.proxy is not None  # the validation pass found them
    settings = plan.loop_settings(args.device)
    data = load_planned(plan, str(resolve_device(args.device)))
    # The selector's options at their defaults, its representation settled for the data (auto's embedding).
    options = settle_representation(data, plan.selector, resolve_selector_options(plan.selector, plan.selector_options))
    cfg = QueryConfig(k=k, settings=replace(settings, selector_options=options))
    return data, (plan.selector, plan.proxy), cfg


def project_settings(project_id: Optional[str], given: QueryArgs) -> tuple[Optional[Project], QueryArgs]:
    """With a project: the project and its own settings (a given one that differs is an error,
    except for :data:`MAY_CHANGE`)."""
    from svpkit.labeling.project import open_project

    if project_id is None:
        return None, given
    opened = open_project(project_id)
    chosen: dict[str, Any] = {}
    defaults, values = recorded(type(given)()), recorded(given)
    for f in fields(given):
        value, saved = values[f.name], opened.invocation.get(f.name)
        explicit = _normal(value) != _normal(defaults[f.name])
        if explicit and f.name not in MAY_CHANGE and _normal(value) != _normal(saved):
            flag = "--" + f.name.replace("_", "-")
            raise ConfigError(f"project {project_id} uses {flag} {saved}, not {value}; leave {flag} out")
        chosen[f.name] = value if explicit and f.name in MAY_CHANGE else saved
    return opened, replace(given, **chosen)


def _normal(value: object) -> str | None:
    """An option value as it acts: 0 or '' (the MLproject's "not given") are None."""
    return None if value in (0, "", None) else str(value)


class StopCriterionHolds(ConfigError):
    """``--stop-when`` holds on a query's proxy (trained on every label so far): no batch was
    written, the project is unchanged; ``svpkit query`` exits with status 3."""

    exit_code = 3


class AnswersRejected(ConfigError):
    """Answers with problems (unknown ids, labels that are no class, ...): nothing was imported."""

    def __init__(self, message: str, check: AnswerCheck) -> None:
        super().__init__(message)
        self.check = check


@dataclass
class LabelOutcome:
    """An import: what was checked, and the project after it (None: nothing changed)."""

    check: AnswerCheck
    before: Project
    updated: Project | None

    @property
    def project(self) -> Project:
        return self.updated or self.before


def label(
    file: Union[str, Path, None] = None,
    *,
    project: str,
    answers: Union[Mapping[str, str], Sequence[Answer], None] = None,
    source: str = "",
) -> LabelOutcome:
    """Import the annotators' answers to the project's newest batch, all or nothing (``svpkit
    label``): a CSV file with the columns id,label, or ``answers`` (id → class name, or
    :class:`~svpkit.labeling.files.Answer` rows, e.g. from an annotation tool's API; ``source``
    names them in messages); :class:`AnswersRejected` when any row has a problem."""
    from svpkit.labeling.files import Answer, read_answers
    from svpkit.labeling.project import open_project
    from svpkit.labeling.session import check_answers, commit_answers, note_env_run

    if (file is None) == (answers is None):
        raise ConfigError("give the answers as a file or as answers=..., one of them")
    opened = open_project(project)  # the project first: its error comes before the file's
    if answers is None:
        rows, source = read_answers(Path(str(file))), str(file)
    elif isinstance(answers, Mapping):
        rows = [Answer(n, str(i), str(v)) for n, (i, v) in enumerate(answers.items(), start=2)]
    else:
        rows = list(answers)
    check = check_answers(opened, rows)
    if check.problems:
        kinds = ", ".join(sorted({p.kind for p in check.problems}))
        message = f"{source or 'answers'}: {len(check.problems)} rows cannot be imported ({kinds}); nothing imported"
        raise AnswersRejected(message, check)
    updated = commit_answers(opened, check)
    note_env_run(project)
    return LabelOutcome(check, opened, updated)
