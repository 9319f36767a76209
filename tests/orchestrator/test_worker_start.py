"""Workers that cannot start Phantom's trials (issue 26): a node whose Python finds another
Phantom (or none) first. The driver stops at the first such unit with one line that names the
cause and the node, records nothing, and a resume on healthy workers runs every trial once.

The broken node is this machine with a folder on the workers' path that holds a ``phantom``
package of its own: the driver imports the real Phantom, then moves into that folder before it
starts Ray, whose workers start in the driver's folder and put it first on their path (as a
user's own ``orchestrator.py`` once shadowed the old top-level package)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import yaml

from phantom.orchestrator.testing import assert_complete, read_trials, tiny_sweep

pytestmark = pytest.mark.timeout(240)

DRIVER = textwrap.dedent("""
    import os, sys
    from phantom.cli import main
    import phantom.orchestrator.runner, phantom.orchestrator.trainable, ray
    os.chdir(sys.argv[1])  # Phantom is loaded here: only the workers see the folder's `phantom`
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    sys.exit(main(sys.argv[2:]))
""")

# a phantom package that fails to import: the trainable's own module cannot be loaded
NO_PHANTOM = {"phantom/__init__.py": "raise ImportError('this node has another phantom')\n"}


def _other_phantom_without_workers(real: str) -> dict[str, str]:
    """A phantom package whose workers cannot be imported: the trainable loads (everything else
    is the real one, found second on the package's path), the modules it needs do not."""
    return {
        "phantom/__init__.py": f"__path__.append({real!r})\nexec(open({real!r} + '/__init__.py').read())\n",
        "phantom/workers/__init__.py": "raise ImportError('No module named torch on this node')\n",
    }


def _drive(folder, argv, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, str(folder), *argv], capture_output=True, text=True,
                          timeout=timeout)


CASES = [
    ("the trainable does not import", lambda real: NO_PHANTOM, "ImportError: this node has another phantom"),
    ("a module it needs does not", _other_phantom_without_workers, "ImportError: No module named torch on this node"),
]


@pytest.mark.parametrize("case,stub,cause", CASES, ids=[c[0] for c in CASES])
def test_workers_that_cannot_start_stop_the_sweep_in_one_line_and_record_nothing(tmp_path, case, stub, cause):
    import phantom

    real = str(__import__("pathlib").Path(phantom.__file__).parent)
    node = tmp_path / "node"
    for rel, text in stub(real).items():
        (node / rel).parent.mkdir(parents=True, exist_ok=True)
        (node / rel).write_text(text)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(tiny_sweep(name="start", training={"steps": 2})))
    storage = tmp_path / "st"
    res = _drive(node, ["sweep", "run", str(sweep), "--storage", str(storage)])
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    errors = [line for line in out.splitlines() if "error" in line.lower() and not line.startswith("trials:")]
    assert len(errors) == 1 and errors[0].startswith("phantom: error: the workers could not start the trials: "
                                                     f"{cause} (node "), out
    assert f"then: phantom sweep resume {storage / 'start'}" in errors[0]
    assert "Traceback" not in out and "NoneType" not in out and "\x1b[" not in out, out
    folder = storage / "start"
    assert read_trials(folder) == []  # nothing recorded: the trials are not at fault
    assert not (folder / "ray" / "current.json").exists()  # the next run plans afresh

    healthy = tmp_path / "healthy"
    healthy.mkdir()
    res = _drive(healthy, ["sweep", "resume", str(folder)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert_complete(folder, n_trials=4, steps=2)  # each trial once, none lost
