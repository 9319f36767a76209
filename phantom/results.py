"""The results store: one pair of files per trial as workers write them, compacted into parts.

A worker writes one trial at a time (:mod:`phantom.workers.trial`)::

    steps/<trial_id>.parquet     its step rows, first
    trials/<trial_id>.parquet    its record, last: the trial is complete when this exists

A folder of 20,000 such pairs costs DuckDB a file open (and on object storage a request) per
file, and memory per file. *Compaction* moves complete trials into a few large files::

    parts/<part>.steps.parquet   the step rows of up to PART_TRIALS trials, first
    parts/<part>.trials.parquet  their records, last: the part is committed when this exists

then deletes the loose pairs it moved, records before steps. The invariant is the worker's,
one level up, so it holds at every instant of a compaction killed at any point:

- a trial is complete exactly when one of its records is readable, loose or in a committed
  part (:func:`completed_ids`);
- a record's step rows are read from its own container only (its loose steps file, or the
  steps file of its part): a trial held twice (a compaction killed between its commit and its
  deletes, or a re-run of an errored trial after its error record was compacted) is read once,
  as the copy :func:`keep_one` keeps, with that copy's rows;
- a steps part without its records part (killed while writing) is never read, and the next
  compaction deletes it. A loose pair whose record is already in a part with the same
  ``finished_at`` is a leftover of such a kill and is deleted, not compacted again.

Only the holder of the folder's lock compacts (the driver while it runs, or ``phantom sweep
compact``). Committed parts are never rewritten, so readers may cache what they read of one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from phantom import layout
from phantom.outcomes import TrialStatus
from phantom.schema import STEP_SCHEMA, TRIAL_SCHEMA, project

PART_TRIALS = 20_000  # trials per part at most (26-step trials: ~0.5 M step rows, ~30 MB)
PART_ROWS = 4_000_000  # step rows per part at most (long trials fill a part sooner)
ROW_GROUP = 262_144  # rows per Parquet row group: DuckDB reads row groups in parallel
READ_THREADS = 8  # loose files read at once (object stores answer each GET slowly)

LOOSE = ""  # the ``part`` of a loose record

# Which copy of a trial id readers keep (phantom.analysis.sources' trial_records uses the SQL form; a
# test checks both on the same rows): a result before an error, then the latest finish, then a
# loose copy before a part, then the earlier part.
def keep_order_sql(*tiebreak: str) -> str:
    """The SQL ORDER BY of the keep order (``tiebreak``: columns that rank before ``part``, e.g. the
    folder's position when several folders are read together)."""
    return ", ".join([f"status = '{TrialStatus.ERROR.value}'", "finished_at DESC NULLS LAST", *tiebreak, "part"])


def _keep_key(status: str, finished_at, part: str):
    ts = finished_at.timestamp() if finished_at is not None else float("-inf")
    return (status == TrialStatus.ERROR.value, -ts, part)


# ----------------------------------------------------------------------------------------------
# names


def part_files(part: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """(steps file, records file) of ``part``, each as (folder, name)."""
    return ((layout.PARTS_DIR, f"{part}{layout.PART_STEPS}"), (layout.PARTS_DIR, f"{part}{layout.PART_TRIALS}"))


def committed_parts(store) -> list[str]:
    """Names of the committed parts (their records file exists), oldest first."""
    n = len(layout.PART_TRIALS)
    return [name[:-n] for name in store.list(layout.PARTS_DIR, suffix=layout.PART_TRIALS)]


def _new_part_name() -> str:
    # sortable by time; the random tail keeps two compactors' names apart
    return f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------------------------------------
# reading records


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, in order: missing ones (a file written before
    the column existed) are NULL. ValueError for a column the schema does not know."""
    if table.schema.equals(schema):  # what a current worker writes: nothing to rebuild
        return table
    extra = [n for n in table.column_names if n not in schema.names]
    if extra:
        raise ValueError(f"columns not in the current schema: {', '.join(extra)}")
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names
            else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def _read(store, folder: str, name: str, columns: list[str] | None = None) -> pa.Table:
    # ParquetFile, not pq.read_table: the dataset layer imports pandas (half a second of status)
    with store.fs.open_input_file(store.path(folder, name)) as fh:
        f = pq.ParquetFile(fh)
        cols = None if columns is None else [c for c in columns if c in f.schema_arrow.names]
        return f.read(columns=cols)


_PART_CACHE: dict[tuple[str, str], pa.Table] = {}  # (folder uri, part) -> its (id, status, finished_at)
_PART_CACHE_LOCK = threading.Lock()
_KEY_COLUMNS = ["trial_id", "status", "finished_at"]


def _part_keys(store, part: str) -> pa.Table:
    """(trial_id, status, finished_at) of a committed part; cached: parts are immutable."""
    key = (store.uri, part)
    with _PART_CACHE_LOCK:
        hit = _PART_CACHE.get(key)
    if hit is None:
        hit = _read(store, *part_files(part)[1], columns=_KEY_COLUMNS)
        with _PART_CACHE_LOCK:
            _PART_CACHE[key] = hit
    return hit


def _with_part(table: pa.Table, part: str) -> pa.Table:
    return table.append_column("part", pa.array([part] * table.num_rows, pa.string()))


def loose_ids(store) -> set[str]:
    return {layout.trial_id_of(n) for n in store.list(layout.TRIALS_DIR)}


def completed_ids(store) -> set[str]:
    """Ids with a readable record, loose or in a committed part (any status)."""
    ids = loose_ids(store)
    for part in committed_parts(store):
        ids.update(_part_keys(store, part).column("trial_id").to_pylist())
    return ids


def read_records(store, ids: set[str] | None = None, columns: list[str] | None = None) -> pa.Table | None:
    """One record per trial id (of ``ids``; all when None), the copy :func:`keep_one` keeps, typed as
    TRIAL_SCHEMA plus ``part`` (LOOSE or the part's name); None when there is none."""
    want = None if columns is None else list(dict.fromkeys([*columns, *_KEY_COLUMNS]))
    names = [n for n in store.list(layout.TRIALS_DIR) if ids is None or layout.trial_id_of(n) in ids]
    tables: list[pa.Table] = []
    if names:
        with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(names))) as pool:
            loose = list(pool.map(lambda n: _read(store, layout.TRIALS_DIR, n, want), names))
        tables += [_with_part(conform(t, _schema(want)), LOOSE) for t in loose]
    id_filter = None if ids is None else pa.array(sorted(ids), pa.string())
    for part in committed_parts(store):
        keys = _part_keys(store, part)
        if id_filter is not None and not pc.any(pc.is_in(keys.column("trial_id"), id_filter)).as_py():
            continue
        t = conform(_read(store, *part_files(part)[1], columns=want), _schema(want))
        if id_filter is not None:
            t = t.filter(pc.is_in(t.column("trial_id"), id_filter))
        tables.append(_with_part(t, part))
    if not tables:
        return None
    return keep_one(pa.concat_tables(tables))


def _schema(columns: list[str] | None) -> pa.Schema:
    if columns is None:
        return TRIAL_SCHEMA
    return project(TRIAL_SCHEMA, columns)


def keep_one(table: pa.Table) -> pa.Table:
    """One row per trial_id: the first in the keep order (``table`` has status, finished_at, part)."""
    rows = zip(table.column("trial_id").to_pylist(), table.column("status").to_pylist(),
               table.column("finished_at").to_pylist(), table.column("part").to_pylist())
    best: dict[str, tuple] = {}
    for i, (tid, status, fin, part) in enumerate(rows):
        key = _keep_key(status, fin, part)
        if tid not in best or key < best[tid][0]:
            best[tid] = (key, i)
    if len(best) == table.num_rows:
        return table
    return table.take(sorted(i for _, i in best.values()))


# ----------------------------------------------------------------------------------------------
# compaction


@dataclass
class Compaction:
    parts: int = 0  # parts written
    trials: int = 0  # trials moved into them
    rows: int = 0  # step rows moved
    leftovers: int = 0  # loose pairs already in a part, and uncommitted steps parts, deleted
    kept_loose: int = 0  # records left loose (a column the schema does not know)
    seconds: float = 0.0


def compact(store, *, min_trials: int = 1, part_trials: int = PART_TRIALS, part_rows: int = PART_ROWS,
            results_only: bool = False, workers_done: bool = True,
            progress: Callable[[str], None] | None = None) -> Compaction:
    """Move every complete loose trial of ``store`` into parts (when at least ``min_trials`` are
    loose). The caller holds the folder's lock: one compactor at a time.

    ``results_only``: leave ``error`` records loose. The driver compacts so while workers run:
    a worker may re-run an errored trial (``resume --errored``) and rewrite its loose files, while
    a result (ok, diverged) is never written again, so only those are safe to move and delete.
    ``workers_done``: no worker writes here now, so a loose steps file without its record whose
    trial is in a part is a leftover of a compaction killed between its two deletes (while
    workers run it may be a re-run's first file) and is deleted."""
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    out = Compaction()
    out.leftovers += _drop_uncommitted(store)
    names = store.list(layout.TRIALS_DIR)
    if workers_done:
        out.leftovers += _drop_stray_steps(store, {layout.trial_id_of(n) for n in names})
    if len(names) < max(1, min_trials):
        out.seconds = time.perf_counter() - t0
        return out
    in_parts = _finished_in_parts(store)
    batch: list[tuple[str, pa.Table, pa.Table]] = []
    rows = 0
    done = 0
    for tid, record, steps in _read_loose(store, names):
        done += 1
        if record is None:  # vanished or unreadable: left for the next compaction
            continue
        if results_only and record.column("status")[0].as_py() == TrialStatus.ERROR.value:
            continue
        fin = record.column("finished_at")[0].as_py()
        if tid in in_parts and fin in in_parts[tid]:
            _delete_loose(store, tid)  # a killed compaction's leftover: the part holds it
            out.leftovers += 1
            continue
        try:
            batch.append((tid, conform(record, TRIAL_SCHEMA), conform(steps, STEP_SCHEMA)))
        except ValueError:
            out.kept_loose += 1
            continue
        rows += batch[-1][2].num_rows
        if len(batch) >= part_trials or rows >= part_rows:
            _write_part(store, batch, out)
            say(f"compacted {out.trials} trials into {out.parts} parts ({done}/{len(names)} read)")
            batch, rows = [], 0
    if batch:
        _write_part(store, batch, out)
    out.seconds = time.perf_counter() - t0
    if out.parts:
        say(f"compacted {out.trials} trials ({out.rows:,} step rows) into {out.parts} parts in {out.seconds:.1f} s")
    return out


def _drop_uncommitted(store) -> int:
    committed = set(committed_parts(store))
    n = len(layout.PART_STEPS)
    dropped = 0
    for name in store.list(layout.PARTS_DIR, suffix=layout.PART_STEPS):
        if name[:-n] not in committed:
            store.delete(layout.PARTS_DIR, name)
            dropped += 1
    return dropped


def _drop_stray_steps(store, loose: set[str]) -> int:
    stray = [n for n in store.list(layout.STEPS_DIR) if layout.trial_id_of(n) not in loose]
    if not stray:
        return 0
    in_parts = _finished_in_parts(store)
    dropped = 0
    for name in stray:
        if layout.trial_id_of(name) in in_parts:
            store.delete(layout.STEPS_DIR, name)
            dropped += 1
    return dropped


def _finished_in_parts(store) -> dict[str, set]:
    out: dict[str, set] = {}
    for part in committed_parts(store):
        keys = _part_keys(store, part)
        for tid, fin in zip(keys.column("trial_id").to_pylist(), keys.column("finished_at").to_pylist()):
            out.setdefault(tid, set()).add(fin)
    return out


def _read_loose(store, names: list[str]) -> Iterable[tuple[str, pa.Table | None, pa.Table | None]]:
    """(trial_id, record, steps) of each loose record, read on a few threads, in order."""

    def one(name: str):
        tid = layout.trial_id_of(name)
        try:
            record = _read(store, layout.TRIALS_DIR, name)
            steps = (_read(store, *layout.steps_file(tid)) if store.exists(*layout.steps_file(tid))
                     else STEP_SCHEMA.empty_table())
        except (OSError, pa.ArrowInvalid):
            return tid, None, None
        return tid, record, steps

    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        # bounded look-ahead: at most a few hundred trials in memory beyond the current batch
        for i in range(0, len(names), 256):
            yield from pool.map(one, names[i:i + 256])


def _write_part(store, batch: list[tuple[str, pa.Table, pa.Table]], out: Compaction) -> None:
    part = _new_part_name()
    steps_file, records_file = part_files(part)
    steps = pa.concat_tables([s for _, _, s in batch])
    store.write_table(steps, *steps_file, row_group_size=ROW_GROUP)
    store.write_table(pa.concat_tables([r for _, r, _ in batch]), *records_file)  # the commit
    for tid, _, _ in batch:
        _delete_loose(store, tid)
    out.parts += 1
    out.trials += len(batch)
    out.rows += steps.num_rows


def _delete_loose(store, trial_id: str) -> None:
    store.delete(*layout.trial_file(trial_id))  # the record first: never a record without rows
    store.delete(*layout.steps_file(trial_id))
