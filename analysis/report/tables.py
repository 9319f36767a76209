"""The report's tables, in the report's order: each a view (or a selection of one) listed after
the figures, registered with the views it reads (phantom.analysis.report.registry).

Every snapshot view is also written whole by ``phantom analyze`` as Parquet and CSV; the report
shows the first rows of these.
"""

from __future__ import annotations

from phantom.analysis.report.registry import REPORT

table = REPORT.table

table("fits", "Fits per model and protocol (θ*_shape, θ*_resolve, H, B_FT)", reads=("fits",))
table("uncertainty", "Bootstrap intervals over sentences (percentile)", reads=("fits",),
      sql="SELECT model, protocol, n_sentences, n_boot, theta_shape, theta_shape_ci_lo, theta_shape_ci_hi, "
      "theta_shape_boot_defined, "
      "theta_resolve, theta_resolve_ci_lo, theta_resolve_ci_hi, H, H_ci_lo, H_ci_hi, "
      "B_FT, B_FT_ci_lo, B_FT_ci_hi FROM fits")
table("correlations", "Spearman rank correlations (interval: Fisher z, Bonett–Wright SE)", reads=("correlations",))
table("isolation", "Causal isolation (Table 3), at the reference rate", reads=("isolation",))
table("stopping", "Φ-saturation stopping (Table 1), at the reference rate", reads=("stopping",))
table("ablation", "Competitor ablation (Table 5), at the reference rate", reads=("ablation",))
table("blind", "Blind prediction (§7)", reads=("blind_prediction",))
table("eta_c_sentence", "Critical learning rate per sentence (Table 6)", reads=("eta_c_sentence",))
table("eta_c", "η_c brackets (one per seed and context run)", reads=("eta_c",))
table("extra", "Complete trials outside the plan (not analysed unless --all-trials)", reads=("extra_trials",))
table("frozen_head_models", "LoRA against LoRA with the LM head frozen, per model; "
      "gmax_head − gmax at step 0 (how far the two heads differ)", reads=("frozen_head_models",))
table("frozen_head", "LoRA against LoRA with the LM head frozen: the paired trials", reads=("frozen_head",))
