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
import torch.nn.functional as F
from torch import nn

#: Fewest frames accepted. Three stride-2 temporal stages then a 2-frame average pool need 9;
#: common_metrics_on_video_quality documents ">= 10 necessary", which we enforce.
MIN_FRAMES = 10


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (front, back) of one dimension, as pytorch-i3d's ``compute_pad``."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pads(x: torch.Tensor, kernel, stride) -> list[tuple[int, int]]:
    return [same_padding(s, k, st) for s, k, st in zip(x.shape[2:], kernel, stride)]


class Unit3D(nn.Module):
    """Conv3d (no bias unless ``bias``) -> BatchNorm3d -> ReLU, with 'SAME' padding."""

    def __init__(self, cin, cout, kernel=(1, 1, 1), stride=(1, 1, 1), bn=True, bias=False, relu=True, bn_eps=1e-5):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
        if bn:
            self.bn = nn.BatchNorm3d(cout, eps=bn_eps, momentum=0.001)

    def forward(self, x):
        pads = _pads(x, self.kernel, self.stride)
        if all(f == b for f, b in pads):  # symmetric: let the conv pad (same zeros, one pass fewer)
            x = F.conv3d(x, self.conv3d.weight, self.conv3d.bias, self.stride, [f for f, _ in pads])
        else:
            x = F.pad(x, [p for f, b in reversed(pads) for p in (f, b)])
            x = self.conv3d(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pooling with 'SAME' zero padding (inputs are post-ReLU, so zeros never win over data)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x):
        pads = _pads(x, self.kernel, self.stride)
        if all(f == b and 2 * f <= k for (f, b), k in zip(pads, self.kernel)):
            # -inf padding of max_pool3d equals zero padding here: every window holds a value >= 0
            return F.max_pool3d(x, self.kernel, self.stride, [f for f, _ in pads])
        return F.max_pool3d(F.pad(x, [p for f, b in reversed(pads) for p in (f, b)]), self.kernel, self.stride)


class InceptionBlock3D(nn.Module):
    """Inception module: 1x1 | 1x1-3x3 | 1x1-3x3 | maxpool-1x1, concatenated on channels."""

    def __init__(self, cin, c: tuple[int, int, int, int, int, int], bn_eps=1e-5):
        super().__init__()
        self.b0 = Unit3D(cin, c[0], bn_eps=bn_eps)
        self.b1a = Unit3D(cin, c[1], bn_eps=bn_eps)
        self.b1b = Unit3D(c[1], c[2], (3, 3, 3), bn_eps=bn_eps)
        self.b2a = Unit3D(cin, c[3], bn_eps=bn_eps)
        self.b2b = Unit3D(c[3], c[4], (3, 3, 3), bn_eps=bn_eps)
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, c[5], bn_eps=bn_eps)

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


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
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
    model = InceptionI3d(num_classes=state["logits.conv3d.weight"].shape[0], bn_eps=bn_eps)
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False).to(device)
