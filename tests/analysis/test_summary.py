"""science §4 on planted step tables: every expected value is computed by hand or with NumPy."""

import math

import numpy as np
import pytest

from phantom.analysis import db
from phantom.analysis.testing import step_table, trial_record, write_trial

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


def test_a_null_loss_takes_the_step_out(tmp_path, open_views):
    """README: a step counts only when Φ, Δ and the loss are finite — a NULL loss (pandas
    writes NaN as NULL) is not finite. Φ crawls, jumps over steps 4..6 and crawls on; with
    step 5 left out the jump is one |ΔΦ| and R is intermediate, with it R is two half-jumps
    (drift). Expected values by NumPy on the series without step 5."""
    import pyarrow as pa

    phi = [-0.2 + 0.01 * t for t in range(5)] + [-0.1075] + [-0.055 + 0.01 * (t - 6) for t in range(6, T + 1)]
    loss = [3.0 - 0.1 * t for t in range(T + 1)]
    loss[5] = None
    write_trial(tmp_path, step_table("null", phi, loss=loss), trial_record("null", steps=T))
    # two contexts: a NULL loss in one of them takes the whole step out
    a = step_table("two", phi, context_id=0)
    b = step_table("two", phi, loss=loss, context_id=1)
    write_trial(tmp_path, pa.concat_tables([a, b]), trial_record("two", steps=T, n_contexts=2))
    keep = [t for t in range(T + 1) if t != 5]
    R, _ = R_of(np.asarray(phi)[keep])
    assert R_of(phi)[0] < 5.0 <= 6.0 <= R < 8.0  # the planted case: drift with step 5, intermediate without
    conn = open_views(tmp_path)
    rows = summary(conn)
    for tid in ("null", "two"):
        s = rows[tid]
        assert s["evaluations"] == T and s["R"] == pytest.approx(R, rel=1e-9)
        assert s["character"] == "intermediate" and s["jump_step"] == 6
    assert [r[0] for r in db.fetch(conn, "SELECT step FROM trial_steps WHERE trial_id = 'null' ORDER BY step")] == keep


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
    from phantom.analysis.settings import AnalysisSettings

    s = AnalysisSettings(catapult=25.0, catapult_like=19.0)
    assert summary(open_views(planted, settings=s))["catapult"]["character"] == "catapult-like"
    assert math.isclose(summary(open_views(planted))["catapult"]["R"], 19.5266, rel_tol=1e-4)


def test_immediate_and_stopped_at_flip(tmp_path, open_views):
    """A flip at step 1 has no shoulder to judge; a trial stopped at its flip has an outcome
    (flipped) but no measured shape: neither is catapult-like, neither enters θ*_shape."""
    jump_at_1 = [-0.3] + [0.2 + 0.0005 * t for t in range(T)]
    write_trial(tmp_path, step_table("immediate", jump_at_1, lr=1e-3), trial_record("immediate", steps=T, lr=1e-3))
    stop = catapult_phi()[:7]  # the η_c search stopped it at the flip (step 6)
    write_trial(tmp_path, step_table("stopped", stop, lr=1e-3),
                trial_record("stopped", steps=T, steps_done=6, lr=1e-3, stop_reason="flip"))
    write_trial(tmp_path, step_table("shaped", catapult_phi(), lr=2e-3), trial_record("shaped", steps=T, lr=2e-3))
    conn = open_views(tmp_path)
    rows = summary(conn)
    imm, st = rows["immediate"], rows["stopped"]
    assert imm["character"] == "immediate" and imm["flip_step"] == 1 and imm["flipped"] is True
    assert imm["R"] == pytest.approx(R_of(jump_at_1)[0])  # measured (≈ T), but not judged
    assert st["character"] == "stopped-at-flip" and st["flip_step"] == 6 and st["flipped"] is True
    assert st["R"] is None and st["jump_step"] is None and st["amplification"] is None
    assert st["phi_stop"] is None and st["failure_mode"] is None
    # only the shaped trial is a θ*_shape point; the stopped one is not a reference trial either
    assert db.scalar(conn, "SELECT n_shape FROM fits") == 1
    assert db.scalar(conn, "SELECT n_immediate FROM fits") == 1
    assert db.scalar(conn, "SELECT n_stopped_at_flip FROM fits") == 1
    assert "stopped" not in {r[0] for r in db.fetch(conn, "SELECT trial_id FROM reference_trials")}
    # at the reference rate (1e-3 is nearest 2e-5) the immediate flip is not counted a catapult
    assert db.records(conn, "SELECT n_trials, n_catapult, n_catapult_like FROM isolation") == \
        [{"n_trials": 1, "n_catapult": 0, "n_catapult_like": 0}]
    # all three count for η_c: the bracket (m, full, s, seed 0) flips at every rate
    assert db.scalar(conn, "SELECT count(*) FROM trial_summary WHERE flipped") == 3


def test_flipped_for_eta_c(planted, open_views):
    rows = summary(open_views(planted))
    assert rows["diverged"]["flipped"] is True  # a divergence lies above η_c
    assert rows["structural"]["flipped"] is False and rows["pre"]["flipped"] is True
    assert rows["catapult"]["bracket_id"] == "m|full|s|0|None|20"  # phantom.analysis.testing.trial_record


def test_error_carries_no_outcome(tmp_path, open_views):
    write_trial(tmp_path, step_table("err", [-0.1, 0.2]), trial_record("err", steps=T, status="error"))
    write_trial(tmp_path, None, trial_record("err0", steps=T, status="error"))  # failed before step 0
    rows = summary(open_views(tmp_path))
    assert rows["err"]["flipped"] is None and rows["err"]["character"] == "error"
    assert rows["err0"]["flipped"] is None and rows["err0"]["evaluations"] is None


def test_isolation_checks_every_trial_of_a_frozen_protocol(tmp_path, open_views):
    """Table 3's max dG_max / embedding_frozen: every rate and status, not only η_ref."""
    def put(tid, lr, dG, status="ok", protocol="lora"):
        write_trial(tmp_path, step_table(tid, [-0.1, 0.1, 0.1], protocol=protocol, lr=lr, dG=dG),
                    trial_record(tid, protocol=protocol, lr=lr, steps=2, status=status))

    put("ref", 1e-4, [0.0, 0.0, 0.0])  # the reference rate: frozen
    put("hot", 1e-2, [0.0, 0.0, 3e-7])  # another rate moved the embedding
    put("div", 1e-1, [0.0, 5e-7, 0.0], status="diverged")
    put("full", 2e-5, [0.0, 1e-4, 2e-4], protocol="full")
    iso = {r["protocol"]: r for r in db.records(open_views(tmp_path), "SELECT * FROM isolation")}
    assert iso["lora"]["embedding_frozen"] is False and iso["lora"]["max_dG"] == 5e-7
    assert iso["lora"]["n_dG_trials"] == 3 and iso["lora"]["n_trials"] == 1  # counts: η_ref only
    assert iso["full"]["embedding_frozen"] is None and iso["full"]["max_dG"] == 2e-4


def test_reference_rate_stopped_at_flip_has_no_final_state(tmp_path, open_views):
    """The reference trials are those at the rate nearest η_ref; when the trials there stopped
    at their flip (an η_c-only pass), that sentence has no final state at η_ref: B_FT, R and the
    tables get nothing from it — a far rate's unstopped trial does not stand in for η_ref."""
    stop = catapult_phi()[:7]
    # sentence a: at η_ref (2e-5) only a trial stopped at its flip; at 1e-7 a full-budget trial
    write_trial(tmp_path, step_table("a-ref", stop, sentence_id="a", lr=2e-5, burial=[0.4] * 7),
                trial_record("a-ref", sentence_id="a", steps=T, steps_done=6, lr=2e-5, stop_reason="flip"))
    write_trial(tmp_path, step_table("a-low", [-0.3] * (T + 1), sentence_id="a", lr=1e-7, burial=[2.0] * (T + 1)),
                trial_record("a-low", sentence_id="a", steps=T, lr=1e-7))
    # sentence b: a full-budget trial at η_ref (its B at the last step: 0.7)
    write_trial(tmp_path, step_table("b-ref", catapult_phi(), sentence_id="b", lr=2e-5, burial=[0.7] * (T + 1)),
                trial_record("b-ref", sentence_id="b", steps=T, lr=2e-5))
    # sentence p: pre-resolved (Φ₀ > 0), so the stopper ends it at step 0: no final state either
    write_trial(tmp_path, step_table("p-ref", [0.2], sentence_id="p", lr=2e-5, burial=[3.0]),
                trial_record("p-ref", sentence_id="p", steps=T, steps_done=0, lr=2e-5, stop_reason="flip"))
    conn = open_views(tmp_path)
    assert summary(conn)["p-ref"]["character"] == "pre-resolved"
    assert {r[0] for r in db.fetch(conn, "SELECT trial_id FROM reference_trials")} == {"b-ref"}
    assert db.records(conn, "SELECT sentence_id, B_FT FROM sentence_burial") == [{"sentence_id": "b", "B_FT": 0.7}]
    assert db.scalar(conn, "SELECT B_FT FROM fits") == pytest.approx(0.7)
