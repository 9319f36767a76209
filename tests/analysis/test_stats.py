"""Spearman (ties, p-values) and KS distances against SciPy directly."""

import numpy as np
import pytest
import scipy.stats

from phantom.analysis import db, stats

CASES = [
    ([1, 2, 2, 3, 4, 4, 4, 5], [2, 1, 3, 3, 5, 4, 6, 6]),  # ties on both sides
    ([0.3, 0.5, 0.5, 0.9, 0.1, 0.7], [10, 8, 8, 2, 11, 1]),
    (list(range(12)), [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]),
    ([1, 2, 3, 4], [1, 2, 3, 4]),  # ρ = 1 → p = 0
]


@pytest.mark.parametrize("x,y", CASES)
def test_spearman_python_vs_scipy(x, y):
    rho, p = stats.spearman(np.array(x, float), np.array(y, float))
    ref = scipy.stats.spearmanr(x, y)
    assert rho == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, abs=1e-12)


def test_average_ranks_vs_scipy():
    x = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5])
    assert np.allclose(stats.average_ranks(x), scipy.stats.rankdata(x))


def test_spearman_sql_vs_scipy(memdb):
    rows = []
    for k, (x, y) in enumerate(CASES):
        rows += [("model", f"m{k}", "full", "gmax", "R", float(a), float(b)) for a, b in zip(x, y)]
    db.fetch(memdb, "CREATE TABLE correlation_points (scope VARCHAR, model VARCHAR, protocol VARCHAR, "
             "x_name VARCHAR, y_name VARCHAR, x DOUBLE, y DOUBLE)")
    memdb.executemany("INSERT INTO correlation_points VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    from phantom.analysis.registry import ViewContext
    from phantom.analysis.settings import AnalysisSettings

    db.define_views(memdb, ViewContext((), AnalysisSettings()), ["correlations"],
                    given=["correlation_points"])
    got = {r["model"]: r for r in db.records(memdb, "SELECT * FROM correlations")}
    for k, (x, y) in enumerate(CASES):
        ref = scipy.stats.spearmanr(x, y)
        assert got[f"m{k}"]["n"] == len(x)
        assert got[f"m{k}"]["rho"] == pytest.approx(ref.statistic, abs=1e-12)
        assert got[f"m{k}"]["p_value"] == pytest.approx(ref.pvalue, abs=1e-12)
        lo, hi = fisher_bonett_wright(ref.statistic, len(x))
        assert (got[f"m{k}"]["rho_lo"], got[f"m{k}"]["rho_hi"]) == (
            (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12)) if lo is not None else (None, None))


def fisher_bonett_wright(rho, n, level=0.95):
    """By hand: tanh(atanh ρ ± z·sqrt((1 + ρ²/2)/(n − 3))) (Bonett & Wright 2000)."""
    if n <= 3 or abs(rho) >= 1:
        return None, None
    z = scipy.stats.norm.ppf((1 + level) / 2)
    se = np.sqrt((1 + rho**2 / 2) / (n - 3))
    return np.tanh(np.arctanh(rho) - z * se), np.tanh(np.arctanh(rho) + z * se)


def correlated_points(memdb, *, seed: int, n: int, slope: float):
    """n points y = slope·x + noise as the correlation_points of one (model, protocol), and the
    correlations view over them; returns (x, y)."""
    from phantom.analysis.registry import ViewContext
    from phantom.analysis.settings import AnalysisSettings

    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = slope * x + rng.normal(size=n)
    db.fetch(memdb, "CREATE TABLE correlation_points AS SELECT 'model' AS scope, 'm' AS model, "
             "'full' AS protocol, 'gmax' AS x_name, 'R' AS y_name, x, y FROM (SELECT unnest(?) AS x, unnest(?) AS y)",
             [x.tolist(), y.tolist()])
    db.define_views(memdb, ViewContext((), AnalysisSettings()), ["correlations"], given=["correlation_points"])
    return x, y


def test_spearman_interval_against_scipy_bootstrap(memdb):
    """On a large sample the Fisher-z interval and SciPy's bootstrap interval of ρ agree."""
    x, y = correlated_points(memdb, seed=3, n=300, slope=0.6)
    row = db.records(memdb, "SELECT * FROM correlations")[0]
    boot = scipy.stats.bootstrap((x, y), lambda a, b: scipy.stats.spearmanr(a, b).statistic, paired=True,
                                 vectorized=False, n_resamples=2000, method="percentile",
                                 random_state=np.random.default_rng(0))
    assert row["rho_lo"] == pytest.approx(boot.confidence_interval.low, abs=0.02)
    assert row["rho_hi"] == pytest.approx(boot.confidence_interval.high, abs=0.02)


def test_spearman_p_undefined():
    assert stats.spearman_p(0.5, 2) is None and stats.spearman_p(None, 10) is None


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(7)
    return {"gauss": rng.normal(0.06, 0.01, 4000), "exp": rng.exponential(0.003, 4000)}


def test_ks_distances_vs_scipy(samples):
    for x in samples.values():
        mu, sd = x.mean(), x.std()
        assert stats.ks_normal(x) == pytest.approx(
            scipy.stats.kstest(x, "norm", args=(mu, sd)).statistic, abs=1e-12)
        assert stats.ks_exponential(x) == pytest.approx(
            scipy.stats.kstest(x, "expon", args=(0, x.mean())).statistic, abs=1e-12)


def test_ks_class(samples):
    g, e = samples["gauss"], samples["exp"]
    assert stats.bulk_class(stats.ks_normal(g), stats.ks_exponential(g)) == "A"
    assert stats.bulk_class(stats.ks_normal(e), stats.ks_exponential(e)) == "B"


def test_bulk_statistics_of_planted_embedding():
    import torch

    from phantom.workers.geometry import bulk_statistics, sample_pairs

    i, j = sample_pairs(50, 10_000, seed=1)  # more than exist: all 1225 pairs
    assert len(i) == 50 * 49 // 2 and np.all(i < j)
    i, j = sample_pairs(1000, 5000, seed=1)
    assert len(set(zip(i.tolist(), j.tolist()))) == 5000 and np.all(i < j)
    E = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    b = bulk_statistics(E, n_pairs=3000, tau=0.3, seed=3)
    i, j = sample_pairs(300, 3000, seed=3)
    Ed = E.double()
    psi = (Ed / Ed.norm(dim=1, keepdim=True)).numpy()
    G = (psi[i] * psi[j]).sum(1)
    assert b["mean_g2"] == pytest.approx((G ** 2).mean(), rel=1e-12)
    assert b["frac_above_tau"] == pytest.approx((G > 0.3).mean())
    assert b["ks_norm"] == pytest.approx(scipy.stats.kstest(G**2, "norm", args=((G**2).mean(), (G**2).std())).statistic)
    assert sum(b["hist_counts"]) == 3000


def test_spearman_sql_gives_the_same_rho_every_time_on_several_threads(memdb):
    """Re-running the query gives ρ to the last bit (the main job's correlations.csv differed in
    the 16th digit between two `phantom analyze` runs of the same trials: DuckDB's parallel
    corr() sums in whatever order its threads finish)."""
    db.fetch(memdb, "SET threads = 4")
    x, y = correlated_points(memdb, seed=11, n=400, slope=0.3)
    got = {db.records(memdb, "SELECT rho FROM correlations")[0]["rho"] for _ in range(30)}
    assert len(got) == 1, sorted(got)
    assert got.pop() == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-12)
