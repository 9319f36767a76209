"""One vocabulary for how a trial ends and what it showed (as Optuna's ``TrialState``).

Every consumer reads its outcome words from here: the worker (status, stop reasons, the
online stop rules), the orchestrator (what to re-run, η_c brackets) and the analysis (the SQL
of ``trial_summary`` and ``eta_c`` is built from these constants). The *definitions* of the
per-trial quantities are written once each:

- **Φ of a trial at a step** is the mean of Φ over the trial's contexts at that step (a trial
  with several contexts trains on all of them as one batch; the loss is their mean CE).
  Only finite rows count: a diverged trial keeps its rows up to the divergence.
- **flip step** (science §4.2): 0 when Φ₀ > 0 (pre-resolved), else the first step with Φ > 0,
  else none. The online rule :class:`FlipStop` (the worker's ``stop at flip``) and the SQL
  ``trial_summary.flip_step`` implement it; a test runs both on the same rows.
- **rank flip step**: the first step at which ``rank_g < rank_c`` in every context.
- **flipped, for η_c** (science §4.2): the trial has a flip step, *or it diverged*: a rate that
  drives the model to non-finite logits lies above the stable range, so under the assumption
  that flipping is monotone in η it counts as above η_c. Errored trials carry no outcome.
- **Φ-saturation stop** (science §4.6): the first step whose last ``w`` evaluations of Φ all lie at
  or after the flip and span max − min < ``tol``. :class:`PhiSaturation` (online, worker) and
  ``trial_summary.phi_stop`` (SQL) implement it; a test runs both on the same rows.
- **η_c of a bracket** (all trials of one config but the rate): sqrt(lo·hi) with lo the
  largest rate that does not flip and hi the smallest that does; *non-monotone* when lo ≥ hi.
  :func:`eta_c` here (used by the search to propose rates) and the SQL ``eta_c`` view.
- **character** (science §4.4): from the jump concentration ratio R, in SQL only
  (``phantom.analysis.summary``); a flip at step 1 has no shoulder to judge and is its own label.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Iterable, Sequence


class TrialStatus(str, enum.Enum):
    """How a trial ended. Written to ``trials/<id>.parquet`` as its value (``'ok'``, ...)."""

    OK = "ok"  # ran its budget, or stopped early by a rule it was configured with
    DIVERGED = "diverged"  # non-finite loss or logits; the finite rows before are kept
    ERROR = "error"  # an exception (load included); the message is in the record

    def __str__(self) -> str:
        return self.value

    def is_result(self) -> bool:
        """Complete and usable data: never re-run (an error is re-run when asked)."""
        return self is not TrialStatus.ERROR


class StopReason(str, enum.Enum):
    """Why a trial stopped before its budget (NULL in the record: it ran the whole budget)."""

    PHI_SATURATION = "phi-saturation"  # science §4.6: Φ plateaued after the flip
    FLIP = "flip"  # the trial only had to answer "does it flip?" (η_c search)

    def __str__(self) -> str:
        return self.value


class Character(str, enum.Enum):
    """science §4.4 trajectory character (set in SQL, ``trial_summary.character``)."""

    PRE_RESOLVED = "pre-resolved"  # Φ₀ > 0
    UNRESOLVED = "unresolved"  # never flips within the budget
    IMMEDIATE = "immediate"  # flips at step 1: no shoulder to judge, R ≈ T by construction
    CATAPULT = "catapult"
    CATAPULT_LIKE = "catapult-like"
    INTERMEDIATE = "intermediate"
    BORDERLINE = "borderline"
    DRIFT = "drift"
    STOPPED_AT_FLIP = "stopped-at-flip"  # stop_reason = flip: it flipped; the shape was not measured
    DIVERGED = "diverged"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


# labels counted as catapult-like in θ*_shape and the isolation table
CATAPULT_LIKE = (Character.CATAPULT, Character.CATAPULT_LIKE)
# labels of trials whose shape was judged (they enter θ*_shape, the phase diagram, R statistics)
SHAPED = (Character.CATAPULT, Character.CATAPULT_LIKE, Character.INTERMEDIATE,
          Character.BORDERLINE, Character.DRIFT)


def sql_list(values: Iterable[enum.Enum | str]) -> str:
    """``'a', 'b'`` for an SQL ``IN (...)`` list."""
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


# ----------------------------------------------------------------------------------------------
# the trial's Φ at a step


def trial_phi(phis: Sequence[float]) -> float:
    """Φ of a trial at one step: the mean over its contexts (NaN if any is not finite)."""
    values = [float(p) for p in phis]
    if not values or not all(math.isfinite(p) for p in values):
        return math.nan
    return sum(values) / len(values)


# ----------------------------------------------------------------------------------------------
# online rules (the worker feeds them Φ step by step)


class FlipStop:
    """Stop at the flip: ``update`` answers True at the flip step (0 when pre-resolved)."""

    def __init__(self) -> None:
        self.flip_step: int | None = None

    def update(self, step: int, phi: float) -> bool:
        if self.flip_step is None and math.isfinite(phi) and phi > 0:
            self.flip_step = step
        return self.flip_step is not None


class PhiSaturation:
    """science §4.6 Φ-saturation: ``update`` answers True at the first step whose last ``window``
    evaluations all lie at or after the flip and span less than ``tol``."""

    def __init__(self, window: int = 3, tol: float = 0.01) -> None:
        self.window = window
        self.tol = tol
        self.flip = FlipStop()
        self.recent: deque[tuple[int, float]] = deque(maxlen=window)

    @property
    def flip_step(self) -> int | None:
        return self.flip.flip_step

    def update(self, step: int, phi: float) -> bool:
        if not math.isfinite(phi):
            return False
        self.flip.update(step, phi)
        self.recent.append((step, phi))
        if self.flip_step is None or len(self.recent) < self.window:
            return False
        if self.recent[0][0] < self.flip_step:
            return False
        values = [p for _, p in self.recent]
        return max(values) - min(values) < self.tol


def first_stop(rule, phis: Sequence[float]) -> int | None:
    """The step at which ``rule`` (FlipStop, PhiSaturation) stops Φ_0, Φ_1, ..., or None."""
    for step, phi in enumerate(phis):
        if rule.update(step, phi):
            return step
    return None


def saturation_step(phis: Sequence[float], window: int = 3, tol: float = 0.01) -> int | None:
    return first_stop(PhiSaturation(window, tol), phis)


def flip_step(phis: Sequence[float]) -> int | None:
    return first_stop(FlipStop(), phis)


# ----------------------------------------------------------------------------------------------
# η_c of a bracket


def flipped(status: TrialStatus | str, flip: int | None) -> bool | None:
    """The η_c outcome of one trial (None: an error carries no outcome)."""
    status = TrialStatus(status)
    if status is TrialStatus.ERROR:
        return None
    return status is TrialStatus.DIVERGED or flip is not None


class BracketStatus(str, enum.Enum):
    """What the rates of one η_c bracket showed (the ``status`` of the analysis ``eta_c`` view)."""

    FOUND = "found"  # lo < hi: η_c = sqrt(lo·hi)
    NON_MONOTONE = "non-monotone"  # lo ≥ hi: a rate flips below one that does not
    NONE_FLIP = "none-flip"  # no rate flips: η_c is above the rates tried
    ALL_FLIP = "all-flip"  # every rate flips: η_c is below the rates tried
    PRE_RESOLVED = "pre-resolved"  # Φ₀ > 0: resolved before any training, no η_c
    NO_OUTCOME = "no-outcome"  # only errors

    def __str__(self) -> str:
        return self.value


def bracket_status(outcomes: Iterable[tuple[float, bool]], pre_resolved: bool = False) -> BracketStatus:
    """The :class:`BracketStatus` of (rate, flipped) pairs (errors left out)."""
    pairs = list(outcomes)
    if not pairs:
        return BracketStatus.NO_OUTCOME
    if pre_resolved:
        return BracketStatus.PRE_RESOLVED
    _, lo, hi, non_monotone = eta_c(pairs)
    if lo is None:
        return BracketStatus.ALL_FLIP
    if hi is None:
        return BracketStatus.NONE_FLIP
    return BracketStatus.NON_MONOTONE if non_monotone else BracketStatus.FOUND


def eta_c(outcomes: Iterable[tuple[float, bool]]) -> tuple[float | None, float | None, float | None, bool]:
    """(η_c, lo, hi, non_monotone) from (rate, flipped) pairs of one bracket.

    lo = the largest rate that does not flip, hi = the smallest that does; η_c = sqrt(lo·hi)
    (NULL when all or none flip); non-monotone when lo ≥ hi (η_c is still that mean)."""
    pairs = list(outcomes)
    lo = max((lr for lr, f in pairs if not f), default=None)
    hi = min((lr for lr, f in pairs if f), default=None)
    if lo is None or hi is None:
        return None, lo, hi, False
    return math.sqrt(lo * hi), lo, hi, lo >= hi
