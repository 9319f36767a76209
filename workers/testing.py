"""Helpers for tests that compare two training computations (a packed member and the trial
alone, one forward against another) with bounds that hold on any machine:

- in float64 (:func:`float64`: the same base model cast; the engines follow the parameters'
  dtype), where two orders of the same arithmetic agree to ~1e-15 relative and a bound of
  :data:`TOL64` holds whatever the kernels;
- in float32, within this machine's own float32 noise (:func:`float32_bound`): the spread of
  reference runs of the same computation (another thread count, float64).

The derivation of the constants is in tests/workers/test_pack_engines.py (module docstring).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Sequence

import torch

from phantom.workers.models import LoadedModel

TOL64 = 1e-10  # float64: relative to max(1, |value|)
NOISE_MULTIPLE = 10  # float32: times the reference spread ...
ULPS = 4  # ... plus this many ulps of the largest value
EPS32 = float(torch.finfo(torch.float32).eps)


def float64(base: LoadedModel) -> LoadedModel:
    """The same base model in float64 (a copy: the cached float32 base stays as it is)."""
    return LoadedModel(base.name, copy.deepcopy(base.model).double(), base.tokenizer, base.source)


@contextlib.contextmanager
def threads(n: int):
    """torch on ``n`` threads inside the block; the thread count is restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def exact_attention():
    """Full packs keep the model's own attention (SDPA) inside the block: eager attention of
    llama and gpt_neox rounds its softmax to float32 even in a float64 model."""
    from phantom.workers.packs import FullPackEngine

    before = FullPackEngine.attention
    FullPackEngine.attention = None
    try:
        yield
    finally:
        FullPackEngine.attention = before


def close64(a: float, b: float) -> bool:
    return abs(a - b) <= TOL64 * max(1.0, abs(b))


def float32_bound(want: Sequence[float | None], references: Iterable[Sequence[float | None]]) -> float:
    """How far a float32 result may lie from ``want`` (one column of values): NOISE_MULTIPLE
    times the largest difference between ``want`` and each reference run of the same
    computation (row by row), plus ULPS ulps of the largest |value|."""
    spread = max((abs(a - r) for ref in references for a, r in zip(want, ref)
                  if a is not None and r is not None), default=0.0)
    scale = max((abs(a) for a in want if a is not None), default=0.0)
    return NOISE_MULTIPLE * spread + ULPS * EPS32 * scale
