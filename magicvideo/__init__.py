"""MagicVideo (arXiv 2211.11018): efficient text-to-video generation with latent diffusion.

A plain library (no Prefect, Ray or MLflow): models, sampling pipeline, training, data.
"""

from .models import MagicVideoUNet, VideoAutoencoderKL

__all__ = ["MagicVideoUNet", "VideoAutoencoderKL"]
