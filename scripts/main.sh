#!/usr/bin/env bash
# Set up, run the paper's 50-combination LR sweep on the embedded SmolLM2-135M, analyse it.
# Extra arguments go to `phantom sweep run` (e.g. --set training.steps=10).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PH=.venv/bin/phantom
STORAGE=${PHANTOM_STORAGE:-$PWD/runs}
"$PH" sweep run sweeps/lr50.yaml --storage "$STORAGE" "$@"
"$PH" analyze "$STORAGE/lr50"
