"""Training samples from a WebVid-style CSV with the paper's frame sampling (3.1.3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from magicvideo.data.benchmarks import read_video_csv
from magicvideo.data.video import OnError, ResizeMode, Skip, VideoReadError, read_clip_safe, read_train_clip, stable_rng


class VideoTextDataset(torch.utils.data.Dataset):
    """Caption + 16-frame clip pairs for training, one per CSV row.

    Each item samples a span ``Ls`` in ``span`` (inclusive range, capped at the video's length),
    takes ``num_frames`` frames uniformly from it and returns ``nu = num_frames / Ls * FPS``
    (:func:`magicvideo.data.video.train_indices`). The randomness of item ``i`` comes from
    ``(seed, epoch, i)`` only, so it does not depend on DataLoader workers or order.

    Items are dicts: ``video`` float32 ``(F, 3, size, size)`` in [-1, 1], ``caption`` str, ``nu``
    float, ``fps`` float, ``span`` int, ``indices`` int64 ``(F,)``, ``video_id`` str. A bad video
    (missing, unreadable, too short) is recorded in :attr:`skipped` (per worker process) and the
    next row is used instead, up to ``max_tries`` rows; ``on_error="raise"`` raises instead.

    Args:
        csv_path: the CSV (columns: see :func:`magicvideo.data.benchmarks.read_video_csv`).
        root: folder that relative video paths start from (default: the CSV's folder).
        video_dir: used for rows without a ``path`` column.
        span: ``Ls`` range ``(lo, hi)`` or a fixed ``Ls``; ``lo >= num_frames``.
        num_frames: frames per clip (16 in the paper).
        size: output side in pixels (None keeps the native size).
        resize: ``squash`` or ``short_side_crop``.
        seed: base seed of the sampling.
        on_error: ``skip`` or ``raise``.
        max_tries: rows tried per item before giving up.
    """

    def __init__(
        self,
        csv_path: str | Path,
        root: str | Path | None = None,
        video_dir: str = "videos",
        span: int | tuple[int, int] = (16, 64),
        num_frames: int = 16,
        size: int | None = None,
        resize: ResizeMode = "short_side_crop",
        seed: int = 0,
        on_error: OnError = "skip",
        max_tries: int = 10,
    ):
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise FileNotFoundError(f"training CSV not found: {csv_path}")
        self.rows = read_video_csv(csv_path, Path(root) if root else csv_path.parent, video_dir)
        self.span = tuple(span) if not isinstance(span, int) else span
        self.num_frames, self.size, self.resize = num_frames, size, resize
        self.seed, self.on_error, self.max_tries = seed, on_error, max_tries
        self.epoch = 0
        self.skipped: list[Skip] = []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        for t in range(self.max_tries):
            row = self.rows[(i + t) % len(self.rows)]
            rng = stable_rng(self.seed, f"{self.epoch}:{(i + t) % len(self.rows)}")
            clip = read_clip_safe(
                read_train_clip, row["path"], self.span, rng, num=self.num_frames, size=self.size,
                resize=self.resize, fps=row["fps"], skipped=self.skipped, item=row["videoid"], on_error=self.on_error,
            )  # fmt: skip
            if clip is not None:
                # numpy, not torch ops: no intra-op thread pool inside DataLoader workers
                video = torch.from_numpy(clip.frames.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(127.5) - 1)
                return {
                    "video": video,
                    "caption": row["name"],
                    "nu": float(clip.nu),
                    "fps": float(clip.fps),
                    "span": int(clip.span),
                    "indices": torch.from_numpy(np.asarray(clip.indices)),
                    "video_id": row["videoid"],
                }
        raise VideoReadError(self.rows[i]["path"], f"no readable video in {self.max_tries} rows from row {i}")
