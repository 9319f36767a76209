"""The search modes in one place: what a sweep's ``search.mode`` plans and how the plan runs.

:func:`plan_sweep` turns a sweep into a :class:`Plan` — every check of the grid done (models,
sentences, skipped pairs) and nothing written; :func:`run_plan` runs it through its mode
(:mod:`phantom.orchestrator.grid`: every point once; :mod:`phantom.orchestrator.etac`: η_c by
bisection per bracket). The runner and ``phantom sweep validate`` hold a Plan, never a mode's
own structures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from phantom.config import TrialConfig
from phantom.orchestrator.config import SearchMode, SweepConfig
from phantom.orchestrator.expand import Grid
from phantom.storage import Store

if TYPE_CHECKING:  # pragma: no cover
    from phantom.orchestrator.bisect import Bracket
    from phantom.orchestrator.engine import Outcome


@dataclass(frozen=True)
class Plan:
    """What a sweep runs. ``grid``: the trials of a grid sweep, or the first trial of each
    bracket of an η_c search (its checks and skipped pairs are the grid's); ``brackets``: the
    η_c search's brackets (none for a grid)."""

    mode: SearchMode
    grid: Grid
    brackets: tuple["Bracket", ...] = ()

    @property
    def trials(self) -> list[TrialConfig]:
        """The trials known before anything runs (a grid's all; an η_c search's first of each bracket)."""
        return list(self.grid.trials)


def plan_sweep(sweep: SweepConfig, sentences_file: Path) -> Plan:
    """The sweep's plan (nothing is written)."""
    if sweep.search.mode is SearchMode.ETA_C:
        from phantom.orchestrator.etac import plan_brackets

        brackets, grid = plan_brackets(sweep, sentences_file)
        return Plan(SearchMode.ETA_C, grid, tuple(brackets))
    from phantom.orchestrator.expand import expand

    return Plan(SearchMode.GRID, expand(sweep, sentences_file))


def run_plan(plan: Plan, store: Store, sweep: SweepConfig, sentences_file: Path, *, rerun_errored: bool = False,
             stream=None, subset: list[TrialConfig] | None = None) -> Outcome:
    """Run ``plan`` into ``store``: write its plan file, then dispatch what is missing (of
    ``subset``, the trials ``--only`` chose, for a grid)."""
    if plan.mode is SearchMode.ETA_C:
        from phantom.orchestrator.etac import run_eta_c

        return run_eta_c(store, sweep, sentences_file, list(plan.brackets), plan.grid,
                         rerun_errored=rerun_errored, stream=stream)
    from phantom.orchestrator.grid import run_grid

    return run_grid(store, sweep, sentences_file, plan.grid, rerun_errored=rerun_errored, stream=stream,
                    subset=subset)
