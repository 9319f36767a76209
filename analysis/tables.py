"""SPEC §5 cross-grid tables as SQL views: Spearman correlations, the paper's Tables 3
(causal isolation), 1 (stopping) and 5 (ablation), and the blind prediction (§7, Eq. 22).

Spearman ρ is computed in SQL (average ranks for ties, then Pearson on the ranks); only the
p-value calls the ``spearman_p`` function that :mod:`analysis.db` registers (SciPy's
t-distribution, exactly as ``scipy.stats.spearmanr``). Its confidence interval is Fisher's z
with the Bonett–Wright standard error, sqrt((1 + ρ²/2)/(n − 3)) (Bonett & Wright 2000,
Psychometrika 65:23), the normal quantile of the configured level entering as a literal.
"""

from __future__ import annotations

from statistics import NormalDist

from phantom.config import PROTOCOLS
from phantom.outcomes import CATAPULT_LIKE, Character, sql_list

from analysis.registry import ViewContext, view

FULL = PROTOCOLS[0]  # full fine-tuning: the one protocol that may move the embedding


@view("correlation_points", reads=("reference_trials", "fits", "geometry"), snapshot=False, cache=True)
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
           CASE WHEN var_pop(rx) > 0 AND var_pop(ry) > 0 THEN corr(rx, ry) END AS rho
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
       CASE WHEN f.protocol <> '{FULL}' AND f.n_dG_trials > 0 THEN f.max_dG = 0 END AS embedding_frozen
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
    """§7, Eq. 22: each model predicted from the others of its bulk class."""
    return BLIND_PREDICTION_SQL


BLIND_PREDICTION_SQL = """
WITH inference_gbar AS (
    SELECT model, avg(gmax) AS gbar FROM geometry_sentences GROUP BY model
),
f AS (
    SELECT f.model, f.protocol, f.lr_ref, f.H, f.theta_resolve, f.gmax_resolved,
           g.class, coalesce(i.gbar, f.gmax_all) AS gbar
    FROM fits f JOIN geometry g USING (model) LEFT JOIN inference_gbar i USING (model)
),
pooled AS (
    SELECT a.model, a.protocol, any_value(a.class) AS class, any_value(a.lr_ref) AS lr_ref,
           any_value(a.gbar) AS gbar,
           avg(b.H) AS H_class,
           count(b.model) AS n_reference,
           string_agg(b.model, ',' ORDER BY b.model) AS reference_models,
           any_value(a.theta_resolve) AS theta_measured,
           any_value(a.theta_resolve / a.gmax_resolved) AS eta_c_measured
    FROM f a
    LEFT JOIN f b
        ON b.protocol = a.protocol AND b.class = a.class AND b.model <> a.model
       AND b.H IS NOT NULL
    GROUP BY a.model, a.protocol
)
SELECT model, protocol, class, lr_ref, gbar, n_reference, reference_models, H_class,
       lr_ref / H_class AS eta_c_pred,
       lr_ref * gbar / H_class AS theta_pred,
       eta_c_measured,
       theta_measured,
       abs(lr_ref * gbar / H_class - theta_measured) / theta_measured AS rel_error
FROM pooled
ORDER BY model, protocol
"""
