"""The Ray Tune trainable: one Tune trial = one dispatch unit (:mod:`phantom.orchestrator.packing`),
its packs run one after another, each through ``phantom.workers.trial.run_pack`` (the code path of
``phantom trial``), writing Parquet straight to the sweep's storage. The unit's members are
read from its file (``ray/<run>.units/<unit id>.json``); Tune's config holds only its id.

It is idempotent: members whose complete record (status ok or diverged) already exists are
left out, whoever asks (a restored Tune experiment older than the data, a retry of a unit
whose worker died, a second dispatch), so a retried unit re-forms from what is pending. What
is complete is asked of the store (``completed_trial_ids``, ``read_records``), never of a
record's file. A record with status ``error`` is re-run: the driver only dispatches it when
asked (``--errored``). A failure while loading — the model, the tokenizer — is written down as
an ``error`` record for every member of that pack (phantom.workers.trial.record_failure), never only
reported.

Each start of a pack appends an attempt (Ray node id, host, pid, the GPUs Ray assigned, time,
dispatch) to
``attempts/<trial_id>.json``. A pack whose worker died in ``retries + 1`` attempts of this
dispatch (this Tune run, this driver's Ray job) gets an ``error`` record per member instead
of another attempt, and the unit goes on with its next pack: one pack that kills its worker
costs its own members, never the rest of its unit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from datetime import datetime, timezone
from typing import Any

from phantom import layout
from phantom.outcomes import TrialStatus
from phantom.orchestrator.unit_report import UnitReport
from phantom.orchestrator.unit_task import UnitTask

REPORT_EVERY_S = 0.5  # progress results to the driver at most this often (each is a round trip)


def left_out(store, trial_ids: list[str], dispatch: str) -> set[str]:
    """Ids among ``trial_ids`` that a unit leaves out: a complete record that is a result (ok,
    diverged), or any complete record written in this ``dispatch`` (an ``error`` record is
    re-run when dispatched, but once: not again when the unit is retried). One listing of what
    is complete; a record that cannot be read is not a result."""
    from phantom.orchestrator.status import read_records

    done = store.completed_trial_ids() & set(trial_ids)
    if not done:
        return set()
    table = read_records(store, done)
    rows = table.select(["trial_id", "status"]).to_pylist() if table is not None else []
    out = {r["trial_id"] for r in rows if TrialStatus(r["status"]).is_result()}
    for r in rows:
        if r["trial_id"] not in out and any(a.get("dispatch") == dispatch for a in read_attempts(store, r["trial_id"])):
            out.add(r["trial_id"])
    return out


def read_attempts(store, trial_id: str) -> list[dict]:
    try:
        return json.loads(store.read_text(*layout.attempts_file(trial_id)))["attempts"]
    except Exception:
        return []


def _node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:
        return None


def _job_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_job_id()
    except Exception:
        return None


def _gpu_ids() -> list[str]:
    """The GPUs Ray assigned this worker (a fraction of one shares its id); [] without Ray or GPUs."""
    try:
        import ray

        return [str(g) for g in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])]
    except Exception:
        return []


def _record_attempt(store, trial_id: str, attempts: list[dict], dispatch: str | None) -> None:
    attempts = [*attempts, {
        "node_id": _node_id(), "host": socket.gethostname(), "pid": os.getpid(), "gpus": _gpu_ids(),
        "started": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "dispatch": dispatch,
    }]
    store.write_text(json.dumps({"trial_id": trial_id, "attempts": attempts}, indent=1),
                     *layout.attempts_file(trial_id))


class _Progress:
    """What the unit reports to the driver (:class:`UnitReport`): cumulative counts of its
    members, the running pack's member-steps; at most every REPORT_EVERY_S (each report is a
    round trip), and always when ``force``d."""

    def __init__(self, members: int) -> None:
        self.now = UnitReport(members=members, running=0)
        self.last = 0.0

    def add(self, **counts: int) -> None:
        """Add to the counts (``finished=2``, ``member_steps=1``, ...)."""
        self.now = dataclasses.replace(self.now, **{k: getattr(self.now, k) + v for k, v in counts.items()})

    def set(self, **values) -> None:
        self.now = dataclasses.replace(self.now, **values)

    def report(self, force: bool = False) -> None:
        from ray import tune

        now = time.monotonic()
        if force or now - self.last >= REPORT_EVERY_S:
            self.last = now
            tune.report(self.now.to_dict())


def phantom_trainable(config: dict[str, Any]) -> None:
    """Tune function trainable: the unit's task (:class:`UnitTask`, read back from Tune's
    config), its packs one after another."""
    if not _can_start():
        return
    from phantom.orchestrator.packing import read_unit
    from phantom.storage import Store

    task = UnitTask.from_dict(config)
    store = Store.open(task.storage)
    packs = read_unit(store, task.units, task.unit)
    dispatch = f"{task.units}/{_job_id()}"
    skip = left_out(store, [c.trial_id for p in packs for c in p], dispatch)
    packs = [[c for c in p if c.trial_id not in skip] for p in packs]
    packs = [p for p in packs if p]
    progress = _Progress(sum(len(p) for p in packs))
    if not packs:
        progress.set(existing=True, done=True)
        progress.report(force=True)
        return

    import torch

    from phantom.tracking import open_tracking

    if not torch.cuda.is_available():  # one worker per reserved CPU, not all cores each
        torch.set_num_threads(max(1, int(task.cpus)))
    tracking = open_tracking(task.tracking, store.uri)  # never raises: warns, goes on
    try:
        for todo in packs:
            _run_pack(store, todo, task, dispatch, tracking, progress)
    finally:
        tracking.close()
    progress.set(running=0, pack_steps=0, done=True)
    progress.report(force=True)


def _can_start() -> bool:
    """Whether this worker can load what a unit needs (torch, the worker's modules); if not,
    the unit says so to the driver (:mod:`phantom.orchestrator.watch`) and records nothing: a
    node that cannot import Phantom is not the trials' fault."""
    try:
        import torch  # noqa: F401

        from phantom.tracking import open_tracking  # noqa: F401
        from phantom.workers.models import load_model_cached  # noqa: F401
        from phantom.workers.trial import run_pack  # noqa: F401
    except ImportError as exc:
        from ray import tune

        where = f"node {_node_ip()}, host {socket.gethostname()}"
        tune.report(UnitReport(start_error=f"{type(exc).__name__}: {exc} ({where})", done=True).to_dict())
        return False
    return True


def _node_ip() -> str | None:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001
        return None


def _run_pack(store, todo: list, task: UnitTask, dispatch: str, tracking, progress: _Progress) -> None:
    """One pack of the unit: its attempt, the model, the loop; every member ends with a record
    (or a skip file), whatever happens short of the worker dying."""
    from phantom.errors import SentenceError
    from phantom.workers.models import load_model_cached
    from phantom.workers.trial import record_failure, resolve_ids, run_pack

    def ended(results: list | None = None, failure: BaseException | None = None, skipped: str | None = None) -> None:
        """Every member ends here: its result, an error record (``failure``) or a skip file."""
        for c in todo:
            if skipped is not None:
                store.write_text(json.dumps({"model": c.model, "sentence_id": c.sentence_id, "reason": skipped}),
                                 *layout.skip_file(c.trial_id))
            elif failure is not None:
                record_failure(c, store, failure)
        failed = len(todo) if failure is not None else sum(r.status is TrialStatus.ERROR for r in results or [])
        done = 0 if skipped is not None or failure is not None else len(todo) - failed
        progress.add(finished=done, failed=failed, skipped=len(todo) if skipped is not None else 0)
        progress.set(running=0, pack_steps=0)
        progress.report()

    tried = {c.trial_id: read_attempts(store, c.trial_id) for c in todo}
    died = max(sum(a.get("dispatch") == dispatch for a in tried[c.trial_id]) for c in todo)
    if died > task.retries:  # each earlier attempt of this dispatch ended with its worker dead
        return ended(failure=RuntimeError(
            f"the worker was lost: it died in each of the {died} attempts of this pack "
            f"(retries: {task.retries}; attempts/<trial_id>.json)"))
    for c in todo:
        _record_attempt(store, c.trial_id, tried[c.trial_id], dispatch)
    progress.set(running=len(todo), pack_steps=0)
    first = todo[0]
    try:
        base = load_model_cached(first.model, trust_remote_code=first.trust_remote_code)
        resolve_ids(first, base.tokenizer)
    except SentenceError as exc:  # the driver filters these out, unless it could not check them
        return ended(skipped=str(exc))
    except Exception as exc:  # the model did not load: every member's record says why
        return ended(failure=exc)

    for c in todo:
        tracking.trial_started(c)

    def on_step(cfg, step: int, rows: list[dict]) -> str | None:
        tracking.steps(cfg.trial_id, step, rows)  # every step, not throttled
        if task.step_delay_s:
            time.sleep(task.step_delay_s)
        if step > 0:
            progress.add(member_steps=1, pack_steps=1)
        progress.report()
        return None

    try:
        results = run_pack(todo, store, base=base, callback=on_step, raise_errors=False, mode=task.pack_mode)
    except Exception as exc:  # refused before its loop started: nothing of it is on disk yet
        return ended(failure=exc)
    for r in results:
        tracking.finished(r)
    return ended(results)
