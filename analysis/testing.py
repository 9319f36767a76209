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
from phantom.outcomes import StopReason, TrialStatus
from phantom.protocols import Protocol
from phantom.schema import STEP_SCHEMA, TRIAL_SCHEMA, TrialRecord
from phantom.storage import Store


def step_table(
    trial_id: str,
    phi: Sequence[float],
    *,
    model: str = "m",
    protocol: str = Protocol.FULL,
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
    precision: tuple[str, str] = ("fp32", "fp32"),
) -> pa.Table:
    """One context's step rows (step 0..T) from a planted Φ series; every other column gets
    a consistent default (ranks follow the sign of Φ, S = Φ − D). In a column given as a
    sequence, None is written as NULL (as pandas writes NaN), NaN as NaN."""
    phi = np.asarray(phi, dtype=np.float64)
    n = phi.size
    steps = np.arange(n, dtype=np.int32)

    def col(values, default):
        if values is not None and not np.isscalar(values) and any(v is None for v in values):
            return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
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
        "train_precision": [precision[0]] * n,
        "obs_precision": [precision[1]] * n,
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
    protocol: str = Protocol.FULL,
    sentence_id: str = "s",
    lr: float = 1e-4,
    seed: int = 0,
    steps: int = 10,
    steps_done: int | None = None,
    status: str = TrialStatus.OK,
    gmax: float = 0.5,
    gmax_head: float | None = None,
    n_contexts: int = 1,
    context_index: int | None = None,
    stop_reason: str | None = None,
    bracket_id: str | None = None,
    finished_at: datetime | None = None,
    tied: bool = True,
    precision: tuple[str, str] | None = ("fp32", "fp32"),
) -> pa.Table:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    record = TrialRecord(
        trial_id=trial_id,
        bracket_id=bracket_id or f"{model}|{protocol}|{sentence_id}|{seed}|{context_index}|{steps}",
        model=model, protocol=protocol, sentence_id=sentence_id, target=" t", competitor=" c",
        context="ctx", n_contexts=n_contexts, context_index=context_index, lr=lr, seed=seed,
        steps=steps, steps_done=steps if steps_done is None else steps_done, status=status,
        stop_reason=stop_reason, gmax=gmax, gmax_head=gmax if gmax_head is None else gmax_head, tied=tied, trainable_params=1,
        total_params=1, started_at=now, finished_at=finished_at or now, wall_s=1.0, host="test",
        device="cpu", config=json.dumps({"lr": lr}), versions="{}",
        train_precision=precision and precision[0], obs_precision=precision and precision[1],
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


def synthetic_block(
    rng: np.random.Generator,
    *,
    ids: Sequence[str],
    models: Sequence[str],
    protocols: Sequence[str],
    sentences: Sequence[str],
    lrs: np.ndarray,
    seeds: np.ndarray,
    gmax: np.ndarray,
    steps: int,
) -> tuple[pa.Table, pa.Table]:
    """k trials (one entry each in ``ids`` ... ``gmax``) x (steps + 1) rows: Φ(t) a logistic flip
    of random sharpness and timing, drawn from ``rng``. Returns (step rows, trial records), the
    steps member-major: trial j owns rows ``j*(steps+1) .. j*(steps+1)+steps``."""
    k, T = len(ids), steps + 1
    t = np.arange(T, dtype=np.float64)
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
        "context_id": np.zeros(n, np.int32), "model": rep(models),
        "protocol": rep(protocols), "sentence_id": rep(sentences),
        "lr": rep(lrs), "seed": rep(seeds).astype(np.int64),
        "loss": flat(3.0 - 2.0 * t[None, :] / T * np.ones((k, 1))),
        "grad_norm": np.ones(n), "step_ms": np.full(n, 10.0), "obs_ms": np.ones(n),
        "train_precision": ["fp32"] * n, "obs_precision": ["fp32"] * n,
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
        "h_dot_c": -flat(delta) / 2, "gmax": rep(gmax),
        "dG_max": np.where(rep(protocols) == Protocol.FULL.value, 1e-4, 0.0),
        "psi_g_rotation": np.zeros(n),
    }
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rec = {
        "trial_id": list(ids), "model": list(models), "protocol": list(protocols),
        "sentence_id": list(sentences), "target": [" t"] * k,
        "competitor": [" c"] * k, "context": ["ctx"] * k, "n_contexts": np.ones(k, np.int32),
        "lr": lrs, "seed": np.asarray(seeds).astype(np.int64), "steps": np.full(k, steps, np.int32),
        "steps_done": np.full(k, steps, np.int32), "status": [TrialStatus.OK.value] * k, "error": [None] * k,
        "stop_reason": [None] * k, "gmax": gmax, "gmax_head": gmax, "tied": np.ones(k, bool),
        "trainable_params": np.ones(k, np.int64), "total_params": np.ones(k, np.int64),
        "started_at": [now] * k, "finished_at": [now] * k, "wall_s": np.ones(k),
        "host": ["bench"] * k, "device": ["cpu"] * k, "config": ["{}"] * k,
        "train_precision": ["fp32"] * k, "obs_precision": ["fp32"] * k,
        "versions": ["{}"] * k, "node_id": [None] * k, "context_index": [None] * k,
        "pack_size": np.ones(k, np.int32),
        "bracket_id": [f"{m}|{p}|{s}|{sd}" for m, p, s, sd in zip(models, protocols, sentences, seeds)],
    }
    return pa.table(cols, schema=STEP_SCHEMA), pa.table(rec, schema=TRIAL_SCHEMA)


def synthetic_grid(
    store: Store | str,
    *,
    n_trials: int,
    steps: int = 99,
    models: Sequence[str] = ("model-a", "model-b", "model-c", "model-d"),
    protocols: Sequence[str] = (Protocol.FULL, Protocol.LORA),
    n_sentences: int = 10,
    rates: Sequence[float] = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4),
    trials_per_file: int = 10_000,
    seed: int = 0,
    plan: bool = False,
) -> int:
    """Write ``n_trials`` trials x (steps + 1) rows (:func:`synthetic_block`) in files of
    ``trials_per_file`` trials (``plan``: and a plan.json naming them all, as a sweep has).
    Returns the number of step rows written."""
    import pyarrow.parquet as pq

    store = store if isinstance(store, Store) else Store.open(store)
    rng = np.random.default_rng(seed)
    grid = [(m, p, s, r) for m in models for p in protocols for s in range(n_sentences) for r in rates]
    gmax_of = {(m, s): 0.3 + 0.6 * rng.random() for m in models for s in range(n_sentences)}
    rows = 0
    for start in range(0, n_trials, trials_per_file):
        k = min(trials_per_file, n_trials - start)
        idx = np.arange(start, start + k)
        pts = [grid[i % len(grid)] for i in idx]
        steps_table, records = synthetic_block(
            rng, ids=[f"{i:016x}" for i in idx], models=[p[0] for p in pts], protocols=[p[1] for p in pts],
            sentences=[f"s{p[2]}" for p in pts], lrs=np.array([p[3] for p in pts]), seeds=idx // len(grid),
            gmax=np.array([gmax_of[(p[0], p[2])] for p in pts]), steps=steps)
        name = f"bulk-{start // trials_per_file:05d}"
        store.fs.create_dir(store.path("steps"), recursive=True)
        pq.write_table(steps_table, store.path("steps", f"{name}.parquet"), filesystem=store.fs,
                       row_group_size=1 << 20)
        rows += steps_table.num_rows
        store.write_table(records, "trials", f"{name}.parquet")
    if plan:
        write_plan(store, [f"{i:016x}" for i in range(n_trials)], name="bench")
    return rows


def geometry_table(model: str, *, mean_g2: float, cls: str, sentences: dict[str, float],
                   ks_norm: float = 0.05, ks_exp: float = 0.2) -> pa.Table:
    """A geometry file's rows for a model (``sentences``: id → G_max)."""
    from phantom import schema

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
    return schema.geometry_table([schema.row_from(schema.GeometryRow, r) for r in rows])


def is_close(a: float | None, b: float | None, tol: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


# ----------------------------------------------------------------------------------------------
# a random grid with every kind of trial (tests that recompute the views independently)


def _trajectory(rng: np.random.Generator, budget: int, flip: int | None, pre: bool) -> np.ndarray:
    """Φ_0..Φ_T: a shoulder below 0, a flip at ``flip`` (sharp or a ramp), then a plateau of
    random noise (some saturate, some do not); ``pre``: positive from the start."""
    T = budget + 1
    if pre:
        return rng.uniform(0.02, 0.3) + np.cumsum(rng.normal(0, rng.choice([5e-4, 5e-3]), T))
    phi0 = -rng.uniform(0.05, 0.4)
    shoulder = phi0 + np.arange(T) * rng.uniform(0, 0.01) + rng.normal(0, 0.002, T)
    phi = np.minimum(shoulder, -1e-3)
    if flip is None:
        return phi
    top = rng.uniform(0.01, 0.4)
    if rng.random() < 0.4:  # a ramp: Φ crosses zero at the flip step
        ramp = np.linspace(phi0, 0, flip + 1)[:-1]
        phi[:flip] = np.minimum(ramp + rng.normal(0, 0.002, flip), -1e-3)
    noise = rng.choice([3e-4, 3e-3, 3e-2])
    phi[flip:] = np.maximum(top + rng.normal(0, noise, T - flip), 1e-3)
    return phi


def random_grid(
    store: Store | str,
    *,
    seed: int = 0,
    budget: int = 20,
    models: Sequence[str] = ("m1", "m2"),
    protocols: Sequence[str] = (Protocol.FULL, Protocol.LORA),
    n_sentences: int = 4,
    rates: Sequence[float] = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3),
    seeds: Sequence[int] = (0, 1),
) -> list[str]:
    """Write a grid of every kind of trial: flips (sharp, ramps, at step 1), plateaus that
    saturate or not, unresolved, pre-resolved, diverged (with and without a non-finite last
    row), errored (with rows and without), stopped at the flip or at saturation, several
    contexts trained together (one context sometimes non-finite), contexts run apart
    (``context_index``), seeds, a NULL loss at one step of some trials (as pandas writes NaN);
    η_c brackets mostly monotone, sometimes not. Returns the ids."""
    store = store if isinstance(store, Store) else Store.open(store)
    rng = np.random.default_rng(seed)
    nulls = np.random.default_rng([seed, 1])  # its own stream: the rest of the grid is unchanged
    ids = []
    for model in models:
        for protocol in protocols:
            for s in range(n_sentences):
                sid = f"s{s}"
                gmax = float(rng.uniform(0.3, 0.9))
                pre = s == 0 and model == models[0]
                apart = s == 1  # each context its own trial (and bracket)
                together = 2 if s == 2 else 1  # two contexts in one batch
                theta = float(rng.uniform(0.3, 1.5)) * gmax * float(np.sqrt(rates[1] * rates[-2]))
                if s == 3 and model == models[-1]:
                    theta *= 1e3  # above every rate: no rate flips
                for sd in seeds:
                    for ctx_index in ((0, 1) if apart else (None,)):
                        for lr in rates:
                            tid = f"{model}-{protocol}-{sid}-{sd}-{ctx_index}-{lr:g}"
                            ids.append(tid)
                            _random_trial(store, rng, tid, budget, pre, together, theta,
                                          model=model, protocol=protocol, sentence_id=sid,
                                          lr=lr, seed=sd, gmax=gmax, context_index=ctx_index,
                                          top_rate=lr == rates[-1], nulls=nulls)
    return ids


def _random_trial(store, rng, tid, budget, pre, n_ctx, theta, *, top_rate, nulls, **meta) -> None:
    lr, gmax = meta["lr"], meta["gmax"]
    # flips above θ on x = η·G_max, with noise: sometimes non-monotone
    flips = lr * gmax * float(rng.lognormal(0, 0.4)) > theta
    flip = (1 if rng.random() < 0.2 else int(rng.integers(2, budget + 1))) if flips else None
    status, stop, rows = TrialStatus.OK, None, budget + 1
    u = rng.random()
    if u < 0.06:
        status, rows = TrialStatus.ERROR, int(rng.integers(0, budget))
    elif top_rate and u < 0.35:
        status, rows = TrialStatus.DIVERGED, int(rng.integers(2, budget))
    elif flip is not None and u < 0.5:
        stop, rows = StopReason.FLIP, flip + 1  # the η_c search's stop at the flip
    elif flip is not None and u < 0.6:
        stop, rows = StopReason.PHI_SATURATION, min(budget + 1, flip + 4)
    tables = []
    base = _trajectory(rng, budget, flip, pre)
    null_at = (int(nulls.integers(0, n_ctx)), int(nulls.integers(1, budget + 1))) if nulls.random() < 0.15 else None
    for c in range(n_ctx):
        phi = base + (rng.normal(0, 0.03, budget + 1) if c else 0.0)
        if c and rng.random() < 0.5:
            phi[int(rng.integers(1, budget + 1))] = np.nan  # one context non-finite at one step
        delta = np.cumsum(rng.normal(0.1, 0.2, budget + 1))
        drag = -0.1 + np.cumsum(rng.normal(0, 0.01, budget + 1))
        burial = 1.5 + np.cumsum(rng.normal(-0.03, 0.02, budget + 1))
        dG = np.zeros(budget + 1) if Protocol.parse(meta["protocol"]) is not Protocol.FULL else np.abs(rng.normal(0, 1e-4, budget + 1))
        loss = [3.0 - 2.0 * t / budget for t in range(budget + 1)]
        if null_at is not None and null_at[0] == c:
            loss[null_at[1]] = None
        t = step_table(tid, phi, delta=delta, drag=drag, burial=burial, dG=dG, loss=loss, context_id=c,
                       **{k: meta[k] for k in ("model", "protocol", "sentence_id", "lr", "seed", "gmax")})
        tables.append(t.slice(0, rows))
    steps = pa.concat_tables(tables) if rows else None
    if status is TrialStatus.DIVERGED and rng.random() < 0.5:
        # an older worker wrote the non-finite row too
        bad = step_table(tid, [np.nan] * (rows + 1), **{k: meta[k] for k in ("model", "protocol", "sentence_id", "lr", "seed", "gmax")})
        steps = pa.concat_tables([steps, bad.slice(rows, 1)])
    record = trial_record(tid, steps=budget, steps_done=max(rows - 1, 0), status=status,
                          stop_reason=stop, n_contexts=n_ctx, **meta)
    write_trial(store, steps, record)
