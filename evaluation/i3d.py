"""Inception-I3D (Carreira & Zisserman 2017, Kinetics-400) for FVD, native torch.

The module and parameter names follow piergiaj/pytorch-i3d (``Conv3d_1a_7x7.conv3d.weight``,
``Mixed_3b.b1b.bn.running_var``, ``logits.conv3d.bias``, ...), so ``i3d_pretrained_400.pt`` -- the
state dict that VideoGPT released and TATS, cd-fvd and common_metrics_on_video_quality load --
loads with strict key matching.

Conventions of that FVD (VideoGPT ``videogpt/fvd``):
- input float in [-1, 1], ``[B, 3, T, 224, 224]`` (frames resized by their shorter side to 224,
  centre-cropped; see ``evaluation.preprocess``);
- batch norm eps 1e-5 (VideoGPT's copy of pytorch_i3d; upstream pytorch-i3d uses 1e-3 with its own
  ``rgb_imagenet.pt``: pass ``bn_eps=1e-3`` for those weights);
- TensorFlow "SAME" padding computed from the input size, zeros, also before max pooling;
- features: the 400 pre-softmax logits of the 1x1x1 ``logits`` conv after ``AvgPool3d([2, 7, 7])``,
  averaged over the remaining time steps (VideoGPT's ``forward``: ``logits.mean(dim=2)``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# The units, SAME-padded pooling and Inception blocks are shared with the shapes classifier.
from magicvideo.i3d_layers import InceptionBlock3D, MaxPool3dSame, Unit3D
from evaluation.weights import load_state_dict

#: Fewest frames accepted. Three stride-2 temporal stages then a 2-frame average pool need 9;
#: common_metrics_on_video_quality documents ">= 10 necessary", which we enforce.
MIN_FRAMES = 10


#: The feature stages in order (pytorch-i3d's VALID_ENDPOINTS up to Mixed_5c).
ENDPOINTS = (
    "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
    "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
    "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c",
)

# (name, in channels, branch channels) of the Inception blocks, as in the I3D paper / pytorch-i3d
_BLOCKS = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3d(nn.Module):
    """Inception-I3D with pytorch-i3d's parameter names; ``forward`` gives FVD features.

    Args:
        num_classes: logits (400 for Kinetics-400).
        bn_eps: batch-norm epsilon; 1e-5 for ``i3d_pretrained_400.pt`` (VideoGPT), 1e-3 upstream.
    """

    def __init__(self, num_classes: int = 400, bn_eps: float = 1e-5):
        super().__init__()
        u = dict(bn_eps=bn_eps)
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2), **u)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, **u)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), **u)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionBlock3D(*_BLOCKS["Mixed_3b"], **u)
        self.Mixed_3c = InceptionBlock3D(*_BLOCKS["Mixed_3c"], **u)
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            setattr(self, name, InceptionBlock3D(*_BLOCKS[name], **u))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionBlock3D(*_BLOCKS["Mixed_5b"], **u)
        self.Mixed_5c = InceptionBlock3D(*_BLOCKS["Mixed_5c"], **u)
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=(1, 1, 1))
        self.dropout = nn.Dropout(0.5)  # identity in eval mode; kept for the reference's structure
        self.logits = Unit3D(1024, num_classes, bn=False, bias=True, relu=False)

    def temporal_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax logits per remaining time step, ``[B, num_classes, T']``."""
        for name in ENDPOINTS:
            x = getattr(self, name)(x)
        x = self.logits(self.dropout(self.avg_pool(x)))
        return x[:, :, :, 0, 0]  # spatial squeeze: 224x224 input leaves 1x1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """FVD features ``[B, num_classes]`` of videos ``[B, 3, T>=10, 224, 224]`` in [-1, 1]."""
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"I3D expects [B, 3, T, H, W], got {tuple(x.shape)}")
        if tuple(x.shape[3:]) != (224, 224):
            raise ValueError(f"I3D expects 224x224 frames (resize first, evaluation.preprocess), got {tuple(x.shape[3:])}")
        if x.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames, got {x.shape[2]}")
        return self.temporal_logits(x).mean(dim=2)

    @torch.no_grad()
    def fuse_batchnorm_(self) -> InceptionI3d:
        """Fold each eval-mode BatchNorm into its conv (inference speed; ~1e-6 relative change)."""
        for m in self.modules():
            if isinstance(m, Unit3D) and hasattr(m, "bn"):
                bn, conv = m.bn, m.conv3d
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight.mul_(scale.view(-1, 1, 1, 1, 1))
                conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale)
                del m.bn
        return self


def output_frames(num_frames: int) -> int:
    """Time steps of ``temporal_logits`` for ``num_frames`` input frames."""
    t = num_frames
    for _ in range(3):  # Conv3d_1a (stride 2), MaxPool3d_4a (2), MaxPool3d_5a (2), all 'SAME'
        t = math.ceil(t / 2)
    return t - 1  # AvgPool3d over 2 frames, stride 1, no padding


def load_i3d(path, device="cpu", bn_eps: float = 1e-5) -> InceptionI3d:
    """``InceptionI3d`` with a pytorch-i3d state dict loaded strictly (``torch.load(weights_only=True)``)."""
    state = load_state_dict(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
    model = InceptionI3d(num_classes=state["logits.conv3d.weight"].shape[0], bn_eps=bn_eps)
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False).to(device)
