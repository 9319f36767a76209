"""Blind-prediction arithmetic (science §5.9, Eq. 22): the pure function and the SQL view."""

import math

import pytest

from phantom.analysis import db
from phantom.analysis.commands.predict import predict


def test_predict_arithmetic():
    p = predict("held", "lora", "A", 5e-5, 1e-4, {"a1": 2.0, "a2": 4.0},
                {"s1": 0.5, "s2": 0.8, "s3": 0.2})
    assert p.H_class == 3.0 and p.gmax_mean == pytest.approx(0.5)
    assert p.eta_c == pytest.approx(1e-4 / 3)
    assert p.theta == pytest.approx(1e-4 * 0.5 / 3)
    per = {s.sentence_id: s for s in p.sentences}
    assert per["s1"].eta_c == pytest.approx(1e-4 / 3)  # θ*/G_max = (0.5e-4/3)/0.5
    assert per["s3"].eta_c == pytest.approx(1e-4 * 0.5 / 3 / 0.2) and per["s3"].above is False
    assert per["s2"].above is True and per["s1"].above is True  # 5e-5 > 3.3e-5 and > 2.1e-5


def test_blind_prediction_view(memdb):
    db.fetch(memdb, "CREATE TABLE fits (model VARCHAR, protocol VARCHAR, lr_ref DOUBLE, H DOUBLE, "
             "theta_resolve DOUBLE, gmax_resolved DOUBLE, gmax_all DOUBLE)")
    memdb.executemany("INSERT INTO fits VALUES (?, ?, ?, ?, ?, ?, ?)", [
        ("a1", "lora", 1e-4, 2.0, 1e-5, 0.5, 0.5),
        ("a2", "lora", 1e-4, 4.0, 2e-5, 0.5, 0.5),
        ("b1", "lora", 1e-4, 10.0, 3e-6, 0.5, 0.5),
        ("held", "lora", 1e-4, 2.5, 1.7e-5, 0.45, 0.6),
    ])
    db.fetch(memdb, "CREATE TABLE geometry AS SELECT * FROM (VALUES ('a1','A'),('a2','A'),"
             "('b1','B'),('held','A')) v(model, class)")
    db.fetch(memdb, "CREATE TABLE geometry_sentences AS SELECT * FROM (VALUES ('held', 0.4), "
             "('held', 0.6)) v(model, gmax)")
    from phantom.analysis.registry import ViewContext
    from phantom.analysis.settings import AnalysisSettings

    db.define_views(memdb, ViewContext((), AnalysisSettings()), ["blind_prediction"],
                    given=["fits", "geometry", "geometry_sentences"])
    r = {x["model"]: x for x in db.records(memdb, "SELECT * FROM blind_prediction")}
    held = r["held"]
    # H̄_A without 'held' = (2 + 4)/2; Ḡ_max from the inference-only geometry = 0.5
    assert held["H_class"] == 3.0 and held["n_reference"] == 2
    assert held["reference_models"] == "a1,a2"
    assert held["theta_pred"] == pytest.approx(1e-4 * 0.5 / 3)
    assert held["eta_c_pred"] == pytest.approx(1e-4 / 3)
    assert held["rel_error"] == pytest.approx(abs(1e-4 * 0.5 / 3 - 1.7e-5) / 1.7e-5)
    # a1 is predicted from a2 and held: (4 + 2.5)/2
    assert r["a1"]["H_class"] == pytest.approx(3.25)
    assert r["a1"]["reference"] == "class peers"
    # b1 is alone in class B: predicted from all the others, and it says so
    assert r["b1"]["reference"] == "all others (no class peer)"
    assert r["b1"]["n_reference"] == 3 and r["b1"]["reference_models"] == "a1,a2,held"
    assert r["b1"]["H_class"] == pytest.approx((2.0 + 4.0 + 2.5) / 3)
    assert math.isclose(r["a1"]["gbar"], 0.5)


def _blind(memdb, fits_rows, classes, sentence_gmax=()):
    from phantom.analysis.registry import ViewContext
    from phantom.analysis.settings import AnalysisSettings

    db.fetch(memdb, "CREATE TABLE fits (model VARCHAR, protocol VARCHAR, lr_ref DOUBLE, H DOUBLE, "
             "theta_resolve DOUBLE, gmax_resolved DOUBLE, gmax_all DOUBLE)")
    memdb.executemany("INSERT INTO fits VALUES (?, ?, ?, ?, ?, ?, ?)", fits_rows)
    db.fetch(memdb, "CREATE TABLE geometry (model VARCHAR, class VARCHAR)")
    memdb.executemany("INSERT INTO geometry VALUES (?, ?)", list(classes.items()))
    db.fetch(memdb, "CREATE TABLE geometry_sentences (model VARCHAR, gmax DOUBLE)")
    if sentence_gmax:
        memdb.executemany("INSERT INTO geometry_sentences VALUES (?, ?)", list(sentence_gmax))
    db.define_views(memdb, ViewContext((), AnalysisSettings()), ["blind_prediction"],
                    given=["fits", "geometry", "geometry_sentences"])
    return {(x["model"], x["protocol"]): x for x in db.records(memdb, "SELECT * FROM blind_prediction")}


def test_leave_one_out_for_every_model_against_numpy(memdb):
    """Three models, two of class A and one of class B, two protocols: every model gets a
    prediction; the A models from each other, B (no class peer) from all the others. The view's
    numbers against an independent NumPy recomputation of Eq. 22, rel_error included."""
    import numpy as np

    models = ["a1", "a2", "b1"]
    cls = {"a1": "A", "a2": "A", "b1": "B"}
    lr_ref = {"full": 2e-5, "lora": 1e-4}
    # H, theta_resolve, gmax_resolved, gmax_all per (model, protocol)
    fit = {
        ("a1", "full"): (9.0, 1.1e-6, 0.55, 0.52), ("a2", "full"): (11.0, 0.9e-6, 0.50, 0.48),
        ("b1", "full"): (10.5, 1.3e-6, 0.62, 0.60),
        ("a1", "lora"): (1.5, 3.0e-5, 0.55, 0.52), ("a2", "lora"): (2.5, 2.2e-5, 0.50, 0.48),
        ("b1", "lora"): (8.0, 7.0e-6, 0.62, 0.60),
    }
    # b1's Ḡ_max comes from its inference-only geometry; a1's and a2's from their trials
    b1_sentences = [0.58, 0.64, 0.67]
    got = _blind(memdb, [(m, p, lr_ref[p], *fit[m, p]) for (m, p) in fit], cls,
                 [("b1", g) for g in b1_sentences])
    assert len(got) == 6
    for (m, p), row in got.items():
        peers = [o for o in models if o != m and cls[o] == cls[m]]
        ref = peers or [o for o in models if o != m]
        H_bar = np.mean([fit[o, p][0] for o in ref])
        gbar = np.mean(b1_sentences) if m == "b1" else fit[m, p][3]
        theta_pred = lr_ref[p] * gbar / H_bar
        theta_meas = fit[m, p][1]
        assert row["reference"] == ("class peers" if peers else "all others (no class peer)")
        assert row["n_reference"] == len(ref) and row["reference_models"] == ",".join(sorted(ref))
        assert row["class"] == cls[m]
        assert row["H_class"] == pytest.approx(H_bar, rel=1e-12)
        assert row["gbar"] == pytest.approx(gbar, rel=1e-12)
        assert row["eta_c_pred"] == pytest.approx(lr_ref[p] / H_bar, rel=1e-12)
        assert row["theta_pred"] == pytest.approx(theta_pred, rel=1e-12)
        assert row["eta_c_measured"] == pytest.approx(theta_meas / fit[m, p][2], rel=1e-12)
        assert row["theta_measured"] == pytest.approx(theta_meas, rel=1e-12)
        assert row["rel_error"] == pytest.approx(abs(theta_pred - theta_meas) / theta_meas, rel=1e-12)
        assert row["reason"] is None
    # by hand: b1/lora from a1 and a2, H̄ = (1.5 + 2.5)/2, Ḡ_max = mean of its sentences = 0.63
    b1 = got["b1", "lora"]
    assert b1["H_class"] == pytest.approx(2.0)
    assert b1["theta_pred"] == pytest.approx(1e-4 * (0.58 + 0.64 + 0.67) / 3 / 2.0)
    assert b1["rel_error"] == pytest.approx(abs(1e-4 * 0.63 / 2.0 - 7e-6) / 7e-6)
    # a1/full from a2 alone: θ_pred = 2e-5·0.52/11
    assert got["a1", "full"]["theta_pred"] == pytest.approx(2e-5 * 0.52 / 11.0)
    assert got["a1", "full"]["reference_models"] == "a2"


def test_no_other_model_no_prediction_and_why(memdb):
    """A model with no other model (with an H) under the protocol gets no prediction and the
    reason; a model without bulk geometry has no class and is predicted from all others;
    a model without an H of its own is still predicted (it is the held-out one), not compared."""
    got = _blind(memdb, [
        ("a1", "prefix", 1e-3, 3.0, 1e-5, 0.5, 0.5),     # alone under prefix
        ("a1", "lora", 1e-4, 2.0, 2e-5, 0.5, 0.5),
        ("x", "lora", 1e-4, 4.0, 1e-5, 0.4, 0.4),        # no geometry: class unknown
        ("new", "lora", 1e-4, None, None, None, 0.6),    # no η_c of its own
    ], {"a1": "A", "new": "A"})
    alone = got["a1", "prefix"]
    assert alone["n_reference"] == 0 and alone["reference"] is None
    assert alone["theta_pred"] is None and alone["eta_c_pred"] is None and alone["rel_error"] is None
    assert alone["reason"] == "no other model has an H under this protocol"
    x = got["x", "lora"]
    assert x["class"] is None and x["reference"] == "all others (no class peer)"
    assert x["reference_models"] == "a1" and x["H_class"] == 2.0  # 'new' has no H: not a reference
    assert "class unknown" in x["reason"]
    new = got["new", "lora"]
    assert new["reference"] == "class peers" and new["reference_models"] == "a1"
    assert new["theta_pred"] == pytest.approx(1e-4 * 0.6 / 2.0) and new["rel_error"] is None
    assert "no measured" in new["reason"]
    # a1 has no other class-A model with an H ('new' has none): all others, i.e. x
    assert got["a1", "lora"]["reference"] == "all others (no class peer)"
    assert got["a1", "lora"]["reference_models"] == "x"


def test_predict_without_geometry_or_a_probe_says_how_to_get_one(folder):
    """analysis never runs a model: without ``--geometry``, without the model's geometry in the
    reference and without a probe handed in (phantom.workers.geometry), the command says what to run."""
    from phantom.analysis import AnalysisSettings, predict_blind
    from phantom.errors import StorageError

    with pytest.raises(StorageError, match=r"^no geometry of 'held-out' in the reference: run "
                                           r"`phantom geometry --model held-out --out DIR` or give --geometry$"):
        predict_blind("held-out", "lora", 1e-3, [str(folder)], AnalysisSettings())
    asked = []
    with pytest.raises(StorageError, match=r"^no other model has an H under 'lora'"):
        predict_blind("held-out", "lora", 1e-3, [str(folder)], AnalysisSettings(),
                      measure=lambda m: asked.append(m) or [{"model": m, "class": "A", "sentence_id": "s", "gmax": 0.5}])
    assert asked == ["held-out"]  # the probe was asked for the held-out model, once
