"""The plugin example in docs/plugin-hooks.md is real code: load it as a plugin and run a loop with it."""

from __future__ import annotations

import re
import types
from pathlib import Path

from svpkit.data.digits import load_digits
from svpkit.loops.active_learning import ALConfig, run_active_learning
from svpkit.loops.settings import LoopSettings
from svpkit.plugins import Plugins
from svpkit.tracking.memory import MemoryTracker

PLUGIN_DOC = Path(__file__).resolve().parents[1] / "docs" / "plugin-hooks.md"


def readme_plugin() -> types.ModuleType:
    blocks = re.findall(r"```python\n(.*?)```", PLUGIN_DOC.read_text(), flags=re.S)
    (source,) = [b for b in blocks if "@hookimpl" in b and "register_selectors" in b]
    module = types.ModuleType("my_svp_plugin")
    exec(compile(source, str(PLUGIN_DOC), "exec"), module.__dict__)
    return module


def test_readme_plugin_registers_and_runs() -> None:
    plugins = Plugins(load_entry_points=False, extra=(("my_plugin", readme_plugin()),))
    assert plugins.info["my_plugin"].ok, plugins.info["my_plugin"].errors
    selector = plugins.selectors.get("smallest_max_logit_gap")
    model = plugins.models.get("wide_mlp")
    tracker = MemoryTracker()
    result = run_active_learning(
        load_digits(),
        selector,
        model,
        plugins.models.get("digits_mlp"),
        ALConfig(initial=20, budgets=[60, 100], settings=LoopSettings(proxy_epochs=2, target_epochs=2)),
        tracker,
    )
    assert [len(s) for s in result.selected] == [40, 40]
    assert {"rounds/1/selected.npy", "rounds/2/scores.npy", "rounds/0/labeled.npy"} <= set(tracker.arrays)
    assert [step for step, _ in tracker.metrics["target/test_error"]] == [60, 100]
