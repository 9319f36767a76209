"""science §5 fits across the grid, as SQL views over ``trial_summary``.

- ``reference_trials``: ok trials at the rate nearest the protocol's η_ref (per model,
  protocol, sentence) whose shape was measured; the paper's tables are at the standard rate.
- ``shape_points``: the θ*_shape points (Eq. 12, 21) per sentence and x = η·G_max: trials
  whose shape was judged (phantom.outcomes.SHAPED), catapult-like or not.
- ``eta_c``: one row per η_c bracket (all rates of one grid point): lr_lo, lr_hi, η_c, status,
  θ = η_c·G_max and H = η_ref/η_c (Table 6).
- ``eta_c_sentence``: the brackets of a sentence (seeds, contexts run separately) averaged.
- ``sentence_burial``: per sentence, the burial depth after fine-tuning at the reference rate.
- ``fits``: one row per (model, protocol) and its ``precision`` (the label of its trials,
  phantom.analysis.views.precision; one unless --mix-precisions): θ*_shape with its errors and separating interval,
  θ*_resolve, H (Eq. 17), B_FT, each with a bootstrap interval over sentences
  (phantom.analysis.bootstrap computes every fit once per resample; replicate 0 is the data itself).
"""

from __future__ import annotations

from phantom.outcomes import CATAPULT_LIKE, SHAPED, BracketStatus, Character, StopReason, TrialStatus, sql_list

from phantom.analysis.registry import ViewContext, view
from phantom.analysis.schema import labels_sql

OK, DIVERGED, ERROR = (f"'{s}'" for s in (TrialStatus.OK, TrialStatus.DIVERGED, TrialStatus.ERROR))


# every fit is guarded by `precisions`: its check refuses fits that would mix precisions
# (unless asked); the views on trial_summary that start a fit name it
GUARD = ("precisions",)


@view("reference_trials", reads=("trial_summary", "lr_ref"), guards=GUARD)
def reference_trials(ctx: ViewContext) -> str:
    """Ok trials at the rate nearest η_ref, per (model, protocol, sentence), all seeds; those
    stopped at their flip are left out after the rate is chosen (no final state to tabulate), so
    a sentence whose η_ref trials stopped at the flip has none: a far rate does not stand in."""
    return f"""
SELECT ts.*, r.lr_ref
FROM trial_summary ts LEFT JOIN lr_ref r USING (protocol)
WHERE ts.status = {OK}
-- nearest in log-rate; a protocol without η_ref keeps every rate (all distances are NULL)
QUALIFY rank() OVER (
    PARTITION BY ts.model, ts.protocol, ts.sentence_id
    ORDER BY round(abs(ln(ts.lr / r.lr_ref)), 9) NULLS FIRST
) = 1
-- a trial stopped at its flip has no final state to tabulate (a pre-resolved one stops at step 0)
AND ts.stop_reason IS DISTINCT FROM '{StopReason.FLIP}'
ORDER BY ts.model, ts.protocol, ts.sentence_id, ts.context_index, ts.seed, ts.lr, ts.trial_id
"""


@view("shape_points", reads=("trial_summary",), guards=GUARD, snapshot=False, cache=True, internal=True)
def shape_points(ctx: ViewContext) -> str:
    """θ*_shape data: per (model, protocol, sentence, x) the catapult-like (pos) and other
    (neg) trials among those whose shape was judged."""
    return f"""
SELECT model, protocol, sentence_id, x,
       count(*) FILTER (WHERE character IN ({sql_list(CATAPULT_LIKE)})) AS pos,
       count(*) FILTER (WHERE character NOT IN ({sql_list(CATAPULT_LIKE)})) AS neg
FROM trial_summary
-- flipped during training after a shoulder: not pre-resolved, unresolved, immediate (flip at
-- step 1), stopped at the flip, diverged or errored
WHERE character IN ({sql_list(SHAPED)}) AND x IS NOT NULL AND isfinite(x)
GROUP BY model, protocol, sentence_id, x
"""


@view("eta_c", reads=("trial_summary", "lr_ref"), guards=GUARD)
def eta_c(ctx: ViewContext) -> str:
    """One row per η_c bracket (phantom.outcomes.eta_c): lo, hi, η_c, status, θ, H."""
    B = {b.name: f"'{b}'" for b in BracketStatus}
    return f"""
WITH per AS (
    SELECT bracket_id,
           any_value(model) AS model, any_value(protocol) AS protocol,
           any_value(sentence_id) AS sentence_id, any_value(seed) AS seed,
           any_value(context_index) AS context_index, any_value(budget) AS budget,
           {labels_sql()} AS precision,
           avg(gmax ORDER BY gmax) AS gmax,
           count(*) AS n_trials,
           count(flipped) AS n_outcomes,
           count(*) FILTER (WHERE status = {ERROR}) AS n_errors,
           count(*) FILTER (WHERE status = {DIVERGED}) AS n_diverged,
           count(DISTINCT lr) FILTER (WHERE flipped IS NOT NULL) AS n_rates,
           coalesce(bool_or(phi0 > 0), false) AS pre_resolved,
           -- lo: the largest rate that does not flip; hi: the smallest that does
           max(lr) FILTER (WHERE NOT flipped) AS lr_lo,
           min(lr) FILTER (WHERE flipped) AS lr_hi
    FROM trial_summary
    GROUP BY bracket_id
)
SELECT per.* EXCLUDE (pre_resolved),
       coalesce(lr_lo >= lr_hi, false) AS non_monotone,
       CASE
           WHEN n_outcomes = 0 THEN {B['NO_OUTCOME']}
           WHEN pre_resolved THEN {B['PRE_RESOLVED']}
           WHEN lr_lo IS NULL THEN {B['ALL_FLIP']}
           WHEN lr_hi IS NULL THEN {B['NONE_FLIP']}
           WHEN lr_lo >= lr_hi THEN {B['NON_MONOTONE']}
           ELSE {B['FOUND']}
       END AS status,
       -- geometric mean (log-spaced grids); NULL when all or none flip (a pre-resolved
       -- bracket: all); still the mean of the two rates when non-monotone (flagged)
       sqrt(lr_lo * lr_hi) AS eta_c,
       sqrt(lr_lo * lr_hi) * gmax AS theta,
       r.lr_ref,
       r.lr_ref / sqrt(lr_lo * lr_hi) AS H
FROM per LEFT JOIN lr_ref r USING (protocol)
ORDER BY model, protocol, sentence_id, seed, context_index, bracket_id
"""


@view("eta_c_sentence", reads=("eta_c",))
def eta_c_sentence(ctx: ViewContext) -> str:
    """Per sentence: θ(s) = mean over its brackets with an η_c of η_c·G_max; H(s) = η_ref·G_max/θ(s)."""
    return f"""
SELECT model, protocol, sentence_id,
       {labels_sql(where="precision IS NOT NULL")} AS precision,
       count(*) AS n_brackets,
       count(eta_c) AS n_eta_c,
       count(*) FILTER (WHERE non_monotone) AS n_non_monotone,
       avg(gmax ORDER BY gmax) AS gmax,
       avg(theta ORDER BY theta) AS theta,
       avg(theta ORDER BY theta) / avg(gmax ORDER BY gmax) FILTER (WHERE eta_c IS NOT NULL) AS eta_c,
       any_value(lr_ref) AS lr_ref,
       any_value(lr_ref) * avg(gmax ORDER BY gmax) FILTER (WHERE eta_c IS NOT NULL) / avg(theta ORDER BY theta) AS H
FROM eta_c
GROUP BY model, protocol, sentence_id
ORDER BY model, protocol, sentence_id
"""


@view("sentence_burial", reads=("reference_trials",), snapshot=False, cache=True, internal=True)
def sentence_burial(ctx: ViewContext) -> str:
    """B at the last step per sentence, mean over its reference trials (seeds, contexts)."""
    return """
-- avg(x ORDER BY x): one summation order, so the same trials give B_FT (and the fits, the
-- bootstrap's intervals) to the last bit; a parallel avg adds in whatever order threads finish
SELECT model, protocol, sentence_id, avg(B_T ORDER BY B_T) AS B_FT, min(lr) AS lr_min, max(lr) AS lr_max
FROM reference_trials
GROUP BY model, protocol, sentence_id
"""


def shape_fit_sql(points: str) -> str:
    """θ*_shape (Eq. 12, 21) per (model, protocol, r) from ``points`` (model, protocol, r, x,
    pos, neg: catapult-like and other trials at each distinct x). Rule: catapult-like iff
    x > θ; among the cuts with fewest errors the widest bounded gap in log x wins; θ* is its
    geometric midpoint, NULL when only an unbounded cut is optimal."""
    return f"""
WITH pts AS ({points}),
cum AS (
    SELECT model, protocol, r, x AS lo, lead(x) OVER w AS hi,
           sum(pos) OVER (w ROWS UNBOUNDED PRECEDING) AS pos_le,
           sum(neg) OVER (w ROWS UNBOUNDED PRECEDING) AS neg_le,
           sum(neg) OVER g AS neg_tot,
           sum(pos + neg) OVER g AS n
    FROM pts
    WINDOW w AS (PARTITION BY model, protocol, r ORDER BY x),
           g AS (PARTITION BY model, protocol, r)
),
gaps AS (
    -- the gap above each distinct x (predict catapult-like iff x > θ) ...
    SELECT model, protocol, r, lo, hi, pos_le + neg_tot - neg_le AS errors, n FROM cum
    UNION ALL
    -- ... and the gap below the smallest x (everything predicted catapult-like)
    SELECT model, protocol, r, NULL, min(lo), any_value(neg_tot), any_value(n)
    FROM cum GROUP BY model, protocol, r
),
ranked AS (
    SELECT *, row_number() OVER (
        PARTITION BY model, protocol, r
        ORDER BY errors,
                 (lo IS NULL OR hi IS NULL),
                 CASE WHEN lo > 0 THEN ln(hi / lo) ELSE hi - lo END DESC,
                 lo
    ) AS k
    FROM gaps
)
SELECT model, protocol, r,
       CAST(n AS BIGINT) AS n_shape,
       CAST(errors AS BIGINT) AS shape_errors,
       lo AS shape_lo,
       hi AS shape_hi,
       CASE WHEN lo IS NULL OR hi IS NULL THEN NULL
            WHEN lo > 0 THEN sqrt(lo * hi)
            ELSE (lo + hi) / 2 END AS theta_shape
FROM ranked WHERE k = 1
"""


@view("shape_fit", reads=("fit_replicates",))
def shape_fit(ctx: ViewContext) -> str:
    """θ*_shape per (model, protocol): the fit on the data (replicate 0)."""
    return """
SELECT model, protocol, n_shape, shape_errors, shape_lo, shape_hi, theta_shape
FROM fit_replicates WHERE r = 0 AND n_shape IS NOT NULL
ORDER BY model, protocol
"""


@view("fits", reads=("trial_summary", "eta_c", "fit_replicates", "resamples", "lr_ref"))
def fits(ctx: ViewContext) -> str:
    """One row per (model, protocol): counts, θ*_shape, θ*_resolve, H, B_FT and their
    bootstrap percentile intervals over sentences (science §5.6; phantom.analysis.bootstrap)."""
    level = ctx.settings.confidence
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2

    def ci(col: str) -> str:
        return (f"quantile_cont({col}, {lo_q!r}) AS {col}_ci_lo, "
                f"quantile_cont({col}, {hi_q!r}) AS {col}_ci_hi")

    return f"""
WITH groups AS (
    SELECT model, protocol,
           -- the precision of the fit: one label, or several joined by ' + ' (--mix-precisions)
           {labels_sql()} AS precision,
           count(*) AS n_trials,
           count(*) FILTER (WHERE status = {OK}) AS n_ok,
           count(*) FILTER (WHERE status = {DIVERGED}) AS n_diverged,
           count(*) FILTER (WHERE status = {ERROR}) AS n_error,
           count(*) FILTER (WHERE character = '{Character.IMMEDIATE}') AS n_immediate,
           count(*) FILTER (WHERE character = '{Character.STOPPED_AT_FLIP}') AS n_stopped_at_flip,
           count(DISTINCT sentence_id) AS n_sentences,
           count(DISTINCT lr) AS n_rates
    FROM trial_summary GROUP BY model, protocol
),
brackets AS (
    SELECT model, protocol,
           count(*) AS n_brackets,
           count(eta_c) AS n_eta_c,
           count(*) FILTER (WHERE non_monotone) AS n_non_monotone,
           count(DISTINCT sentence_id) FILTER (WHERE eta_c IS NOT NULL) AS n_sentences_eta_c
    FROM eta_c GROUP BY model, protocol
),
point AS (SELECT * FROM fit_replicates WHERE r = 0),
resampled AS (SELECT model, protocol, count(*) AS k FROM resamples WHERE r = 0 GROUP BY ALL),
ci AS (
    -- percentile intervals over the replicates where the statistic is defined; none for a
    -- group with fewer than two sentences (every resample would be the data itself)
    SELECT f.model, f.protocol, count(*) AS n_boot,
           -- a resample can leave θ*_shape without a bounded cut: how often it had one
           count(f.theta_shape) / count(*) AS theta_shape_boot_defined,
           {ci('theta_shape')}, {ci('theta_resolve')}, {ci('H')}, {ci('B_FT')}
    FROM fit_replicates f JOIN resampled s USING (model, protocol)
    WHERE f.r > 0 AND s.k >= 2
    GROUP BY f.model, f.protocol
)
SELECT g.*,
       p.n_shape, p.shape_errors, p.shape_lo, p.shape_hi, p.theta_shape,
       c.theta_shape_ci_lo, c.theta_shape_ci_hi, c.theta_shape_boot_defined,
       b.n_brackets, b.n_eta_c, b.n_sentences_eta_c, b.n_non_monotone,
       p.theta_resolve, c.theta_resolve_ci_lo, c.theta_resolve_ci_hi,
       p.theta_min, p.theta_max, p.gmax_resolved, p.gmax_all,
       l.lr_ref,
       p.H, c.H_ci_lo, c.H_ci_hi, p.H_min, p.H_max,
       p.B_FT, c.B_FT_ci_lo, c.B_FT_ci_hi, p.ref_lr_min, p.ref_lr_max,
       coalesce(c.n_boot, 0) AS n_boot
FROM groups g
LEFT JOIN brackets b USING (model, protocol)
LEFT JOIN point p USING (model, protocol)
LEFT JOIN ci c USING (model, protocol)
LEFT JOIN lr_ref l USING (protocol)
ORDER BY g.model, g.protocol
"""
