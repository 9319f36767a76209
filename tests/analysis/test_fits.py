"""θ*_shape, η_c, θ*_resolve and H (science §5) on synthetic trial summaries."""

import itertools
import math

import numpy as np
import pytest

from phantom.analysis import db
from phantom.analysis.views import fits

COLS = ("trial_id VARCHAR, model VARCHAR, protocol VARCHAR, sentence_id VARCHAR, lr DOUBLE, "
        "seed BIGINT, status VARCHAR, evaluations BIGINT, flip_step INTEGER, character VARCHAR, "
        "gmax DOUBLE, x DOUBLE, B_T DOUBLE")


def load(conn, rows, settings=None):
    """A hand-made trial_summary table; the fit views of the registry on top of it."""
    from phantom.analysis.registry import ViewContext
    from phantom.analysis.settings import AnalysisSettings

    db.fetch(conn, f"CREATE OR REPLACE TABLE ts_rows ({COLS})")
    conn.executemany(f"INSERT INTO ts_rows VALUES ({', '.join('?' * 13)})", rows)
    db.fetch(conn, """CREATE OR REPLACE TABLE trial_summary AS
        SELECT *, model || '|' || protocol || '|' || sentence_id || '|' || seed AS bracket_id,
               CAST(NULL AS INTEGER) AS context_index, 10 AS budget, -0.1 AS phi0,
               CAST(NULL AS VARCHAR) AS stop_reason, 'fp32' AS precision,
               CASE WHEN status = 'error' THEN NULL
                    ELSE status = 'diverged' OR flip_step IS NOT NULL END AS flipped
        FROM ts_rows""")
    db.define_views(conn, ViewContext((), settings or AnalysisSettings(bootstrap=20)),
                    ["shape_fit", "eta_c", "eta_c_sentence", "fits"], given=["trial_summary", "lr_ref"])


def shape_rows(xs, labels, model="m", protocol="full"):
    return [
        (f"t{i}", model, protocol, f"s{i}", x, 0, "ok", 10, 3,
         "catapult" if y else "drift", 1.0, x, 1.0)
        for i, (x, y) in enumerate(zip(xs, labels))
    ]


def brute_force(xs, labels):
    """Independent reference: try every cut between sorted distinct values."""
    v = sorted(set(xs))
    best = None
    for k in range(len(v) + 1):
        lo = v[k - 1] if k > 0 else None
        hi = v[k] if k < len(v) else None
        err = sum((x > (lo if lo is not None else -math.inf)) != y for x, y in zip(xs, labels))
        bounded = lo is not None and hi is not None
        width = math.log(hi / lo) if bounded else math.inf
        key = (err, not bounded, -width, lo if lo is not None else -math.inf)
        if best is None or key < best[0]:
            best = (key, err, lo, hi)
    _, err, lo, hi = best
    theta = math.sqrt(lo * hi) if lo is not None and hi is not None else None
    return err, lo, hi, theta


def test_separable_exact(memdb):
    load(memdb, shape_rows([1, 2, 4, 8], [0, 0, 1, 1]))
    r = db.records(memdb, "SELECT * FROM shape_fit")[0]
    assert (r["shape_errors"], r["shape_lo"], r["shape_hi"]) == (0, 2, 4)
    assert r["theta_shape"] == pytest.approx(math.sqrt(8))
    assert r["n_shape"] == 4


def test_non_separable_widest_gap(memdb):
    # cuts 1|2 and 3|4 both misclassify one trial; 1|2 is wider in log-rate
    load(memdb, shape_rows([1, 2, 3, 4, 5, 6], [0, 1, 0, 1, 1, 1]))
    r = db.records(memdb, "SELECT * FROM shape_fit")[0]
    assert (r["shape_errors"], r["shape_lo"], r["shape_hi"]) == (1, 1, 2)
    assert r["theta_shape"] == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize("seed", range(6))
def test_random_grids_match_brute_force(memdb, seed):
    rng = np.random.default_rng(seed)
    xs = [float(x) for x in rng.choice([0.5, 1, 2, 3, 5, 8, 13], size=15)]
    labels = [bool(y) for y in (np.array(xs) * rng.uniform(0.5, 1.5, 15) > 4)]
    load(memdb, shape_rows(xs, labels))
    r = db.records(memdb, "SELECT * FROM shape_fit")[0]
    err, lo, hi, theta = brute_force(xs, labels)
    assert r["shape_errors"] == err
    assert (r["shape_lo"], r["shape_hi"]) == (lo, hi)
    assert r["theta_shape"] == (pytest.approx(theta) if theta else None)


def test_all_catapult_has_no_threshold(memdb):
    load(memdb, shape_rows([1, 2], [1, 1]))
    r = db.records(memdb, "SELECT * FROM shape_fit")[0]
    assert r["shape_errors"] == 0 and r["shape_lo"] is None and r["shape_hi"] == 1
    assert r["theta_shape"] is None


def eta_rows():
    rates = [1e-5, 2e-5, 4e-5, 8e-5]
    plan = {  # sentence: (gmax, flips per rate)
        "mono": (0.5, [0, 0, 1, 1]),
        "nonmono": (0.8, [0, 1, 0, 1]),
        "all": (0.6, [1, 1, 1, 1]),
        "none": (0.7, [0, 0, 0, 0]),
        "mono2": (0.25, [0, 1, 1, 1]),
    }
    rows = []
    for (s, (g, flips)), (lr, f) in itertools.product(plan.items(), [(None, None)]):
        for lr, f in zip(rates, flips):
            rows.append((f"{s}{lr}", "m", "lora", s, lr, 0, "ok", 10, 2 if f else None,
                         "drift" if f else "unresolved", g, lr * g, 1.0))
    return rows


def test_eta_c_monotone_nonmonotone_all_none(memdb):
    load(memdb, eta_rows())
    e = {r["sentence_id"]: r for r in db.records(memdb, "SELECT * FROM eta_c")}
    assert e["mono"]["eta_c"] == pytest.approx(math.sqrt(2e-5 * 4e-5))
    assert e["mono"]["non_monotone"] is False
    assert e["nonmono"]["non_monotone"] is True  # 4e-5 does not flip, 2e-5 does
    assert e["nonmono"]["eta_c"] == pytest.approx(math.sqrt(4e-5 * 2e-5))
    assert e["all"]["eta_c"] is None and e["none"]["eta_c"] is None
    assert e["mono2"]["eta_c"] == pytest.approx(math.sqrt(1e-5 * 2e-5))
    assert e["mono"]["theta"] == pytest.approx(math.sqrt(8e-10) * 0.5)
    assert e["mono"]["H"] == pytest.approx(1e-4 / math.sqrt(8e-10))  # lora η_ref = 1e-4

    f = db.records(memdb, "SELECT * FROM fits")[0]
    thetas = [math.sqrt(8e-10) * 0.5, math.sqrt(8e-10) * 0.8, math.sqrt(2e-10) * 0.25]
    gbar = (0.5 + 0.8 + 0.25) / 3
    assert f["n_eta_c"] == 3 and f["n_sentences_eta_c"] == 3 and f["n_non_monotone"] == 1
    assert f["theta_resolve"] == pytest.approx(sum(thetas) / 3)
    assert (f["theta_min"], f["theta_max"]) == (pytest.approx(min(thetas)), pytest.approx(max(thetas)))
    assert f["H"] == pytest.approx(1e-4 * gbar / (sum(thetas) / 3))
    assert f["gmax_all"] == pytest.approx((0.5 + 0.8 + 0.6 + 0.7 + 0.25) / 5)


def test_lr_ref_override_changes_H(tmp_path):
    from phantom.analysis.settings import AnalysisSettings, parse_lr_ref

    s = AnalysisSettings().with_lr_ref(parse_lr_ref(["lora=2e-4"]))
    assert s.lr_ref_map == {"full": 2e-5, "lora": 2e-4, "lora-frozen-head": 1e-4}
    import duckdb
    from phantom.analysis.registry import ViewContext

    c = duckdb.connect()
    db.register_functions(c)
    db.define_views(c, ViewContext((), s), ["lr_ref"])
    load(c, eta_rows(), s)
    assert db.scalar(c, "SELECT H FROM eta_c WHERE sentence_id = 'mono'") == pytest.approx(2e-4 / math.sqrt(8e-10))
    c.close()


def test_bad_lr_ref():
    from phantom.errors import ConfigError
    from phantom.analysis.settings import parse_lr_ref

    with pytest.raises(ConfigError, match="Did you mean 'lora'"):
        parse_lr_ref(["lroa=1e-4"])
    with pytest.raises(ConfigError, match="PROTOCOL=RATE"):
        parse_lr_ref(["1e-4"])
