"""What a dispatch unit tells the driver while it runs: one frozen dataclass, both ends.

A unit (:mod:`phantom.orchestrator.trainable`, on a worker) sends a :class:`UnitReport` through
``tune.report``, which takes a dict: :meth:`UnitReport.to_dict` there and nowhere else. The
driver's progress view (:mod:`phantom.orchestrator.progress`) reads Tune's result back with
:meth:`UnitReport.from_dict`, which leaves out the keys Tune adds of its own
(``training_iteration``, ``time_this_iter_s``, ...). Counts are this attempt's, cumulative: the
view keeps what an earlier attempt of the unit, whose worker died, had counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class UnitReport:
    members: int | None = None  # members this attempt runs (its pending ones); None: not said
    finished: int = 0  # members that ended with a result record (ok, diverged)
    failed: int = 0  # members that ended with an error record
    skipped: int = 0  # members whose sentence does not fit the model (a skip file, no record)
    running: int | None = None  # members of the pack running now; None: not said
    member_steps: int = 0  # optimizer steps its members have taken
    pack_steps: int = 0  # of those, the steps of the pack running now
    existing: bool = False  # every member was complete before the unit started: nothing ran
    done: bool = False  # the unit's last report
    start_error: str = ""  # why the worker could not load what the unit needs ("": it could): nothing ran

    def to_dict(self) -> dict[str, Any]:
        """The dict ``tune.report`` sends (what was not said left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, result: Mapping[str, Any]) -> UnitReport:
        """The report in a Tune result (Tune's own keys left out; a key not sent: its default)."""
        values = {}
        for f in dataclasses.fields(cls):
            value = result.get(f.name)
            if value is None:
                continue
            if f.type in ("bool", bool):
                values[f.name] = bool(value)
            elif f.type in ("str", str):
                values[f.name] = str(value)
            else:
                values[f.name] = int(value)
        return cls(**values)
