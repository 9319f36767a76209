"""The few lines ``phantom analyze`` prints: what was analysed and the headline numbers."""

from __future__ import annotations

from phantom.storage import Store

from phantom.analysis import db


def _g(x, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def _ci(lo, hi, missing: str = "") -> str:
    return missing if lo is None or hi is None else f" [{_g(lo)}, {_g(hi)}]"


def _defined(frac) -> str:
    return "" if frac is None or frac >= 1 else f" ({100 * frac:.0f}% of resamples)"


def summary_text(conn, out: Store, report: bool = True) -> str:
    """The lines ``phantom analyze`` ends with; ``report``: whether report.html was written."""
    lines = []
    status = db.fetch(conn, "SELECT status, count(*) FROM trial_summary GROUP BY 1 ORDER BY 1")
    total = sum(n for _, n in status)
    lines.append(f"{total} trials (" + ", ".join(f"{n} {s}" for s, n in status) + ")")
    extra = db.scalar(conn, "SELECT count(*) FROM extra_trials")
    if extra:
        included = db.scalar(conn, "SELECT count(*) FROM trials WHERE NOT in_plan")
        how = "included (--all-trials)" if included else "not analysed; --all-trials includes them"
        lines.append(f"{extra} complete trials outside the plan ({how}): see extra_trials")
    chars = db.fetch(
        conn,
        "SELECT character, count(*) FROM trial_summary WHERE character IS NOT NULL "
        "GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    if chars:
        lines.append("characters: " + ", ".join(f"{c} {n}" for c, n in chars))
    fits = db.records(conn, "SELECT f.*, g.class FROM fits f LEFT JOIN geometry g USING (model) "
                            "ORDER BY model, protocol")
    if fits:
        lines.append("")
        lines.append(f"{'model':<24} {'protocol':<16} {'class':>5} {'θ*_shape':>10} {'err':>4} "
                     f"{'θ*_resolve':>11} {'H':>7} {'η_c':>5} {'B_FT':>7}")
        for f in fits:
            found = f"{f['n_sentences_eta_c'] or 0}/{f['n_sentences'] or 0}"
            lines.append(
                f"{f['model'][:24]:<24} {f['protocol'][:16]:<16} {f['class'] or '-':>5} "
                f"{_g(f['theta_shape']):>10} "
                f"{_g(f['shape_errors'], 'd') if f['shape_errors'] is not None else '-':>4} "
                f"{_g(f['theta_resolve']):>11} {_g(f['H']):>7} {found:>5} {_g(f['B_FT']):>7}"
            )
        lines.append("(class: bulk geometry, `phantom geometry`; η_c: sentences with a critical rate / sentences)")
        boot = [f for f in fits if f["n_boot"]]
        if boot:
            lines.append(f"bootstrap over sentences ({boot[0]['n_boot']} resamples), intervals:")
            for f in boot:
                ci = {k: _ci(f[f"{k}_ci_lo"], f[f"{k}_ci_hi"], " -") for k in ("theta_shape", "theta_resolve", "H", "B_FT")}
                lines.append(
                    f"  {f['model'][:24]}/{f['protocol']}: θ*_shape{ci['theta_shape']}"
                    f"{_defined(f['theta_shape_boot_defined'])}"
                    f" θ*_resolve{ci['theta_resolve']} H{ci['H']} B_FT{ci['B_FT']}"
                )
    corr = db.records(
        conn,
        "SELECT * FROM correlations WHERE x = 'gmax' AND y = 'R' AND scope = 'model' "
        "ORDER BY model, protocol",
    )
    if corr:
        lines.append("")
        lines.append("Spearman(G_max, R): " + "; ".join(
            f"{c['model']}/{c['protocol']} ρ={_g(c['rho'], '.2f')}{_ci(c['rho_lo'], c['rho_hi'])} "
            f"(p={_g(c['p_value'], '.2g')}, n={c['n']})"
            for c in corr
        ))
    blind = db.records(conn, "SELECT * FROM blind_prediction WHERE rel_error IS NOT NULL")
    for b in blind:
        lines.append(
            f"blind prediction {b['model']}/{b['protocol']} (class {b['class'] or '-'}, from "
            f"{b['reference_models'] or '-'}: {b['reference']}): "
            f"θ*_pred {_g(b['theta_pred'])} vs measured {_g(b['theta_measured'])}, "
            f"error {100 * b['rel_error']:.1f}%"
        )
    claims = db.records(conn, "SELECT claim_id, verdict, measured, why FROM claims ORDER BY ord")
    if claims:
        lines.append("")
        lines.append("claims of the paper on this grid (the claims view"
                     + ("; report.html has the paper's figures):" if report else "):"))
        for c in claims:
            lines.append(f"  {c['verdict']:<10} {c['claim_id']:<26} {c['measured']}")
    lines.append("")
    lines.append(f"wrote {out.uri}/ (phantom.duckdb, {'report.html, ' if report else ''}tables as .parquet/.csv)")
    return "\n".join(lines)
