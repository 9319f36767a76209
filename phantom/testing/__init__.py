"""Test helpers shipped with the package (as ``optuna.testing``): importable by tests and by
anyone checking a deployment. Nothing here is used by a normal run."""


def end_process(proc) -> None:
    """Stop a server a test started: SIGTERM, then SIGKILL if it has not exited within 10 s."""
    import subprocess

    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


HEAVY = ("torch", "transformers", "peft", "accelerate", "ray", "duckdb", "scipy", "matplotlib", "tokenizers",
         "pyarrow", "pandas")  # the libraries whose import an entry point must earn

_PROBE = """
import atexit, json, sys
atexit.register(lambda: print("IMPORTED " + json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), flush=True))
from phantom.cli import main
sys.exit(main(sys.argv[1:]))
"""


def imports_after(argv: list[str], cwd, heavy: tuple[str, ...] = HEAVY) -> tuple[set[str], str]:
    """Run ``phantom ARGV`` in a fresh interpreter: (the modules of ``heavy`` it imported, its
    output); asserts that it got as far as exiting."""
    import json
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=heavy), *argv], capture_output=True,
                         text=True, timeout=300, cwd=cwd)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("IMPORTED ")]
    assert lines, res.stdout + res.stderr
    return set(json.loads(lines[-1].split(" ", 1)[1])), res.stdout + res.stderr
