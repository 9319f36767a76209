"""``phantom query`` and ``phantom analyze``, and the analysis settings every analysis command
takes (``phantom predict`` too: its command is with ``phantom geometry`` in workers/cli.py,
where models run). Heavy imports (duckdb, scipy, matplotlib) happen inside the run functions so
``phantom --help`` stays fast; the list of views in ``phantom query --help`` is the registry's
(analysis.views), so it names every view a user reads and no helper view."""

from __future__ import annotations

import argparse

from analysis.settings import AnalysisSettings, parse_lr_ref


def settings_from(args: argparse.Namespace) -> AnalysisSettings:
    """The analysis settings of the options :func:`add_settings` adds."""
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


def add_settings(p: argparse.ArgumentParser) -> None:
    """The options of the analysis settings (SPEC §4–5), as one group of ``p``."""
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
    from analysis.commands.query import render, run_query as _run
    from phantom.storage_errors import translated

    with translated(str(args.paths[0])):  # an unreachable or refusing store: one line
        with db.connect_readonly(args.paths, settings_from(args), only_for=args.sql) as conn:
            table = _run(conn, args.sql)
    render(table, args.format, args.out)
    return 0


def run_analyze(args: argparse.Namespace) -> int:
    from analysis.commands.analyze import analyze
    from phantom.storage_errors import translated

    with translated(str(args.paths[0])):  # an unreachable or refusing store: one line
        result = analyze(args.paths, settings_from(args), report=not args.no_report, out=args.out)
    print(result.summary)
    return 0


def query_description() -> str:
    """``phantom query``'s description: the user-facing views of the registry, by name."""
    from analysis.views import REGISTRY

    return ("Run one read-only SQL statement over one or several results folders (or globs of "
            "them); a phantom.duckdb written by `phantom analyze` works too. Views: "
            + ", ".join(v.name for v in REGISTRY.public())
            + ". What each holds: docs/reference/views.md (and `SELECT * FROM <view> LIMIT 5`).")


def register(sub) -> None:
    p = sub.add_parser(
        "query",
        help="run one read-only SQL query over results (views: steps, trials, trial_summary, fits, ...)",
        description=query_description(),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="results folder(s); the SQL comes last")
    p.add_argument("sql", metavar="SQL")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--out", metavar="FILE", help="write here instead of stdout (required for parquet)")
    add_settings(p)
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
    add_settings(p)
    p.set_defaults(run=run_analyze)
