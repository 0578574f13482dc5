"""FeatureStats: float64, independent of batch size and merge order, both covariance conventions."""

import numpy as np
import pytest
import torch

from evaluation import FeatureStats


def features(n=257, d=24, seed=0):
    rng = np.random.default_rng(seed)
    # a large common offset makes the naive sum(x x^T) - n mu mu^T lose digits; ours must not
    return (rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + 1e4).astype(np.float32)


def test_mean_and_unbiased_cov_match_numpy():
    x = features()
    s = FeatureStats().update(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(s.mean(), x64.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.cov(), np.cov(x64, rowvar=False), rtol=1e-9, atol=1e-9)


def test_biased_cov_is_stylegan_v_estimator():
    x = features().astype(np.float64)
    n = len(x)
    mu = x.mean(0)
    stylegan = (x - mu).T @ (x - mu) / n  # StyleGAN-V: raw_cov/n - outer(mean, mean), computed stably
    np.testing.assert_allclose(FeatureStats().update(x).cov(unbiased=False), stylegan, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(FeatureStats().update(x).cov(unbiased=False) * n / (n - 1),
                               FeatureStats().update(x).cov(), rtol=1e-12)


@pytest.mark.parametrize("batch", [1, 7, 64, 257])
def test_independent_of_batch_size(batch):
    x = features()
    whole = FeatureStats().update(x)
    s = FeatureStats()
    for i in range(0, len(x), batch):
        s.update(torch.from_numpy(x[i : i + batch]))  # torch input too
    assert s.n == whole.n
    np.testing.assert_allclose(s.mean(), whole.mean(), rtol=1e-12)
    np.testing.assert_allclose(s.cov(), whole.cov(), rtol=1e-9, atol=1e-9)


def test_independent_of_merge_order():
    x = features(300)
    parts = [FeatureStats().update(x[i : i + 37]) for i in range(0, 300, 37)]
    forward = FeatureStats()
    for p in parts:
        forward.merge(p)
    backward = FeatureStats()
    for p in reversed(parts):
        backward.merge(p)
    tree = FeatureStats().merge(FeatureStats().merge(parts[0]).merge(parts[5])).merge(
        FeatureStats().merge(parts[3]).merge(parts[1]))
    for p in (parts[2], parts[4], parts[6], parts[7], parts[8]):
        tree.merge(p)
    whole = FeatureStats().update(x)
    for s in (forward, backward, tree):
        assert s.n == 300
        np.testing.assert_allclose(s.mean(), whole.mean(), rtol=1e-12)
        np.testing.assert_allclose(s.cov(), whole.cov(), rtol=1e-9, atol=1e-9)


def test_too_few_samples_and_non_finite_raise():
    s = FeatureStats().update(np.ones((1, 3)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        s.cov()
    with pytest.raises(ValueError, match="at least 1 samples"):
        FeatureStats(3).mean()
    bad = np.ones((4, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        FeatureStats().update(bad)
    with pytest.raises(ValueError, match="dimension mismatch"):
        FeatureStats().update(np.ones((2, 3))).update(np.ones((2, 4)))


def test_save_load_and_kept_features(tmp_path):
    x = features(50, 8)
    s = FeatureStats(keep_features=True).update(x[:20]).merge(FeatureStats(keep_features=True).update(x[20:]))
    np.testing.assert_array_equal(s.features(), x.astype(np.float64))
    s.save(tmp_path / "s.npz")
    t = FeatureStats.load(tmp_path / "s.npz")
    assert t.n == 50
    np.testing.assert_array_equal(t.cov(), s.cov())
