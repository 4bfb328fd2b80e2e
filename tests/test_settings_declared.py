"""Every setting is declared once (svpkit/api/args.py, svpkit/api/entries.py), and what is made
from the declarations stays made from them: the command line's options, MLproject and
docker/MLproject, the keys presets take and docs/options.md.

``python tests/test_settings_declared.py --write`` writes MLproject, docker/MLproject and docs/options.md.
"""

from __future__ import annotations

import sys
from dataclasses import make_dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from svpkit.api import entries
from svpkit.api.args import ActiveLearningArgs
from svpkit.api.declare import setting

ROOT = Path(__file__).resolve().parents[1]
GENERATED = {
    "MLproject": entries.render_mlproject,
    "docker/MLproject": lambda: entries.docker_twin(entries.render_mlproject()),
    "docs/options.md": entries.options_page,
}


def write_generated() -> None:
    for path, render in GENERATED.items():
        (ROOT / path).parent.mkdir(exist_ok=True)
        (ROOT / path).write_text(render())
        print(f"wrote {path}")


@pytest.mark.parametrize("path", sorted(GENERATED))
def test_the_generated_files_are_fresh(path: str) -> None:
    assert (ROOT / path).read_text() == GENERATED[path](), (
        f"{path} is stale: run `python tests/test_settings_declared.py --write`"
    )


def test_the_command_line_takes_every_declared_option() -> None:
    import typer.main

    from svpkit.cli import app

    group = typer.main.get_command(app)
    for name, command in entries.COMMANDS.items():
        params = {p.name: p for p in group.commands[name].params}  # type: ignore[attr-defined]
        assert [row.name for row in command.options()] == list(params), name
        for row in command.options():
            assert params[row.name].default == row.default, (name, row.name)


def _mlproject_entry(text: str, entry: str, folder: Path) -> Any:
    from mlflow.projects._project_spec import load_project

    folder.mkdir()
    (folder / "MLproject").write_text(text)
    (folder / "python_env.yaml").write_text((ROOT / "python_env.yaml").read_text())
    return load_project(str(folder))._entry_points[entry]


def test_a_new_option_is_one_declaration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A throwaway field of ActiveLearningArgs shows up in the command's --help and options, both
    active-learning entries of both MLproject files, the preset keys and the docs table."""
    knob = ("throwaway_knob", str, setting("spin", "A throwaway knob of this test."))
    extended = make_dataclass("ActiveLearningArgs", [knob], bases=(ActiveLearningArgs,))
    command = entries.COMMANDS["active-learning"]
    monkeypatch.setitem(entries.COMMANDS, "active-learning", replace(command, settings=extended))

    from svpkit.cli.options import settings_of, takes_settings

    app = typer.Typer()

    @app.command("active-learning")
    @takes_settings("active-learning")
    def active_learning(**values: Any) -> None:
        print(f"knob={settings_of(extended, values).throwaway_knob}")  # type: ignore[attr-defined]

    app.command("other")(lambda: None)
    runner = CliRunner()
    assert "--throwaway-knob" in runner.invoke(app, ["active-learning", "--help"]).output
    assert "knob=twirl" in runner.invoke(app, ["active-learning", "--throwaway-knob", "twirl"]).output
    assert "knob=spin" in runner.invoke(app, ["active-learning"]).output

    text = entries.render_mlproject()
    for n, mlproject in enumerate((text, entries.docker_twin(text))):
        for entry in ("active_learning", "active_learning_ddp"):
            loaded = _mlproject_entry(mlproject, entry, tmp_path / f"{n}-{entry}")
            assert loaded.parameters["throwaway_knob"].default == "spin"
            assert "--throwaway-knob {throwaway_knob}" in loaded.command

    from svpkit.cli.analysis import loop_commands
    from svpkit.presets import PresetError, load_preset

    preset = tmp_path / "knob.toml"
    preset.write_text('[defaults]\nthrowaway_knob = "twirl"\n[[runs]]\nseed = [0, 1]\n')
    planned = load_preset(preset, loop_commands()).runs
    assert [r.args[r.args.index("--throwaway-knob") + 1] for r in planned] == ["twirl", "twirl"]
    preset.write_text('[[runs]]\nthrowaway_knb = "twirl"\n')
    with pytest.raises(PresetError, match="did you mean 'throwaway_knob'"):
        load_preset(preset, loop_commands())

    assert "| `--throwaway-knob` | `spin` | A throwaway knob of this test. |" in entries.options_page()


def test_every_settings_field_is_declared() -> None:
    from dataclasses import dataclass

    from svpkit.api.declare import declared

    @dataclass
    class Undeclared(ActiveLearningArgs):
        plain: int = 3

    with pytest.raises(TypeError, match="Undeclared.plain is not declared"):
        declared(Undeclared)


if __name__ == "__main__" and "--write" in sys.argv:
    write_generated()
