"""Blind-prediction arithmetic (SPEC §5, Eq. 22): the pure function and the SQL view."""

import math

import pytest

from analysis import db
from analysis.predict import predict


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
    from analysis.registry import ViewContext
    from analysis.settings import AnalysisSettings

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
    # b1 is alone in class B: no prediction
    assert r["b1"]["n_reference"] == 0 and r["b1"]["theta_pred"] is None
    assert math.isclose(r["a1"]["gbar"], 0.5)
