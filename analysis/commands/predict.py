"""``phantom predict``: the blind prediction (science §5.9, paper §7, Eq. 22) for a model that was
never fine-tuned. Class from its bulk geometry; H̄ = mean H of the *other* models of that class
under the protocol (from reference sweeps), or of all other models when no model of its class
has one (as the ``blind_prediction`` view does); then

    η_c = η_ref / H̄,   θ*_pred = η_ref·Ḡ_max / H̄,   per sentence η_c(s) = θ*_pred / G_max(s),

and rate X is above threshold for sentence s when X > η_c(s) (X·G_max(s) > θ*_pred).

Analysis reads files and never runs a model: the geometry of a model the reference has not
measured is handed in as ``measure`` (the command line hands in the workers' probe,
:func:`phantom.workers.measure_geometry`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from phantom.errors import ConfigError, StorageError


@dataclass(frozen=True)
class SentencePrediction:
    sentence_id: str
    gmax: float
    eta_c: float
    above: bool


@dataclass(frozen=True)
class Prediction:
    model: str
    protocol: str
    model_class: str
    lr: float
    lr_ref: float
    H_class: float
    reference_models: tuple[str, ...]
    gmax_mean: float
    eta_c: float
    theta: float
    sentences: tuple[SentencePrediction, ...]
    reference: str = "class peers"  # or "all others (no class peer)" (phantom.analysis.views.tables)


def predict(model: str, protocol: str, model_class: str, lr: float, lr_ref: float,
            reference_H: dict[str, float], gmax: dict[str, float],
            reference: str = "class peers") -> Prediction:
    """The arithmetic of Eq. 22 (pure; ``reference_H``: model → H of the reference models)."""
    hs = [h for h in reference_H.values() if h is not None and math.isfinite(h)]
    if not hs:
        raise StorageError(
            f"no other model has an H under '{protocol}' "
            "(needs its sweep with rates that flip and rates that do not, and its geometry)"
        )
    if not gmax:
        raise StorageError(f"no sentence G_max for '{model}' (run phantom geometry with sentences)")
    h_class = sum(hs) / len(hs)
    gbar = sum(gmax.values()) / len(gmax)
    theta = lr_ref * gbar / h_class
    per = tuple(
        SentencePrediction(s, g, theta / g if g > 0 else math.inf, g > 0 and lr > theta / g)
        for s, g in sorted(gmax.items())
    )
    return Prediction(model, protocol, model_class, lr, lr_ref, h_class,
                      tuple(sorted(reference_H)), gbar, lr_ref / h_class, theta, per, reference)


def _geometry_rows(model: str, geometry: str | None, conn,
                   measure: Callable[[str], list[dict]] | None) -> list[dict]:
    from phantom.analysis import db

    if geometry:
        import pyarrow.parquet as pq

        rows = [r for r in pq.read_table(geometry).to_pylist() if r["model"] == model]
        if not rows:
            raise StorageError(f"{geometry} has no geometry for '{model}'")
        return rows
    rows = db.records(conn, "SELECT model, class, sentence_id, gmax FROM geometry_rows WHERE model = ?", [model])
    if rows:
        return rows
    if measure is None:
        raise StorageError(f"no geometry of '{model}' in the reference: run "
                           f"`phantom geometry --model {model} --out DIR` or give --geometry")
    return measure(model)


def predict_blind(model: str, protocol: str, lr: float, reference, settings, *, geometry: str | None = None,
                  measure: Callable[[str], list[dict]] | None = None) -> Prediction:
    """``phantom predict``: the blind prediction for ``model`` under ``protocol`` at rate ``lr``
    from the reference results folders ``reference`` (their fits and geometry). The model's own
    geometry: the Parquet ``geometry``, else the reference's, else ``measure(model)`` -> its
    geometry rows (the workers' probe: analysis never runs a model)."""
    from phantom.analysis import db

    lr_ref = settings.lr_ref_map.get(protocol)
    if lr_ref is None:
        raise ConfigError(f"no η_ref for protocol '{protocol}': give --lr-ref {protocol}=RATE")
    conn = db.connect(reference, settings)
    try:
        rows = _geometry_rows(model, geometry, conn, measure)
        cls = rows[0]["class"]
        others = db.fetch(
            conn,
            "SELECT f.model, f.H, coalesce(g.class = ?, false) FROM fits f "
            "LEFT JOIN geometry g USING (model) "
            "WHERE f.protocol = ? AND f.model <> ? AND f.H IS NOT NULL",
            [cls, protocol, model],
        )
    finally:
        conn.close()
    from phantom.analysis.views.tables import ALL_OTHERS, CLASS_PEERS

    peers = {m: h for m, h, same in others if same}
    kind = CLASS_PEERS if peers else ALL_OTHERS
    ref = peers or {m: h for m, h, _ in others}
    gmax = {r["sentence_id"]: r["gmax"] for r in rows if r["sentence_id"]}
    return predict(model, protocol, cls, lr, lr_ref, ref, gmax, kind)


def prediction_json(p: Prediction) -> str:
    return json.dumps(asdict(p), indent=1)


def prediction_lines(p: Prediction) -> list[str]:
    """The table ``phantom predict`` prints."""
    lines = [f"{p.model}: class {p.model_class}; H̄_{p.protocol} = {p.H_class:.4g} from "
             f"{', '.join(p.reference_models)} ({p.reference})",
             f"predicted η_c = {p.eta_c:.4g} (η_ref {p.lr_ref:g}), θ* = {p.theta:.4g} "
             f"(Ḡ_max {p.gmax_mean:.4f})",
             f"{'sentence':<16} {'G_max':>7} {'η_c(s)':>10}  rate {p.lr:g}"]
    for s in p.sentences:
        lines.append(f"{s.sentence_id:<16} {s.gmax:>7.4f} {s.eta_c:>10.4g}  {'above' if s.above else 'below'}")
    return lines
