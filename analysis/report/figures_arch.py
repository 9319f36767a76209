"""Cross-architecture figures: the frozen-head ablation (`lora` against `lora-frozen-head`).

Registered in the report's registry (phantom.analysis.report.registry) after the paper's figures
(phantom.analysis.report.figures), as optional: a folder without the ablation gets one line, not a
section. Like every figure function, each takes a DuckDB connection with the analysis views and
returns a matplotlib Figure, or None when the folder has no data for it (the report then prints
the entry's note). The panels come from phantom.analysis.report.draw, as the paper's figures' do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phantom.analysis import db
from phantom.analysis.report.draw import grid
from phantom.analysis.report.registry import REPORT
from phantom.analysis.views.tables import FROZEN_HEAD, LORA

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

NO_FROZEN_HEAD = f"no {FROZEN_HEAD} trials in this folder"


def frozen_head(conn) -> Figure | None:
    """Per model with lora-frozen-head trials: the fraction of sentences that flip under each
    protocol against the learning rate (the η_c shift of freezing the head), and final Φ of
    each pair (frozen head against trainable head; on the diagonal = no effect)."""
    pairs = db.records(conn, "SELECT * FROM frozen_head WHERE lora_trial_id IS NOT NULL "
                             "ORDER BY model, lr")
    frozen = db.records(conn, "SELECT model, lr, flipped FROM trial_summary "
                              "WHERE protocol = ? AND flipped IS NOT NULL", [FROZEN_HEAD])
    if not frozen:
        return None
    lora = db.records(
        conn,
        "SELECT t.model, t.lr, t.flipped FROM trial_summary t "
        "WHERE t.protocol = ? AND t.flipped IS NOT NULL "
        "AND t.model IN (SELECT model FROM trial_summary WHERE protocol = ?)",
        [LORA, FROZEN_HEAD],
    )
    models = sorted({r["model"] for r in frozen})
    fig, (a, b) = grid(2, 4.8, 3.6)
    colours = {}
    for k, m in enumerate(models):
        colour = f"C{k % 10}"
        colours[m] = colour
        for rows, style, label in ((lora, "-o", "lora"), (frozen, "--s", "frozen head")):
            mine = [r for r in rows if r["model"] == m]
            rates = sorted({r["lr"] for r in mine})
            if not rates:
                continue
            frac = [sum(r["flipped"] for r in mine if r["lr"] == lr)
                    / sum(1 for r in mine if r["lr"] == lr) for lr in rates]
            a.plot(rates, frac, style, color=colour, ms=4, label=f"{m}: {label}")
    a.set_xscale("log")
    a.set_ylim(-0.05, 1.05)
    a.set_xlabel("learning rate")
    a.set_ylabel("fraction of trials that flip")
    a.legend(fontsize=6)
    pts = [r for r in pairs if r["lora_phi_T"] is not None and r["frozen_phi_T"] is not None]
    if pts:
        for m in models:
            mine = [r for r in pts if r["model"] == m]
            b.scatter([r["lora_phi_T"] for r in mine], [r["frozen_phi_T"] for r in mine],
                      s=12, color=colours[m], label=m)
        lo = min(min(r["lora_phi_T"], r["frozen_phi_T"]) for r in pts)
        hi = max(max(r["lora_phi_T"], r["frozen_phi_T"]) for r in pts)
        b.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls=":")
        b.axhline(0, color="k", lw=0.5)
        b.axvline(0, color="k", lw=0.5)
        b.legend(fontsize=6)
    else:
        b.text(0.5, 0.5, "no lora trial pairs with a\nlora-frozen-head trial", ha="center",
               va="center", transform=b.transAxes, fontsize=8)
    b.set_xlabel("final Φ, lora (head trains)")
    b.set_ylabel("final Φ, lora-frozen-head")
    fig.tight_layout()
    return fig


REPORT.figure("frozen-head", "LoRA with the LM head trainable against frozen (the frozen-head ablation)",
              reads=("frozen_head", "trial_summary"), missing=NO_FROZEN_HEAD, optional=True,
              method="frozen_head_figure")(frozen_head)
