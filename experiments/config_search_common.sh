# Sourced by config_search.sh (N-MNIST) and config_search_mnist.sh (MNIST): the seed and data
# folder from the command line, the run folder runs/NAME_sSEED, one thread, and search(), one
# `trainer search` of a model in that folder whose JSON is written once (atomically) and kept.
# Usage, first in the script: NAME=...; DEFAULT_DATA=...; . "$(dirname "$0")/config_search_common.sh"
set -euo pipefail
SEED=${1:-0}
DATA=${2:-$DEFAULT_DATA}
OUT=runs/${NAME}_s$SEED
mkdir -p "$OUT" docs
export OMP_NUM_THREADS=1
search() {  # MODEL TG EXTRA...
  local M=$1 TG=$2; shift 2
  [ -f "$OUT/search_${M}_T$TG.json" ] || python -m trainer search "$OUT/$M.pt" --budget-T "$TG" --fit-configs 18 \
      --seed "$SEED" --threads 1 --plot "docs/${NAME}_${M}_T${TG}_s$SEED.png" --json "$@" \
      > "$OUT/search_${M}_T$TG.json.tmp" && mv "$OUT/search_${M}_T$TG.json.tmp" "$OUT/search_${M}_T$TG.json"
}
