"""The paper's figures for one grid, as matplotlib figures, registered in the report's registry
(phantom.analysis.report.registry) with the views each reads.

Each function takes a DuckDB connection with the analysis views and returns a
:class:`matplotlib.figure.Figure`, or None when the grid has no data for that figure (the report
then says what is missing). The report embeds them as PNG (phantom.analysis.report.draw ``png``); the
Python API (phantom.Results) returns them as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phantom.outcomes import CATAPULT_LIKE, SHAPED, sql_list
from phantom.protocols import Protocol

from phantom.analysis import db
from phantom.analysis.report.draw import MAX_LINES, MAX_PANELS, figure as _figure, grid as _grid, in_list as _in_list
from phantom.analysis.report.registry import REPORT

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

# trials whose trajectory shape was judged (no immediate flips, no stops at the flip)
_SHAPED = f"character IN ({sql_list(SHAPED)})"


def _groups(conn, table: str = "reference_trials") -> list[tuple[str, str]]:
    return db.fetch(conn, f"SELECT DISTINCT model, protocol FROM {table} ORDER BY 1, 2")[:MAX_PANELS]


def phi_traces(conn) -> Figure | None:
    """Figure 3: Φ(t) per sentence at the reference rate, flip steps marked."""
    groups = _groups(conn)
    if not groups:
        return None
    picks = db.records(
        conn,
        """SELECT model, protocol, sentence_id, arg_min(trial_id, seed) AS trial_id,
                  arg_min(flip_step, seed) AS flip_step, any_value(lr) AS lr
           FROM reference_trials GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
    )
    ids = [p["trial_id"] for p in picks]
    series: dict[str, tuple[list, list]] = {}
    # a literal IN list is pushed down into the Parquet scan (a join with a list is not)
    for tid, step, phi in db.fetch(
        conn,
        f"SELECT trial_id, step, phi FROM trial_steps WHERE trial_id IN ({_in_list(ids)}) "
        "ORDER BY trial_id, step",
    ):
        s = series.setdefault(tid, ([], []))
        s[0].append(step)
        s[1].append(phi)
    fig, axes = _grid(len(groups))
    for ax, (model, protocol) in zip(axes, groups):
        mine = [p for p in picks if p["model"] == model and p["protocol"] == protocol][:MAX_LINES]
        for p in mine:
            t, phi = series.get(p["trial_id"], ([], []))
            line = ax.plot(t, phi, lw=1.2, label=p["sentence_id"])[0]
            k = p["flip_step"]
            if k is not None and k in t:
                ax.plot([k], [phi[t.index(k)]], "o", color=line.get_color(), ms=5)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(f"{model} / {protocol}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("Φ")
        ax.legend(fontsize=6, ncol=2)
    return fig


def through_flip(conn) -> Figure | None:
    """Figure 5: Δ, ψ_g·h, ψ_c·h and Φ through the flip of the sharpest catapults."""
    picks = db.records(
        conn,
        f"""SELECT trial_id, model, protocol, sentence_id, flip_step, R FROM trial_summary
           WHERE {_SHAPED} AND R IS NOT NULL
           ORDER BY R DESC, trial_id LIMIT 3""",
    )
    if not picks:
        return None
    every = db.fetch(
        conn,
        "SELECT trial_id, step, delta, h_dot_g, h_dot_c, phi FROM trial_steps "
        f"WHERE trial_id IN ({_in_list([p['trial_id'] for p in picks])}) ORDER BY trial_id, step",
    )
    fig, axes = _grid(len(picks))
    for ax, p in zip(axes, picks):
        rows = [r[1:] for r in every if r[0] == p["trial_id"]]
        t = [r[0] for r in rows]
        ax.plot(t, [r[1] for r in rows], label="Δ = z_g − z_c")
        ax.plot(t, [r[2] for r in rows], label="ψ_g·h")
        ax.plot(t, [r[3] for r in rows], label="ψ_c·h")
        ax.axvline(p["flip_step"], color="grey", ls="--", lw=0.8)
        ax.set_xlabel("step")
        ax2 = ax.twinx()
        ax2.plot(t, [r[4] for r in rows], color="k", lw=1.6, label="Φ")
        ax2.set_ylabel("Φ")
        ax.set_title(f"{p['model']}/{p['protocol']} {p['sentence_id']} (R = {p['R']:.1f})", fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
    return fig


_CHARACTER_STYLE = {  # colour, marker
    "catapult": ("tab:red", "o"), "catapult-like": ("tab:orange", "o"), "intermediate": ("gold", "o"),
    "borderline": ("tab:olive", "o"), "drift": ("tab:blue", "o"), "immediate": ("grey", "s"),
    "stopped-at-flip": ("tab:green", "^"), "unresolved": ("black", "x"), "diverged": ("tab:purple", "v"),
}


def phase_diagram(conn) -> Figure | None:
    """The phase diagram: x = η·G_max against the flip step, one panel per model and protocol
    (protocols side by side), coloured by character; trials that never flip sit above the
    budget; θ*_shape (dashed) and θ*_resolve (dotted) drawn."""
    groups = db.fetch(conn, "SELECT DISTINCT model, protocol FROM trial_summary WHERE x > 0 "
                      "AND character IS NOT NULL ORDER BY 1, 2")[:MAX_PANELS]
    if not groups:
        return None
    fig, axes = _grid(len(groups))
    for ax, (model, protocol) in zip(axes, groups):
        pts = db.fetch(
            conn,
            """SELECT x, coalesce(flip_step, budget + 1), character, budget FROM trial_summary
               WHERE model = ? AND protocol = ? AND x > 0 AND character IS NOT NULL
                 AND character <> 'pre-resolved'""",
            [model, protocol],
        )
        for character, (colour, marker) in _CHARACTER_STYLE.items():
            sel = [p for p in pts if p[2] == character]
            if sel:
                ax.scatter([p[0] for p in sel], [p[1] for p in sel], s=16, c=colour, marker=marker,
                           label=f"{character} ({len(sel)})", alpha=0.75)
        budget = max((p[3] for p in pts if p[3] is not None), default=None)
        if budget:
            ax.axhline(budget + 0.5, color="grey", lw=0.5)
            ax.text(min(p[0] for p in pts), budget + 1.3, "never flips",
                    fontsize=6, color="grey")
        fit = db.records(conn, "SELECT theta_shape, theta_resolve FROM fits WHERE model = ? AND protocol = ?",
                         [model, protocol])
        if fit and fit[0]["theta_shape"]:
            ax.axvline(fit[0]["theta_shape"], color="k", ls="--", lw=1, label=f"θ*_shape {fit[0]['theta_shape']:.3g}")
        if fit and fit[0]["theta_resolve"]:
            ax.axvline(fit[0]["theta_resolve"], color="k", ls=":", lw=1.2,
                       label=f"θ*_resolve {fit[0]['theta_resolve']:.3g}")
        ax.set_xscale("log")
        ax.set_xlabel("x = η·G_max")
        ax.set_ylabel("flip step")
        ax.set_title(f"{model} / {protocol}", fontsize=9)
        ax.legend(fontsize=6, loc="upper right")
    return fig


def bulk_histograms(conn) -> Figure | None:
    """Figure 6: the bulk G² distribution per model, with its class."""
    rows = db.records(conn, "SELECT * FROM geometry ORDER BY class, model")
    rows = [r for r in rows if r["hist_counts"]][: MAX_PANELS * 2]
    if not rows:
        return None
    fig, axes = _grid(len(rows), 3.6, 2.8)
    for ax, r in zip(axes, rows):
        edges, counts = r["hist_edges"], r["hist_counts"]
        widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
        ax.bar(edges[:-1], counts, width=widths, align="edge", color="tab:green" if r["class"] == "A" else "tab:purple")
        ax.set_yscale("log")
        ax.set_xlabel("G²")
        ax.set_title(f"{r['model']}: class {r['class']} (mean G² {r['mean_g2']:.3g})", fontsize=9)
    return fig


def reduced_field(conn) -> Figure | None:
    """Figure 7: H per model and protocol; error bars: the bootstrap interval over sentences
    (when there is one), grey marks: the per-sentence range H_min..H_max."""
    rows = db.records(conn, "SELECT model, protocol, H, H_min, H_max, H_ci_lo, H_ci_hi FROM fits "
                      "WHERE H IS NOT NULL ORDER BY protocol, model")
    if not rows:
        return None
    fig = _figure(figsize=(max(4.0, 0.6 * len(rows) + 2), 3.4))
    ax = fig.subplots()
    labels = [f"{r['model']}\n{r['protocol']}" for r in rows]
    hs = [r["H"] for r in rows]

    def gap(a, b):
        return max(0.0, a - b) if a is not None and b is not None else 0.0

    lo = [gap(r["H"], r["H_ci_lo"]) for r in rows]
    hi = [gap(r["H_ci_hi"], r["H"]) for r in rows]
    colours = ["tab:cyan" if Protocol(r["protocol"]).embedding_frozen else "tab:orange" for r in rows]
    ax.bar(range(len(rows)), hs, yerr=[lo, hi], color=colours, capsize=3)
    for k, r in enumerate(rows):
        for v in (r["H_min"], r["H_max"]):
            if v is not None:
                ax.plot([k - 0.3, k + 0.3], [v, v], color="grey", lw=0.8)
    ax.set_xticks(range(len(rows)), labels, fontsize=7, rotation=45, ha="right")
    ax.set_ylabel("H = η_ref·Ḡ_max/θ*")
    if min(hs) > 0 and max(hs) / min(hs) > 20:  # full FT and LoRA differ by ~50x: both readable
        ax.set_yscale("log")
    return fig


def burial(conn) -> Figure | None:
    """Figure 8: B_FT against bulk density (mean G²) and against H, per protocol."""
    rows = db.records(
        conn,
        "SELECT f.model, f.protocol, f.B_FT, f.H, g.mean_g2 FROM fits f LEFT JOIN geometry g USING (model) "
        "WHERE f.B_FT IS NOT NULL ORDER BY 1, 2",
    )
    if not rows:
        return None
    fig, (a, b) = _grid(2)
    for proto in sorted({r["protocol"] for r in rows}):
        mine = [r for r in rows if r["protocol"] == proto]
        g = [r for r in mine if r["mean_g2"] is not None]
        a.scatter([r["mean_g2"] for r in g], [r["B_FT"] for r in g], label=proto)
        h = [r for r in mine if r["H"] is not None]
        b.scatter([r["H"] for r in h], [r["B_FT"] for r in h], label=proto)
        for r in g:
            a.annotate(r["model"], (r["mean_g2"], r["B_FT"]), fontsize=6)
        for r in h:
            b.annotate(r["model"], (r["H"], r["B_FT"]), fontsize=6)
    a.set_xlabel("bulk density (mean G²)")
    b.set_xlabel("H")
    for ax in (a, b):
        ax.set_ylabel("B_FT")
        ax.legend(fontsize=7)
    return fig


# ----------------------------------------------------------------------------------------------
# the report's figures, in the report's order (the frozen-head ablation: phantom.analysis.report.figures_arch)

REPORT.figure("phase", "Phase diagram: η·G_max against the flip step, by character, with θ*_shape and θ*_resolve",
              reads=("trial_summary", "fits"), missing="needs trials", method="phase_diagram")(phase_diagram)
REPORT.figure("phi", "Φ(t) per sentence, flip steps marked (Figure 3)", reads=("reference_trials", "trial_steps"),
              missing="needs trials", method="phi_curves")(phi_traces)
REPORT.figure("flip", "Δ, ψ_g·h, ψ_c·h and Φ through the flip (Figure 5)", reads=("trial_summary", "trial_steps"),
              missing="needs a trial that flips during training", method="through_flip")(through_flip)
REPORT.figure("bulk", "Bulk embedding geometry per model (Figure 6)", reads=("geometry",),
              missing="needs `phantom geometry --model M` results", method="bulk_histograms")(bulk_histograms)
REPORT.figure("H", "Reduced field H per model and protocol, bootstrap interval and per-sentence range (Figure 7)",
              reads=("fits",), missing="needs sentences with an η_c (some rates flip, some do not) and an η_ref",
              method="reduced_field")(reduced_field)
REPORT.figure("burial", "B_FT against bulk density and against H (Figure 8)", reads=("fits", "geometry"),
              missing="needs trials at the reference rate", method="burial")(burial)
