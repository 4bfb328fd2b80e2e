"""The documentation stays true: every hook is documented, the run contract lists every name,
the README stays a front page, nothing points outside the repository, and links resolve."""

from __future__ import annotations

import inspect
import re
import subprocess
import types
from pathlib import Path

import pytest

from svpkit import contract, hookspecs

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PLUGIN_HOOKS = DOCS / "plugin-hooks.md"
README_MAX_LINES = 250
OUTSIDE_POINTERS = ("../shared", "DESIGN.md")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^```.*?^```", flags=re.M | re.S)


def hookspec_functions() -> list[types.FunctionType]:
    marker = f"{hookspecs.hookspec.project_name}_spec"
    return [f for _, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, marker)]


def markdown_pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but ``-`` and ``_`` dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    prose = _FENCE.sub("", page.read_text())
    return {slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*$", prose, flags=re.M)}


def test_there_are_hookspecs() -> None:
    assert {f.__name__ for f in hookspec_functions()} >= {"register_models", "register_selectors"}


@pytest.mark.parametrize("hook", hookspec_functions(), ids=lambda f: f.__name__)
def test_every_hookspec_has_a_section_with_its_parameters(hook: types.FunctionType) -> None:
    params = ", ".join(inspect.signature(hook).parameters)
    heading = f"## {hook.__name__}({params})"
    lines = PLUGIN_HOOKS.read_text().splitlines()
    assert heading in lines, f"docs/plugin-hooks.md has no section {heading!r}"


def test_run_contract_lists_every_name_of_the_contract() -> None:
    documented = set(re.findall(r"`([^`]+)`", (DOCS / "run-contract.md").read_text()))
    missing = sorted(contract.names() - documented)
    assert not missing, f"docs/run-contract.md does not name: {missing}"


def test_readme_is_a_front_page() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def repository_text_files() -> list[Path]:
    """Tracked files and new ones git does not ignore, without binaries."""
    names = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split("\0")
    files = [ROOT / n for n in names if n and (ROOT / n).is_file()]
    return [p for p in files if b"\0" not in p.read_bytes()[:8192]]


def test_nothing_points_outside_the_repository() -> None:
    offenders = [
        f"{p.relative_to(ROOT)}:{number}: {line.strip()[:100]}"
        for p in repository_text_files()
        if p.resolve() != Path(__file__).resolve()
        for number, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if any(pointer in line for pointer in OUTSIDE_POINTERS)
    ]
    assert not offenders, "\n".join(offenders)


def test_relative_links_resolve() -> None:
    broken = []
    for page in markdown_pages():
        for target in _LINK.findall(_FENCE.sub("", page.read_text())):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def hook_examples() -> list[str]:
    """The per-hook examples of docs/plugin-hooks.md (``py`` blocks with a hook implementation)."""
    return [b for b in re.findall(r"```py\n(.*?)```", PLUGIN_HOOKS.read_text(), flags=re.S) if "@hookimpl" in b]


@pytest.mark.parametrize("number", range(len(hook_examples())))
def test_hook_examples_load_as_plugins(number: int) -> None:
    import typer

    from svpkit.plugins import Plugins

    module = types.ModuleType(f"hook_example_{number}")
    exec(compile(hook_examples()[number], f"docs/plugin-hooks.md example {number + 1}", "exec"), module.__dict__)
    plugins = Plugins(load_entry_points=False, extra=(("example", module),))
    app = typer.Typer()
    plugins.register_commands(app)
    info = plugins.info["example"]
    assert info.ok, info.errors
    assert info.hooks, "the example implements no hook"
    for name in info.registered.get("dataset", []):
        assert len(plugins.datasets.get(name).load().train) > 0


def python_api_cells() -> list[str]:
    """The cells of docs/python-api.md (``python`` blocks), run in order in one namespace."""
    return re.findall(r"```python\n(.*?)```", (DOCS / "python-api.md").read_text(), flags=re.S)


def test_the_python_api_page_runs(tracking_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    cells = python_api_cells()
    assert len(cells) >= 3
    namespace: dict[str, object] = {}
    for number, cell in enumerate(cells, start=1):
        exec(compile(cell, f"docs/python-api.md cell {number}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "unknown selector 'margn'" in out
    # Your own data and model: what the objects were, and the errors for what svpkit cannot use.
    assert "datasets.DatasetDict train 300x64, test 297x64" in out
    assert "ConfigError --proxy 'lambda'" in out and "returned a torch.return_types.max" in out
