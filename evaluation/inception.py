"""Inception-v3 pool3 features (2048-d) for FID, native torch, pytorch-fid / torch-fidelity layout.

Loads ``pt_inception-2015-12-05-6726825d.pth`` (the TF graph ``inception-2015-12-05`` of the
original FID, converted by pytorch-fid; torch-fidelity ships the same file) with strict key matching:
``Conv2d_1a_3x3.conv.weight``, ``Mixed_7c.branch3x3dbl_3b.bn.running_var``, ``fc.weight`` [1008, 2048].

The FID graph differs from torchvision's Inception-v3 (pytorch-fid's ``FIDInception*`` patches):
average pools in the A/C/E blocks exclude the zero padding (``count_include_pad=False``), and the
last E block (Mixed_7c) pools with max instead of average. Batch norm eps is 1e-3.

Input conventions (``InceptionV3FID(convention=...)``):
- ``"torch-fidelity"`` (default; torchmetrics' built-in extractor with ``antialias=False``, and the
  original TF FID): uint8 -> float, TF1 bilinear resize to 299 (``align_corners=False`` in TF1 means
  source = dest * in/out, no half-pixel offset, no antialias), then ``(x - 128) / 128``.
- ``"pytorch-fid"``: ``x / 255``, ``F.interpolate(bilinear, align_corners=False, antialias=False)``
  (half-pixel centres) to 299, then ``2 x - 1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# One definition of the TF1 resize for FID and FVD (re-exported here for callers of this module).
from .preprocess import resize_bilinear_tf1  # noqa: F401
from evaluation.weights import load_state_dict

INPUT_SIZE = 299
CONVENTIONS = ("torch-fidelity", "pytorch-fid")


class BasicConv2d(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d(eps=1e-3) -> ReLU."""

    def __init__(self, cin, cout, **conv):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **conv)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg3(x):
    # TF's average pool ignores the padded zeros (pytorch-fid's FIDInception patch)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """Mixed_5b/5c/5d: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, c, self.branch_pool(_avg3(x))], 1)


class InceptionB(nn.Module):
    """Mixed_6a (grid reduction 35 -> 17): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """Mixed_6b..6e: factorised 7x7 convolutions."""

    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = layer(c)
        return torch.cat([a, b, c, self.branch_pool(_avg3(x))], 1)


class InceptionD(nn.Module):
    """Mixed_7a (grid reduction 17 -> 8)."""

    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([a, b, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """Mixed_7b (average pool) and Mixed_7c (max pool, as the FID graph has it)."""

    def __init__(self, cin, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        p = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([a, b, c, self.branch_pool(p)], 1)


class InceptionV3FID(nn.Module):
    """FID Inception-v3: uint8 images ``[N, 3, H, W]`` -> pool3 features ``[N, 2048]`` (float32).

    Args:
        convention: ``"torch-fidelity"`` (TF1 resize, ``(x-128)/128``; default) or ``"pytorch-fid"``.
    """

    num_features = 2048  # read by torchmetrics' FrechetInceptionDistance(feature=module)

    def __init__(self, convention: str = "torch-fidelity"):
        super().__init__()
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be 'torch-fidelity' or 'pytorch-fid', got {convention!r}")
        self.convention = convention
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)  # unused for FID; in the checkpoint, so kept for strict loading

    def normalize(self, images: torch.Tensor, convention: str | None = None) -> torch.Tensor:
        """uint8 ``[N, 3, H, W]`` -> float ``[N, 3, 299, 299]`` in the network's input range, prepared by
        ``convention`` (default the model's own)."""
        convention = convention or self.convention
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        dtype = self.Conv2d_1a_3x3.conv.weight.dtype
        x = images.to(dtype if dtype in (torch.float32, torch.float64) else torch.float32)
        if convention == "torch-fidelity":
            return (resize_bilinear_tf1(x, INPUT_SIZE) - 128) / 128
        if convention != "pytorch-fid":
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
        x = F.interpolate(x / 255, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=False)
        return 2 * x - 1

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pool3 features of normalized input ``[N, 3, 299, 299]``."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3))  # adaptive average pool to 1x1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalize(images)
        return self.features(x.to(self.Conv2d_1a_3x3.conv.weight.dtype)).float()


def load_inception(path, device="cpu", convention: str = "torch-fidelity") -> InceptionV3FID:
    """``InceptionV3FID`` with ``pt_inception-2015-12-05`` loaded strictly (``weights_only=True``)."""
    state = load_state_dict(path)
    model = InceptionV3FID(convention)
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False).to(device)
