"""What a sweep folder holds, read from storage alone (no Ray, no torch): ``phantom sweep status``.

The truth is the data: a trial is complete when its record is readable, loose
(``trials/<id>.parquet``) or compacted into a part (phantom.results). The plan
(``plan.json``, written by the driver before dispatch) says which trial ids the sweep consists
of; ``skipped.parquet`` lists the (model, sentence) pairs left out and why. File names:
:mod:`phantom.layout`; status words: :class:`phantom.outcomes.TrialStatus`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from phantom import layout
from phantom.errors import StorageError
from phantom.outcomes import StopReason, TrialStatus
from phantom.storage import Store


@dataclass
class SweepStatus:
    uri: str
    name: str
    planned: int
    counts: dict[str, int]  # TrialStatus value -> trials among the planned ones
    missing: int  # planned, no complete record yet (pending, running, or lost)
    stopped_early: dict[str, int] = field(default_factory=dict)  # stop reason -> trials
    failures: list[dict] = field(default_factory=list)  # status error: trial_id, model, ..., error
    skipped: list[dict] = field(default_factory=list)  # model, sentence_id, reason
    orphans: int = 0  # steps files without a record: leftovers of killed trials, never results
    extra: int = 0  # complete records not in the plan (an earlier version of the sweep file)
    holder: dict | None = None  # the driver holding the folder's lock, if any
    holder_stale: bool = False  # that driver is provably gone (phantom.orchestrator.lock.is_stale)
    holder_why: str = ""  # why it counts as live or stale (phantom.orchestrator.lock.liveness)
    holder_alive: bool = False  # that driver is provably running (it cannot be taken over)
    address: str | None = None  # the Ray cluster the sweep runs on, for the hints (None: Ray started here)

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    @property
    def complete(self) -> bool:
        return self.planned > 0 and self.missing == 0

    @property
    def finished_ok(self) -> bool:
        return self.complete and self.counts.get(TrialStatus.ERROR.value, 0) == 0


def read_records(store: Store, ids: set[str] | None = None):
    """The trial records (a pyarrow Table, one per trial id: phantom.results) of ``ids`` (all
    when None), loose or compacted, or None when there are none."""
    from phantom import results

    return results.read_records(store, ids)


def _read_parquet(store: Store, *parts: str):
    import pyarrow.parquet as pq

    with store.fs.open_input_file(store.path(*parts)) as fh:
        return pq.ParquetFile(fh).read()


def read_plan(store: Store) -> dict:
    if not store.exists(layout.PLAN_FILE):
        raise StorageError(
            f"'{store.uri}' is not a sweep folder (no {layout.PLAN_FILE}); pass STORAGE/NAME of a `phantom sweep run`"
        )
    try:
        return json.loads(store.read_text(layout.PLAN_FILE))
    except (ValueError, OSError) as exc:
        raise StorageError(f"cannot read {store.path(layout.PLAN_FILE)}: {exc}") from None


def read_worker_skips(store: Store) -> dict[str, dict]:
    """Trials a worker refused (a word that is not one token, found where the driver could not
    check it): {trial_id: {model, sentence_id, reason}}."""
    out = {}
    for name in store.list(layout.SKIPS_DIR, suffix=".json"):
        try:
            out[layout.trial_id_of(name)] = json.loads(store.read_text(layout.SKIPS_DIR, name))
        except (ValueError, OSError):
            pass
    return out


def sweep_status(path: str | Store) -> SweepStatus:
    from phantom.orchestrator.hints import cluster_address
    from phantom.orchestrator.lock import holder_state, read_lock

    store = path if isinstance(path, Store) else Store.open(path)
    plan = read_plan(store)
    planned = set(plan["trials"])
    counts = {s.value: 0 for s in TrialStatus}
    failures: list[dict] = []
    stopped: Counter[str] = Counter()
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
            status = TrialStatus(row["status"])
            counts[status.value] += 1
            if row["stop_reason"] is not None:
                stopped[row["stop_reason"]] += 1
            if status is TrialStatus.ERROR:
                failures.append(row)
    skipped = _read_parquet(store, layout.SKIPPED_FILE).to_pylist() if store.exists(layout.SKIPPED_FILE) else []
    worker_skips = read_worker_skips(store)
    pairs = {(k["model"], k["sentence_id"]) for k in skipped}
    for tid, s in worker_skips.items():
        if tid in planned and (s["model"], s["sentence_id"]) not in pairs:
            skipped.append(s)
            pairs.add((s["model"], s["sentence_id"]))
    seen |= set(worker_skips) & planned
    recorded = store.completed_trial_ids()
    orphans = sum(1 for n in store.list(layout.STEPS_DIR) if layout.trial_id_of(n) not in recorded)
    holder = read_lock(store)
    state = holder_state(holder) if holder is not None else None
    address = ((holder or {}).get("ray") or {}).get("gcs") or cluster_address(store)
    return SweepStatus(
        uri=store.uri, name=plan.get("name", store.name), planned=len(planned),
        counts=counts, missing=len(planned - seen), stopped_early=dict(stopped), failures=failures,
        skipped=skipped, orphans=orphans, extra=extra, holder=holder,
        holder_stale=state is not None and state.stale, holder_why=state.why if holder else "",
        holder_alive=state is not None and state.alive, address=address,
    )


def read_status(path: str) -> SweepStatus:
    """:func:`sweep_status` of a folder given by the user (``phantom sweep status``): the
    storage checked first, so an unreachable or refusing store is one line."""
    from phantom.storage_errors import check_store, translated

    with translated(path):
        check_store(Store.open(path))
        return sweep_status(path)


def query_hint(uri: str) -> str:
    import shlex

    return (
        f'phantom query {shlex.quote(uri)} "SELECT sentence_id, lr, status, steps_done FROM trials ORDER BY sentence_id, lr"'
    )


def failure_groups(failures: list[dict]) -> list[tuple[str, list[dict]]]:
    """Failures grouped by their message, the most frequent first."""
    groups: dict[str, list[dict]] = {}
    for f in failures:
        groups.setdefault(f["error"] or "(no message)", []).append(f)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def _stops(stopped: dict[str, int]) -> str:
    words = {StopReason.PHI_SATURATION.value: "Φ-saturation", StopReason.FLIP.value: "at the flip"}
    return ", ".join(f"{n} {words.get(reason, reason)}" for reason, n in sorted(stopped.items()))


def format_status(st: SweepStatus, limit: int = 10) -> str:
    from phantom.orchestrator.hints import command
    from phantom.orchestrator.lock import describe_holder, take_over_hint

    counts = ", ".join(f"{st.counts.get(s.value, 0)} {s.value}" for s in TrialStatus)
    lines = [f"sweep {st.name} at {st.uri}"]
    lines.append(
        f"  {st.planned} trials planned: {counts}, {st.missing} not done"
        + (f"; stopped early: {_stops(st.stopped_early)}" if st.stopped_early else "")
    )
    if st.skipped:
        lines.append(f"  {len(st.skipped)} (model, sentence) pairs skipped:")
        for s in st.skipped[:limit]:
            lines.append(f"    {s['model']} / {s['sentence_id']}: {s['reason']}")
    if st.failures:
        groups = failure_groups(st.failures)
        lines.append(f"  {len(st.failures)} failed trials, by message (fix the cause, then re-run them with: "
                     f"{command('resume', st.uri, st.address, '--errored')}):")
        for message, rows in groups[:limit]:
            f = rows[0]
            lines.append(f"    {len(rows)} x {message}")
            lines.append(f"        e.g. {f['trial_id']} {f['model']} {f['sentence_id']} {f['protocol']} lr={f['lr']:g}")
        if len(groups) > limit:
            lines.append(f"    ... and {len(groups) - limit} more messages")
    if st.orphans:
        lines.append(f"  {st.orphans} steps files without a trial record (killed trials; ignored, re-run on resume)")
    if st.extra:
        lines.append(f"  {st.extra} complete trials from an earlier version of this sweep (kept, not counted)")
    live = st.holder is not None and not st.holder_stale
    if live:
        lines.append(f"  running: a driver holds the folder ({describe_holder(st.holder)}; {st.holder_why})")
        if not st.holder_alive:
            lines.append(f"  if that driver is gone, take the folder over now: {take_over_hint(st.uri, st.holder)}")
    elif st.holder is not None:
        who = f"{describe_holder(st.holder)}; {st.holder_why}" if st.holder else "unreadable"
        lines.append(f"  stale lock: the driver that held the folder is gone ({who});"
                     " the next run or resume takes it over")
    if st.complete:
        lines.append("  complete" + ("" if st.finished_ok else " (with failures)"))
    elif not live:
        lines.append(f"  incomplete: {st.missing} trials not run; continue with: {command('resume', st.uri, st.address)}")
    return "\n".join(lines)
