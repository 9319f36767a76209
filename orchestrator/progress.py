"""The live progress view of a sweep: trials done / running / failed / pending, steps/s, ETA.

It follows Tune trials, which are dispatch units (:mod:`phantom.orchestrator.packing`): each reports
(:class:`~phantom.orchestrator.unit_report.UnitReport`) its members' counts as they finish (finished,
failed, skipped), the members of the pack it is running, and member-steps. A unit retried
after its worker died keeps what its earlier attempts finished (their records are on disk)
and counts the new attempt on top; until Tune starts that attempt (on a cluster that lost a
node it may wait for a free slot) its members count as pending, not running.

Tune pickles its callbacks into the experiment state, and ``Tuner.restore`` brings back the
pickled ones; so :class:`ProgressCallback` holds no state and forwards every event to the view
of the running process (:func:`activate`), which works the same for a fresh run and a restore.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from ray.tune import Callback

from phantom.orchestrator.unit_report import UnitReport

_ACTIVE: ProgressView | None = None
LIVE_EVERY_S = 0.25  # the terminal's live line is recomputed at most this often


def activate(view: ProgressView | None) -> None:
    global _ACTIVE
    _ACTIVE = view


def say(text: str) -> None:
    """A line above the live progress line (or on its own without one)."""
    view = _ACTIVE
    if view is not None and view._live is not None:
        view._live.console.print(text, highlight=False, markup=False)
    else:
        print(text, file=(view.stream if view is not None else sys.stderr), flush=True)


def _key(trial) -> str:
    """The unit id of a Tune trial (its name: :class:`~phantom.orchestrator.unit_task.UnitTask`)."""
    return trial.config["unit"]


class ProgressCallback(Callback):
    """Stateless forwarder from Tune's driver-side events to the active view."""

    def on_trial_start(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.started(_key(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if _ACTIVE:
            _ACTIVE.result(_key(trial), result)

    def on_trial_recover(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.retried(_key(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.lost(_key(trial))

    def on_trial_complete(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.completed(_key(trial))

    def on_step_end(self, iteration, trials, **info):
        if _ACTIVE:
            _ACTIVE.tick()


_COUNTS = ("finished", "failed", "skipped", "member_steps")


@dataclass
class _Unit:
    members: int  # members it runs: its pending members once it reports (the first pack's before)
    earlier: dict = field(default_factory=lambda: dict.fromkeys(_COUNTS, 0))  # attempts before this one
    now: dict = field(default_factory=lambda: dict.fromkeys(_COUNTS, 0))  # this attempt's, as reported
    running: int | None = None  # members of the pack it runs (None: not reported)
    pack_steps: int = 0  # member-steps of that pack
    done: bool = False
    waiting: bool = False  # retried, its new attempt not started yet: nothing of it runs

    def total(self, key: str) -> int:
        return self.earlier[key] + self.now[key]

    def running_now(self) -> int:
        if self.done or self.waiting:
            return 0
        if self.running is not None:
            return self.running
        return max(0, self.members - self.now["finished"] - self.now["failed"] - self.now["skipped"])


@dataclass
class ProgressView:
    """Counts of this run's trials (members of packs): done / running / failed / pending,
    steps/s and an ETA.

    The rate is measured over the last ``window_s`` seconds, not since the start: a sweep's
    member-steps differ in cost by model, protocol and pack (cross-arch.yaml: a member of an
    8-trial LoRA pack on smollm2 steps ~10x faster than a qwen trial alone), and the grid runs
    model by model, so the recent rate is the better guess for what is left."""

    total: int  # trials dispatched in this run
    budget: int  # steps per trial
    already: int = 0  # complete before this run (not dispatched)
    interval_s: float = 10.0  # plain-text line every this often when not on a terminal
    stream: object = None
    units: dict[str, _Unit] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # unit id -> members of its first pack
    ignored: set[str] = field(default_factory=set)  # already complete (a restored experiment's)
    retries: int = 0
    window_s: float = 300.0
    clock: object = time.monotonic
    started_at: float | None = None
    _last_print: float = 0.0
    _last_live: float = 0.0
    _live: object = None
    _samples: deque = field(default_factory=deque)  # (time, member-steps so far), the rate's window

    def __post_init__(self) -> None:
        self.stream = self.stream or sys.stderr
        if self.started_at is None:
            self.started_at = self.clock()
        self._samples.append((self.started_at, 0))

    def _rate(self, now: float, stepped: int) -> float:
        """Member-steps per second over the last ``window_s`` (since the start until then)."""
        self._samples.append((now, stepped))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()  # keep one sample at or before the window's start
        t0, s0 = self._samples[0]
        return max(stepped - s0, 0) / (now - t0) if now > t0 else 0.0

    # -- events ----------------------------------------------------------------------------------
    def started(self, key: str, members: int | None = None) -> None:
        if key not in self.ignored:
            self.units.setdefault(key, _Unit(self.sizes.get(key, 0) if members is None else members)).waiting = False

    def result(self, key: str, result: UnitReport | Mapping) -> None:
        """A unit's report (Tune's result dict: :meth:`UnitReport.from_dict` reads it)."""
        report = result if isinstance(result, UnitReport) else UnitReport.from_dict(result)
        if report.start_error:  # its worker could not load Phantom: nothing ran (the watch stops the run)
            return
        if report.existing or key in self.ignored:  # complete before: a restore re-checks it
            unit = self.units.get(key)
            if unit is not None and any(unit.total(k) for k in ("finished", "failed", "skipped")):
                unit.done = True  # a retry that found its earlier attempts had finished it all
                return
            self.ignored.add(key)
            self.units.pop(key, None)
            return
        unit = self.units.setdefault(key, _Unit(1))
        unit.waiting = False  # it reports: it runs
        if report.members is not None:
            unit.members = report.members
        unit.now["member_steps"] = max(unit.now["member_steps"], report.member_steps)
        unit.now.update(finished=report.finished, failed=report.failed, skipped=report.skipped)
        unit.running, unit.pack_steps = report.running, report.pack_steps
        if report.done:
            unit.done = True

    def retried(self, key: str) -> None:
        self.retries += 1
        unit = self.units.get(key)
        if unit is not None:  # what the dead attempt finished is on disk; its running pack is not
            for k in _COUNTS:
                unit.earlier[k] += unit.now[k]
            unit.now = dict.fromkeys(_COUNTS, 0)
            unit.running, unit.pack_steps = None, 0
            unit.waiting = True

    def lost(self, key: str) -> None:
        """Tune gave up on the unit: its members without a record get an error record."""
        unit = self.units.setdefault(key, _Unit(self.sizes.get(key, 0)))
        if not unit.done:
            unit.now["failed"] = unit.members - unit.now["finished"] - unit.now["skipped"]
            unit.done = True

    def completed(self, key: str) -> None:
        if key in self.units:
            self.units[key].done = True

    # -- rendering -------------------------------------------------------------------------------
    def line(self) -> str:
        units = self.units.values()
        finished = sum(u.total("finished") for u in units)
        failed = sum(u.total("failed") for u in units)
        skipped = sum(u.total("skipped") for u in units)
        running = sum(u.running_now() for u in units)
        pending = max(0, self.total - finished - failed - skipped - running)
        now = self.clock()
        elapsed = max(now - self.started_at, 1e-9)
        rate = self._rate(now, sum(u.total("member_steps") for u in units))
        left = (pending + running) * self.budget - sum(u.pack_steps for u in units if not u.done)
        eta = _duration(max(left, 0) / rate) if rate > 0 else "?"
        extra = (f", {skipped} skipped" if skipped else "") + (f", {self.retries} retried" if self.retries else "")
        return (
            f"trials: {finished + self.already} done, {running} running, {failed} failed, "
            f"{pending} pending{extra} | {rate:.1f} steps/s | elapsed {_duration(elapsed)}, ETA {eta}"
        )

    def tick(self, force: bool = False) -> None:
        now = self.clock()
        if self._live is not None:
            if force or now - self._last_live >= LIVE_EVERY_S:  # Tune ticks many times a second
                self._last_live = now
                self._live.update(self.line())
            return
        if force or now - self._last_print >= self.interval_s:
            self._last_print = now
            print(self.line(), file=self.stream, flush=True)

    def __enter__(self) -> ProgressView:
        if getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self.line(), console=Console(file=self.stream), refresh_per_second=2, transient=True)
            self._live.__enter__()
        activate(self)
        return self

    def __exit__(self, *exc) -> None:
        activate(None)
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None
        print(self.line(), file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
