"""What the driver watches while Tune runs: units whose workers cannot start them.

A worker cannot start a unit when it cannot load Phantom: the trainable's own module does not
import there (Ray: "The actor with name ImplicitFunc failed to import on the worker" — another
Phantom, or none, on that node's path), or a module the trainable needs does not (the trainable
reports it as :attr:`UnitReport.start_error`). Every unit would fail the same way, each retried
and each with Ray's tracebacks. Instead the run stops at the first such failure (Tune's graceful
stop, as on Ctrl-C) and nothing is recorded for any trial — the trials are not at fault, so
none gets an ``error`` record and ``resume`` runs them all once the workers are fixed; the
driver then raises one line (:class:`~phantom.errors.ClusterError`) with the cause and the node.

A unit whose worker is lost (its node gone, its process killed) is retried by Tune; the watch
says so in one line, naming the node and the trials that will run again
(``node 10.0.0.3 (85cc5709) lost: trial 1a2b... will run again``), in place of Tune's
traceback (:func:`lost_worker` tells such an error from a trial's own).

Tune pickles its callbacks into the experiment state (as :mod:`phantom.orchestrator.progress`
explains), so :class:`StartCallback` holds no state and forwards to the active :class:`StartWatch`.
"""

from __future__ import annotations

import _thread
import json
import re
import signal
import threading
import time

from ray.tune import Callback

from phantom.orchestrator.unit_report import UnitReport

_ACTIVE: StartWatch | None = None
_RAY_IMPORT = "failed to import on the worker"  # Ray's words when an actor's class does not load
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")
_NODE = re.compile(r"^\s*ip: (\S+)$", re.MULTILINE)
_LOST = ("ActorUnavailableError", "ActorDiedError", "is unavailable", "actor died", "The actor died",
         "node was terminated", "marked dead", "NodeDiedError", "WorkerCrashedError", "Socket closed")


def lost_worker(text: str | None) -> bool:
    """Whether a Tune trial's error is its worker lost (its node gone, its process killed)
    rather than a failure of the trial's own."""
    return bool(text) and any(word in text for word in _LOST)


NODE_DEAD_WAIT_S = 30.0  # Ray marks a lost node dead after its health checks fail (~10-30 s)


def say_loss(config: dict) -> None:
    """:func:`loss_line`, said from a thread once Ray knows whether the node is gone (Tune's
    loop is not held up meanwhile)."""
    from phantom.orchestrator.progress import say

    threading.Thread(target=lambda: say(loss_line(config)), name="phantom-loss-line", daemon=True).start()


def loss_line(config: dict, wait_s: float = NODE_DEAD_WAIT_S) -> str:
    """``node N lost: trial T will run again`` for a unit whose worker was lost: which of its
    trials were running (the members without a record whose attempt is the newest) and the node
    of that attempt (from ``attempts/<trial_id>.json``), as far as the folder tells."""
    from phantom.orchestrator.packing import read_unit
    from phantom.orchestrator.unit_task import UnitTask
    from phantom.storage import Store

    def read_attempts(store, trial_id: str) -> list[dict]:  # attempts/<trial_id>.json (the trainable's)
        from phantom import layout

        if not store.exists(*layout.attempts_file(trial_id)):
            return []
        return json.loads(store.read_text(*layout.attempts_file(trial_id))).get("attempts", [])

    try:
        task = UnitTask.from_dict(config)
        store = Store.open(task.storage)
        members = [c.trial_id for pack in read_unit(store, task.units, task.unit) for c in pack]
        done = store.completed_trial_ids()
        last = {tid: a[-1] for tid in members if tid not in done and (a := read_attempts(store, tid))}
    except Exception:  # noqa: BLE001 - the folder does not say: the line says less
        last = {}
    if not last:
        return "a worker was lost: its trials will run again"
    newest = max(str(a.get("started") or "") for a in last.values())  # ISO times: their order is time's
    running = sorted(t for t, a in last.items() if str(a.get("started") or "") == newest)
    node_id = last[running[0]].get("node_id") or ""
    deadline = time.monotonic() + wait_s
    alive, ip = _node(node_id)
    while alive and time.monotonic() < deadline:  # a worker killed, or a node Ray has not marked dead yet
        time.sleep(1.0)
        alive, ip = _node(node_id)
    trials = f"trial {running[0]}" if len(running) == 1 else f"trials {', '.join(running)}"
    where = f"{ip} ({node_id[:8]})" if ip else node_id[:8] or "?"
    if alive:
        return f"the worker of {trials} on node {where} died: {'it' if len(running) == 1 else 'they'} will run again"
    return f"node {where} lost: {trials} will run again"


def _node(node_id: str) -> tuple[bool, str | None]:
    """(alive, its address) of a Ray node, from the cluster's state."""
    try:
        import ray

        for n in ray.nodes():
            if n.get("NodeID") == node_id:
                return bool(n.get("Alive")), n.get("NodeManagerAddress")
    except Exception:  # noqa: BLE001
        pass
    return False, None


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
            text = _error_text(trial)
            _ACTIVE.saw(start_failure(text))
            if start_failure(text) is None and lost_worker(text):
                say_loss(trial.config)

    def on_trial_error(self, iteration, trials, trial, **info):
        if _ACTIVE:
            _ACTIVE.saw(start_failure(_error_text(trial)))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if _ACTIVE and result.get("start_error"):
            _ACTIVE.saw(UnitReport.from_dict(result).start_error)
