"""Per-model options: the knobs a model or its learner takes beyond the training schedule.

A model declares its options (:class:`ModelOption`: name, type, default, help); torch models also
take the torch learner's own (:data:`TORCH_LEARNER_OPTIONS`). On the command line they are one
string per model, ``--proxy-options "dim=50,word_ngrams=1"`` / ``--target-options max_length=256``,
checked against the declaration before any run exists (unknown names get a did-you-mean, values
are converted to the declared type) and passed to the learner as ``LearnerOptions.extra``.
Runs log them in canonical form (sorted ``key=value`` pairs) as params ``proxy_options`` and
``target_options``; a model with options is a different selector or target model for
``svpkit compare`` and for the baseline role (:func:`model_label`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from svpkit.errors import ConfigError

if TYPE_CHECKING:
    from svpkit.models.base import ModelSpec

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class ModelOption:
    """One option a model takes. ``default`` None means "decided by the learner" (e.g. per device)."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None

    def convert(self, value: Any, model: str) -> Any:
        """``value`` (a string from the command line, or already typed) as this option's type."""
        where = f"option {self.name!r} of model {model!r}"
        text = str(value).strip()
        try:
            if self.type is bool:
                if isinstance(value, bool):
                    return value
                if text.lower() in _TRUE:
                    return True
                if text.lower() in _FALSE:
                    return False
                raise ValueError
            if self.type in (int, float):
                if isinstance(value, bool):
                    raise ValueError
                number = int(text) if self.type is int else float(text)
                if self.minimum is not None and not number >= self.minimum:
                    raise ConfigError(f"{where} must be at least {self.minimum:g}, got {text}")
                return number
        except ValueError:
            raise ConfigError(f"{where} must be {_TYPE_WORDS[self.type]}, got {text!r}") from None
        if self.choices and text not in self.choices:
            raise ConfigError(f"{where} must be one of {', '.join(self.choices)}, got {text!r}")
        return text


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}

# What the torch learner (svpkit.train.TorchLearner) reads from LearnerOptions.extra.
TORCH_LEARNER_OPTIONS: tuple[ModelOption, ...] = (
    ModelOption("compile", str, "auto", "torch.compile the model (auto: on CUDA for long fits)", ("auto", "on", "off")),
    ModelOption("compile_mode", str, None, "torch.compile mode, e.g. reduce-overhead (CUDA graphs)"),
    ModelOption("channels_last", bool, True, "channels_last memory format for image models"),
    ModelOption("amp", bool, None, "bf16 autocast (default: on for CUDA, off elsewhere)"),
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


def parse_options_text(text: str | None, flag: str) -> dict[str, str]:
    """``"a=1,b=x"`` → ``{"a": "1", "b": "x"}`` (whitespace around names and values is dropped)."""
    out: dict[str, str] = {}
    if text is None or not text.strip():
        return out
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name or not value.strip():
            raise ConfigError(f"{flag} takes name=value pairs separated by commas, got {item.strip()!r}")
        if name in out:
            raise ConfigError(f"{flag} sets {name!r} twice")
        out[name] = value.strip()
    return out


def resolve_model_options(spec: ModelSpec, given: Mapping[str, Any], flag: str = "options") -> dict[str, Any]:
    """Check ``given`` against what ``spec`` declares; typed values, in the given order."""
    known = spec.option_specs()
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name in _OWN_FLAGS and name not in known:
            role = (
                "proxy" if flag.startswith("--proxy") else "target" if flag.startswith("--target") else "proxy/target"
            )
            own = _OWN_FLAGS[name].format(role=role)
            raise ConfigError(f"{flag}: set {name!r} with {own}, not as a model option")
        option = known.get(name)
        if option is None:
            if not known:
                raise ConfigError(f"{flag}: model {spec.name!r} takes no options (got {name!r})")
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{flag}: model {spec.name!r} has no option {name!r}{hint}; it takes {', '.join(sorted(known))}"
            )
        out[name] = option.convert(value, spec.name)
    return out


def parse_model_options(spec: ModelSpec, text: str | None, flag: str) -> dict[str, Any]:
    """The command line's ``--proxy-options``/``--target-options`` string for ``spec``, typed."""
    return resolve_model_options(spec, parse_options_text(text, flag), flag)


def format_value(value: Any) -> str:
    """An option value as the command line writes it (booleans lower-case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def format_options(options: Mapping[str, Any]) -> str:
    """Canonical text of options: sorted ``name=value`` pairs, booleans lower-case; "" for none."""
    return ",".join(f"{k}={format_value(v)}" for k, v in sorted(options.items()))


def model_label(name: str, options: Mapping[str, Any] | str) -> str:
    """A model's identity in comparisons: ``name`` or ``name[a=1,b=2]``."""
    text = options if isinstance(options, str) else format_options(options)
    return f"{name}[{text}]" if text else name


def option_defaults(spec: ModelSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """The model's own declared options (not the learner's), defaults overridden by ``given``."""
    return {o.name: given.get(o.name, o.default) for o in spec.options}
