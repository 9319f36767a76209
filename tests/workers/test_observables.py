"""Every observable against an independent float64 NumPy reference (science §3)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from phantom.workers import observables as obs

# ----------------------------------------------------------------------------------------------
# the reference: written from science §3 directly, loops and all, in NumPy float64



def observe(*args, **kwargs):
    """:func:`obs.observe` as (values by column, pool): the loss and the observables."""
    seen = obs.observe(*args, **kwargs)
    return {"loss": seen.loss, **dataclasses.asdict(seen.values)}, seen.pool

def ref_pool(p, g, c, q, cap):
    order = np.argsort(-p, kind="stable")
    csum = np.cumsum(p[order])
    hit = np.nonzero(csum >= q)[0]
    n = hit[0] + 1 if len(hit) else len(p)
    pool = list(order[:n])
    capped = n > cap
    pool = pool[:cap]
    for t in (g, c):
        if t not in pool:
            if len(pool) >= cap:
                # drop the least probable token that is not g or c
                for k in range(len(pool) - 1, -1, -1):
                    if pool[k] not in (g, c):
                        del pool[k]
                        break
                capped = True
            pool.append(t)
    return pool, capped


def reference(z, h, E, g, c, q=0.9, cap=1024):
    z = np.asarray(z, dtype=np.float64)
    E = np.asarray(E, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    pool, capped = ref_pool(p, g, c, q, cap)
    psi = {i: E[i] / np.linalg.norm(E[i]) for i in pool}
    mass = sum(p[i] for i in pool)
    pt = {i: p[i] / mass for i in pool}
    G = lambda i, j: float(psi[i] @ psi[j])  # noqa: E731
    b = {i: sum(pt[j] * G(i, j) ** 2 for j in pool) for i in pool}
    gmax = G(g, c)
    drag = sum(pt[k] * (G(k, g) ** 2 - G(k, c) ** 2) for k in pool if k not in (g, c))
    signal = (pt[g] - pt[c]) * (1 - gmax**2)
    gamma = sum(pt[i] * pt[j] * G(i, j) ** 2 for i in pool for j in pool)
    ipr = sum(v * v for v in pt.values())
    m = sum(pt[i] * psi[i] for i in pool)
    mu = m / np.linalg.norm(m)
    xi = math.sqrt(sum(pt[i] * math.acos(max(-1, min(1, psi[i] @ mu))) ** 2 for i in pool))
    xi_pair = math.sqrt(
        sum(pt[i] * pt[j] * math.acos(max(-1, min(1, G(i, j)))) ** 2 for i in pool for j in pool)
    )
    w = {i: (0.0 if i == c else pt[i]) for i in pool}
    tot = sum(w.values())
    phi_abl = sum(w[i] / tot * (G(i, g) ** 2 - G(i, c) ** 2) for i in pool)
    unit = E / np.linalg.norm(E, axis=1, keepdims=True)
    cg, cc = unit @ psi[g], unit @ psi[c]
    d_lin = sum(p[k] * (cg[k] - cc[k]) for k in range(len(p)) if k not in (g, c))
    return {
        "loss": -math.log(p[g]),
        "p_g": p[g], "p_c": p[c], "z_g": z[g], "z_c": z[c], "logit_gap": z[g] - z[c],
        "rank_g": int((z > z[g]).sum()) + 1, "rank_c": int((z > z[c]).sum()) + 1,
        "pool_size": len(pool), "pool_mass": mass, "pool_capped": capped,
        "born_g": b[g], "born_c": b[c], "phi": b[g] - b[c], "signal": signal, "drag": drag,
        "born_rank": 1 + sum(1 for i in pool if b[i] > b[g]),
        "phi_ablated": phi_abl, "purity": gamma, "pr": 1 / gamma, "ipr": ipr, "pr_classical": 1 / ipr,
        "xi": xi, "xi_pair": xi_pair, "burial": xi / math.acos(gmax),
        "efficiency": gmax**2 / sum(G(k, g) ** 2 for k in pool if k != g),
        "drive_pred": (1 - gmax) * (1 - p[g] + p[c]) - d_lin,
        "h_norm": float(np.linalg.norm(h)), "h_dot_g": float(psi[g] @ h), "h_dot_c": float(psi[c] @ h),
        "gmax": gmax,
    }


# ----------------------------------------------------------------------------------------------


def random_case(seed, V=300, d=24, temp=2.0):
    rng = np.random.default_rng(seed)
    E = rng.normal(size=(V, d))
    z = rng.normal(size=V) * temp
    h = rng.normal(size=d)
    g, c = rng.choice(V, size=2, replace=False)
    return z, h, E, int(g), int(c)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("q,cap", [(0.9, 1024), (0.5, 1024), (0.99, 40), (0.9, 3)])
def test_observables_match_numpy_reference(seed, q, cap):
    z, h, E, g, c = random_case(seed)
    got, pool = observe(
        torch.tensor(z), torch.tensor(h), torch.tensor(E), g, c, pool_mass=q, pool_cap=cap
    )
    want = reference(z, h, E, g, c, q, cap)
    for key, value in want.items():
        if isinstance(value, (bool, int, np.integer)) and not isinstance(value, float):
            assert got[key] == value, key
        else:
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert got["pool_size"] == len(pool) <= cap
    assert got["dG_max"] == 0.0 and got["psi_g_rotation"] == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_phi_is_signal_plus_drag(seed):
    z, h, E, g, c = random_case(100 + seed, V=500, d=16, temp=float(seed % 5) + 0.5)
    got, _ = observe(torch.tensor(z), torch.tensor(h), torch.tensor(E), g, c)
    assert abs(got["phi"] - (got["signal"] + got["drag"])) < 1e-6
    assert abs(got["phi"] - (got["born_g"] - got["born_c"])) < 1e-12


def test_float32_inputs_agree_with_float64():
    z, h, E, g, c = random_case(7, V=2000, d=64)
    got, _ = observe(torch.tensor(z, dtype=torch.float32), torch.tensor(h, dtype=torch.float32),
                         torch.tensor(E, dtype=torch.float32), g, c)
    want = reference(np.float32(z), np.float32(h), np.float32(E), g, c)
    for key in ("phi", "signal", "drag", "purity", "xi", "xi_pair", "burial", "drive_pred", "efficiency"):
        assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), key


# -- Figure 1 test vectors ---------------------------------------------------------------------


def _figure1(E, z, g=0, c=1):
    got, _ = observe(torch.tensor(z, dtype=torch.float64), torch.zeros(E.shape[1], dtype=torch.float64),
                         torch.tensor(E, dtype=torch.float64), g, c, pool_mass=0.999999)
    return got


def test_figure1_all_mass_on_one_token():
    E = np.eye(4)
    got = _figure1(E, np.array([60.0, -60.0, -60.0, -60.0]))
    assert got["purity"] == pytest.approx(1.0, abs=1e-12)
    assert got["pr"] == pytest.approx(1.0, abs=1e-12)


def test_figure1_uniform_over_four_orthogonal_tokens():
    got = _figure1(np.eye(4), np.zeros(4))
    assert got["purity"] == pytest.approx(0.25, abs=1e-12)
    assert got["pr"] == pytest.approx(4.0, abs=1e-12)
    assert got["pr_classical"] == pytest.approx(4.0, abs=1e-12)


def test_figure1_half_g_half_c_at_085():
    G = 0.85
    E = np.array([[1.0, 0.0, 0.0], [G, math.sqrt(1 - G * G), 0.0], [0.0, 0.0, 1.0]])
    got = _figure1(E, np.array([0.0, 0.0, -80.0]))
    assert got["purity"] == pytest.approx(0.86125, abs=1e-12)
    assert got["pr"] == pytest.approx(1.161103, abs=1e-6)
    assert got["pr_classical"] == pytest.approx(2.0, abs=1e-12)
    assert got["gmax"] == pytest.approx(G, abs=1e-15)
    # Eq. 19 pieces: ξ about μ for two equal-weight points is half their angle
    assert got["xi"] == pytest.approx(math.acos(G) / 2, abs=1e-12)
    assert got["burial"] == pytest.approx(0.5, abs=1e-12)


# -- the pool ----------------------------------------------------------------------------------


def test_pool_adds_g_and_c_and_marks_the_cap():
    p = torch.tensor([0.5, 0.3, 0.15, 0.04, 0.01], dtype=torch.float64)
    pool, capped = obs.nucleus_pool(p, g=4, c=3, mass=0.8, cap=10)
    assert pool.tolist() == [0, 1, 4, 3] and not capped
    pool, capped = obs.nucleus_pool(p, g=4, c=3, mass=0.8, cap=3)
    assert sorted(pool.tolist()) == [0, 3, 4] and capped
    pool, capped = obs.nucleus_pool(p, g=0, c=1, mass=0.99, cap=2)
    assert pool.tolist() == [0, 1] and capped


def test_competitor_ablation_by_hand():
    # pool {g, c, k}; ablating c leaves g and k renormalised
    G_gc, G_kg, G_kc = 0.6, 0.3, 0.5
    E = np.array([[1.0, 0.0, 0.0], [G_gc, math.sqrt(1 - G_gc**2), 0.0], [0.0, 0.0, 0.0]])
    y = (G_kc - G_kg * G_gc) / math.sqrt(1 - G_gc**2)
    E[2] = [G_kg, y, math.sqrt(1 - G_kg**2 - y**2)]
    z = np.log(np.array([0.2, 0.5, 0.3]))
    got, _ = observe(torch.tensor(z), torch.zeros(3, dtype=torch.float64), torch.tensor(E), 0, 1, pool_mass=1.0)
    w_g, w_k = 0.2 / 0.5, 0.3 / 0.5
    assert got["phi_ablated"] == pytest.approx(w_g * (1 - G_gc**2) + w_k * (G_kg**2 - G_kc**2), abs=1e-12)
    assert got["drag"] == pytest.approx(0.3 * (G_kg**2 - G_kc**2), abs=1e-12)
    assert got["efficiency"] == pytest.approx(G_gc**2 / (G_gc**2 + G_kg**2), abs=1e-12)


def test_zero_embedding_row_has_no_direction():
    z, h, E, g, c = random_case(3, V=50, d=8, temp=0.1)
    E[0] = 0.0  # a padding row
    got, pool = observe(torch.tensor(z), torch.tensor(h), torch.tensor(E), g, c, pool_mass=1.0)
    assert 0 in pool.tolist()
    assert all(math.isfinite(v) for k, v in got.items() if isinstance(v, float))


# -- geometry drift ----------------------------------------------------------------------------


def test_drift_is_exactly_zero_for_identical_rows_and_measured_otherwise():
    z, h, E, g, c = random_case(11, V=100, d=16)
    Et = torch.tensor(E, dtype=torch.float32)
    _, pool = observe(torch.tensor(z), torch.tensor(h), Et, g, c)
    ref = obs.GeometryReference.capture(Et, pool, g)
    dG, rot = obs.geometry_drift(Et.clone(), ref, g)
    assert float(dG) == 0.0 and float(rot) == 0.0
    moved = Et.clone()
    moved[g] = moved[g] + 0.05 * torch.randn(16, generator=torch.Generator().manual_seed(0))
    dG, rot = obs.geometry_drift(moved, ref, g)
    u0 = E[g] / np.linalg.norm(E[g])
    u1 = moved[g].double().numpy() / np.linalg.norm(moved[g].double().numpy())
    assert float(rot) == pytest.approx(math.acos(np.clip(u0 @ u1, -1, 1)), rel=1e-6)
    toks = pool.tolist()
    U0 = np.stack([E[t] / np.linalg.norm(E[t]) for t in toks])
    M = moved.double().numpy()
    U1 = np.stack([M[t] / np.linalg.norm(M[t]) for t in toks])
    assert float(dG) == pytest.approx(np.abs(U1 @ U1.T - U0 @ U0.T).max(), rel=1e-6)


# -- the memo of a frozen embedding ------------------------------------------------------------


def test_a_frozen_memo_gives_the_numbers_of_a_fresh_observe_and_follows_an_e_changed_in_place():
    z, h, E, g, c = random_case(3, V=3000, d=32)
    zt, ht, Et = torch.tensor(z), torch.tensor(h), torch.tensor(E)
    memo = obs.VocabMemo()
    first, _ = observe(zt, ht, Et, g, c, frozen=memo)
    again, _ = observe(zt * 0.5, ht, Et, g, c, frozen=memo)  # read back, not recomputed
    assert first == observe(zt, ht, Et, g, c)[0]
    assert again == observe(zt * 0.5, ht, Et, g, c)[0]
    assert again["drive_pred"] == pytest.approx(reference(z * 0.5, h, E, g, c)["drive_pred"], rel=1e-9, abs=1e-12)
    with torch.no_grad():  # E trained in place: the memo must not answer for the old E
        Et.add_(torch.tensor(np.random.default_rng(5).normal(scale=0.5, size=E.shape)))  # cosines move
    moved, _ = observe(zt, ht, Et, g, c, frozen=memo)
    assert moved == observe(zt, ht, Et, g, c)[0]
    assert moved["drive_pred"] == pytest.approx(reference(z, h, Et.numpy(), g, c)["drive_pred"], rel=1e-9, abs=1e-12)
    assert moved["drive_pred"] != first["drive_pred"]
