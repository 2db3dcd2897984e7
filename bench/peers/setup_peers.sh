#!/usr/bin/env bash
# Creates the peer venvs used by bench/peer_step.py, each with exact pinned versions:
#   build/peers/ort     onnxruntime-training-cpu (ORT training needs torch importable, and onnx)
#   build/peers/tflite  tensorflow-cpu 2.18.1 (the last wheel whose tf.lite.Interpreter has the Flex
#                       delegate that the training signature needs; 2.19+ cannot run it)
# Every other package is held to the exact version in bench/peers/<name>.lock.txt (pip -c).
# Idempotent: a venv whose pins are already satisfied is left alone. Never installs into .venv.
#   bash bench/peers/setup_peers.sh [ort] [tflite]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-python3.11}"
# NOT onnxruntime-training (that is the CUDA build, 299 MB). torch==2.13.0 resolves to the local CPU wheel.
ORT_PINS=(onnxruntime-training-cpu==1.19.2 onnx==1.17.0 numpy==1.26.4 torch==2.13.0)
TFL_PINS=(tensorflow-cpu==2.18.1 numpy==1.26.4)

make_venv() {  # name pins...
  local name="$1"; shift
  local dir="$ROOT/build/peers/$name"
  if [ -x "$dir/bin/python" ] && "$dir/bin/python" - "$@" <<'PYEOF'
import sys
from importlib.metadata import version, PackageNotFoundError
ok = True
for pin in sys.argv[1:]:
    n, v = pin.split("==")
    try:
        have = version(n).split("+")[0]
    except PackageNotFoundError:
        have = None
    ok &= have == v
sys.exit(0 if ok else 1)
PYEOF
  then
    echo "[setup_peers] $name: $dir already has $*"
    return 0
  fi
  echo "[setup_peers] $name: creating $dir"
  [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir"
  echo "[setup_peers] $name: pip install $*  (this can take a few minutes)"
  "$dir/bin/pip" install -q -c "$ROOT/bench/peers/$name.lock.txt" "$@"
  "$dir/bin/pip" freeze > "$dir/freeze.txt"
  echo "[setup_peers] $name: done ($(wc -l < "$dir/freeze.txt") packages, see $dir/freeze.txt)"
}

want=("$@"); [ ${#want[@]} -gt 0 ] || want=(ort tflite)
for w in "${want[@]}"; do
  case "$w" in
    ort) make_venv ort "${ORT_PINS[@]}" ;;
    tflite) make_venv tflite "${TFL_PINS[@]}" ;;
    *) echo "unknown peer '$w' (ort|tflite)" >&2; exit 2 ;;
  esac
done
