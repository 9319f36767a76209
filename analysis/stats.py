"""The statistics the SQL does not do: Spearman p-values and Kolmogorov–Smirnov distances.

Plain NumPy (+ ``scipy.special`` for the distribution functions), each tested against
``scipy.stats.spearmanr`` / ``scipy.stats.kstest`` directly.
"""

from __future__ import annotations

import math

import numpy as np


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks; a group of ties gets the mean of the ranks it spans."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # boundaries of runs of equal values
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]
    avg = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty_like(xs)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman_p(rho: float | None, n: int | None) -> float | None:
    """Two-sided p-value of Spearman ρ over n points: t = ρ·sqrt((n−2)/(1−ρ²)) on n−2 degrees
    of freedom (what ``scipy.stats.spearmanr`` reports). None when undefined."""
    if rho is None or n is None or n < 3 or not math.isfinite(rho):
        return None
    from scipy.special import stdtr

    dof = n - 2
    denom = (1.0 - rho) * (1.0 + rho)
    if denom <= 0:
        return 0.0
    t = abs(rho) * math.sqrt(dof / denom)
    return float(2.0 * stdtr(dof, -t))


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float | None]:
    """(ρ, p) with average ranks for ties; ρ is NaN when either side is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan"), None
    rho = float(np.corrcoef(rx, ry)[0, 1])
    return rho, spearman_p(rho, len(rx))


# ----------------------------------------------------------------------------------------------
# Kolmogorov–Smirnov distance of a sample to a fitted distribution (science §5.8 bulk geometry)


def ks_distance(sample: np.ndarray, cdf) -> float:
    """sup |F_n − F| of the empirical distribution of ``sample`` against ``cdf``."""
    x = np.sort(np.asarray(sample, dtype=np.float64))
    n = x.size
    f = cdf(x)
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - f), np.max(f - (i - 1) / n)))


def fit_normal(sample: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood normal: (mean, population standard deviation)."""
    x = np.asarray(sample, dtype=np.float64)
    return float(x.mean()), float(x.std())


def fit_exponential(sample: np.ndarray) -> float:
    """Maximum-likelihood exponential with its origin fixed at 0 (G² ≥ 0): the scale = mean."""
    return float(np.asarray(sample, dtype=np.float64).mean())


def ks_normal(sample: np.ndarray) -> float:
    from scipy.special import ndtr

    mu, sd = fit_normal(sample)
    return ks_distance(sample, lambda x: ndtr((x - mu) / sd))


def ks_exponential(sample: np.ndarray) -> float:
    scale = fit_exponential(sample)
    return ks_distance(sample, lambda x: -np.expm1(-np.clip(x, 0, None) / scale))


def bulk_class(ks_norm: float, ks_exp: float) -> str:
    """science §5.8: class A (dense, Gaussian bulk) when the normal fits better, else B."""
    return "A" if ks_norm < ks_exp else "B"
