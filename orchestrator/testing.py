"""Helpers for the orchestrator tests (shipped in the package, as optuna.testing): a tiny sweep
definition and checks of the data a sweep wrote."""

from __future__ import annotations

from pathlib import Path

from phantom.layout import STEPS_DIR, TRIALS_DIR
from phantom.outcomes import TrialStatus
from phantom.workers.sentences import DEFAULT_SENTENCES as SENTENCES  # the shipped sentences file

REPO = Path(__file__).resolve().parents[1]


def tiny_sweep(**over) -> dict:
    """A small sweep on a tiny model: 2 sentences x 2 rates x 5 steps by default."""
    data = {
        "name": "tiny",
        "sentences": {"file": str(SENTENCES), "ids": ["longing", "shame"]},
        "models": ["tiny-gpt2"],
        "protocols": ["full"],
        "learning_rates": [1.0e-3, 1.0e-2],
        "seeds": [0],
        "training": {"steps": 5},
        "resources": {"cpus_per_trial": 1},
        "retries": 2,
    }
    data.update(over)
    return data


def read_steps(folder: Path):
    """All step rows of a sweep folder (only files with a trial record count as results), as
    STEP_SCHEMA: a file of an earlier release has NULL in the columns it did not have."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from phantom.results import conform
    from phantom.schema import STEP_SCHEMA

    done = {p.stem for p in (folder / TRIALS_DIR).glob("*.parquet")}
    tables = [conform(pq.read_table(p), STEP_SCHEMA) for p in sorted((folder / STEPS_DIR).glob("*.parquet"))
              if p.stem in done]
    return pa.concat_tables(tables) if tables else None


def read_trials(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [pq.read_table(p).to_pylist()[0] for p in sorted((folder / TRIALS_DIR).glob("*.parquet"))]


def download(store, dest: Path) -> Path:
    """Every file of a results folder on any store (a :class:`~phantom.storage.Store`) copied
    under ``dest``, so that the helpers here, which read local files, can check it."""
    import pyarrow.fs as pafs

    for info in store.fs.get_file_info(pafs.FileSelector(store.root, recursive=True)):
        if info.type == pafs.FileType.File:
            target = dest / info.path[len(store.root) + 1:]
            target.parent.mkdir(parents=True, exist_ok=True)
            with store.fs.open_input_stream(info.path) as src:
                target.write_bytes(src.read())
    return dest


def assert_complete(folder: Path, n_trials: int, steps: int) -> None:
    """Exactly n_trials x (steps + 1) step rows, one per (trial_id, step), no partial files."""
    trials = read_trials(folder)
    assert len(trials) == n_trials
    assert all(t["status"] == TrialStatus.OK for t in trials), [(t["trial_id"], t["error"]) for t in trials]
    table = read_steps(folder)
    assert table.num_rows == n_trials * (steps + 1)
    pairs = list(zip(table.column("trial_id").to_pylist(), table.column("step").to_pylist()))
    assert len(set(pairs)) == len(pairs)
    assert {p.stem for p in (folder / STEPS_DIR).glob("*.parquet")} == {t["trial_id"] for t in trials}
    assert not list(folder.rglob("*.tmp"))


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (read from /proc): what a test kills with a driver."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out
