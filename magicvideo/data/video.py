"""Reading clips from video files with decord: frame sampling, resizing, and bad-file handling.

Where decord is not installed (no wheel for the platform), the same reads go through OpenCV's
bundled FFmpeg (:class:`OpenCVReader`); ``MAGICVIDEO_VIDEO_READER=opencv`` forces it.

Two samplers, both pure functions of (frame count, parameters, seed) so they can be tested by hand:

- :func:`train_indices` -- MagicVideo's training sampler (paper 3.1.3): take a span of ``Ls``
  successive frames, then ``num`` frames uniformly from it, and report the new frame rate
  ``nu = num / Ls * FPS``. "Uniformly" is ``start + floor(i * Ls / num)`` for ``i = 0..num-1``:
  the sampled frames are exactly ``Ls / num`` source frames apart on average, so the clip's true
  rate is ``FPS * num / Ls = nu`` (a ``linspace(0, Ls - 1, num)`` grid would be ``(Ls-1)/(num-1)``
  apart and disagree with ``nu``).
- :func:`eval_indices` -- ``num`` consecutive frames from the first frame, the centre
  (``(n - num) // 2``) or a seeded random start. The random start is drawn from a generator
  seeded by ``(seed, key)`` (key = the video id), so it does not depend on iteration order.
  With a wanted frame rate (:func:`read_eval_clip`'s ``fps``, a benchmark protocol's ``fps``) the
  frames are taken at times ``k / fps`` instead: source index ``round(k * native_fps / fps)``
  from the start (:func:`resampled_offsets`), so every clip spans the same seconds.

Resizing (:func:`resize_frames`) is done in torch with ``F.interpolate(mode="bilinear",
antialias=True, align_corners=False)`` directly on the uint8 frames in channels-last layout (torch's
uint8 antialias kernel, the one torchvision's ``Resize(antialias=True)`` runs on uint8 tensors;
within 1 grey level of the float path and ~10x faster on the CPU):

- ``squash``: straight to ``size x size``, aspect ratio not kept;
- ``short_side_crop``: the shorter side scaled to ``size`` (longer side rounded to the nearest
  pixel), then a centre crop of ``size x size`` (offset ``(long - size) // 2``).

Bad files never stop a long run unless asked: :func:`read_clip_safe` returns ``None`` and appends
a :class:`Skip` (item, path, reason) when a file is missing, cannot be opened/decoded, or has
fewer frames than the sampler needs; ``on_error="raise"`` raises :class:`VideoReadError` instead.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

StartMode = Literal["first", "centre", "random"]
ResizeMode = Literal["squash", "short_side_crop"]
OnError = Literal["skip", "raise"]


class VideoReadError(ValueError):
    """A video that is missing, cannot be decoded, or is too short for the requested clip."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Skip:
    """One item left out of a run, and why."""

    item: str  # video id, prompt id or file name
    reason: str  # short, groupable: "missing file", "unreadable", "too short", ...
    path: str | None = None
    detail: str = ""  # the underlying message, for the log


@dataclass
class Clip:
    """Frames sampled from one video.

    ``frames`` is uint8 ``(F, H, W, 3)`` RGB; ``indices`` the source frame numbers; ``fps`` the
    source's average frame rate; ``nu`` the sampled clip's own rate (``F / Ls * fps``, equal to
    ``fps`` for consecutive frames).
    """

    frames: np.ndarray
    indices: np.ndarray
    fps: float
    nu: float
    span: int
    video_id: str = ""
    path: str = ""
    meta: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Samplers


def stable_rng(seed: int, key: str = "") -> np.random.Generator:
    """A generator seeded by ``seed`` and a string key (sha256), independent of call order."""
    digest = hashlib.sha256(f"{int(seed)}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def train_indices(
    num_frames: int, fps: float, span: int | tuple[int, int], rng: np.random.Generator, num: int = 16
) -> tuple[np.ndarray, float, int]:
    """Paper 3.1.3: a span of ``Ls`` successive frames, ``num`` taken uniformly, ``nu = num/Ls*FPS``.

    ``span`` is a fixed ``Ls`` or an inclusive range ``(lo, hi)`` from which ``Ls`` is drawn
    uniformly, capped at the video length. Returns ``(indices, nu, Ls)``. Raises
    :class:`ValueError` when the video has fewer than ``num`` frames or ``Ls < num``.
    """
    lo, hi = (span, span) if isinstance(span, int) else span
    if lo < num or hi < lo:
        raise ValueError(f"span must satisfy {num} <= lo <= hi, got {span}")
    if num_frames < lo:
        raise ValueError(f"too short: {num_frames} frames, the span needs at least {lo}")
    hi = min(hi, num_frames)
    ls = int(rng.integers(lo, hi + 1))
    start = int(rng.integers(0, num_frames - ls + 1))
    indices = start + (np.arange(num) * ls) // num
    return indices.astype(np.int64), num / ls * float(fps), ls


def resampled_offsets(num: int, step: float = 1.0) -> np.ndarray:
    """Offsets from the clip's start of ``num`` frames taken every ``step`` source frames:
    ``floor(k * step + 0.5)`` for ``k = 0..num-1`` (``k * step`` rounded half up; ``step`` = source fps
    / wanted fps). ``step = 1``: consecutive frames. Products are rounded to 9 decimals first, so
    float noise in ``step`` does not move a frame across a half."""
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    return np.floor(np.round(np.arange(num) * float(step), 9) + 0.5).astype(np.int64)


def eval_indices(
    num_frames: int, num: int = 16, start: StartMode = "first", seed: int = 0, key: str = "", step: float = 1.0
) -> np.ndarray:
    """``num`` frames from the first frame, the centre, or a seeded random start: consecutive, or
    one every ``step`` source frames (:func:`resampled_offsets`; ``step = native fps / wanted fps``).
    The window the frames cover (``last offset + 1`` source frames) is what is placed."""
    offsets = resampled_offsets(num, step)
    need = int(offsets[-1]) + 1 if num else 0
    if num_frames < need:
        raise ValueError(f"too short: {num_frames} frames, need {need}")
    if start == "first":
        s = 0
    elif start == "centre":
        s = (num_frames - need) // 2
    elif start == "random":
        s = int(stable_rng(seed, key).integers(0, num_frames - need + 1))
    else:
        raise ValueError(f"start must be first, centre or random, got {start!r}")
    return s + offsets


# ----------------------------------------------------------------------------------------------
# Resizing


def resize_frames(frames: np.ndarray, size: int | None, mode: ResizeMode = "short_side_crop") -> np.ndarray:
    """Resize uint8 ``(F, H, W, 3)`` frames to ``size x size`` (see the module docstring)."""
    if size is None:
        return frames
    f, h, w, _ = frames.shape
    if mode == "squash":
        out_h, out_w = size, size
    elif mode == "short_side_crop":
        scale = size / min(h, w)
        out_h, out_w = max(size, round(h * scale)), max(size, round(w * scale))
    else:
        raise ValueError(f"resize mode must be squash or short_side_crop, got {mode!r}")
    if (out_h, out_w) != (h, w):
        import torch
        import torch.nn.functional as F

        # (F, H, W, 3) viewed as channels-last NCHW: torch's uint8 antialiased bilinear kernel
        x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.uint8)).permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", antialias=True, align_corners=False)
        frames = x.permute(0, 2, 3, 1).numpy()
    top, left = (out_h - size) // 2, (out_w - size) // 2
    return np.ascontiguousarray(frames[:, top : top + size, left : left + size])


# ----------------------------------------------------------------------------------------------
# Reading


def open_video(path: str | Path):
    """A decord ``VideoReader`` on the CPU (one thread), or an :class:`OpenCVReader` where decord
    is not installed; :class:`VideoReadError` if it fails."""
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(path, "missing file")
    try:
        if os.environ.get("MAGICVIDEO_VIDEO_READER", "decord") == "opencv" or not _has_decord():
            vr = OpenCVReader(path)
        else:
            import decord

            vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except ImportError:
        raise
    except Exception as exc:  # decord raises DECORDError/RuntimeError with ffmpeg's message
        raise VideoReadError(path, f"unreadable ({_first_line(exc)})") from None
    if len(vr) == 0:
        raise VideoReadError(path, "unreadable (no frames)")
    return vr


def _has_decord() -> bool:
    import importlib.util

    return importlib.util.find_spec("decord") is not None


class OpenCVReader:
    """The part of decord's ``VideoReader`` this module uses (``len``, ``get_avg_fps``,
    ``get_batch``), over OpenCV's ``VideoCapture``: for machines with OpenCV but no decord wheel.

    Written here because neither library offers the other's interface. Frames are decoded in
    order from the start (OpenCV's seeking is not frame-exact) up to the last index asked for; on
    the shapes benchmark's H.264 files they equal decord's bit for bit (tests/test_data_video.py).
    The frame count is the container's, as decord's is."""

    def __init__(self, path: str | Path):
        try:
            import cv2
        except ImportError:
            raise ImportError("reading videos needs decord or OpenCV: pip install decord (or opencv-python-headless)") from None
        self._cv2, self.path = cv2, str(path)
        cap = cv2.VideoCapture(self.path)
        try:
            if not cap.isOpened():
                raise RuntimeError("OpenCV cannot open it")
            self._n, self._fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(cap.get(cv2.CAP_PROP_FPS))
        finally:
            cap.release()

    def __len__(self) -> int:
        return self._n

    def get_avg_fps(self) -> float:
        return self._fps

    def get_batch(self, indices) -> np.ndarray:
        """uint8 ``(len(indices), H, W, 3)`` RGB frames."""
        want = [int(i) for i in indices]
        if not want:
            raise RuntimeError("no frames requested")
        cap, got, wanted = self._cv2.VideoCapture(self.path), {}, set(want)
        try:
            for i in range(max(want) + 1):
                ok, bgr = cap.read()
                if not ok:
                    raise RuntimeError(f"frame {i} could not be decoded")
                if i in wanted:
                    got[i] = self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        return np.stack([got[i] for i in want])


def probe_video(path: str | Path) -> tuple[int, float]:
    """``(frame count, average fps)`` of a video, or :class:`VideoReadError`."""
    vr = open_video(path)
    return len(vr), float(vr.get_avg_fps())


def read_frames(vr, indices: np.ndarray, path: str | Path) -> np.ndarray:
    try:
        batch = vr.get_batch([int(i) for i in indices])
        return batch if isinstance(batch, np.ndarray) else batch.asnumpy()
    except Exception as exc:
        raise VideoReadError(path, f"unreadable (decoding failed: {_first_line(exc)})") from None


def read_eval_clip(
    path: str | Path,
    num: int = 16,
    start: StartMode = "first",
    size: int | None = None,
    resize: ResizeMode = "short_side_crop",
    seed: int = 0,
    key: str = "",
    fps: float | None = None,
    source_fps: float | None = None,
) -> Clip:
    """``num`` frames (see :func:`eval_indices`), resized; raises :class:`VideoReadError`.

    ``fps=None``: consecutive frames. ``fps`` given: the frames at times ``k / fps`` from the start,
    i.e. source indices ``round(k * native / fps)`` (:func:`resampled_offsets`), so a clip spans
    ``num / fps`` seconds whatever the file's rate; the clip's ``nu`` is then ``fps``. ``native`` is
    ``source_fps`` when given (annotations), else the file's average rate. A rate above the native
    one repeats frames."""
    vr = open_video(path)
    n, native = len(vr), float(source_fps or vr.get_avg_fps())
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if fps is not None and not native > 0:
        raise VideoReadError(path, "unreadable (no frame rate in its metadata, needed to resample it)")
    step = 1.0 if fps is None else native / float(fps)
    need = int(resampled_offsets(num, step)[-1]) + 1 if num else 0
    if n < need:
        at = f" for {num} frames at {float(fps):g} fps from {native:g} fps" if fps is not None else ""
        raise VideoReadError(path, f"too short ({n} frames, need {need}{at})")
    idx = eval_indices(n, num, start, seed, key or Path(path).stem, step=step)
    frames = resize_frames(read_frames(vr, idx, path), size, resize)
    return Clip(frames, idx, native, float(fps) if fps is not None else native, need, key or Path(path).stem, str(path))


def read_train_clip(
    path: str | Path,
    span: int | tuple[int, int],
    rng: np.random.Generator,
    num: int = 16,
    size: int | None = None,
    resize: ResizeMode = "short_side_crop",
    fps: float | None = None,
) -> Clip:
    """Paper 3.1.3 sampling (see :func:`train_indices`); ``fps`` overrides the file's metadata."""
    vr = open_video(path)
    n = len(vr)
    rate = float(fps) if fps else float(vr.get_avg_fps())
    _check_span(n, span, path)
    idx, nu, ls = train_indices(n, rate, span, rng, num)
    frames = resize_frames(read_frames(vr, idx, path), size, resize)
    return Clip(frames, idx, rate, nu, ls, Path(path).stem, str(path))


def _check_span(n: int, span: int | tuple[int, int], path: str | Path) -> None:
    lo = span if isinstance(span, int) else span[0]
    if n < lo:
        raise VideoReadError(path, f"too short ({n} frames, the span needs {lo})")


def read_whole_video(path: str | Path, size: int | None = None, resize: ResizeMode = "short_side_crop") -> tuple[np.ndarray, float]:
    """Every frame, decoded in order and resized: ``(uint8 (N, S, S, 3), average fps)``.

    Sequential decoding of the whole file also avoids decord's seek-dependent frame differences
    (dmlc/decord#195): a cached video gives the same pixels in every process."""
    vr = open_video(path)
    frames = resize_frames(read_frames(vr, np.arange(len(vr)), path), size, resize)
    return frames, float(vr.get_avg_fps())


def sample_train_clip(frames: np.ndarray, fps: float, span: int | tuple[int, int], rng: np.random.Generator,
                      num: int = 16, path: str | Path = "") -> Clip:  # fmt: skip
    """:func:`read_train_clip` on frames already decoded and resized (:func:`read_whole_video`):
    the same indices for the same `rng`."""
    _check_span(len(frames), span, path)
    idx, nu, ls = train_indices(len(frames), fps, span, rng, num)
    return Clip(np.ascontiguousarray(frames[idx]), idx, fps, nu, ls, Path(path).stem, str(path))


def read_clip_safe(reader, *args, skipped: list[Skip], item: str = "", on_error: OnError = "skip", **kwargs):
    """Call ``reader(*args, **kwargs)``; on :class:`VideoReadError` record a :class:`Skip` and
    return ``None``, or re-raise when ``on_error="raise"``."""
    try:
        return reader(*args, **kwargs)
    except VideoReadError as exc:
        if on_error == "raise":
            raise
        skipped.append(Skip(item or Path(exc.path).stem, skip_reason(exc.reason), exc.path, exc.reason))
        return None


def skip_reason(reason: str) -> str:
    """The groupable head of a reason: 'too short (3 frames, ...)' -> 'too short'."""
    return reason.split(" (", 1)[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def clip_seconds(num_frames: int, fps: float) -> float:
    return num_frames / fps if fps > 0 else math.nan
