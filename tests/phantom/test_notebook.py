"""notebooks/quickstart.ipynb runs headless, top to bottom, in a Jupyter kernel of this Python.

The kernel is this interpreter (``sys.executable``) through a kernelspec written to a temporary
folder that ``JUPYTER_PATH`` points at; every folder Jupyter or IPython would write to is
temporary too, so nothing is written to the user's home. The repository is on the kernel's
``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
KERNEL = "phantom-test"

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A kernelspec for sys.executable in a temporary JUPYTER_PATH, and private Jupyter folders."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "phantom test (this Python)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    for var, name in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                      ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        monkeypatch.setenv(var, str(tmp_path / name))
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(REPO) + (os.pathsep + path if path else ""))
    return KERNEL


def _text(cell) -> str:
    out = []
    for o in cell.get("outputs", []):
        out.append(o.get("text", ""))
        out.append(o.get("data", {}).get("text/plain", ""))
    return "".join(out)


def test_quickstart_runs_headless(kernel_env, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    before = sorted(p.name for p in NOTEBOOK.parent.iterdir())
    NotebookClient(nb, kernel_name=kernel_env, timeout=600,
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in cells for o in c.outputs if o.output_type == "error"]
    by_source = {c.source.split("\n")[0]: c for c in cells}

    # the sweep ran its 2 sentences x 2 rates, each once, with the CLI's summary
    run = _text(by_source['done = phantom.run(sweep_file, storage=work / "runs", training__steps=2)'])
    assert "4 trials planned: 4 ok, 0 diverged, 0 error, 0 not done" in run
    assert re.search(r"RunResult\(uri='.*/runs/quickstart', ok=True, dispatched=4, already=0", run)
    # one model x one protocol: one row of fits; one row per trial in the query
    assert "fits: 1 row(s)" in _text(by_source["fits = res.fits().df()"])
    assert "trials queried: 4" in _text(by_source['per_trial = res.sql("""'])
    # the figures come back as images, not as a Figure's text repr
    for first in ("res.phi_curves()", "res.phase_diagram()"):
        data = [o.get("data", {}) for o in by_source[first].outputs]
        assert any("image/png" in d for d in data), (first, data)
    # nothing was written where the notebook lives
    assert sorted(p.name for p in NOTEBOOK.parent.iterdir()) == before
