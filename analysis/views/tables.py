"""science §5 cross-grid tables as SQL views: Spearman correlations, the paper's Tables 3
(causal isolation), 1 (stopping) and 5 (ablation), and the blind prediction (§7, Eq. 22).

Spearman ρ is computed in SQL (average ranks for ties, then Pearson on the ranks); only the
p-value calls the ``spearman_p`` function that :mod:`phantom.analysis.db` registers (SciPy's
t-distribution, exactly as ``scipy.stats.spearmanr``). Its confidence interval is Fisher's z
with the Bonett–Wright standard error, sqrt((1 + ρ²/2)/(n − 3)) (Bonett & Wright 2000,
Psychometrika 65:23), the normal quantile of the configured level entering as a literal.
"""

from __future__ import annotations

from statistics import NormalDist

from phantom.outcomes import CATAPULT_LIKE, Character, sql_list
from phantom.protocols import HEAD_ABLATION, Protocol

from phantom.analysis.registry import ViewContext, view

EMBEDDING_FROZEN = sql_list(p for p in Protocol if p.embedding_frozen)  # protocols that cannot move E


@view("correlation_points", reads=("reference_trials", "fits", "geometry"), snapshot=False, cache=True, internal=True)
def correlation_points(ctx: ViewContext) -> str:
    """(scope, model, protocol, x_name, y_name, x, y): the pairs each Spearman ρ ranks."""
    return CORRELATION_POINTS_SQL


CORRELATION_POINTS_SQL = """
SELECT 'model' AS scope, model, protocol, 'gmax' AS x_name, 'R' AS y_name, gmax AS x, R AS y
FROM reference_trials
UNION ALL
SELECT 'model', model, protocol, 'gmax', 'born_rank0', gmax, born_rank0 FROM reference_trials
UNION ALL
SELECT 'across', NULL, protocol, 'gmax', 'R', gmax, R FROM reference_trials
UNION ALL
SELECT 'across', NULL, protocol, 'gmax', 'born_rank0', gmax, born_rank0 FROM reference_trials
UNION ALL
SELECT 'across', NULL, f.protocol, 'B_FT', 'mean_g2', f.B_FT, g.mean_g2
FROM fits f JOIN geometry g USING (model)
UNION ALL
SELECT 'across', NULL, protocol, 'B_FT', 'H', B_FT, H FROM fits
"""

@view("correlations", reads=("correlation_points",))
def correlations(ctx: ViewContext) -> str:
    """Spearman ρ with its p-value and Fisher-z (Bonett–Wright) confidence interval."""
    q = NormalDist().inv_cdf((1 + ctx.settings.confidence) / 2)
    return CORRELATIONS_SQL.replace("{Q}", repr(q))


CORRELATIONS_SQL = """
WITH p AS (
    SELECT * FROM correlation_points
    WHERE x IS NOT NULL AND y IS NOT NULL AND isfinite(x) AND isfinite(y)
),
ranked AS (
    -- average ranks for ties: rank() is the lowest rank of a tie group of size n → + (n−1)/2
    SELECT *,
        rank() OVER (PARTITION BY scope, model, protocol, x_name, y_name ORDER BY x)
          + (count(*) OVER (PARTITION BY scope, model, protocol, x_name, y_name, x) - 1) / 2.0 AS rx,
        rank() OVER (PARTITION BY scope, model, protocol, x_name, y_name ORDER BY y)
          + (count(*) OVER (PARTITION BY scope, model, protocol, x_name, y_name, y) - 1) / 2.0 AS ry
    FROM p
),
rho AS (
    SELECT scope, model, protocol, x_name AS x, y_name AS y, count(*) AS n,
           -- ORDER BY: one summation order, so the same points give ρ to the last bit (a
           -- parallel corr() sums in whatever order its threads finish)
           CASE WHEN var_pop(rx) > 0 AND var_pop(ry) > 0 THEN corr(rx, ry ORDER BY rx, ry) END AS rho
    FROM ranked GROUP BY scope, model, protocol, x_name, y_name
)
SELECT *, spearman_p(rho, n) AS p_value,
       -- Fisher z ± q·SE (Bonett–Wright); undefined for n ≤ 3 and at |ρ| = 1 (to rounding)
       CASE WHEN n > 3 AND abs(rho) < 1 - 1e-12 THEN
           tanh(atanh(rho) - {Q} * sqrt((1 + rho * rho / 2) / (n - 3))) END AS rho_lo,
       CASE WHEN n > 3 AND abs(rho) < 1 - 1e-12 THEN
           tanh(atanh(rho) + {Q} * sqrt((1 + rho * rho / 2) / (n - 3))) END AS rho_hi
FROM rho
ORDER BY scope DESC, model, protocol, x, y
"""

@view("isolation", reads=("trial_summary", "reference_trials", "correlations"))
def isolation(ctx: ViewContext) -> str:
    """Table 3 per (model, protocol): catapult counts and Spearman(G_max, R) at the reference
    rate; max dG_max and ``embedding_frozen`` over *every* trial of the protocol."""
    return f"""
WITH frozen AS (
    -- every trial with step rows, at every rate and whatever its status: an embedding-frozen
    -- protocol must leave the geometry bit-identical everywhere, not only at η_ref
    SELECT model, protocol, count(max_dG) AS n_dG_trials, max(max_dG) AS max_dG
    FROM trial_summary GROUP BY model, protocol
),
ref AS (
    SELECT model, protocol,
           count(*) AS n_trials,
           count(DISTINCT sentence_id) AS n_sentences,
           count(*) FILTER (WHERE character = '{Character.CATAPULT}') AS n_catapult,
           count(*) FILTER (WHERE character IN ({sql_list(CATAPULT_LIKE)})) AS n_catapult_like,
           count(*) FILTER (WHERE character = '{Character.DRIFT}') AS n_drift
    FROM reference_trials GROUP BY model, protocol
)
SELECT f.model, f.protocol,
       coalesce(r.n_trials, 0) AS n_trials, coalesce(r.n_sentences, 0) AS n_sentences,
       coalesce(r.n_catapult, 0) AS n_catapult, coalesce(r.n_catapult_like, 0) AS n_catapult_like,
       coalesce(r.n_drift, 0) AS n_drift,
       c.rho AS rho_gmax_R, c.p_value AS p_gmax_R, c.rho_lo AS rho_gmax_R_lo, c.rho_hi AS rho_gmax_R_hi,
       f.max_dG, f.n_dG_trials,
       CASE WHEN f.protocol IN ({EMBEDDING_FROZEN}) AND f.n_dG_trials > 0 THEN f.max_dG = 0 END AS embedding_frozen
FROM frozen f
LEFT JOIN ref r USING (model, protocol)
LEFT JOIN correlations c
    ON c.scope = 'model' AND c.model = f.model AND c.protocol = f.protocol
   AND c.x = 'gmax' AND c.y = 'R'
ORDER BY f.model, f.protocol
"""


@view("stopping", reads=("reference_trials",))
def stopping(ctx: ViewContext) -> str:
    """Table 1: CE stop (the budget) against the Φ-saturation stop, at the reference rate."""
    return """
SELECT model, protocol, sentence_id, lr, seed, character, failure_mode,
       budget AS ce_stop, phi_stop, ranking_changed_after_stop, compute_saved
FROM reference_trials
ORDER BY model, protocol, sentence_id, lr, seed
"""


@view("ablation", reads=("reference_trials",))
def ablation(ctx: ViewContext) -> str:
    """Table 5: Φ at the last step against the competitor-ablated Φ, at the reference rate."""
    return """
SELECT model, protocol, sentence_id, lr, seed, gmax, eps0,
       phi_T AS phi, phi_ablated_T AS phi_ablated,
       phi_ablated_T / nullif(phi_T, 0) AS ratio
FROM reference_trials
ORDER BY model, protocol, sentence_id, lr, seed
"""

@view("blind_prediction", reads=("fits", "geometry", "geometry_sentences"))
def blind_prediction(ctx: ViewContext) -> str:
    """§7, Eq. 22, leave-one-out for every model: predicted from the others of its bulk class,
    or from all other models where its class has no other member with an H (``reference``)."""
    return BLIND_PREDICTION_SQL


# The one definition of the blind prediction: the report, `phantom analyze`'s summary and the
# claims read this view. Per (model, protocol): the reference models are the *other* models
# with an H under the same protocol; those of its own class when there is at least one
# ('class peers'), else all of them ('all others (no class peer)', also when the model has no
# bulk geometry and so no class). No other model with an H: no prediction, and `reason` says so.
CLASS_PEERS = "class peers"
ALL_OTHERS = "all others (no class peer)"

BLIND_PREDICTION_SQL = f"""
WITH inference_gbar AS (
    SELECT model, avg(gmax) AS gbar FROM geometry_sentences GROUP BY model
),
f AS (
    SELECT f.model, f.protocol, f.lr_ref, f.H, f.theta_resolve, f.gmax_resolved,
           g.class, coalesce(i.gbar, f.gmax_all) AS gbar
    FROM fits f LEFT JOIN geometry g USING (model) LEFT JOIN inference_gbar i USING (model)
),
others AS (
    -- every other model with an H under the same protocol, marked when it shares the class
    SELECT a.model, a.protocol, b.model AS ref_model, b.H AS ref_H,
           coalesce(b.class = a.class, false) AS same_class
    FROM f a JOIN f b
        ON b.protocol = a.protocol AND b.model <> a.model AND b.H IS NOT NULL
),
chosen AS (
    -- the class peers when there are any, else all the others
    SELECT *, bool_or(same_class) OVER (PARTITION BY model, protocol) AS has_peer
    FROM others
),
pooled AS (
    SELECT model, protocol, any_value(has_peer) AS has_peer,
           avg(ref_H) AS H_class,
           count(*) AS n_reference,
           string_agg(ref_model, ',' ORDER BY ref_model) AS reference_models
    FROM chosen
    WHERE same_class OR NOT has_peer
    GROUP BY model, protocol
),
pred AS (
    SELECT a.model, a.protocol, a.class, a.lr_ref, a.gbar,
           CASE WHEN p.has_peer THEN '{CLASS_PEERS}'
                WHEN p.n_reference > 0 THEN '{ALL_OTHERS}' END AS reference,
           coalesce(p.n_reference, 0) AS n_reference, p.reference_models, p.H_class,
           a.lr_ref / p.H_class AS eta_c_pred,
           a.lr_ref * a.gbar / p.H_class AS theta_pred,
           a.theta_resolve / a.gmax_resolved AS eta_c_measured,
           a.theta_resolve AS theta_measured
    FROM f a LEFT JOIN pooled p USING (model, protocol)
)
SELECT model, protocol, class, lr_ref, gbar, reference, n_reference, reference_models, H_class,
       eta_c_pred, theta_pred, eta_c_measured, theta_measured,
       abs(theta_pred - theta_measured) / theta_measured AS rel_error,
       nullif(concat_ws('; ',
           CASE WHEN n_reference = 0 THEN 'no other model has an H under this protocol' END,
           CASE WHEN n_reference > 0 AND lr_ref IS NULL THEN 'no η_ref for this protocol (--lr-ref)' END,
           CASE WHEN class IS NULL THEN 'no bulk geometry (phantom geometry): class unknown' END,
           CASE WHEN theta_measured IS NULL
                THEN 'no measured θ*_resolve to compare (no sentence with an η_c)' END
       ), '') AS reason
FROM pred
ORDER BY model, protocol
"""


# ----------------------------------------------------------------------------------------------
# The frozen-head ablation (the paper's Appendix A): LoRA with the LM head trainable (`lora`:
# standard LoRA freezes the input embedding, not an untied head) against the same LoRA with the
# head frozen (`lora-frozen-head`). On a tied model the two are the same training.

LORA, FROZEN_HEAD = (p.value for p in HEAD_ABLATION)

# the grid point both trials share (everything but the protocol)
_PAIR_KEY = ("model", "sentence_id", "lr", "seed", "context_index", "budget")


@view("frozen_head", reads=("trial_summary",))
def frozen_head(ctx: ViewContext) -> str:
    """Every `lora-frozen-head` trial beside its `lora` twin (same model, sentence, rate, seed,
    context, budget): outcome, flip step, character, R and final Φ of each (trial_summary's)."""
    on = " AND ".join(f"l.{k} IS NOT DISTINCT FROM f.{k}" for k in _PAIR_KEY)
    return f"""
SELECT f.model, f.tied, f.sentence_id, f.lr, f.seed, f.context_index, f.budget,
       f.gmax, f.gmax_head, f.gmax_head - f.gmax AS head_gap,
       f.phi0,
       l.status AS lora_status, f.status AS frozen_status,
       l.flipped AS lora_flipped, f.flipped AS frozen_flipped,
       l.flipped IS NOT DISTINCT FROM f.flipped AS same_outcome,
       l.flip_step AS lora_flip_step, f.flip_step AS frozen_flip_step,
       l.character AS lora_character, f.character AS frozen_character,
       l.R AS lora_R, f.R AS frozen_R,
       l.phi_T AS lora_phi_T, f.phi_T AS frozen_phi_T,
       f.phi_T - l.phi_T AS phi_T_diff,
       l.trial_id AS lora_trial_id, f.trial_id AS frozen_trial_id
FROM (SELECT * FROM trial_summary WHERE protocol = '{FROZEN_HEAD}') f
LEFT JOIN (SELECT * FROM trial_summary WHERE protocol = '{LORA}') l ON {on}
ORDER BY f.model, f.sentence_id, f.lr, f.seed, f.context_index, f.budget
"""


@view("frozen_head_models", reads=("trial_summary", "frozen_head"))
def frozen_head_models(ctx: ViewContext) -> str:
    """Per model: how far the LM head's G_gc is from the embedding's at step 0 (every sentence
    it has trials of), and the lora / lora-frozen-head outcome counts over the pairs."""
    return f"""
WITH sentence_gap AS (
    -- G_gc at step 0 is the base model's: one value per (model, sentence, context)
    SELECT model, sentence_id, context_index, any_value(tied) AS tied,
           avg(gmax) AS gmax, avg(gmax_head) AS gmax_head
    FROM trial_summary WHERE gmax IS NOT NULL AND gmax_head IS NOT NULL
    GROUP BY model, sentence_id, context_index
),
heads AS (
    SELECT model, bool_and(tied) AS tied, count(DISTINCT sentence_id) AS n_sentences,
           avg(gmax_head - gmax) AS head_gap_mean, min(gmax_head - gmax) AS head_gap_min,
           max(gmax_head - gmax) AS head_gap_max, max(abs(gmax_head - gmax)) AS head_gap_max_abs
    FROM sentence_gap GROUP BY model
),
pairs AS (
    SELECT model,
           count(*) AS n_frozen_trials,
           count(lora_trial_id) AS n_pairs,
           count(*) FILTER (WHERE lora_flipped AND frozen_flipped) AS both_flip,
           count(*) FILTER (WHERE lora_flipped AND NOT frozen_flipped) AS only_lora_flips,
           count(*) FILTER (WHERE NOT lora_flipped AND frozen_flipped) AS only_frozen_flips,
           count(*) FILTER (WHERE NOT lora_flipped AND NOT frozen_flipped) AS neither_flips,
           count(*) FILTER (WHERE lora_character = frozen_character) AS same_character,
           avg(frozen_flip_step - lora_flip_step) AS flip_step_diff_mean,
           avg(phi_T_diff) AS phi_T_diff_mean
    FROM frozen_head GROUP BY model
)
SELECT model, h.tied, h.n_sentences, h.head_gap_mean, h.head_gap_min, h.head_gap_max,
       h.head_gap_max_abs,
       coalesce(p.n_frozen_trials, 0) AS n_frozen_trials, coalesce(p.n_pairs, 0) AS n_pairs,
       p.both_flip, p.only_lora_flips, p.only_frozen_flips, p.neither_flips, p.same_character,
       p.flip_step_diff_mean, p.phi_T_diff_mean
FROM heads h FULL JOIN pairs p USING (model)
ORDER BY model
"""
