"""Bootstrap over sentences, in SQL: every science §5 fit once per resample.

For each (model, protocol), the sentences of its grid (those with a trial that did not error)
are resampled with replacement: replicate ``r`` (1..N) draws sentence number
``index(seed, r, j) mod n`` for j = 0..n−1, and each sentence enters every fit of that replicate
with its multiplicity as a weight (its trials, brackets and burial counted that many times).
Replicate 0 is the data itself (every sentence once): ``fits`` takes its point estimates from
replicate 0 and its percentile intervals from replicates 1..N, so the bootstrap can never fit
anything other than what is reported.

The draw is a counter-based hash, so it is the same in any DuckDB client and in NumPy
(:func:`resample_indices`): ``h_r = mix((mix(seed) + r) mod 2³²)``, ``index = mix(h_r xor j)``
with ``mix`` = Chris Wellons' *lowbias32* integer hash (32-bit, bijective).
"""

from __future__ import annotations

import numpy as np

from phantom.outcomes import TrialStatus

from phantom.analysis.registry import ViewContext, view
from phantom.analysis.views.fits import shape_fit_sql

MASK = 0xFFFFFFFF
M1, M2 = 0x7FEB352D, 0x846CA68B


def lowbias32(x):
    """The 32-bit integer hash (NumPy or int), as the SQL computes it."""
    x = np.asarray(x, dtype=np.uint64) & MASK
    x = x ^ (x >> np.uint64(16))
    x = (x * np.uint64(M1)) & MASK
    x = x ^ (x >> np.uint64(15))
    x = (x * np.uint64(M2)) & MASK
    return x ^ (x >> np.uint64(16))


def resample_indices(seed: int, n_replicates: int, n: int) -> np.ndarray:
    """(n_replicates, n) sentence positions (0..n−1 in sorted sentence order) of replicates
    1..n_replicates: the draw table of the SQL view ``resamples``."""
    r = np.arange(1, n_replicates + 1, dtype=np.uint64)
    h_r = lowbias32((lowbias32(seed % 2**32) + r) & MASK)
    j = np.arange(n, dtype=np.uint64)
    return (lowbias32(h_r[:, None] ^ j[None, :]) % np.uint64(n)).astype(np.int64)


def _mix(source: str, col: str, name: str) -> list[str]:
    """CTEs ``name1..name5`` applying lowbias32 to ``col`` of ``source`` (HUGEINT products)."""
    steps = [
        f"xor({col}, {col} >> 16)",
        f"CAST(CAST({col} AS HUGEINT) * {M1} % {MASK + 1} AS BIGINT)",
        f"xor({col}, {col} >> 15)",
        f"CAST(CAST({col} AS HUGEINT) * {M2} % {MASK + 1} AS BIGINT)",
        f"xor({col}, {col} >> 16)",
    ]
    out, prev = [], source
    for i, expr in enumerate(steps, 1):
        out.append(f"{name}{i} AS (SELECT * REPLACE ({expr} AS {col}) FROM {prev})")
        prev = f"{name}{i}"
    return out


@view("resamples", reads=("trial_summary",), guards=("precisions",), snapshot=False, cache=True, internal=True)
def resamples(ctx: ViewContext) -> str:
    """(model, protocol, r, sentence_id, w): replicate 0 = each sentence once; r = 1..N the
    multiplicity of each sentence drawn (a sentence not drawn has no row)."""
    n_rep = ctx.settings.bootstrap
    seed_mix = int(lowbias32(ctx.settings.bootstrap_seed % 2**32))
    ctes = [
        f"""groups AS (
    SELECT model, protocol, list(DISTINCT sentence_id ORDER BY sentence_id) AS sentences
    FROM trial_summary WHERE status <> '{TrialStatus.ERROR}' AND sentence_id IS NOT NULL
    GROUP BY model, protocol
)""",
        # h_r = mix((mix(seed) + r) mod 2^32), one per replicate
        f"rep0 AS (SELECT r, CAST(({seed_mix} + r) % {MASK + 1} AS BIGINT) AS h FROM range(1, {n_rep + 1}) t(r))",
        *_mix("rep0", "h", "rep"),
        """slots AS (
    SELECT g.model, g.protocol, g.sentences, p.r, p.h, unnest(range(len(g.sentences))) AS j
    FROM groups g CROSS JOIN rep5 p
)""",
        # the j-th draw of replicate r: mix(h_r xor j)
        "cells AS (SELECT * REPLACE (xor(h, CAST(j AS BIGINT)) AS h) FROM slots)",
        *_mix("cells", "h", "draw"),
    ]
    return f"""
WITH {(',' + chr(10)).join(ctes)}
SELECT model, protocol, 0 AS r, unnest(sentences) AS sentence_id, 1 AS w FROM groups
UNION ALL
SELECT model, protocol, r, sentences[1 + h % len(sentences)] AS sentence_id, count(*) AS w
FROM draw5
GROUP BY model, protocol, r, sentences[1 + h % len(sentences)]
"""


@view("fit_replicates", reads=("resamples", "shape_points", "eta_c_sentence",
                               "sentence_burial", "lr_ref"))
def fit_replicates(ctx: ViewContext) -> str:
    """Per (model, protocol, r): θ*_shape, θ*_resolve, H and B_FT on resample r (0 = the
    data), each sentence weighted by its multiplicity."""
    points = """
        SELECT p.model, p.protocol, s.r, p.x, sum(p.pos * s.w) AS pos, sum(p.neg * s.w) AS neg
        FROM shape_points p JOIN resamples s USING (model, protocol, sentence_id)
        GROUP BY p.model, p.protocol, s.r, p.x"""
    return f"""
WITH reps AS (SELECT DISTINCT model, protocol, r FROM resamples),
shape AS ({shape_fit_sql(points)}),
resolve AS (
    -- θ*_resolve: mean of θ(s) over the sentences with an η_c; Ḡ_max over the same sentences.
    -- The float sums add their terms in one order (ORDER BY the term): a parallel sum adds in
    -- whatever order its threads finish, and the same data would give CIs differing in the last bit
    SELECT e.model, e.protocol, s.r,
           sum(s.w * e.theta ORDER BY s.w * e.theta) / sum(s.w) FILTER (WHERE e.theta IS NOT NULL) AS theta_resolve,
           min(e.theta) AS theta_min,
           max(e.theta) AS theta_max,
           sum(s.w * e.gmax ORDER BY s.w * e.gmax) FILTER (WHERE e.theta IS NOT NULL)
               / sum(s.w) FILTER (WHERE e.theta IS NOT NULL) AS gmax_resolved,
           sum(s.w * e.gmax ORDER BY s.w * e.gmax) / sum(s.w) FILTER (WHERE e.gmax IS NOT NULL) AS gmax_all,
           min(e.H) AS H_min,
           max(e.H) AS H_max
    FROM eta_c_sentence e JOIN resamples s USING (model, protocol, sentence_id)
    GROUP BY e.model, e.protocol, s.r
),
burial AS (
    -- B_FT: burial at the last step, mean over a sentence's reference trials, then over sentences
    SELECT b.model, b.protocol, s.r,
           sum(s.w * b.B_FT ORDER BY s.w * b.B_FT) / sum(s.w) FILTER (WHERE b.B_FT IS NOT NULL) AS B_FT,
           min(b.lr_min) AS ref_lr_min, max(b.lr_max) AS ref_lr_max
    FROM sentence_burial b JOIN resamples s USING (model, protocol, sentence_id)
    GROUP BY b.model, b.protocol, s.r
)
SELECT reps.model, reps.protocol, reps.r,
       shape.n_shape, shape.shape_errors, shape.shape_lo, shape.shape_hi, shape.theta_shape,
       resolve.theta_resolve, resolve.theta_min, resolve.theta_max,
       resolve.gmax_resolved, resolve.gmax_all,
       l.lr_ref * resolve.gmax_resolved / resolve.theta_resolve AS H,
       resolve.H_min, resolve.H_max,
       burial.B_FT, burial.ref_lr_min, burial.ref_lr_max
FROM reps
LEFT JOIN shape USING (model, protocol, r)
LEFT JOIN resolve USING (model, protocol, r)
LEFT JOIN burial USING (model, protocol, r)
LEFT JOIN lr_ref l USING (protocol)
ORDER BY reps.model, reps.protocol, reps.r
"""
