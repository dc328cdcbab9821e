#!/usr/bin/env bash
# Temporal flexibility on N-MNIST (issue 2): MTT vs SDT(T=10), 2C1FC, Tmax = 10, with the
# BN-calibration ablation. Split: MNIST index % 5 == 0 -> test (160), others train (640).
# Usage: experiments/nmnist_mtt.sh [SEED] [DATA_DIR]   (about 15-25 min on 2 CPU cores)
set -euo pipefail
SEED=${1:-0}
DATA=${2:-../shared/data/nmnist}
OUT=runs/nmnist_s$SEED
mkdir -p "$OUT" docs
COMMON=(--data "nmnist:$DATA" --model 2C1FC --epochs 15 --batch-size 32 --lr 2e-3 --seed "$SEED" --tmax 10
        --neuron lif --bias --norm bn --train-split train --threads 1)
python -m trainer fit "${COMMON[@]}" --method mtt --tmin 1 --stages 2 --configs-per-batch 2 --anchor none --calib-batches 0 --out "$OUT/mtt_nocal.pt"
python -m trainer calibrate "$OUT/mtt_nocal.pt" --T 10 --calib-batches 10 --threads 1 --out "$OUT/mtt.pt"
python -m trainer fit "${COMMON[@]}" --method sdt --T 10 --calib-batches 0 --out "$OUT/sdt.pt"
python -m trainer eval --threads 1 "$OUT/mtt.pt" "$OUT/sdt.pt" "$OUT/mtt_nocal.pt" --T 1 2 3 4 5 6 7 8 9 10 \
    --plot "docs/nmnist_accuracy_vs_T_s$SEED.png" | tee "$OUT/eval.txt"
python - "$OUT" <<'PY'
import sys, torch
for name in ("mtt_nocal", "sdt"):
    m = torch.load(f"{sys.argv[1]}/{name}.pt", weights_only=True)["metrics"]
    print(f"{name}: {m['seconds_per_epoch']:.1f} s/epoch, paper estimate vs SDT {m['expected_cost_ratio_vs_sdt']:.2f}")
PY
