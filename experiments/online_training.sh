#!/usr/bin/env bash
# Online training (issue 7): each online method next to BPTT (sdt) on the same model, T,
# epochs and seed. Usage: experiments/online_training.sh nmnist|mnist [SEED] [DATA_DIR]
# Tables: docs/online_training.md. One torch thread per run (2 shared CPU cores).
set -euo pipefail
WHICH=${1:?nmnist or mnist}
SEED=${2:-0}
DATA=${3:-../shared/data/$WHICH}
OUT=runs/online/${WHICH}_s$SEED
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
case $WHICH in
  nmnist) COMMON=(--data "nmnist:$DATA" --model 2C1FC --width 16 --T 8 --epochs 5 --batch-size 32 --lr 2e-3) ;;
  mnist)  COMMON=(--data "mnist:$DATA" --model 2C1FC --width 16 --T 4 --epochs 3 --batch-size 32 --lr 2e-3
                  --limit-train 1500 --limit 500) ;;
  *) echo "usage: $0 nmnist|mnist [SEED] [DATA_DIR]" >&2; exit 2 ;;
esac
# the trainer defaults before issue 14 (LIF with biases, every training recording)
COMMON+=(--seed "$SEED" --norm bn-step --neuron lif --bias --train-split train --quiet)
run() {  # name, extra args
  local name=$1; shift
  python -m trainer fit "${COMMON[@]}" "$@" --out "$OUT/$name.pt" 2>&1 | tee "$OUT/$name.log"
}
run sdt --method sdt
run sltt --method sltt
run sltt-k2 --method sltt-k --K 2
run ottt-a --method ottt-a
run ottt-o --method ottt-o
run ndot-a --method ndot-a
run ndot-o --method ndot-o
python - "$OUT" <<'PY'
import sys, glob, os, torch
print(f"{'run':>8}  {'test acc':>8}  {'s/epoch':>7}")
for path in sorted(glob.glob(f"{sys.argv[1]}/*.pt")):
    m = torch.load(path, weights_only=True)["metrics"]
    print(f"{os.path.basename(path)[:-3]:>8}  {m['test_accuracy']:8.4f}  {m['seconds_per_epoch']:7.1f}")
PY
