"""``phantom geometry``: inference only, no training (science §5.8 "bulk embedding geometry").

The probe runs a model, so it lives where models run (workers/); analysis reads what it writes
(the ``geometry`` views of phantom.analysis.views.sources) and never imports it. ``phantom predict``
measures a model its reference has not with :func:`measure_geometry` (the command line hands it in).

Bulk statistics of the input embedding E: N random distinct token pairs (seeded), G = ψ_i·ψ_j,
mean G², the fraction with G > τ, the KS distance of the G² sample to a fitted normal and to a
fitted exponential, and the class (A: normal fits better, B: exponential). Per sentence: G_max
(input embedding and LM head), base Born rank, B₀, ε₀ and Φ₀ (phantom.workers.probe at step 0, the
mean over the sentence's contexts). Written to ``OUT/geometry/<model>.parquet``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import numpy as np

from phantom.analysis import stats
from phantom import schema

HIST_BINS = 60


def sample_pairs(vocab: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct unordered pairs i < j of [0, vocab), seeded; all pairs if fewer exist."""
    total = vocab * (vocab - 1) // 2
    if n >= total:
        i, j = np.triu_indices(vocab, k=1)
        return i.astype(np.int64), j.astype(np.int64)
    rng = np.random.default_rng(seed)
    keys = np.empty(0, dtype=np.int64)
    while keys.size < n:
        a = rng.integers(0, vocab, size=2 * (n - keys.size) + 16)
        b = rng.integers(0, vocab, size=a.size)
        keep = a != b
        lo, hi = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
        keys = np.unique(np.concatenate([keys, lo * vocab + hi]))
    keys = rng.permutation(keys)[:n]  # unbiased subset of the unique draws
    return keys // vocab, keys % vocab


def pair_cosines(E, i: np.ndarray, j: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """G_ij = ψ_i·ψ_j in float64 for the pairs (i, j); E is a (V, d) torch tensor or array."""
    import torch

    E = torch.as_tensor(E).detach()
    out = np.empty(i.size, dtype=np.float64)
    for s in range(0, i.size, chunk):
        a = E[torch.as_tensor(i[s : s + chunk])].to(torch.float64)
        b = E[torch.as_tensor(j[s : s + chunk])].to(torch.float64)
        a = a / torch.linalg.vector_norm(a, dim=1, keepdim=True)
        b = b / torch.linalg.vector_norm(b, dim=1, keepdim=True)
        out[s : s + chunk] = (a * b).sum(dim=1).numpy()
    return out


def bulk_statistics(E, *, n_pairs: int = 100_000, tau: float = 0.3, seed: int = 0) -> dict:
    """science §5.8 bulk geometry of an embedding matrix E (V, d)."""
    vocab = int(E.shape[0])
    i, j = sample_pairs(vocab, n_pairs, seed)
    G = pair_cosines(E, i, j)
    G = G[np.isfinite(G)]  # an all-zero row (padding) has no direction
    G2 = G * G
    ks_norm = stats.ks_normal(G2)
    ks_exp = stats.ks_exponential(G2)
    top = float(np.quantile(G2, 0.999)) or 1.0
    counts, edges = np.histogram(np.clip(G2, 0, top), bins=HIST_BINS, range=(0.0, top))
    return {
        "vocab_size": vocab,
        "dim": int(E.shape[1]),
        "n_pairs": int(G.size),
        "tau": float(tau),
        "seed": int(seed),
        "mean_g2": float(G2.mean()),
        "frac_above_tau": float((G > tau).mean()),
        "ks_norm": ks_norm,
        "ks_exp": ks_exp,
        "class": stats.bulk_class(ks_norm, ks_exp),
        "class_index": ks_exp - ks_norm,
        "hist_edges": edges.tolist(),
        "hist_counts": counts.astype(np.int64).tolist(),
    }


def sentence_values(loaded, sentence, *, pool_mass: float, pool_cap: int) -> dict:
    """Per-sentence base values: G_max (embedding, head), Born rank, B₀, ε₀, Φ₀ (context mean)."""
    import torch

    from phantom.workers.probe import probe_sentence

    rows = probe_sentence(loaded, sentence, pool_mass=pool_mass, pool_cap=pool_cap)
    g, c = rows[0]["g"], rows[0]["c"]
    head = loaded.head_weights().detach()[[g, c]].to(torch.float64)
    head = head / torch.linalg.vector_norm(head, dim=1, keepdim=True)
    mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
    return {
        "sentence_id": sentence.id,
        "target": sentence.target,
        "competitor": sentence.competitor,
        "n_contexts": len(rows),
        "gmax": mean("gmax"),
        "gmax_head": float(head[0] @ head[1]),
        "born_rank0": mean("born_rank"),
        "B0": mean("burial"),
        "eps0": mean("efficiency"),
        "phi0": mean("phi"),
    }


def geometry_table(model_name: str, bulk: dict, sentences: list[dict], family: str, tied: bool):
    """The model's :class:`~phantom.schema.GeometryRow` per sentence (one without a sentence
    when none could be evaluated), as a table."""
    from phantom.release import __version__

    base = {"model": model_name, "family": family, "tied": tied, **bulk,
            "created_at": datetime.now(timezone.utc),
            "versions": json.dumps({"phantom": __version__})}
    return schema.geometry_table([schema.row_from(schema.GeometryRow, {**base, **s}) for s in sentences]
                                 or [schema.row_from(schema.GeometryRow, base)])


def measure_geometry(model: str, *, n_pairs: int = 100_000, tau: float = 0.3, seed: int = 0,
            sentences_path: str | None = None, only: list[str] | None = None,
            with_sentences: bool = True, pool_mass: float = 0.9, pool_cap: int = 1024,
            trust_remote_code: bool = False, warn=None):
    """Load ``model`` and return its geometry table (one row per evaluable sentence)."""
    import torch

    from phantom.errors import SentenceError, unknown
    from phantom.workers.models import load_model_cached
    from phantom.workers.sentences import load_sentences

    warn = warn or (lambda m: print(f"phantom geometry: {m}", file=sys.stderr))
    loaded = load_model_cached(model, trust_remote_code=trust_remote_code)  # read only, never trained
    with torch.no_grad():
        bulk = bulk_statistics(loaded.input_embeddings(), n_pairs=n_pairs, tau=tau, seed=seed)
        rows = []
        if with_sentences:
            table = load_sentences(sentences_path)
            for sid in only or []:
                if sid not in table:
                    raise SentenceError(unknown("sentence", sid, table))
            for sid in sorted(only or table):
                try:
                    rows.append(sentence_values(loaded, table[sid], pool_mass=pool_mass, pool_cap=pool_cap))
                except SentenceError as exc:  # said out loud, and the sentence is left out
                    warn(f"skipping sentence '{sid}': {exc}")
    return geometry_table(model, bulk, rows, loaded.family, loaded.tied)


def write_geometry(table, out) -> str:
    """Write a table of :func:`measure_geometry` to ``OUT/geometry/<model>.parquet`` (a folder or a
    URI; the ``geometry`` view reads it); returns the file's path."""
    from phantom import layout
    from phantom.storage import Store
    from phantom.storage_errors import translated

    store = Store.open(out)
    model = table.column("model")[0].as_py()
    with translated(store.uri):  # an unreachable or refusing store: one line
        return store.write_table(table, *layout.geometry_file(model))
