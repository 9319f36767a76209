"""``analysis/phantom.duckdb`` opens in the user's own DuckDB 1.x client (issue 19).

``phantom analyze`` writes the file in DuckDB 1.1's storage format
(phantom.analysis.analyze.DATABASE_STORAGE_VERSION); DuckDB 2's default (storage version 69) is refused
by every 1.x client. The check uses the ``duckdb`` command-line client that pip installs
(package ``duckdb-cli``, pinned to 1.x in the lock) from the environment running the tests, and
compares what it selects with what Phantom's own connection returns for the same query.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from phantom.analysis import db
from phantom.cli import main

RATES = (1e-4, 3e-2)
# one snapshot table written by analyze (a view over analysis/<name>.parquet), one view over the
# raw results Parquet
QUERIES = {
    "claims": "SELECT * FROM claims ORDER BY ord",
    "trial_summary": "SELECT trial_id, lr, evaluations, phi0, phi_T, R, flip_step, character "
                     "FROM trial_summary ORDER BY trial_id",
    "steps": "SELECT trial_id, step, context_id, loss, phi FROM steps ORDER BY trial_id, step, context_id",
}


def duckdb_cli() -> str:
    """The ``duckdb`` executable installed beside this Python (``pip install duckdb-cli``)."""
    bin_dir = Path(sys.executable).parent
    found = shutil.which("duckdb", path=str(bin_dir))
    if found is None:
        pytest.skip(f"no duckdb command-line client in {bin_dir} (pip install duckdb-cli)")
    return found


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, tiny_models):
    from phantom.config import TrainingConfig, TrialConfig
    from phantom.workers.sentences import get_sentence
    from phantom.workers.trial import run_trial

    out = tmp_path_factory.mktemp("results")
    s = get_sentence("shame")
    for lr in RATES:
        cfg = TrialConfig(model="tiny-llama", sentence_id=s.id, target=s.target, competitor=s.competitor,
                          contexts=s.contexts, protocol="full", lr=lr, training=TrainingConfig(steps=4))
        run_trial(cfg, out, base=tiny_models["tiny-llama"])
    assert main(["analyze", str(out), "--no-report"]) == 0
    return out / "analysis" / "phantom.duckdb"


def cli(binary: str, database: Path, sql: str) -> list[dict]:
    done = subprocess.run([binary, "-readonly", "-json", str(database), "-c", sql],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else []


def test_a_duckdb_1x_client_reads_the_database(analysed):
    binary = duckdb_cli()
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    # the point is a 1.x client: a 2.x CLI here would make this test pass without checking it
    assert version.startswith("v1."), f"expected a DuckDB 1.x CLI (duckdb-cli in the lock), got {version!r}"
    with db.connect_readonly([analysed]) as conn:
        for name, sql in QUERIES.items():
            mine = db.records(conn, sql)
            theirs = cli(binary, analysed, sql)
            assert mine, f"{name}: Phantom's own query returned no rows"
            # JSON numbers are the shortest text that reads back as the same double: exact
            assert theirs == mine, name


def test_phantom_still_opens_the_database(analysed, capsys):
    capsys.readouterr()
    assert main(["query", str(analysed), "SELECT count(*) AS n FROM trial_summary", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", str(len(RATES))]
