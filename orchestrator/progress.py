"""The live progress view of a sweep: trials done / running / failed / pending, steps/s, ETA.

Tune pickles its callbacks into the experiment state, and ``Tuner.restore`` brings back the
pickled ones; so :class:`ProgressCallback` holds no state and forwards every event to the view
of the running process (:func:`activate`), which works the same for a fresh run and a restore.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field

from ray.tune import Callback

_ACTIVE: ProgressView | None = None


def activate(view: ProgressView | None) -> None:
    global _ACTIVE
    _ACTIVE = view


def _key(trial) -> tuple[str, int]:
    """(pack id, number of member trials) of a Tune trial."""
    pack = trial.config["pack"]
    return pack["id"], len(pack["trials"])


class ProgressCallback(Callback):
    """Stateless forwarder from Tune's driver-side events to the active view."""

    def on_trial_start(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.started(*_key(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if _ACTIVE:
            _ACTIVE.result(_key(trial)[0], result)

    def on_trial_recover(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.retried(_key(trial)[0])

    def on_trial_error(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.lost(*_key(trial))

    def on_trial_complete(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.completed(_key(trial)[0])

    def on_step_end(self, iteration, trials, **info):
        if _ACTIVE:
            _ACTIVE.tick()


@dataclass
class _Pack:
    members: int
    steps: int = 0  # member-steps taken
    finished: int = 0  # members with a result (ok, diverged)
    failed: int = 0  # members with an error record, or lost with their worker
    done: bool = False


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
    packs: dict[str, _Pack] = field(default_factory=dict)
    ignored: set[str] = field(default_factory=set)  # already complete (a restored experiment's)
    retries: int = 0
    window_s: float = 300.0
    clock: object = time.monotonic
    started_at: float | None = None
    _last_print: float = 0.0
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
    def started(self, key: str, members: int) -> None:
        if key not in self.ignored:
            self.packs.setdefault(key, _Pack(members))

    def result(self, key: str, result: dict) -> None:
        if result.get("existing") or key in self.ignored:  # complete before: a restore re-checks it
            self.ignored.add(key)
            self.packs.pop(key, None)
            return
        pack = self.packs.setdefault(key, _Pack(1))
        pack.steps = max(pack.steps, int(result.get("member_steps") or 0))
        if result.get("done"):
            pack.finished, pack.failed = int(result.get("finished", 0)), int(result.get("failed", 0))
            pack.done = True

    def retried(self, key: str) -> None:
        self.retries += 1
        if key in self.packs:
            self.packs[key].steps = 0

    def lost(self, key: str, members: int) -> None:
        pack = self.packs.setdefault(key, _Pack(members))
        if not pack.done:
            pack.failed, pack.done = pack.members - pack.finished, True

    def completed(self, key: str) -> None:
        if key in self.packs:
            self.packs[key].done = True

    # -- rendering -------------------------------------------------------------------------------
    def line(self) -> str:
        finished = sum(p.finished for p in self.packs.values())
        failed = sum(p.failed for p in self.packs.values())
        running = sum(p.members for p in self.packs.values() if not p.done)
        pending = max(0, self.total - finished - failed - running)
        now = self.clock()
        elapsed = max(now - self.started_at, 1e-9)
        stepped = sum(p.steps for p in self.packs.values())
        rate = self._rate(now, stepped)
        left = (pending + running) * self.budget - sum(p.steps for p in self.packs.values() if not p.done)
        eta = _duration(max(left, 0) / rate) if rate > 0 else "?"
        extra = f", {self.retries} retried" if self.retries else ""
        return (
            f"trials: {finished + self.already} done, {running} running, {failed} failed, "
            f"{pending} pending{extra} | {rate:.1f} steps/s | elapsed {_duration(elapsed)}, ETA {eta}"
        )

    def tick(self, force: bool = False) -> None:
        if self._live is not None:
            self._live.update(self.line())
            return
        now = self.clock()
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
