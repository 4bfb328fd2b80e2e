"""The commands that take settings objects, and what is generated from their declarations.

:data:`COMMANDS` names, for each such command, its settings object (:mod:`svpkit.api.args`,
:class:`~svpkit.api.suggest.SuggestArgs`, :class:`~svpkit.api.labeling.QueryArgs`) and the options
it takes beside it. From them come the typer options (:func:`svpkit.cli.options.takes_settings`),
the MLproject files (:func:`render_mlproject`, :func:`docker_twin`), the keys a preset may set
(:func:`preset_schema`) and docs/options.md (:func:`options_page`). ``python
tests/test_settings_declared.py --write`` writes the files; the same test fails when they are stale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Union

from svpkit.api.args import ActiveLearningArgs, CoreSetArgs, TrainArgs
from svpkit.api.declare import Declared, declared
from svpkit.api.labeling import QueryArgs
from svpkit.api.suggest import SuggestArgs


def _option(name: str, default: Union[str, int, bool, None], help: str, *decls: str, ml: bool = True) -> Declared:
    kind = type(default) if default is not None else str
    return Declared(name, default, kind, default is None, help, tuple(decls), ml and kind is not bool)


RESUME_ROUND = _option(
    "resume", None, "Continue this interrupted run from its last finished round (its own parameters are used)."
)
RESUME_STAGE = _option(
    "resume", None, "Continue this interrupted run from its last finished stage (its own parameters are used)."
)
SYNC_BATCHNORM = _option(
    "sync_batchnorm",
    False,
    "Under torchrun on GPUs: BatchNorm statistics over all ranks' batches.",
    "--sync-batchnorm",
)
AS_JSON = _option("as_json", False, "Print the report as JSON (for scripts).", "--json")
PROJECT = _option("project", None, "The labeling project's run id.", "--project")
K = _option("k", 500, "How many examples to ask the annotators for.", "--k")
OUT = _option("out", None, "Also write the batch to this CSV file (for the annotation tool).", "--out")
RUN_OPTIONS = (
    _option("experiment", None, "MLflow experiment name (default 'svpkit').", ml=False),
    _option("run_name", None, "", ml=False),
    _option("quiet", False, "No progress bars.", "--quiet", "-q"),
)
"""How a run is kept and shown: MLflow sets these itself for an MLproject run."""


@dataclass(frozen=True)
class Command:
    """A command whose options are a settings object's fields and ``extra`` ones."""

    name: str
    settings: type
    extra: tuple[Declared, ...] = ()

    def options(self) -> list[Declared]:
        return [*declared(self.settings), *self.extra, *RUN_OPTIONS]


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("active-learning", ActiveLearningArgs, (RESUME_ROUND, SYNC_BATCHNORM)),
        Command("core-set", CoreSetArgs, (RESUME_STAGE,)),
        Command("train", TrainArgs),
        Command("suggest-proxy", SuggestArgs, (AS_JSON,)),
        Command("query", QueryArgs, (PROJECT, K, OUT)),
    )
}
"""Command name → its declaration (tests may put a throwaway one in its place)."""


# -- presets -----------------------------------------------------------------------------------
def preset_schema(command: str) -> dict[str, tuple[bool, str, str | None]]:
    """The keys a preset may set for ``command``: name → (is a flag, how to write it, how to switch it off)."""
    schema: dict[str, tuple[bool, str, str | None]] = {}
    for row in COMMANDS[command].options():
        off = None if not row.is_flag or row.decls else "--no-" + row.name.replace("_", "-")
        schema[row.name] = (row.is_flag, row.flag, off)
    return schema


# -- MLproject ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """An MLproject entry point that runs ``command`` with every option it can be given as text."""

    name: str
    command: str
    launcher: str = "python -m svpkit"
    leading: tuple[tuple[str, str], ...] = ()
    """Parameters of the launcher (name, default) before the command's."""
    comment: str = ""


_HEADER = """name: svpkit

python_env: python_env.yaml

entry_points:
"""
_CORRELATE = """  correlate:
    parameters:
      runs: {type: string, default: ""}
      experiment: {type: string, default: ""}
      filter: {type: string, default: ""}
      round: {type: string, default: "1"}
      k: {type: string, default: "0.1,0.5"}
    command: >-
      python -m svpkit correlate --quiet
      --runs {runs} --experiment {experiment} --filter {filter} --round {round} --k {k}
"""
_COMPARE = """  compare:
    parameters:
      experiment: {type: string, default: ""}
    command: >-
      python -m svpkit compare --experiment {experiment}

  experiment:
    parameters:
      preset: {type: string, default: projects/digits_quick.toml}
      experiment: {type: string, default: ""}
    command: >-
      python -m svpkit run {preset} --experiment {experiment}
"""
_LABEL = """  label:
    parameters:
      project: {type: string}
      file: {type: path}
    command: >-
      python -m svpkit label --project {project} {file}
"""
MLPROJECT_LAYOUT: tuple[Union[Entry, str], ...] = (
    Entry("active_learning", "active-learning"),
    Entry("core_set", "core-set"),
    Entry("train", "train"),
    _CORRELATE,
    Entry("suggest_proxy", "suggest-proxy"),
    _COMPARE,
    Entry(
        "active_learning_ddp",
        "active-learning",
        "python -m torch.distributed.run --standalone --nproc_per_node {nproc_per_node}\n      -m svpkit",
        (("nproc_per_node", "2"),),
        "  # active_learning under torchrun: nproc_per_node processes on this machine (one GPU each with\n"
        '  # NCCL, or CPU processes with gloo); only rank 0 logs to the run. README: "Scaling out".\n',
    ),
    Entry(
        "query",
        "query",
        comment="  # A labeling project (docs/labeling.md): `query` asks for the next batch (a new project without\n"
        "  # `project`), `label` imports the annotators' answers to it.\n",
    ),
    _LABEL,
)
"""The MLproject file in order: generated entries and the hand-written ones of the other commands."""


_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null"}
"""Words YAML reads as a boolean or null: quoted."""


def _yaml_text(value: str) -> str:
    plain = value and value[0].isalpha() and all(c.isalnum() or c in "_./" for c in value)
    plain = plain and value.lower() not in _YAML_WORDS
    return value if plain else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_entry(entry: Entry) -> str:
    """One entry point: every option of the command that MLflow can pass as text."""
    rows = [r for r in COMMANDS[entry.command].options() if r.mlproject]
    params = [*entry.leading, *((r.name, r.mlproject_default) for r in rows)]
    lines = [f"{entry.comment}  {entry.name}:", "    parameters:"]
    lines += [f"      {name}: {{type: string, default: {_yaml_text(default)}}}" for name, default in params]
    lines += ["    command: >-", f"      {entry.launcher} {entry.command} --quiet"]
    line = "     "
    for row in rows:
        item = f" {row.flag} {{{row.name}}}"
        if len(line) + len(item) > 110:
            lines.append(line)
            line = "     "
        line += item
    return "\n".join([*lines, line]) + "\n"


def render_mlproject() -> str:
    """The repository's MLproject file."""
    parts = [render_entry(p) if isinstance(p, Entry) else p for p in MLPROJECT_LAYOUT]
    return _HEADER + "\n".join(parts)


DOCKER_IMAGE = "svpkit:latest"
IMAGE_REPO_DIR = "/opt/svpkit"
"""The Dockerfile's WORKDIR: where the repository (and its presets) lie inside the image."""
_DOCKER_HEADER = f"""# Generated from ../MLproject by `python tests/test_settings_declared.py --write`: the same entry
# points in a Docker image (build it first: `docker build -t {DOCKER_IMAGE} .` in the repository root).
# MLflow allows one environment per MLproject file, hence this separate project directory:
#   mlflow run docker -e active_learning                         (local Docker)
#   mlflow run docker -e active_learning --backend kubernetes --backend-config kubernetes_config.json
"""


def docker_twin(text: str) -> str:
    """docker/MLproject from MLproject: docker_env instead of python_env; presets inside the image."""
    if "python_env: python_env.yaml" not in text:
        raise ValueError("MLproject no longer declares python_env: python_env.yaml")
    text = text.replace("python_env: python_env.yaml", f"docker_env:\n  image: {DOCKER_IMAGE}")
    text = text.replace("default: projects/", f"default: {IMAGE_REPO_DIR}/projects/")
    return _DOCKER_HEADER + text


# -- docs --------------------------------------------------------------------------------------
_PAGE_HEAD = """# Options

<!-- Generated from the settings declarations (svpkit/api/args.py, svpkit/api/entries.py) by
`python tests/test_settings_declared.py --write`; tests/test_settings_declared.py fails when it is stale. -->

Every option of the commands that start runs, with its default. The Python API takes the same
names as keyword arguments (`svpkit.active_learning(initial=20, budgets=[40, 60])`,
[python-api](python-api.md)), presets as keys ([usage](usage.md#presets)), the MLproject entries
as parameters (flags excepted). A count's 0 means "not given"; a switch takes `true` or `false`.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def options_table(rows: Sequence[Declared]) -> str:
    """A markdown table of ``rows``: option, default, what it does."""
    lines = ["| option | default | what it does |", "| --- | --- | --- |"]
    for row in rows:
        flag = f"{row.flag}/--no-{row.flag[2:]}" if row.is_flag and not row.decls else row.flag
        default = "" if row.default is None else str(row.default).lower() if row.is_flag else str(row.default)
        lines.append(f"| `{flag}` | {f'`{_cell(default)}`' if default else ''} | {_cell(row.help)} |")
    return "\n".join(lines) + "\n"


def options_page(commands: Mapping[str, Command] | None = None) -> str:
    """docs/options.md: one table per command."""
    sections = [f"\n## svpkit {c.name}\n\n{options_table(c.options())}" for c in (commands or COMMANDS).values()]
    return _PAGE_HEAD + "".join(sections)
