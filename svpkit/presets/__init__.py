"""Experiment presets: a TOML file that expands into runs (``svpkit run projects/X.toml``).

- :mod:`~svpkit.presets.plan`: reading and expanding a preset, checked against the loop commands
  the CLI describes (:class:`LoopCommands`);
- :mod:`~svpkit.presets.runner`: one planned run in its pre-created, tagged MLflow run, in this
  process or as a subprocess;
- :mod:`~svpkit.presets.backends`: many runs at once, a local process pool or MLflow Projects;
- :mod:`~svpkit.presets.execute`: the whole preset: skip what is FINISHED, run the rest, compare.

This package never imports the CLI: the CLI passes what presets need of its commands.
"""

from svpkit.presets.execute import mark_done, plan_table, run_preset
from svpkit.presets.plan import (
    KEY_TAG,
    LOOP_COMMANDS,
    PRESET_TAG,
    CommandOption,
    LoopCommands,
    PlannedRun,
    Preset,
    PresetError,
    RejectedArguments,
    load_preset,
    resolve_data_path,
    run_key,
)
from svpkit.presets.runner import PresetInterrupted

__all__ = [
    "KEY_TAG",
    "LOOP_COMMANDS",
    "PRESET_TAG",
    "CommandOption",
    "LoopCommands",
    "PlannedRun",
    "Preset",
    "PresetError",
    "PresetInterrupted",
    "RejectedArguments",
    "load_preset",
    "mark_done",
    "plan_table",
    "resolve_data_path",
    "run_key",
    "run_preset",
]
