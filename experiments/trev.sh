#!/usr/bin/env bash
# T-RevSNN (issue 6) on N-MNIST and MNIST: trev-tiny-h0.5 at T=4 (width 32: four
# sub-networks of widths 8/16/24/32) and the same-size single network (trev-tiny, T=1,
# width 16: one network of widths 16/32/48/64, about the same parameter count); export,
# run by the clock-driven runtime (fixed T and early exit), synaptic operations.
# N-MNIST split: MNIST index % 5 == 0 -> test (160), others train (640); 40 epochs.
# MNIST: 2,000 of the first 3,750 training images, 1,000 of the first 8,000 test images
# (evenly spread); 10 epochs. Both fit 2 shared CPU cores (one torch thread per run).
# Usage: experiments/trev.sh nmnist|mnist [SEED]
set -euo pipefail
DATASET=$1
SEED=${2:-0}
OUT=runs/trev_${DATASET}_s$SEED
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
# the trainer defaults before issue 14 (LIF, biases, BatchNorm, every training recording)
# and the T-RevSNN options before issue 18 (docs/trev.md, "Paper details")
OLD_DEFAULTS=(--neuron lif --bias --norm bn --train-split train
              --trev widths=1,2,3,4 --trev layer_scale=1 --trev down=plain --trev head_init=default
              --trev dw_scale=false --trev backward=reversible)
if [ "$DATASET" = nmnist ]; then
  DATA=nmnist:../shared/data/nmnist
  COMMON=(--data "$DATA" --epochs 40 --batch-size 32 --lr 2e-3 --seed "$SEED" --method sdt)
  LIMIT=()
else
  DATA=mnist:../shared/data/mnist
  COMMON=(--data "$DATA" --limit-train 2000 --limit 1000 --epochs 10 --batch-size 32
          --lr 2e-3 --seed "$SEED" --method sdt)
  LIMIT=(--limit 1000)
fi
python -m trainer fit "${COMMON[@]}" "${OLD_DEFAULTS[@]}" --model trev-tiny-h0.5 --T 4 --width 32 --out "$OUT/trev_T4.pt" 2>&1 | tee "$OUT/trev_T4.log"
python -m trainer fit "${COMMON[@]}" "${OLD_DEFAULTS[@]}" --model trev-tiny --T 1 --width 16 --out "$OUT/single_T1.pt" 2>&1 | tee "$OUT/single_T1.log"
for m in trev_T4 single_T1; do
  python -m export "$OUT/$m.pt" --check | tee "$OUT/export_$m.txt"
done
python -m runtime run "$OUT/trev_T4.onnx" --data "$DATA" "${LIMIT[@]}" --threads 1 --json | tee "$OUT/run_trev_fixed.json"
python -m runtime run "$OUT/trev_T4.onnx" --data "$DATA" "${LIMIT[@]}" --threads 1 --policy confidence:0.9 --json \
    | tee "$OUT/run_trev_conf0.9.json"
python -m runtime run "$OUT/single_T1.onnx" --data "$DATA" "${LIMIT[@]}" --threads 1 --json | tee "$OUT/run_single.json"
