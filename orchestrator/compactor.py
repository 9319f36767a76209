"""The driver compacts its folder while the sweep runs (phantom.results), and once at the end.

A background thread looks at the loose records every :data:`EVERY_S` seconds and compacts them
once at least ``PHANTOM_COMPACT`` (default :data:`MIN_TRIALS`) are waiting, so a folder holds
fewer loose trials than that however long the sweep; results only (ok, diverged), since a worker
may still rewrite an error record (``resume --errored``). When the sweep ends, the same
threshold holds for everything loose, errors included (the workers are gone): a small sweep
stays one file pair per trial, easy to look at, and as fast to read as a part at that size. The thread holds no lock of its own: the
driver holds the folder's lock, and this is the driver. A failed compaction is said in one line
and left for the next one (nothing is lost: see phantom.results).
"""

from __future__ import annotations

import os
import sys
import threading

from phantom import results

EVERY_S = 30.0
MIN_TRIALS = 1_000
MIN_TRIALS_ENV = "PHANTOM_COMPACT"  # loose trials that make a compaction (1: compact everything)


def threshold() -> int:
    text = os.environ.get(MIN_TRIALS_ENV, "").strip()
    if not text:
        return MIN_TRIALS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        from phantom.errors import ConfigError

        raise ConfigError(f"{MIN_TRIALS_ENV} should be a whole number >= 1, got {text!r}")
    return value


class Compactor:
    """Context manager: compact in the background while the body runs, then everything."""

    def __init__(self, store, stream=None, *, every_s: float = EVERY_S, min_trials: int | None = None,
                 finish=lambda: True) -> None:
        self.store = store
        self.finish = finish  # whether to compact at the end (not when the storage refused writes)
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.min_trials = min_trials or threshold()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.compacted = 0

    def __enter__(self) -> Compactor:
        self._thread = threading.Thread(target=self._loop, name="phantom-compactor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if exc_type is None and self.finish():
            self._compact(min_trials=self.min_trials, results_only=False, workers_done=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self._compact(min_trials=self.min_trials, results_only=True, workers_done=False)

    def _compact(self, **options) -> None:
        try:
            out = results.compact(self.store, **options)
        except Exception as exc:  # noqa: BLE001 - the data is safe; the next compaction retries
            from phantom.orchestrator.hints import command

            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            print(f"compaction of {self.store.uri} failed ({type(exc).__name__}: {first}); "
                  f"it is retried later ({command('compact', self.store.uri)})", file=self.stream, flush=True)
            return
        self.compacted += out.trials


def compact_folder(path: str, *, part_trials: int | None = None, stream=None) -> list[str]:
    """``phantom sweep compact``: every complete loose trial of a results folder (a sweep folder
    or a ``phantom trial --out`` folder) moved into a few large parts, under the folder's lock
    (one compactor at a time, never beside a driver); progress to ``stream``. Returns what is
    left to say once it is done."""
    from phantom import layout
    from phantom.errors import StorageError
    from phantom.orchestrator.lock import SweepLock
    from phantom.storage import Store
    from phantom.storage_errors import check_store, translated

    stream = stream or sys.stdout
    store = Store.open(path)
    options = {"part_trials": part_trials} if part_trials else {}
    with translated(store.uri):  # an unreachable or refusing store: one line
        check_store(store)
        if not (store.exists(layout.TRIALS_DIR) or store.exists(layout.PARTS_DIR)):
            raise StorageError(f"no results in {store.uri}: expected a trials/ or parts/ folder")
        with SweepLock(store, stream=stream):
            out = results.compact(store, progress=lambda m: print(m, file=stream, flush=True), **options)
        said = []
        if not out.parts and not out.leftovers:
            said.append(f"{store.uri}: nothing to compact ({len(results.committed_parts(store))} parts, no loose trials)")
        elif out.leftovers:
            said.append(f"removed {out.leftovers} leftovers of an interrupted compaction")
        if out.kept_loose:
            said.append(f"left {out.kept_loose} trials loose: their files have columns this version does not know")
        return said
