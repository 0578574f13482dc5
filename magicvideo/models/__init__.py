from .i2v import ImageToVideoUNet
from .interpolation import InterpolationUNet
from .upsampler import UpsamplerUNet
from .unet import AdaptedConv2d, MagicVideoUNet, MagicVideoUNetOutput, SpatioTemporalBlock, TemporalAttention
from .vae import VideoAutoencoderKL

__all__ = [
    "AdaptedConv2d",
    "ImageToVideoUNet",
    "InterpolationUNet",
    "MagicVideoUNet",
    "MagicVideoUNetOutput",
    "SpatioTemporalBlock",
    "TemporalAttention",
    "UpsamplerUNet",
    "VideoAutoencoderKL",
]
