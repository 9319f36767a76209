"""SPEC §5 cross-grid tables as SQL views: Spearman correlations, the paper's Tables 3
(causal isolation), 1 (stopping) and 5 (ablation), and the blind prediction (§7, Eq. 22).

Spearman ρ is computed in SQL (average ranks for ties, then Pearson on the ranks); only the
p-value calls the ``spearman_p`` function that :mod:`analysis.db` registers (SciPy's
t-distribution, exactly as ``scipy.stats.spearmanr``).
"""

from __future__ import annotations

from analysis.summary import CATAPULT_LIKE

_LIKE = ", ".join(f"'{c}'" for c in CATAPULT_LIKE)

CORRELATION_POINTS_SQL = """
CREATE OR REPLACE VIEW correlation_points AS
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

CORRELATIONS_SQL = """
CREATE OR REPLACE VIEW correlations AS
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
SELECT *, spearman_p(rho, n) AS p_value FROM rho
ORDER BY scope DESC, model, protocol, x, y
"""

ISOLATION_SQL = f"""
CREATE OR REPLACE VIEW isolation AS
SELECT t.model, t.protocol,
       count(*) AS n_trials,
       count(DISTINCT t.sentence_id) AS n_sentences,
       count(*) FILTER (WHERE t.character = 'catapult') AS n_catapult,
       count(*) FILTER (WHERE t.character IN ({_LIKE})) AS n_catapult_like,
       count(*) FILTER (WHERE t.character = 'drift') AS n_drift,
       any_value(c.rho) AS rho_gmax_R,
       any_value(c.p_value) AS p_gmax_R,
       max(t.max_dG) AS max_dG,
       -- Table 3's check: an embedding-frozen protocol must leave the geometry bit-identical
       CASE WHEN t.protocol <> 'full' THEN coalesce(max(t.max_dG), 0) = 0 END AS embedding_frozen
FROM reference_trials t
LEFT JOIN correlations c
    ON c.scope = 'model' AND c.model = t.model AND c.protocol = t.protocol
   AND c.x = 'gmax' AND c.y = 'R'
GROUP BY t.model, t.protocol
ORDER BY t.model, t.protocol
"""

STOPPING_SQL = """
CREATE OR REPLACE VIEW stopping AS
SELECT model, protocol, sentence_id, lr, seed, character, failure_mode,
       budget AS ce_stop, phi_stop, ranking_changed_after_stop, compute_saved
FROM reference_trials
ORDER BY model, protocol, sentence_id, lr, seed
"""

ABLATION_SQL = """
CREATE OR REPLACE VIEW ablation AS
SELECT model, protocol, sentence_id, lr, seed, gmax, eps0,
       phi_T AS phi, phi_ablated_T AS phi_ablated,
       phi_ablated_T / nullif(phi_T, 0) AS ratio
FROM reference_trials
ORDER BY model, protocol, sentence_id, lr, seed
"""

BLIND_PREDICTION_SQL = """
CREATE OR REPLACE VIEW blind_prediction AS
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

VIEWS = [
    ("correlation_points", CORRELATION_POINTS_SQL),
    ("correlations", CORRELATIONS_SQL),
    ("isolation", ISOLATION_SQL),
    ("stopping", STOPPING_SQL),
    ("ablation", ABLATION_SQL),
    ("blind_prediction", BLIND_PREDICTION_SQL),
]
