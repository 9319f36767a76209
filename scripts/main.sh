#!/usr/bin/env bash
# The main job: the study in miniature on the embedded SmolLM2-135M (sweeps/study.yaml) —
# full fine-tuning and LoRA over rates that span each protocol's critical rate (the shape
# boundary, η_c, θ*_resolve, H, B_FT, Spearman; 1e-5 in both: the causal-isolation pair) —
# then the model's bulk embedding geometry (inference only), then one analysis: the fits, the
# paper's claims checked, phantom.duckdb and report.html. Set-up is refreshed first.
# Extra arguments go to `phantom sweep run` (e.g. --set training.steps=10). Re-running it
# runs only what is missing (an interrupted run resumes). The paper's 50-combination LR sweep
# is its own command: phantom sweep run sweeps/lr50.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
phase() { echo "== $1 ($(date +%H:%M:%S))"; }
T0=$SECONDS
phase "set-up"
bash scripts/setup.sh
T1=$SECONDS
PH=${PHANTOM_VENV:-.venv}/bin/phantom
STORAGE=${PHANTOM_STORAGE:-$PWD/runs}
phase "sweep: sweeps/study.yaml -> $STORAGE/study"
"$PH" sweep run sweeps/study.yaml --storage "$STORAGE" "$@"
T2=$SECONDS
phase "geometry: smollm2-135m"
"$PH" geometry --model smollm2-135m --out "$STORAGE/study"
T3=$SECONDS
phase "analyze"
"$PH" analyze "$STORAGE/study"
T4=$SECONDS
echo "report: $STORAGE/study/analysis/report.html"
echo "phases: set-up $((T1 - T0)) s, sweep $((T2 - T1)) s, geometry $((T3 - T2)) s, analyze $((T4 - T3)) s; total $((T4 - T0)) s"
