"""science §3: the per-step observables, as pure functions of tensors.

Inputs are the logits ``z`` (V,) at the last context position, the hidden state ``h`` (d,) that
the LM head reads there, and the input-embedding matrix ``E`` (V, d). Nothing here touches a
model, a file or a global. Everything on the pool is evaluated in float64 through the |P|x|P|
Gram block ``G_P = ψ_P ψ_Pᵀ``; the d x d density matrix ρ is never built.

The one full-vocabulary sum (``D_lin`` in the kinetic drive, Eq. 10) takes its cosines from a
float32 (the embedding's dtype) product with the two unit rows ψ_g, ψ_c and accumulates the
V-term sum in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from phantom.schema import Observables

F64 = torch.float64


# ----------------------------------------------------------------------------------------------
# building blocks


def unit_rows(rows: torch.Tensor) -> torch.Tensor:
    """ψ_i = E_i / ‖E_i‖ in float64. An all-zero row (a padding token) has no direction: its ψ
    is the zero vector, so it overlaps nothing (G = 0), itself included."""
    x = rows.to(F64)
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-300)


def nucleus_pool(
    p: torch.Tensor, g: int, c: int, mass: float = 0.9, cap: int = 1024
) -> tuple[torch.Tensor, bool]:
    """science §3.1 pool P: the smallest top-p prefix with cumulative mass ≥ ``mass``, plus g and c,
    at most ``cap`` tokens (g and c always kept). Returns (token ids, capped)."""
    k = min(cap, p.numel())
    top_p, top_i = torch.topk(p, k, sorted=True)
    reached = torch.nonzero(torch.cumsum(top_p, 0) >= mass)
    n = int(reached[0]) + 1 if reached.numel() else k
    capped = not reached.numel() and k < p.numel()
    base = top_i[:n]
    missing = [t for t in (g, c) if not bool((base == t).any())]
    if n + len(missing) > cap:
        capped = True
        base = base[: cap - len(missing)]
    if missing:
        base = torch.cat([base, torch.tensor(missing, dtype=base.dtype, device=base.device)])
    return base, capped


def born_scores(pt: torch.Tensor, G2: torch.Tensor) -> torch.Tensor:
    """Eq. 2–3: b_i = ψ_iᵀ ρ ψ_i = Σ_j p̃_j G_ij²."""
    return G2 @ pt


def born_gap(pt: torch.Tensor, G2: torch.Tensor, ig: int, ic: int) -> torch.Tensor:
    """Eq. 4, 18: Φ = Σ_i p̃_i (G_ig² − G_ic²)."""
    return pt @ (G2[:, ig] - G2[:, ic])


def signal_drag(
    pt: torch.Tensor, G2: torch.Tensor, ig: int, ic: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 6: S = (p̃_g − p̃_c)(1 − G_gc²), D = Σ_{k∉{g,c}} p̃_k (G_kg² − G_kc²)."""
    signal = (pt[ig] - pt[ic]) * (1.0 - G2[ig, ic])
    rest = torch.ones_like(pt, dtype=torch.bool)
    rest[[ig, ic]] = False
    drag = pt[rest] @ (G2[rest, ig] - G2[rest, ic])
    return signal, drag


def purity(pt: torch.Tensor, G2: torch.Tensor) -> torch.Tensor:
    """Eq. 15: γ = Tr ρ² = Σ_ij p̃_i p̃_j G_ij² (PR = 1/γ)."""
    return pt @ G2 @ pt


def localisation(pt: torch.Tensor, psi: torch.Tensor, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 16 (reconstructed): ξ about the cloud's mean direction μ, and the pairwise ξ_pair."""
    m = pt @ psi
    mu = m / torch.linalg.vector_norm(m)
    ang = torch.arccos(torch.clamp(psi @ mu, -1.0, 1.0))
    xi = torch.sqrt(pt @ ang.square())
    ang_pair = torch.arccos(torch.clamp(G, -1.0, 1.0))
    xi_pair = torch.sqrt(pt @ ang_pair.square() @ pt)
    return xi, xi_pair


def ablate_competitor(pt: torch.Tensor, G2: torch.Tensor, ig: int, ic: int) -> torch.Tensor:
    """Table 5: Φ with p̃_c := 0 and the rest of the pool renormalised."""
    w = pt.clone()
    w[ic] = 0.0
    w = w / w.sum()
    return born_gap(w, G2, ig, ic)


def vocab_cosines(E: torch.Tensor, psi_g: torch.Tensor, psi_c: torch.Tensor) -> torch.Tensor:
    """cos(E_k, ψ_g) − cos(E_k, ψ_c) for every token k (V,), float64: the weights of Eq. 10's
    D_lin. Two passes over E (V x d); on a CPU most of an :func:`observe`."""
    pair = torch.stack([psi_g, psi_c]).to(E.dtype)  # (2, d)
    # F.linear is several times faster than E @ pair.T for this skinny product on CPU
    dots = torch.nn.functional.linear(E, pair).to(F64)  # (V, 2)
    cos = dots / torch.linalg.vector_norm(E, dim=1).to(F64).clamp_min(1e-300)[:, None]
    return cos[:, 0] - cos[:, 1]


def vocab_drive(p: torch.Tensor, cos_gc: torch.Tensor, g: int, c: int, gmax: torch.Tensor) -> torch.Tensor:
    """Eq. 10: (1 − G_gc)(1 − p_g + p_c) − D_lin, D_lin = Σ_{k∉{g,c}} p_k (G_kg − G_kc) over
    the full vocabulary; ``cos_gc`` is :func:`vocab_cosines`."""
    terms = p * cos_gc
    d_lin = terms.sum() - terms[g] - terms[c]
    return (1.0 - gmax) * (1.0 - p[g] + p[c]) - d_lin


# ----------------------------------------------------------------------------------------------
# drift of the geometry (causal isolation)


@dataclass(frozen=True)
class GeometryReference:
    """The step-0 geometry that dG_max and the rotation of ψ_g are measured against."""

    tokens: torch.Tensor  # T = P₀ ∪ {g, c}
    gram: torch.Tensor  # G_T at step 0, float64
    psi_g: torch.Tensor  # ψ_g at step 0, float64

    @classmethod
    def capture(cls, E: torch.Tensor, pool: torch.Tensor, g: int) -> GeometryReference:
        psi = unit_rows(E[pool])
        return cls(pool.clone(), psi @ psi.T, unit_rows(E[g]).clone())


def geometry_drift(E: torch.Tensor, ref: GeometryReference, g: int) -> tuple[torch.Tensor, torch.Tensor]:
    """dG_max = max_{i,j∈T} |G_ij(t) − G_ij(0)|; rotation of ψ_g = 2·asin(‖ψ_g(t) − ψ_g(0)‖/2).

    Both are exactly 0.0 when the embedding rows are bit-identical (frozen)."""
    psi = unit_rows(E[ref.tokens])
    dG = (psi @ psi.T - ref.gram).abs().max()
    chord = torch.linalg.vector_norm(unit_rows(E[g]) - ref.psi_g)
    return dG, 2.0 * torch.asin(torch.clamp(chord / 2.0, max=1.0))


@dataclass
class VocabMemo:
    """What :func:`vocab_cosines` gave for an E that does not train, kept by the caller across a
    trial's steps; ``key`` names that E (its storage, version counter, shape, dtype) and (g, c)."""

    key: tuple | None = None
    cos_gc: torch.Tensor | None = None


def _cosines(E: torch.Tensor, psi_g: torch.Tensor, psi_c: torch.Tensor, g: int, c: int, frozen: VocabMemo | None):
    if frozen is None:
        return vocab_cosines(E, psi_g, psi_c)
    key = (E.data_ptr(), E._version, tuple(E.shape), E.dtype, g, c)
    if frozen.key != key:
        frozen.key, frozen.cos_gc = key, vocab_cosines(E, psi_g, psi_c)
    return frozen.cos_gc


class Observed(NamedTuple):
    """:func:`observe`'s answer: the cross-entropy on g, the observables, and the pool's token ids."""

    loss: float
    values: Observables
    pool: torch.Tensor


# ----------------------------------------------------------------------------------------------
# everything at once


def observe(
    z: torch.Tensor,
    h: torch.Tensor,
    E: torch.Tensor,
    g: int,
    c: int,
    *,
    pool_mass: float = 0.9,
    pool_cap: int = 1024,
    reference: GeometryReference | None = None,
    frozen: VocabMemo | None = None,
) -> Observed:
    """All the science §3 observables of one context, with the loss and the pool's token ids.

    ``reference`` is the step-0 geometry; without one, dG_max and the rotation are 0 (this *is*
    step 0: the pool returned is P₀, to capture a reference from).

    ``frozen`` is a memo the caller keeps across the steps of a trial whose E does not train
    (every protocol but full FT): :func:`vocab_cosines` is computed into it once and read back
    after, the same numbers from the same E. It is keyed by E's storage and version counter as
    well as (g, c), so an E changed in place is computed afresh."""
    z64 = z.detach().to(F64)
    logp = torch.log_softmax(z64, dim=0)
    p = logp.exp()
    pool, capped = nucleus_pool(p, g, c, pool_mass, pool_cap)
    ig = int(torch.nonzero(pool == g)[0])
    ic = int(torch.nonzero(pool == c)[0])

    mass = p[pool].sum()
    pt = p[pool] / mass
    psi = unit_rows(E.detach()[pool])  # (|P|, d)
    G = psi @ psi.T  # (|P|, |P|)
    G2 = G.square()
    gmax = G[ig, ic]

    b = born_scores(pt, G2)
    phi = b[ig] - b[ic]
    signal, drag = signal_drag(pt, G2, ig, ic)
    gamma = purity(pt, G2)
    ipr = pt.square().sum()
    xi, xi_pair = localisation(pt, psi, G)
    k_not_g = torch.ones_like(pt, dtype=torch.bool)
    k_not_g[ig] = False
    efficiency = G2[ig, ic] / G2[k_not_g, ig].sum()
    drive = vocab_drive(p, _cosines(E.detach(), psi[ig], psi[ic], g, c, frozen), g, c, gmax)
    h64 = h.detach().to(F64)
    if reference is None:
        dG = torch.zeros((), dtype=F64, device=z.device)
        rot = torch.zeros((), dtype=F64, device=z.device)
    else:
        dG, rot = geometry_drift(E.detach(), reference, g)

    floats = {
        "loss": -logp[g],
        "p_g": p[g],
        "p_c": p[c],
        "z_g": z64[g],
        "z_c": z64[c],
        "logit_gap": z64[g] - z64[c],
        "pool_mass": mass,
        "born_g": b[ig],
        "born_c": b[ic],
        "phi": phi,
        "signal": signal,
        "drag": drag,
        "phi_ablated": ablate_competitor(pt, G2, ig, ic),
        "purity": gamma,
        "pr": 1.0 / gamma,
        "ipr": ipr,
        "pr_classical": 1.0 / ipr,
        "xi": xi,
        "xi_pair": xi_pair,
        "burial": xi / torch.arccos(torch.clamp(gmax, -1.0, 1.0)),
        "efficiency": efficiency,
        "drive_pred": drive,
        "h_norm": torch.linalg.vector_norm(h64),
        "h_dot_g": psi[ig] @ h64,
        "h_dot_c": psi[ic] @ h64,
        "gmax": gmax,
        "dG_max": dG,
        "psi_g_rotation": rot,
    }
    ints = {
        "rank_g": (z64 > z64[g]).sum(),
        "rank_c": (z64 > z64[c]).sum(),
        "born_rank": (b > b[ig]).sum(),
    }
    # one device->host transfer for everything
    values = torch.stack([v.to(F64) for v in floats.values()] + [v.to(F64) for v in ints.values()])
    host = values.tolist()
    out: dict[str, float] = dict(zip(floats, host[: len(floats)]))
    for name, v in zip(ints, host[len(floats) :]):
        out[name] = int(v) + 1  # ranks are 1-based
    loss = out.pop("loss")
    return Observed(loss, Observables(**out, pool_size=int(pool.numel()), pool_capped=bool(capped)), pool)
