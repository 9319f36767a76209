"""One package that installs anywhere (issue 26): the wheel holds only `phantom` (with the study's
sweeps and sentences), and installed into a new virtual environment outside the checkout it
runs from a researcher's folder that holds their own ``models.py``, ``analysis.py``,
``workers.py`` and ``orchestrator.py`` — the names that used to be Phantom's top-level packages.

The new environment has the locked dependencies of the checkout's (one ``.pth`` line: its
site-packages, whose own ``.pth`` files, the checkout's editable install among them, Python
does not read from there), and the wheel installed by pip; every command runs from the
researcher's folder. What it computes is compared with the checkout's own run of the same
command: the same trial ids and step rows, to the last bit."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHADOWS = ("models", "analysis", "workers", "orchestrator")
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "--disable-pip-version-check", "-w", str(out), str(ROOT)], check=True, capture_output=True)
    (path,) = out.glob("phantom_transitions-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel installed, its ``bin/`` returned."""
    env = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = Path(subprocess.run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "locked-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "-q",
                    "--no-deps", "--disable-pip-version-check", str(wheel)], check=True, capture_output=True)
    return env / "bin"


@pytest.fixture
def researcher(tmp_path) -> Path:
    """A folder of a researcher's own: a one-line module under each name Phantom used to take."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in SHADOWS:
        (folder / f"{name}.py").write_text(f"NOTE = 'the researcher\\'s own {name}'\n")
    return folder


def _run(argv, cwd, timeout=300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def _science(table):
    """A steps table without its timings (``step_ms``, ``obs_ms``: wall-clock, never equal)."""
    return table.drop(["step_ms", "obs_ms"])


def test_the_wheel_holds_phantom_alone_with_the_study_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"phantom"}
    top_level = next(n for n in names if n.endswith("top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["phantom"]
    for shipped in ("phantom/sweeps/lr50.yaml", "phantom/sweeps/study.yaml", "phantom/sweeps/paper-grid.yaml",
                    "phantom/sweeps/cross-arch.yaml", "phantom/sweeps/sentences.yaml",
                    "phantom/workers/trial.py", "phantom/orchestrator/trainable.py", "phantom/analysis/views/fits.py",
                    "phantom/models/tiny.py", "phantom/cli/__init__.py"):
        assert shipped in names, shipped


def test_the_installed_wheel_runs_the_study_from_a_folder_that_shadows_the_old_names(installed, researcher, tmp_path):
    py = str(installed / "python")
    where = _run([py, "-c", "import phantom, phantom.workers.trial as t, models; print(t.__file__); print(models.NOTE)"],
                 researcher).stdout.split("\n")
    assert where[0].startswith(str(installed.parent)) and "site-packages" in where[0]  # the wheel, not the checkout
    assert where[1] == "the researcher's own models"

    # one trial: the same id and the same step rows as the checkout's `phantom trial`
    trial = ["trial", "--model", "tiny-llama", "--sentence", "longing", "--lr", "1e-3", "--steps", "3", "--quiet"]
    _run([str(installed / "phantom"), *trial, "--out", "runs/one"], researcher)
    _run([str(Path(sys.executable).parent / "phantom"), *trial, "--out", str(tmp_path / "checkout")], ROOT)
    (ours,) = (researcher / "runs" / "one" / "steps").glob("*.parquet")
    assert _science(pq.read_table(ours)).equals(
        _science(pq.read_table(tmp_path / "checkout" / "steps" / ours.name)))

    # a built-in sweep by name, its analysis, and the Python API on the same folder
    sweep = ["sweep", "run", "lr50", "--storage", "runs", "--set", "models=[tiny-llama]",
             "--set", "training.steps=3", "--set", "sentences.ids=[longing,shame]"]
    _run([str(installed / "phantom"), *sweep], researcher)
    out = _run([str(installed / "phantom"), "analyze", "runs/lr50", "--no-report"], researcher).stdout
    assert out.startswith("10 trials (10 ok)")
    _run([str(Path(sys.executable).parent / "phantom"), "analyze", str(researcher / "runs" / "lr50"), "--no-report",
          "--out", str(tmp_path / "checkout-analysis")], ROOT)
    for table in ("trial_summary.csv", "fits.csv", "claims.csv"):  # the same numbers, to the last bit
        wheel_text = (researcher / "runs" / "lr50" / "analysis" / table).read_text()
        assert wheel_text == (tmp_path / "checkout-analysis" / table).read_text(), table
    code = ("import phantom\n"
            "done = phantom.run('lr50', storage='api', models=['tiny-llama'], training__steps=3,"
            " sentences__ids=['longing', 'shame'])\n"
            "res = phantom.open(done.uri)\n"
            "print(done.ok, res.sql('SELECT count(*) FROM trials').fetchall()[0][0])\n")
    assert _run([py, "-c", code], researcher).stdout.split()[-2:] == ["True", "10"]
    cli, api = (researcher / "runs" / "lr50" / "steps"), (researcher / "api" / "lr50" / "steps")
    assert sorted(p.name for p in cli.glob("*.parquet")) == sorted(p.name for p in api.glob("*.parquet"))
    assert len(list(cli.glob("*.parquet"))) == 10
    for path in cli.glob("*.parquet"):  # the same trials, to the last bit
        assert _science(pq.read_table(path)).equals(_science(pq.read_table(api / path.name)))
