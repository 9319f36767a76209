"""What a sweep folder holds, read from storage alone (no Ray): ``phantom sweep status PATH``.

The truth is the data: a trial is complete when its ``trials/<id>.parquet`` exists. The plan
(``plan.json``, written by the runner before dispatch) says which trial ids the sweep consists
of; ``skipped.parquet`` lists the (model, sentence) pairs left out and why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from phantom.errors import StorageError
from phantom.layout import STEPS_DIR, TMP_SUFFIX, TRIALS_DIR
from phantom.storage import Store

PLAN_FILE = "plan.json"
SWEEP_FILE = "sweep.yaml"
SENTENCES_FILE = "sentences.yaml"
SKIPPED_FILE = "skipped.parquet"
SKIPS_DIR = "skips"  # written by workers (orchestrator.trainable)


@dataclass
class SweepStatus:
    uri: str
    name: str
    planned: int
    counts: dict[str, int]  # ok / diverged / error among planned trials
    missing: int  # planned, no complete record yet (pending, running, or lost)
    stopped_early: int
    failures: list[dict] = field(default_factory=list)  # status error: trial_id, model, ..., error
    skipped: list[dict] = field(default_factory=list)  # model, sentence_id, reason
    orphans: int = 0  # steps files without a record: leftovers of killed trials, never results
    extra: int = 0  # complete records not in the plan (an earlier version of the sweep file)

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    @property
    def complete(self) -> bool:
        return self.planned > 0 and self.missing == 0

    @property
    def finished_ok(self) -> bool:
        return self.complete and self.counts.get("error", 0) == 0


def read_records(store: Store, ids: set[str] | None = None):
    """The trial records (a pyarrow Table) of ``ids`` (all when None), or None when there are none."""
    import pyarrow.dataset as ds

    names = [n for n in store.list(TRIALS_DIR) if ids is None or n[: -len(".parquet")] in ids]
    if not names:
        return None
    paths = [store.path(TRIALS_DIR, n) for n in names]
    return ds.dataset(paths, filesystem=store.fs, format="parquet").to_table()


def read_plan(store: Store) -> dict:
    if not store.exists(PLAN_FILE):
        raise StorageError(
            f"'{store.uri}' is not a sweep folder (no {PLAN_FILE}); pass STORAGE/NAME of a `phantom sweep run`"
        )
    try:
        return json.loads(store.read_text(PLAN_FILE))
    except (ValueError, OSError) as exc:
        raise StorageError(f"cannot read {store.path(PLAN_FILE)}: {exc}") from None


def read_worker_skips(store: Store) -> dict[str, dict]:
    """Trials a worker refused (a word that is not one token, found where the driver could not
    load the tokenizer): {trial_id: {model, sentence_id, reason}}."""
    out = {}
    for name in store.list(SKIPS_DIR, suffix=".json"):
        try:
            out[name[: -len(".json")]] = json.loads(store.read_text(SKIPS_DIR, name))
        except (ValueError, OSError):
            pass
    return out


def sweep_status(path: str) -> SweepStatus:
    store = Store.open(path)
    plan = read_plan(store)
    planned = set(plan["trials"])
    counts = {"ok": 0, "diverged": 0, "error": 0}
    failures: list[dict] = []
    stopped = 0
    table = read_records(store)
    seen: set[str] = set()
    extra = 0
    if table is not None:
        for row in table.select(
            ["trial_id", "model", "sentence_id", "protocol", "lr", "seed", "status", "error", "stop_reason"]
        ).to_pylist():
            if row["trial_id"] not in planned:
                extra += 1
                continue
            seen.add(row["trial_id"])
            counts[row["status"]] = counts.get(row["status"], 0) + 1
            stopped += row["stop_reason"] is not None
            if row["status"] == "error":
                failures.append(row)
    skipped = []
    if store.exists(SKIPPED_FILE):
        skipped = store.read_table(SKIPPED_FILE).to_pylist()
    worker_skips = read_worker_skips(store)
    for tid, s in worker_skips.items():
        if tid in planned and (s["model"], s["sentence_id"]) not in {(k["model"], k["sentence_id"]) for k in skipped}:
            skipped.append(s)
    seen |= set(worker_skips) & planned
    recorded = store.completed_trial_ids()
    orphans = sum(1 for n in store.list(STEPS_DIR) if n[: -len(".parquet")] not in recorded)
    return SweepStatus(
        uri=store.uri, name=plan.get("name", store.uri.rsplit("/", 1)[-1]), planned=len(planned),
        counts=counts, missing=len(planned - seen), stopped_early=stopped, failures=failures,
        skipped=skipped, orphans=orphans, extra=extra,
    )


def clean_leftovers(store: Store) -> int:
    """Delete ``*.tmp`` files (half-written by a killed process) and steps files without a
    trial record (a killed trial's leftovers: the trial is re-run and rewrites them)."""
    removed = 0
    recorded = store.completed_trial_ids()
    for folder in (STEPS_DIR, TRIALS_DIR):
        for name in store.list(folder, suffix=TMP_SUFFIX):
            store.delete(folder, name)
            removed += 1
    for name in store.list(STEPS_DIR):
        if name[: -len(".parquet")] not in recorded:
            store.delete(STEPS_DIR, name)
            removed += 1
    return removed


def query_hint(uri: str) -> str:
    return (
        f'phantom query {uri} "SELECT sentence_id, lr, status, steps_done FROM trials ORDER BY sentence_id, lr"'
    )


def format_status(st: SweepStatus, limit: int = 20) -> str:
    lines = [f"sweep {st.name} at {st.uri}"]
    c = st.counts
    lines.append(
        f"  {st.planned} trials planned: {c.get('ok', 0)} ok, {c.get('diverged', 0)} diverged, "
        f"{c.get('error', 0)} error, {st.missing} not done"
        + (f"; {st.stopped_early} stopped early (Φ-saturation)" if st.stopped_early else "")
    )
    if st.skipped:
        lines.append(f"  {len(st.skipped)} (model, sentence) pairs skipped:")
        for s in st.skipped[:limit]:
            lines.append(f"    {s['model']} / {s['sentence_id']}: {s['reason']}")
    if st.failures:
        lines.append(f"  {len(st.failures)} failed trials (re-run: phantom sweep resume {st.uri} --errored):")
        for f in st.failures[:limit]:
            lines.append(
                f"    {f['trial_id']} {f['model']} {f['sentence_id']} {f['protocol']} lr={f['lr']:g}: {f['error']}"
            )
        if len(st.failures) > limit:
            lines.append(f"    ... and {len(st.failures) - limit} more")
    if st.orphans:
        lines.append(f"  {st.orphans} steps files without a trial record (killed trials; ignored, re-run on resume)")
    if st.extra:
        lines.append(f"  {st.extra} complete trials from an earlier version of this sweep (kept, not counted)")
    if st.complete:
        lines.append("  complete" + ("" if st.finished_ok else " (with failures)"))
    else:
        lines.append(f"  incomplete: continue with  phantom sweep resume {st.uri}")
    return "\n".join(lines)
