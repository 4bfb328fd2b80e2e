"""Where compared runs computed: a note when runs under one comparison ran on different numerics.

Runs record the CPU capability, numerics mode, math libraries and hardware they ran with
(``svpkit.cpu_capability``, ``svpkit.numerics``, ``svpkit.math_libraries``, ``svpkit.hardware``;
:func:`svpkit.runtime.numerics_fingerprint`). Float results, and so near-tied picks, can differ
between a CPU and a GPU, between CPU instruction sets and between library versions;
``svpkit compare`` and ``svpkit correlate`` say so when the runs they put side by side differ in
any of these (docs/reliability.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from svpkit.contract import Tag

_FIELDS = (Tag.HARDWARE, Tag.CPU_CAPABILITY, Tag.NUMERICS, Tag.MATH_LIBRARIES)
UNRECORDED = "not recorded"


def environment_label(tags: Mapping[str, str]) -> str:
    """A run's computing environment in one line, e.g. ``cpu: AMD EPYC (linux) · AVX2 · native · torch …``."""
    values = [tags.get(name, "") for name in _FIELDS]
    return " · ".join(v for v in values if v) or UNRECORDED


def mixed_environments_note(labels: Mapping[str, str], what: str = "runs") -> str | None:
    """One sentence when the ``{run id: environment label}`` differ, else None."""
    groups: dict[str, list[str]] = {}
    for run_id, label in labels.items():
        groups.setdefault(label, []).append(run_id)
    if len(groups) <= 1:
        return None
    parts = [f"{len(ids)} on {label}" for label, ids in sorted(groups.items(), key=lambda kv: -len(kv[1]))]
    return (
        f"the compared {what} ran in {len(groups)} different environments ({'; '.join(parts)}): "
        "float results and near-tied picks can differ between them (docs/reliability.md)"
    )
