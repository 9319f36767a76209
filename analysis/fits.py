"""SPEC §5 fits across the grid, as SQL views over ``trial_summary``.

- ``reference_trials``: ok trials at the rate nearest the protocol's η_ref (per model,
  protocol, sentence); the paper's tables are at the standard rate.
- ``shape_fit``: θ*_shape (Eq. 12, 21), the threshold on x = η·G_max with fewest
  misclassified flipped trials, its error count and separating interval.
- ``eta_c``: per sentence, the critical rate η_c(s), θ*(s) = η_c(s)·G_max(s), H(s) (Table 6).
- ``fits``: one row per (model, protocol) joining both, with H (Eq. 17) and B_FT.
"""

from __future__ import annotations

from analysis.summary import CATAPULT_LIKE

_LIKE = ", ".join(f"'{c}'" for c in CATAPULT_LIKE)

REFERENCE_TRIALS_SQL = """
CREATE OR REPLACE VIEW reference_trials AS
SELECT ts.*, r.lr_ref
FROM trial_summary ts LEFT JOIN lr_ref r USING (protocol)
WHERE ts.status = 'ok'
-- nearest in log-rate; a protocol without η_ref keeps every rate (all distances are NULL)
QUALIFY rank() OVER (
    PARTITION BY ts.model, ts.protocol, ts.sentence_id
    ORDER BY round(abs(ln(ts.lr / r.lr_ref)), 9) NULLS FIRST
) = 1
"""

SHAPE_FIT_SQL = f"""
CREATE OR REPLACE VIEW shape_fit AS
WITH pts AS (
    -- flipped during training (pre-resolved trials have no shape), one row per distinct x
    SELECT model, protocol, x,
           count(*) FILTER (WHERE character IN ({_LIKE})) AS pos,
           count(*) FILTER (WHERE character NOT IN ({_LIKE})) AS neg
    FROM trial_summary
    WHERE status = 'ok' AND flip_step > 0 AND x IS NOT NULL AND isfinite(x)
    GROUP BY model, protocol, x
),
cum AS (
    SELECT model, protocol, x AS lo, lead(x) OVER w AS hi,
           sum(pos) OVER (w ROWS UNBOUNDED PRECEDING) AS pos_le,
           sum(neg) OVER (w ROWS UNBOUNDED PRECEDING) AS neg_le,
           sum(neg) OVER g AS neg_tot,
           sum(pos + neg) OVER g AS n
    FROM pts
    WINDOW w AS (PARTITION BY model, protocol ORDER BY x), g AS (PARTITION BY model, protocol)
),
gaps AS (
    -- predict catapult-like iff x > θ; the gap above each distinct x ...
    SELECT model, protocol, lo, hi, pos_le + neg_tot - neg_le AS errors, n FROM cum
    UNION ALL
    -- ... and the gap below the smallest x (everything predicted catapult-like)
    SELECT model, protocol, NULL, min(lo), any_value(neg_tot), any_value(n)
    FROM cum GROUP BY model, protocol
),
ranked AS (
    SELECT *, row_number() OVER (
        PARTITION BY model, protocol
        ORDER BY errors,
                 (lo IS NULL OR hi IS NULL),
                 CASE WHEN lo > 0 THEN ln(hi / lo) ELSE hi - lo END DESC,
                 lo
    ) AS k
    FROM gaps
)
SELECT model, protocol,
       CAST(n AS BIGINT) AS n_shape,
       CAST(errors AS BIGINT) AS shape_errors,
       lo AS shape_lo,
       hi AS shape_hi,
       CASE WHEN lo IS NULL OR hi IS NULL THEN NULL
            WHEN lo > 0 THEN sqrt(lo * hi)
            ELSE (lo + hi) / 2 END AS theta_shape
FROM ranked WHERE k = 1
"""

ETA_C_SQL = """
CREATE OR REPLACE VIEW eta_c AS
WITH per AS (
    SELECT model, protocol, sentence_id,
           avg(gmax) AS gmax,
           count(*) AS n_trials,
           count(DISTINCT lr) AS n_rates,
           max(lr) FILTER (WHERE flip_step IS NULL) AS lr_no_flip,
           min(lr) FILTER (WHERE flip_step IS NOT NULL) AS lr_flip
    FROM trial_summary
    WHERE status = 'ok' AND evaluations IS NOT NULL
    GROUP BY model, protocol, sentence_id
)
SELECT per.*,
       coalesce(lr_no_flip >= lr_flip, false) AS non_monotone,
       sqrt(lr_no_flip * lr_flip) AS eta_c,
       sqrt(lr_no_flip * lr_flip) * gmax AS theta,
       r.lr_ref,
       r.lr_ref / sqrt(lr_no_flip * lr_flip) AS H
FROM per LEFT JOIN lr_ref r USING (protocol)
"""

FITS_SQL = """
CREATE OR REPLACE VIEW fits AS
WITH groups AS (
    SELECT model, protocol,
           count(*) AS n_trials,
           count(*) FILTER (WHERE status = 'ok') AS n_ok,
           count(*) FILTER (WHERE status = 'diverged') AS n_diverged,
           count(*) FILTER (WHERE status = 'error') AS n_error,
           count(DISTINCT sentence_id) AS n_sentences,
           count(DISTINCT lr) AS n_rates
    FROM trial_summary GROUP BY model, protocol
),
resolve AS (
    SELECT model, protocol,
           count(eta_c) AS n_eta_c,
           count(*) FILTER (WHERE non_monotone) AS n_non_monotone,
           avg(theta) AS theta_resolve,
           min(theta) AS theta_min,
           max(theta) AS theta_max,
           avg(gmax) FILTER (WHERE eta_c IS NOT NULL) AS gmax_resolved,
           avg(gmax) AS gmax_all,
           min(H) AS H_min,
           max(H) AS H_max
    FROM eta_c GROUP BY model, protocol
),
burial AS (
    -- B_FT: burial at the last step, mean over seeds then over sentences, at the reference rate
    SELECT model, protocol, avg(b) AS B_FT, min(lr) AS ref_lr_min, max(lr) AS ref_lr_max
    FROM (SELECT model, protocol, sentence_id, avg(B_T) AS b, any_value(lr) AS lr
          FROM reference_trials GROUP BY model, protocol, sentence_id)
    GROUP BY model, protocol
)
SELECT g.*,
       s.n_shape, s.shape_errors, s.shape_lo, s.shape_hi, s.theta_shape,
       r.n_eta_c, r.n_non_monotone, r.theta_resolve, r.theta_min, r.theta_max,
       r.gmax_resolved, r.gmax_all,
       l.lr_ref,
       l.lr_ref * r.gmax_resolved / r.theta_resolve AS H,
       r.H_min, r.H_max,
       b.B_FT, b.ref_lr_min, b.ref_lr_max
FROM groups g
LEFT JOIN shape_fit s USING (model, protocol)
LEFT JOIN resolve r USING (model, protocol)
LEFT JOIN lr_ref l USING (protocol)
LEFT JOIN burial b USING (model, protocol)
ORDER BY g.model, g.protocol
"""

VIEWS = [
    ("reference_trials", REFERENCE_TRIALS_SQL),
    ("shape_fit", SHAPE_FIT_SQL),
    ("eta_c", ETA_C_SQL),
    ("fits", FITS_SQL),
]
