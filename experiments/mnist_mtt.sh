#!/usr/bin/env bash
# Temporal flexibility on MNIST images (issue 2): MTT vs SDT(T=6) with a small spiking
# ResNet (resnet10: ResNet-18 layout with one basic block per stage, width 8), repeat encoding, Tmax = 6, with the BN-calibration ablation.
# Data (evenly spread subsets, to keep the run short on 2 CPU cores): 2,000 of the first 3,750
# MNIST training images; 2,000 of the first 8,000 test images.
# Usage: experiments/mnist_mtt.sh [SEED] [DATA_DIR]   (about 10 min on 2 idle CPU cores)
set -euo pipefail
SEED=${1:-0}
DATA=${2:-../shared/data/mnist}
OUT=runs/mnist_s$SEED
mkdir -p "$OUT" docs
COMMON=(--data "mnist:$DATA" --model resnet10 --width 8 --stages 3 --epochs 3 --batch-size 32 --lr 5e-3
        --seed "$SEED" --tmax 6 --limit-train 2000 --limit 2000
        --neuron lif --bias --norm bn --train-split train --threads 1)
python -m trainer fit "${COMMON[@]}" --method mtt --tmin 1 --configs-per-batch 2 --anchor none --calib-batches 0 --out "$OUT/mtt_nocal.pt"
python -m trainer calibrate "$OUT/mtt_nocal.pt" --T 6 --calib-batches 10 --threads 1 --out "$OUT/mtt.pt"
python -m trainer fit "${COMMON[@]}" --method sdt --T 6 --calib-batches 0 --out "$OUT/sdt.pt"
python -m trainer eval --threads 1 "$OUT/mtt.pt" "$OUT/sdt.pt" "$OUT/mtt_nocal.pt" --T 1 2 3 4 5 6 --limit 2000 \
    --plot "docs/mnist_accuracy_vs_T_s$SEED.png" | tee "$OUT/eval.txt"
python - "$OUT" <<'PY'
import sys, torch
for name in ("mtt_nocal", "sdt"):
    m = torch.load(f"{sys.argv[1]}/{name}.pt", weights_only=True)["metrics"]
    print(f"{name}: {m['seconds_per_epoch']:.1f} s/epoch, paper estimate vs SDT {m['expected_cost_ratio_vs_sdt']:.2f}")
PY
