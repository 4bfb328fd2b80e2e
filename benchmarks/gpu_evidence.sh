#!/usr/bin/env bash
# svpkit's GPU evidence: everything the GPU machine measures, in two device calls run back to back
# (benchmarks/gpu_evidence.py says what each part measures; benchmarks/README.md, how to run it).
#   here, once:      bash benchmarks/stage_gpu_evidence.sh
#   device call 1:   bash benchmarks/gpu_evidence.sh 1     carry [".whl/evidence", ".devdata/evidence"]
#   device call 2:   bash benchmarks/gpu_evidence.sh 2     same carry, within 30 s of call 1
#   CI, any machine: bash benchmarks/gpu_evidence.sh all --device cpu --tiny --out DIR
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ "${1:-}" != "all" ] && [[ " $* " != *" --device cpu "* ]]; then
  nvidia-smi -L || true
fi
exec python3 benchmarks/gpu_evidence.py "$@"
