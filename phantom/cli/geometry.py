"""``phantom geometry`` and ``phantom predict``: the commands that run a model to read its
geometry (inference only: :func:`phantom.workers.measure_geometry`); predict's arithmetic and
reference are the analysis' (:func:`phantom.analysis.predict_blind`), which is handed the
workers' probe for a model its reference has not measured."""

from __future__ import annotations

import argparse

from phantom.cli._options import add_settings, settings_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "geometry",
        help="inference only: bulk embedding geometry, class, and per-sentence base values",
        description="Bulk statistics of the input embedding (science §5.8: mean G², fraction above τ, "
        "KS distances, class A/B) and, per sentence, G_max, base Born rank, B0, eps0, Phi0. "
        "Writes OUT/geometry/<model>.parquet (the `geometry` view reads it).",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True, metavar="DIR", help="results folder to write into")
    p.add_argument("--pairs", type=int, default=100_000, help="random token pairs (default %(default)s)")
    p.add_argument("--tau", type=float, default=0.3, help="τ of the fraction G > τ (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sentences", metavar="YAML", help="sentence file (default: the shipped sentences.yaml)")
    p.add_argument("--sentence", action="append", metavar="ID", help="only these sentences (repeatable)")
    p.add_argument("--no-sentences", action="store_true", help="bulk statistics only")
    p.add_argument("--pool-mass", type=float, default=0.9)
    p.add_argument("--pool-cap", type=int, default=1024)
    p.add_argument("--trust-remote-code", action="store_true")
    p.set_defaults(run=run_geometry)

    p = sub.add_parser(
        "predict",
        help="blind prediction of η_c and θ* for a model that was never fine-tuned",
        description="Classify MODEL from its bulk geometry, take the mean H of the other models "
        "of its class under PROTOCOL in the reference results, and predict η_c, θ* and, per "
        "sentence, whether rate LR is above threshold (science §5.9, Eq. 22).",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--protocol", default="lora")
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--reference", action="append", required=True, metavar="PATH",
                   help="results folder(s) with other models' sweeps and geometry (repeatable)")
    p.add_argument("--geometry", metavar="PATH",
                   help="geometry Parquet of MODEL (default: from the reference, else computed now)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--pairs", type=int, default=100_000)
    p.add_argument("--tau", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sentences", metavar="YAML")
    p.add_argument("--trust-remote-code", action="store_true")
    add_settings(p)
    p.set_defaults(run=run_predict)


def run_geometry(args: argparse.Namespace) -> int:
    from phantom.workers import measure_geometry, write_geometry

    table = measure_geometry(
        args.model, n_pairs=args.pairs, tau=args.tau, seed=args.seed,
        sentences_path=args.sentences, only=args.sentence, with_sentences=not args.no_sentences,
        pool_mass=args.pool_mass, pool_cap=args.pool_cap, trust_remote_code=args.trust_remote_code,
    )
    path = write_geometry(table, args.out)
    r = table.slice(0, 1).to_pylist()[0]
    print(f"{args.model}: class {r['class']} (mean G² {r['mean_g2']:.4g}, G > {r['tau']:g}: "
          f"{100 * r['frac_above_tau']:.2f}%, KS normal {r['ks_norm']:.3f} vs exponential "
          f"{r['ks_exp']:.3f}); {sum(1 for x in table.column('sentence_id').to_pylist() if x)} sentences")
    print(f"wrote {path}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from phantom.analysis import predict_blind, prediction_json, prediction_lines

    def measure(model: str) -> list[dict]:  # the workers' probe, for a model the reference lacks
        from phantom.workers import measure_geometry

        return measure_geometry(model, n_pairs=args.pairs, tau=args.tau, seed=args.seed,
                                sentences_path=args.sentences,
                                trust_remote_code=args.trust_remote_code).to_pylist()

    p = predict_blind(args.model, args.protocol, args.lr, args.reference, settings_from(args),
                      geometry=args.geometry, measure=measure)
    print(prediction_json(p) if args.format == "json" else "\n".join(prediction_lines(p)))
    return 0
