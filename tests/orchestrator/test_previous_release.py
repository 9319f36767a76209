"""What the previous release wrote stays readable and resumable (issue 29): a sweep folder it
left interrupted (tests/data/previous-release/README.md) read by today's code — status, query,
resume, analyze. Its interrupted Tune experiment holds the old task and module names, so it is
not restored (one compatibility rule, phantom.orchestrator.unit_task.FORMAT): what it did not
finish is dispatched afresh from the records, every planned trial once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from phantom.cli import main
from phantom.orchestrator.testing import assert_complete, read_trials

pytestmark = pytest.mark.timeout(240)
FIXTURE = Path(__file__).resolve().parents[1] / "data" / "previous-release" / "previous"


@pytest.fixture
def folder(tmp_path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "previous"))


def test_a_folder_of_the_previous_release_is_read_and_resumed_exactly(ray_local, folder, capsys):
    planned = set(json.loads((folder / "plan.json").read_text())["trials"])
    before = {t["trial_id"]: t["finished_at"] for t in read_trials(folder)}
    assert len(planned) == 6 and len(before) == 4 and json.loads((folder / "ray" / "current.json").read_text()).keys() == {"name"}

    assert main(["sweep", "status", str(folder)]) == 3  # incomplete
    out = capsys.readouterr().out
    assert "6 trials planned: 4 ok, 0 diverged, 0 error, 2 not done" in out
    assert main(["query", str(folder), "SELECT count(*) AS n FROM trials", "--format", "csv"]) == 0
    assert capsys.readouterr().out.split() == ["n", "4"]

    assert main(["sweep", "resume", str(folder)]) == 0
    err = capsys.readouterr()
    assert "written by another release of Phantom: running what is pending afresh" in err.err
    assert_complete(folder, n_trials=6, steps=4)  # every planned trial once, none lost
    after = {t["trial_id"]: t["finished_at"] for t in read_trials(folder)}
    assert set(after) == planned and all(after[t] == before[t] for t in before)  # untouched
    assert not (folder / "ray" / "current.json").exists()

    assert main(["analyze", str(folder), "--no-report"]) == 0
    assert capsys.readouterr().out.startswith("6 trials (6 ok)")
