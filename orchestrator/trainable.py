"""The Ray Tune trainable: one Tune trial = one worker trial, through ``workers.trial.run_trial``
(the code path of ``phantom trial``), writing Parquet straight to the sweep's storage.

It is idempotent: a trial whose complete record (status ok or diverged) already exists is not
run again, whoever asks (a restored Tune experiment older than the data, a retry, a second
dispatch). A record with status ``error`` is re-run: the driver only dispatches it when asked
(``--errored``) or when Tune retries a trial whose worker died.

Each start appends an attempt (Ray node id, host, pid, time) to ``attempts/<trial_id>.json``
next to the data, so which node ran a trial, and how often it was retried, is on record
(the trial record itself carries ``host`` and ``device``).
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from typing import Any

ATTEMPTS_DIR = "attempts"
REPORT_EVERY_S = 0.5  # progress results to the driver at most this often (each is a round trip)


def existing_status(store, trial_id: str) -> str | None:
    """Status of the trial's complete record, or None when there is none (or it is unreadable)."""
    if not store.exists(*store.trial_file(trial_id)):
        return None
    try:
        return store.read_table(*store.trial_file(trial_id)).column("status")[0].as_py()
    except Exception:  # a record that cannot be read is not a result
        return None


def read_attempts(store, trial_id: str) -> list[dict]:
    try:
        return json.loads(store.read_text(ATTEMPTS_DIR, f"{trial_id}.json"))["attempts"]
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
                     ATTEMPTS_DIR, f"{trial_id}.json")
    return len(attempts)


def phantom_trainable(config: dict[str, Any]) -> None:
    """Tune function trainable. ``config``: ``trial`` ({id, config: canonical TrialConfig JSON}), ``storage``
    (the sweep folder URI), ``cpus``,
    ``step_delay_s`` (testing knob: sleep after each step so a test can act mid-trial)."""
    from ray import tune

    from phantom.config import TrialConfig
    from phantom.errors import PhantomError, SentenceError
    from phantom.storage import Store
    from orchestrator.status import SKIPS_DIR

    cfg = TrialConfig.from_dict(json.loads(config["trial"]["config"]))
    store = Store.open(config["storage"])
    trial_id = cfg.trial_id
    status = existing_status(store, trial_id)
    if status in ("ok", "diverged"):
        tune.report({"status": status, "existing": True, "step": cfg.training.steps, "trial_id": trial_id})
        return

    import torch

    from workers.models import load_model_cached
    from workers.trial import resolve_ids, run_trial

    if not torch.cuda.is_available():  # one trial per reserved CPU, not all cores each
        torch.set_num_threads(max(1, int(config.get("cpus", 1))))
    attempt = _record_attempt(store, trial_id)
    try:
        base = load_model_cached(cfg.model, trust_remote_code=cfg.trust_remote_code)
        resolve_ids(cfg, base.tokenizer)
    except SentenceError as exc:  # the driver filters these out, unless it could not load the tokenizer
        store.write_text(json.dumps({"model": cfg.model, "sentence_id": cfg.sentence_id, "reason": str(exc)}),
                         SKIPS_DIR, f"{trial_id}.json")
        tune.report({"status": "skipped", "error": str(exc), "trial_id": trial_id, "step": 0})
        return
    except PhantomError as exc:
        tune.report({"status": "error", "error": str(exc).splitlines()[0], "trial_id": trial_id, "step": 0})
        return

    from phantom.tracking import open_tracking, record_of

    tracking = open_tracking(config.get("tracking") or (), store.uri)  # never raises: warns, goes on
    tracking.trial_started(cfg)
    delay = float(config.get("step_delay_s") or 0.0)
    last = [0.0]

    def on_step(step: int, rows: list[dict]) -> str | None:
        for i, row in enumerate(rows):  # every step, not throttled
            tracking.step(trial_id, step, {**row, "context_id": i})
        if delay:
            time.sleep(delay)
        now = time.monotonic()
        if now - last[0] >= REPORT_EVERY_S:
            last[0] = now
            tune.report({"step": step, "phi": rows[0]["phi"], "loss": rows[0]["loss"], "trial_id": trial_id})
        return None

    try:
        result = run_trial(cfg, store, base=base, callback=on_step, raise_errors=False)
        tracking.trial_finished(record_of(result))
    finally:
        tracking.close()
    tune.report({
        "status": result.status, "step": result.steps_done, "stop_reason": result.stop_reason,
        "error": result.error, "trial_id": trial_id, "attempt": attempt, "wall_s": result.wall_s,
        "node_id": _node_id(),
    })
