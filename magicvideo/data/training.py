"""Training samples from a WebVid-style CSV with the paper's frame sampling (3.1.3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from magicvideo.data.benchmarks import read_video_csv
from magicvideo.data.video import (Clip, OnError, ResizeMode, Skip, VideoReadError, probe_video, read_clip_safe,
                                   read_train_clip, read_whole_video, sample_train_clip, stable_rng)  # fmt: skip


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
        cache: decode every video once, whole, at construction and keep its (resized) uint8 frames
            in memory; items then index those arrays instead of opening the file. For small
            datasets that are read for many epochs (the shapes benchmark: ~1 GB for 2,000 clips):
            the decoding, not the model, bounds a small model's training otherwise (70-250 ms a
            step on an H100, 2026-11-23). Same items as without it; bad videos are found (and
            recorded in :attr:`skipped`) up front.
        cache_workers: threads decoding the cache (decord releases the GIL while it decodes).
        fps: sample every clip at this frame rate instead of drawing its span from ``span``: the span
            of a video at ``FPS`` frames per second is ``round(num_frames * FPS / fps)`` (its rate from
            the CSV's ``fps`` column, else the file's), so ``nu = fps`` up to rounding and every clip
            covers ``num_frames / fps`` seconds. A video slower than ``fps`` is skipped (``too slow``).
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
        cache: bool = False,
        cache_workers: int = 8,
        fps: float | None = None,
    ):
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise FileNotFoundError(f"training CSV not found: {csv_path}")
        self.rows = read_video_csv(csv_path, Path(root) if root else csv_path.parent, video_dir)
        self.span = tuple(span) if not isinstance(span, int) else span
        self.num_frames, self.size, self.resize = num_frames, size, resize
        self.seed, self.on_error, self.max_tries = seed, on_error, max_tries
        self.fps = float(fps) if fps is not None else None
        self.epoch = 0
        self.skipped: list[Skip] = []
        self.cached: list[tuple[np.ndarray, float] | None] | None = None
        if cache:
            self.cached = self._decode_all(cache_workers)

    def _decode_all(self, workers: int) -> list[tuple[np.ndarray, float] | None]:
        from concurrent.futures import ThreadPoolExecutor

        def one(row: dict) -> tuple[np.ndarray, float] | None:
            whole = read_clip_safe(read_whole_video, row["path"], size=self.size, resize=self.resize,
                                   skipped=self.skipped, item=row["videoid"], on_error=self.on_error)  # fmt: skip
            if whole is None:
                return None
            return whole[0], float(row["fps"]) if row["fps"] else whole[1]

        with ThreadPoolExecutor(max(1, workers)) as pool:
            return list(pool.map(one, self.rows))

    def span_at(self, rate: float, path: str | Path = "") -> int | tuple[int, int]:
        """The span of a video at ``rate`` fps: ``span``, or with ``fps`` ``round(num_frames * rate / fps)``."""
        if self.fps is None:
            return self.span
        if not rate or rate < self.fps:
            raise VideoReadError(path, f"too slow ({rate:g} fps, sampling at {self.fps:g} fps)")
        return int(round(self.num_frames * rate / self.fps))  # >= num_frames: rate >= fps

    def _read_file(self, row: dict, rng: np.random.Generator) -> Clip:
        span = self.span
        if self.fps is not None:
            span = self.span_at(row["fps"] or probe_video(row["path"])[1], row["path"])
        return read_train_clip(row["path"], span, rng, num=self.num_frames, size=self.size, resize=self.resize,
                               fps=row["fps"])  # fmt: skip

    def _read(self, index: int, rng: np.random.Generator) -> Clip | None:
        row = self.rows[index]
        if self.cached is None:
            return read_clip_safe(self._read_file, row, rng, skipped=self.skipped, item=row["videoid"],
                                  on_error=self.on_error)  # fmt: skip
        if self.cached[index] is None:
            return None  # recorded in `skipped` when the cache was built
        frames, rate = self.cached[index]
        span = read_clip_safe(self.span_at, rate, row["path"], skipped=self.skipped, item=row["videoid"],
                              on_error=self.on_error)  # fmt: skip
        if span is None:
            return None
        return read_clip_safe(sample_train_clip, frames, rate, span, rng, self.num_frames, row["path"],
                              skipped=self.skipped, item=row["videoid"], on_error=self.on_error)  # fmt: skip

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        for t in range(self.max_tries):
            index = (i + t) % len(self.rows)
            row = self.rows[index]
            clip = self._read(index, stable_rng(self.seed, f"{self.epoch}:{index}"))
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
