"""Regenerate ``svpkit_timm/param_counts.json``: parameter counts of every timm architecture.

``svpkit models list 'timm/*'`` would otherwise build ~1,400 models; the counts are computed once
here (on the meta device, so no memory is allocated) for the plugin's wrapper with 10 classes and
shipped with the plugin. Architectures missing from the file are counted lazily on first use.

    python plugins/svpkit-timm/tools/make_param_counts.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import timm
import torch

torch.set_num_threads(1)
OUT = Path(__file__).resolve().parents[1] / "svpkit_timm" / "param_counts.json"


def main() -> None:
    from svpkit_timm import count_parameters

    family = {m: mod for mod in timm.list_modules() for m in timm.list_models(module=mod)}
    counts: dict[str, dict[str, object]] = {}
    start = time.time()
    for i, name in enumerate(timm.list_models()):
        try:
            params, dim = count_parameters(name, 10)
        except Exception as exc:  # recorded so the listing shows "unknown" instead of retrying
            print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            params, dim = None, None
        counts[name] = {"family": family.get(name, "?"), "parameters": params, "embedding_dim": dim}
        if i % 100 == 0:
            print(f"{i} models, {time.time() - start:.0f} s", file=sys.stderr)
    payload = {"timm_version": timm.__version__, "num_classes": 10, "models": counts}
    OUT.write_text(json.dumps(payload, indent=0, sort_keys=True) + "\n")
    print(f"wrote {len(counts)} counts to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
