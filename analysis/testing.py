"""Synthetic results folders with planted answers, for the tests and the benchmark.

``write_trial`` writes one trial in the exact layout of phantom.schema (steps file first,
trial record last); ``synthetic_grid`` writes a whole grid vectorised, a few large step files
instead of one per trial (the views read any ``steps/*.parquet``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from phantom import layout
from phantom.schema import STEP_SCHEMA, TRIAL_SCHEMA, TrialRecord
from phantom.storage import Store


def step_table(
    trial_id: str,
    phi: Sequence[float],
    *,
    model: str = "m",
    protocol: str = "full",
    sentence_id: str = "s",
    lr: float = 1e-4,
    seed: int = 0,
    delta: Sequence[float] | None = None,
    drag: Sequence[float] | None = None,
    burial: Sequence[float] | None = None,
    phi_ablated: Sequence[float] | None = None,
    loss: Sequence[float] | None = None,
    dG: Sequence[float] | None = None,
    gmax: float = 0.5,
    context_id: int = 0,
) -> pa.Table:
    """One context's step rows (step 0..T) from a planted Φ series; every other column gets
    a consistent default (ranks follow the sign of Φ, S = Φ − D)."""
    phi = np.asarray(phi, dtype=np.float64)
    n = phi.size
    steps = np.arange(n, dtype=np.int32)

    def col(values, default):
        return np.asarray(default if values is None else values, dtype=np.float64) * np.ones(n)

    drag_ = col(drag, -0.1)
    delta_ = col(delta, np.linspace(-1.0, 1.0, n))
    resolved = phi > 0
    data = {
        "trial_id": [trial_id] * n,
        "step": steps,
        "context_id": np.full(n, context_id, dtype=np.int32),
        "model": [model] * n,
        "protocol": [protocol] * n,
        "sentence_id": [sentence_id] * n,
        "lr": np.full(n, lr),
        "seed": np.full(n, seed, dtype=np.int64),
        "loss": col(loss, np.linspace(3.0, 1.0, n)),
        "grad_norm": np.r_[np.nan, np.ones(n - 1)],
        "step_ms": np.r_[np.nan, np.full(n - 1, 10.0)],
        "obs_ms": np.full(n, 1.0),
        "p_g": np.full(n, 0.3),
        "p_c": np.full(n, 0.2),
        "z_g": delta_,
        "z_c": np.zeros(n),
        "logit_gap": delta_,
        "rank_g": np.where(resolved, 1, 2).astype(np.int64),
        "rank_c": np.where(resolved, 2, 1).astype(np.int64),
        "pool_size": np.full(n, 12, dtype=np.int32),
        "pool_mass": np.full(n, 0.9),
        "pool_capped": np.zeros(n, dtype=bool),
        "born_g": 0.5 + phi / 2,
        "born_c": 0.5 - phi / 2,
        "phi": phi,
        "signal": phi - drag_,
        "drag": drag_,
        "born_rank": np.where(resolved, 1, 2).astype(np.int32),
        "phi_ablated": col(phi_ablated, phi * 0.9),
        "purity": np.full(n, 0.5),
        "pr": np.full(n, 2.0),
        "ipr": np.full(n, 0.4),
        "pr_classical": np.full(n, 2.5),
        "xi": np.full(n, 0.6),
        "xi_pair": np.full(n, 0.8),
        "burial": col(burial, 1.2),
        "efficiency": np.full(n, 0.3),
        "drive_pred": np.full(n, 0.1),
        "h_norm": np.full(n, 10.0),
        "h_dot_g": delta_ / 2,
        "h_dot_c": -delta_ / 2,
        "gmax": np.full(n, gmax),
        "dG_max": col(dG, 0.0),
        "psi_g_rotation": np.zeros(n),
    }
    return pa.table(data, schema=STEP_SCHEMA)


def trial_record(
    trial_id: str,
    *,
    model: str = "m",
    protocol: str = "full",
    sentence_id: str = "s",
    lr: float = 1e-4,
    seed: int = 0,
    steps: int = 10,
    steps_done: int | None = None,
    status: str = "ok",
    gmax: float = 0.5,
    n_contexts: int = 1,
    context_index: int | None = None,
    stop_reason: str | None = None,
    bracket_id: str | None = None,
    finished_at: datetime | None = None,
) -> pa.Table:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    record = TrialRecord(
        trial_id=trial_id,
        bracket_id=bracket_id or f"{model}|{protocol}|{sentence_id}|{seed}|{context_index}|{steps}",
        model=model, protocol=protocol, sentence_id=sentence_id, target=" t", competitor=" c",
        context="ctx", n_contexts=n_contexts, context_index=context_index, lr=lr, seed=seed,
        steps=steps, steps_done=steps if steps_done is None else steps_done, status=status,
        stop_reason=stop_reason, gmax=gmax, gmax_head=gmax, tied=True, trainable_params=1,
        total_params=1, started_at=now, finished_at=finished_at or now, wall_s=1.0, host="test",
        device="cpu", config=json.dumps({"lr": lr}), versions="{}",
    )
    return record.table()


def write_plan(store: Store | str, trial_ids: Sequence[str], name: str = "sweep") -> None:
    """``plan.json`` as the orchestrator writes it: the sweep's current trial ids."""
    store = store if isinstance(store, Store) else Store.open(store)
    store.write_text(json.dumps({"name": name, "trials": sorted(trial_ids)}, indent=0), layout.PLAN_FILE)


def write_trial(store: Store | str, steps: pa.Table | None, record: pa.Table | None) -> None:
    """Steps first, trial record last (a missing record = a killed trial)."""
    store = store if isinstance(store, Store) else Store.open(store)
    trial_id = (record if record is not None else steps).column("trial_id")[0].as_py()
    if steps is not None:
        store.write_table(steps, *layout.steps_file(trial_id))
    if record is not None:
        store.write_table(record, *layout.trial_file(trial_id))


# ----------------------------------------------------------------------------------------------
# a whole grid (benchmark)


def synthetic_grid(
    store: Store | str,
    *,
    n_trials: int,
    steps: int = 99,
    models: Sequence[str] = ("model-a", "model-b", "model-c", "model-d"),
    protocols: Sequence[str] = ("full", "lora"),
    n_sentences: int = 10,
    rates: Sequence[float] = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4),
    trials_per_file: int = 10_000,
    seed: int = 0,
    plan: bool = False,
) -> int:
    """Write ``n_trials`` trials x (steps + 1) rows: Φ(t) a logistic flip of random sharpness
    and timing (``plan``: and a plan.json naming them all, as a sweep has). Returns the number
    of step rows written."""
    import pyarrow.parquet as pq

    store = store if isinstance(store, Store) else Store.open(store)
    rng = np.random.default_rng(seed)
    grid = [(m, p, s, r) for m in models for p in protocols for s in range(n_sentences) for r in rates]
    gmax_of = {(m, s): 0.3 + 0.6 * rng.random() for m in models for s in range(n_sentences)}
    T = steps + 1
    rows = 0
    t = np.arange(T, dtype=np.float64)
    for start in range(0, n_trials, trials_per_file):
        k = min(trials_per_file, n_trials - start)
        idx = np.arange(start, start + k)
        pts = [grid[i % len(grid)] for i in idx]
        seeds = idx // len(grid)
        ids = np.array([f"{i:016x}" for i in idx])
        lr = np.array([p[3] for p in pts])
        gm = np.array([gmax_of[(p[0], p[2])] for p in pts])
        sharp = np.exp(rng.normal(0.0, 1.5, k))
        flip_at = rng.uniform(1, steps * 1.3, k)
        with np.errstate(over="ignore"):
            phi = -0.2 + 0.5 / (1 + np.exp(-sharp[:, None] * (t[None, :] - flip_at[:, None])))
        phi += rng.normal(0, 1e-3, (k, T))
        drag = -0.1 + 0.05 * rng.standard_normal((k, 1)) * t[None, :] / T
        delta = -1.0 + 2.0 * t[None, :] / T * np.ones((k, 1))
        n = k * T
        rep = lambda a: np.repeat(np.asarray(a), T)  # noqa: E731
        flat = lambda a: np.asarray(a).reshape(-1)  # noqa: E731
        res = flat(phi) > 0
        cols = {
            "trial_id": rep(ids), "step": np.tile(t.astype(np.int32), k),
            "context_id": np.zeros(n, np.int32), "model": rep([p[0] for p in pts]),
            "protocol": rep([p[1] for p in pts]), "sentence_id": rep([f"s{p[2]}" for p in pts]),
            "lr": rep(lr), "seed": rep(seeds).astype(np.int64),
            "loss": flat(3.0 - 2.0 * t[None, :] / T * np.ones((k, 1))),
            "grad_norm": np.ones(n), "step_ms": np.full(n, 10.0), "obs_ms": np.ones(n),
            "p_g": np.full(n, 0.3), "p_c": np.full(n, 0.2), "z_g": flat(delta),
            "z_c": np.zeros(n), "logit_gap": flat(delta),
            "rank_g": np.where(res, 1, 2).astype(np.int64),
            "rank_c": np.where(res, 2, 1).astype(np.int64),
            "pool_size": np.full(n, 12, np.int32), "pool_mass": np.full(n, 0.9),
            "pool_capped": np.zeros(n, bool), "born_g": 0.5 + flat(phi) / 2,
            "born_c": 0.5 - flat(phi) / 2, "phi": flat(phi), "signal": flat(phi - drag),
            "drag": flat(drag), "born_rank": np.where(res, 1, 2).astype(np.int32),
            "phi_ablated": flat(phi) * 0.9, "purity": np.full(n, 0.5), "pr": np.full(n, 2.0),
            "ipr": np.full(n, 0.4), "pr_classical": np.full(n, 2.5), "xi": np.full(n, 0.6),
            "xi_pair": np.full(n, 0.8),
            "burial": flat(1.5 - t[None, :] / T * np.ones((k, 1))),
            "efficiency": np.full(n, 0.3), "drive_pred": np.full(n, 0.1),
            "h_norm": np.full(n, 10.0), "h_dot_g": flat(delta) / 2,
            "h_dot_c": -flat(delta) / 2, "gmax": rep(gm),
            "dG_max": np.where(rep([p[1] for p in pts]) == "full", 1e-4, 0.0),
            "psi_g_rotation": np.zeros(n),
        }
        table = pa.table(cols, schema=STEP_SCHEMA)
        name = f"bulk-{start // trials_per_file:05d}"
        final = store.path("steps", f"{name}.parquet")
        store.fs.create_dir(store.path("steps"), recursive=True)
        pq.write_table(table, final, filesystem=store.fs, row_group_size=1 << 20)
        rows += n
        now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        rec = {
            "trial_id": ids, "model": [p[0] for p in pts], "protocol": [p[1] for p in pts],
            "sentence_id": [f"s{p[2]}" for p in pts], "target": [" t"] * k,
            "competitor": [" c"] * k, "context": ["ctx"] * k, "n_contexts": np.ones(k, np.int32),
            "lr": lr, "seed": seeds.astype(np.int64), "steps": np.full(k, steps, np.int32),
            "steps_done": np.full(k, steps, np.int32), "status": ["ok"] * k, "error": [None] * k,
            "stop_reason": [None] * k, "gmax": gm, "gmax_head": gm, "tied": np.ones(k, bool),
            "trainable_params": np.ones(k, np.int64), "total_params": np.ones(k, np.int64),
            "started_at": [now] * k, "finished_at": [now] * k, "wall_s": np.ones(k),
            "host": ["bench"] * k, "device": ["cpu"] * k, "config": ["{}"] * k,
            "versions": ["{}"] * k, "node_id": [None] * k, "context_index": [None] * k,
            "pack_size": np.ones(k, np.int32),
            "bracket_id": [f"{p[0]}|{p[1]}|s{p[2]}|{s}" for p, s in zip(pts, seeds)],
        }
        store.write_table(pa.table(rec, schema=TRIAL_SCHEMA), "trials", f"{name}.parquet")
    if plan:
        write_plan(store, [f"{i:016x}" for i in range(n_trials)], name="bench")
    return rows


def geometry_table(model: str, *, mean_g2: float, cls: str, sentences: dict[str, float],
                   ks_norm: float = 0.05, ks_exp: float = 0.2) -> pa.Table:
    """A geometry file's rows for a model (``sentences``: id → G_max)."""
    from analysis.schema import GEOMETRY_SCHEMA

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    base = {
        "model": model, "family": "gpt2", "tied": True, "vocab_size": 100, "dim": 8,
        "n_pairs": 1000, "tau": 0.3, "seed": 0, "mean_g2": mean_g2, "frac_above_tau": 0.1,
        "ks_norm": ks_norm, "ks_exp": ks_exp, "class": cls, "class_index": ks_exp - ks_norm,
        "hist_edges": [0.0, 0.1, 0.2], "hist_counts": [7, 3], "created_at": now,
        "versions": "{}",
    }
    rows = [
        {**base, "sentence_id": sid, "target": " t", "competitor": " c", "n_contexts": 1,
         "gmax": g, "gmax_head": g, "born_rank0": 2.0, "B0": 1.1, "eps0": 0.3, "phi0": -0.1}
        for sid, g in sorted(sentences.items())
    ] or [{**base}]
    return pa.Table.from_pylist(rows, schema=GEOMETRY_SCHEMA)


def is_close(a: float | None, b: float | None, tol: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
