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
# the tests run in parallel, one pytest-xdist worker a core up to 4 (PHANTOM_TEST_WORKERS sets
# it; 0 runs them in this process, as does an explicit -n/-p no:xdist among the arguments); an
# idle worker takes tests queued for a busy one (--dist worksteal: a few tests take a minute)
workers=${PHANTOM_TEST_WORKERS:-$(n=$(nproc 2>/dev/null || echo 1); echo $(( n < 4 ? n : 4 )))}
parallel=()
case " $* " in
  *" -n "*|*" -n="*|*" --numprocesses"*|*"no:xdist"*) ;;
  *) if [ "$workers" -gt 1 ]; then parallel=(-n "$workers" --dist worksteal); fi ;;
esac
exec "${PHANTOM_VENV:-.venv}/bin/python" -m pytest "${parallel[@]}" "$@"
