"""The sweep folder as the driver writes it: where it is, its plan, what is pending, leftovers.

Two guards against losing or duplicating a trial, either enough on its own: Ray Tune's
restore (:mod:`phantom.orchestrator.engine`), and the data: a trial whose record is complete
(``Store.completed_trial_ids``) is never dispatched again (the trainable re-checks before it
starts).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from phantom import layout
from phantom.config import TrialConfig
from phantom.errors import StorageError
from phantom.outcomes import TrialStatus
from phantom.storage import Store
from phantom.orchestrator.config import SweepConfig
from phantom.orchestrator.expand import Skip
from phantom.orchestrator.status import read_records, read_worker_skips


def sweep_store(sweep: SweepConfig, storage: str | None) -> Store:
    """STORAGE/NAME (a local STORAGE is made absolute: Ray needs that)."""
    root = storage or sweep.storage
    if not root:
        raise StorageError("no storage: set `storage:` in the sweep file or pass --storage PATH|URI")
    if "://" not in root and not os.path.isabs(os.path.expanduser(root)):
        root = os.path.abspath(os.path.expanduser(root))
    return Store.open(root).child(sweep.name)


def write_plan(store: Store, sweep: SweepConfig, sentences_file: Path, ids, skipped: tuple[Skip, ...]) -> None:
    """The resolved sweep (with a snapshot of its sentences), the trial ids, the skipped pairs."""
    import yaml

    from phantom.schema import SkippedRow, skipped_table  # pyarrow: not at import (status stays light)

    data = sweep.to_dict()
    data["sentences"]["file"] = layout.SENTENCES_FILE
    data["storage"] = None  # the folder's parent is the storage; it may be moved
    store.write_text(yaml.safe_dump(data, sort_keys=False), layout.SWEEP_FILE)
    store.write_text(Path(sentences_file).read_text(encoding="utf-8"), layout.SENTENCES_FILE)
    store.write_text(json.dumps({"name": sweep.name, "trials": sorted(set(ids))}, indent=0), layout.PLAN_FILE)
    store.write_table(skipped_table([SkippedRow(s.model, s.sentence_id, s.reason) for s in skipped]),
                      layout.SKIPPED_FILE)


def errored_ids(store: Store, ids: set[str], before: datetime | None = None) -> set[str]:
    """Ids among ``ids`` recorded as error (finished before ``before``, when given)."""
    table = read_records(store, ids)
    if table is None:
        return set()
    return {
        r["trial_id"] for r in table.select(["trial_id", "status", "finished_at"]).to_pylist()
        if r["status"] == TrialStatus.ERROR.value and (before is None or r["finished_at"] < before)
    }


def pending_trials(store: Store, trials, rerun_errored: bool, since: datetime | None = None,
                   ids: list[str] | None = None) -> tuple[list[TrialConfig], list[str]]:
    """Trials without a complete record, and with ``rerun_errored`` those recorded as error
    (before ``since``, a UTC datetime, when given: not the ones this invocation re-ran), and
    their ids. ``ids``: the ids of ``trials``, when the caller has them (~90 us each)."""
    trials = list(trials)
    ids = list(ids) if ids is not None else [t.trial_id for t in trials]
    done = store.completed_trial_ids()
    errored = errored_ids(store, set(ids) & done, since) if rerun_errored else set()
    skips = set(read_worker_skips(store))
    keep = [i for i, tid in enumerate(ids) if (tid not in done or tid in errored) and tid not in skips]
    return [trials[i] for i in keep], [ids[i] for i in keep]


def clean_leftovers(store: Store, lock) -> int:
    """Delete ``*.tmp`` files (half-written by a killed process) anywhere in the folder but
    Ray's state, and steps files without a trial record (a killed trial's leftovers: the
    trial re-runs and rewrites them). Only the driver holding the folder's lock may do this."""
    if not getattr(lock, "held", False):
        raise StorageError(f"refusing to clean {store.uri} without holding its lock")
    import pyarrow.fs as pafs

    removed = 0
    selector = pafs.FileSelector(store.root, recursive=True, allow_not_found=True)
    ray_prefix = store.path(layout.RAY_DIR) + "/"
    for info in store.fs.get_file_info(selector):
        if info.type == pafs.FileType.File and info.path.endswith(layout.TMP_SUFFIX) \
                and not info.path.startswith(ray_prefix):
            store.fs.delete_file(info.path)
            removed += 1
    recorded = store.completed_trial_ids()
    for name in store.list(layout.STEPS_DIR):
        if layout.trial_id_of(name) not in recorded:
            store.delete(layout.STEPS_DIR, name)
            removed += 1
    return removed
