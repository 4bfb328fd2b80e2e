"""``suggest_proxy``: which cheap model picks what the target would, measured on a pilot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from svpkit.api.args import Options, RunArgs, Size, settle, takes
from svpkit.api.declare import setting
from svpkit.errors import ConfigError

if TYPE_CHECKING:
    from svpkit.analysis.suggest_report import SuggestReport
    from svpkit.api.flow import RunSettings
    from svpkit.data.base import Dataset
    from svpkit.loops.suggest import Contender, SuggestConfig
    from svpkit.selectors.base import SelectorSpec


@dataclass
class SuggestOutcome:
    """The report (rows per candidate, the recommendation) and the run that holds it."""

    report: SuggestReport
    run_id: str | None
    experiment_id: str | None


@dataclass
class SuggestArgs(RunArgs):
    """``svpkit suggest-proxy``'s settings: the target, the selector, the candidates
    (``model[:epochs][{options}]``, comma-separated), the pilot, ``k``, the seeds and the thresholds."""

    target: str = setting("digits_cnn", "The target model the proxy selects for.")
    selector: str = setting("least_confidence", "Selector (svpkit selectors list); it must use a model.")
    candidates: str = setting(
        "digits_mlp:10,digits_cnn:3,digits_cnn:10", "Proxies to try: model[:epochs][{options}], comma-separated."
    )
    pilot: Size = setting("0.1", "The random pilot labeled set: fraction of the training set in (0,1) or count.")
    k: int = setting(100, "The batch each model picks from the rest (the pool).", decls=("--k",))
    seeds: int = setting(3, "Pilots (seeds SEED, SEED+1, ...) the agreement is averaged over.")
    min_overlap: float = setting(0.5, "Top-k overlap a recommended proxy reaches, in [0, 1].")
    min_spearman: float = setting(0.5, "Spearman a recommended proxy reaches, in [-1, 1].")
    target_epochs: Optional[int] = setting(None, "Train the target for this many epochs (0: the model's default).")
    target_options: Options = setting(
        None, "Options of the target model, e.g. 'max_length=256' (svpkit models options NAME)."
    )


@takes(SuggestArgs)
def suggest_proxy(
    settings: Optional[SuggestArgs] = None,
    /,
    *,
    experiment: Optional[str] = None,
    run_name: Optional[str] = None,
    track: bool = True,
    progress: bool = False,
    **given: Any,
) -> SuggestOutcome:
    """Train the target and each candidate on a pilot, compare their picks, recommend the cheapest
    that agrees (``svpkit suggest-proxy``). ``settings`` (a :class:`SuggestArgs`) and/or its fields
    as keyword arguments."""
    from svpkit.api.flow import RunSettings

    args = settle(SuggestArgs, settings, given)
    return suggest_proxy_args(args, RunSettings(experiment, run_name, track, progress))


def suggest_proxy_args(args: SuggestArgs, run: RunSettings) -> SuggestOutcome:
    """A suggest-proxy run of ``args`` (the command's settings)."""
    from svpkit.analysis import suggest, suggest_report
    from svpkit.loops.suggest import run_suggest
    from svpkit.progress import make_progress

    data, selector_spec, (target_model, contenders), cfg = _prepare(args)
    with make_progress(not run.progress):
        rows = run_suggest(data, selector_spec, target_model, contenders, cfg)
    meta: dict[str, object] = {"dataset": data.name, "selector": args.selector, "target": target_model.label}
    meta |= {"pilot": pilot_count(cfg, len(data.train)), "k": args.k}
    report = suggest_report.summarise(
        rows, suggest.parse_candidates(args.candidates), meta, args.min_overlap, args.min_spearman
    )
    params = {**meta, "candidates": args.candidates, "seeds": args.seeds, "seed": args.seed, "device": args.device}
    params["deterministic"] = cfg.settings.deterministic
    params |= {"min_overlap": args.min_overlap, "min_spearman": args.min_spearman, "dataset_digest": data.digest}
    name = run.run_name or f"suggest-{args.target}-{args.selector}-s{args.seed}"
    return _logged(report, params, run.experiment or None, name, run.track)


def _prepare(args: SuggestArgs) -> tuple[Dataset, SelectorSpec, tuple[Contender, list[Contender]], SuggestConfig]:
    """Every setting checked (the validation pass: names looked up once), then the data loaded: the pilot's inputs."""
    from svpkit.analysis import suggest
    from svpkit.api.flow import load_planned, validated
    from svpkit.loops.suggest import Contender, SuggestConfig, check_seeds
    from svpkit.loops.validate import SUGGEST_PROXY
    from svpkit.runtime import resolve_device

    suggest.check_min_overlap(args.min_overlap)
    suggest.check_min_spearman(args.min_spearman)
    parsed = suggest.parse_candidates(args.candidates)
    plan = validated(SUGGEST_PROXY, args)
    assert plan.selector is not None and plan.target is not None and plan.pilot is not None
    if not plan.selector.needs:
        raise ConfigError(f"selector {plan.selector.name!r} uses no model: there is no proxy to choose")
    target = Contender(plan.target.name, plan.target, plan.target_epochs, plan.target_options)
    models = target, [_contender(c.name, c.epochs, c.options, f"candidate {c.text!r}", c.text) for c in parsed]
    cfg = SuggestConfig(plan.pilot, args.k, check_seeds(args.seeds), plan.loop_settings(args.device))
    data = load_planned(plan, str(resolve_device(args.device)))
    _check_inputs(data, [models[0], *models[1]])
    pilot_count(cfg, len(data.train))  # a pilot that leaves fewer than k examples is an error now
    return data, plan.selector, models, cfg


def pilot_count(cfg: SuggestConfig, n: int) -> int:
    """The pilot's size for ``n`` training examples (svpkit.loops.suggest.pilot_size)."""
    from svpkit.loops.suggest import pilot_size

    return pilot_size(cfg.pilot, n, cfg.k)


def _check_inputs(data: Dataset, models: list[Contender]) -> None:
    """Every model reads the data set's inputs."""
    for model in models:
        if data.modality not in model.spec.modalities:
            raise ConfigError(f"{model.label}: model {model.spec.name!r} does not read {data.modality} inputs")


def _logged(
    report: SuggestReport, params: dict[str, object], experiment: Optional[str], name: str, track: bool
) -> SuggestOutcome:
    """The report logged to a suggest-proxy run (``track`` False: kept in memory)."""
    from svpkit import tracking
    from svpkit.analysis import suggest_report
    from svpkit.tracking.memory import memory_run

    opened = tracking.tracked_run(experiment, name, suggest_report.tags(report)) if track else memory_run()
    with opened as tracker:
        suggest_report.log_report(tracker, report, params)
    return SuggestOutcome(report, tracker.run_id, tracker.experiment_id)


def _contender(name: str, epochs: Optional[int], options: Optional[str], flag: str, label: str = "") -> Contender:
    """A target or candidate with its options checked against the model (svpkit.learners.options)."""
    from svpkit.learners.options import parse_model_options
    from svpkit.loops.suggest import Contender
    from svpkit.plugins import get_plugins

    spec = get_plugins().models.get(name)
    return Contender(label or name, spec, epochs, parse_model_options(spec, options or None, flag))
