"""The live progress view of a sweep and its end-of-run summary.

Tune pickles its callbacks into the experiment state, and ``Tuner.restore`` brings back the
pickled ones; so :class:`ProgressCallback` holds no state and forwards every event to the view
of the running process (:func:`activate`), which works the same for a fresh run and a restore.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from ray.tune import Callback

_ACTIVE: ProgressView | None = None


def activate(view: ProgressView | None) -> None:
    global _ACTIVE
    _ACTIVE = view


def _trial_key(trial) -> str:
    return trial.config["trial"]["id"]


class ProgressCallback(Callback):
    """Stateless forwarder from Tune's driver-side events to the active view."""

    def on_trial_start(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.started(_trial_key(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if _ACTIVE:
            _ACTIVE.result(_trial_key(trial), result)

    def on_trial_recover(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.retried(_trial_key(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.errored(_trial_key(trial), str(getattr(trial, "error_file", "") or "worker failed"))

    def on_trial_complete(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.completed(_trial_key(trial), trial.last_result or {})

    def on_step_end(self, iteration, trials, **info):
        if _ACTIVE:
            _ACTIVE.tick()


@dataclass
class ProgressView:
    """Counts of this run's trials: done / running / failed / pending, steps/s and an ETA."""

    total: int  # trials dispatched in this run
    budget: int  # steps per trial
    already: int = 0  # complete before this run (not dispatched)
    interval_s: float = 10.0  # plain-text line every this often when not on a terminal
    stream: object = None
    steps: dict[str, int] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    done: dict[str, str] = field(default_factory=dict)  # trial id -> status
    ignored: set[str] = field(default_factory=set)  # already complete (a restored experiment's)
    retries: int = 0
    started_at: float = field(default_factory=time.monotonic)
    _last_print: float = 0.0
    _live: object = None

    def __post_init__(self) -> None:
        self.stream = self.stream or sys.stderr

    # -- events ----------------------------------------------------------------------------------
    def started(self, key: str) -> None:
        if key in self.ignored:
            return
        self.running.add(key)
        self.steps.setdefault(key, 0)

    def result(self, key: str, result: dict) -> None:
        if result.get("existing") or key in self.ignored:  # complete before: a restore re-checks it
            self.ignored.add(key)
            self.running.discard(key)
            self.steps.pop(key, None)
            return
        if "step" in result:
            self.steps[key] = max(self.steps.get(key, 0), int(result["step"]))
        if "status" in result:
            self.done[key] = result["status"]
            self.running.discard(key)

    def retried(self, key: str) -> None:
        self.retries += 1
        self.steps[key] = 0

    def errored(self, key: str, message: str) -> None:
        self.running.discard(key)
        self.done[key] = "lost"

    def completed(self, key: str, result: dict) -> None:
        self.running.discard(key)
        if key in self.ignored:
            return
        self.done.setdefault(key, result.get("status", "ok"))

    # -- rendering -------------------------------------------------------------------------------
    def line(self) -> str:
        failed = sum(1 for s in self.done.values() if s in ("error", "lost"))
        finished = len(self.done) - failed
        pending = max(0, self.total - len(self.done) - len(self.running))
        elapsed = max(time.monotonic() - self.started_at, 1e-9)
        stepped = sum(self.steps.values())
        rate = stepped / elapsed
        left = pending * self.budget + sum(
            max(0, self.budget - self.steps.get(k, 0)) for k in self.running
        )
        eta = _duration(left / rate) if rate > 0 else "?"
        extra = f", {self.retries} retried" if self.retries else ""
        return (
            f"trials: {finished + self.already} done, {len(self.running)} running, {failed} failed, "
            f"{pending} pending{extra} | {rate:.1f} steps/s | elapsed {_duration(elapsed)}, ETA {eta}"
        )

    def tick(self, force: bool = False) -> None:
        if self._live is not None:
            self._live.update(self.line())
            return
        now = time.monotonic()
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
