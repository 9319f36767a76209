"""Nothing left behind (issue 8): no *.tmp, temporary DuckDB file or temporary folder survives
a finished command or an error, in the results folders, the working directory or the system's
temporary folder; an error while analysing leaves the previous analysis as it was."""

import os
import tempfile

import pytest

from phantom.analysis import db
from phantom.analysis.commands.analyze import analyze
from phantom.analysis.testing import step_table, trial_record, write_trial
from phantom.cli import main
from phantom.errors import QueryError


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A results folder; the system temp folder and the working directory are watched."""
    results, scratch, cwd = tmp_path / "results", tmp_path / "tmp", tmp_path / "cwd"
    scratch.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(cwd)
    for k, lr in enumerate([1e-5, 2e-5, 4e-5]):
        write_trial(results, step_table(f"t{k}", [-0.1, 0.05 * k, 0.1 * k, 0.1 * k], lr=lr),
                    trial_record(f"t{k}", lr=lr, steps=3))
    return results


def leftovers(root) -> list[str]:
    return sorted(os.path.join(d, n) for d, ds, fs in os.walk(root) for n in ds + fs
                  if n.endswith(".tmp") or n.startswith(".staging") or n.endswith(".wal"))


def snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_clean(folder):
    root = folder.parent
    assert leftovers(root) == []
    assert os.listdir(root / "tmp") == [] and os.listdir(root / "cwd") == []


def test_finished_commands_leave_nothing(folder, capsys):
    assert main(["query", str(folder), "SELECT count(*) FROM fits"]) == 0
    assert main(["analyze", str(folder), "--bootstrap", "20"]) == 0
    assert main(["query", str(folder / "analysis" / "phantom.duckdb"), "SELECT * FROM fits"]) == 0
    capsys.readouterr()
    assert_clean(folder)


def test_query_connection_can_spill(folder):
    """The read-only catalog's spill folder exists while the connection is open (it used to be
    deleted right after the catalog was opened, so a query larger than memory failed)."""
    with db.connect_readonly([folder]) as conn:
        spill = db.scalar(conn, "SELECT current_setting('temp_directory')")
        assert os.path.isdir(os.path.dirname(spill))
        assert spill.startswith(tempfile.gettempdir())
    assert not os.path.exists(os.path.dirname(spill))
    assert_clean(folder)


def test_query_errors_leave_nothing(folder, capsys):
    assert main(["query", str(folder), "SELECT nope FROM trials"]) == 2
    (folder / "trials" / "broken.parquet").write_bytes(b"not parquet")
    assert main(["query", str(folder), "SELECT count(*) FROM trials"]) == 2
    with pytest.raises(QueryError):
        db.connect([folder])
    capsys.readouterr()
    assert_clean(folder)


def test_an_error_while_analysing_keeps_the_previous_analysis(folder, monkeypatch):
    analyze([folder], report=False, progress=None)
    before = snapshot(folder / "analysis")
    write_trial(folder, step_table("t9", [-0.1, 0.2, 0.3, 0.3], lr=8e-5), trial_record("t9", lr=8e-5, steps=3))

    def boom(conn, settings):
        raise RuntimeError("figure failed")

    monkeypatch.setattr("phantom.analysis.report.build_report", boom)
    with pytest.raises(RuntimeError, match="figure failed"):
        analyze([folder], report=True, progress=None)
    assert snapshot(folder / "analysis") == before
    assert_clean(folder)


def test_a_first_analysis_that_fails_leaves_no_folder(folder, monkeypatch):
    monkeypatch.setattr("phantom.analysis.report.build_report", lambda conn, settings: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        analyze([folder], progress=None)
    assert not (folder / "analysis").exists()
    assert_clean(folder)


def test_a_failed_move_leaves_no_temporary_file(folder, monkeypatch):
    real = os.replace

    def fail(src, dst):
        if str(dst).endswith("phantom.duckdb"):
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        analyze([folder], report=False, progress=None)
    assert_clean(folder)
