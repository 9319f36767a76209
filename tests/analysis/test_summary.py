"""SPEC §4 on planted step tables: every expected value is computed by hand or with NumPy."""

import math

import numpy as np
import pytest

from analysis import db
from analysis.testing import step_table, trial_record, write_trial

T = 20


def catapult_phi(k=6):
    # slow crawl, one jump of 0.5 at step k, then a flat plateau
    return [-0.3 + 0.001 * t for t in range(k)] + [0.2 + 0.0005 * (t - k) for t in range(k, T + 1)]


def R_of(x):
    d = np.abs(np.diff(np.asarray(x, dtype=float)))
    return d.max() / d.mean(), int(np.argmax(d)) + 1


@pytest.fixture
def planted(tmp_path):
    def put(tid, phi, status="ok", **kw):
        rec_kw = {k: kw.pop(k) for k in ("lr", "gmax") if k in kw}
        write_trial(tmp_path, step_table(tid, phi, **kw, **rec_kw),
                    trial_record(tid, steps=T, status=status, **rec_kw))

    put("catapult", catapult_phi())
    put("drift", list(np.linspace(-0.1, 0.1, T + 1) + 0.0025))
    put("pre", [0.1 + 0.001 * t for t in range(T + 1)])
    put("structural", [-0.2] * (T + 1), drag=np.linspace(-0.1, -0.2, T + 1))
    put("kinematic", [-0.2] * (T + 1), drag=np.linspace(-0.2, -0.1, T + 1))
    phi = [-0.3, -0.2, 0.1, 0.2, float("nan")]
    write_trial(tmp_path, step_table("diverged", phi, loss=[3, 2, 1, 0.5, float("nan")]),
                trial_record("diverged", steps=T, steps_done=4, status="diverged"))
    # a killed trial: steps written, no trial record: must never be read
    write_trial(tmp_path, step_table("killed", [0.5] * (T + 1)), None)
    return tmp_path


def summary(conn):
    return {r["trial_id"]: r for r in db.records(conn, "SELECT * FROM trial_summary")}


def test_catapult_by_hand(planted, open_views):
    s = summary(open_views(planted))["catapult"]
    # |ΔΦ| = 0.001 x5, 0.495 (from -0.295 to 0.2), 0.0005 x14 → mean = (0.005+0.495+0.007)/20
    R = 0.495 / ((0.005 + 0.495 + 0.007) / 20)
    assert s["flip_step"] == 6 and s["jump_step"] == 6 and s["rank_flip_step"] == 6
    assert s["R"] == pytest.approx(R, rel=1e-9) and s["R"] == pytest.approx(R_of(catapult_phi())[0])
    assert s["character"] == "catapult"  # R ≈ 19.5 ≥ 15
    # Δ is linear → R_delta = 1 → amplification = R
    assert s["R_delta"] == pytest.approx(1.0) and s["amplification"] == pytest.approx(R)
    # plateau: window [6, 7, 8] spans 0.001 < 0.01 → stop at 8, saves 1 − 8/20
    assert s["phi_stop"] == 8 and s["compute_saved"] == pytest.approx(0.6)
    assert s["ranking_changed_after_stop"] is False
    assert s["phi0"] == pytest.approx(-0.3) and s["S0"] == pytest.approx(-0.2)
    assert s["phi_T"] == pytest.approx(0.2 + 0.0005 * 14) and s["failure_mode"] is None


def test_drift_pre_resolved(planted, open_views):
    rows = summary(open_views(planted))
    drift = rows["drift"]
    phi = np.linspace(-0.1, 0.1, T + 1) + 0.0025
    assert drift["flip_step"] == int(np.argmax(phi > 0)) == 10
    assert drift["R"] == pytest.approx(1.0) and drift["character"] == "drift"
    pre = rows["pre"]
    assert pre["flip_step"] == 0 and pre["character"] == "pre-resolved"
    # flat from the start: window [0,1,2] spans 0.002 → stop at 2
    assert pre["phi_stop"] == 2 and pre["compute_saved"] == pytest.approx(0.9)


def test_unresolved_failure_modes(planted, open_views):
    rows = summary(open_views(planted))
    assert rows["structural"]["character"] == "unresolved"
    assert rows["structural"]["failure_mode"] == "structural"  # D_T = -0.2 < D0 = -0.1
    assert rows["kinematic"]["failure_mode"] == "kinematic"  # D_T = -0.1 > D0 = -0.2
    for tid in ("structural", "kinematic"):
        assert rows[tid]["flip_step"] is None and rows[tid]["phi_stop"] is None
        assert rows[tid]["compute_saved"] is None


def test_diverged_keeps_finite_rows(planted, open_views):
    d = summary(open_views(planted))["diverged"]
    assert d["character"] == "diverged" and d["failure_mode"] == "diverged"
    assert d["evaluations"] == 4 and d["last_step"] == 3 and d["phi_T"] == pytest.approx(0.2)
    assert d["flip_step"] == 2
    assert d["R"] == pytest.approx(R_of([-0.3, -0.2, 0.1, 0.2])[0])


def test_killed_trial_is_never_read(planted, open_views):
    conn = open_views(planted)
    assert "killed" not in summary(conn)
    assert db.scalar(conn, "SELECT count(*) FROM steps WHERE trial_id = 'killed'") == 0
    assert db.scalar(conn, "SELECT count(DISTINCT trial_id) FROM steps") == 6
    assert db.scalar(conn, "SELECT count(*) FROM steps") == 5 * (T + 1) + 5


def test_contexts_are_averaged(tmp_path, open_views):
    a = step_table("two", [-0.2, 0.4, 0.4], context_id=0)
    b = step_table("two", [-0.4, 0.0, 0.2], context_id=1)
    import pyarrow as pa

    write_trial(tmp_path, pa.concat_tables([a, b]), trial_record("two", steps=2, n_contexts=2))
    s = summary(open_views(tmp_path))["two"]
    # mean Φ = [-0.3, 0.2, 0.3]: flips at 1, R = 0.5 / 0.3
    assert s["phi0"] == pytest.approx(-0.3) and s["flip_step"] == 1
    assert s["R"] == pytest.approx(0.5 / 0.3)


def test_thresholds_are_configurable(planted, open_views):
    from analysis.settings import AnalysisSettings

    s = AnalysisSettings(catapult=25.0, catapult_like=19.0)
    assert summary(open_views(planted, settings=s))["catapult"]["character"] == "catapult-like"
    assert math.isclose(summary(open_views(planted))["catapult"]["R"], 19.5266, rel_tol=1e-4)
