"""``phantom sweep validate``: what a sweep file would run, checked and described, with nothing
started or written: the grid (or the η_c brackets), the pairs skipped and why, the packing,
the resources, and — when a storage is given — that it is reachable and accepts the
credentials (no Ray, no torch)."""

from __future__ import annotations

import os


def validate_sweep(file: str | os.PathLike, overrides=(), *, storage: str | None = None,
             only: dict[str, tuple] | None = None) -> list[str]:
    """Check the sweep ``file`` (a path or a built-in sweep's name) with its ``--set``
    overrides; the lines that describe it. Every problem is a one-line PhantomError."""
    from phantom.orchestrator.loader import load_sweep
    from phantom.orchestrator.only import check_only, describe_only, select
    from phantom.orchestrator.packing import check_packing, describe
    from phantom.orchestrator.search import plan_sweep

    sweep, sentences = load_sweep(file, overrides)
    check_packing(sweep)
    check_only(sweep, only)
    plan = plan_sweep(sweep, sentences)
    each = sweep.sentences.contexts == "each"
    points = "(model, sentence, context) points" if each else "(model, sentence) pairs"
    lines = []
    if plan.brackets:
        from phantom.orchestrator.etac import max_trials

        s = sweep.search
        lines.append(f"{sweep.name}: eta-c search over {len(plan.brackets)} brackets ({points} x protocols x seeds),"
                     f" lr in [{s.lr_min:g}, {s.lr_max:g}], to a factor {s.tolerance:g}")
        lines.append(f"  at most {len(plan.brackets)} x {max_trials(sweep)} trials, each stopped at its flip"
                     f" (budget {sweep.training.steps} steps)")
    else:
        n_points = len({(t.model, t.sentence_id, t.context_index) for t in plan.trials})
        lines.append(
            f"{sweep.name}: {len(plan.trials)} trials = {n_points} {points} x "
            f"{len(sweep.protocols)} protocols x {_rates(sweep)} rates x {len(sweep.seeds)} seeds,"
            f" {sweep.training.steps} steps each"
        )
        if only:
            lines.append(f"  --only {describe_only(only)}: {len(select(plan.trials, only, sweep.name))} of them")
    for s in plan.grid.skipped:
        lines.append(f"  skipped {s.model} / {s.sentence_id}: {s.reason}")
    r = sweep.resources
    lines.append(f"  each Tune trial reserves {r.cpus_per_trial:g} CPU, {r.gpus_per_trial:g} GPU; {describe(sweep)}")
    root = storage or sweep.storage
    if root:
        from phantom.storage import Store
        from phantom.storage_errors import check_store, translated

        with translated(root):  # reachable, credentials accepted, the bucket exists (nothing written)
            check_store(Store.open(root))
    if root:
        from phantom.orchestrator.hints import folder_uri

        lines.append(f"  data: {folder_uri(root, sweep.name)}")
    else:
        lines.append("  data: (no storage set: pass --storage to run)")
    return lines


def _rates(sweep) -> str:
    counts = {p: len(sweep.rates(p)) for p in sweep.protocols}
    if len(set(counts.values())) == 1:
        return str(next(iter(counts.values())))
    return "(" + ", ".join(f"{n} {p}" for p, n in counts.items()) + ")"
