"""SPEC §4 Φ-saturation stop, evaluated inside the worker after every step.

The rule: the first step whose last ``w`` evaluations of Φ (training context) all lie at or
after the flip (the first step with Φ > 0; step 0 when Φ₀ > 0) and span less than ``tol``.
It is the same definition as ``phi_stop`` in the analysis' ``trial_summary`` view.

Why in the worker and not a ``tune.Stopper``: a Tune stopper ends the trainable from outside,
after the step's result has travelled to the driver, so the trial would either be cut without
its records or stop a few steps late. The trial runner applies the rule when the trial config
asks for it (``stopper.phi_saturation``), stops before the next optimizer step and writes the
record with status ``ok`` and ``stop_reason = 'phi-saturation'``: an early stop is recorded,
never confused with a failure. Being part of the trial config, the setting is in the trial id.
"""

from __future__ import annotations

import math
from collections import deque

STOP_REASON = "phi-saturation"


class PhiSaturation:
    """Feed Φ step by step; ``update`` answers whether the trial should stop now."""

    def __init__(self, window: int = 3, tol: float = 0.01) -> None:
        self.window = window
        self.tol = tol
        self.flip_step: int | None = None
        self.recent: deque[tuple[int, float]] = deque(maxlen=window)

    def update(self, step: int, phi: float) -> bool:
        if not math.isfinite(phi):
            return False
        if self.flip_step is None and phi > 0:
            self.flip_step = step
        self.recent.append((step, phi))
        if self.flip_step is None or len(self.recent) < self.window:
            return False
        if self.recent[0][0] < self.flip_step:
            return False
        values = [p for _, p in self.recent]
        return max(values) - min(values) < self.tol


def saturation_step(phis: list[float], window: int = 3, tol: float = 0.01) -> int | None:
    """The step at which :class:`PhiSaturation` stops a trajectory Φ_0, Φ_1, ..., or None."""
    rule = PhiSaturation(window, tol)
    for step, phi in enumerate(phis):
        if rule.update(step, phi):
            return step
    return None
