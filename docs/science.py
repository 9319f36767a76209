"""The science page's quantities (docs/reference/science.md): for every quantity the code
computes, the functions that compute it and the view columns that hold it — the one place that
says so — and the checks that the code has them.

The page keeps the hand-written definitions, each an element with id ``q-<key>`` in the section
``Quantity.section``; ``docs/hooks.py`` turns this table into the page's generated blocks and
fails the build on any problem :func:`quantity_problems` or :func:`claim_problems` finds
(``tests/test_science.py`` runs the same checks). No Markdown here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Quantity:
    """One quantity of the science page: its definition is the element ``#q-<key>`` of
    docs/reference/science.md, in section ``section``."""

    key: str  # the page's anchor is q-<key>
    symbol: str  # as the page writes it
    name: str
    section: str  # "3.3": the subsection of science.md that defines it
    unit: str
    functions: tuple[str, ...]  # dotted paths, imported at build time
    where: tuple[str, ...] = ()  # "view.column": the registered views (and Parquet files) holding it


_OBS = "phantom.workers.observables."
_OUT = "phantom.outcomes."
_SUMMARY = "phantom.analysis.views.summary."
_FITS = "phantom.analysis.views.fits."
_BOOT = "phantom.analysis.views.bootstrap."
_TABLES = "phantom.analysis.views.tables."
_STATS = "phantom.analysis.stats."
_GEOM = "phantom.workers.geometry."

Q = Quantity
QUANTITIES: tuple[Quantity, ...] = (
    # 1. the experiment
    Q("sentence", "s", "sentence (g, c, contexts)", "1.1", "words (one token each)",
      ("phantom.workers.sentences.Sentence", "phantom.workers.sentences.load_sentences"),
      ("trials.sentence_id", "trials.target", "trials.competitor", "trials.context", "trials.n_contexts",
       "steps.context_id", "trial_summary.n_contexts")),
    Q("lr", "η", "learning rate", "1.2", "learning rate", ("phantom.config.TrialConfig",),
      ("trials.lr", "steps.lr", "trial_summary.lr", "stopping.lr", "ablation.lr", "frozen_head.lr")),
    Q("budget", "T", "budget of optimizer steps", "1.2", "steps", ("phantom.config.TrainingConfig",),
      ("trials.steps", "trials.steps_done", "trial_summary.budget", "trial_summary.steps_done",
       "trial_summary.last_step", "trial_summary.evaluations", "eta_c.budget")),
    Q("hard", "Φ₀ ≤ 0", "hard context", "1.3", "yes/no", ("phantom.workers.probe.is_hard",),
      ("geometry_sentences.phi0",)),
    # 2. notation
    Q("psi", "ψ_i", "unit embedding row", "2", "unit vector", (_OBS + "unit_rows",)),
    Q("gmax", "G_max = G_gc", "overlap of target and competitor", "2", "dimensionless (cosine)",
      (_OBS + "observe",),
      ("steps.gmax", "trials.gmax", "trial_steps.gmax", "trial_summary.gmax", "geometry_sentences.gmax",
       "eta_c.gmax", "eta_c_sentence.gmax", "ablation.gmax", "frozen_head.gmax")),
    Q("gmax-head", "G_gc (head)", "overlap of g and c in the LM head", "2", "dimensionless (cosine)",
      (_GEOM + "sentence_values",),
      ("trials.gmax_head", "trial_summary.gmax_head", "geometry_sentences.gmax_head", "frozen_head.gmax_head")),
    Q("tied", "W_U = E", "tied head", "2", "yes/no", ("phantom.workers.models.head_is_tied",),
      ("trials.tied", "trial_summary.tied", "geometry.tied")),
    Q("logits", "z_g, z_c", "logits of g and c", "2", "nats (logit units)", (_OBS + "observe",),
      ("steps.z_g", "steps.z_c")),
    Q("probabilities", "p_g, p_c", "softmax probabilities of g and c", "2", "probability",
      (_OBS + "observe",), ("steps.p_g", "steps.p_c")),
    # 3. per-step observables
    Q("pool", "P", "nucleus pool", "3.1", "tokens", (_OBS + "nucleus_pool",),
      ("steps.pool_size", "steps.pool_capped", "trial_steps.pool_size", "trial_summary.pool_size0")),
    Q("pool-mass", "Σ_{j∈P} p_j", "pool mass", "3.1", "probability", (_OBS + "observe",), ("steps.pool_mass",)),
    Q("born-scores", "b_g, b_c", "Born scores", "3.2", "dimensionless", (_OBS + "born_scores",),
      ("steps.born_g", "steps.born_c")),
    Q("born-rank", "Born rank", "rank of g by Born score", "3.2", "rank (1 = top)", (_OBS + "observe",),
      ("steps.born_rank", "trial_steps.born_rank", "trial_summary.born_rank0", "trial_summary.born_rank_T",
       "geometry_sentences.born_rank0")),
    Q("phi", "Φ", "Born gap", "3.3", "dimensionless", (_OBS + "born_gap", _OBS + "observe"),
      ("steps.phi", "trial_summary.phi0", "trial_summary.phi_T", "geometry_sentences.phi0", "ablation.phi",
       "frozen_head.phi0", "frozen_head.lora_phi_T", "frozen_head.frozen_phi_T", "frozen_head.phi_T_diff")),
    Q("sigma", "σ", "self-sabotage factor", "3.4", "dimensionless", (_OBS + "signal_drag",)),
    Q("signal", "S", "signal", "3.4", "dimensionless", (_OBS + "signal_drag",),
      ("steps.signal", "trial_steps.S", "trial_summary.S0", "trial_summary.S_T")),
    Q("drag", "D", "background drag", "3.4", "dimensionless", (_OBS + "signal_drag",),
      ("steps.drag", "trial_steps.D", "trial_summary.D0", "trial_summary.D_T")),
    Q("softmax-ranks", "rank_g, rank_c", "softmax ranks", "3.5", "rank (1 = top)", (_OBS + "observe",),
      ("steps.rank_g", "steps.rank_c", "trial_steps.rank_resolved")),
    Q("delta", "Δ", "logit gap", "3.5", "nats (logit units)", (_OBS + "observe",),
      ("steps.logit_gap", "trial_steps.delta", "trial_summary.delta0")),
    Q("hidden", "ψ_g·h, ψ_c·h, ‖h‖", "hidden-state alignment", "3.5", "the hidden state's units",
      (_OBS + "observe",),
      ("steps.h_dot_g", "steps.h_dot_c", "steps.h_norm", "trial_steps.h_dot_g", "trial_steps.h_dot_c")),
    Q("purity", "γ", "purity", "3.6", "dimensionless", (_OBS + "purity",), ("steps.purity",)),
    Q("pr", "PR", "participation ratio", "3.6", "tokens (effective number)", (_OBS + "purity",), ("steps.pr",)),
    Q("ipr", "IPR", "inverse participation ratio (classical)", "3.6", "dimensionless", (_OBS + "observe",),
      ("steps.ipr",)),
    Q("pr-classical", "PR_cl", "classical participation ratio", "3.6", "tokens (effective number)",
      (_OBS + "observe",), ("steps.pr_classical",)),
    Q("xi", "ξ", "localisation length", "3.7", "radians", (_OBS + "localisation",), ("steps.xi",)),
    Q("xi-pair", "ξ_pair", "pairwise localisation length", "3.7", "radians", (_OBS + "localisation",),
      ("steps.xi_pair",)),
    Q("burial", "B", "burial depth", "3.7", "dimensionless", (_OBS + "observe",),
      ("steps.burial", "trial_steps.B", "trial_summary.B0", "trial_summary.B_T", "geometry_sentences.B0")),
    Q("efficiency", "ε", "geometric efficiency", "3.8", "dimensionless", (_OBS + "observe",),
      ("steps.efficiency", "trial_steps.eps", "trial_summary.eps0", "geometry_sentences.eps0", "ablation.eps0")),
    Q("phi-ablated", "Φ_abl", "Φ with the competitor ablated", "3.9", "dimensionless",
      (_OBS + "ablate_competitor",),
      ("steps.phi_ablated", "trial_steps.phi_ablated", "trial_summary.phi_ablated_T", "ablation.phi_ablated",
       "ablation.ratio")),
    Q("drive", "drive_pred", "kinetic drive", "3.10", "dimensionless (dΔ/dt per unit η)",
      (_OBS + "vocab_drive", _OBS + "vocab_cosines"), ("steps.drive_pred",)),
    Q("dg-max", "dG_max", "drift of the overlaps", "3.11", "dimensionless (cosine)", (_OBS + "geometry_drift",),
      ("steps.dG_max", "trial_steps.dG_max", "trial_summary.max_dG", "isolation.max_dG",
       "isolation.n_dG_trials", "isolation.embedding_frozen")),
    Q("rotation", "∠ψ_g", "rotation of ψ_g", "3.11", "radians", (_OBS + "geometry_drift",),
      ("steps.psi_g_rotation",)),
    Q("loss", "L", "cross-entropy on g", "3.12", "nats", (_OBS + "observe",),
      ("steps.loss", "trial_steps.loss", "trial_summary.loss0", "trial_summary.loss_T")),
    Q("step-costs", "‖∇‖, ms", "gradient norm and timings", "3.12",
      "gradient 2-norm; milliseconds", ("phantom.workers.trial.run_trial",),
      ("steps.grad_norm", "steps.step_ms", "steps.obs_ms")),
    Q("precision", "fp32, bf16/fp32", "precision of the training and of the observation", "3.12",
      "a label", ("phantom.workers.engines.resolve_precision", "phantom.analysis.views.precision.refuse_mixed"),
      ("steps.train_precision", "steps.obs_precision", "trials.train_precision", "trials.obs_precision",
       "trial_summary.precision", "eta_c.precision", "eta_c_sentence.precision",
       "fits.precision", "precisions.precision")),
    # 4. per-trial summary
    Q("trial-phi", "Φ_t", "Φ of a trial at step t", "4.1", "dimensionless",
      (_OUT + "trial_phi", _SUMMARY + "trial_steps"), ("trial_steps.phi", "trial_steps.n_contexts")),
    Q("flip", "t_flip", "flip step", "4.2", "steps", (_OUT + "flip_step", _OUT + "FlipStop", _SUMMARY + "trial_summary"),
      ("trial_summary.flip_step", "frozen_head.lora_flip_step", "frozen_head.frozen_flip_step")),
    Q("rank-flip", "t_rank", "rank flip step", "4.2", "steps", (_SUMMARY + "trial_summary",),
      ("trial_summary.rank_flip_step",)),
    Q("flipped", "flipped", "the η_c outcome of a trial", "4.2", "yes/no", (_OUT + "flipped", _SUMMARY + "trial_summary"),
      ("trial_summary.flipped", "frozen_head.lora_flipped", "frozen_head.frozen_flipped",
       "frozen_head.same_outcome")),
    Q("r", "R", "jump concentration ratio", "4.3", "dimensionless", (_SUMMARY + "trial_summary",),
      ("trial_summary.R", "frozen_head.lora_R", "frozen_head.frozen_R")),
    Q("jump-step", "t_jump", "jump step", "4.3", "steps", (_SUMMARY + "trial_summary",), ("trial_summary.jump_step",)),
    Q("r-delta", "R_Δ", "jump concentration of Δ", "4.3", "dimensionless", (_SUMMARY + "trial_summary",),
      ("trial_summary.R_delta",)),
    Q("amplification", "R/R_Δ", "softmax amplification", "4.3", "dimensionless", (_SUMMARY + "trial_summary",),
      ("trial_summary.amplification",)),
    Q("character", "character", "trajectory character", "4.4", "label",
      (_OUT + "Character", _SUMMARY + "trial_summary", "phantom.analysis.settings.AnalysisSettings"),
      ("trial_summary.character", "stopping.character", "frozen_head.lora_character",
       "frozen_head.frozen_character", "isolation.n_catapult", "isolation.n_catapult_like", "isolation.n_drift",
       "fits.n_immediate", "fits.n_stopped_at_flip")),
    Q("failure-mode", "failure mode", "kinematic or structural failure", "4.5", "label", (_SUMMARY + "trial_summary",),
      ("trial_summary.failure_mode", "stopping.failure_mode")),
    Q("phi-stop", "t_sat", "Φ-saturation stop", "4.6", "steps",
      (_OUT + "PhiSaturation", _OUT + "saturation_step", _SUMMARY + "trial_summary"),
      ("trial_summary.phi_stop", "stopping.phi_stop", "stopping.ce_stop")),
    Q("compute-saved", "1 − t_sat/T", "compute saved", "4.6", "fraction of the budget", (_SUMMARY + "trial_summary",),
      ("trial_summary.compute_saved", "stopping.compute_saved")),
    Q("ranking-changed", "ranking changed", "ranking changed after the stop", "4.6", "yes/no",
      (_SUMMARY + "trial_summary",),
      ("trial_summary.ranking_changed_after_stop", "stopping.ranking_changed_after_stop")),
    Q("status", "status", "how a trial ended", "4.7", "label", (_OUT + "TrialStatus", _OUT + "StopReason"),
      ("trials.status", "trials.error", "trials.stop_reason", "trial_summary.status", "trial_summary.stop_reason",
       "frozen_head.lora_status", "frozen_head.frozen_status")),
    # 5. fits across the grid
    Q("lr-ref", "η_ref", "reference (standard) rate", "5.1", "learning rate",
      ("phantom.analysis.settings.AnalysisSettings", "phantom.analysis.views.sources.lr_ref"),
      ("lr_ref.lr_ref", "reference_trials.lr_ref", "fits.lr_ref", "fits.ref_lr_min", "fits.ref_lr_max",
       "eta_c.lr_ref", "eta_c_sentence.lr_ref", "blind_prediction.lr_ref")),
    Q("x", "x = η·G_max", "control product", "5.2", "learning rate", (_SUMMARY + "trial_summary",),
      ("trial_summary.x", "shape_points.x")),
    Q("theta-shape", "θ*_shape", "shape boundary", "5.2", "learning rate",
      (_FITS + "shape_fit_sql", _FITS + "shape_fit", _BOOT + "fit_replicates"),
      ("fits.theta_shape", "fits.shape_lo", "fits.shape_hi", "fits.shape_errors", "fits.n_shape",
       "shape_fit.theta_shape")),
    Q("eta-c", "η_c", "critical learning rate", "5.3", "learning rate",
      (_OUT + "eta_c", _OUT + "bracket_status", _FITS + "eta_c", _FITS + "eta_c_sentence"),
      ("eta_c.eta_c", "eta_c.lr_lo", "eta_c.lr_hi", "eta_c.status", "eta_c.non_monotone", "eta_c_sentence.eta_c",
       "fits.n_eta_c", "fits.n_non_monotone")),
    Q("theta", "θ(s)", "threshold of a sentence", "5.3", "learning rate", (_FITS + "eta_c", _FITS + "eta_c_sentence"),
      ("eta_c.theta", "eta_c_sentence.theta")),
    Q("theta-resolve", "θ*_resolve", "resolution boundary", "5.3", "learning rate", (_BOOT + "fit_replicates",),
      ("fits.theta_resolve", "fits.theta_min", "fits.theta_max")),
    Q("gbar", "Ḡ_max", "mean G_max of the sentences", "5.3", "dimensionless (cosine)",
      (_BOOT + "fit_replicates", _TABLES + "blind_prediction"),
      ("fits.gmax_resolved", "fits.gmax_all", "blind_prediction.gbar")),
    Q("h", "H", "reduced field", "5.4", "dimensionless", (_BOOT + "fit_replicates", _FITS + "eta_c_sentence"),
      ("fits.H", "fits.H_min", "fits.H_max", "eta_c.H", "eta_c_sentence.H")),
    Q("b-ft", "B_FT", "burial depth after fine-tuning", "5.5", "dimensionless",
      (_FITS + "sentence_burial", _BOOT + "fit_replicates"), ("fits.B_FT", "sentence_burial.B_FT")),
    Q("bootstrap", "CI", "bootstrap interval", "5.6", "the unit of its fit",
      (_BOOT + "resamples", _BOOT + "resample_indices", _FITS + "fits"),
      ("fits.theta_shape_ci_lo", "fits.theta_shape_ci_hi", "fits.theta_shape_boot_defined",
       "fits.theta_resolve_ci_lo", "fits.theta_resolve_ci_hi", "fits.H_ci_lo", "fits.H_ci_hi",
       "fits.B_FT_ci_lo", "fits.B_FT_ci_hi", "fits.n_boot")),
    Q("spearman", "ρ", "Spearman rank correlation", "5.7", "dimensionless",
      (_TABLES + "correlations", _STATS + "spearman", _STATS + "spearman_p"),
      ("correlations.rho", "correlations.p_value", "correlations.rho_lo", "correlations.rho_hi", "correlations.n",
       "isolation.rho_gmax_R", "isolation.p_gmax_R", "isolation.rho_gmax_R_lo", "isolation.rho_gmax_R_hi")),
    Q("mean-g2", "⟨G²⟩", "bulk density (mean G²)", "5.8", "dimensionless", (_GEOM + "bulk_statistics",),
      ("geometry.mean_g2", "geometry.n_pairs")),
    Q("frac-above-tau", "f(G > τ)", "fraction of pairs above τ", "5.8", "fraction", (_GEOM + "bulk_statistics",),
      ("geometry.frac_above_tau", "geometry.tau")),
    Q("ks", "KS_norm, KS_exp", "Kolmogorov–Smirnov distances", "5.8", "dimensionless",
      (_STATS + "ks_normal", _STATS + "ks_exponential", _STATS + "ks_distance"),
      ("geometry.ks_norm", "geometry.ks_exp")),
    Q("class", "class", "bulk class A/B", "5.8", "label (A or B)", (_STATS + "bulk_class",),
      ("geometry.class", "geometry.class_index", "blind_prediction.class")),
    Q("h-class", "H̄_class", "mean H of the reference models", "5.9", "dimensionless",
      (_TABLES + "blind_prediction", "phantom.analysis.commands.predict.predict"),
      ("blind_prediction.H_class", "blind_prediction.reference", "blind_prediction.n_reference",
       "blind_prediction.reference_models")),
    Q("blind", "η_c,pred, θ*_pred", "blind prediction", "5.9", "learning rate",
      (_TABLES + "blind_prediction", "phantom.analysis.commands.predict.predict"),
      ("blind_prediction.eta_c_pred", "blind_prediction.theta_pred", "blind_prediction.eta_c_measured",
       "blind_prediction.theta_measured")),
    Q("rel-error", "rel. error", "relative error of the blind prediction", "5.9", "fraction",
      (_TABLES + "blind_prediction",), ("blind_prediction.rel_error",)),
    Q("head-gap", "G_gc(head) − G_gc", "head gap", "5.10", "dimensionless (cosine)",
      (_TABLES + "frozen_head", _TABLES + "frozen_head_models"),
      ("frozen_head.head_gap", "frozen_head_models.head_gap_mean", "frozen_head_models.head_gap_min",
       "frozen_head_models.head_gap_max", "frozen_head_models.head_gap_max_abs")),
    Q("verdict", "verdict", "a claim checked", "5.11", "label (holds, fails, untestable)",
      ("phantom.analysis.views.claims.claims", "phantom.analysis.views.claims.Claim"),
      ("claims.verdict", "claims.measured", "claims.why", "claims.paper")),
    # 6. architectures and protocols
    Q("model", "architecture", "model", "6.1", "name", ("phantom.workers.models.load_model",),
      ("trials.model", "steps.model")),
    Q("protocol", "protocol", "fine-tuning protocol", "6.2", "label",
      ("phantom.protocols.Protocol", "phantom.workers.protocols.apply_protocol"),
      ("trials.protocol", "steps.protocol")),
    Q("trainable", "trainable / total", "parameters that train", "6.2", "parameters",
      ("phantom.workers.protocols.count_params",), ("trials.trainable_params", "trials.total_params")),
)
del Q

# the raw views that read a Parquet file as is: their columns must be in its schema (phantom.schema)
PARQUET_VIEWS = {"steps": "STEP_SCHEMA", "trials": "TRIAL_SCHEMA", "geometry": "GEOMETRY_SCHEMA",
                 "geometry_sentences": "GEOMETRY_SCHEMA"}

# the page's top-level sections: the id of its heading -> its number
SECTIONS = {
    "experiment": "1", "notation": "2", "observables": "3", "summary": "4", "fits": "5", "protocols": "6",
}


def resolve(dotted: str):
    """The object a dotted path names (a module, then attributes), imported; ValueError if none."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name and not name.startswith(f"{exc.name}."):
                raise
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                raise ValueError(f"'{dotted}': '{name}' has no '{'.'.join(parts[i:])}'")
            obj = getattr(obj, attr)
        return obj
    raise ValueError(f"'{dotted}': no such module")


def quantity_problems(columns: Mapping[str, Sequence[str]],
                      quantities: Sequence[Quantity] | None = None) -> list[str]:
    """What the table names and the code does not have: every function is imported, every view
    is in the registry, every column is one of the view's ``columns`` (view -> its column names,
    as DESCRIBE gives them) and, for a view that reads a Parquet file, in the file's schema."""
    import phantom.schema as schema
    from phantom.analysis.views import REGISTRY

    quantities = QUANTITIES if quantities is None else quantities
    problems = []
    keys = [q.key for q in quantities]
    problems += [f"quantity '{k}' is listed twice" for k in sorted({k for k in keys if keys.count(k) > 1})]
    for q in quantities:
        if q.section.split(".")[0] not in SECTIONS.values():
            problems.append(f"{q.key}: no section {q.section}")
        if not q.functions:
            problems.append(f"{q.key}: names no function")
        for path in q.functions:
            try:
                resolve(path)
            except (ValueError, ImportError) as exc:
                problems.append(f"{q.key}: {exc}")
        for loc in q.where:
            view, _, column = loc.partition(".")
            if view not in REGISTRY:
                problems.append(f"{q.key}: '{loc}': no view '{view}' in phantom.analysis.views.REGISTRY")
                continue
            if column not in columns.get(view, ()):
                problems.append(f"{q.key}: '{loc}': view '{view}' has no column '{column}'")
            if view in PARQUET_VIEWS:
                names = getattr(schema, PARQUET_VIEWS[view]).names
                if column not in names:
                    problems.append(f"{q.key}: '{loc}': not in phantom.schema.{PARQUET_VIEWS[view]}")
    return problems


# the claims (phantom.analysis.views.claims.CLAIMS)


def claims_md_ids() -> list[str]:
    """The claim ids of docs/reference/claims.md's table (its first column), in order."""
    text = (ROOT / "docs" / "reference" / "claims.md").read_text(encoding="utf-8")
    table = re.search(r"^\| claim \| .*\n\| --- .*\n((?:\|.*\n)*)", text, flags=re.MULTILINE)
    return [row.split("|")[1].strip() for row in table.group(1).splitlines()] if table else []


def claim_reads(claim) -> list[str]:
    """The views a claim's per-group SQL reads (registered view names among its words)."""
    from phantom.analysis.views import REGISTRY

    return REGISTRY.named_in(claim.groups)


def claim_quantities(claim) -> list[Quantity]:
    """The quantities whose columns, in the views the claim reads, its SQL names."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", claim.groups))
    views = set(claim_reads(claim))
    return [q for q in QUANTITIES
            if any(v in views and c in words for v, _, c in (loc.partition(".") for loc in q.where))]


def claim_problems() -> list[str]:
    """The claims docs/reference/claims.md lists are the claims view's, in its order, and each
    claim reads views the claims view declares."""
    from phantom.analysis.views import REGISTRY
    from phantom.analysis.views.claims import CLAIMS

    problems = []
    ids = [c.id for c in CLAIMS]
    if claims_md_ids() != ids:
        problems.append(f"docs/reference/claims.md lists {claims_md_ids()}, the claims view {ids}")
    declared = set(REGISTRY["claims"].reads)
    for c in CLAIMS:
        undeclared = set(claim_reads(c)) - declared
        if undeclared:
            problems.append(f"claim '{c.id}' reads {sorted(undeclared)}, not among the claims view's reads")
        if not claim_reads(c):
            problems.append(f"claim '{c.id}' reads no registered view")
    return problems
