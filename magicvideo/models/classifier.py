"""The shapes video classifier: Inception-I3D (Carreira & Zisserman 2017) at a fraction of its
width, with one head per shapes attribute. Trained by :mod:`magicvideo.training.classifier` on the
benchmark's labelled training clips.

Its two uses on the shapes benchmark: the pooled features (:meth:`ShapesI3D.features`) are this
domain's FVD feature extractor (Kinetics-trained I3D has never seen flat synthetic shapes and
cannot be downloaded here), and the heads (:meth:`ShapesI3D.predict`) score whether a generated
clip shows the shape, colour and motion its prompt asked for (attribute accuracy).

Why the model is defined here and not taken from ``evaluation/i3d.py``: dependencies point one
way, ``flows -> evaluation -> magicvideo`` (DESIGN.md), and ``magicvideo train shapes`` trains the
classifier with the rest of the chain, so this module may not import ``evaluation``. It keeps
pytorch-i3d's layout and parameter names (``Conv3d_1a_7x7.conv3d.weight``,
``Mixed_3b.b1b.bn.running_var``, ``logits.conv3d.bias``, ...): at ``width=1`` with one 400-way head
its state dict has exactly the keys and shapes of ``evaluation.i3d.InceptionI3d`` (a test checks
this), so ``evaluation`` loads the trained classifier through this class; both take their blocks
from :mod:`magicvideo.i3d_layers`.

Differences from the Kinetics I3D, all for a 64x64, 16-frame, from-scratch domain:
- every channel count is ``max(1, round(c * width))`` (width 0.25: ~0.8 M parameters, ~3 MB);
- global average pooling over (T, H, W) instead of ``AvgPool3d([2, 7, 7])`` + a time mean, so any
  frame size works (64x64 frames end at 2x2 after the five stride-2 stages);
- batch-norm momentum 0.1 (PyTorch's default; pytorch-i3d's 0.001 only suits fine-tuning) and
  eps 1e-3 (pytorch-i3d's);
- the 1x1x1 ``logits`` conv outputs the concatenated logits of all heads.
Input: ``(B, 3, T, H, W)`` in [-1, 1], T >= 10 as for the FVD I3D; :meth:`ShapesI3D.prepare` turns
uint8 clips into the frames and size the classifier was trained on (an evaluation extractor's
preprocessing).

Motion (``input: rgb_diff``): an RGB-only I3D trained from scratch learns the easy appearance heads
long before motion (the committed width-0.25 classifier read motion at 0.25, chance 0.125). With
``rgb_diff`` the first conv also sees the temporal difference ``x[t+1] - x[t]`` (times
``DIFF_SCALE``; zero for the last frame), computed inside :meth:`ShapesI3D.features`, so callers
still pass RGB clips. ``fps`` records the frame rate the clips were read at in training (the
shapes benchmark protocol's ``fps``); speed is per second, so clips must come at that rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from magicvideo.i3d_layers import InceptionBlock3D, MaxPool3dSame, Unit3D

INPUTS = ("rgb", "rgb_diff")
#: the frame differences' factor in ``rgb_diff`` (a moving edge's difference is sparse and small next to RGB)
DIFF_SCALE = 4.0
#: shapes attributes that flips and transposes of the frame leave unchanged (:meth:`ShapesI3D.predict_dihedral`)
DIHEDRAL_INVARIANT = ("shape", "color", "background", "speed")

# ---- the architecture (pytorch-i3d names) ----------------------------------------------------


# branch channels of the Inception blocks (I3D paper / pytorch-i3d), at width 1
_BLOCKS = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
_STAGES = (
    "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3", "Mixed_3b",
    "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f",
    "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c",
)  # fmt: skip


class ShapesI3D(ModelMixin, ConfigMixin):
    """Width-scaled Inception-I3D with one classification head per attribute.

    Args:
        attributes: head names, in the order of the concatenated logits.
        classes: per head, its values in label-index order (``magicvideo.data.vocabulary()[name]``).
            Two lists, not a dict: diffusers writes ``config.json`` with sorted keys, which would
            reorder a dict's heads on reload.
        width: channel multiplier of every layer (1.0: the Kinetics I3D's widths).
        dropout: dropout before the heads (training only).
        bn_eps: batch-norm epsilon.
        sample_size: frame side it was trained on; :meth:`prepare` resizes to it.
        num_frames: frames per clip it was trained on; :meth:`prepare` keeps the first ones.
        input: ``rgb`` (3 input channels, pytorch-i3d's layout) or ``rgb_diff`` (``Conv3d_1a_7x7``
            takes 6: RGB and ``DIFF_SCALE`` x the difference to the next frame).
        fps: frame rate of its training clips (None: consecutive frames of each file, whatever its
            rate); clips to classify must come at this rate (the benchmark protocol's ``fps``).
    """

    @register_to_config
    def __init__(self, attributes: list[str], classes: list[list[str]], width: float = 0.25, dropout: float = 0.5,
                 bn_eps: float = 1e-3, sample_size: int = 64, num_frames: int = 16, input: str = "rgb",
                 fps: float | None = None):  # fmt: skip
        super().__init__()
        if len(attributes) != len(classes):
            raise ValueError(f"{len(attributes)} attributes but {len(classes)} class lists")
        if input not in INPUTS:
            raise ValueError(f"input must be one of {', '.join(INPUTS)}, got {input!r}")
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be > 0 or None, got {fps}")

        def w(c: int) -> int:
            return max(1, round(c * width))

        u = dict(bn_eps=bn_eps, bn_momentum=0.1)  # PyTorch's default: trained from scratch
        self.Conv3d_1a_7x7 = Unit3D(3 if input == "rgb" else 6, w(64), (7, 7, 7), (2, 2, 2), **u)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(w(64), w(64), **u)
        self.Conv3d_2c_3x3 = Unit3D(w(64), w(192), (3, 3, 3), **u)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        cin = w(192)
        for name in _STAGES[5:]:
            if name.startswith("MaxPool3d_4a"):
                self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            elif name.startswith("MaxPool3d_5a"):
                self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            else:
                c = tuple(w(x) for x in _BLOCKS[name])
                setattr(self, name, InceptionBlock3D(cin, c, **u))
                cin = c[0] + c[2] + c[4] + c[5]
        self.feature_dim = cin
        self.head_dropout = nn.Dropout(dropout)  # pytorch-i3d: .dropout (a config key here)
        self.sizes = [len(c) for c in classes]
        self.logits = Unit3D(cin, sum(self.sizes), bn=False, bias=True, relu=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, feature_dim)`` of videos ``(B, 3, T, H, W)`` in [-1, 1] (the FVD features)."""
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"expected videos (B, 3, T, H, W), got {tuple(x.shape)}")
        if x.shape[2] < 10:
            raise ValueError(f"I3D needs at least 10 frames, got {x.shape[2]}")
        if self.config.input == "rgb_diff":
            diff = F.pad(x[:, :, 1:] - x[:, :, :-1], (0, 0, 0, 0, 0, 1))  # x[t+1] - x[t]; the last frame's is 0
            x = torch.cat([x, DIFF_SCALE * diff], dim=1)
        for name in _STAGES:
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3, 4))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features -> concatenated logits of all heads ``(B, sum of head sizes)``."""
        return self.logits(features[:, :, None, None, None])[:, :, 0, 0, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated logits of all heads ``(B, sum of head sizes)`` (dropout in train mode)."""
        return self.head(self.head_dropout(self.features(x)))

    def prepare(self, videos) -> torch.Tensor:
        """uint8 videos ``(B, T, H, W, 3)`` (numpy or torch) -> the input this model was trained on:
        the first ``num_frames`` frames, resized to ``sample_size`` (shorter side, antialiased
        bilinear, centre crop: the benchmark's ``short_side_crop``), ``(B, 3, T, S, S)`` in [-1, 1].
        The clips must already be at ``config.fps`` (when set): frames are not resampled here."""
        x = torch.as_tensor(videos)
        if x.ndim != 5 or x.shape[-1] != 3:
            raise ValueError(f"expected uint8 videos (B, T, H, W, 3), got {tuple(x.shape)}")
        n = self.config.num_frames
        if x.shape[1] < n:
            raise ValueError(f"need at least {n} frames, got {x.shape[1]}")
        b, _, h, w, _ = x.shape
        x = x[:, :n].permute(0, 1, 4, 2, 3).reshape(b * n, 3, h, w).float().to(self.device)
        side = self.config.sample_size
        if (h, w) != (side, side):
            scale = side / min(h, w)
            nh, nw = max(side, round(h * scale)), max(side, round(w * scale))
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
            top, left = (nh - side) // 2, (nw - side) // 2
            x = x[..., top : top + side, left : left + side]
        x = x / 127.5 - 1
        return x.reshape(b, n, 3, side, side).transpose(1, 2).to(self.dtype)

    @property
    def heads(self) -> dict[str, list[str]]:
        """Attribute -> its values, in head order."""
        return dict(zip(self.config.attributes, self.config.classes))

    def split(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Concatenated logits -> attribute -> ``(B, values)``."""
        return dict(zip(self.config.attributes, logits.split(self.sizes, dim=1)))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Attribute -> predicted value index ``(B,)`` (eval mode is the caller's business)."""
        return {k: v.argmax(1) for k, v in self.split(self(x)).items()}

    @torch.no_grad()
    def predict_dihedral(self, x: torch.Tensor, attributes=DIHEDRAL_INVARIANT) -> dict[str, torch.Tensor]:
        """Test-time augmentation over the 8 symmetries of the square frame: attribute -> the index
        of the largest mean softmax over the 8 views (:meth:`proba_dihedral`) ``(B,)``."""
        return {k: v.argmax(1) for k, v in self.proba_dihedral(x, attributes).items()}

    @torch.no_grad()
    def proba_dihedral(self, x: torch.Tensor, attributes=DIHEDRAL_INVARIANT) -> dict[str, torch.Tensor]:
        """Attribute -> the mean softmax ``(B, values)`` over the 8 flips and transposes of every frame
        (:func:`dihedral_views`, time order kept), for attributes those symmetries leave unchanged (a
        flipped triangle is a triangle of the same colour on the same background, at the same speed; a
        leftward motion becomes rightward, so ``motion`` is not among them). One clip read 8 times rests
        less on where and at what angle its object happens to be: on real shapes windows the committed
        classifier's shape accuracy goes from 0.91 to 0.97 (BENCHMARKS.md, "The drift reader"). It is
        the long-video drift benchmark's reader; FVD and attribute accuracy keep :meth:`predict` (their
        protocol), so no table measured with it changes."""
        if x.ndim != 5:
            raise ValueError(f"expected videos (B, 3, T, H, W), got {tuple(x.shape)}")
        unknown = set(attributes) - set(DIHEDRAL_INVARIANT)
        if unknown:
            raise ValueError(f"{sorted(unknown)} change under flips; dihedral reading covers {list(DIHEDRAL_INVARIANT)}")
        probs = {}
        for view in dihedral_views(x):
            for k, v in self.split(self(view)).items():
                if k in attributes:
                    probs[k] = probs.get(k, 0) + v.float().softmax(1) / 8
        return probs


def dihedral_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 images of videos ``(..., H, W)`` under the symmetries of the square (the identity first)."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"dihedral views need square frames, got {tuple(x.shape[-2:])}")
    t = x.transpose(-1, -2)
    return [x, x.flip(-1), x.flip(-2), x.flip(-1, -2), t, t.flip(-1), t.flip(-2), t.flip(-1, -2)]
