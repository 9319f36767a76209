"""The front door: ``phantom sweep run`` and ``resume`` (:func:`run_file`, :func:`resume`; the
command line and ``phantom.run`` / ``phantom.resume`` call these).

Everything that can be checked is checked before anything is written or started: the sweep
file, every model (resolvable here), every sentence (one token per word), packing. Then the
driver takes the folder's lock (one driver per folder, :mod:`phantom.orchestrator.lock`), brings up
Ray and checks that the cluster can run a pack at all (:class:`phantom.orchestrator.session.RaySession`),
cleans what killed processes left behind, and runs the sweep's plan (:mod:`phantom.orchestrator.search`:
its search mode, :mod:`phantom.orchestrator.grid` or :mod:`phantom.orchestrator.etac`, dispatches
through :mod:`phantom.orchestrator.engine`). Imports run one way: runner -> search -> modes -> engine.
"""

from __future__ import annotations

import _thread
import logging
import os
import signal
import sys
from pathlib import Path

from phantom.tracking import prepare_tracking
from phantom.orchestrator.config import SweepConfig
from phantom.orchestrator.engine import Outcome
from phantom.orchestrator.session import RaySession
from phantom.orchestrator.loader import open_folder
from phantom.orchestrator.compactor import Compactor
from phantom.orchestrator.lock import SweepLock
from phantom.orchestrator.only import check_only, describe_only, select
from phantom.orchestrator.packing import check_packing
from phantom.orchestrator.plan import clean_leftovers, sweep_store
from phantom.orchestrator.search import plan_sweep, run_plan
from phantom.orchestrator.status import format_status, query_hint, sweep_status
from phantom import layout
from phantom.errors import StorageError
from phantom.outcomes import TrialStatus
from phantom.storage import Store
from phantom.storage_errors import check_store, is_transient, storage_cause, storage_cause_text, storage_error


def run_file(file, overrides=(), *, storage: str | None = None, address: str | None = None,
             verbose: bool = False, stream=None, only: dict[str, tuple] | None = None) -> Outcome:
    """What ``phantom sweep run FILE`` does: load the sweep (a path, or a built-in sweep by
    name) with its ``--set`` overrides, check its trackers are installed, run what is missing."""
    from phantom.orchestrator.loader import load_sweep
    from phantom.storage_errors import translated
    from phantom.tracking import check_installed

    sweep, sentences = load_sweep(file, overrides)
    check_installed(sweep.tracking)  # a tracker without its package: fail before anything starts
    from phantom.orchestrator.hints import folder_uri

    with translated(folder_uri(storage or sweep.storage or "", sweep.name)):  # a refused write: one line naming cause and path
        return run_sweep(sweep, sentences, storage=storage, address=address, verbose=verbose,
                         stream=stream, only=only)


def finished_ok(outcome: Outcome) -> bool:
    """Whether the sweep (or, with ``only``, the selected trials) completed without an error:
    what exit status 0 means for ``phantom sweep run``."""
    from phantom.orchestrator.status import read_records

    if outcome.selected is None:
        return sweep_status(outcome.uri).finished_ok
    table = read_records(Store.open(outcome.uri), set(outcome.selected))
    statuses = table.column("status").to_pylist() if table is not None else []
    return len(statuses) == len(set(outcome.selected)) and TrialStatus.ERROR.value not in statuses


def run_sweep(
    sweep: SweepConfig, sentences_file: Path, *, storage: str | None = None, address: str | None = None,
    rerun_errored: bool = False, verbose: bool = False, stream=None, only: dict[str, tuple] | None = None,
    take_over: str | None = None,
) -> Outcome:
    """Check, lock, plan, dispatch what is missing (of the trials ``only`` selects: see
    :mod:`phantom.orchestrator.only`), and print the summary."""
    stream = stream or sys.stderr
    store = sweep_store(sweep, storage)
    check_store(store)  # an object store: reachable, the credentials accepted, the bucket there
    check_packing(sweep)
    check_only(sweep, only)
    plan = plan_sweep(sweep, sentences_file)
    subset = None  # the trials --only chose (grid sweeps only: check_only refuses it for eta-c)
    if only:  # chosen once, before the lock: a value the sweep lacks is refused with nothing written
        subset = select(plan.trials, only, sweep.name)
        print(f"--only {describe_only(only)}: {len(subset)} of the {len(plan.trials)} trials of "
              f"{sweep.name}", file=stream)
    with SweepLock(store, stream, take_over=take_over) as lock:
        prepare_tracking(sweep.tracking, store.uri)
        with RaySession(address, sweep.resources.request(), verbose=verbose, stream=stream, lock=lock):
            with RefusalWatch(lock, verbose) as watch:
                try:
                    clean_leftovers(store, lock)
                    # loose trials into parts as they finish (phantom.results); none after a refusal
                    with Compactor(store, stream, finish=lambda: watch.refusal is None):
                        outcome = run_plan(plan, store, sweep, sentences_file, rerun_errored=rerun_errored,
                                           stream=stream, subset=subset)
                except Exception:  # e.g. Tune reading back a state file the full disk truncated
                    watch.refusal = watch.refusal or write_refusal(store)
                    if watch.refusal is None:
                        raise  # not the storage's: the traceback is for us
        if watch.refusal is not None:  # stopped at the first refused write: say so in one line
            forget_refused(store, lock, quiet=True)
            try:
                clean_leftovers(store, lock)
                # Tune's state may have been cut short by the refusal (a truncated file on a full
                # disk): the next run dispatches what is pending from the records instead
                store.delete(layout.RAY_DIR, layout.CURRENT_FILE)
            except Exception:  # noqa: BLE001 - best effort: the storage refuses; the next run cleans
                pass
            raise storage_error(watch.refusal, store.uri)
        clean_leftovers(store, lock)  # what workers killed mid-write left behind
    print(summary(store.uri), file=stream)
    from phantom.orchestrator.hints import command

    if subset is not None:
        outcome.selected = tuple(t.trial_id for t in subset)
        print(f"  --only {describe_only(only)}: ran what was missing of {outcome.dispatched + outcome.already} of "
              f"the sweep's trials; the rest of its plan is left as it was ({command('status', store.uri)})",
              file=stream)
    return outcome


def summary(uri: str) -> str:
    st = sweep_status(uri)
    text = format_status(st)
    data = ", ".join(Store.open(st.uri).child(d).uri for d in (layout.STEPS_DIR, layout.TRIALS_DIR))
    return f"{text}\n  data: {data}\n  next: {query_hint(st.uri)}"


def resume(path: str, *, address: str | None = None, rerun_errored: bool = False, verbose: bool = False,
           stream=None, only: dict[str, tuple] | None = None, take_over: str | None = None) -> Outcome:
    """Continue the sweep of an existing folder from what it holds (``only``: part of it)."""
    from phantom.storage_errors import translated

    with translated(path):  # an unreachable or refusing store: one line
        check_store(Store.open(path))
        with open_folder(path) as (sweep, sentences, root):
            return run_sweep(sweep, sentences, storage=root, address=address, rerun_errored=rerun_errored,
                             verbose=verbose, stream=stream, only=only, take_over=take_over)


# ----------------------------------------------------------------------------------------------
# storage that refuses writes: stop at the first refusal, in one line, resumable


class RefusalWatch(logging.Filter):
    """Stops the sweep at the first refused write (a full disk, a quota, a permission, a
    bucket policy, refused credentials; see :mod:`phantom.storage_errors`), wherever it shows:
    a worker's trial failing on it (Tune logs the trial's exception in the driver), Tune's own
    state sync, or the lock's heartbeat. Tune is asked to stop as on Ctrl-C (its SIGUSR1
    handler: the running trials end, its state is saved when it can be), and the runner then
    raises a one-line :class:`StorageError`. The tracebacks Tune would print for these
    failures are left out unless ``--verbose``. An endpoint that does not answer is not a
    refusal here: Tune retries the trial, as when a server restarts."""

    LOGGERS = ("ray",)  # Tune's and Train's loggers propagate to the "ray" logger's handlers

    def __init__(self, lock, verbose: bool = False) -> None:
        super().__init__()
        self.lock = lock
        self.verbose = verbose
        self.refusal: BaseException | None = None
        self._handlers: list[logging.Handler] = []

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        cause = storage_cause(exc) if exc is not None else None
        if cause is None and record.levelno >= logging.ERROR:
            cause = storage_cause_text(record.getMessage())
            exc = _Refused(record.getMessage()) if cause else None
        if cause is None:
            if self.verbose or record.levelno < logging.ERROR:
                return True
            # after a refusal, Ray's errors are its consequences ("Trials did not complete"); a
            # unit that failed is said by Phantom itself (a record, a retry, the watch's line)
            return self.refusal is None and not _tune_trial_failure(record)
        if not is_transient(cause):
            self.refused(exc)
        return self.verbose

    def refused(self, exc: BaseException) -> None:
        if self.refusal is None and not is_transient(storage_cause(exc)):
            self.refusal = exc
            # Tune's graceful stop; outside Tune's run (no Python handler) this does nothing
            _thread.interrupt_main(signal.SIGUSR1)

    def __enter__(self) -> RefusalWatch:
        for name in self.LOGGERS:
            for handler in logging.getLogger(name).handlers:
                handler.addFilter(self)
                self._handlers.append(handler)
        self.lock.on_refused = self.refused
        if self.lock.refused is not None:
            self.refused(self.lock.refused)
        return self

    def __exit__(self, *exc) -> None:
        for handler in self._handlers:
            handler.removeFilter(self)
        self._handlers = []
        self.lock.on_refused = None


def _tune_trial_failure(record: logging.LogRecord) -> bool:
    """Tune's log of a trial (a unit) that failed, with its traceback: what it means is on
    disk and in the progress line (the unit's records, its retry, the watch's one line)."""
    return record.name.startswith("ray.tune") and record.getMessage().startswith(
        ("Trial task failed for trial", "Trials did not complete"))


def write_refusal(store: Store) -> BaseException | None:
    """Whether the folder refuses a write now (a small probe, removed at once): the exception
    when it does for a storage reason, else None."""
    probe = f".phantom-probe-{os.getpid()}"
    try:
        store.write_text("probe", probe)
        store.delete(probe)
    except Exception as exc:  # noqa: BLE001
        return exc if storage_cause(exc) and not is_transient(storage_cause(exc)) else None
    return None


class _Refused(OSError):
    """A refusal known from a log message only (Tune's sync logs the error as text)."""

    def __str__(self) -> str:
        return self.args[0]


def forget_refused(store: Store, lock, quiet: bool = False) -> int:
    """Remove the ``error`` records (and steps) of trials that failed only because the storage
    refused a write: the failure was the storage's, not the trial's, so the trial is pending
    again and the next run or resume re-runs it (without ``--errored``). Under the lock only.
    ``quiet``: best effort (right after a refusal the deletes may be refused too)."""
    from phantom.orchestrator.status import read_records

    if not getattr(lock, "held", False):
        raise StorageError(f"refusing to change {store.uri} without holding its lock")
    try:
        table = read_records(store)
        if table is None:
            return 0
        rows = table.select(["trial_id", "status", "error"]).to_pylist()
        refused = [r["trial_id"] for r in rows
                   if r["status"] == TrialStatus.ERROR.value and storage_cause_text(r["error"] or "")]
        for tid in refused:
            store.delete(*layout.trial_file(tid))  # the record first: without it the steps are leftovers
            store.delete(*layout.steps_file(tid))
        return len(refused)
    except Exception:
        if quiet:
            return 0
        raise
