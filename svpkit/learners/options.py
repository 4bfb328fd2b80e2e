"""The options a run may set for a model: the model's own and, for torch models, the torch learner's.

A model declares its own options (:class:`svpkit.models.options.ModelOption`); torch models also
take the torch learner's (:data:`TORCH_LEARNER_OPTIONS`, read by
:class:`svpkit.learners.torch.TorchLearner`). On the command line they are one string per model,
``--proxy-options "dim=50,word_ngrams=1"`` / ``--target-options max_length=256``, checked against
the declaration before any run exists (unknown names get a did-you-mean, values are converted to
the declared type) and passed to the learner as ``LearnerOptions.extra``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from svpkit.errors import ConfigError
from svpkit.models.base import ModelSpec
from svpkit.options import ModelOption, check_known, parse_options_text

# What the torch learner (svpkit.learners.torch.TorchLearner) reads from LearnerOptions.extra.
TORCH_LEARNER_OPTIONS: tuple[ModelOption, ...] = (
    ModelOption("compile", str, "auto", "torch.compile the model (auto: on CUDA for long fits)", ("auto", "on", "off")),
    ModelOption("compile_mode", str, None, "torch.compile mode, e.g. reduce-overhead (CUDA graphs)"),
    ModelOption("channels_last", bool, True, "channels_last memory format for image models"),
    ModelOption(
        "amp",
        str,
        "auto",
        "bf16 autocast of training (auto: on CUDA, and on CPUs with native bf16 where enabled)",
        ("auto", "on", "off"),
    ),
    ModelOption(
        "lr_scaling",
        str,
        "none",
        "how the learning rate follows a batch size other than the model's",
        ("none", "linear", "sqrt"),
    ),
    ModelOption(
        "inference_batch_size",
        int,
        None,
        "batch size for scoring and embedding (default 4096 CUDA, 1024 CPU)",
        minimum=1,
    ),
)

# Set by their own command-line flags (LearnerOptions fields), so that the logged params say what ran.
_OWN_FLAGS = {"epochs": "--{role}-epochs", "batch_size": "--batch-size"}


def option_specs(spec: ModelSpec) -> dict[str, ModelOption]:
    """Every option a run may set for ``spec``: its own, and the torch learner's for torch models."""
    learner_options = TORCH_LEARNER_OPTIONS if spec.learner is None else ()
    return {o.name: o for o in (*learner_options, *spec.options)}


def resolve_model_options(spec: ModelSpec, given: Mapping[str, object], flag: str = "options") -> dict[str, Any]:
    """Check ``given`` against what ``spec`` declares; typed values, in the given order."""
    known = option_specs(spec)
    out: dict[str, object] = {}
    for name, value in given.items():
        if name in _OWN_FLAGS and name not in known:
            role = (
                "proxy" if flag.startswith("--proxy") else "target" if flag.startswith("--target") else "proxy/target"
            )
            own = _OWN_FLAGS[name].format(role=role)
            raise ConfigError(f"{flag}: set {name!r} with {own}, not as a model option")
        check_known(flag, f"model {spec.name!r}", name, known)
        out[name] = known[name].convert(value, spec.name)
    if spec.check is not None:
        spec.check(out)
    return out


def parse_model_options(spec: ModelSpec, text: str | None, flag: str) -> dict[str, object]:
    """The command line's ``--proxy-options``/``--target-options`` string for ``spec``, typed."""
    return resolve_model_options(spec, parse_options_text(text, flag), flag)
