"""science §4 in SQL: the per-trial summary, computed with window functions over the step table.

Two views: ``trial_steps`` (one row per trial and step: Φ of the trial = the mean over its
contexts, phantom.outcomes) and ``trial_summary`` (one row per analysed trial record, including
trials with no usable step). The outcome words come from phantom.outcomes; the definitions of
flip step, flipped and the Φ-saturation stop are those of phantom.outcomes (a test runs both on
the same trajectories). Everything is set-based; nothing loops over trials in Python.
"""

from __future__ import annotations

from phantom.outcomes import Character, StopReason, TrialStatus

from phantom.analysis.registry import ViewContext, view

OK, DIVERGED, ERROR = (f"'{s}'" for s in (TrialStatus.OK, TrialStatus.DIVERGED, TrialStatus.ERROR))

# A row counts when the state it describes is finite: Φ, Δ and the loss (a diverged trial keeps
# its rows up to the divergence; the worker writes no others, but older results may hold one).
# NULL is not finite (pandas writes NaN as NULL): isfinite(NULL) is NULL, which WHERE drops but
# bool_and would skip, hence the coalesce to false.
_FINITE = "coalesce(isfinite(s.phi) AND isfinite(s.logit_gap) AND isfinite(s.loss), false)"


@view("trial_steps", reads=("steps", "trials"), snapshot=False)
def trial_steps(ctx: ViewContext) -> str:
    """One row per (trial, step): the contexts averaged; a step with any non-finite context
    carries no Φ (phantom.outcomes.trial_phi)."""
    # Single-context trials (the usual case) pass straight through; only trials with several
    # contexts pay for the GROUP BY that averages them.
    return f"""
WITH t AS (SELECT trial_id, coalesce(n_contexts, 1) AS n_contexts FROM trials)
SELECT s.trial_id, s.step, s.phi, s.signal AS S, s.drag AS D, s.logit_gap AS delta,
       s.burial AS B, s.efficiency AS eps, CAST(s.born_rank AS DOUBLE) AS born_rank,
       CAST(s.pool_size AS DOUBLE) AS pool_size, s.rank_g < s.rank_c AS rank_resolved,
       s.phi_ablated, s.dG_max, s.loss, s.h_dot_g, s.h_dot_c, s.gmax, 1 AS n_contexts
FROM steps s JOIN t USING (trial_id)
WHERE t.n_contexts <= 1 AND {_FINITE}
UNION ALL
SELECT s.trial_id, s.step, avg(s.phi), avg(s.signal), avg(s.drag), avg(s.logit_gap),
       avg(s.burial), avg(s.efficiency), avg(s.born_rank), avg(s.pool_size),
       -- rank_flip_step needs g above c in every context
       bool_and(s.rank_g < s.rank_c), avg(s.phi_ablated), max(s.dG_max), avg(s.loss),
       avg(s.h_dot_g), avg(s.h_dot_c), avg(s.gmax), count(*)
FROM steps s JOIN t USING (trial_id)
WHERE t.n_contexts > 1
GROUP BY s.trial_id, s.step
HAVING bool_and({_FINITE})
"""


@view("trial_summary", reads=("trial_steps", "trials"))
def trial_summary(ctx: ViewContext) -> str:
    """science §4 per trial: base values, flip step, R, character, failure mode, Φ-saturation stop,
    η_c outcome (``flipped``) and the η_c bracket."""
    s = ctx.settings
    w, tol = s.saturation_window, s.saturation_tol
    C = {c.name: f"'{c}'" for c in Character}
    return f"""
WITH moves AS (
    SELECT
        *,
        abs(phi - lag(phi) OVER w) AS dphi,
        abs(delta - lag(delta) OVER w) AS ddelta,
        max(phi) OVER win - min(phi) OVER win AS phi_range,
        min(step) OVER win AS win_start,
        count(*) OVER win AS win_n,
        -- the flip (phantom.outcomes.flip_step): the first step with Φ > 0, 0 if pre-resolved
        min(step) FILTER (WHERE phi > 0) OVER p AS first_positive
    FROM trial_steps
    WINDOW w AS (PARTITION BY trial_id ORDER BY step),
           win AS (PARTITION BY trial_id ORDER BY step ROWS BETWEEN {w - 1} PRECEDING AND CURRENT ROW),
           p AS (PARTITION BY trial_id)
),
marked AS (
    -- Φ-saturation (phantom.outcomes.PhiSaturation): the last w evaluations all lie at or
    -- after the flip and span max − min < tol
    SELECT *, win_n = {w} AND phi_range < {tol!r} AND win_start >= first_positive AS plateau
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
        arg_min_null(loss, step) AS loss0,
        arg_max_null(loss, step) AS loss_T,
        min(step) FILTER (WHERE phi > 0) AS flip_step,
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
        t.trial_id,
        -- records written before bracket_id existed: the bracket is the grid point without lr
        coalesce(t.bracket_id, concat_ws('|', t.model, t.protocol, t.sentence_id, t.seed,
                                         t.context_index, t.steps)) AS bracket_id,
        t.source, t.in_plan, t.model, t.protocol, t.sentence_id, t.context_index, t.target,
        t.competitor, t.lr, t.seed, t.steps AS budget, t.steps_done, t.status, t.stop_reason,
        t.n_contexts, t.gmax, t.gmax_head, t.tied, t.lr * t.gmax AS x, t.precision,
        -- stopped at the flip (η_c search): the outcome is valid, the shape was not measured
        coalesce(t.stop_reason = '{StopReason.FLIP}', false) AS at_flip,
        a.evaluations, a.last_step,
        a.phi0, a.S0, a.D0, a.delta0, a.B0, a.eps0, a.born_rank0, a.pool_size0,
        a.flip_step, a.rank_flip_step, a.R, a.jump_step, a.R_delta,
        a.phi_stop, a.born_rank_stop, a.rank_resolved_stop,
        a.phi_T, a.S_T, a.D_T, a.B_T, a.phi_ablated_T, a.born_rank_T, a.rank_resolved_T,
        a.loss0, a.loss_T, a.max_dG
    FROM trials t
    LEFT JOIN agg a USING (trial_id)
)
SELECT
    b.* EXCLUDE (at_flip, R, jump_step, R_delta, phi_stop, rank_resolved_T, born_rank_stop,
                 rank_resolved_stop),
    -- the η_c outcome (phantom.outcomes.flipped): a divergence lies above η_c; errors carry none
    CASE WHEN b.status = {ERROR} THEN NULL
         ELSE b.status = {DIVERGED} OR b.flip_step IS NOT NULL END AS flipped,
    CASE WHEN NOT b.at_flip THEN b.R END AS R,
    CASE WHEN NOT b.at_flip THEN b.jump_step END AS jump_step,
    CASE WHEN NOT b.at_flip THEN b.R_delta END AS R_delta,
    CASE WHEN NOT b.at_flip THEN b.R / nullif(b.R_delta, 0) END AS amplification,
    CASE
        WHEN b.status IN ({DIVERGED}, {ERROR}) THEN b.status
        WHEN b.evaluations IS NULL THEN NULL
        WHEN b.phi0 > 0 THEN {C['PRE_RESOLVED']}
        WHEN b.flip_step IS NULL THEN {C['UNRESOLVED']}
        WHEN b.at_flip THEN {C['STOPPED_AT_FLIP']}
        -- flipped by the first step: no shoulder to judge (R ≈ T by construction)
        WHEN b.flip_step = 1 THEN {C['IMMEDIATE']}
        WHEN b.R >= {s.catapult!r} THEN {C['CATAPULT']}
        WHEN b.R >= {s.catapult_like!r} THEN {C['CATAPULT_LIKE']}
        WHEN b.R >= {s.intermediate!r} THEN {C['INTERMEDIATE']}
        WHEN b.R >= {s.borderline!r} THEN {C['BORDERLINE']}
        ELSE {C['DRIFT']}
    END AS character,
    CASE
        WHEN b.status = {DIVERGED} THEN {DIVERGED}
        WHEN b.status = {OK} AND b.evaluations IS NOT NULL AND b.flip_step IS NULL THEN
            CASE WHEN b.D_T < b.D0 THEN 'structural' ELSE 'kinematic' END
    END AS failure_mode,
    b.phi_stop,
    1.0 - b.phi_stop / b.budget AS compute_saved,
    CASE WHEN b.phi_stop IS NOT NULL THEN
        b.born_rank_stop IS DISTINCT FROM b.born_rank_T
        OR b.rank_resolved_stop IS DISTINCT FROM b.rank_resolved_T
    END AS ranking_changed_after_stop
FROM base b
-- one row order every run (the CSV a user diffs between runs), grid order first
ORDER BY b.model, b.protocol, b.sentence_id, b.context_index, b.seed, b.lr, b.trial_id
"""
