"""Fréchet distance: against scipy.linalg.sqrtm, closed forms, and clear errors."""

import numpy as np
import pytest
import scipy.linalg

from evaluation import frechet_distance
from evaluation.frechet import frechet_distance_torch


def sqrtm_reference(mu1, s1, mu2, s2):
    """pytorch-fid / StyleGAN-V formula with scipy.linalg.sqrtm (no disp=, gone in scipy 1.18)."""
    s = scipy.linalg.sqrtm(s1 @ s2)
    diff = mu1 - mu2
    return float(np.real(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(s)))


def gaussian(rng, n, d, scale=1.0, shift=0.0):
    x = rng.standard_normal((n, d)) @ (rng.standard_normal((d, d)) * scale / np.sqrt(d)) + shift
    return x.mean(0), np.cov(x, rowvar=False)


@pytest.mark.parametrize("n,d", [(500, 16), (400, 64), (300, 128)])
def test_matches_scipy_sqrtm_full_rank(n, d):
    rng = np.random.default_rng(d)
    a, b = gaussian(rng, n, d), gaussian(rng, n, d, scale=2.0, shift=0.5)
    ours, ref = frechet_distance(*a, *b), sqrtm_reference(*a, *b)
    assert ours == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("n,d", [(20, 64), (50, 128), (10, 32)])
def test_matches_scipy_sqrtm_rank_deficient(n, d):
    # fewer samples than dimensions: both covariances are singular
    rng = np.random.default_rng(n + d)
    a, b = gaussian(rng, n, d), gaussian(rng, n, d, scale=1.5, shift=0.2)
    assert np.linalg.matrix_rank(a[1]) < d
    ours, ref = frechet_distance(*a, *b), sqrtm_reference(*a, *b)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_torch_variant_matches():
    rng = np.random.default_rng(1)
    a, b = gaussian(rng, 100, 48), gaussian(rng, 80, 48, shift=1.0)
    assert frechet_distance_torch(*a, *b) == pytest.approx(frechet_distance(*a, *b), rel=1e-10)


def test_identical_distributions_give_zero():
    rng = np.random.default_rng(2)
    mu, s = gaussian(rng, 200, 64)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-8 * np.trace(s)
    mu, s = gaussian(rng, 30, 64)  # singular: sqrt of rounding-level eigenvalues is ~1e-8 each
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-6 * np.trace(s)


def test_pure_mean_shift_is_squared_norm():
    rng = np.random.default_rng(3)
    mu, s = gaussian(rng, 300, 32)
    shift = rng.standard_normal(32)
    assert frechet_distance(mu + shift, s, mu, s) == pytest.approx(float(shift @ shift), rel=1e-8)


def test_diagonal_closed_form():
    # for commuting (diagonal) covariances: sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.0])
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs_raise(bad):
    mu, s = np.zeros(4), np.eye(4)
    s_bad = s.copy()
    s_bad[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        frechet_distance(mu, s_bad, mu, s)
    mu_bad = mu.copy()
    mu_bad[0] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        frechet_distance(mu, s, mu_bad, s)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="covariance must be"):
        frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), np.eye(3))
