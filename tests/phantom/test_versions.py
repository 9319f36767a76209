"""Reproducible installs: requirements/lock.txt pins every dependency pyproject.toml asks for,
torch is pinned in one place, set-up installs exactly the lock (and skips when nothing changed),
and every trial records the lock's hash (phantom/versions.py)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from packaging.requirements import Requirement

from phantom import versions as v

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements" / "lock.txt"
TORCH = REPO / "requirements" / "torch.txt"
EXTRAS = ("dev", "mlflow", "tensorboard", "wandb")  # "embedded" is installed with --no-deps


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirements() -> list[Requirement]:
    project = _pyproject()["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in EXTRAS:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return [r for r in reqs if r.marker is None or r.marker.evaluate()]


def test_lock_pins_every_dependency_of_the_project_and_its_extras():
    locked = {**v.pins(LOCK), **v.pins(TORCH)}
    assert len(locked) > 100
    stale = [f"{r} (lock: {locked.get(v._norm(r.name))})" for r in _requirements()
             if v._norm(r.name) not in locked or not r.specifier.contains(locked[v._norm(r.name)], prereleases=True)]
    assert not stale, f"requirements/lock.txt is stale (run scripts/lock.sh): {stale}"


def test_torch_is_pinned_in_one_place_and_left_out_of_the_lock():
    lines = [ln for ln in TORCH.read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines == ["torch==2.13.0"]
    assert not re.search(r"^(torch|triton|nvidia-[\w-]+|cuda-[\w-]+)==", LOCK.read_text(), re.M)
    for path in ["scripts/setup.sh", "scripts/test.sh", "scripts/main.sh", "docker/Dockerfile", "pyproject.toml", ".ci/run"]:
        assert not re.search(r"torch\s*==\s*\d|TORCH_VERSION", (REPO / path).read_text()), path
    import torch

    assert torch.__version__.split("+")[0] == lines[0].split("==")[1]


def test_setup_installs_from_the_lock_and_stamps_it():
    text = (REPO / "scripts" / "setup.sh").read_text()
    subprocess.run(["bash", "-n", str(REPO / "scripts" / "setup.sh")], check=True)
    assert "install -q -r requirements/torch.txt -r requirements/lock.txt" in text
    assert "--no-deps --no-build-isolation -e ." in text and "--no-deps -r requirements/nodeps.txt" in text
    stamped = re.search(r'want="\$\(cat ([^|]+)\|', text).group(1).split()
    assert {"requirements/torch.txt", "requirements/lock.txt", "requirements/nodeps.txt", "pyproject.toml",
            "scripts/setup.sh"} <= set(stamped)
    assert "lock.txt" in (REPO / "scripts" / "lock.sh").read_text()


def test_this_environment_is_the_lock():
    found = v.versions()
    assert found["lock"] == v.file_hash(LOCK)
    assert found["lock_drift"] == [], "the environment differs from requirements/lock.txt: run scripts/setup.sh"


def test_drift_names_what_differs(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# comment\npyarrow==0.0.1\nno-such-package-xyz==1.0\nnumpy==9.9 ; python_version < '3'\n"
                    f"pytest=={__import__('pytest').__version__}\n")
    pins = v.pins(lock)
    assert "numpy" not in pins  # its marker does not hold here
    import pyarrow

    assert v.drift(pins) == ["no-such-package-xyz missing (lock 1.0)", f"pyarrow {pyarrow.__version__} (lock 0.0.1)"]


def test_trial_record_carries_the_lock_hash(tmp_path, tiny_models):
    from phantom.config import TrainingConfig, TrialConfig
    from phantom.workers.sentences import get_sentence
    from phantom.workers.trial import run_trial

    s = get_sentence("awe")
    cfg = TrialConfig(model="tiny-gpt2", sentence_id=s.id, target=s.target, competitor=s.competitor,
                      contexts=s.contexts, lr=0.01, training=TrainingConfig(steps=1))
    result = run_trial(cfg, tmp_path, base=tiny_models["tiny-gpt2"])
    recorded = json.loads(pq.read_table(result.trial_path).column("versions")[0].as_py())
    assert recorded["lock"] == v.file_hash(LOCK) and len(recorded["lock"]) == 16
    assert recorded["lock_drift"] == v.versions()["lock_drift"]
    for name in ("phantom", "python", "torch", "transformers", "peft", "accelerate"):
        assert recorded[name], name


@pytest.mark.parametrize("line,expected", [
    ("numpy==2.4.6 ; python_full_version >= '3.10'", ("numpy", "2.4.6")),
    ("huggingface-hub==2.4.0", ("huggingface-hub", "2.4.0")),
    ("Jinja2==3.1.6  # via torch", ("jinja2", "3.1.6")),
])
def test_pins_reads_lock_lines(tmp_path, line, expected):
    (tmp_path / "l.txt").write_text(line + "\n")
    assert v.pins(tmp_path / "l.txt") == {expected[0]: expected[1]}
