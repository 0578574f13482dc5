"""Bootstrap intervals and the FID-infinity extrapolation."""

import numpy as np
import pytest
import scipy.linalg

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
    assert fixed.reference_fixed and any("held fixed" in note for note in fixed.notes) and not r.reference_fixed
    # the fields: the interval is centred on the value less its extrapolated bias
    assert r.value_debiased == pytest.approx(r.value - r.bias) and r.bias > 0
    assert r.low < r.value_debiased < r.high
    assert r.value_debiased == pytest.approx((r.low + r.high) / 2)
    assert r.bias_bootstrap == pytest.approx(r.replicates.mean() - r.value) and "half-samples" in r.method
    assert len(r.half_samples) == 20 and len(r.replicates_half) == 30  # 10 splits, both halves; B/2 at n/2
    assert 1.25 <= r.bias_growth <= 4
    assert r.bias == pytest.approx((r.half_samples.mean() - r.value) / (r.bias_growth - 1))


def test_groups_resample_whole_clusters():
    # 40 clips x 8 frames, frames of a clip nearly identical: by frame the interval is far too narrow
    rng = np.random.default_rng(5)
    clips = np.repeat(rng.standard_normal((40, 4)) + 0.4, 8, axis=0) + 0.01 * rng.standard_normal((320, 4))
    ref = rng.standard_normal((400, 4))
    groups = np.repeat(np.arange(40), 8)
    by_frame = bootstrap_frechet(clips, ref, num_replicates=60, seed=0)
    by_clip = bootstrap_frechet(clips, ref, num_replicates=60, seed=0, groups_a=groups)
    assert by_clip.value == by_frame.value
    assert by_clip.std > 1.5 * by_frame.std
    with pytest.raises(ValueError, match="one group id per row"):
        bootstrap_frechet(clips, ref, groups_a=groups[:-1])
    with pytest.raises(ValueError, match="groups_b needs features_b"):
        bootstrap_frechet(clips, gaussian_b=(np.zeros(4), np.eye(4)), groups_b=groups)


def population(rng, d):
    """Two Gaussians: decaying spectrum, the second's basis turned and its mean shifted."""
    lam = 1.0 / np.arange(1, d + 1)
    u, _ = np.linalg.qr(rng.standard_normal((d, d)))
    g = rng.standard_normal((d, d))
    v = u @ scipy.linalg.expm(0.6 * (g - g.T) / np.sqrt(2 * d))
    s_a, s_b = (u * lam) @ u.T, (v * lam * np.exp(0.3 * rng.standard_normal(d))) @ v.T
    return np.zeros(d), (s_a + s_a.T) / 2, u @ (np.sqrt(lam) * rng.standard_normal(d)) * 0.5, (s_b + s_b.T) / 2


def test_interval_covers_the_population_distance():
    # a small benchmarks/interval_coverage.py: the estimate is biased upward by ~20% (about one standard
    # deviation), the old percentile interval (quantiles of the replicates) rarely covers the true distance
    d, n, draws = 16, 128, 60
    rng = np.random.default_rng(11)
    mu_a, s_a, mu_b, s_b = population(rng, d)
    true = frechet_distance(mu_a, s_a, mu_b, s_b)
    la, lb = np.linalg.cholesky(s_a), np.linalg.cholesky(s_b)
    hits = old_hits = 0
    estimates, debiased = [], []
    for i in range(draws):
        a = mu_a + rng.standard_normal((n, d)) @ la.T
        b = mu_b + rng.standard_normal((n, d)) @ lb.T
        r = bootstrap_frechet(a, b, num_replicates=50, seed=i)
        hits += r.low <= true <= r.high
        q_lo, q_hi = np.quantile(r.replicates, [0.025, 0.975])
        old_hits += q_lo <= true <= q_hi
        estimates.append(r.value)
        debiased.append(r.value_debiased)
    assert hits / draws >= 0.85
    assert old_hits / draws <= 0.5
    assert np.mean(estimates) > 1.1 * true  # upward bias of the plain estimate
    assert abs(np.mean(debiased) / true - 1) < 0.05


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


def test_few_samples_fall_back_to_the_bootstrap_bias():
    """Fewer than 4 samples on a side: no half-samples (a half of one sample has no covariance); the
    interval falls back to the bias-corrected normal one and says so."""
    from evaluation.bootstrap import bootstrap_frechet

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(10, 4)) + 1
    r = bootstrap_frechet(a, gaussian_b=(b.mean(0), np.cov(b, rowvar=False)), num_replicates=20)
    assert r.method == "normal-bc" and np.isfinite([r.low, r.high, r.value_debiased]).all()
    assert 0 <= r.low <= r.high and any("fewer than 4" in n for n in r.notes)
    assert any("fewer samples (3) than feature dimensions (4)" in n for n in r.notes)
