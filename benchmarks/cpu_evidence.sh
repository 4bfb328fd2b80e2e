#!/usr/bin/env bash
# svpkit's CPU evidence (issue 16), for a quiet machine: nothing else may run while it measures.
#   bash benchmarks/cpu_evidence.sh [RESULTS_DIR]     # default benchmarks/results; about 15-30 min on 2 cores
# 1. ResNet20 (2,000 CIFAR-10 images, 3 epochs) and ResNet164 (1,024 images, 1 epoch): svpkit in
#    float32 and under bf16 autocast (and, for ResNet20, bf16 + torch.compile) against the plain
#    pipeline, side by side in one process, with the roofline (FLOPs per image, the matmul peak at
#    fp32 and bf16 measured in the same run) and the compile break-even;
# 2. accuracy parity: ResNet20 on 10,000 images for 15 epochs, fp32 vs bf16, seeds 0 and 1, the full
#    test set, and what bf16 scoring would change in the picks (benchmarks/bench_parity.py);
# 3. the Markdown table for docs/performance.md (benchmarks/table.py).
# CIFAR-10 is read from the data folder beside the checkout (as benchmarks/bench_train.py finds it) or CIFAR10=DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results}
machine=${MACHINE:-2-core CPU dev machine (quiet: nothing else running)}
data=${CIFAR10:-$(python -c "from benchmarks.bench_train import default_data_path as d; print(d())")}
export PYTHONUNBUFFERED=1
mkdir -p "$out"
python -c "from svpkit.learners.acceleration import cpu_has_native_bf16 as n; print('native bf16:', n())"
python benchmarks/bench_train.py --device cpu --data "$data" --model preact_resnet20 --epochs 3 --repeats 2 \
  --arms amp=off amp=on amp=on,compile=on --machine "$machine" --out "$out/train_preact_resnet20_cpu.json"
python benchmarks/bench_train.py --device cpu --data "$data" --model preact_resnet164 --train-size 1024 --repeats 2 \
  --arms amp=off amp=on --machine "$machine" --out "$out/train_preact_resnet164_cpu.json"
python benchmarks/bench_parity.py --device cpu --data "$data" --train-size 10000 --epochs 15 --seeds 0 1 \
  --machine "$machine" --out "$out/parity_preact_resnet20_cpu.json"
python benchmarks/table.py "$out"/*.json
