"""MagicVideo (arXiv 2211.11018): efficient text-to-video generation with latent diffusion.

A plain library (no Prefect, Ray or MLflow): models, sampling pipeline, training, data.
The model classes are imported lazily so that `import magicvideo` (and the CLI) start fast.
"""

__all__ = ["MagicVideoUNet", "VideoAutoencoderKL", "MagicVideoPipeline"]


def __getattr__(name: str):
    if name in ("MagicVideoUNet", "VideoAutoencoderKL"):
        from . import models

        return getattr(models, name)
    if name == "MagicVideoPipeline":
        from .pipeline import MagicVideoPipeline

        return MagicVideoPipeline
    raise AttributeError(f"module 'magicvideo' has no attribute {name!r}")
