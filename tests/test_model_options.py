"""Model options (``--proxy-options`` / ``--target-options``): parsing against what each model
declares, the values reaching the learners, the logged params, the baseline role, compare's model
labels, presets and the full-data reference."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
import torch
from typer.testing import CliRunner

from svpkit import presets
from svpkit.analysis import compare, pairing
from svpkit.cli import app
from svpkit.cli.analysis import loop_commands
from svpkit.contract import format_options, model_label
from svpkit.errors import ConfigError
from svpkit.learners.options import parse_model_options
from svpkit.learners.torch import TorchLearner
from svpkit.loops.common import run_role
from svpkit.loops.reference import full_reference_mismatch
from svpkit.loops.settings import LoopSettings
from svpkit.models import vdcnn
from svpkit.models.options import parse_options_text
from svpkit.plugins import get_plugins
from svpkit.protocols import LearnerOptions

runner = CliRunner()
DIGITS_QUICK = ["--quiet", "--train-limit", "150", "--test-limit", "30", "--initial", "10", "--budgets", "20,30",
                "--proxy-epochs", "1", "--target-epochs", "1", "--device", "cpu"]  # fmt: skip


def _spec(name: str):  # type: ignore[no-untyped-def]
    return get_plugins().models.get(name)


def test_values_are_typed_by_the_declaration() -> None:
    fasttext = pytest.importorskip("svpkit_fasttext")
    del fasttext
    opts = parse_model_options(_spec("fasttext"), " dim = 50 , word-ngrams=1,lr=0.1 ", "--proxy-options")
    assert opts == {"dim": 50, "word_ngrams": 1, "lr": 0.1}
    assert format_options(opts) == "dim=50,lr=0.1,word_ngrams=1"
    torch_opts = parse_model_options(_spec("preact_resnet20"), "channels_last=off,compile=on,amp=on", "--x")
    assert torch_opts == {"channels_last": False, "compile": "on", "amp": "on"}
    assert format_options(torch_opts) == "amp=on,channels_last=false,compile=on"
    assert parse_model_options(_spec("vdcnn9"), "max_length=256", "--x") == {"max_length": 256}
    assert parse_model_options(_spec("vdcnn9"), "", "--x") == {} == parse_model_options(_spec("vdcnn9"), None, "--x")
    assert model_label("vdcnn9", {"max_length": 256}) == "vdcnn9[max_length=256]"
    assert model_label("vdcnn9", "") == "vdcnn9"


@pytest.mark.parametrize(
    ("model", "text", "message"),
    [
        ("vdcnn9", "max_lenght=256", "has no option 'max_lenght' (did you mean 'max_length'?); it takes amp,"),
        ("vdcnn9", "max_length=long", "option 'max_length' of model 'vdcnn9' must be an integer, got 'long'"),
        ("vdcnn9", "max_length=0", "must be at least 1, got 0"),
        ("vdcnn9", "max_length", "takes name=value pairs separated by commas, got 'max_length'"),
        ("vdcnn9", "max_length=9,max_length=10", "sets 'max_length' twice"),
        ("vdcnn9", "amp=maybe", "option 'amp' of model 'vdcnn9' must be one of auto, on, off, got 'maybe'"),
        ("vdcnn9", "compile=sometimes", "must be one of auto, on, off, got 'sometimes'"),
        ("vdcnn9", "epochs=3", "set 'epochs' with --proxy-epochs, not as a model option"),
    ],
)
def test_bad_options_are_config_errors(model: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        parse_model_options(_spec(model), text, "--proxy-options")


def test_parse_keeps_values_with_equals_signs() -> None:
    assert parse_options_text("compile_mode=max-autotune-no-cudagraphs,a=b=c", "--x") == {
        "compile_mode": "max-autotune-no-cudagraphs",
        "a": "b=c",
    }


def test_vdcnn_max_length_reaches_the_encoding_and_is_cached_per_length() -> None:
    from svpkit.data.base import Dataset, Split

    texts = ["a fine film", "x" * 300, "dull"]
    data = Dataset("t", Split(texts, torch.tensor([0, 1, 0])), Split(["ok"], torch.tensor([1])), 2, "text", (1,))
    short = TorchLearner(_spec("vdcnn9"), data, LearnerOptions(device="cpu", extra={"max_length": 64}))
    default = TorchLearner(_spec("vdcnn9"), data, LearnerOptions(device="cpu"))
    x_short, _ = short.inputs("train")
    x_default, _ = default.inputs("train")
    assert x_short.shape == (3, 64) and x_default.shape == (3, vdcnn.MAX_LENGTH)
    assert torch.equal(x_short, x_default[:, :64])
    short.fit(torch.arange(3).numpy())
    assert short.predict_proba().shape == (3, 2)


def test_the_torch_learner_rejects_unknown_options_from_python_too() -> None:
    from test_train import tiny_images

    with pytest.raises(ConfigError, match="model 'preact_resnet20' has no option 'channel_last'"):
        TorchLearner(_spec("preact_resnet20"), tiny_images(4), LearnerOptions(device="cpu", extra={"channel_last": 1}))


def test_baseline_role_needs_the_same_options() -> None:
    selector = get_plugins().selectors.get("least_confidence")
    cnn = _spec("digits_cnn")

    def role(proxy_options: dict, target_options: dict) -> str:
        cfg = SimpleNamespace(
            proxy_epochs=None, target_epochs=None, proxy_options=proxy_options, target_options=target_options
        )
        return run_role(selector, cnn, cnn, cfg)  # type: ignore[arg-type]

    assert role({}, {}) == "baseline"
    assert role({"inference_batch_size": 50}, {"inference_batch_size": 50}) == "baseline"
    assert role({"inference_batch_size": 50}, {}) == "proxy"


def test_models_options_command() -> None:
    result = runner.invoke(app, ["models", "options", "vdcnn9", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["option"]: r for r in json.loads(result.stdout)}
    assert rows["max_length"] == {
        "option": "max_length",
        "type": "int",
        "default": 1014,
        "of": "model",
        "choices": "",
        "description": vdcnn.MAX_LENGTH_OPTION.help,
    }
    assert rows["compile"]["of"] == "torch learner" and rows["compile"]["choices"] == "auto, on, off"
    assert next(iter(rows)) == "max_length"  # the model's own options first
    missing = runner.invoke(app, ["models", "options", "vdcnn7"])
    assert missing.exit_code == 2 and "unknown model 'vdcnn7'" in missing.output


def test_a_bad_option_fails_before_any_run_exists(tracking_uri: str) -> None:
    result = runner.invoke(app, ["active-learning", *DIGITS_QUICK, "--experiment", "bad-opts",
                                 "--target-options", "inference_batch=5"])  # fmt: skip
    assert result.exit_code == 2
    assert "error: --target-options: model 'digits_cnn' has no option 'inference_batch'" in result.output
    assert "Traceback" not in result.output
    assert (
        mlflow.get_experiment_by_name("bad-opts") is None
        or not mlflow.search_runs(experiment_names=["bad-opts"]).shape[0]
    )


def _write_text_csvs(root: Path) -> Path:
    good = ["a wonderful , moving film", "great acting and a great script", "i loved it", "wonderful fun"]
    bad = ["a dull , boring mess", "boring and far too long", "i hated it", "dull , dull , dull"]
    root.mkdir(parents=True, exist_ok=True)
    for name, reps in (("train.csv", 6), ("test.csv", 1)):
        with open(root / name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["label", "text"])
            for i in range(reps):
                writer.writerows([["1", f"{t} {i}"] for t in good] + [["0", f"{t} {i}"] for t in bad])
    return root


def test_text_run_with_fasttext_and_vdcnn_options(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The options reach the learners (embedding width, quantised length) and are logged."""
    svpkit_fasttext = pytest.importorskip("svpkit_fasttext")
    widths: list[int] = []
    lengths: list[int] = []
    embed = svpkit_fasttext.FastTextLearner.embed
    quantize = vdcnn.quantize

    def spy_embed(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        out = embed(self, *args, **kwargs)
        widths.append(out.shape[1])
        return out

    def spy_quantize(texts, max_length=vdcnn.MAX_LENGTH):  # type: ignore[no-untyped-def]
        lengths.append(max_length)
        return quantize(texts, max_length)

    monkeypatch.setattr(svpkit_fasttext.FastTextLearner, "embed", spy_embed)
    monkeypatch.setattr(vdcnn, "quantize", spy_quantize)
    data = _write_text_csvs(tmp_path / "text")
    result = runner.invoke(app, [
        "active-learning", "--quiet", "--experiment", "text-opts", "--dataset", "text_csv", "--data-path", str(data),
        "--selector", "greedy_k_center", "--proxy", "fasttext", "--target", "vdcnn9", "--initial", "8",
        "--budgets", "16,24", "--target-epochs", "1", "--batch-size", "8",
        "--proxy-options", "dim=4,word_ngrams=1,bucket=1000", "--target-options", "max_length=48",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert widths and set(widths) == {4}
    assert lengths and set(lengths) == {48}
    (run,) = mlflow.search_runs(experiment_names=["text-opts"], output_format="list")
    assert run.data.params["proxy_options"] == "bucket=1000,dim=4,word_ngrams=1"
    assert run.data.params["target_options"] == "max_length=48"
    assert run.data.tags["svpkit.role"] == "proxy"


@pytest.mark.slow
def test_compare_tells_models_with_options_apart(tracking_uri: str) -> None:
    experiment = "opts-compare"

    def run(*extra: str) -> None:
        result = runner.invoke(app, ["active-learning", *DIGITS_QUICK, "--experiment", experiment, "--proxy",
                                     "digits_cnn", "--target", "digits_cnn", *extra])  # fmt: skip
        assert result.exit_code == 0, result.output

    run()  # the baseline of digits_cnn
    run("--proxy-options", "inference_batch_size=50")  # another selector model for the same target
    run("--proxy-options", "inference_batch_size=50", "--target-options", "inference_batch_size=50")
    roles = sorted(
        r.data.tags["svpkit.role"] for r in mlflow.search_runs(experiment_names=[experiment], output_format="list")
    )
    assert roles == ["baseline", "baseline", "proxy"]
    result = compare.compare_experiment(experiment)
    targets = sorted(b.target_model for b in result.blocks)
    assert targets == ["digits_cnn", "digits_cnn[inference_batch_size=50]"]
    plain = next(b for b in result.blocks if b.target_model == "digits_cnn")
    assert {r.method for r in plain.rows} == {"digits_cnn", "digits_cnn[inference_batch_size=50]"}
    (pair,) = {(p.method, p.baseline_run_id) for p in result.pairs}
    assert pair[0] == "digits_cnn[inference_batch_size=50]"
    printed = runner.invoke(app, ["compare", "--experiment", experiment, "--no-log"])
    assert printed.exit_code == 0, printed.output
    # The label is text, not rich markup: the brackets are printed.
    assert "digits_cnn[inference_batch_size=50]" in printed.output


def test_presets_take_option_tables_and_lists_of_them_as_axes(tmp_path: Path) -> None:
    path = tmp_path / "opts.toml"
    path.write_text(
        """
[preset]
name = "opts"
loop = "active_learning"
[defaults]
dataset = "digits"
target_options = {inference_batch_size = 64, channels_last = false}
[[runs]]
selector = "least_confidence"
proxy = "digits_cnn"
proxy_options = [{inference_batch_size = 32}, {inference_batch_size = 16}]
"""
    )
    preset = presets.load_preset(path, loop_commands())
    assert [r.options["proxy_options"] for r in preset.runs] == ["inference_batch_size=32", "inference_batch_size=16"]
    first = preset.runs[0]
    assert first.args[first.args.index("--target-options") + 1] == "channels_last=false,inference_batch_size=64"
    assert first.args[first.args.index("--proxy-options") + 1] == "inference_batch_size=32"
    assert "digits_cnn[inference_batch_size=32]" in first.name
    assert len({r.key for r in preset.runs}) == 2


def test_full_reference_must_have_the_same_target_options() -> None:
    from test_train import tiny_images

    data = tiny_images(6)
    spec = _spec("preact_resnet20")
    record = SimpleNamespace(
        status="FINISHED",
        tags={"svpkit.loop": "train", "svpkit.dataset": data.name, "svpkit.subset_size": str(len(data.train)),
              "svpkit.target_model": spec.name},
        params={"dataset_digest": data.digest, "target_epochs": "181", "device": "cpu",
                "target_options": "inference_batch_size=64"},
        metrics={"target/train_seconds": 1.0, "target/test_error": 0.5},
    )  # fmt: skip
    same = LoopSettings(device="cpu", target_options={"inference_batch_size": 64})
    assert full_reference_mismatch(record, data, spec, same) is None
    other = LoopSettings(device="cpu")
    assert full_reference_mismatch(record, data, spec, other) == (
        "its target options are 'inference_batch_size=64', not 'none'"
    )
    assert full_reference_mismatch(record, data, spec, other, strict=False) is None


@pytest.mark.slow
def test_settings_are_tags_so_an_mlproject_run_with_defaults_matches_a_cli_run(tracking_uri: str) -> None:
    """Under `mlflow run` the entry logs its raw parameters first (target_epochs=0 for "the
    model's default", device=auto, '' for empty options) and MLflow never changes a param: the
    resolved settings are tags, and the core-set loop finds the entry's train run by them."""
    root = Path(__file__).resolve().parents[1]
    small = {"train_limit": "150", "test_limit": "30"}
    submitted = mlflow.projects.run(
        str(root), entry_point="train", parameters=small, experiment_name="entry-ref", env_manager="local"
    )
    reference = mlflow.MlflowClient().get_run(submitted.run_id)
    assert reference.data.params["target_epochs"] == "0" and reference.data.params["target_options"] == "''"
    tags = reference.data.tags
    assert (tags["svpkit.target_epochs"], tags["svpkit.device"], tags["svpkit.target_options"]) == ("30", "cpu", "")
    result = runner.invoke(app, ["core-set", "--quiet", "--experiment", "entry-ref", "--train-limit", "150",
                                 "--test-limit", "30", "--proxy-epochs", "1", "--keep", "0.5"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (core_set,) = mlflow.search_runs(experiment_names=["entry-ref"], filter_string="tags.`svpkit.loop` = 'core_set'", output_format="list")  # fmt: skip
    assert core_set.data.tags["svpkit.full_run"] == submitted.run_id


def test_compare_labels_a_model_at_several_epochs_with_and_without_options() -> None:
    def record(run_id: str, role: str, model: str, epochs: str) -> pairing.ComparedRun:
        return pairing.ComparedRun(
            run_id=run_id, name=run_id, loop="active_learning", role=role, dataset="text_csv",
            selector="least_confidence", selector_model=model, target_model="vdcnn9[max_length=256]", seed="0",
            budgets="500,1000", train_size="10000", proxy_epochs=epochs, start_time=0,
            errors={1000: 0.4}, selection={1000: 1.0},
        )  # fmt: skip

    result = pairing.compare_records([
        record("b", "baseline", "vdcnn9[max_length=256]", "15"),
        record("paper", "proxy", "fasttext", "5"),
        record("tuned", "proxy", "fasttext[lr=0.5]", "25"),
    ])  # fmt: skip
    (block,) = result.blocks
    assert {r.method for r in block.rows} == {"vdcnn9[max_length=256]", "fasttext-5ep", "fasttext[lr=0.5]-25ep"}
