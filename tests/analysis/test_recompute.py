"""An independent recomputation of the per-trial summary (science §4–5) and the fits (science §5, with
the bootstrap intervals) from the raw Parquet, in pandas/NumPy loops that never read a view,
compared with the views: on random synthetic grids (every kind of trial, two overlapping
folders with plans) and on real tiny-model trials."""

from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.stats

from phantom.analysis import db
from phantom.analysis.settings import AnalysisSettings
from phantom.analysis.testing import random_grid, write_plan

SETTINGS = AnalysisSettings(bootstrap=60, bootstrap_seed=7)
SHAPED = {"catapult", "catapult-like", "intermediate", "borderline", "drift"}
LIKE = {"catapult", "catapult-like"}

# ----------------------------------------------------------------------------------------------
# which trials: read every folder, one record per id, the plans, the steps of the kept record


def read_folder(folder):
    recs = pq.read_table(folder / "trials").to_pandas()
    steps = pq.read_table(folder / "steps").to_pandas() if (folder / "steps").is_dir() else None
    plan = json.loads((folder / "plan.json").read_text())["trials"] if (folder / "plan.json").is_file() else None
    return recs, steps, plan


def load(folders, all_trials=False):
    # a storage root stands for the sweeps inside it
    folders = [g for f in folders for g in ([f] if (f / "trials").is_dir() else
                                            sorted(p for p in f.iterdir() if (p / "trials").is_dir()))]
    data = [read_folder(f) for f in folders]
    copies = pd.concat([r.assign(source=i) for i, (r, _, _) in enumerate(data)], ignore_index=True)
    copies["is_error"] = copies.status == "error"
    copies = copies.sort_values(["is_error", "finished_at", "source"], ascending=[True, False, True])
    kept = copies.drop_duplicates("trial_id", keep="first").set_index("trial_id")
    scope = set()
    for i, (recs, _, plan) in enumerate(data):
        scope |= set(plan) if plan is not None else set(recs.trial_id)
    trials = kept if all_trials else kept[kept.index.isin(scope)]
    steps = {}
    for tid, rec in trials.iterrows():
        s = data[rec.source][1]
        steps[tid] = s[s.trial_id == tid] if s is not None else s
    return trials, steps


# ----------------------------------------------------------------------------------------------
# science §4, one trial at a time


def trial_steps(rows: pd.DataFrame) -> pd.DataFrame:
    """Contexts averaged per step; a step with any non-finite context row is dropped."""
    if rows is None or rows.empty:
        return pd.DataFrame(columns=["step"])
    out = []
    for step, g in rows.groupby("step"):
        if not (np.isfinite(g.phi).all() and np.isfinite(g.logit_gap).all() and np.isfinite(g.loss).all()):
            continue
        out.append({"step": int(step), "phi": g.phi.mean(), "S": g.signal.mean(), "D": g.drag.mean(),
                    "delta": g.logit_gap.mean(), "B": g.burial.mean(), "eps": g.efficiency.mean(),
                    "born_rank": g.born_rank.mean(), "pool_size": g.pool_size.mean(),
                    "rank_resolved": bool((g.rank_g < g.rank_c).all()), "phi_ablated": g.phi_ablated.mean(),
                    "dG": g.dG_max.max()})
    return pd.DataFrame(out).sort_values("step") if out else pd.DataFrame(columns=["step"])


def ratio(x: np.ndarray, steps: np.ndarray):
    d = np.abs(np.diff(x))
    if d.size == 0 or d.mean() == 0:
        return None, (int(steps[1 + np.argmax(d)]) if d.size else None)
    return d.max() / d.mean(), int(steps[1 + np.argmax(d)])


def summarize(rec, rows, s: AnalysisSettings) -> dict:
    ts = trial_steps(rows)
    out = {"status": rec.status, "budget": rec.steps, "x": rec.lr * rec.gmax, "bracket_id": rec.bracket_id}
    if ts.empty:
        out.update(evaluations=None, flip_step=None, character=rec.status if rec.status != "ok" else None,
                   flipped=None if rec.status == "error" else rec.status == "diverged", B_T=None,
                   phi_stop=None, R=None, max_dG=None, failure_mode="diverged" if rec.status == "diverged" else None)
        return out
    st, phi = ts.step.to_numpy(), ts.phi.to_numpy()
    first, last = ts.iloc[0], ts.iloc[-1]
    out.update(evaluations=len(ts), last_step=int(st[-1]), phi0=first.phi, S0=first.S, D0=first.D,
               delta0=first.delta, B0=first.B, eps0=first.eps, born_rank0=first.born_rank,
               pool_size0=first.pool_size, phi_T=last.phi, D_T=last.D, B_T=last.B,
               phi_ablated_T=last.phi_ablated, born_rank_T=last.born_rank, max_dG=ts.dG.max())
    pos = st[phi > 0]
    flip = int(pos[0]) if pos.size else None
    rr = st[ts.rank_resolved.to_numpy(dtype=bool)]
    out["flip_step"], out["rank_flip_step"] = flip, (int(rr[0]) if rr.size else None)
    out["flipped"] = None if rec.status == "error" else (rec.status == "diverged" or flip is not None)
    at_flip = rec.stop_reason == "flip"
    R, jump = ratio(phi, st)
    Rd, _ = ratio(ts.delta.to_numpy(), st)
    if at_flip:
        R = jump = Rd = None
    out.update(R=R, jump_step=jump, R_delta=Rd, amplification=R / Rd if R is not None and Rd else None)
    w, tol = s.saturation_window, s.saturation_tol
    stop = None
    if flip is not None:
        for i in range(w - 1, len(phi)):
            win = phi[i - w + 1:i + 1]
            if st[i - w + 1] >= flip and win.max() - win.min() < tol:
                stop = i
                break
    out["phi_stop"] = int(st[stop]) if stop is not None else None
    out["compute_saved"] = 1 - st[stop] / rec.steps if stop is not None else None
    out["ranking_changed_after_stop"] = (
        bool(ts.born_rank.iloc[stop] != last.born_rank or ts.rank_resolved.iloc[stop] != last.rank_resolved)
        if stop is not None else None)
    if rec.status in ("diverged", "error"):
        ch = rec.status
    elif phi[0] > 0 and st[0] == 0:
        ch = "pre-resolved"
    elif flip is None:
        ch = "unresolved"
    elif at_flip:
        ch = "stopped-at-flip"
    elif flip == 1:
        ch = "immediate"
    else:
        ch = next((name for cut, name in ((s.catapult, "catapult"), (s.catapult_like, "catapult-like"),
                                          (s.intermediate, "intermediate"), (s.borderline, "borderline"))
                   if R >= cut), "drift")
    out["character"] = ch
    out["failure_mode"] = ("diverged" if rec.status == "diverged" else
                           ("structural" if last.D < first.D else "kinematic")
                           if rec.status == "ok" and flip is None else None)
    return out


# ----------------------------------------------------------------------------------------------
# science §5 with weights (a bootstrap replicate = weights on sentences; replicate 0: all 1)


def lowbias32(x: int) -> int:
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def weights(sentences: list[str], r: int, seed: int) -> dict[str, int]:
    if r == 0:
        return {s: 1 for s in sentences}
    h = lowbias32((lowbias32(seed) + r) & 0xFFFFFFFF)
    w: dict[str, int] = defaultdict(int)
    for j in range(len(sentences)):
        w[sentences[lowbias32(h ^ j) % len(sentences)]] += 1
    return w


def shape_fit(points: dict[float, list[float]]):
    """Every cut between sorted distinct x; fewest errors, then bounded, widest in log x,
    then the lower end (NULL last, as DuckDB orders)."""
    xs = sorted(points)
    if not xs:
        return None
    best = None
    for k in range(len(xs) + 1):
        lo = xs[k - 1] if k else None
        hi = xs[k] if k < len(xs) else None
        err = sum(pos if (lo is not None and x <= lo) else 0 for x, (pos, _) in points.items()) + \
            sum(neg if (lo is None or x > lo) else 0 for x, (_, neg) in points.items())
        bounded = lo is not None and hi is not None
        width = (math.log(hi / lo) if lo > 0 else hi - lo) if bounded else 0.0
        key = (err, not bounded, -width, lo is None, lo or 0.0)
        if best is None or key < best[0]:
            best = (key, err, lo, hi)
    _, err, lo, hi = best
    theta = (math.sqrt(lo * hi) if lo > 0 else (lo + hi) / 2) if lo is not None and hi is not None else None
    n = sum(p + q for p, q in points.values())
    return {"n_shape": n, "shape_errors": err, "shape_lo": lo, "shape_hi": hi, "theta_shape": theta}


def fits(summary: pd.DataFrame, trials: pd.DataFrame, s: AnalysisSettings):
    lr_ref = s.lr_ref_map
    t = summary.join(trials[["model", "protocol", "sentence_id", "lr", "seed", "gmax", "context_index", "stop_reason"]])
    # η_c per bracket
    brackets = {}
    for bid, g in t.groupby("bracket_id"):
        out = g[g.flipped.notna()]
        no = out[~out.flipped.astype(bool)].lr
        yes = out[out.flipped.astype(bool)].lr
        lo, hi = (no.max() if len(no) else None), (yes.min() if len(yes) else None)
        eta = math.sqrt(lo * hi) if lo is not None and hi is not None else None
        brackets[bid] = dict(model=g.model.iloc[0], protocol=g.protocol.iloc[0], sentence_id=g.sentence_id.iloc[0],
                             gmax=g.gmax.mean(), lr_lo=lo, lr_hi=hi, eta_c=eta,
                             non_monotone=bool(lo is not None and hi is not None and lo >= hi),
                             theta=eta * g.gmax.mean() if eta else None)
    per_sentence = defaultdict(list)
    for b in brackets.values():
        per_sentence[(b["model"], b["protocol"], b["sentence_id"])].append(b)
    sent = {}
    for key, bs in per_sentence.items():
        th = [b["theta"] for b in bs if b["theta"] is not None]
        g_eta = [b["gmax"] for b in bs if b["eta_c"] is not None]
        theta = float(np.mean(th)) if th else None
        sent[key] = dict(gmax=float(np.mean([b["gmax"] for b in bs])), theta=theta,
                         H=lr_ref[key[1]] * float(np.mean(g_eta)) / theta if theta else None)
    # reference trials: ok, rate nearest η_ref, then those stopped at the flip left out
    ref = t[t.status == "ok"].copy()
    ref["dist"] = [round(abs(math.log(lr / lr_ref[p])), 9) for lr, p in zip(ref.lr, ref.protocol)]
    ref = ref[ref.dist == ref.groupby(["model", "protocol", "sentence_id"]).dist.transform("min")]
    ref = ref[ref.stop_reason != "flip"]
    burial = ref.groupby(["model", "protocol", "sentence_id"]).B_T.mean().to_dict()
    shaped = t[t.character.isin(SHAPED)]

    result = {}
    for (model, proto), g in t.groupby(["model", "protocol"]):
        sentences = sorted(g[g.status != "error"].sentence_id.unique())
        reps = []
        for r in range(s.bootstrap + 1):
            w = weights(sentences, r, s.bootstrap_seed)
            pts: dict[float, list[float]] = defaultdict(lambda: [0, 0])
            sh = shaped[(shaped.model == model) & (shaped.protocol == proto)]
            for sid, x, ch in zip(sh.sentence_id, sh.x, sh.character):
                if sid in w:
                    pts[x][0 if ch in LIKE else 1] += w[sid]
            rep = shape_fit(dict(pts)) or {"theta_shape": None}
            res = [(w[sid], sent[(model, proto, sid)]) for sid in w if (model, proto, sid) in sent]
            with_eta = [(k, v) for k, v in res if v["theta"] is not None]
            if with_eta:
                tw = sum(k for k, _ in with_eta)
                rep["theta_resolve"] = sum(k * v["theta"] for k, v in with_eta) / tw
                rep["gmax_resolved"] = sum(k * v["gmax"] for k, v in with_eta) / tw
                rep["H"] = lr_ref[proto] * rep["gmax_resolved"] / rep["theta_resolve"]
                rep["H_min"] = min(v["H"] for _, v in with_eta)
                rep["H_max"] = max(v["H"] for _, v in with_eta)
            else:
                rep.update(theta_resolve=None, H=None)
            bs = [(w[sid], burial[(model, proto, sid)]) for sid in w
                  if (model, proto, sid) in burial and not pd.isna(burial[(model, proto, sid)])]
            rep["B_FT"] = sum(k * b for k, b in bs) / sum(k for k, _ in bs) if bs else None
            reps.append(rep)
        out = dict(reps[0])
        for col in ("theta_shape", "theta_resolve", "H", "B_FT"):
            vals = [rep[col] for rep in reps[1:] if rep.get(col) is not None]
            lo_q, hi_q = (1 - s.confidence) / 2, (1 + s.confidence) / 2
            ok = len(sentences) >= 2 and vals
            out[f"{col}_ci_lo"] = float(np.quantile(vals, lo_q)) if ok else None
            out[f"{col}_ci_hi"] = float(np.quantile(vals, hi_q)) if ok else None
            if col == "theta_shape":
                out["theta_shape_boot_defined"] = len(vals) / s.bootstrap if len(sentences) >= 2 else None
        result[(model, proto)] = out
    return result, brackets, ref


# ----------------------------------------------------------------------------------------------
# comparison


def close(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if b is None:
        return False
    if isinstance(a, (bool, np.bool_, str)):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def compare(folders, settings=SETTINGS):
    trials, steps = load(folders, settings.all_trials)
    mine = {tid: summarize(rec, steps[tid], settings) for tid, rec in trials.iterrows()}
    with db.connect(folders, settings) as conn:
        views = {r["trial_id"]: r for r in db.records(conn, "SELECT * FROM trial_summary")}
        fit_rows = {(r["model"], r["protocol"]): r for r in db.records(conn, "SELECT * FROM fits")}
        eta_rows = {r["bracket_id"]: r for r in db.records(conn, "SELECT * FROM eta_c")}
        ref_ids = {r[0] for r in db.fetch(conn, "SELECT trial_id FROM reference_trials")}
    assert set(views) == set(mine)
    for tid, m in mine.items():
        for col, v in m.items():
            assert close(v, views[tid][col]), (tid, col, v, views[tid][col])
    summary = pd.DataFrame.from_dict(mine, orient="index")
    ref_fits, brackets, ref = fits(summary, trials, settings)
    assert ref_ids == set(ref.index)
    assert set(eta_rows) == set(brackets)
    for bid, b in brackets.items():
        for col, v in b.items():
            assert close(v, eta_rows[bid][col]), (bid, col, v, eta_rows[bid][col])
    assert set(fit_rows) == set(ref_fits)
    for key, f in ref_fits.items():
        for col, v in f.items():
            assert close(v, fit_rows[key][col]), (key, col, v, fit_rows[key][col])
    return mine, ref_fits


# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_synthetic_grid(tmp_path, seed):
    random_grid(tmp_path, seed=seed)
    mine, ref_fits = compare([tmp_path])
    assert {m["character"] for m in mine.values()} >= {"catapult", "immediate", "stopped-at-flip", "diverged"}
    assert any(f["theta_shape_ci_lo"] is not None for f in ref_fits.values())
    assert any(f["H_ci_lo"] is not None for f in ref_fits.values())


def test_two_overlapping_sweeps_with_plans(tmp_path):
    """Two sweeps share half their trials; each plan leaves some of its records out."""
    a, b = tmp_path / "A", tmp_path / "B"
    ids = random_grid(a, seed=3, models=("m1",), seeds=(0,))
    random_grid(b, seed=3, models=("m1",), seeds=(0,))  # the same trials (same ids, same rows)
    random_grid(b, seed=4, models=("m2",), seeds=(0,))
    write_plan(a, ids[: len(ids) // 2])
    write_plan(b, [i for i in ids[len(ids) // 4:]] + [p.stem for p in (b / "trials").glob("m2-*")])
    compare([a, b])
    compare([tmp_path])
    compare([a, b], AnalysisSettings(bootstrap=20, all_trials=True))


def test_spearman_and_its_interval(tmp_path):
    random_grid(tmp_path, seed=5, n_sentences=6)
    trials, steps = load([tmp_path])
    with db.connect([tmp_path], SETTINGS) as conn:
        ref = db.records(conn, "SELECT model, protocol, gmax, R FROM reference_trials")
        corr = {(r["model"], r["protocol"]): r for r in db.records(
            conn, "SELECT * FROM correlations WHERE scope = 'model' AND x = 'gmax' AND y = 'R'")}
    groups = defaultdict(list)
    for r in ref:
        if r["R"] is not None and np.isfinite(r["R"]):
            groups[(r["model"], r["protocol"])].append((r["gmax"], r["R"]))
    checked = 0
    for key, pts in groups.items():
        x, y = np.array(pts).T
        rho = scipy.stats.spearmanr(x, y).statistic
        got = corr[key]
        assert got["n"] == len(pts)
        if np.isnan(rho):
            assert got["rho"] is None
            continue
        assert got["rho"] == pytest.approx(rho, abs=1e-12)
        if len(pts) > 3 and abs(rho) < 1:
            z, se = np.arctanh(rho), np.sqrt((1 + rho**2 / 2) / (len(pts) - 3))
            q = scipy.stats.norm.ppf(0.975)
            assert got["rho_lo"] == pytest.approx(np.tanh(z - q * se), abs=1e-12)
            assert got["rho_hi"] == pytest.approx(np.tanh(z + q * se), abs=1e-12)
            checked += 1
    assert checked


# ----------------------------------------------------------------------------------------------
# real tiny-model trials


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory, tiny_models):
    from phantom.config import StopperConfig, TrainingConfig, TrialConfig
    from phantom.workers.probe import probe_sentence
    from phantom.workers.sentences import get_sentence, load_sentences
    from phantom.workers.trial import run_trial

    out = tmp_path_factory.mktemp("real")
    base = tiny_models["tiny-llama"]
    awe, purpose = (get_sentence(s) for s in ("awe", "purpose"))

    def cfg(s, lr, protocol="full", **kw):
        return TrialConfig(model="tiny-llama", sentence_id=s.id, target=s.target, competitor=s.competitor,
                           contexts=kw.pop("contexts", s.contexts), protocol=protocol, lr=lr,
                           training=TrainingConfig(steps=10), **kw)

    cfgs = [cfg(s, lr) for s in (awe, purpose) for lr in (1e-3, 1e-2, 1e-1)]
    cfgs += [cfg(awe, lr, "lora") for lr in (1e-2, 1e-1)]
    # a sentence the random tiny model already resolves (Φ₀ > 0): found by probing, since which one
    # it is depends on the vocabulary (every word of the sentences file)
    pre = next(s for s in load_sentences().values() if probe_sentence(base, s)[0]["phi"] > 0)
    cfgs += [cfg(pre, 1e-2),  # pre-resolved
             cfg(awe, 1e-1, stopper=StopperConfig(at_flip=True)),
             cfg(purpose, 1e-2, contexts=purpose.contexts + awe.contexts),  # two contexts, one batch
             cfg(purpose, 1e-1, contexts=purpose.contexts, context_index=0)]
    for c in cfgs:
        run_trial(c, out, base=base)
    return out


def test_real_tiny_trials(real_sweep):
    mine, ref_fits = compare([real_sweep], AnalysisSettings(bootstrap=30))
    chars = {m["character"] for m in mine.values()}
    assert len(mine) == 12 and "pre-resolved" in chars and "stopped-at-flip" in chars
    assert any(m["flip_step"] for m in mine.values())
