"""Uncertainty and sample-size bias of Fréchet distances: bootstrap intervals and FID-infinity.

Neither is in the anchor implementations; both are computed from the same per-sample features and
the same ``frechet_distance`` so they sit next to the reference number, not instead of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .frechet import frechet_distance
from .stats import as_float64_features


@dataclass
class BootstrapResult:
    """Percentile bootstrap of a Fréchet distance: ``low``..``high`` holds ``ci`` of the replicates."""

    value: float                      # the distance on the full samples
    low: float
    high: float
    std: float                        # standard deviation of the replicates
    ci: float
    replicates: np.ndarray = field(repr=False)


def _weighted_gaussian(xc: np.ndarray, counts: np.ndarray, unbiased: bool):
    """Mean and covariance of the rows of (centred) ``xc`` repeated ``counts`` times."""
    n = counts.sum()
    mu = counts @ xc / n
    scatter = (xc * counts[:, None]).T @ xc - n * np.outer(mu, mu)
    return mu, scatter / (n - 1 if unbiased else n)


def bootstrap_frechet(features_a, features_b=None, *, gaussian_b=None, num_replicates: int = 100,
                      ci: float = 0.95, seed: int = 0, unbiased: bool = True) -> BootstrapResult:
    """Bootstrap interval of the Fréchet distance between two feature sets.

    Each replicate draws ``n_a`` rows of ``features_a`` (and ``n_b`` of ``features_b``) with
    replacement (Efron 1979). When the reference side is only known as a Gaussian
    (``gaussian_b=(mu, sigma)``, e.g. cached statistics) it is held fixed. Cost: per replicate one
    ``n d^2`` product per resampled side and one Fréchet distance.
    """
    a = as_float64_features(features_a)
    if (features_b is None) == (gaussian_b is None):
        raise ValueError("give exactly one of features_b or gaussian_b")
    if a.shape[0] < 2:
        raise ValueError(f"need at least 2 samples to bootstrap, have {a.shape[0]}")
    rng = np.random.default_rng(seed)
    ca = a.mean(0)
    ac = a - ca
    if features_b is not None:
        b = as_float64_features(features_b)
        if b.shape[0] < 2:
            raise ValueError(f"need at least 2 samples to bootstrap, have {b.shape[0]}")
        cb = b.mean(0)
        bc = b - cb
    else:
        mu_b, sigma_b = (np.asarray(g, dtype=np.float64) for g in gaussian_b)

    def one(counts_a, counts_b):
        mu_a, sig_a = _weighted_gaussian(ac, counts_a, unbiased)
        if features_b is None:
            return frechet_distance(mu_a + ca, sig_a, mu_b, sigma_b)
        mu_bb, sig_b = _weighted_gaussian(bc, counts_b, unbiased)
        return frechet_distance(mu_a + ca, sig_a, mu_bb + cb, sig_b)

    ones_b = None if features_b is None else np.ones(b.shape[0])
    value = one(np.ones(a.shape[0]), ones_b)
    reps = np.empty(num_replicates)
    for i in range(num_replicates):
        counts_a = rng.multinomial(a.shape[0], np.full(a.shape[0], 1 / a.shape[0])).astype(np.float64)
        counts_b = None
        if features_b is not None:
            counts_b = rng.multinomial(b.shape[0], np.full(b.shape[0], 1 / b.shape[0])).astype(np.float64)
        reps[i] = one(counts_a, counts_b)
    q = (1 - ci) / 2
    return BootstrapResult(value, float(np.quantile(reps, q)), float(np.quantile(reps, 1 - q)),
                           float(reps.std(ddof=1)) if num_replicates > 1 else 0.0, ci, reps)


@dataclass
class ExtrapolationResult:
    """Fit ``FD(N) = value_infinity + slope / N`` over sample counts ``ns`` (Chong & Forsyth 2020)."""

    value_infinity: float
    slope: float
    ns: np.ndarray
    values: np.ndarray


def frechet_infinity(features_fake, mu_real, sigma_real, *, ns=None, num_points: int = 15, seed: int = 0,
                     unbiased: bool = True) -> ExtrapolationResult:
    """Sample-count-free Fréchet distance ("FID-infinity", Chong & Forsyth, CVPR 2020).

    FD computed from N generated samples is biased upward roughly as ``c / N``. As their reference
    code: shuffle the generated features once, take the first N for each N in ``ns`` (default
    ``num_points`` values evenly spaced from n/5 to n), fit ``FD = a + b / N`` by least squares and
    report ``a`` (the extrapolation to N = infinity). The reference side is held fixed.
    """
    x = as_float64_features(features_fake)
    n = x.shape[0]
    if ns is None:
        ns = np.unique(np.linspace(max(2, n // 5), n, num_points).astype(int))
    ns = np.asarray(sorted(int(k) for k in ns))
    if ns.size < 2 or ns[0] < 2 or ns[-1] > n:
        raise ValueError(f"need at least two sample counts between 2 and {n}, got {ns.tolist()}")
    x = x[np.random.default_rng(seed).permutation(n)]
    vals = np.empty(len(ns))
    for i, k in enumerate(ns):
        sub = x[:k]
        mu = sub.mean(0)
        c = sub - mu
        vals[i] = frechet_distance(mu, c.T @ c / (k - 1 if unbiased else k), mu_real, sigma_real)
    design = np.stack([np.ones(len(ns)), 1.0 / ns], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, vals, rcond=None)
    return ExtrapolationResult(float(a), float(b), ns, vals)
