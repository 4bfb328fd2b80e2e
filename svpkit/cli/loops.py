"""``svpkit active-learning``, ``svpkit core-set`` and ``svpkit train``: the SVP loops as commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from svpkit.api.args import ActiveLearningArgs, CoreSetArgs, TrainArgs
from svpkit.api.flow import RunSettings
from svpkit.cli.base import app, err, out, uses_store
from svpkit.cli.options import settings_of, takes_settings
from svpkit.cli.runs import report_run
from svpkit.cli.tables import print_active_learning, print_core_set
from svpkit.contract import Tag

if TYPE_CHECKING:
    from svpkit.loops.active_learning import ALResult
    from svpkit.loops.train import TrainOutcome


def _settings(values: dict[str, Any]) -> RunSettings:
    return RunSettings(values["experiment"], values["run_name"], progress=not values["quiet"])


# -- active learning ---------------------------------------------------------------------------
@app.command("active-learning")
@uses_store
@takes_settings("active-learning")
def active_learning(**values: Any) -> None:
    """Batch active learning: a selector model picks each batch, the target is trained at each level."""
    from svpkit.api.loops import run_active_learning_args

    given = settings_of(ActiveLearningArgs, values)
    ran = run_active_learning_args(given, _settings(values), values["resume"], values["sync_batchnorm"])
    report_run(ran, _report_active_learning)


def _report_active_learning(result: ALResult) -> None:
    """The rounds' table, then the proxy warning (svpkit.proxy_warning) in yellow."""
    print_active_learning(result)
    if result.proxy_warning:
        err.print(f"warning: {result.proxy_warning}", style="yellow", highlight=False)


# -- core-set selection ------------------------------------------------------------------------
@app.command("core-set")
@uses_store
@takes_settings("core-set")
def core_set(**values: Any) -> None:
    """Core-set selection: rank every training example with a proxy, train the target on the best part."""
    from svpkit.api.loops import run_core_set_args

    ran = run_core_set_args(settings_of(CoreSetArgs, values), _settings(values), values["resume"])
    model = ran.tags[Tag.SELECTOR_MODEL]
    title = f"core-set: {ran.tags[Tag.SELECTOR]} via {model if model != 'none' else 'no model'}"
    report_run(ran, lambda r: print_core_set(r, title))


# -- training on all (or part) of the data ----------------------------------------------------
@app.command("train")
@uses_store
@takes_settings("train")
def train(**values: Any) -> None:
    """Train a model on all (or part) of the training data: the reference for core-set speed-ups."""
    from svpkit.api.loops import run_train_args

    ran = run_train_args(settings_of(TrainArgs, values), _settings(values))
    subset, target_name, n = ran.tags[Tag.SUBSET_SIZE], ran.tags[Tag.TARGET_MODEL], ran.params["train_size"]

    def report(outcome: TrainOutcome) -> None:
        out.print(
            f"{target_name} on {subset} of {n} examples: "
            f"test error {100 * outcome.test_error:.2f}%, {outcome.train_seconds:.2f} s training"
        )

    report_run(ran, report)
