"""The Ray Tune trainable: one Tune trial = one pack of worker trials, run through
``workers.trial.run_pack`` (the code path of ``phantom trial``), writing Parquet straight to
the sweep's storage.

It is idempotent: members whose complete record (status ok or diverged) already exists are
left out, whoever asks (a restored Tune experiment older than the data, a retry of a pack
whose worker died, a second dispatch), so a retried pack re-forms from what is pending. A
record with status ``error`` is re-run: the driver only dispatches it when asked
(``--errored``). A failure while loading — the model, the tokenizer — is written down as an
``error`` record for every member (workers.trial.record_failure), never only reported.

Each start appends an attempt (Ray node id, host, pid, time) to ``attempts/<trial_id>.json``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from typing import Any

from phantom import layout
from phantom.outcomes import TrialStatus

REPORT_EVERY_S = 0.5  # progress results to the driver at most this often (each is a round trip)


def existing_status(store, trial_id: str) -> TrialStatus | None:
    """Status of the trial's complete record, loose or compacted (phantom.results), or None
    when there is none (or it is unreadable)."""
    from phantom.results import record_status

    return record_status(store, trial_id)


def _pending(store, trial_id: str) -> bool:
    """No usable result yet: no record, or an error record (re-run when dispatched)."""
    status = existing_status(store, trial_id)
    return status is None or not status.is_result()


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


def _record_attempt(store, trial_id: str) -> int:
    attempts = read_attempts(store, trial_id)
    attempts.append({
        "node_id": _node_id(), "host": socket.gethostname(), "pid": os.getpid(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    store.write_text(json.dumps({"trial_id": trial_id, "attempts": attempts}, indent=1),
                     *layout.attempts_file(trial_id))
    return len(attempts)


def _engine_factory(spec: str | None):
    """The testing knob ``module:function`` (PHANTOM_PACK_ENGINE), or None: run_pack's own."""
    if not spec:
        return None
    import importlib

    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def phantom_trainable(config: dict[str, Any]) -> None:
    """Tune function trainable. ``config``: ``pack`` ({id, trials: canonical TrialConfig JSON
    of each member}), ``storage`` (the sweep folder URI), ``cpus``, ``step_delay_s`` (testing
    knob: sleep after each step so a test can act mid-trial), ``engine`` (testing knob)."""
    from ray import tune

    from phantom.config import TrialConfig
    from phantom.errors import SentenceError
    from phantom.storage import Store

    store = Store.open(config["storage"])
    cfgs = [TrialConfig.from_dict(json.loads(text)) for text in config["pack"]["trials"]]
    todo = [c for c in cfgs if _pending(store, c.trial_id)]
    if not todo:
        tune.report({"existing": True, "done": True, "finished": 0, "failed": 0, "member_steps": 0})
        return

    import torch

    from workers.models import load_model_cached
    from workers.trial import record_failure, resolve_ids, run_pack

    if not torch.cuda.is_available():  # one pack per reserved CPU, not all cores each
        torch.set_num_threads(max(1, int(config.get("cpus", 1))))
    for c in todo:
        _record_attempt(store, c.trial_id)
    first = todo[0]
    try:
        base = load_model_cached(first.model, trust_remote_code=first.trust_remote_code)
        resolve_ids(first, base.tokenizer)
    except SentenceError as exc:  # the driver filters these out, unless it could not check them
        for c in todo:
            store.write_text(json.dumps({"model": c.model, "sentence_id": c.sentence_id, "reason": str(exc)}),
                             *layout.skip_file(c.trial_id))
        tune.report({"done": True, "finished": 0, "failed": 0, "skipped": len(todo), "member_steps": 0})
        return
    except Exception as exc:  # the model did not load: every member's record says why
        for c in todo:
            record_failure(c, store, exc)
        tune.report({"done": True, "finished": 0, "failed": len(todo), "member_steps": 0})
        return

    from phantom.tracking import open_tracking, record_of

    tracking = open_tracking(config.get("tracking") or (), store.uri)  # never raises: warns, goes on
    for c in todo:
        tracking.trial_started(c)
    delay = float(config.get("step_delay_s") or 0.0)
    progress = {"member_steps": 0, "last": 0.0}

    def on_step(cfg, step: int, rows: list[dict]) -> str | None:
        for i, row in enumerate(rows):  # every step, not throttled
            tracking.step(cfg.trial_id, step, {**row, "context_id": i})
        if delay:
            time.sleep(delay)
        progress["member_steps"] += step > 0
        now = time.monotonic()
        if now - progress["last"] >= REPORT_EVERY_S:
            progress["last"] = now
            tune.report({"step": step, "member_steps": progress["member_steps"], "phi": rows[0]["phi"]})
        return None

    try:
        results = run_pack(todo, store, base=base, callback=on_step, raise_errors=False,
                           engine_factory=_engine_factory(config.get("engine")))
        for r in results:
            tracking.trial_finished(record_of(r))
    except Exception as exc:  # refused before its loop started: nothing of it is on disk yet
        for c in todo:
            record_failure(c, store, exc)
        results = []
    finally:
        tracking.close()
    failed = sum(r.status == TrialStatus.ERROR.value for r in results) + (len(todo) - len(results))
    tune.report({"done": True, "finished": len(todo) - failed, "failed": failed,
                 "member_steps": progress["member_steps"], "node_id": _node_id()})
