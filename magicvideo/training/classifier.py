"""The shapes video classifier: Inception-I3D (Carreira & Zisserman 2017) at a fraction of its
width, with one head per shapes attribute, trained on the benchmark's labelled training clips.

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
this), so ``evaluation`` can load the trained classifier through this class, and could later take
its blocks from here instead of keeping a second copy.

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

Training (:class:`ClassifierTrainer`): mean over heads of the cross-entropy; clips are
``classifier.num_frames`` consecutive frames from a random start (the evaluation protocol reads
consecutive frames too), labels from ``train.csv``'s attribute columns.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from magicvideo.i3d_layers import InceptionBlock3D, MaxPool3dSame, Unit3D
from magicvideo.training.config import TrainConfig
from magicvideo.training.trainer import Trainer

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
    """

    @register_to_config
    def __init__(self, attributes: list[str], classes: list[list[str]], width: float = 0.25, dropout: float = 0.5,
                 bn_eps: float = 1e-3, sample_size: int = 64, num_frames: int = 16):  # fmt: skip
        super().__init__()
        if len(attributes) != len(classes):
            raise ValueError(f"{len(attributes)} attributes but {len(classes)} class lists")

        def w(c: int) -> int:
            return max(1, round(c * width))

        u = dict(bn_eps=bn_eps, bn_momentum=0.1)  # PyTorch's default: trained from scratch
        self.Conv3d_1a_7x7 = Unit3D(3, w(64), (7, 7, 7), (2, 2, 2), **u)
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
        bilinear, centre crop: the benchmark's ``short_side_crop``), ``(B, 3, T, S, S)`` in [-1, 1]."""
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


def classification_loss(model: ShapesI3D, videos: torch.Tensor, labels: torch.Tensor,
                        generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """Mean over heads of the cross-entropy; labels ``(B, heads)`` value indices. In train mode the
    features' dropout mask is drawn from `generator` (not torch's global RNG: exact resume)."""
    f = model.features(videos)
    p = model.config.dropout
    if model.training and p > 0:
        keep = torch.rand(f.shape, generator=generator, device=f.device) >= p
        f = f * keep.to(f.dtype) / (1 - p)
    heads = model.split(model.head(f))
    return sum(F.cross_entropy(h.float(), labels[:, i]) for i, h in enumerate(heads.values())) / len(heads)


# ---- data -------------------------------------------------------------------------------------


class LabelledClips(torch.utils.data.Dataset):
    """Clips of a shapes ``train.csv`` with their attribute labels: the items of a
    :class:`~magicvideo.data.VideoTextDataset` (``num_frames`` consecutive frames) plus ``labels``
    ``(len(heads),)`` int64, looked up by the item's ``video_id`` in the CSV's attribute columns."""

    def __init__(self, csv_path: str | Path, heads: dict[str, list[str]], num_frames: int = 16, size: int | None = None,
                 seed: int = 0, root: str | Path | None = None, cache: bool = False, cache_workers: int = 8):  # fmt: skip
        from magicvideo.data.training import VideoTextDataset

        self.videos = VideoTextDataset(csv_path, root=root, span=num_frames, num_frames=num_frames, size=size, seed=seed,
                                       cache=cache, cache_workers=cache_workers)  # fmt: skip
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        missing = [k for k in heads if rows and k not in rows[0]]
        if missing:
            raise ValueError(f"{csv_path}: no attribute column(s) {', '.join(missing)} (a shapes benchmark train.csv)")
        index = {k: {v: i for i, v in enumerate(values)} for k, values in heads.items()}
        self.labels = {r["videoid"].strip(): [index[k][r[k]] for k in heads] for r in rows}

    def set_epoch(self, epoch: int) -> None:
        self.videos.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict:
        item = self.videos[i]
        return {**item, "labels": torch.tensor(self.labels[item["video_id"]], dtype=torch.int64)}


def read_test_clips(root: str | Path, num_frames: int = 16, size: int | None = None, limit: int | None = None):
    """The test split of a shapes benchmark folder: ``(videos (N, 3, T, S, S) in [-1, 1], labels per
    attribute name (dict of lists of value names))``, the first ``num_frames`` frames of each clip."""
    from magicvideo.data.video import read_eval_clip

    root = Path(root)
    ann = json.loads((root / "test_videodatainfo.json").read_text())
    videos, attrs = [], {}
    for v in ann["videos"][:limit]:
        clip = read_eval_clip(root / "TestVideo" / f"{v['video_id']}.mp4", num=num_frames, size=size)
        videos.append(clip.frames.transpose(3, 0, 1, 2).astype(np.float32) / np.float32(127.5) - 1)
        for k, value in v["attributes"].items():
            attrs.setdefault(k, []).append(value)
    return torch.from_numpy(np.stack(videos)), attrs


@torch.no_grad()
def attribute_accuracy(model: ShapesI3D, videos: torch.Tensor, attributes: dict[str, list[str]],
                       batch: int = 32) -> dict[str, float]:  # fmt: skip
    """Fraction of `videos` whose predicted value equals `attributes` (names), per head."""
    was_training = model.training
    model.eval()
    try:
        preds = [model.predict(v.to(model.device, model.dtype)) for v in videos.split(batch)]
    finally:
        model.train(was_training)
    out = {}
    for k, values in model.heads.items():
        if k in attributes:
            pred = torch.cat([p[k] for p in preds]).cpu()
            truth = torch.tensor([values.index(a) for a in attributes[k]])
            out[k] = float((pred == truth).float().mean())
    return out


def chance_accuracy(heads: dict[str, list[str]]) -> dict[str, float]:
    """Accuracy of uniform guessing per head."""
    return {k: 1 / len(v) for k, v in heads.items()}


# ---- training ---------------------------------------------------------------------------------


class ClassifierTrainer(Trainer):
    """Trains a :class:`ShapesI3D` on labelled clips.

    Args:
        cfg: training config (``stage: classifier``).
        dataset: items with ``video`` ``(T, 3, H, W)`` in [-1, 1] and ``labels`` ``(heads,)``.
        model: the classifier.
        device: overrides ``cfg.device``.
    """

    model_name = "classifier"

    def __init__(self, cfg: TrainConfig, dataset, model: ShapesI3D, device: str | torch.device | None = None):
        super().__init__(cfg, device)
        self.dataset, self.model = dataset, model.to(self.device)
        self.setup()

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def loss(self, batch: dict) -> torch.Tensor:
        videos = batch["video"].to(self.device).transpose(1, 2)  # (B, T, 3, H, W) -> (B, 3, T, H, W)
        return classification_loss(self.model, videos, batch["labels"].to(self.device), self.generator)


def build_classifier_trainer(cfg: TrainConfig, dataset=None, device: str | torch.device | None = None) -> ClassifierTrainer:
    """A new :class:`ShapesI3D` (``classifier`` keys, heads from the shapes vocabulary, seeded) on
    the labelled clips of ``data.csv`` unless `dataset` is given."""
    from magicvideo.data import vocabulary

    if cfg.stage != "classifier":
        raise ValueError(f"stage: expected 'classifier', got {cfg.stage!r}")
    c = cfg.classifier
    vocab = vocabulary()
    unknown = [k for k in c.attributes if k not in vocab]
    if unknown:
        raise ValueError(f"classifier.attributes: unknown {unknown} (known: {', '.join(vocab)})")
    heads = {k: vocab[k] for k in c.attributes}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = ShapesI3D(list(heads), list(heads.values()), width=c.width, dropout=c.dropout,
                          sample_size=cfg.resolved_model().resolution, num_frames=c.num_frames)  # fmt: skip
    if dataset is None:
        if not cfg.data.csv:
            raise ValueError("data.csv: required (a shapes benchmark's train.csv)")
        dataset = LabelledClips(cfg.data.csv, heads, c.num_frames, cfg.resolved_model().resolution, cfg.data.seed,
                                root=cfg.data.root, cache=cfg.data.cache, cache_workers=max(1, cfg.data.num_workers))  # fmt: skip
    return ClassifierTrainer(cfg, dataset, model, device=device)
