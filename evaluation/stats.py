"""Streaming feature statistics in float64: mean and covariance, mergeable across batches and workers.

Conventions of the references (``cov`` of ``n`` feature vectors):
- pytorch-fid, torch-fidelity, torchmetrics, VideoGPT/TATS/common_metrics FVD: unbiased, divide by n-1
  (``np.cov`` / torch ``1/(n-1)``). This is our default.
- StyleGAN-V (``metric_utils.FeatureStats.get_mean_cov``): biased, ``sum(x x^T)/n - mu mu^T``, i.e.
  divide by n. Ask for it with ``cov(unbiased=False)``.

The accumulation uses the pairwise update of Chan, Golub & LeVeque (1979): each batch's centred
sum of outer products is merged with the running one, so the result does not depend on batch size
or merge order (up to float64 rounding) and does not suffer the cancellation of ``sum(x x^T) -
n mu mu^T``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def as_float64_features(x) -> np.ndarray:
    """A ``[n, d]`` float64 numpy array from a numpy array or torch tensor; finite values only."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().to("cpu").double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D array [num_samples, num_features], got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise ValueError(f"features contain NaN or inf ({bad} of {x.shape[0]} samples): check the extractor's input")
    return x


class FeatureStats:
    """Running count, mean and centred scatter matrix of feature vectors (float64).

    Args:
        num_features: feature dimension; inferred from the first ``update`` when ``None``.
        keep_features: also keep every feature vector (float64), for bootstrap intervals and
            sample-size extrapolation; costs ``n * d * 8`` bytes.
    """

    def __init__(self, num_features: int | None = None, keep_features: bool = False):
        self.num_features = num_features
        self.keep_features = keep_features
        self.n = 0
        self._mean = None if num_features is None else np.zeros(num_features)
        self._m2 = None if num_features is None else np.zeros((num_features, num_features))
        self._kept: list[np.ndarray] = []

    # -- accumulation ---------------------------------------------------------------------------
    def update(self, features) -> FeatureStats:
        """Add a batch ``[n, d]`` of feature vectors; returns ``self``."""
        x = as_float64_features(features)
        if x.shape[0] == 0:
            return self
        batch = FeatureStats(x.shape[1])
        batch.n = x.shape[0]
        batch._mean = x.mean(axis=0)
        xc = x - batch._mean
        batch._m2 = xc.T @ xc
        if self.keep_features:
            self._kept.append(x)
        return self._merge_moments(batch)

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Fold another worker's statistics into these (in place); returns ``self``."""
        if self.keep_features:
            if other.n and not other.keep_features:
                raise ValueError("cannot merge stats without kept features into stats that keep them")
            self._kept.extend(other._kept)
        return self._merge_moments(other)

    def _merge_moments(self, other: FeatureStats) -> FeatureStats:
        if other.n == 0:
            return self
        if self.num_features is not None and other.num_features != self.num_features:
            raise ValueError(f"feature dimension mismatch: {self.num_features} vs {other.num_features}")
        if self.n == 0:
            self.num_features = other.num_features
            self.n, self._mean, self._m2 = other.n, other._mean.copy(), other._m2.copy()
            return self
        n = self.n + other.n
        delta = other._mean - self._mean
        self._mean = self._mean + delta * (other.n / n)
        self._m2 = self._m2 + other._m2 + np.outer(delta, delta) * (self.n * other.n / n)
        self.n = n
        return self

    # -- results --------------------------------------------------------------------------------
    def mean(self) -> np.ndarray:
        """Mean feature vector ``[d]``."""
        self._need(1)
        return self._mean.copy()

    def cov(self, unbiased: bool = True) -> np.ndarray:
        """Covariance ``[d, d]``: divide by n-1 (default) or by n (StyleGAN-V, ``unbiased=False``)."""
        self._need(2)
        c = self._m2 / (self.n - 1 if unbiased else self.n)
        return (c + c.T) / 2

    def features(self) -> np.ndarray:
        """Every feature vector seen (needs ``keep_features=True``)."""
        if not self.keep_features:
            raise ValueError("these stats were made without keep_features=True")
        return np.concatenate(self._kept) if self._kept else np.zeros((0, self.num_features or 0))

    def _need(self, k: int) -> None:
        if self.n < k:
            raise ValueError(
                f"need at least {k} samples for {'a covariance' if k == 2 else 'a mean'}, have {self.n}"
            )

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write n, mean and scatter matrix to an ``.npz`` (kept features are not saved)."""
        self._need(1)
        with open(path, "wb") as f:
            np.savez(f, n=np.int64(self.n), mean=self._mean, m2=self._m2)

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        """Read stats written by ``save``."""
        with np.load(path) as z:
            s = cls(int(z["mean"].shape[0]))
            s.n, s._mean, s._m2 = int(z["n"]), z["mean"].astype(np.float64), z["m2"].astype(np.float64)
        return s

    @classmethod
    def from_features(cls, features, keep_features: bool = False) -> FeatureStats:
        """Stats of one ``[n, d]`` array."""
        return cls(keep_features=keep_features).update(features)

    def __repr__(self) -> str:
        return f"FeatureStats(n={self.n}, num_features={self.num_features})"
