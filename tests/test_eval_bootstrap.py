"""Bootstrap intervals and the FID-infinity extrapolation."""

import numpy as np
import pytest

from evaluation import bootstrap_frechet, frechet_distance, frechet_infinity


def draw(rng, n, d, shift=0.0):
    return rng.standard_normal((n, d)) + shift


def test_bootstrap_interval_brackets_value_and_is_seeded():
    rng = np.random.default_rng(0)
    a, b = draw(rng, 300, 8, 0.5), draw(rng, 300, 8)
    r = bootstrap_frechet(a, b, num_replicates=60, seed=1)
    direct = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert r.value == pytest.approx(direct, rel=1e-9)
    assert r.low < r.value < r.high and r.std > 0
    again = bootstrap_frechet(a, b, num_replicates=60, seed=1)
    np.testing.assert_array_equal(r.replicates, again.replicates)
    # a fixed reference Gaussian: narrower interval than resampling both sides
    fixed = bootstrap_frechet(a, gaussian_b=(b.mean(0), np.cov(b, rowvar=False)), num_replicates=60, seed=1)
    assert fixed.value == pytest.approx(direct, rel=1e-9)
    assert fixed.std < r.std


def test_bootstrap_argument_errors():
    with pytest.raises(ValueError, match="exactly one"):
        bootstrap_frechet(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_frechet(np.zeros((1, 2)), np.zeros((5, 2)))


def test_fid_infinity_removes_sample_count_bias():
    # generated and reference distributions are identical: the true distance is 0, but FD(N) ~ c/N
    rng = np.random.default_rng(3)
    d = 16
    mu_r, sigma_r = np.zeros(d), np.eye(d)
    fake = draw(rng, 2000, d)
    r = frechet_infinity(fake, mu_r, sigma_r, num_points=8, seed=0)
    assert len(r.ns) == 8 and r.ns[-1] == 2000
    at_n = r.values[-1]
    assert r.slope > 0  # the bias shrinks with N
    assert abs(r.value_infinity) < 0.25 * at_n
    with pytest.raises(ValueError, match="two sample counts"):
        frechet_infinity(fake, mu_r, sigma_r, ns=[100])
