#!/usr/bin/env bash
# Set up, run the paper's 50-combination LR sweep on the embedded SmolLM2-135M, probe the
# model's embedding geometry (inference only), then analyse: tables, phantom.duckdb, report.
# Extra arguments go to `phantom sweep run` (e.g. --set training.steps=10). Re-running it
# runs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PH=${PHANTOM_VENV:-.venv}/bin/phantom
STORAGE=${PHANTOM_STORAGE:-$PWD/runs}
"$PH" sweep run sweeps/lr50.yaml --storage "$STORAGE" "$@"
"$PH" geometry --model smollm2-135m --out "$STORAGE/lr50"
"$PH" analyze "$STORAGE/lr50"
echo "report: $STORAGE/lr50/analysis/report.html"
