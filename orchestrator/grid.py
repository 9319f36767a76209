"""Search mode ``grid``: every point of the sweep's grid (:mod:`phantom.orchestrator.expand`), once.

The plan (every trial id, the skipped pairs) is written before dispatch, so ``sweep status``
knows what the sweep consists of while it runs and after it was interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path

from phantom.config import TrialConfig
from phantom.storage import Store
from phantom.orchestrator.config import SweepConfig
from phantom.orchestrator.engine import Outcome, dispatch
from phantom.orchestrator.expand import Grid
from phantom.orchestrator.plan import write_plan


def run_grid(store: Store, sweep: SweepConfig, sentences_file: Path, grid: Grid, *,
             rerun_errored: bool = False, stream=None, subset: list[TrialConfig] | None = None) -> Outcome:
    """Write the plan (the whole grid), then dispatch what is missing of it, or of ``subset``
    (the trials ``--only`` chose: :mod:`phantom.orchestrator.only`)."""
    stream = stream or sys.stderr
    write_plan(store, sweep, sentences_file, grid.ids, grid.skipped)
    for s in grid.skipped:
        print(f"skipping {s.model} / {s.sentence_id}: {s.reason}", file=stream)
    if subset is None:
        return dispatch(store, sweep, grid.trials, rerun_errored=rerun_errored, stream=stream, ids=grid.ids)
    return dispatch(store, sweep, list(subset), rerun_errored=rerun_errored, stream=stream)
