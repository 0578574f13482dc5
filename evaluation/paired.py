"""Paired comparison of two checkpoints evaluated on the same prompts and seeds.

Row ``i`` of ``features_a`` and of ``features_b`` come from the same prompt (and sample index and
seed): the two checkpoints share the prompt-to-prompt variation, and a comparison that keeps the
pairing is much sharper than two independent intervals side by side.

- Interval for ``diff = value_a - value_b``: the bootstrap draws prompts (``groups``) JOINTLY, the same
  draw for A and B, and the reference rows independently (or holds a reference Gaussian fixed); the
  interval is ``bootstrap_frechet``'s (``evaluation.bootstrap.extrapolated_interval``): normal,
  centred on the difference less its extrapolated bias (the same complementary halves of the prompts
  for A and B; the bias growth from joint bootstraps at n and n/2), its spread from the joint
  bootstrap. A's and B's upward biases differ when their spreads differ, so the plain difference is
  biased too.
- p-value: a paired permutation test (Fisher 1935; Good 2005, sec. 3.6.2): under H0 "for every prompt
  the A rows and the B rows are exchangeable" (the two checkpoints sample the same distribution
  given the prompt and seed), swapping them for any set of prompts leaves the joint distribution
  unchanged, so ``|FD(A', R) - FD(B', R)|`` over random swaps is the exact null distribution of the
  observed ``|diff|``; ``scipy.stats.permutation_test`` (``permutation_type="samples"``, every swap
  pattern when ``2^G <= num_permutations``, else a Monte Carlo p-value ``(k + 1) / (R + 1)``). Its H0
  is equality of the two checkpoints' distributions (which implies equal Fréchet distances), seen
  through the Fréchet distance; the reference is held fixed (the test is conditional on it).

``paired_mean_difference`` does the same for per-clip scalars (CLIPSIM, attribute correctness):
``scipy.stats.bootstrap`` (BCa, paired over prompts) and the same sign-flip permutation test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.stats

from .bootstrap import (METHOD, MIN_GROUPS_FOR_HALVES, ResampledMoments, batch_size, extrapolated_interval, group_counts, group_index,
                        half_weights, rng_kwargs)
from .frechet import frechet_distances, psd_factor
from .stats import as_float64_features


@dataclass
class PairedResult:
    """``diff = value_a - value_b`` with a ``ci`` interval ``low..high`` and a paired permutation p-value."""

    value_a: float
    value_b: float
    diff: float
    low: float
    high: float
    p_value: float                    # H0: A and B exchangeable within each prompt; nan without permutations
    method: str
    n: int                            # pairing units (prompts / groups)
    ci: float = 0.95
    diff_debiased: float = float("nan")   # the interval's centre for Fréchet differences
    std: float = float("nan")         # standard deviation of the bootstrap replicates
    replicates: np.ndarray | None = field(default=None, repr=False)
    null: np.ndarray | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)


def _aligned(features_a, features_b, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Both feature sets as float64, checked to be aligned row by row; row -> group number, G."""
    a, b = as_float64_features(features_a), as_float64_features(features_b)
    if a.shape != b.shape:
        raise ValueError(f"features_a {a.shape} and features_b {b.shape} must be aligned row by row "
                         "(the same prompts and seeds, in the same order)")
    row_group, g = group_index(groups, a.shape[0], "groups")
    if g < 2:
        raise ValueError(f"need at least 2 prompts (groups) to compare, have {g}")
    return a, b, row_group, g


class PairedFrechet:
    """``FD(A_w, R) - FD(B_w, R)`` for group weights ``w`` shared by A and B, reference rows weighted
    on their own (or a fixed reference Gaussian, whose factor is computed once)."""

    def __init__(self, a, b, groups, ref_features, ref_gaussian, ref_groups, unbiased: bool):
        if (ref_features is None) == (ref_gaussian is None):
            raise ValueError("give exactly one of ref_features or ref_gaussian")
        self.a, self.b = ResampledMoments(a, groups, "groups"), ResampledMoments(b, groups, "groups")
        self.num_groups = self.a.num_groups
        self.unbiased = unbiased
        self.ref = self.fixed = None
        if ref_features is not None:
            r = as_float64_features(ref_features)
            if r.shape[1] != a.shape[1] or r.shape[0] < 2:
                raise ValueError(f"ref_features must be [>=2, {a.shape[1]}], got {r.shape}")
            self.ref = ResampledMoments(r, ref_groups, "ref_groups")
        else:
            mu, sigma = (np.asarray(x, dtype=np.float64) for x in ref_gaussian)
            if mu.shape != (a.shape[1],) or sigma.shape != (a.shape[1],) * 2:
                raise ValueError(f"ref_gaussian must be a [{a.shape[1]}] mean and a square covariance of that size")
            sigma = (sigma + sigma.T) / 2
            self.fixed = (mu, sigma, psd_factor(sigma))

    def reference(self, w_ref: np.ndarray | None):
        """``(mu, sigma, factor)`` of the reference with group weights ``w_ref [B, Gr]``; with None the
        fixed Gaussian, or the full reference sample's (computed once)."""
        if w_ref is None:
            if self.fixed is None:
                mu, sigma = self.ref.weighted(np.ones((1, self.ref.xc.shape[0])), self.unbiased)
                self.fixed = (mu[0], sigma[0], psd_factor(sigma[0]))
            return self.fixed
        mu, sigma = self.ref.weighted(w_ref[:, self.ref.row_group].astype(np.float64), self.unbiased)
        return mu, sigma, psd_factor(sigma)

    def values(self, w: np.ndarray, w_ref: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(FD_A [B], FD_B [B])`` for group weights ``w [B, G]`` (and reference group weights)."""
        rows = w[:, self.a.row_group].astype(np.float64)
        mu_r, sig_r, fac_r = self.reference(w_ref)
        fa = frechet_distances(*self.a.weighted(rows, self.unbiased), mu_r, sig_r, factor2=fac_r)
        fb = frechet_distances(*self.b.weighted(rows, self.unbiased), mu_r, sig_r, factor2=fac_r)
        return fa, fb

    def swapped_values(self, swap: np.ndarray) -> np.ndarray:
        """``|FD(A') - FD(B')|`` per swap pattern ``[B, G]`` (True: that prompt's A and B rows exchanged),
        reference fixed at its full-sample Gaussian."""
        mu_r, sig_r, fac_r = self.reference(None)
        if not hasattr(self, "_pooled"):  # raw moments about one centre: B' = (A + B) - A'
            centre = (self.a.centre + self.b.centre) / 2
            ac, bc = self.a.xc + (self.a.centre - centre), self.b.xc + (self.b.centre - centre)
            self._pooled = (centre, ac, bc, ac.T @ ac + bc.T @ bc, ac.sum(0) + bc.sum(0))
        centre, ac, bc, raw_total, sum_total = self._pooled
        n = ac.shape[0]
        div = n - 1 if self.unbiased else n
        mus = np.empty((2, len(swap), ac.shape[1]))
        sigmas = np.empty((2, len(swap), ac.shape[1], ac.shape[1]))
        for k, s in enumerate(np.atleast_2d(swap)):
            y = np.where(s[self.a.row_group][:, None], bc, ac)  # A' = B's rows where swapped; B' = the rest
            raw, tot = y.T @ y, y.sum(0)
            for j, (r, t) in enumerate(((raw, tot), (raw_total - raw, sum_total - tot))):
                m = t / n
                sigmas[j, k] = (r - n * np.outer(m, m)) / div
                mus[j, k] = m + centre
        fa = frechet_distances(mus[0], sigmas[0], mu_r, sig_r, factor2=fac_r)
        fb = frechet_distances(mus[1], sigmas[1], mu_r, sig_r, factor2=fac_r)
        return np.abs(fa - fb)


def paired_frechet_difference(features_a, features_b, ref_features=None, ref_gaussian=None, *, groups=None,
                              ref_groups=None, num_replicates: int = 200, num_permutations: int = 999,
                              num_splits: int | None = None, ci: float = 0.95, seed: int = 0,
                              unbiased: bool = True) -> PairedResult:
    """``FD(A, R) - FD(B, R)`` of two checkpoints on the same prompts, with a bootstrap interval and a
    paired permutation p-value (module docstring).

    ``features_a`` / ``features_b``: ``[n, d]`` rows aligned (same prompt, sample index and seed per
    row); ``groups``: a prompt (or clip) id per row, shared by A and B (e.g. frame-level FID rows: the
    prompt of each frame's clip), resampled and swapped as a whole; default every row its own group.
    ``ref_features`` (resampled independently, ``ref_groups``) or ``ref_gaussian=(mu, sigma)`` (held fixed).
    ``num_permutations=0``: no test (``p_value`` nan).
    """
    a, b, _, g = _aligned(features_a, features_b, groups)
    if num_replicates < 2:
        raise ValueError(f"need at least 2 bootstrap replicates, got {num_replicates}")
    if g < MIN_GROUPS_FOR_HALVES:
        raise ValueError(f"a paired interval needs at least {MIN_GROUPS_FOR_HALVES} prompts (half-samples of 2), "
                         f"got {g}")
    pf = PairedFrechet(a, b, groups, ref_features, ref_gaussian, ref_groups, unbiased)
    fa, fb = pf.values(np.ones((1, g)))
    value_a, value_b = float(fa[0]), float(fb[0])
    diff = value_a - value_b
    rng = np.random.default_rng(seed)
    step = batch_size(a.shape[1], 6)
    reps = _joint_bootstrap(pf, num_replicates, rng, 1.0, step)
    num_splits = num_splits or max(10, num_replicates // 10)
    w = half_weights(num_splits, g, rng)  # complementary halves of the prompts (and of the reference's rows)
    w_ref = None if pf.ref is None else half_weights(num_splits, pf.ref.num_groups, rng)
    halves = np.concatenate([np.subtract(*pf.values(w[i : i + step], None if w_ref is None else w_ref[i : i + step]))
                             for i in range(0, 2 * num_splits, step)])
    reps_half = _joint_bootstrap(pf, max(10, num_replicates // 2), rng, 0.5, step)
    low, high, bias, _ = extrapolated_interval(diff, reps, reps_half, halves, ci)
    notes = [] if pf.ref is not None else [
        "reference held fixed (a Gaussian): its sampling noise is not in the interval"]
    null, p = None, float("nan")
    if num_permutations > 0:
        res = scipy.stats.permutation_test(
            (np.zeros(g), np.ones(g)), lambda x, y, axis=-1: _swap_stat(pf, x), permutation_type="samples",
            vectorized=True, n_resamples=num_permutations, batch=step, alternative="greater",
            **rng_kwargs(scipy.stats.permutation_test, seed + 1))
        null, p = np.asarray(res.null_distribution), float(res.pvalue)
    return PairedResult(value_a, value_b, diff, low, high, p, f"paired bootstrap, {METHOD} + paired permutation test",
                        g, ci, diff - bias, float(reps.std(ddof=1)), reps, null, notes)


def _joint_bootstrap(pf: PairedFrechet, num: int, rng, fraction: float, step: int) -> np.ndarray:
    """``FD(A*, R*) - FD(B*, R*)`` for ``num`` replicates: ``round(fraction G)`` prompts drawn with replacement, the
    same draw for A and B; the reference's rows drawn on their own (``fraction`` of them) unless it is fixed."""
    g, out = pf.num_groups, []
    gr = None if pf.ref is None else pf.ref.num_groups
    for i in range(0, num, step):
        k = min(step, num - i)
        w = group_counts(rng.integers(0, g, (k, max(2, round(fraction * g)))), g)
        w_ref = None if gr is None else group_counts(rng.integers(0, gr, (k, max(2, round(fraction * gr)))), gr)
        out.append(np.subtract(*pf.values(w, w_ref)))
    return np.concatenate(out)


def _swap_stat(pf: PairedFrechet, x: np.ndarray) -> np.ndarray:
    """The permutation statistic: ``x`` holds 1 where a prompt's A and B rows were swapped."""
    out = pf.swapped_values(np.atleast_2d(x) > 0.5)
    return out[0] if np.ndim(x) == 1 else out


def paired_mean_difference(a, b, *, groups=None, num_replicates: int = 9999, num_permutations: int = 9999,
                           ci: float = 0.95, seed: int = 0) -> PairedResult:
    """``mean(a) - mean(b)`` of per-clip scalars aligned by prompt (CLIPSIM, attribute correctness).

    Prompts (``groups``; default each row) are the resampling unit: the interval is
    ``scipy.stats.bootstrap``'s BCa (Efron 1987) of ``sum(a - b) / n`` over prompts drawn jointly
    (paired), the p-value a paired permutation (sign-flip) test of the per-prompt sums of ``a - b``
    (``scipy.stats.permutation_test``), exact under H0 "a and b exchangeable within each prompt".
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a {a.shape} and b {b.shape} must be aligned (one value per clip, same order)")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a or b contains NaN or inf")
    row_group, g = group_index(groups, a.size, "groups")
    if g < 2:
        raise ValueError(f"need at least 2 prompts (groups) to compare, have {g}")
    sum_a, sum_b = np.bincount(row_group, a, g), np.bincount(row_group, b, g)
    size = np.bincount(row_group, minlength=g).astype(np.float64)
    diff = float((a - b).mean())
    notes = []
    if np.ptp(a - b) == 0:  # every clip's difference is the same: no spread to resample
        low = high = diff
        notes.append("all per-clip differences equal: a zero-width interval")
        reps = np.full(num_replicates, diff)
    else:
        res = scipy.stats.bootstrap((sum_a - sum_b, size), lambda s, m, axis=-1: s.sum(axis) / m.sum(axis),
                                    paired=True, vectorized=True, n_resamples=num_replicates, confidence_level=ci,
                                    method="BCa", **rng_kwargs(scipy.stats.bootstrap, seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        reps = np.asarray(res.bootstrap_distribution)
    null, p = None, float("nan")
    if num_permutations > 0:
        res = scipy.stats.permutation_test((sum_a, sum_b), lambda x, y, axis=-1: np.abs(x.sum(axis) - y.sum(axis)),
                                           permutation_type="samples", vectorized=True, n_resamples=num_permutations,
                                           alternative="greater", **rng_kwargs(scipy.stats.permutation_test, seed + 1))
        null, p = np.asarray(res.null_distribution) / a.size, float(res.pvalue)
    return PairedResult(float(a.mean()), float(b.mean()), diff, low, high, p,
                        "paired BCa bootstrap + paired permutation test", g, ci, diff,
                        float(np.std(reps, ddof=1)), reps, null, notes)
