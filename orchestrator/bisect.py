"""The η_c bracket and its Optuna study: state, proposals, status (science §5.3).

A *bracket* is every trial of one config but the rate (``TrialConfig.bracket_id``). Its
outcomes are read from the trial records through the analysis' SQL (one definition of a
flip, :func:`phantom.outcomes.flipped`); η_c, lo, hi and the non-monotone flag come from
:func:`phantom.outcomes.eta_c`, the definition the SQL ``eta_c`` view also implements.

Each bracket has an Optuna study (param ``lr``, log-uniform on [lr_min, lr_max]; value 1 =
flipped, 0 = not; an errored trial is FAIL). The next rate comes from the study:
:class:`BisectionSampler` proposes the missing ends, then the geometric midpoint of the
largest rate that does not flip and the smallest that does.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from optuna.distributions import FloatDistribution
from optuna.samplers import BaseSampler
from optuna.trial import TrialState

from phantom.config import TrialConfig
from phantom.outcomes import BracketStatus, bracket_status, eta_c

PARAM = "lr"
TRIAL_ID_ATTR = "trial_id"


class SearchState(str, enum.Enum):
    """What the search still has to do with a bracket. Once nothing is left to do, the bracket's
    status is the data's own word, :class:`phantom.outcomes.BracketStatus` (found,
    non-monotone, all-flip, none-flip, pre-resolved): the word the ``eta_c`` view shows."""

    OPEN = "open"  # still bisecting: an end is missing, or hi/lo is above the tolerance
    ERROR = "error"  # a trial of the bracket failed: `resume --errored` re-runs it

    def __str__(self) -> str:
        return self.value


def round_lr(lr: float) -> float:
    return float(f"{lr:.6g}")  # stable, readable rates (and trial ids) across resumes


class BisectionSampler(BaseSampler):
    """Proposes ``lr`` for a bracket's study: a missing end (lr_min, then lr_max), else the
    geometric midpoint of the bracket. Trials still running count as seen."""

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        seen = {t.params[PARAM] for t in [*complete, *running] if t.number != trial.number and PARAM in t.params}
        for end in (param_distribution.low, param_distribution.high):
            if not any(math.isclose(end, s, rel_tol=1e-9) for s in seen):
                return end
        _, lo, hi, _ = eta_c((t.params[PARAM], t.value >= 0.5) for t in complete)
        if lo is None or hi is None or lo >= hi:
            raise RuntimeError(f"bracket {study.study_name} has nothing left to bisect")
        return round_lr(math.sqrt(lo * hi))


def distribution(lr_min: float, lr_max: float) -> FloatDistribution:
    return FloatDistribution(lr_min, lr_max, log=True)


@dataclass
class Observation:
    """One record of the bracket, read through the analysis' SQL."""

    trial_id: str
    lr: float
    flipped: bool | None  # None: an error carries no outcome
    flip_step: int | None
    error: str | None


@dataclass
class Bracket:
    template: TrialConfig  # the bracket's trial at lr_min (stopper: at the flip)
    outcomes: list[Observation] = field(default_factory=list)

    @property
    def bracket_id(self) -> str:
        return self.template.bracket_id

    @property
    def label(self) -> str:
        t = self.template
        ctx = "" if t.context_index is None else f"#{t.context_index}"
        return f"{t.model}|{t.sentence_id}{ctx}|{t.protocol}|seed={t.seed}"

    @property
    def study_name(self) -> str:
        return f"{self.label}|{self.bracket_id}"

    def trial(self, lr: float) -> TrialConfig:
        return self.template.replace(lr=float(lr))

    def own(self, o: Observation) -> bool:
        return o.trial_id == self.trial(o.lr).trial_id

    def results(self) -> dict[float, bool]:
        """lr -> flipped, from every record of the bracket with an outcome (ours first)."""
        out: dict[float, bool] = {}
        for o in sorted(self.outcomes, key=self.own):  # our own trial's record wins a tie
            if o.flipped is not None:
                out[o.lr] = o.flipped
        return out

    def errors(self) -> list[Observation]:
        """Our own trials recorded as error."""
        return [o for o in self.outcomes if o.flipped is None and self.own(o)]

    def pre_resolved(self) -> bool:
        return any(o.flip_step == 0 for o in self.outcomes)

    def state(self, lr_min: float, lr_max: float, tolerance: float) -> tuple[SearchState | BracketStatus, dict]:
        """(status, {eta_c, lo, hi, non_monotone, trials}) of the bracket: OPEN or ERROR while
        the search has work here, else what the rates showed (phantom.outcomes.bracket_status)."""
        results = self.results()
        eta, lo, hi, non_monotone = eta_c(results.items())
        info = dict(eta_c=eta, lo=lo, hi=hi, non_monotone=non_monotone, trials=len(results))
        if self.errors():
            return SearchState.ERROR, info
        shown = bracket_status(results.items(), self.pre_resolved())
        if shown is BracketStatus.PRE_RESOLVED:
            return shown, info
        if lr_min not in results or lr_max not in results:
            return SearchState.OPEN, info
        if shown is BracketStatus.FOUND and hi / lo > tolerance * (1 + 1e-9):
            return SearchState.OPEN, info
        return shown, info
