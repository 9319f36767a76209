"""SPEC §4 in SQL: the per-trial summary, computed with window functions over the step table.

Two views: ``trial_steps`` (one row per trial and step: the contexts of a multi-context trial
averaged, non-finite rows dropped) and ``trial_summary`` (one row per trial record, including
trials with no usable step). Everything is set-based; nothing loops over trials in Python.
"""

from __future__ import annotations

from analysis.settings import AnalysisSettings

# Labels of SPEC §4 "character"; the last two come from the trial status, not from R.
CHARACTERS = (
    "pre-resolved",
    "unresolved",
    "catapult",
    "catapult-like",
    "intermediate",
    "borderline",
    "drift",
    "diverged",
    "error",
)
CATAPULT_LIKE = ("catapult", "catapult-like")

_FINITE = "isfinite(s.phi) AND isfinite(s.logit_gap) AND coalesce(isfinite(s.loss), true)"

# Single-context trials (the usual case) pass straight through; only trials with several
# contexts pay for the GROUP BY that averages them.
TRIAL_STEPS_SQL = f"""
CREATE OR REPLACE VIEW trial_steps AS
WITH t AS (SELECT trial_id, coalesce(n_contexts, 1) AS n_contexts FROM trials)
SELECT s.trial_id, s.step, s.phi, s.signal AS S, s.drag AS D, s.logit_gap AS delta,
       s.burial AS B, s.efficiency AS eps, CAST(s.born_rank AS DOUBLE) AS born_rank,
       CAST(s.pool_size AS DOUBLE) AS pool_size, s.rank_g < s.rank_c AS rank_resolved,
       s.phi_ablated, s.dG_max, s.loss, s.h_dot_g, s.h_dot_c, s.gmax, 1 AS n_contexts
FROM steps s JOIN t USING (trial_id)
-- a diverged trial keeps its rows up to the divergence; a non-finite row carries no Φ
WHERE t.n_contexts <= 1 AND {_FINITE}
UNION ALL
SELECT s.trial_id, s.step, avg(s.phi), avg(s.signal), avg(s.drag), avg(s.logit_gap),
       avg(s.burial), avg(s.efficiency), avg(s.born_rank), avg(s.pool_size),
       bool_and(s.rank_g < s.rank_c), avg(s.phi_ablated), max(s.dG_max), avg(s.loss),
       avg(s.h_dot_g), avg(s.h_dot_c), avg(s.gmax), count(*)
FROM steps s JOIN t USING (trial_id)
WHERE t.n_contexts > 1 AND {_FINITE}
GROUP BY s.trial_id, s.step
"""


def trial_summary_sql(s: AnalysisSettings) -> str:
    """The ``trial_summary`` view (SPEC §4) with the thresholds of ``s`` as literals."""
    w, tol = s.saturation_window, s.saturation_tol
    return f"""
CREATE OR REPLACE VIEW trial_summary AS
WITH moves AS (
    SELECT
        *,
        abs(phi - lag(phi) OVER w) AS dphi,
        abs(delta - lag(delta) OVER w) AS ddelta,
        max(phi) OVER win - min(phi) OVER win AS phi_range,
        min(step) OVER win AS win_start,
        count(*) OVER win AS win_n,
        first_value(phi) OVER w AS phi_first,
        min(step) FILTER (WHERE phi > 0) OVER p AS first_positive
    FROM trial_steps
    WINDOW w AS (PARTITION BY trial_id ORDER BY step),
           win AS (PARTITION BY trial_id ORDER BY step ROWS BETWEEN {w - 1} PRECEDING AND CURRENT ROW),
           p AS (PARTITION BY trial_id)
),
marked AS (
    SELECT *,
        -- Φ-saturation: the last w evaluations all lie at or after the flip and span < tol
        win_n = {w} AND phi_range < {tol!r}
            AND win_start >= CASE WHEN phi_first > 0 THEN 0 ELSE first_positive END AS plateau
    FROM moves
),
agg AS (
    SELECT
        trial_id,
        count(*) AS evaluations,
        max(step) AS last_step,
        arg_min_null(phi, step) AS phi0,
        arg_min_null(S, step) AS S0,
        arg_min_null(D, step) AS D0,
        arg_min_null(delta, step) AS delta0,
        arg_min_null(B, step) AS B0,
        arg_min_null(eps, step) AS eps0,
        arg_min_null(born_rank, step) AS born_rank0,
        arg_min_null(pool_size, step) AS pool_size0,
        arg_max_null(phi, step) AS phi_T,
        arg_max_null(S, step) AS S_T,
        arg_max_null(D, step) AS D_T,
        arg_max_null(B, step) AS B_T,
        arg_max_null(phi_ablated, step) AS phi_ablated_T,
        arg_max_null(born_rank, step) AS born_rank_T,
        arg_max_null(rank_resolved, step) AS rank_resolved_T,
        arg_max_null(loss, step) AS loss_T,
        CASE WHEN arg_min_null(phi, step) > 0 THEN 0 ELSE min(first_positive) END AS flip_step,
        min(step) FILTER (WHERE rank_resolved) AS rank_flip_step,
        max(dphi) / nullif(avg(dphi), 0) AS R,
        -- argmax of |ΔΦ|; ties go to the earliest step
        arg_max(step, (dphi, -step)) FILTER (WHERE dphi IS NOT NULL) AS jump_step,
        max(ddelta) / nullif(avg(ddelta), 0) AS R_delta,
        max(dG_max) AS max_dG,
        min(step) FILTER (WHERE plateau) AS phi_stop,
        arg_min_null(born_rank, step) FILTER (WHERE plateau) AS born_rank_stop,
        arg_min_null(rank_resolved, step) FILTER (WHERE plateau) AS rank_resolved_stop
    FROM marked
    GROUP BY trial_id
),
base AS (
    SELECT
        t.trial_id, t.model, t.protocol, t.sentence_id, t.target, t.competitor, t.lr, t.seed,
        t.steps AS budget, t.steps_done, t.status, t.stop_reason, t.n_contexts,
        t.gmax, t.gmax_head, t.tied, t.lr * t.gmax AS x,
        a.evaluations, a.last_step,
        a.phi0, a.S0, a.D0, a.delta0, a.B0, a.eps0, a.born_rank0, a.pool_size0,
        a.flip_step, a.rank_flip_step,
        a.R, a.jump_step, a.R_delta, a.R / nullif(a.R_delta, 0) AS amplification,
        a.phi_stop, a.born_rank_stop, a.rank_resolved_stop,
        a.phi_T, a.S_T, a.D_T, a.B_T, a.phi_ablated_T, a.born_rank_T, a.rank_resolved_T,
        a.loss_T, a.max_dG
    FROM trials t
    LEFT JOIN agg a USING (trial_id)
)
SELECT
    b.* EXCLUDE (phi_stop, rank_resolved_T, born_rank_stop, rank_resolved_stop),
    CASE
        WHEN b.status IN ('diverged', 'error') THEN b.status
        WHEN b.evaluations IS NULL THEN NULL
        WHEN b.phi0 > 0 THEN 'pre-resolved'
        WHEN b.flip_step IS NULL THEN 'unresolved'
        WHEN b.R >= {s.catapult!r} THEN 'catapult'
        WHEN b.R >= {s.catapult_like!r} THEN 'catapult-like'
        WHEN b.R >= {s.intermediate!r} THEN 'intermediate'
        WHEN b.R >= {s.borderline!r} THEN 'borderline'
        ELSE 'drift'
    END AS character,
    CASE
        WHEN b.status = 'diverged' THEN 'diverged'
        WHEN b.status = 'ok' AND b.evaluations IS NOT NULL AND b.flip_step IS NULL THEN
            CASE WHEN b.D_T < b.D0 THEN 'structural' ELSE 'kinematic' END
    END AS failure_mode,
    b.phi_stop,
    1.0 - b.phi_stop / b.budget AS compute_saved,
    CASE WHEN b.phi_stop IS NOT NULL THEN
        b.born_rank_stop IS DISTINCT FROM b.born_rank_T
        OR b.rank_resolved_stop IS DISTINCT FROM b.rank_resolved_T
    END AS ranking_changed_after_stop
FROM base b
"""
