"""The Python API (``import svpkit``): cheap to import, the same picks as the command line for the
same seed, typed errors, and one CLI run looks each name up and parses each option once."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from runhelpers import cli_env, find_run, load_array
from typer.testing import CliRunner

import svpkit

TINY = {"dataset": "digits", "train_limit": 300, "test_limit": 90, "device": "cpu"}
TINY_ARGS = ["--dataset", "digits", "--train-limit", "300", "--test-limit", "90", "--device", "cpu", "--quiet"]


def _cli(*args: str) -> str:
    from svpkit.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _run_id(name: str) -> str:
    run = find_run(name)
    assert run is not None, name
    return str(run.info.run_id)


def test_import_is_cheap_and_names_resolve_lazily(tmp_path: Path) -> None:
    code = (
        "import sys, svpkit; svpkit.hookimpl; svpkit.active_learning; svpkit.SvpkitError;"
        "print(sorted(m for m in ('torch', 'mlflow', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env("sqlite:///x.db"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    from svpkit import api, hookspecs

    assert svpkit.hookimpl is hookspecs.hookimpl
    assert all(getattr(svpkit, name) is getattr(api, name) for name in api.__all__ if name in svpkit.__all__)
    with pytest.raises(AttributeError):
        svpkit.no_such_name  # noqa: B018


def test_bad_settings_are_typed_errors_before_any_run(tracking_uri: str) -> None:
    with pytest.raises(svpkit.SvpkitError, match="unknown selector 'margn'; did you mean 'margin'"):
        svpkit.active_learning(selector="margn", **TINY)
    with pytest.raises(svpkit.ConfigError, match="keep 2 is outside"):
        svpkit.core_set(keep=2.0, **TINY)
    with pytest.raises(svpkit.ConfigError, match="--proxy-options"):
        svpkit.active_learning(proxy_options={"zz": 1}, **TINY)
    assert find_run("al-margn-digits_mlp-s0") is None


def test_a_settings_object_and_keywords_are_one_run_s_settings() -> None:
    """A settings object, keywords over it, and the command line's text are the same settings;
    an unknown keyword is a ConfigError with a did-you-mean, before anything runs."""
    from svpkit.api.args import recorded, settle
    from svpkit.api.flow import validated

    base = svpkit.ActiveLearningArgs(budgets=[40, 60], initial=20, deterministic=True, **TINY)
    over = settle(svpkit.ActiveLearningArgs, base, {"seed": 3, "proxy_options": {"amp": "off"}})
    text = settle(svpkit.ActiveLearningArgs, None, {**TINY, "budgets": "40,60", "initial": "20", "seed": 3})
    assert (over.budgets, over.initial, over.seed, over.deterministic) == ([40, 60], 20, 3, True)
    assert over.proxy_options == {"amp": "off"} and base.seed == 0  # the given object is not changed
    assert recorded(over)["budgets"] == "40,60" and recorded(over)["proxy_options"] == "amp=off"
    typed, parsed = (
        validated("active_learning", over),
        validated("active_learning", replace(text, proxy_options="amp=off", deterministic="true")),
    )
    assert (typed.budgets, typed.initial, typed.deterministic, typed.proxy_options) == (
        (40, 60),
        20,
        True,
        {"amp": "off"},
    )
    assert typed == replace(parsed, problems=typed.problems)
    with pytest.raises(
        svpkit.ConfigError, match="unknown setting 'budget' of ActiveLearningArgs .did you mean 'budgets'"
    ):
        svpkit.active_learning(budget=[10], **TINY)
    with pytest.raises(svpkit.ConfigError, match="settings must be a CoreSetArgs"):
        svpkit.core_set(base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("command", "settings"),
    [
        ("active-learning", "ActiveLearningArgs"),
        ("core-set", "CoreSetArgs"),
        ("train", "TrainArgs"),
        ("suggest-proxy", "SuggestArgs"),
        ("query", "QueryArgs"),
    ],
)
def test_the_command_line_defaults_are_the_settings_objects(command: str, settings: str) -> None:
    """The settings objects hold the defaults; each command's options default to the same values
    (as the command line writes them), and the API function shows the fields as keywords."""
    import inspect
    from dataclasses import fields

    import typer.main

    from svpkit.api.declare import declared
    from svpkit.cli import app

    cls = getattr(svpkit, settings)
    params = {p.name: p.default for p in typer.main.get_command(app).commands[command].params}  # type: ignore[attr-defined]
    for row in declared(cls):
        assert params[row.name] == row.default, (command, row.name)
    function = {"ActiveLearningArgs": svpkit.active_learning, "CoreSetArgs": svpkit.core_set}.get(settings)
    if function is not None:
        shown = inspect.signature(function).parameters
        assert {f.name for f in fields(cls)} <= set(shown) and "given" not in shown


def test_every_loop_picks_what_the_command_line_picks(tmp_path: Path, tracking_uri: str) -> None:
    al = {"initial": 20, "budgets": [40, 60], "proxy_epochs": 1, "target_epochs": 1, "seed": 3}
    _cli("active-learning", *TINY_ARGS, "--initial", "20", "--budgets", "40,60", "--proxy-epochs", "1",
         "--target-epochs", "1", "--seed", "3", "--selector", "margin", "--run-name", "al")  # fmt: skip
    run = svpkit.active_learning(selector="margin", **TINY, **al, track=False)
    run_id = _run_id("al")
    assert run.run_id is None and run.tags["svpkit.selector"] == "margin"
    assert run.initial.tolist() == load_array(run_id, "rounds/0/labeled.npy", tmp_path).tolist()
    for k, picks in enumerate(run.selected, start=1):
        assert picks.tolist() == load_array(run_id, f"rounds/{k}/selected.npy", tmp_path).tolist()
    assert [r.round for r in run.rounds] == [1, 2]

    cs = {"keep": 0.5, "proxy_epochs": 1, "target_epochs": 1, "seed": 2}
    _cli("core-set", *TINY_ARGS, "--keep", "0.5", "--proxy-epochs", "1", "--target-epochs", "1", "--seed", "2",
         "--selector", "least_confidence", "--run-name", "cs")  # fmt: skip
    ranked = svpkit.core_set(selector="least_confidence", **TINY, **cs, experiment="api")  # tracked this time
    assert ranked.run_id is not None and ranked.run_id != _run_id("cs")
    for path in ("ranking/order.npy", "subset/indices.npy"):
        assert (
            load_array(ranked.run_id, path, tmp_path / "api").tolist()
            == load_array(_run_id("cs"), path, tmp_path).tolist()
        )

    _cli("train", *TINY_ARGS, "--size", "100", "--target-epochs", "1", "--seed", "4", "--run-name", "tr")
    trained = svpkit.train(size=100, target_epochs=1, seed=4, **TINY, track=False)
    assert trained.test_error == pytest.approx(find_run("tr").data.metrics["target/test_error"])

    sg = ["--candidates", "digits_mlp:1", "--pilot", "60", "--k", "30", "--seeds", "1", "--target-epochs", "1"]
    shown = json.loads(_cli("suggest-proxy", *TINY_ARGS, *sg, "--json"))
    suggested = svpkit.suggest_proxy(
        candidates="digits_mlp:1", pilot=60, k=30, seeds=1, target_epochs=1, **TINY, track=False
    )
    assert _untimed(json.loads(_suggest_json(suggested.report))) == _untimed(shown)

    from svpkit.analysis.compare import as_json

    compared = svpkit.compare(log=False)
    assert compared.run_id is None
    assert json.loads(as_json(compared.comparison)) == json.loads(_cli("compare", "--json", "--no-log"))


def _untimed(report: Any) -> Any:
    """A suggest-proxy report without what measures time (seconds, speed-ups, the message that quotes one)."""
    if isinstance(report, dict):
        timed = ("seconds", "speedup", "message")
        return {k: _untimed(v) for k, v in report.items() if not any(t in k for t in timed)}
    if isinstance(report, list):
        return [_untimed(v) for v in report]
    return report


def _suggest_json(report: Any) -> str:
    from svpkit.analysis.suggest_report import dumps

    return dumps(report)


def test_query_and_label_through_the_api(tmp_path: Path, tracking_uri: str) -> None:
    from test_labeling import hidden_digits

    hidden_digits(tmp_path / "hidden", 200)
    data = ["--dataset", "npz", "--data-path", str(tmp_path / "hidden"), "--device", "cpu"]
    _cli(
        "query", *data, "--quiet", "--k", "25", "--proxy-epochs", "1", "--seed", "5", "--out", str(tmp_path / "cli.csv")
    )
    settings = {"dataset": "npz", "data_path": str(tmp_path / "hidden"), "device": "cpu", "k": 25, "seed": 5}
    asked = svpkit.query(**settings, proxy_epochs=1, out=tmp_path / "api.csv", experiment="labeling-api")
    assert (tmp_path / "api.csv").read_text() == (tmp_path / "cli.csv").read_text() == asked.batch_csv
    ids = [line.split(",")[0] for line in asked.batch_csv.splitlines()[1:]]
    answers = tmp_path / "answers.csv"
    answers.write_text("id,label\n" + "".join(f"{i},0\n" for i in ids[:5]))
    imported = svpkit.label(answers, project=asked.run_id)
    assert len(imported.check.accepted) == 5 and len(imported.project.labeled()) == 5
    answers.write_text("id,label\nno-such-id,0\n")
    with pytest.raises(svpkit.api.AnswersRejected) as rejected:
        svpkit.label(answers, project=asked.run_id)
    assert rejected.value.check.problems
    # Answers from an annotation tool's API (no file): the same checks, the same import.
    more = svpkit.label(project=asked.run_id, answers={i: "1" for i in ids[5:8]})
    assert len(more.project.labeled()) == 8 and more.updated is not None
    with pytest.raises(svpkit.AnswersRejected, match="tool: 1 rows cannot be imported"):
        svpkit.label(project=asked.run_id, answers={"no-such-id": "0"}, source="tool")
    with pytest.raises(svpkit.ConfigError, match="one of them"):
        svpkit.label(answers, project=asked.run_id, answers={})
    loaded = svpkit.load_dataset("npz", str(tmp_path / "hidden"), train_limit=50)
    assert len(loaded.train) == 50 and svpkit.load_dataset(loaded).digest == loaded.digest


PARSERS = {
    "parse_options_text": lambda args: args[1],  # (text, flag)
    "parse_sizes": lambda args: args[1] if len(args) > 1 else "budget",  # (text, what); one_size's too
    "parse_fraction": lambda args: args[1],
    "parse_switch": lambda args: args[1],
}
"""The functions that turn a setting's text into a value, and which setting a call parses."""


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[tuple[str, str]]:
    """Count every parse of a setting and every registry lookup (in every module that holds the parser)."""
    from svpkit import registry
    from svpkit.loops.stopping import StopRule

    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for name, key in PARSERS.items():
        modules = [m for m in list(sys.modules.values()) if m and m.__name__.startswith("svpkit") and hasattr(m, name)]
        original = getattr(modules[0], name)
        for module in modules:
            if getattr(module, name) is original:

                def counting(*args: Any, _name: str = name, _key: Any = key, _f: Any = original) -> Any:
                    if isinstance(args[0], str) or args[0] is None:  # text (or nothing) parsed
                        counts[(_name, _key(args))] += 1
                    return _f(*args)

                monkeypatch.setattr(module, name, counting)
    parse_stop = StopRule.parse.__func__  # type: ignore[attr-defined]

    def counting_stop(cls: Any, text: Any) -> Any:
        counts[("StopRule.parse", "--stop-when")] += 1
        return parse_stop(cls, text)

    monkeypatch.setattr(StopRule, "parse", classmethod(counting_stop))
    entry = registry.Registry.entry

    def counting_entry(self: Any, name: str) -> Any:
        counts[(self.kind, name)] += 1
        return entry(self, name)

    monkeypatch.setattr(registry.Registry, "entry", counting_entry)
    return counts


def test_one_cli_run_and_one_api_run_parse_each_value_once(tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each name is looked up and each text value parsed once, by the validation pass; every later
    step (the loop's config, the data set, the stopping rule) uses its plan."""
    import svpkit.api.loops  # noqa: F401  (every module that parses is loaded before counting)
    import svpkit.cli.loops  # noqa: F401
    import svpkit.loops.active_learning  # noqa: F401
    import svpkit.loops.validate  # noqa: F401

    counts = _count_parses(monkeypatch)
    _cli("active-learning", *TINY_ARGS, "--initial", "20", "--budgets", "40", "--proxy-epochs", "1",
         "--no-train-target", "--selector", "margin", "--proxy-options", "amp=off",
         "--initial-selector", "typiclust")  # fmt: skip
    options = {("parse_options_text", f"--{o}-options"): 1 for o in ("dataset", "proxy", "target", "selector")}
    names = {
        ("dataset", "digits"): 1,
        ("selector", "margin"): 1,
        ("selector", "typiclust"): 1,  # the initial selector: looked up by the validation pass only
        ("model", "digits_mlp"): 1,
        ("model", "digits_cnn"): 1,
    }
    sizes = {("parse_sizes", "initial"): 1, ("parse_sizes", "budget"): 1, ("StopRule.parse", "--stop-when"): 1}
    switches = {("parse_switch", "deterministic"): 1, ("parse_switch", "class_balance"): 1}
    assert counts == names | options | sizes | switches

    counts.clear()  # typed values need no parsing; the text ones are parsed once
    svpkit.active_learning(
        **TINY, initial="20", budgets=[40, 60], proxy_epochs=1, target_epochs=1, selector="margin",
        initial_selector="typiclust",
        proxy_options={"amp": "off"}, selector_options="", stop_when="kappa:0.99", class_balance=True, track=False,
    )  # fmt: skip
    typed = {("parse_options_text", "--proxy-options"), ("parse_switch", "class_balance"), ("parse_sizes", "budget")}
    typed |= {("parse_switch", "deterministic")}  # its default is a bool
    assert counts == {k: 1 for k in (names | options | sizes | switches) if k not in typed}
