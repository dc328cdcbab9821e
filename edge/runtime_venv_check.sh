#!/usr/bin/env bash
# The runtime-only install (what a Raspberry Pi gets: numpy, onnx, onnxruntime, numba, tqdm;
# no torch) in a fresh virtual environment, then the torch-free tests run inside it.
#
#   edge/runtime_venv_check.sh [VENV_DIR]      (default: a new temporary folder, removed after)
#
# Fails if the install pulls torch (or sinabs/samna), prints the installed size.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -ge 1 ]; then VENV="$1"; else TMP="$(mktemp -d)"; VENV="$TMP/rtvenv"; trap 'rm -rf "$TMP"' EXIT; fi
PY="${PYTHON:-python3}"

"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q -e "$ROOT"
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$VENV/bin/python" - <<'PY'
import importlib.util, sys
pulled = [m for m in ("torch", "sinabs", "samna") if importlib.util.find_spec(m)]
sys.exit(f"the runtime-only install pulled {pulled}" if pulled else 0)
PY
echo "runtime-only install: $(du -sh "$SITE" | cut -f1) in $SITE (pip and setuptools included)"

# test tools and the small extras some CLI tests use (data: scikit-learn's digits, plot:
# matplotlib for the trade-off plot); still no torch
"$VENV/bin/pip" install -q -e "$ROOT[data,plot]" pytest pytest-xdist
cd "$ROOT"
shopt -s nullglob
TESTS=(tests/test_runtime.py tests/test_edge_*.py tests/test_event*.py)
# -q comes from addopts; a second -q would hide the pass/fail summary line
"$VENV/bin/python" -m pytest -p no:cacheprovider "${TESTS[@]}"
"$VENV/bin/python" -c 'import importlib.util, sys; sys.exit("torch appeared" if importlib.util.find_spec("torch") else 0)'
echo "runtime-only check PASSED: no torch installed, torch-free tests green"
