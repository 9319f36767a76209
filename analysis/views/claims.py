"""The paper's claims, checked on this grid: the ``claims`` view.

One row per claim: ``claim`` (what the paper says), ``paper`` (its figure, where the text gives
one), ``measured`` (this grid's figure, per model/protocol where the claim is per architecture),
``verdict`` ∈ holds | fails | untestable, and ``why``. Every figure comes from the views that
define it (trial_summary's character, flipped, failure mode and Φ-saturation stop; fits;
correlations; geometry; blind_prediction); nothing here redefines a quantity.

A claim is judged per group (model/protocol, or model, or the whole grid) and the groups are
combined by the claim's rule:

- ``any``: an existence claim ("catapult-like jumps occur under full FT"): holds when some group
  shows it; fails when a group could show it and none does; untestable when no group could.
- ``all``: a claim about every architecture ("one line separates the shapes"): fails when a
  group contradicts it; holds when some group supports it and none contradicts it.

A group may also *refute* a claim whatever the rule (the embedding moved under LoRA).

The tolerances where the paper gives a figure and this grid can only approach it (CV of H_FT,
the blind-prediction error, the ablation) are stated in ``why`` and in docs/reference/claims.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from phantom.outcomes import CATAPULT_LIKE, SHAPED, Character, TrialStatus, sql_list
from phantom.protocols import HEAD_ABLATION, Protocol

from phantom.analysis.registry import ViewContext, view

OK = f"'{TrialStatus.OK}'"
LORA = f"({sql_list(p for p in Protocol if p.is_lora)})"  # LoRA adapters over a frozen embedding
FULL = f"'{Protocol.FULL}'"
STANDARD_LORA, FROZEN_HEAD = (f"'{p}'" for p in HEAD_ABLATION)  # the paper's LoRA; the ablation's
SHOULDER = f"character IN ({sql_list(SHAPED)})"  # flipped after step 1: the shape was judged
CAT_LIKE = f"character IN ({sql_list(CATAPULT_LIKE)})"

# tolerances (docs/reference/claims.md)
H_FT_CV_MAX = 0.20  # the paper's CV is 9.3%; a spread of at most 20% counts as "consistent"
BLIND_REL_MAX = 0.10  # the paper's error is 2.1%; within 10% holds
ABLATION_MAX = 0.05  # the paper's largest change is 0.022 (remorse, Table 5)
P_MAX = 0.05
CLASS_G2 = {"A": (0.045, 0.097), "B": (0.002, 0.003)}
CLASS_H_LORA = {"A": (0.9, 2.8), "B": (4.2, 15.9)}


@dataclass(frozen=True)
class Claim:
    ord: int
    id: str
    claim: str
    paper: str
    groups: str  # SELECT: one row per group, a text column ``grp`` and the fields below read
    measured: str  # per group: text
    verdict: str  # per group: 'holds' | 'fails' | 'untestable'
    why: str  # per group: text
    combine: str = "all"  # any | all
    none: str = "nothing in this grid to judge it on"  # why, when no group has data

    def sql(self) -> str:
        # a group's 'refutes' fails the claim under either rule (e.g. the embedding moved)
        if self.combine == "any":
            rule = """CASE WHEN bool_or(v = 'refutes') THEN 'fails' WHEN bool_or(v = 'holds') THEN 'holds'
                           WHEN bool_or(v = 'fails') THEN 'fails' ELSE 'untestable' END"""
        else:
            rule = """CASE WHEN bool_or(v IN ('fails', 'refutes')) THEN 'fails'
                           WHEN bool_or(v = 'holds') THEN 'holds' ELSE 'untestable' END"""
        q = lambda s: s.replace("'", "''")  # noqa: E731
        return f"""
SELECT * FROM (
    WITH per_group AS (
        SELECT grp, ({self.measured}) AS m, ({self.verdict}) AS v, ({self.why}) AS w
        FROM ({self.groups}) g
    ),
    judged AS (SELECT coalesce({rule}, 'untestable') AS verdict FROM per_group)
    SELECT {self.ord} AS ord, '{self.id}' AS claim_id, '{q(self.claim)}' AS claim, '{q(self.paper)}' AS paper,
           coalesce((SELECT string_agg(grp || ': ' || coalesce(m, '–'), '; ' ORDER BY grp) FROM per_group),
                    'no data') AS measured,
           j.verdict,
           coalesce((SELECT string_agg(DISTINCT grp || ': ' || w, '; ' ORDER BY grp || ': ' || w) FROM per_group p
                     WHERE replace(p.v, 'refutes', 'fails') = j.verdict),
                    '{q(self.none)}') AS why
    FROM judged j
)"""


def _fmt(x: str, spec: str = "%.3g") -> str:
    # a value that prints as zero prints without a sign: "-0.00" is a tiny negative rounding
    # (e.g. ρ of ranks summed in another order), not a different result
    return f"coalesce(regexp_replace(printf('{spec}', {x}), '^-(0(\\.0*)?)$', '\\1'), '–')"


CLAIMS = [
    Claim(
        1, "silent-failure",
        "The loss falls while the correct token never overtakes the competitor (silent failure)",
        "§1: the cross-entropy loss decreases monotonically while the correct token never "
        "overtakes the competitor in the model's ranking",
        f"""SELECT model || '/' || protocol AS grp,
               count(*) FILTER (WHERE status = {OK} AND loss0 IS NOT NULL) AS n,
               count(*) FILTER (WHERE status = {OK} AND rank_flip_step IS NULL AND loss_T < loss0) AS k,
               median(1 - loss_T / loss0) FILTER (WHERE status = {OK} AND rank_flip_step IS NULL
                                                  AND loss_T < loss0) AS fall
            FROM trial_summary GROUP BY model, protocol""",
        "k || ' of ' || n || ' trials lost ' || " + _fmt("100 * fall", "%.0f") + " || '% of their loss "
        "(median) with g below c in the softmax ranking at every step'",
        "CASE WHEN n = 0 THEN 'untestable' WHEN k > 0 THEN 'holds' ELSE 'fails' END",
        "CASE WHEN n = 0 THEN 'no finished trial' WHEN k > 0 THEN 'silent failures at the low rates' "
        "ELSE 'every trial whose loss fell also flipped the ranking' END",
        combine="any",
    ),
    Claim(
        2, "catapult-full-ft",
        "Catapult-like jumps in Φ under full fine-tuning (R ≥ 8 after a quiescent shoulder)",
        "§4.2: catapult-like jumps on SmolLM-360M; catapult R ≥ 15, catapult-like 8 ≤ R < 15",
        f"""SELECT model AS grp,
               count(*) FILTER (WHERE {SHOULDER}) AS n_shoulder,
               count(*) FILTER (WHERE {CAT_LIKE}) AS n_cl,
               count(*) FILTER (WHERE character = '{Character.CATAPULT}') AS n_cat,
               count(*) FILTER (WHERE character = '{Character.IMMEDIATE}') AS n_imm,
               count(*) FILTER (WHERE character = '{Character.STOPPED_AT_FLIP}') AS n_stop,
               max(R) FILTER (WHERE {SHOULDER}) AS r_max
            FROM trial_summary WHERE protocol = {FULL} GROUP BY model""",
        "n_cl || ' catapult-like (' || n_cat || ' catapults) of ' || n_shoulder || "
        "' trials that flipped after step 1, max R ' || " + _fmt("r_max", "%.1f") + " || '; ' || n_imm || "
        "' flipped at step 1 (no shoulder to judge, not counted)' || "
        "CASE WHEN n_stop > 0 THEN '; ' || n_stop || ' stopped at the flip (shape not measured)' ELSE '' END",
        "CASE WHEN n_shoulder = 0 THEN 'untestable' WHEN n_cl > 0 THEN 'holds' ELSE 'fails' END",
        "CASE WHEN n_shoulder = 0 AND n_stop > 0 THEN 'its full-FT trials stopped at their flip (an η_c-only "
        "pass): shape not measured' "
        "WHEN n_shoulder = 0 THEN 'no full-FT trial flipped after step 1' WHEN n_cl > 0 THEN "
        "'jumps concentrated in one step' ELSE 'every flip after step 1 was a drift or intermediate' END",
        combine="any",
    ),
    Claim(
        3, "phantom-under-lora",
        "The jumps are phantoms of the softmax readout: under LoRA the embedding is exactly "
        "unchanged (dG_max = 0 at every step) and catapult-like jumps still occur",
        "§5, Table 3: catapult-like jumps on several sentences under LoRA with the token "
        "embedding matrix exactly unchanged",
        f"""SELECT model || '/' || protocol AS grp,
               count(max_dG) AS n_dG, max(max_dG) AS max_dG,
               count(*) FILTER (WHERE {SHOULDER}) AS n_shoulder,
               count(*) FILTER (WHERE {CAT_LIKE}) AS n_cl,
               max(R) FILTER (WHERE {SHOULDER}) AS r_max
            FROM trial_summary WHERE protocol IN {LORA} GROUP BY model, protocol""",
        "'max dG_max ' || " + _fmt("max_dG", "%.3g") + " || ' over ' || n_dG || ' trials; ' || n_cl || "
        "' catapult-like of ' || n_shoulder || ' trials that flipped after step 1 (max R ' || "
        + _fmt("r_max", "%.1f") + " || ')'",
        "CASE WHEN n_dG = 0 THEN 'untestable' WHEN max_dG > 0 THEN 'refutes' WHEN n_cl > 0 THEN 'holds' "
        "WHEN n_shoulder = 0 THEN 'untestable' ELSE 'fails' END",
        "CASE WHEN n_dG = 0 THEN 'no LoRA trial' WHEN max_dG > 0 THEN 'the embedding moved under LoRA' "
        "WHEN n_cl > 0 THEN 'jumps with the geometry frozen exactly: the discontinuity is in the softmax' "
        "WHEN n_shoulder = 0 THEN 'no LoRA trial flipped after step 1' "
        "ELSE 'embedding frozen, but no catapult-like jump' END",
        combine="any",
    ),
    Claim(
        4, "softmax-amplification",
        "Δ (the logit gap) moves smoothly while Φ jumps: in catapult-like trials R / R_Δ > 1",
        "§4.2: the logit gap crosses the softmax saturation scale smoothly; the jump is in Φ",
        f"""SELECT model || '/' || protocol AS grp, count(amplification) AS n,
               median(amplification) AS amp, median(R) AS r, median(R_delta) AS r_delta
            FROM trial_summary WHERE {CAT_LIKE} GROUP BY model, protocol""",
        "'median R ' || " + _fmt("r", "%.1f") + " || ', R_Δ ' || " + _fmt("r_delta", "%.1f") + " || "
        "', R/R_Δ ' || " + _fmt("amp", "%.2f") + " || ' over ' || n || ' catapult-like trials'",
        "CASE WHEN n = 0 THEN 'untestable' WHEN amp > 1 THEN 'holds' ELSE 'fails' END",
        "CASE WHEN n = 0 THEN 'no catapult-like trial' WHEN amp > 1 THEN "
        "'Φ''s steps are more concentrated than Δ''s' ELSE 'Δ jumps as much as Φ' END",
    ),
    Claim(
        5, "spearman-gmax-R",
        "Spearman(G_max, R) is high under full FT and collapses under LoRA",
        "§5, Table 3: high under full FT, near zero under LoRA (SmolLM-360M)",
        f"""SELECT f.model AS grp, f.rho AS rf, f.p_value AS pf, f.rho_lo AS lo, f.rho_hi AS hi,
               f.n AS nf, l.rho AS rl, l.p_value AS pl, l.n AS nl, coalesce(i.n_imm, 0) AS n_imm
            FROM (SELECT * FROM correlations WHERE scope = 'model' AND x = 'gmax' AND y = 'R'
                  AND protocol = {FULL}) f
            LEFT JOIN (SELECT * FROM correlations WHERE scope = 'model' AND x = 'gmax' AND y = 'R'
                       AND protocol = {STANDARD_LORA}) l USING (model)
            LEFT JOIN (SELECT model, count(*) FILTER (WHERE character = '{Character.IMMEDIATE}') AS n_imm
                       FROM reference_trials WHERE protocol = {FULL} GROUP BY model) i USING (model)""",
        "'full ρ ' || " + _fmt("rf", "%.2f") + " || ' [' || " + _fmt("lo", "%.2f") + " || ', ' || "
        + _fmt("hi", "%.2f") + " || '] (p ' || " + _fmt("pf", "%.2g") + " || ', n ' || nf || '); LoRA ρ ' || "
        + _fmt("rl", "%.2f") + " || ' (p ' || " + _fmt("pl", "%.2g") + " || ', n ' || coalesce(nl, 0) || "
        "'); ' || n_imm || ' of the full-FT reference trials flipped at step 1'",
        f"CASE WHEN rf IS NULL OR rl IS NULL OR 2 * n_imm > nf THEN 'untestable' "
        f"WHEN rf > 0 AND pf < {P_MAX} AND abs(rl) < rf / 2 THEN 'holds' ELSE 'fails' END",
        f"CASE WHEN rf IS NULL OR rl IS NULL THEN 'needs ρ under both protocols at the reference rate' "
        f"WHEN 2 * n_imm > nf THEN 'most full-FT trials at η_ref flip at step 1, where R measures no shape' "
        f"WHEN rf > 0 AND pf < {P_MAX} AND abs(rl) < rf / 2 THEN 'positive and significant under full FT, "
        f"less than half of it under LoRA' "
        f"ELSE 'rule: full-FT ρ > 0 with p < {P_MAX} and |ρ_LoRA| < ρ_full / 2; not met' END",
    ),
    Claim(
        6, "theta-shape-line",
        "One line θ*_shape on x = η·G_max separates catapult-like from other flipped trials",
        "§4, Eq. 21: one line separates all 50 SmolLM-360M full-FT trials (10 sentences x 5 rates)",
        """SELECT model || '/' || protocol AS grp, n_shape, shape_errors, theta_shape, n_immediate,
               n_stopped_at_flip AS n_stop
            FROM fits""",
        "'θ*_shape ' || " + _fmt("theta_shape", "%.3g") + " || ', ' || coalesce(shape_errors, 0) || ' of ' || "
        "coalesce(n_shape, 0) || ' trials on the wrong side (' || n_immediate || ' step-1 flips left out' || "
        "CASE WHEN n_stop > 0 THEN ', ' || n_stop || ' stopped at the flip' ELSE '' END || ')'",
        "CASE WHEN coalesce(n_shape, 0) = 0 OR theta_shape IS NULL THEN 'untestable' "
        "WHEN shape_errors = 0 THEN 'holds' ELSE 'fails' END",
        "CASE WHEN coalesce(n_shape, 0) = 0 AND n_stop > 0 THEN 'trials stopped at their flip: shape not measured' "
        "WHEN coalesce(n_shape, 0) = 0 OR theta_shape IS NULL THEN "
        "'no flipped trials of both shapes to separate' WHEN shape_errors = 0 THEN 'separates every trial' "
        "ELSE 'no single line separates every trial' END",
    ),
    Claim(
        7, "H-ft-universal",
        "The reduced field under full FT is the same across architectures (H_FT ≈ 10)",
        "§6: H_FT ≈ 10 for all five architectures, CV 9.3%",
        f"""SELECT 'across models' AS grp, count(H) AS n, avg(H) AS h,
               stddev_samp(H) / avg(H) AS cv, string_agg(model || ' ' || printf('%.3g', H), ', ' ORDER BY model) AS each
            FROM fits WHERE protocol = {FULL} AND H IS NOT NULL""",
        "'H_FT ' || coalesce(each, '–') || CASE WHEN n >= 2 THEN '; CV ' || printf('%.0f', 100 * cv) || '%' "
        "ELSE '' END",
        f"CASE WHEN n < 2 THEN 'untestable' WHEN cv <= {H_FT_CV_MAX} THEN 'holds' ELSE 'fails' END",
        f"CASE WHEN n < 2 THEN 'needs H_FT on two architectures or more (the cross-architecture sweep)' "
        f"WHEN cv <= {H_FT_CV_MAX} THEN 'spread within {H_FT_CV_MAX:.0%} across models' "
        f"ELSE 'spread above {H_FT_CV_MAX:.0%} across models' END || "
        "' (H depends on η_ref and the budget, so its level is compared with the paper''s only in kind)'",
    ),
    Claim(
        8, "bulk-class-g2",
        "The bulk embedding geometry sorts models into classes: A dense (mean G² 0.045–0.097), "
        "B sparse (0.002–0.003)",
        "§6.1: class A mean G² ∈ [0.045, 0.097], class B ∈ [0.002, 0.003]",
        f"""SELECT model AS grp, class AS cls, mean_g2 AS g2,
               CASE class WHEN 'A' THEN {CLASS_G2['A'][0]} WHEN 'B' THEN {CLASS_G2['B'][0]} END AS lo,
               CASE class WHEN 'A' THEN {CLASS_G2['A'][1]} WHEN 'B' THEN {CLASS_G2['B'][1]} END AS hi
            FROM geometry""",
        "'class ' || coalesce(cls, '–') || ', mean G² ' || " + _fmt("g2", "%.4f"),
        "CASE WHEN cls IS NULL OR g2 IS NULL THEN 'untestable' WHEN g2 BETWEEN lo AND hi THEN 'holds' "
        "ELSE 'fails' END",
        "CASE WHEN cls IS NULL OR g2 IS NULL THEN 'no geometry probe (phantom geometry)' "
        "WHEN g2 BETWEEN lo AND hi THEN 'mean G² inside the paper''s range of its class' "
        "ELSE 'mean G² outside the paper''s range for class ' || cls || ' (' || lo || '–' || hi || ')' END",
    ),
    Claim(
        9, "H-lora-by-class",
        "H under LoRA splits by class: A 0.9–2.8, B 4.2–15.9",
        "§6: H_LoRA class A 0.9–2.8, class B 4.2–15.9",
        f"""SELECT f.model AS grp, f.H AS h, f.H_ci_lo AS lo_ci, f.H_ci_hi AS hi_ci, g.class AS cls,
               CASE g.class WHEN 'A' THEN {CLASS_H_LORA['A'][0]} WHEN 'B' THEN {CLASS_H_LORA['B'][0]} END AS lo,
               CASE g.class WHEN 'A' THEN {CLASS_H_LORA['A'][1]} WHEN 'B' THEN {CLASS_H_LORA['B'][1]} END AS hi
            FROM fits f LEFT JOIN geometry g USING (model) WHERE f.protocol = {STANDARD_LORA}""",
        "'H_LoRA ' || " + _fmt("h", "%.3g") + " || ' [' || " + _fmt("lo_ci", "%.3g") + " || ', ' || "
        + _fmt("hi_ci", "%.3g") + " || '], class ' || coalesce(cls, '–')",
        "CASE WHEN h IS NULL OR cls IS NULL THEN 'untestable' WHEN h BETWEEN lo AND hi THEN 'holds' "
        "ELSE 'fails' END",
        "CASE WHEN h IS NULL THEN 'no H_LoRA (no sentence with an η_c under LoRA)' "
        "WHEN cls IS NULL THEN 'no geometry probe (phantom geometry)' "
        "WHEN h BETWEEN lo AND hi THEN 'inside the paper''s range of its class' "
        "ELSE 'outside the paper''s range of class ' || cls END || "
        "'; the split itself needs a model of each class'",
    ),
    Claim(
        10, "blind-prediction",
        "A model's critical rate is predicted blind from the H_LoRA of the others of its class",
        "§7, Eq. 22: gpt-neo-125m predicted within 2.1%",
        f"""SELECT model || '/' || protocol AS grp, rel_error AS err, eta_c_pred AS pred,
               eta_c_measured AS meas, n_reference AS n, reference AS ref
            FROM blind_prediction WHERE protocol = {STANDARD_LORA}""",
        "CASE WHEN err IS NULL THEN 'no prediction (no reference model with an H_LoRA)' ELSE "
        "'η_c predicted ' || printf('%.3g', pred) || ', measured ' || " + _fmt("meas", "%.3g") + " || "
        "', θ* error ' || printf('%.1f', 100 * err) || '% (from ' || n || ' models: ' || coalesce(ref, '–') || ')' END",
        f"CASE WHEN err IS NULL THEN 'untestable' WHEN err <= {BLIND_REL_MAX} THEN 'holds' ELSE 'fails' END",
        f"CASE WHEN err IS NULL THEN 'needs H_LoRA of another model (the cross-architecture sweep)' "
        f"WHEN err <= {BLIND_REL_MAX} THEN 'within {BLIND_REL_MAX:.0%}' ELSE 'off by more than {BLIND_REL_MAX:.0%}' END",
    ),
    Claim(
        11, "phi-saturation-stop",
        "Stopping at Φ-saturation saves compute with no change in the ranking afterwards",
        "§4.1, Table 1: Φ saturates at step 5–7 of 10 for resolved sentences; no ranking change",
        """SELECT model || '/' || protocol AS grp, count(phi_stop) AS n,
               count(*) FILTER (WHERE ranking_changed_after_stop) AS changed,
               avg(compute_saved) AS saved
            FROM trial_summary GROUP BY model, protocol""",
        "n || ' trials stopped by saturation, ' || changed || ' changed the ranking after it; compute "
        "saved ' || " + _fmt("100 * saved", "%.0f") + " || '% (mean)'",
        "CASE WHEN n = 0 THEN 'untestable' WHEN changed > 0 THEN 'fails' WHEN saved > 0 THEN 'holds' "
        "ELSE 'fails' END",
        "CASE WHEN n = 0 THEN 'no trial reached a Φ plateau after its flip' WHEN changed > 0 THEN "
        "'the ranking changed after a saturation stop' ELSE 'no ranking change after any stop' END",
    ),
    Claim(
        12, "ablation-distributed-drag",
        "The drag is distributed: ablating the nearest competitor barely moves Φ",
        f"§5.1, Table 5: Φ changes by at most 0.022 on every sentence (remorse 0.426 → 0.448); "
        f"tolerance here {ABLATION_MAX}",
        """SELECT model || '/' || protocol AS grp, count(phi_ablated - phi) AS n,
               max(abs(phi_ablated - phi)) AS dmax, median(abs(phi_ablated - phi)) AS dmed
            FROM ablation GROUP BY model, protocol""",
        "'|Φ_ablated − Φ| max ' || " + _fmt("dmax", "%.3f") + " || ', median ' || " + _fmt("dmed", "%.3f") + " || "
        "' over ' || n || ' sentences at η_ref'",
        f"CASE WHEN n = 0 THEN 'untestable' WHEN dmax <= {ABLATION_MAX} THEN 'holds' ELSE 'fails' END",
        f"CASE WHEN n = 0 THEN 'no trial at the reference rate' WHEN dmax <= {ABLATION_MAX} THEN "
        f"'every sentence within {ABLATION_MAX}' ELSE 'a sentence moved by more than {ABLATION_MAX}' END",
    ),
    Claim(
        13, "structural-failure",
        "Structural failure exists: in a trial that never flips, the drag worsens (D_T < D₀) "
        "while the loss falls",
        "§5, Tables 1 and 4: terror is a structural failure on SmolLM-360M; kinematic and "
        "structural failures under LoRA on Pythia-70M",
        """SELECT model || '/' || protocol AS grp,
               count(failure_mode) FILTER (WHERE failure_mode IN ('structural', 'kinematic')) AS n,
               count(*) FILTER (WHERE failure_mode = 'structural' AND loss_T < loss0) AS s,
               count(*) FILTER (WHERE failure_mode = 'kinematic') AS k
            FROM trial_summary GROUP BY model, protocol""",
        "n || ' unresolved trials: ' || s || ' structural, ' || k || ' kinematic'",
        "CASE WHEN n = 0 THEN 'untestable' WHEN s > 0 THEN 'holds' ELSE 'fails' END",
        "CASE WHEN n = 0 THEN 'every trial flipped' WHEN s > 0 THEN 'the drag worsened while the loss fell' "
        "ELSE 'every unresolved trial was kinematic (the drag improved)' END",
        combine="any",
    ),
    Claim(
        14, "gmax-born-rank",
        "High G_max is a crowded neighbourhood: Spearman(G_max, base Born rank) is large",
        "§5.1: large enough to read the two as proxies for each other",
        # the base Born rank does not depend on the protocol: the reference trials of the protocol
        # that has the most sentences (an η_c-only pass has few at η_ref)
        """SELECT model AS grp, rho, p_value AS p, n FROM correlations
            WHERE scope = 'model' AND x = 'gmax' AND y = 'born_rank0'
            QUALIFY row_number() OVER (PARTITION BY model ORDER BY n DESC, protocol) = 1""",
        "'ρ ' || " + _fmt("rho", "%.2f") + " || ' (p ' || " + _fmt("p", "%.2g") + " || ', n ' || n || ')'",
        f"CASE WHEN rho IS NULL THEN 'untestable' WHEN rho > 0 AND p < {P_MAX} THEN 'holds' ELSE 'fails' END",
        f"CASE WHEN rho IS NULL THEN 'too few sentences' WHEN rho > 0 AND p < {P_MAX} THEN "
        f"'positive, p < {P_MAX}' ELSE 'not positive at p < {P_MAX}' END",
    ),
    Claim(
        15, "untied-head-ablation",
        "On an untied head, freezing the head under LoRA lowers the catapult-like count "
        "(the decisive ablation the paper leaves open)",
        "Appendix A: not performed (Llama-3.2-1B, untied, shows more LoRA catapults)",
        f"""SELECT model AS grp,
               count(*) FILTER (WHERE protocol = {STANDARD_LORA} AND {CAT_LIKE}) AS a,
               count(*) FILTER (WHERE protocol = {STANDARD_LORA} AND ({SHOULDER})) AS na,
               count(*) FILTER (WHERE protocol = {FROZEN_HEAD} AND {CAT_LIKE}) AS b,
               count(*) FILTER (WHERE protocol = {FROZEN_HEAD} AND ({SHOULDER})) AS nb,
               count(*) FILTER (WHERE protocol = {FROZEN_HEAD}) AS nf
            FROM trial_summary WHERE protocol IN {LORA} AND NOT coalesce(tied, true) GROUP BY model""",
        "'catapult-like: lora ' || a || ' of ' || na || ', lora-frozen-head ' || b || ' of ' || nb",
        "CASE WHEN nf = 0 OR na + nb = 0 THEN 'untestable' WHEN b < a THEN 'holds' ELSE 'fails' END",
        "CASE WHEN nf = 0 OR na + nb = 0 THEN 'needs lora and lora-frozen-head trials on an untied model' "
        "WHEN b < a THEN 'fewer with the head frozen: the head is a drive channel' "
        "ELSE 'not fewer with the head frozen: the untied head is not the driver' END",
        combine="any",
        none="needs lora and lora-frozen-head trials on an untied model (sweeps/cross-arch.yaml, qwen2.5-coder-0.5b)",
    ),
]


@view("claims", reads=("trial_summary", "reference_trials", "fits", "correlations", "geometry",
                       "blind_prediction", "ablation"))
def claims(ctx: ViewContext) -> str:
    """The paper's claims with the paper's figure, this grid's figure and a verdict
    (holds | fails | untestable) and why."""
    body = "\nUNION ALL\n".join(c.sql() for c in CLAIMS)
    return f"SELECT * FROM (\n{body}\n) ORDER BY ord"
