"""What the driver hands a dispatch unit: one frozen dataclass, both ends (as
:class:`~phantom.orchestrator.unit_report.UnitReport` is the other way).

The driver builds one :class:`UnitTask` per Tune run from the sweep (:meth:`UnitTask.of`);
Tune's ``param_space`` takes a dict, so :meth:`UnitTask.param_space` makes it there and
nowhere else — the same task for every unit but for its id (``unit``, Tune's grid) — and the
trainable reads its config back with :meth:`UnitTask.from_dict`, which refuses a key it does not
know. A Tune experiment that another release wrote holds another task: it is not restored
(:data:`FORMAT`, written into ``ray/current.json``); its pending trials are dispatched afresh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from phantom.config import PackMode
from phantom.errors import ConfigError

FORMAT = 2  # the task of this release; the restore marker says which one its experiment holds


@dataclass(frozen=True)
class UnitTask:
    """One unit's task. ``units``: the run's folder of unit files under the sweep's ``ray/``
    (the unit's members: ``ray/<units>/<unit>.json``); ``storage``: the sweep folder's URI."""

    units: str
    storage: str
    unit: str = ""  # this unit's id ("" in the template the driver builds)
    cpus: float = 1.0  # CPUs Tune reserves for the unit: its torch threads on a CPU
    retries: int = 0  # a pack whose worker died in retries + 1 attempts gets error records
    tracking: tuple[str, ...] = ()  # experiment trackers every step is sent to (phantom/tracking.py)
    pack_mode: PackMode = PackMode.AUTO  # how a pack of several trials trains
    step_delay_s: float = 0.0  # the sweep's testing.step_delay_s: seconds to sleep after each step

    @classmethod
    def of(cls, sweep, units: str, storage: str) -> UnitTask:
        """The task of every unit of a Tune run of ``sweep`` (its id left empty)."""
        r = sweep.resources
        return cls(units=units, storage=storage, cpus=r.cpus_per_trial, retries=sweep.retries,
                   tracking=tuple(sweep.tracking), pack_mode=r.pack_mode,
                   step_delay_s=sweep.testing.step_delay_s)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["tracking"] = list(self.tracking)
        out["pack_mode"] = self.pack_mode.value
        return out

    def param_space(self, unit_ids: Iterable[str]) -> dict[str, Any]:
        """Tune's ``param_space``: this task, one Tune trial per unit id."""
        from ray import tune

        return {**self.to_dict(), "unit": tune.grid_search(list(unit_ids))}

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> UnitTask:
        """The task in a Tune trial's config; a ConfigError for a config this release did not write."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING and f.name not in config)
        if unknown or missing:
            raise ConfigError(f"not a unit task of this release (unknown keys {unknown}, missing {missing})")
        values = dict(config)
        values["tracking"] = tuple(values.get("tracking") or ())
        values["pack_mode"] = PackMode.parse(values.get("pack_mode", PackMode.AUTO))
        return cls(**values)
