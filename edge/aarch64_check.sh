#!/usr/bin/env bash
# The Raspberry Pi target under emulation: the runtime-only install on Debian bookworm arm64
# (Raspberry Pi OS 64-bit's base: Python 3.11, glibc 2.36), run by qemu-user through
# binfmt_misc, must give bit-identical results to this x86-64 host on the fixed-order backend
# (--backend exact, runtime/exact.py); the default backend's differences are printed too,
# for information (onnxruntime's convolutions sum in an order of their own per ISA).
#
#   edge/aarch64_check.sh        (as root; .ci/run calls it after runtime_venv_check.sh)
#
# 1. host: a small model (trainer fit --model 2C1FCW16, 3 epochs, seed 0; export) and the digits test streams
#    (edge.pi.parity inputs), and the host's per-sample results (edge.pi.parity run, backend
#    exact, and again on the default backend);
# 2. arm64 root: mmdebstrap --variant=extract (python3, venv; the host's CA bundle copied
#    in), cached under $FLEXSNN_CI_CACHE (default ~/.cache/flexsnn-ci) with its venv;
# 3. inside it: pip install the runtime-only package from the registry (no torch), the
#    torch-free tests (the digits digest and the no-FMA check of test_exact among them), then
#    the same parity runs;
# 4. edge.pi.parity compare: predictions, steps, readouts and spike counts of fixed T, a
#    confidence exit (backend exact) and the numba event engine must be bit-identical; and
#    the --json of `runtime run --backend exact` on the digits (simulated on each side) must
#    agree in every result field. The default backend's run is compared --informational.
# An ARM /proc/cpuinfo (Pi 4 text) is bind-mounted: onnxruntime reads the host's x86 one
# under qemu-user and segfaults in its CPU detection (a real Pi has an ARM cpuinfo).
# Prints "aarch64 check SKIPPED: why" (exit 0) where emulation or the arm64 root is not to be
# had (not root, no binfmt_misc or mounts, no network, the tools not installable, mmdebstrap or
# the registry install failing, the emulated part over $FLEXSNN_AARCH64_TIMEOUT seconds,
# default 2400), else PASSED, or FAILED (exit 1) when a result differs or a test fails there.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${FLEXSNN_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flexsnn-ci}"
ARMROOT="$CACHE/bookworm-arm64"
PY="${PYTHON:-python3}"
LIMIT="${FLEXSNN_AARCH64_TIMEOUT:-2400}"  # keeps CI within its 90 minutes
START=$(date +%s)

took() { echo "$(($(date +%s) - START)) s"; }
skip() { echo "aarch64 check SKIPPED: $* ($(took))"; exit 0; }
fail() { echo "aarch64 check FAILED: $* ($(took))"; exit 1; }
[ "$(uname -m)" = x86_64 ] || skip "the host is $(uname -m); this check compares aarch64 against x86-64"
[ "$(id -u)" = 0 ] || skip "needs root (binfmt_misc registration, chroot, bind mounts)"
"$PY" - 2>/dev/null <<'PY' || skip "no network to deb.debian.org or pypi.org"
import urllib.request
for url in ("https://deb.debian.org/debian/dists/bookworm/Release", "https://pypi.org/simple/numpy/"):
    urllib.request.urlopen(url, timeout=15).close()
PY
if ! command -v mmdebstrap >/dev/null || [ ! -x /usr/bin/qemu-aarch64-static ]; then
    command -v apt-get >/dev/null || skip "mmdebstrap or qemu-user-static missing and no apt-get to install them"
    echo "== installing qemu-user-static binfmt-support mmdebstrap (Debian)"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        qemu-user-static binfmt-support mmdebstrap; } >/dev/null || skip "apt-get could not install the emulation tools"
fi
BINFMT=/proc/sys/fs/binfmt_misc
[ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || skip "binfmt_misc cannot be mounted"
if [ ! -e "$BINFMT/qemu-aarch64" ]; then
    # Debian's entry, F flag: the interpreter is opened now, so it works inside the chroot
    printf '%s' ':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:OPF' \
        >"$BINFMT/register" 2>/dev/null || skip "cannot register qemu-aarch64 with binfmt_misc"
fi
grep -q enabled "$BINFMT/qemu-aarch64" || skip "binfmt_misc has qemu-aarch64 disabled"
grep -q '^flags:.*F' "$BINFMT/qemu-aarch64" || skip "qemu-aarch64 is registered without the F flag (no interpreter inside a chroot)"

mkdir -p "$CACHE"
exec 9>"$CACHE.lock"  # one check at a time per cache: they share the root and its mounts
flock -w 600 9 || skip "another aarch64 check held $CACHE for 600 s"  # the wait counts against LIMIT

WORK="$(mktemp -d)"
MOUNTS=()
cleanup() {
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}"; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# what the root holds (libstdc++ and libgcc: the manylinux wheels need them, as Raspberry Pi
# OS has them); a change of this line rebuilds it. The venv lives beside it, cached too.
PACKAGES=bash,coreutils,python3,python3-venv,ca-certificates,libstdc++6,libgcc-s1,libgomp1,zlib1g
if [ "$(cat "$ARMROOT/.flexsnn-packages" 2>/dev/null)" != "$PACKAGES" ]; then
    echo "== building the bookworm arm64 root (cached in $ARMROOT) ($(took))"
    rm -rf "$ARMROOT" "$ARMROOT.tmp" "$CACHE/venv-arm64" && mkdir -p "$CACHE"
    mmdebstrap --quiet --variant=extract --architectures=arm64 --include="$PACKAGES" \
        bookworm "$ARMROOT.tmp" http://deb.debian.org/debian || skip "mmdebstrap could not build the arm64 root"
    echo "$PACKAGES" >"$ARMROOT.tmp/.flexsnn-packages"
    mv "$ARMROOT.tmp" "$ARMROOT"
fi
mkdir -p "$ARMROOT"/{proc,dev,sys,tmp,src,work,venv,etc/ssl/certs} "$CACHE/venv-arm64"
cp /etc/ssl/certs/ca-certificates.crt "$ARMROOT/etc/ssl/certs/"
cp /etc/resolv.conf "$ARMROOT/etc/resolv.conf"
cat >"$WORK/cpuinfo" <<'EOF'
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

Hardware	: BCM2835
Model		: Raspberry Pi 4 Model B Rev 1.4
EOF
bind() { mount --bind "$1" "$2" && MOUNTS+=("$2"); }
{ mount -t proc proc "$ARMROOT/proc" && MOUNTS+=("$ARMROOT/proc") \
    && bind /dev "$ARMROOT/dev" \
    && bind /sys "$ARMROOT/sys" \
    && bind "$WORK/cpuinfo" "$ARMROOT/proc/cpuinfo" \
    && bind "$WORK" "$ARMROOT/work" \
    && bind "$CACHE/venv-arm64" "$ARMROOT/venv"; } || skip "cannot mount /proc, /dev, /sys or bind folders into the root"
# (/sys: onnxruntime's cpuinfo reads /sys/devices/system/cpu/possible)
rm -rf "$ARMROOT/src" && mkdir "$ARMROOT/src"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$ARMROOT/src"
[ "$(chroot "$ARMROOT" /usr/bin/env PATH=/usr/bin:/bin uname -m 2>/dev/null)" = aarch64 ] \
    || skip "the arm64 root does not run (qemu-user through binfmt_misc)"

echo "== host (x86-64): model, inputs, results ($(took))"
export OMP_NUM_THREADS=1 FLEXSNN_CACHE="$CACHE/digits"
(cd "$REPO" && "$PY" -m trainer fit --model 2C1FCW16 --epochs 3 --seed 0 --threads 1 --quiet --out "$WORK/model.pt" \
    && "$PY" -m export "$WORK/model.pt" -o "$WORK/model.onnx" \
    && "$PY" -m edge.pi.parity inputs "$WORK/inputs.npz" --limit 120 \
    && "$PY" -m edge.pi.parity run "$WORK/model.onnx" "$WORK/inputs.npz" -o "$WORK/x86.npz" \
    && "$PY" -m edge.pi.parity run "$WORK/model.onnx" "$WORK/inputs.npz" --backend auto -o "$WORK/x86-auto.npz" \
    && "$PY" -m runtime run "$WORK/model.onnx" --threads 1 --backend exact --policy confidence:0.5 --json \
        >"$WORK/x86.json") || fail "the host part (model, inputs, x86-64 results)"

arm() {  # run a bash script in the root, emulated, within what is left of $LIMIT seconds
    local left=$((LIMIT - ($(date +%s) - START)))
    [ "$left" -gt 0 ] || return 124
    timeout "$left" chroot "$ARMROOT" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin OMP_NUM_THREADS=1 \
        PIP_DISABLE_PIP_VERSION_CHECK=1 /bin/bash -euo pipefail -c "$1"
}

echo "== arm64: runtime-only install from the registry ($(took))"
arm '
    # the editable install maps /src, copied afresh each run: it is redone only when what it
    # depends on changes (pyproject.toml, the top-level folders); minutes under emulation
    key="$(cat /src/pyproject.toml; ls /src)" && key="$(echo "$key" | sha256sum)"
    [ -x /venv/bin/python ] || python3 -m venv /venv
    if [ "$(cat /venv/.flexsnn-installed 2>/dev/null)" != "$key" ]; then
        rm -f /venv/.flexsnn-installed
        # the build backend once in the venv: no isolated build environment per install
        /venv/bin/pip install -q "setuptools>=68"
        /venv/bin/pip install -q --no-build-isolation -e /src
        /venv/bin/python -c "import importlib.util, sys; sys.exit(\"torch was installed\" if importlib.util.find_spec(\"torch\") else 0)"
        /venv/bin/pip install -q --no-build-isolation -e "/src[data,plot]" pytest pytest-xdist
        echo "$key" >/venv/.flexsnn-installed
    fi
' || { rc=$?; [ $rc = 124 ] && skip "the emulated install ran past ${LIMIT} s"; skip "the install from the registry failed on arm64 (exit $rc)"; }

echo "== arm64: torch-free tests, parity runs ($(took))"
arm '
    cd /src
    shopt -s nullglob
    /venv/bin/python -m pytest -p no:cacheprovider tests/test_runtime.py tests/test_edge_*.py tests/test_event*.py \
        tests/test_digits_cache.py tests/test_aarch64_parity.py tests/test_exact.py
    /venv/bin/python -m edge.pi.parity run /work/model.onnx /work/inputs.npz -o /work/arm64.npz
    /venv/bin/python -m edge.pi.parity run /work/model.onnx /work/inputs.npz --backend auto -o /work/arm64-auto.npz
    # the CLI on the default data, simulated here under emulation (an empty digits cache)
    rm -rf /tmp/digits && FLEXSNN_CACHE=/tmp/digits /venv/bin/python -m runtime run /work/model.onnx --threads 1 \
        --backend exact --policy confidence:0.5 --json >/work/arm64.json
' || { rc=$?; [ $rc = 124 ] && skip "the emulated tests and runs ran past ${LIMIT} s"; fail "tests or runs on arm64 (exit $rc)"; }

echo "== compare x86-64 vs arm64 ($(took))"
(cd "$REPO" && "$PY" -m edge.pi.parity compare --informational "$WORK/x86-auto.npz" "$WORK/arm64-auto.npz") \
    | sed 's/^/default backend (informational): /'
if (cd "$REPO" && "$PY" -m edge.pi.parity compare "$WORK/x86.npz" "$WORK/arm64.npz" \
    && "$PY" -m edge.pi.parity compare "$WORK/x86.json" "$WORK/arm64.json"); then
    echo "aarch64 check PASSED: backend exact and the event engine bit-identical to x86-64 ($(took))"
else
    fail "results differ from x86-64"
fi
