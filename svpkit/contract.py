"""The run contract: every tag, metric, artifact and loop name a run writes, in one place.

Loops, tracking, analysis, presets and the CLI name what they log or read only through this
module, so a rename happens here once and ``docs/run-contract.md`` (checked against this module
by ``tests/test_docs.py``) lists exactly what runs contain. Metrics are logged with
``step`` = the number of labeled (or kept) examples the value belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class LoopName:
    """A loop: its ``svpkit.loop`` tag value, its CLI command and its run-name prefix."""

    name: str
    command: str
    prefix: str


ACTIVE_LEARNING = LoopName("active_learning", "active-learning", "al")
CORE_SET = LoopName("core_set", "core-set", "cs")
TRAIN = LoopName("train", "train", "train")
RUN_LOOPS = {loop.name: loop for loop in (ACTIVE_LEARNING, CORE_SET, TRAIN)}
"""The loops a preset or ``--resume`` can run, by ``svpkit.loop`` value."""
LABELING = LoopName("labeling", "query", "labeling")
"""A labeling project: one run that ``svpkit query`` / ``label`` / ``export`` continue (docs/labeling.md)."""
COMPARE = "compare"
CORRELATE = "correlate"
SUGGEST_PROXY = "suggest_proxy"
PRESET = "preset"


class Tag:
    """Run tags (strings). ``svpkit.<setting>`` tags hold resolved settings: :func:`setting_tags`."""

    LOOP = "svpkit.loop"
    ROLE = "svpkit.role"
    DATASET = "svpkit.dataset"
    SELECTOR = "svpkit.selector"
    SELECTOR_MODEL = "svpkit.selector_model"
    TARGET_MODEL = "svpkit.target_model"
    SEED = "svpkit.seed"
    BUDGETS = "svpkit.budgets"
    AMP = "svpkit.amp"  # resolved setting "amp": each model's training precision, e.g. proxy=bf16,target=fp32
    CPU_CAPABILITY = "svpkit.cpu_capability"  # PyTorch's CPU kernel level: DEFAULT (portable), AVX2, AVX512, ...
    NUMERICS = "svpkit.numerics"  # portable (--deterministic on a CPU: pinned kernels) or native
    MATH_LIBRARIES = "svpkit.math_libraries"  # torch, MKL, oneDNN, numpy (CUDA, cuDNN) versions
    HARDWARE = "svpkit.hardware"  # device type and the CPU's or GPU's model name
    SUBSET_SIZE = "svpkit.subset_size"
    FULL_RUN = "svpkit.full_run"
    RESUMED_FROM_ROUND = "svpkit.resumed_from_round"
    RESUMED_RUN = "svpkit.resumed_run"
    INTERRUPTED = "svpkit.interrupted"
    ERROR = "svpkit.error"
    PRESET = "svpkit.preset"
    PRESET_KEY = "svpkit.preset_key"
    PRESET_FILE = "svpkit.preset_file"
    COMPARE_RUN = "svpkit.compare_run"
    COMPARED_RUNS = "svpkit.compared_runs"
    UNPAIRED_RUNS = "svpkit.unpaired_runs"
    RUNS = "svpkit.runs"
    PROXY_WARNING = "svpkit.proxy_warning"
    AUTO_SWITCH = "svpkit.auto_switch"  # --selector auto: the round that handed over and why
    STOPPED = "svpkit.stopped"  # --stop-when held: why, after which round, at how many labeled
    VERDICTS = "svpkit.verdicts"  # compare run: "label: verdict" per compared row, "; "-separated
    WORSE_THAN_RANDOM = "svpkit.worse_than_random"  # compare run: how many rows are worse than random
    AGREEMENT = "svpkit.agreement"
    DATASET_OBJECT = "svpkit.dataset_object"  # a data set given as a Python object: numpy arrays, torch/datasets class
    DATASET_SHAPE = "svpkit.dataset_shape"  # ... and its splits' shapes, e.g. train 1438x64, test 359x64
    PROXY_CLASS = "svpkit.proxy_class"  # a model given as a factory: the module's qualified class name
    PROXY_PARAMETERS = "svpkit.proxy_parameters"  # ... and its parameter count on this data set
    TARGET_CLASS = "svpkit.target_class"
    TARGET_PARAMETERS = "svpkit.target_parameters"
    SELECTOR_FUNCTION = "svpkit.selector_function"  # a selector given as a scoring function: its qualified name
    BACKBONE = "svpkit.backbone"  # resolved setting "backbone": the pretrained backbone the inputs went through
    EMBEDDING_STORE = "svpkit.embedding_store"  # resolved setting "embedding_store": <backbone>:<store key digest>
    EXPERIMENT_KIND = "mlflow.experimentKind"
    NOTE = "mlflow.note.content"


POOL_SHARD_OPTION = "svpkit.pool_shard"
"""``SelectionContext.options`` key (not logged): (start, stop) of this rank's pool shard when the
pool embeddings in the context are the shard only (sharded selectors under ``torchrun``)."""
FULL_RUN_THIS_RUN = "this run"
"""``svpkit.full_run`` of a core-set run that trained its own full-data reference."""
EXPERIMENT_KIND = "custom_model_development"


class Metric:
    """Metric keys."""

    TARGET_ERROR = "target/test_error"
    TARGET_TRAIN_SECONDS = "target/train_seconds"
    SELECTOR_MODEL_ERROR = "selector_model/test_error"
    LABELED_COUNT = "labeled/count"
    ROUND_TRAIN_SECONDS = "round/train_seconds"
    ROUND_INFERENCE_SECONDS = "round/inference_seconds"
    ROUND_SELECTION_SECONDS = "round/selection_seconds"
    ROUND_TOTAL_SECONDS = "round/total_seconds"
    ROUND_WARMUP_SECONDS = "round/warmup_seconds"
    ROUND_EVAL_SECONDS = "round/eval_seconds"  # the selector model's test error on the --eval-sample sample
    SELECTOR_MODEL_ERROR_LOW = "selector_model/test_error_low"  # its 95 % Wilson interval
    SELECTOR_MODEL_ERROR_HIGH = "selector_model/test_error_high"
    SELECTOR_MODEL_EVAL_COUNT = "selector_model/eval_count"  # test examples it was measured on
    SELECTION_CUMULATIVE_SECONDS = "selection/cumulative_seconds"
    SELECTION_TOTAL_SECONDS = "selection/total_seconds"
    SELECTION_CANDIDATES = "selection/candidates"  # k-center/BADGE subpool=M: the round's random candidates
    PROXY_TRAIN_SECONDS = "proxy/train_seconds"
    PROXY_ERROR = "proxy/test_error"
    RANKING_SECONDS = "ranking/seconds"
    FULL_TRAIN_SECONDS = "full/train_seconds"
    FULL_ERROR = "full/test_error"
    END_TO_END_SPEEDUP = "core_set/end_to_end_speedup"
    MEAN_SPEARMAN = "correlation/mean_spearman"
    MEAN_PEARSON = "correlation/mean_pearson"
    NUM_SHARED = "correlation/num_shared"
    AGREEMENT_SPEARMAN = "agreement/spearman"
    AGREEMENT_TOP_K = "agreement/top_k_overlap"
    AGREEMENT_RANDOM = "agreement/random_overlap"
    AGREEMENT_SECONDS = "agreement/seconds"
    WORST_CLASS_ERROR = "target/worst_class_error"
    STOP_KAPPA = "stopping/kappa"  # Cohen's kappa of consecutive rounds' targets on the stop set
    DATA_LISTING_SECONDS = "data/listing_seconds"  # listing the data set's files (image folders)
    DATA_STATISTICS_SECONDS = "data/statistics_seconds"  # its pixel statistics (cache check, or a pass)
    STOP_UNCERTAINTY = "stopping/uncertainty"  # the round's target: mean 1 - max p on the stop set


DATA_PHASE_METRICS = {"listing": Metric.DATA_LISTING_SECONDS, "statistics": Metric.DATA_STATISTICS_SECONDS}
"""The metric of each measured load phase (``Dataset.load_seconds``)."""


def class_error_metric(class_name: str) -> str:
    """``target/class_error/<class>``: the target's test error on one class (at the final level)."""
    return f"target/class_error/{class_name}"


def compare_metric(*parts: str) -> str:
    """A compare run's per-level metric: its parts joined by ``/``, characters MLflow refuses as ``_``."""
    return "/".join(re.sub(r"[^A-Za-z0-9_.\- ]", "_", p) for p in parts)


class Artifact:
    """Artifact paths (relative to the run's artifact root)."""

    TIMINGS = "timings.json"
    SUMMARY = "summary.json"
    RANKING_ORDER = "ranking/order.npy"
    RANKING_SCORES = "ranking/scores.npy"
    RANKING_SEEDS = "ranking/seeds.npy"
    SUBSET = "subset/indices.npy"
    AL_ERROR_FIGURE = "figures/error_vs_labeled.png"
    AL_SECONDS_FIGURE = "figures/selection_seconds.png"
    CORE_SET_FIGURE = "figures/core_set.png"
    TRAIN_LOSS_FIGURE = "figures/train_loss.png"
    CORRELATION_HEATMAP = "figures/correlation_heatmap.png"
    OVERLAP_CSV = "correlation/overlap_at_k.csv"
    OVERLAP_JSON = "correlation/overlap_at_k.json"
    CORRELATION_NOTES = "correlation/notes.txt"  # e.g. rankings from different environments
    COMPARE_TABLE_MD = "comparison/table.md"
    COMPARE_TABLE_CSV = "comparison/table.csv"
    COMPARE_PAIRS_CSV = "comparison/pairs.csv"
    COMPARE_SUMMARY = "comparison/summary.json"
    PRESET_PLAN = "preset/plan.txt"
    AGREEMENT_FIGURE = "figures/agreement.png"
    STOPPING_FIGURE = "figures/stopping.png"
    PER_CLASS = "per_class.json"
    COVERAGE = "coverage.json"  # core-set --coverage ccs: cutoff, bins, per-bin sizes and budgets
    CLASS_BALANCE = "class_balance.json"  # --class-balance: quotas and fills (active learning: per round)
    INITIAL_SELECTOR_INFO = "initial_selector.json"  # rounds/0/: who picked the initial set, what it said
    SUGGEST_TABLE_MD = "suggest/table.md"
    SUGGEST_TABLE_CSV = "suggest/table.csv"
    SUGGEST_SUMMARY = "suggest/summary.json"
    SUGGEST_FIGURE = "figures/suggest_proxy.png"
    STATE_DIR = "state"


def round_artifact(round_no: int, name: str) -> str:
    """``rounds/<k>/<name>``: round 0 holds ``labeled.npy`` (the initial set); round k ≥ 1 holds
    ``selected.npy`` (picks in pick order), ``scores.npy`` (pool scores) and the other arrays of
    the round (docs/run-contract.md)."""
    return f"rounds/{round_no}/{name}"


def to_label_artifact(round_no: int) -> str:
    """``to_label/round_<r>.csv``: the batch a labeling project's round ``r`` asks the annotators for."""
    return f"to_label/round_{round_no}.csv"


def labels_artifact(round_no: int) -> str:
    """``labels/round_<r>.csv``: the answers imported for round ``r`` of a labeling project (``id,label``)."""
    return f"labels/round_{round_no}.csv"


def state_artifact(round_no: int) -> str:
    """``state/<kkkkk>.json`` (zero-padded): what ``--resume`` needs after round (or stage) ``k``;
    for a labeling project, its state after its ``k``-th change (the newest file counts)."""
    return f"{Artifact.STATE_DIR}/{round_no:05d}.json"


def correlation_artifact(name: str, suffix: str) -> str:
    """``correlation/<matrix>.<csv|json>`` of a correlate run."""
    return f"correlation/{name}.{suffix}"


def compare_figure(name: str, suffix: str = "") -> str:
    """``figures/compare_<block><suffix>.png`` of a compare run."""
    return f"figures/compare_{name}{suffix}.png"


# -- settings tags and the names they build ---------------------------------------------------
def setting_tag(name: str) -> str:
    """``svpkit.<name>``: the tag of a resolved run setting (device, epochs, options, ...)."""
    return f"svpkit.{name}"


def setting_tags(settings: Mapping[str, object]) -> dict[str, str]:
    """Tags ``svpkit.<name>`` for the resolved run settings that other runs are matched by.

    The same names are params too, but under ``mlflow run`` the entry point has already logged
    its raw parameters (``proxy_epochs=0`` for "the model's default", ``''`` for an empty value,
    ``device=auto``) and MLflow never changes a param; tags hold what the run really used.
    """
    return {setting_tag(name): str(value) for name, value in settings.items()}


def run_setting(tags: Mapping[str, str], params: Mapping[str, str], name: str, default: str = "") -> str:
    """A run's resolved setting: its ``svpkit.<name>`` tag, else (older runs) its param."""
    value = tags.get(setting_tag(name))
    return value if value is not None else params.get(name, default)


def format_value(value: object) -> str:
    """An option value as the command line writes it (booleans lower-case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def format_options(options: Mapping[str, object]) -> str:
    """Canonical text of options: sorted ``name=value`` pairs, booleans lower-case; "" for none."""
    return ",".join(f"{k}={format_value(v)}" for k, v in sorted(options.items()))


def model_label(name: str, options: Mapping[str, object] | str) -> str:
    """A model's identity in comparisons: ``name`` or ``name[a=1,b=2]``."""
    text = options if isinstance(options, str) else format_options(options)
    return f"{name}[{text}]" if text else name


def selector_model_label(tags: Mapping[str, str], params: Mapping[str, str], missing: str = "none") -> str:
    """A run's selector model as comparisons name it: ``fasttext[lr=0.5]`` when it had options;
    ``none`` (random selection trains no selector model) stays ``none``."""
    name = tags.get(Tag.SELECTOR_MODEL, missing)
    return name if name in ("none", missing) else model_label(name, run_setting(tags, params, "proxy_options"))


def selector_label(tags: Mapping[str, str], params: Mapping[str, str]) -> str:
    """A run's selection method as comparisons should name it: ``el2n``, or with its selector
    options and non-default selection variants ``el2n[ccs_bins=20,ccs_cutoff=0.1,coverage=ccs]``
    (settings ``selector_options`` and ``selection``), so that variants are not pooled."""
    extra = [run_setting(tags, params, name) for name in ("selector_options", "selection")]
    return model_label(tags.get(Tag.SELECTOR, "?"), ",".join(e for e in extra if e))


def names() -> set[str]:
    """Every fixed tag, metric and artifact name (for the documentation test)."""
    found: set[str] = set()
    for holder in (Tag, Metric, Artifact):
        found.update(v for k, v in vars(holder).items() if k.isupper() and isinstance(v, str))
    return found
