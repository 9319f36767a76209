"""``phantom query`` and ``phantom analyze`` (:mod:`phantom.analysis`). The list of views in
``phantom query --help`` is the registry's, so it names every view a user reads and no helper
view; DuckDB, SciPy and matplotlib load only when a command runs."""

from __future__ import annotations

import argparse

from phantom.cli._options import add_settings, settings_from


def query_description() -> str:
    """``phantom query``'s description: the user-facing views of the registry, by name."""
    from phantom.analysis import REGISTRY

    return ("Run one read-only SQL statement over one or several results folders (or globs of "
            "them); a phantom.duckdb written by `phantom analyze` works too. Views: "
            + ", ".join(v.name for v in REGISTRY.public())
            + ". What each holds: docs/reference/views.md (and `SELECT * FROM <view> LIMIT 5`).")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "query",
        help="run one read-only SQL query over results (views: steps, trials, trial_summary, fits, ...)",
        describe=query_description,  # the registry loads only when the help is shown
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
        description="Compute every summary table of science §4–5 over the results folder(s) and write "
        "them, a DuckDB file with the views and report.html under <first PATH>/analysis/ (or --out).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report (figures)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="write the analysis here (a local folder or a URI) instead of <first PATH>/analysis/")
    add_settings(p)
    p.set_defaults(run=run_analyze)


def run_query(args: argparse.Namespace) -> int:
    from phantom.analysis import query, render

    render(query(args.paths, args.sql, settings_from(args)), args.format, args.out)
    return 0


def run_analyze(args: argparse.Namespace) -> int:
    from phantom.analysis import analyze
    from phantom.storage_errors import translated

    with translated(str(args.paths[0])):  # an unreachable or refusing store: one line
        result = analyze(args.paths, settings_from(args), report=not args.no_report, out=args.out)
    print(result.summary)
    return 0
