"""The driver compacts as trials finish (phantom.orchestrator.compactor): beside writing workers nothing
is lost or doubled, and a compacted sweep resumes and re-runs exactly as a loose one."""

from __future__ import annotations

import random
import threading
import time

import pytest

from phantom.analysis import db
from phantom.analysis.testing import step_table, trial_record, write_plan, write_trial
from phantom.orchestrator.compactor import MIN_TRIALS_ENV, Compactor, threshold
from phantom.orchestrator.loader import load_sweep
from phantom.orchestrator.runner import resume, run_sweep
from phantom.orchestrator.status import sweep_status
from phantom.orchestrator.testing import tiny_sweep
from phantom import layout, results
from phantom.errors import ConfigError
from phantom.storage import Store

pytestmark = pytest.mark.timeout(300)


def test_compaction_beside_writing_workers_loses_nothing(tmp_path):
    """Writers put trials down (steps, then record) while the compactor runs every 20 ms; some
    write an error record and later re-write it as a result, as `resume --errored` does."""
    store = Store.open(tmp_path)
    rng = random.Random(0)
    n, rerun = 240, set(range(0, 240, 17))

    def worker(ids):
        for i in ids:
            tid = f"t{i:03d}"
            status = "error" if i in rerun else "ok"
            write_trial(store, step_table(tid, [-0.2, 0.1 * (i % 3)]), trial_record(tid, steps=1, status=status))
            time.sleep(rng.random() * 0.004)
        for i in ids:
            if i in rerun:  # the re-run: more rows, a later finish
                tid = f"t{i:03d}"
                write_trial(store, step_table(tid, [-0.2, 0.0, 0.3]), trial_record(
                    tid, steps=2, finished_at=trial_record(tid).column("finished_at")[0].as_py().replace(year=2027)))

    with Compactor(store, every_s=0.02, min_trials=15) as compactor:
        threads = [threading.Thread(target=worker, args=(range(k, n, 3),)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    loose = len(store.list(layout.TRIALS_DIR))
    assert loose < 15  # the end's compaction leaves fewer than its threshold
    assert compactor.compacted + loose >= n  # every trial moved (a re-run may move twice) or loose
    assert len(results.committed_parts(store)) > 3
    write_plan(store, [f"t{i:03d}" for i in range(n)])
    records = results.read_records(store)
    assert records.num_rows == n and set(records.column("status").to_pylist()) == {"ok"}
    with db.connect([str(tmp_path)]) as conn:
        rows = dict(conn.execute("SELECT trial_id, count(*) FROM steps GROUP BY 1").fetchall())
    assert rows == {f"t{i:03d}": (3 if i in rerun else 2) for i in range(n)}


def test_threshold_from_the_environment(monkeypatch):
    monkeypatch.setenv(MIN_TRIALS_ENV, "5")
    assert threshold() == 5
    monkeypatch.setenv(MIN_TRIALS_ENV, "zero")
    with pytest.raises(ConfigError, match="PHANTOM_COMPACT should be a whole number >= 1, got 'zero'"):
        threshold()


def test_a_compacted_sweep_resumes_and_reruns_exactly(ray_local, write_sweep, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(MIN_TRIALS_ENV, "1")
    path = write_sweep(tiny_sweep(models=["tiny-llama"], learning_rates=[1e-3, 1e-2, 3e-2]))
    sweep, sentences = load_sweep(path)
    first = run_sweep(sweep, sentences, storage=str(tmp_path / "st"))
    store = Store.open(tmp_path / "st" / "tiny")
    assert first.dispatched == 6
    assert store.list(layout.TRIALS_DIR) == [] and store.list(layout.STEPS_DIR) == []
    assert len(results.committed_parts(store)) == 1
    st = sweep_status(store)
    assert st.complete and st.counts["ok"] == 6
    with db.connect([store.root]) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT trial_id) FROM steps").fetchone() == (36, 6)
    capsys.readouterr()
    again = resume(store.root)
    assert again.dispatched == 0 and again.already == 6
    assert "nothing to run" in capsys.readouterr().err
    assert len(results.committed_parts(store)) == 1 and results.read_records(store).num_rows == 6
