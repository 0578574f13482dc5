"""Fréchet distance between two Gaussians, by symmetric eigendecomposition.

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr( (S1 S2)^(1/2) )        (Dowson & Landau 1982)

The references (pytorch-fid, StyleGAN-V, torchmetrics) take ``scipy.linalg.sqrtm(S1 @ S2)`` (whose
``disp=`` argument is gone in scipy 1.18) or the eigenvalues of the non-symmetric ``S1 @ S2``. We use
that for PSD matrices ``S1 S2 = R (R S2)`` with ``R = S1^(1/2)`` has the eigenvalues of the symmetric
PSD ``R S2 R``, so ``tr((S1 S2)^(1/2)) = sum(sqrt(eigvalsh(R S2 R)))`` (the route of TF-GAN's
``trace_sqrt_product``, used by VideoGPT/TATS). Two symmetric eigensolves, no complex arithmetic,
and exact also for singular (rank-deficient) covariances, where sqrtm is ill-conditioned.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def _check_gaussian(mu, sigma, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1:
        raise ValueError(f"{name}: mean must be 1-D, got shape {mu.shape}")
    if sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{name}: covariance must be [{mu.shape[0]}, {mu.shape[0]}], got {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"{name}: mean or covariance contains NaN or inf")
    return mu, (sigma + sigma.T) / 2


def sqrtm_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix; negative rounding-noise eigenvalues are clipped to 0."""
    w, v = scipy.linalg.eigh(sigma, driver="evd")
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr((S1 S2)^(1/2))`` for PSD ``S1, S2``, as ``sum(sqrt(eig(R S2 R)))`` with ``R = S1^(1/2)``."""
    r = sqrtm_psd(sigma1)
    m = r @ sigma2 @ r
    ev = scipy.linalg.eigh((m + m.T) / 2, eigvals_only=True, driver="evd")
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    Equal to the ``scipy.linalg.sqrtm``-based value of pytorch-fid/StyleGAN-V (checked in the tests
    on random and rank-deficient covariances). Raises ``ValueError`` on NaN/inf or bad shapes.
    """
    mu1, sigma1 = _check_gaussian(mu1, sigma1, "first distribution")
    mu2, sigma2 = _check_gaussian(mu2, sigma2, "second distribution")
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape[0]} vs {mu2.shape[0]}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(value)


def frechet_distance_torch(mu1, sigma1, mu2, sigma2, device=None) -> float:
    """The same computation with ``torch.linalg`` in float64 on ``device`` (e.g. a GPU)."""
    import torch

    def t(a):
        return torch.as_tensor(np.asarray(a, dtype=np.float64), device=device)

    mu1, sigma1 = _check_gaussian(mu1, sigma1, "first distribution")
    mu2, sigma2 = _check_gaussian(mu2, sigma2, "second distribution")
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape[0]} vs {mu2.shape[0]}")
    m1, s1, m2, s2 = t(mu1), t(sigma1), t(mu2), t(sigma2)
    w, v = torch.linalg.eigh(s1)
    r = (v * w.clamp_min(0).sqrt()) @ v.T
    m = r @ s2 @ r
    ev = torch.linalg.eigvalsh((m + m.T) / 2)
    tr = ev.clamp_min(0).sqrt().sum()
    diff = m1 - m2
    return float(diff @ diff + s1.trace() + s2.trace() - 2.0 * tr)


def frechet_distance_scipy_sqrtm(mu1, sigma1, mu2, sigma2) -> float:
    """Reference value the way pytorch-fid/StyleGAN-V compute it (``scipy.linalg.sqrtm``); for checks only."""
    mu1, sigma1 = np.asarray(mu1, np.float64), np.asarray(sigma1, np.float64)
    mu2, sigma2 = np.asarray(mu2, np.float64), np.asarray(sigma2, np.float64)
    s = scipy.linalg.sqrtm(sigma1 @ sigma2)
    s = s[0] if isinstance(s, tuple) else s
    diff = mu1 - mu2
    return float(np.real(diff @ diff + np.trace(sigma1 + sigma2 - 2.0 * s)))
