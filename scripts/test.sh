#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the HTML report test renders in headless Chromium (Debian's package); best effort
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "test: installing chromium for the report test" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "test: could not install chromium; the report-rendering test will be skipped" >&2
fi
export PHANTOM_CACHE=${PHANTOM_CACHE:-$HOME/.cache/phantom}
exec "${PHANTOM_VENV:-.venv}/bin/python" -m pytest "$@"
