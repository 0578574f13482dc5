"""The mixed video noise prior of Ge et al. (2023), "Preserve Your Own Correlation" (PYoCo): its "mixed" noise model.

The frames of a real clip are nearly the same image, but i.i.d. Gaussian noise per frame asks the
model to turn 16 unrelated noise maps into 16 nearly equal frames, and a small model with weakly
trained temporal layers answers with shapes that jump between places. PYoCo's mixed prior gives
every frame of a clip one shared noise map plus its own:

    eps_f = (alpha * eps_shared + eps_ind_f) / sqrt(1 + alpha^2)

so each frame's noise is still N(0, I) (the diffusion's marginals are unchanged) while two frames'
noises correlate by ``alpha^2 / (1 + alpha^2)`` (alpha = 1: 0.5). alpha = 0 is i.i.d. noise.

Written here because no library offers it (diffusers draws i.i.d. noise); it is a few lines.
The model config's ``noise_prior`` (``MagicVideoUNet.config.noise_prior``) is the alpha a model is
trained with (:func:`magicvideo.training.keyframe.noised`) and that its pipeline samples with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from diffusers.utils.torch_utils import randn_tensor


def mix(independent: torch.Tensor, shared: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(alpha * shared + independent) / sqrt(1 + alpha^2)``: `independent` ``(B, C, F, h, w)``,
    `shared` ``(B, C, 1, h, w)`` (broadcast over the frames)."""
    check_alpha(alpha)
    if alpha == 0:
        return independent
    return (alpha * shared + independent) / (1.0 + alpha * alpha) ** 0.5


def check_alpha(alpha: float) -> float:
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"noise_prior (PYoCo's alpha) must be a finite number >= 0, got {alpha!r}")
    return float(alpha)


def video_noise(shape: Sequence[int], alpha: float, generator=None, device=None, dtype=None) -> torch.Tensor:
    """Noise of `shape` ``(B, C, F, h, w)`` under the mixed prior. `generator`: one
    ``torch.Generator`` or a list of one per clip (then clip k's noise depends on its generator
    alone, not on the batch). The per-frame noise is drawn first, the shared map after it, so
    alpha = 0 draws exactly what plain i.i.d. noise would, and nothing more."""
    check_alpha(alpha)
    independent = randn_tensor(tuple(shape), generator=generator, device=device, dtype=dtype)
    if alpha == 0:
        return independent
    b, c, _, h, w = shape
    shared = randn_tensor((b, c, 1, h, w), generator=generator, device=device, dtype=dtype)
    return mix(independent, shared, alpha)
