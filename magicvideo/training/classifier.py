"""Training the shapes video classifier (:class:`magicvideo.models.classifier.ShapesI3D`, a
width-scaled Inception-I3D with one head per attribute) on the benchmark's labelled training clips,
and scoring it: attribute accuracy on the test split against chance.

Training (:class:`ClassifierTrainer`): mean over heads of the cross-entropy; clips are
``classifier.num_frames`` frames from a random start, consecutive (``classifier.fps: null``) or at
``classifier.fps`` frames per second (every clip then spans ``num_frames / fps`` seconds whatever
its file's rate, as the shapes benchmark protocol's ``fps`` reads the reference clips and as
generated clips are), labels from ``train.csv``'s attribute columns.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from magicvideo.models.classifier import ShapesI3D
from magicvideo.training.config import TrainConfig
from magicvideo.training.trainer import Trainer


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
    :class:`~magicvideo.data.VideoTextDataset` plus ``labels`` ``(len(heads),)`` int64, looked up by
    the item's ``video_id`` in the CSV's attribute columns. ``fps=None``: ``num_frames`` consecutive
    frames; ``fps``: a span of ``round(num_frames * clip_fps / fps)`` frames (``clip_fps`` from the
    CSV's ``fps`` column) sampled uniformly (:func:`~magicvideo.data.video.train_indices`)."""

    def __init__(self, csv_path: str | Path, heads: dict[str, list[str]], num_frames: int = 16, size: int | None = None,
                 seed: int = 0, root: str | Path | None = None, cache: bool = False, cache_workers: int = 8,
                 fps: float | None = None):  # fmt: skip
        from magicvideo.data.training import VideoTextDataset

        self.videos = VideoTextDataset(csv_path, root=root, span=num_frames, num_frames=num_frames, size=size, seed=seed,
                                       cache=cache, cache_workers=cache_workers, fps=fps)  # fmt: skip
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


def read_test_clips(root: str | Path, num_frames: int = 16, size: int | None = None, limit: int | None = None,
                    fps: float | None = None):  # fmt: skip
    """The test split of a shapes benchmark folder: ``(videos (N, 3, T, S, S) in [-1, 1], labels per
    attribute name (dict of lists of value names))``, the first ``num_frames`` frames of each clip:
    consecutive, or at ``fps`` frames per second (a classifier's ``config.fps``; the clip's rate from
    the annotations), as the benchmark protocol reads them."""
    from magicvideo.data.video import read_eval_clip

    root = Path(root)
    ann = json.loads((root / "test_videodatainfo.json").read_text())
    videos, attrs = [], {}
    for v in ann["videos"][:limit]:
        clip = read_eval_clip(root / "TestVideo" / f"{v['video_id']}.mp4", num=num_frames, size=size, fps=fps,
                              source_fps=(v.get("params") or {}).get("fps"))  # fmt: skip
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
                          sample_size=cfg.resolved_model().resolution, num_frames=c.num_frames, input=c.input,
                          fps=c.fps)  # fmt: skip
    if dataset is None:
        if not cfg.data.csv:
            raise ValueError("data.csv: required (a shapes benchmark's train.csv)")
        dataset = LabelledClips(cfg.data.csv, heads, c.num_frames, cfg.resolved_model().resolution, cfg.data.seed,
                                root=cfg.data.root, cache=cfg.data.cache, cache_workers=max(1, cfg.data.num_workers),
                                fps=c.fps)  # fmt: skip
    return ClassifierTrainer(cfg, dataset, model, device=device)
