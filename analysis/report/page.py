"""The self-contained HTML report: figures embedded as base64 PNG, tables inline, no scripts
and no external resources (it opens from a file, an e-mail or an artifact store as is).

Its sections are the claims, then the entries of the report's registry
(phantom.analysis.report.registry): every figure, then every table, in registration order."""

from __future__ import annotations

import base64
import html
import math
from datetime import datetime, timezone

from phantom.release import __version__

from phantom.analysis import db
from phantom.analysis.report.draw import png as to_png
from phantom.analysis.report.registry import REPORT  # complete: the face of phantom.analysis.report registers every entry
from phantom.analysis.settings import AnalysisSettings

MAX_ROWS = 200

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.78em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f3f3f3; } td.s { text-align: left; }
img { max-width: 100%; } .note { color: #777; font-style: italic; }
.wrap { overflow-x: auto; }
table.claims td { text-align: left; vertical-align: top; max-width: 28em; }
td.holds { background: #e3f4e3; font-weight: bold; } td.fails { background: #fbe3e3; font-weight: bold; }
td.untestable { background: #f1f1f1; color: #555; }
"""


def _cell(v) -> str:
    if v is None:
        return "<td></td>"
    if isinstance(v, bool):
        return f"<td>{'yes' if v else 'no'}</td>"
    if isinstance(v, float):
        return "<td></td>" if math.isnan(v) else f"<td>{v:.4g}</td>"
    if isinstance(v, int):
        return f"<td>{v}</td>"
    return f'<td class="s">{html.escape(str(v))}</td>'


def table_html(conn, sql: str) -> str:
    rows = db.records(conn, f"SELECT * FROM ({sql}) LIMIT {MAX_ROWS + 1}")
    if not rows:
        return '<p class="note">no rows for this grid</p>'
    total = db.scalar(conn, f"SELECT count(*) FROM ({sql})")
    cols = [c for c in rows[0] if not isinstance(rows[0][c], list)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(_cell(r[c]) for c in cols) + "</tr>" for r in rows[:MAX_ROWS])
    more = f'<p class="note">{total} rows; first {MAX_ROWS} shown (all are in the Parquet/CSV)</p>' if total > MAX_ROWS else ""
    return f'<div class="wrap"><table><tr>{head}</tr>{body}</table></div>{more}'


def claims_html(conn) -> str:
    """The claims table (the ``claims`` view), verdicts coloured."""
    rows = db.records(conn, "SELECT claim, paper, measured, verdict, why FROM claims ORDER BY ord")
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("holds", "fails", "untestable")}
    head = "".join(f"<th>{c}</th>" for c in ("claim", "paper", "this grid", "verdict", "why"))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r[c] or ''))}</td>" for c in ("claim", "paper", "measured"))
        + f"<td class='{html.escape(r['verdict'])}'>{html.escape(r['verdict'])}</td>"
        + f"<td>{html.escape(str(r['why'] or ''))}</td></tr>"
        for r in rows
    )
    return (f"<p>{counts['holds']} hold, {counts['fails']} fail, {counts['untestable']} untestable on this grid "
            "(rules and tolerances: docs/reference/claims.md).</p>"
            f"<div class='wrap'><table class='claims'><tr>{head}</tr>{body}</table></div>")


def build_report(conn, settings: AnalysisSettings) -> str:
    n = db.scalar(conn, "SELECT count(*) FROM trial_summary")
    models = db.scalar(conn, "SELECT count(DISTINCT model) FROM trial_summary")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Phantom transitions: analysis report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Phantom transitions: analysis report</h1>",
        f"<p>{n} trials, {models} model{'' if models == 1 else 's'}. Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"by phantom {html.escape(__version__)}. Reference rates η_ref: "
        + ", ".join(f"{html.escape(p)} {r:g}" for p, r in settings.lr_ref)
        + f"; character thresholds R ≥ {settings.catapult:g} / {settings.catapult_like:g} / "
        f"{settings.intermediate:g} / {settings.borderline:g}; Φ-saturation w = "
        f"{settings.saturation_window}, tol = {settings.saturation_tol:g}; intervals at "
        f"{100 * settings.confidence:g}%, bootstrap over sentences with {settings.bootstrap} "
        f"resamples (seed {settings.bootstrap_seed}); "
        + ("every complete trial record" if settings.all_trials else "the trials of the plans")
        + ".</p>",
        "<h2 id='claims'>The paper's claims, checked on this grid</h2>",
        claims_html(conn),
    ]
    left_out = []
    # figures of extensions beyond the paper's grid (the frozen-head ablation): left out, with one
    # line saying so, when the folder has no data for them — the paper's figures always get a section
    for f in REPORT.figures.values():
        key, title, missing = f.key, f.caption, f.missing
        fig = f.draw(conn)
        png = to_png(fig) if fig is not None else None
        if not png and f.optional:  # an extension the grid does not run: no section
            left_out.append(f"{title} ({missing})")
            continue
        parts.append(f"<h2 id='fig-{key}'>{html.escape(title)}</h2>")
        if png:
            b64 = base64.b64encode(png).decode("ascii")
            parts.append(f"<img alt='{html.escape(title)}' src='data:image/png;base64,{b64}'>")
        else:
            parts.append(f"<p class='note'>No data for this figure: {html.escape(missing)}.</p>")
    if left_out:
        parts.append("<p class='note'>Not in this grid: " + html.escape("; ".join(left_out)) + ".</p>")
    for t in REPORT.tables.values():
        parts.append(f"<h2 id='table-{t.key}'>{html.escape(t.caption)}</h2>")
        parts.append(table_html(conn, t.sql))
    parts.append("</body></html>")
    return "\n".join(parts)
