#!/usr/bin/env bash
# Stage what benchmarks/gpu_evidence.sh needs on the GPU machine, here in the checkout (once):
#   .whl/evidence/      the wheels the machine lacks for an MLflow sqlite store (mlflow-skinny,
#                       SQLAlchemy, Alembic and their dependencies, for its Python 3.12), without
#                       those on its image (DEVICE_PACKAGES: the machine's package list, default
#                       tools/device-packages.txt of the shared folder beside the checkout)
#   .devdata/evidence/  CIFAR-10 train_part0 (16,667 images) and the 1,000 lossless test images,
#                       packed (benchmarks/evidence_data.py)
# Both are git-ignored; each device call carries both (it prints their size against the 64 MiB a
# call may carry with the checkout). Nothing here is read at run time on the device.
#   bash benchmarks/stage_gpu_evidence.sh [CIFAR10_DIR]   # default: data/cifar10 of that shared folder
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
side=$(dirname "$top")/shared
data=${1:-$side/data/cifar10}
present=${DEVICE_PACKAGES:-$side/tools/device-packages.txt}
[ -f "$present" ] || { echo "no $present (the GPU machine's package list)"; exit 2; }

rm -rf .whl/evidence && mkdir -p .whl/evidence
plat=""
for p in manylinux_2_34_x86_64 manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  plat="$plat --platform $p"
done
# shellcheck disable=SC2086
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp $plat \
  -d .whl/evidence "mlflow-skinny==${MLFLOW_VERSION:-3.17.2}" sqlalchemy alembic 2>&1 | grep -v "is ignored" || true
python3 - "$present" <<'PY'
import os, re, sys
present = {re.sub(r"[-_.]+", "-", l.strip()).lower() for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")}
for f in os.listdir(".whl/evidence"):
    if re.sub(r"[-_.]+", "-", re.split(r"-\d", f, maxsplit=1)[0]).lower() in present:
        os.remove(os.path.join(".whl/evidence", f))
PY
python3 -c "
import sys; sys.path.insert(0, '.')
from pathlib import Path
from benchmarks.evidence_data import pack_cifar
print(pack_cifar(Path(sys.argv[1]), Path('.devdata/evidence')))
" "$data"
python3 - <<'PY'
import subprocess
from pathlib import Path
files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], capture_output=True, text=True).stdout.split()
checkout = sum(Path(f).stat().st_size for f in files if Path(f).is_file())
staged = {d: sum(f.stat().st_size for f in Path(d).rglob("*") if f.is_file()) for d in (".whl/evidence", ".devdata/evidence")}
total = checkout + sum(staged.values())
for name, size in [("checkout", checkout), *staged.items()]:
    print(f"{name:>20}: {size / 2**20:6.1f} MiB")
print(f"{'per device call':>20}: {total / 2**20:6.1f} MiB of 64 MiB{'' if total < 64 * 2**20 else '  TOO LARGE'}")
print('carry: [".whl/evidence", ".devdata/evidence"]')
PY
