"""Paired comparison of two checkpoints on the same prompts: Fréchet and per-clip differences."""

import numpy as np
import pytest

from evaluation.frechet import frechet_distance
from evaluation.paired import paired_frechet_difference, paired_mean_difference


def paired_draw(rng, n, d, shift_b=0.0, noise_a=0.5, noise_b=0.5):
    """Rows of A and B share a per-prompt latent (the prompt and seed), plus their own noise."""
    z = rng.standard_normal((n, d))
    a = z + noise_a * rng.standard_normal((n, d))
    b = z + shift_b + noise_b * rng.standard_normal((n, d))
    return a, b


def test_identical_inputs_give_zero_and_p_one():
    rng = np.random.default_rng(0)
    a, _ = paired_draw(rng, 40, 4)
    ref = rng.standard_normal((60, 4)) + 0.3
    r = paired_frechet_difference(a, a.copy(), ref, num_replicates=50, num_permutations=99, seed=1)
    assert r.diff == 0 and r.low == 0 and r.high == 0
    assert r.p_value == 1.0 and r.n == 40
    m = paired_mean_difference(a[:, 0], a[:, 0], num_replicates=200, num_permutations=99)
    assert m.diff == 0 and m.p_value == 1.0 and m.low == m.high == 0


def test_clearly_worse_checkpoint_is_detected():
    rng = np.random.default_rng(1)
    a, b = paired_draw(rng, 100, 4, shift_b=1.0)
    ref = rng.standard_normal((200, 4))
    r = paired_frechet_difference(a, b, ref_gaussian=(ref.mean(0), np.cov(ref, rowvar=False)), num_replicates=100,
                                  num_permutations=199, seed=0)
    assert r.value_a < r.value_b and r.diff == pytest.approx(r.value_a - r.value_b)
    assert r.high < 0 and r.p_value < 0.01
    assert r.low < r.diff_debiased < r.high
    assert any("held fixed" in note for note in r.notes)
    # per-clip scalars: B's clips score 0.3 lower on average, with per-prompt correlation
    s = rng.standard_normal(64)
    m = paired_mean_difference(s + 0.3 + 0.2 * rng.standard_normal(64), s + 0.2 * rng.standard_normal(64),
                               num_replicates=2000, num_permutations=999)
    assert m.low > 0 and m.p_value < 0.01 and m.diff == pytest.approx(m.value_a - m.value_b)


def test_groups_move_together_and_small_groups_are_exact():
    rng = np.random.default_rng(2)
    clips, frames, d = 8, 4, 3  # frame-level rows: 4 correlated frames per clip
    base_a, base_b = paired_draw(rng, clips, d, shift_b=1.0, noise_a=0.1, noise_b=0.1)
    a = np.repeat(base_a, frames, 0) + 0.05 * rng.standard_normal((clips * frames, d))
    b = np.repeat(base_b, frames, 0) + 0.05 * rng.standard_normal((clips * frames, d))
    groups = np.repeat(np.arange(clips), frames)
    r = paired_frechet_difference(a, b, ref_gaussian=(np.zeros(d), np.eye(d)), groups=groups, num_replicates=40,
                                  num_permutations=999, seed=0)
    assert r.n == clips
    assert len(r.null) == 2**clips  # every swap pattern of 8 clips: an exact test
    assert r.p_value >= 2 / 2**clips  # the observed split and its mirror image are both in the null
    m = paired_mean_difference(a[:, 0], b[:, 0], groups=groups, num_replicates=500, num_permutations=999)
    assert m.n == clips and len(m.null) == 2**clips


def test_misaligned_inputs_raise():
    with pytest.raises(ValueError, match="aligned"):
        paired_frechet_difference(np.zeros((10, 3)), np.zeros((9, 3)), ref_gaussian=(np.zeros(3), np.eye(3)))
    with pytest.raises(ValueError, match="exactly one"):
        paired_frechet_difference(np.ones((10, 3)), np.ones((10, 3)))
    with pytest.raises(ValueError, match="aligned"):
        paired_mean_difference(np.zeros(5), np.zeros(6))


def test_paired_interval_coverage():
    # populations: A = z + e, B = z + 0.3 + 0.7 e', z ~ N(0, S); the reference a known Gaussian
    d, n, draws = 4, 96, 40
    rng = np.random.default_rng(3)
    q = rng.standard_normal((d, d))
    s_z = q @ q.T / d + 0.5 * np.eye(d)
    mu_ref, s_ref = np.full(d, 0.2), np.diag(np.linspace(0.5, 2.0, d))
    true = (frechet_distance(np.zeros(d), s_z + 0.25 * np.eye(d), mu_ref, s_ref)
            - frechet_distance(np.full(d, 0.3), s_z + 0.49 * np.eye(d), mu_ref, s_ref))
    chol = np.linalg.cholesky(s_z)
    hits = 0
    for i in range(draws):
        z = rng.standard_normal((n, d)) @ chol.T
        a = z + 0.5 * rng.standard_normal((n, d))
        b = z + 0.3 + 0.7 * rng.standard_normal((n, d))
        r = paired_frechet_difference(a, b, ref_gaussian=(mu_ref, s_ref), num_replicates=100, num_permutations=0,
                                      seed=i)
        hits += r.low <= true <= r.high
        assert np.isnan(r.p_value)
    assert hits / draws >= 0.85
