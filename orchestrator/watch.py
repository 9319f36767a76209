"""What the driver watches while Tune runs: units whose workers cannot start them.

A worker cannot start a unit when it cannot load Phantom: the trainable's own module does not
import there (Ray: "The actor with name ImplicitFunc failed to import on the worker" — another
Phantom, or none, on that node's path), or a module the trainable needs does not (the trainable
reports it as :attr:`UnitReport.start_error`). Every unit would fail the same way, each retried
and each with Ray's tracebacks. Instead the run stops at the first such failure (Tune's graceful
stop, as on Ctrl-C) and nothing is recorded for any trial — the trials are not at fault, so
none gets an ``error`` record and ``resume`` runs them all once the workers are fixed; the
driver then raises one line (:class:`~phantom.errors.ClusterError`) with the cause and the node.

Tune pickles its callbacks into the experiment state (as :mod:`phantom.orchestrator.progress`
explains), so :class:`StartCallback` holds no state and forwards to the active :class:`StartWatch`.
"""

from __future__ import annotations

import _thread
import re
import signal

from ray.tune import Callback

from phantom.orchestrator.unit_report import UnitReport

_ACTIVE: StartWatch | None = None
_RAY_IMPORT = "failed to import on the worker"  # Ray's words when an actor's class does not load
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")
_NODE = re.compile(r"^\s*ip: (\S+)$", re.MULTILINE)


def start_failure(text: str | None) -> str | None:
    """The cause of a Tune trial's error when it is a worker that could not load Phantom's
    trainable (``ImportError: ... (node 10.0.0.3)``), else None."""
    if not text or _RAY_IMPORT not in text:
        return None
    inner = text.split(_RAY_IMPORT, 1)[1].split("During handling of the above exception", 1)[0]
    causes = [m.group(0) for line in inner.splitlines() if (m := _EXCEPTION.match(line.strip()))]
    node = _NODE.search(text)
    cause = causes[-1] if causes else "the worker could not import Phantom's trainable"
    return cause + (f" (node {node.group(1)})" if node else "")


class StartWatch:
    """Active while Tune runs: holds the first start failure seen (:attr:`failure`) and asks
    Tune to stop when it sees one."""

    def __init__(self) -> None:
        self.failure: str | None = None

    def saw(self, cause: str | None) -> None:
        if cause and self.failure is None:
            self.failure = cause
            _thread.interrupt_main(signal.SIGUSR1)  # Tune's graceful stop: the other units end

    def __enter__(self) -> StartWatch:
        global _ACTIVE
        _ACTIVE = self
        return self

    def __exit__(self, *exc) -> None:
        global _ACTIVE
        _ACTIVE = None


def _error_text(trial) -> str | None:
    """The trial's latest error as Tune has just written it: the local copy (the one in the
    experiment's storage is synced later)."""
    try:
        with open(trial.error_file, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except (OSError, TypeError):
        try:
            return trial.get_error()
        except Exception:  # noqa: BLE001 - no error file (yet): nothing to classify
            return None


class StartCallback(Callback):
    """Stateless forwarder: a unit's error or report that says its worker could not start it."""

    def on_trial_recover(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.saw(start_failure(_error_text(trial)))

    def on_trial_error(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.saw(start_failure(_error_text(trial)))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if _ACTIVE and result.get("start_error"):
            _ACTIVE.saw(UnitReport.from_dict(result).start_error)
