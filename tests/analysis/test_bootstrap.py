"""The bootstrap over sentences (issue 9.3): the draw is the same in SQL and NumPy, seeded,
configurable; the intervals themselves are recomputed independently in test_recompute.py."""

import numpy as np
import pytest

from phantom.analysis import db
from phantom.analysis.views import bootstrap
from phantom.analysis.settings import AnalysisSettings
from phantom.analysis.testing import random_grid
from phantom.errors import ConfigError


def test_lowbias32_matches_its_reference():
    # Chris Wellons' lowbias32, written out with Python integers
    def ref(x):
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    xs = [0, 1, 2, 12345, 2**31 - 1, 2**31, 2**32 - 1]
    assert [int(v) for v in bootstrap.lowbias32(xs)] == [ref(x) for x in xs]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    random_grid(root, seed=11, n_sentences=7)
    return root


def draws(root, **kw):
    with db.connect([root], AnalysisSettings(**kw), views=["resamples"]) as conn:
        return db.records(conn, "SELECT * FROM resamples ORDER BY model, protocol, r, sentence_id")


def test_sql_draw_equals_numpy(grid):
    rows = draws(grid, bootstrap=200, bootstrap_seed=3)
    groups = {}
    for r in rows:
        groups.setdefault((r["model"], r["protocol"]), []).append(r)
    for key, mine in groups.items():
        sentences = sorted(r["sentence_id"] for r in mine if r["r"] == 0)
        assert all(r["w"] == 1 for r in mine if r["r"] == 0)
        idx = bootstrap.resample_indices(3, 200, len(sentences))
        for r in range(1, 201):
            want = np.bincount(idx[r - 1], minlength=len(sentences))
            got = np.zeros(len(sentences), int)
            for row in mine:
                if row["r"] == r:
                    got[sentences.index(row["sentence_id"])] = row["w"]
            assert (got == want).all() and got.sum() == len(sentences)
    # roughly uniform: each sentence is drawn about once per replicate on average
    idx = bootstrap.resample_indices(3, 4000, 7)
    assert np.allclose(np.bincount(idx.ravel(), minlength=7) / 4000, 1.0, atol=0.06)


def fits(root, **kw):
    with db.connect([root], AnalysisSettings(**kw), views=["fits"]) as conn:
        return {(r["model"], r["protocol"]): r for r in db.records(conn, "SELECT * FROM fits")}


def test_seeded_configurable_and_off(grid):
    a, b = fits(grid, bootstrap=40, bootstrap_seed=1), fits(grid, bootstrap=40, bootstrap_seed=1)
    # the same draws, the same intervals (to the rounding of DuckDB's parallel sums)
    for k in a:
        assert {c: (pytest.approx(v, rel=1e-12) if isinstance(v, float) else v) for c, v in a[k].items()} == b[k]
    c = fits(grid, bootstrap=40, bootstrap_seed=2)
    assert any(a[k]["theta_resolve_ci_lo"] != c[k]["theta_resolve_ci_lo"] for k in a)
    # the point estimates never depend on the bootstrap
    for k in a:
        assert a[k]["theta_resolve"] == c[k]["theta_resolve"] and a[k]["theta_shape"] == c[k]["theta_shape"]
        assert a[k]["n_boot"] == 40
        lo, hi = a[k]["theta_resolve_ci_lo"], a[k]["theta_resolve_ci_hi"]
        assert lo is None or lo <= hi
    narrow = fits(grid, bootstrap=40, bootstrap_seed=1, confidence=0.5)
    for k in a:
        if a[k]["H_ci_lo"] is not None:
            assert a[k]["H_ci_lo"] <= narrow[k]["H_ci_lo"] <= narrow[k]["H_ci_hi"] <= a[k]["H_ci_hi"]
    off = fits(grid, bootstrap=0)
    for k in off:
        assert off[k]["n_boot"] == 0 and off[k]["theta_resolve_ci_lo"] is None and off[k]["B_FT_ci_hi"] is None
        assert off[k]["theta_resolve"] == a[k]["theta_resolve"]


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="bootstrap"):
        AnalysisSettings(bootstrap=-1)
    with pytest.raises(ConfigError, match="confidence"):
        AnalysisSettings(confidence=1.0)


def test_cli_flags(grid, capsys):
    from phantom.cli import main

    sql = "SELECT model, protocol, n_boot, H_ci_lo FROM fits ORDER BY 1, 2"
    assert main(["query", str(grid), sql, "--format", "csv", "--bootstrap", "25", "--bootstrap-seed", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "model,protocol,n_boot,H_ci_lo" and all(",25," in line for line in out[1:])
    want = fits(grid, bootstrap=25, bootstrap_seed=4)
    for line in out[1:]:
        model, protocol, _, lo = line.split(",")
        assert (float(lo) if lo else None) == pytest.approx(want[(model, protocol)]["H_ci_lo"])


def test_the_fits_and_their_intervals_are_the_same_to_the_last_bit_every_time(grid, tmp_path):
    """The same folder gives the same tables, to the last bit and in the same row order, on every
    `phantom analyze` (the main job's fits.csv differed in the 16th digit of H_ci_hi and B_FT_ci
    between runs, its correlations.csv in the 16th digit of ρ, and trial_summary.csv in its row
    order: DuckDB's parallel sums add in whatever order its threads finish)."""
    import pyarrow.parquet as pq

    from phantom.analysis.commands.analyze import analyze

    names = ("fits", "fit_replicates", "correlations", "isolation", "trial_summary", "reference_trials")
    seen: dict[str, set] = {name: set() for name in names}
    for i in range(5):
        analyze([grid], AnalysisSettings(bootstrap=300, bootstrap_seed=1), report=False, out=tmp_path / str(i),
                progress=None)
        for name in seen:
            seen[name].add(repr(pq.read_table(tmp_path / str(i) / f"{name}.parquet").to_pylist()))
    assert {name: len(v) for name, v in seen.items()} == {name: 1 for name in seen}
