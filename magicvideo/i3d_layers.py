"""Inception-I3D building blocks (Carreira & Zisserman 2017) in pytorch-i3d's layout and names.

One definition for the two I3D networks of the project: the Kinetics-400 FVD feature extractor
(`evaluation.i3d.InceptionI3d`, loading pytorch-i3d's ``i3d_pretrained_400.pt``) and the
width-scaled shapes classifier (`magicvideo.models.classifier.ShapesI3D`). It lives in
`magicvideo` because dependencies point ``evaluation -> magicvideo`` (DESIGN.md). Plain torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (front, back) of one dimension, as pytorch-i3d's ``compute_pad``."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pads(x: torch.Tensor, kernel, stride) -> list[tuple[int, int]]:
    return [same_padding(s, k, st) for s, k, st in zip(x.shape[2:], kernel, stride)]


class Unit3D(nn.Module):
    """Conv3d (no bias unless ``bias``) -> BatchNorm3d -> ReLU, with 'SAME' padding."""

    def __init__(self, cin, cout, kernel=(1, 1, 1), stride=(1, 1, 1), bn=True, bias=False, relu=True, bn_eps=1e-5,
                 bn_momentum=0.001):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
        if bn:
            self.bn = nn.BatchNorm3d(cout, eps=bn_eps, momentum=bn_momentum)

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

    def __init__(self, cin, c: tuple[int, int, int, int, int, int], bn_eps=1e-5, bn_momentum=0.001):
        super().__init__()
        u = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.b0 = Unit3D(cin, c[0], **u)
        self.b1a = Unit3D(cin, c[1], **u)
        self.b1b = Unit3D(c[1], c[2], (3, 3, 3), **u)
        self.b2a = Unit3D(cin, c[3], **u)
        self.b2b = Unit3D(c[3], c[4], (3, 3, 3), **u)
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, c[5], **u)

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)
