"""The architecture rules of docs/architecture.md, checked on the source with ``ast``.

- Every module of ``svpkit`` belongs to one layer of :data:`LAYERS`; a module imports only from
  its own layer or below; the plugins under ``plugins/`` import nothing above ``svpkit.api`` (module-level and function-level imports alike; imports under
  ``if TYPE_CHECKING:`` are for type hints only and are not counted).
- The import graph has no cycle, type-only imports (``if TYPE_CHECKING:``) included.
- No module is over 400 lines and no function over 80.
- Names come from the contract: no ``"svpkit.…"`` tag or artifact literal outside ``contract.py``.
- Only ``svpkit.tracking`` imports mlflow; only ``svpkit.cli`` writes to the console (and
  ``svpkit.progress``, the progress bars a run shows on request).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "svpkit"

# Lowest first. A name stands for the module and everything under it ("svpkit" for its __init__ only).
LAYERS: list[tuple[str, ...]] = [
    (
        "svpkit",
        "svpkit.errors",
        "svpkit.timing",
        "svpkit.progress",
        "svpkit.runtime",
        "svpkit.contract",
        "svpkit.options",
        "svpkit.signals",
        "svpkit.hookspecs",
        "svpkit.registry",
        "svpkit.plots",
        "svpkit.options",
    ),
    ("svpkit.protocols", "svpkit.data"),
    ("svpkit.models", "svpkit.selectors", "svpkit.parallel", "svpkit.backbones"),
    ("svpkit.learners", "svpkit.plugins", "svpkit.builtin_plugin"),
    ("svpkit.loops",),
    ("svpkit.tracking", "svpkit.analysis", "svpkit.presets", "svpkit.labeling", "svpkit.api"),
    ("svpkit.cli", "svpkit.__main__"),
]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    best, depth = -1, -1
    for level, names in enumerate(LAYERS):
        for name in names:
            covers = module == name or (name != "svpkit" and module.startswith(name + "."))
            if covers and name.count(".") > depth:
                best, depth = level, name.count(".")
    return best


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, type_only: bool = False) -> set[str]:
    """svpkit modules imported by ``path`` (``from svpkit import x`` counts as ``svpkit.x``);
    ``type_only``: with the imports under ``if TYPE_CHECKING:`` (for the cycle check)."""
    tree = ast.parse(path.read_text())
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_only:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "svpkit")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            if base.split(".")[0] == "svpkit":
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    sub = PACKAGE.parent / Path(*candidate.split("."))
                    is_module = sub.with_suffix(".py").exists() or (sub / "__init__.py").exists()
                    found.add(candidate if is_module else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(this)
    return found


def source_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def graph(type_only: bool = False) -> dict[str, set[str]]:
    return {module_name(p): imports_of(p, type_only) for p in source_files()}


def test_every_module_has_a_layer() -> None:
    missing = [m for m in graph() if layer_of(m) < 0]
    assert not missing, f"modules outside the layer table: {missing}"


def test_no_import_goes_up_the_layers() -> None:
    upward = [
        f"{m} (layer {layer_of(m) + 1}) imports {d} (layer {layer_of(d) + 1})"
        for m, deps in graph().items()
        for d in sorted(deps)
        if layer_of(d) > layer_of(m)
    ]
    assert not upward, "\n".join(upward)


PLUGINS = ROOT / "plugins"
PLUGIN_TOP = "svpkit.api"
"""The highest layer a plugin under plugins/ may import: svpkit's public API and what lies below it,
never the command line's modules (a plugin's commands get the app from ``register_commands``)."""


def plugin_files() -> list[Path]:
    """The source of every plugin distribution under plugins/ (their tests and tools aside)."""
    return sorted(
        p for p in PLUGINS.glob("*/**/*.py") if not {"tests", "tools", "build"} & set(p.relative_to(PLUGINS).parts)
    )


def test_plugins_import_no_layer_above_the_api() -> None:
    files = plugin_files()
    assert any("svpkit_labelstudio" in str(p) for p in files)
    upward = [
        f"{p.relative_to(ROOT)} imports {d} (layer {layer_of(d) + 1})"
        for p in files
        for d in sorted(imports_of(p))
        if layer_of(d) > layer_of(PLUGIN_TOP)
    ]
    assert not upward, "\n".join(upward)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path, or None."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for dep in sorted(edges.get(node, ())):
            if dep not in edges:
                continue
            if colour.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in colour:
                found = dfs(dep)
                if found:
                    return found
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(edges):
        if node not in colour:
            found = dfs(node)
            if found:
                return found
    return None


def test_import_graph_has_no_cycle() -> None:
    edges = graph(type_only=True)
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_layer_rule_sees_function_level_imports() -> None:
    path = PACKAGE / "models" / "_probe_for_test.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from svpkit.cli import app\n"
        "def f():\n    from svpkit import tracking\n    from svpkit.loops import budgets\n"
    )
    try:
        assert imports_of(path) == {"svpkit.tracking", "svpkit.loops.budgets"}
        assert imports_of(path, type_only=True) == {"svpkit.cli", "svpkit.tracking", "svpkit.loops.budgets"}
    finally:
        path.unlink()


def test_modules_are_short() -> None:
    long = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in source_files()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, "\n".join(long)


def test_functions_are_short() -> None:
    long = []
    for p in source_files():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not long, "\n".join(long)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _bare_strings(tree: ast.AST) -> set[int]:
    """ids of string statements (docstrings, attribute docstrings): prose, not names."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def contract_literals(path: Path) -> list[str]:
    """``"svpkit.…"`` string literals of ``path`` that are not module names (tags, artifacts, keys)."""
    tree = ast.parse(path.read_text())
    prose = _bare_strings(tree)
    return [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in prose
        and node.value.startswith("svpkit.")
        and not _is_module(node.value.split(":")[0])
    ]


def test_names_come_from_the_contract() -> None:
    found = [line for p in source_files() if p != PACKAGE / "contract.py" for line in contract_literals(p)]
    assert not found, "\n".join(found)


def mlflow_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] == "mlflow"]
    return found


def test_only_tracking_imports_mlflow() -> None:
    found = [
        line for p in source_files() if not module_name(p).startswith("svpkit.tracking") for line in mlflow_imports(p)
    ]
    assert not found, "\n".join(found)


def console_output(path: Path) -> list[str]:
    """Builtin ``print`` (called or passed on), rich ``Console`` and writes to ``sys.stdout``/``sys.stderr``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        what = None
        if isinstance(node, ast.Name) and node.id in ("print", "Console"):
            what = node.id
        elif isinstance(node, ast.Attribute) and node.attr == "Console":
            what = "Console"
        elif isinstance(node, ast.ImportFrom) and any(a.name == "Console" for a in node.names):
            what = "Console"
        elif isinstance(node, ast.Attribute) and node.attr == "write" and isinstance(node.value, ast.Attribute):
            what = f"{ast.unparse(node.value)}.write" if node.value.attr in ("stdout", "stderr") else None
        if what:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {what}")
    return found


CONSOLE_MODULES = ("svpkit.cli", "svpkit.__main__", "svpkit.progress")
"""Where console output may come from: the command line, and the progress bars of a run."""


def test_only_the_cli_writes_to_the_console() -> None:
    found = [
        line
        for p in source_files()
        if not any(module_name(p) == m or module_name(p).startswith(m + ".") for m in CONSOLE_MODULES)
        for line in console_output(p)
    ]
    assert not found, "\n".join(found)


def test_the_source_rules_see_what_they_forbid(tmp_path: Path) -> None:
    path = PACKAGE / "models" / "_probe_for_rules.py"
    path.write_text(
        '"""svpkit.docstring is prose."""\n'
        "import mlflow.projects\nfrom rich.console import Console\n"
        'TAG = "svpkit.role"\nMODULE = "svpkit.errors"\n'
        "def f():\n    print(TAG)\n    import sys\n    sys.stderr.write(MODULE)\n"
    )
    try:
        assert [line.rpartition(": ")[2] for line in contract_literals(path)] == ["'svpkit.role'"]
        assert [line.rpartition(": ")[2] for line in mlflow_imports(path)] == ["mlflow.projects"]
        assert [line.rpartition(": ")[2] for line in console_output(path)] == ["Console", "print", "sys.stderr.write"]
    finally:
        path.unlink()
