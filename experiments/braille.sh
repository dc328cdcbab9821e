#!/usr/bin/env bash
# MTT as a time encoder on sequence data (issue 18, MTT appendix A.12) on the tactile Braille
# recordings: SDT trained at each T in {4, 8, 16, 38} vs one MTT model (Tmin 1, Tmax 38,
# 3 stages = one per block, s = 3) with non-increasing stage configurations, and one with
# free configurations; FC LIF net fc-128-128 (12 taxels -> 128 -> 128 -> 27), biases, mean
# readout, Adam lr 1e-2 (chosen on the validation split, see docs/sequence.md), 30 epochs,
# batch 32. Split: repetition % 5 == 0 -> test (270); training on the other repetitions
# minus the validation split (repetition % 10 == 1), 945 recordings.
# Every model is evaluated at T in {1, 2, 4, 8, 16, 38}; the MTT model is exported and run by
# the runtime. One torch thread per run (about 6 min per seed on a shared CPU core).
# Usage: experiments/braille.sh [SEED] [DATA_DIR]; then experiments/braille.sh table SEED...
set -euo pipefail
export OMP_NUM_THREADS=1
TS=(1 2 4 8 16 38)
if [ "${1:-}" = table ]; then
  shift
  python - "$@" <<'PY'
import json, sys
seeds = sys.argv[1:]
res = {s: {r["checkpoint"]: r["accuracy"] for r in json.load(open(f"runs/braille_s{s}/eval.json"))["runs"]} for s in seeds}
Ts = json.load(open(f"runs/braille_s{seeds[0]}/eval.json"))["T"]
def acc(s, name, T):
    return 100 * res[s][f"runs/braille_s{s}/{name}.pt"][Ts.index(T)]
def cell(name, T):
    v = [acc(s, name, T) for s in seeds]
    return f"{sum(v) / len(v):.1f} ({' / '.join(f'{x:.1f}' for x in v)})"
print("| T | SDT trained at this T | SDT T=38 | MTT non-increasing | MTT free order |")
print("|---|---|---|---|---|")
for T in Ts:
    sdt = cell(f"sdt_T{T}", T) if T in (4, 8, 16, 38) else "-"
    print(f"| {T} | {sdt} | {cell('sdt_T38', T)} | {cell('mtt_noninc', T)} | {cell('mtt_free', T)} |")
PY
  exit 0
fi
SEED=${1:-0}
DATA=${2:-../shared/data/braille}
OUT=runs/braille_s$SEED
mkdir -p "$OUT"
COMMON=(--data "braille:$DATA" --model fc-128-128 --neuron lif --bias --readout mean --epochs 30 --batch-size 32
        --lr 1e-2 --seed "$SEED" --threads 1 --quiet)
for T in 4 8 16 38; do
  python -m trainer fit "${COMMON[@]}" --method sdt --T "$T" --out "$OUT/sdt_T$T.pt"
done
MTT=(--method mtt --tmin 1 --tmax 38 --stages 3 --configs-per-batch 3 --anchor none)
python -m trainer fit "${COMMON[@]}" "${MTT[@]}" --mtt-order nonincreasing --out "$OUT/mtt_noninc.pt"
python -m trainer fit "${COMMON[@]}" "${MTT[@]}" --mtt-order any --out "$OUT/mtt_free.pt"
python -m trainer eval --threads 1 "$OUT"/sdt_T{4,8,16,38}.pt "$OUT/mtt_noninc.pt" "$OUT/mtt_free.pt" --T "${TS[@]}" \
    --json > "$OUT/eval.json"
python -m trainer eval --threads 1 "$OUT"/sdt_T{4,8,16,38}.pt "$OUT/mtt_noninc.pt" "$OUT/mtt_free.pt" --T "${TS[@]}" \
    | tee "$OUT/eval.txt"
# the deployed form: ONNX checked against torch, then run by the runtime at T = 38 and 8
python -m export "$OUT/mtt_noninc.pt" --check | tee "$OUT/export_check.txt"
for T in 38 8; do
  python -m runtime run "$OUT/mtt_noninc.onnx" --data "braille:$DATA" --policy "fixed:$T" --threads 1 \
      | tee "$OUT/runtime_T$T.txt"
done
