#!/usr/bin/env bash
# Compile examples/model.py with the tinytrain CLI, then run three training steps with IREE's own
# iree-run-module: each call updates the saved parameters in place and prints the loss.
# Usage (from the repository root, after `make setup`): examples/iree_run_module.sh [OUT_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.venv/bin"
out="${1:-$root/build/example}"
"$bin/tinytrain" compile "$root/examples/model.py" -o "$out" --lr 0.05
cd "$out"
"$bin/python" -c "
import numpy as np
rng = np.random.RandomState(0)
np.save('input.npy', rng.rand(1, 28, 28, 1).astype(np.float32))   # NHWC
np.save('labels.npy', np.array([3], np.int32))"
for step in 1 2 3; do
  echo "step $step: $("$bin/iree-run-module" --flagfile=train_step.flags | tail -1)"
done
