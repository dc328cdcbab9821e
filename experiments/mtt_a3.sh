#!/usr/bin/env bash
# MTT appendix A.3 on N-MNIST (issue 18): train with BatchNorm and biases, fold BatchNorm
# into the convs and drop the biases, fine-tune the bias-free network; event-driven
# accuracy and spike difference (SD, MTT Eq. 16) of the bias-free model before and after
# fine-tuning. Split: MNIST index % 5 == 0 -> test (160), others train (640).
# Usage: experiments/mtt_a3.sh [SEED] [DATA_DIR] [EPOCHS] [FINETUNE_EPOCHS]
set -euo pipefail
SEED=${1:-0}
DATA=${2:-../shared/data/nmnist}
EPOCHS=${3:-12}
FT=${4:-4}
OUT=runs/a3_nmnist_s$SEED
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
# --anchor none: the published figures were trained before the Tmin anchor became the default
COMMON=(--data "nmnist:$DATA" --model 2C1FCW16 --batch-size 32 --lr 2e-3 --seed "$SEED" --method mtt
        --tmin 1 --tmax 10 --stages 2 --configs-per-batch 2 --anchor none --train-split train --threads 1 --quiet)
# 1. the BatchNorm model with biases (BN calibrated at Tmax after training)
python -m trainer fit "${COMMON[@]}" --epochs "$EPOCHS" --norm bn --bias --out "$OUT/bn.pt" | tee "$OUT/bn.log"
# 2. folded and bias-free, not fine-tuned ("before")
python - "$OUT" <<'PY'
import copy, sys
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.fold import fold_and_drop
out = sys.argv[1]
cfg, model, metrics = load_checkpoint(f"{out}/bn.pt")
bare = fold_and_drop(model, fold=True, drop_bias=True).model
new = copy.deepcopy(cfg)
new.model.bn, new.model.bias = False, False
save_checkpoint(f"{out}/folded.pt", new, bare, {"folded_from": f"{out}/bn.pt"})
PY
# 3. fine-tuned from it ("after"): the same fold happens inside --init-from
python -m trainer fit "${COMMON[@]}" --epochs "$FT" --norm none --no-bias --init-from "$OUT/bn.pt" \
    --out "$OUT/finetuned.pt" | tee "$OUT/finetuned.log"
for m in folded finetuned; do
  python -m export "$OUT/$m.pt" -o "$OUT/$m.onnx" --check
  python -m runtime run "$OUT/$m.onnx" --mode clock --threads 1 --json > "$OUT/${m}_clock.json"
  python -m runtime run "$OUT/$m.onnx" --mode event --threads 1 --json > "$OUT/${m}_event.json"
done
python - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
print("model | clock-driven acc. | event-driven acc. | SD")
for m in ("folded", "finetuned"):
    c, e = (json.load(open(f"{out}/{m}_{k}.json")) for k in ("clock", "event"))
    print(m, c.get("accuracy"), e.get("accuracy"), e.get("sd"))
PY
