"""``phantom query | analyze | geometry | predict``. Heavy imports (duckdb, scipy, matplotlib,
torch) happen inside the run functions so ``phantom --help`` stays fast."""

from __future__ import annotations

import argparse

from analysis.settings import AnalysisSettings, parse_lr_ref


def _settings(args: argparse.Namespace) -> AnalysisSettings:
    base = AnalysisSettings(
        catapult=args.catapult,
        catapult_like=args.catapult_like,
        intermediate=args.intermediate,
        borderline=args.borderline,
        saturation_window=args.saturation_window,
        saturation_tol=args.saturation_tol,
        all_trials=args.all_trials,
        bootstrap=args.bootstrap,
        bootstrap_seed=args.bootstrap_seed,
        confidence=args.confidence,
    )
    return base.with_lr_ref(parse_lr_ref(args.lr_ref))


def _add_settings(p: argparse.ArgumentParser) -> None:
    d = AnalysisSettings()
    g = p.add_argument_group("analysis settings (SPEC §4–5)")
    g.add_argument("--lr-ref", action="append", metavar="PROTOCOL=RATE",
                   help="η_ref of a protocol (repeatable); defaults: "
                   + ", ".join(f"{k}={v:g}" for k, v in d.lr_ref))
    g.add_argument("--catapult", type=float, default=d.catapult, help="R threshold of 'catapult' (default %(default)s)")
    g.add_argument("--catapult-like", type=float, default=d.catapult_like, help="(default %(default)s)")
    g.add_argument("--intermediate", type=float, default=d.intermediate, help="(default %(default)s)")
    g.add_argument("--borderline", type=float, default=d.borderline, help="below it: 'drift' (default %(default)s)")
    g.add_argument("--saturation-window", type=int, default=d.saturation_window, help="Φ-saturation w (default %(default)s)")
    g.add_argument("--saturation-tol", type=float, default=d.saturation_tol, help="Φ-saturation tol (default %(default)s)")
    g.add_argument("--all-trials", action="store_true",
                   help="also analyse complete trial records that no plan.json names (view extra_trials)")
    g.add_argument("--bootstrap", type=int, default=d.bootstrap, metavar="N",
                   help="bootstrap resamples over sentences for the fit intervals, 0 = none (default %(default)s)")
    g.add_argument("--bootstrap-seed", type=int, default=d.bootstrap_seed, metavar="S",
                   help="seed of the bootstrap draw (default %(default)s)")
    g.add_argument("--confidence", type=float, default=d.confidence,
                   help="level of the bootstrap and Spearman intervals (default %(default)s)")


# ----------------------------------------------------------------------------------------------


def run_query(args: argparse.Namespace) -> int:
    from analysis import db
    from analysis.query import render, run_query as _run
    from phantom.storage_errors import translated

    with translated(str(args.paths[0])):  # an unreachable or refusing store: one line
        with db.connect_readonly(args.paths, _settings(args), only_for=args.sql) as conn:
            table = _run(conn, args.sql)
    render(table, args.format, args.out)
    return 0


def run_analyze(args: argparse.Namespace) -> int:
    from analysis.analyze import analyze
    from phantom.storage_errors import translated

    with translated(str(args.paths[0])):  # an unreachable or refusing store: one line
        result = analyze(args.paths, _settings(args), report=not args.no_report, out=args.out)
    print(result.summary)
    return 0


def run_geometry(args: argparse.Namespace) -> int:
    from analysis.geometry import run_geometry as _run

    return _run(args)


def run_predict(args: argparse.Namespace) -> int:
    from analysis.predict import run_predict as _run

    return _run(args, _settings(args))


def register(sub) -> None:
    p = sub.add_parser(
        "query",
        help="run one read-only SQL query over results (views: steps, trials, trial_summary, fits, ...)",
        description="Run one read-only SQL statement over one or several results folders (or "
        "globs of them). Views: steps, trials, extra_trials, trial_steps, trial_summary, "
        "reference_trials, shape_fit, eta_c, eta_c_sentence, fits, fit_replicates, correlations, "
        "isolation, stopping, ablation, blind_prediction, geometry, geometry_sentences, folders, "
        "plan, lr_ref. A phantom.duckdb written by `phantom analyze` works too.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="results folder(s); the SQL comes last")
    p.add_argument("sql", metavar="SQL")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--out", metavar="FILE", help="write here instead of stdout (required for parquet)")
    _add_settings(p)
    p.set_defaults(run=run_query)

    p = sub.add_parser(
        "analyze",
        help="fit the study's numbers and write tables, a DuckDB file and an HTML report",
        description="Compute every summary table of SPEC §4–5 over the results folder(s) and write "
        "them, a DuckDB file with the views and report.html under <first PATH>/analysis/ (or --out).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report (figures)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="write the analysis here (a local folder or a URI) instead of <first PATH>/analysis/")
    _add_settings(p)
    p.set_defaults(run=run_analyze)

    p = sub.add_parser(
        "geometry",
        help="inference only: bulk embedding geometry, class, and per-sentence base values",
        description="Bulk statistics of the input embedding (SPEC §5: mean G², fraction above τ, "
        "KS distances, class A/B) and, per sentence, G_max, base Born rank, B0, eps0, Phi0. "
        "Writes OUT/geometry/<model>.parquet (the `geometry` view reads it).",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True, metavar="DIR", help="results folder to write into")
    p.add_argument("--pairs", type=int, default=100_000, help="random token pairs (default %(default)s)")
    p.add_argument("--tau", type=float, default=0.3, help="τ of the fraction G > τ (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sentences", metavar="YAML", help="sentence file (default sweeps/sentences.yaml)")
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
        "sentence, whether rate LR is above threshold (SPEC §5, Eq. 22).",
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
    _add_settings(p)
    p.set_defaults(run=run_predict)
