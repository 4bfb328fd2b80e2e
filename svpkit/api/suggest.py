"""``suggest_proxy``: which cheap model picks what the target would, measured on a pilot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from svpkit.api.args import Options, Size, opt_int
from svpkit.contract import format_options
from svpkit.errors import ConfigError

if TYPE_CHECKING:
    from svpkit.analysis.suggest_report import SuggestReport
    from svpkit.data.base import Dataset
    from svpkit.loops.suggest import Contender


@dataclass
class SuggestOutcome:
    """The report (rows per candidate, the recommendation) and the run that holds it."""

    report: SuggestReport
    run_id: str | None
    experiment_id: str | None


def suggest_proxy(
    *,
    dataset: str = "digits",
    data_path: Optional[str] = None,
    train_limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    dataset_options: Options = None,
    target: str = "digits_cnn",
    selector: str = "least_confidence",
    candidates: str = "digits_mlp:10,digits_cnn:3,digits_cnn:10",
    pilot: Size = "0.1",
    k: int = 100,
    seeds: int = 3,
    min_overlap: float = 0.5,
    min_spearman: float = 0.5,
    target_epochs: Optional[int] = None,
    target_options: Options = None,
    seed: int = 0,
    device: str = "auto",
    batch_size: Optional[int] = None,
    experiment: Optional[str] = None,
    run_name: Optional[str] = None,
    track: bool = True,
    progress: bool = False,
) -> SuggestOutcome:
    """Train the target and each candidate (``model[:epochs][{options}]``, comma-separated) on a
    pilot, compare their picks, recommend the cheapest that agrees (``svpkit suggest-proxy``)."""
    from svpkit.analysis import suggest, suggest_report
    from svpkit.api.flow import load_dataset
    from svpkit.loops.budgets import one_size
    from svpkit.loops.suggest import SuggestConfig, check_seeds, pilot_size, run_suggest
    from svpkit.plugins import get_plugins
    from svpkit.progress import make_progress
    from svpkit.runtime import resolve_device

    suggest.check_min_overlap(min_overlap)
    suggest.check_min_spearman(min_spearman)
    parsed = suggest.parse_candidates(candidates)
    selector_spec = get_plugins().selectors.get(selector)
    if not selector_spec.needs:
        raise ConfigError(f"selector {selector!r} uses no model: there is no proxy to choose")
    target_model, contenders = _models(target, target_epochs, target_options, parsed)
    cfg = SuggestConfig(one_size(str(pilot), "pilot"), k, check_seeds(seeds), seed, device, opt_int(batch_size))
    resolve_device(device)
    data = load_dataset(get_plugins().datasets.get(dataset), data_path, train_limit, test_limit, dataset_options)
    _check_inputs(data, [target_model, *contenders])
    count = pilot_size(cfg.pilot, len(data.train), k)
    with make_progress(not progress):
        rows = run_suggest(data, selector_spec, target_model, contenders, cfg)
    meta = {"dataset": data.name, "selector": selector, "target": target_model.label, "pilot": count, "k": k}
    report = suggest_report.summarise(rows, parsed, meta, min_overlap, min_spearman)
    params = {**meta, "candidates": candidates, "seeds": seeds, "seed": seed, "device": device}
    params |= {"min_overlap": min_overlap, "min_spearman": min_spearman, "dataset_digest": data.digest}
    name = run_name or f"suggest-{target}-{selector}-s{seed}"
    return _logged(report, params, experiment or None, name, track)


def _models(
    target: str, epochs: Optional[int], options: Options, parsed: list[Any]
) -> tuple[Contender, list[Contender]]:
    """The target and the candidates, their options checked against the models."""
    text = format_options(options) if not isinstance(options, (str, type(None))) else options
    target_model = _contender(target, opt_int(epochs), text, "--target-options")
    return target_model, [_contender(c.name, c.epochs, c.options, f"candidate {c.text!r}", c.text) for c in parsed]


def _check_inputs(data: Dataset, models: list[Contender]) -> None:
    """Every model reads the data set's inputs."""
    for model in models:
        if data.modality not in model.spec.modalities:
            raise ConfigError(f"{model.label}: model {model.spec.name!r} does not read {data.modality} inputs")


def _logged(
    report: SuggestReport, params: dict[str, Any], experiment: Optional[str], name: str, track: bool
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
