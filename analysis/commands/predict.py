"""``phantom predict``: the blind prediction (SPEC §5, paper §7, Eq. 22) for a model that was
never fine-tuned. Class from its bulk geometry; H̄ = mean H of the *other* models of that class
under the protocol (from reference sweeps), or of all other models when no model of its class
has one (as the ``blind_prediction`` view does); then

    η_c = η_ref / H̄,   θ*_pred = η_ref·Ḡ_max / H̄,   per sentence η_c(s) = θ*_pred / G_max(s),

and rate X is above threshold for sentence s when X > η_c(s) (X·G_max(s) > θ*_pred).

The command itself (its options, and the geometry of a model the reference has not measured,
which loads the model) is in workers/cli.py beside ``phantom geometry``: analysis reads files
and never runs a model, so the probe is handed in as ``measure``.
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
    reference: str = "class peers"  # or "all others (no class peer)" (analysis.views.tables)


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


def _geometry_rows(args, conn, measure: Callable[[str], list[dict]] | None) -> list[dict]:
    from analysis import db

    if args.geometry:
        import pyarrow.parquet as pq

        rows = [r for r in pq.read_table(args.geometry).to_pylist() if r["model"] == args.model]
        if not rows:
            raise StorageError(f"{args.geometry} has no geometry for '{args.model}'")
        return rows
    rows = db.records(conn, "SELECT model, class, sentence_id, gmax FROM geometry_rows WHERE model = ?", [args.model])
    if rows:
        return rows
    if measure is None:
        raise StorageError(f"no geometry of '{args.model}' in the reference: run "
                           f"`phantom geometry --model {args.model} --out DIR` or give --geometry")
    return measure(args.model)


def run_predict(args, settings, measure: Callable[[str], list[dict]] | None = None) -> int:
    """``phantom predict``: ``measure(model)`` -> its geometry rows, for a model that neither the
    reference nor ``--geometry`` has (workers.geometry measures it)."""
    from analysis import db

    lr_ref = settings.lr_ref_map.get(args.protocol)
    if lr_ref is None:
        raise ConfigError(f"no η_ref for protocol '{args.protocol}': give --lr-ref {args.protocol}=RATE")
    conn = db.connect(args.reference, settings)
    try:
        rows = _geometry_rows(args, conn, measure)
        cls = rows[0]["class"]
        others = db.fetch(
            conn,
            "SELECT f.model, f.H, coalesce(g.class = ?, false) FROM fits f "
            "LEFT JOIN geometry g USING (model) "
            "WHERE f.protocol = ? AND f.model <> ? AND f.H IS NOT NULL",
            [cls, args.protocol, args.model],
        )
    finally:
        conn.close()
    from analysis.views.tables import ALL_OTHERS, CLASS_PEERS

    peers = {m: h for m, h, same in others if same}
    reference = CLASS_PEERS if peers else ALL_OTHERS
    ref = peers or {m: h for m, h, _ in others}
    gmax = {r["sentence_id"]: r["gmax"] for r in rows if r["sentence_id"]}
    p = predict(args.model, args.protocol, cls, args.lr, lr_ref, ref, gmax, reference)
    if args.format == "json":
        print(json.dumps(asdict(p), indent=1))
        return 0
    print(f"{p.model}: class {p.model_class}; H̄_{p.protocol} = {p.H_class:.4g} from "
          f"{', '.join(p.reference_models)} ({p.reference})")
    print(f"predicted η_c = {p.eta_c:.4g} (η_ref {p.lr_ref:g}), θ* = {p.theta:.4g} "
          f"(Ḡ_max {p.gmax_mean:.4f})")
    print(f"{'sentence':<16} {'G_max':>7} {'η_c(s)':>10}  rate {p.lr:g}")
    for s in p.sentences:
        print(f"{s.sentence_id:<16} {s.gmax:>7.4f} {s.eta_c:>10.4g}  {'above' if s.above else 'below'}")
    return 0
