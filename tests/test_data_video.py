"""Frame sampling (paper 3.1.3), evaluation starts, resizing, and bad-video handling."""

from __future__ import annotations

import numpy as np
import pytest

from magicvideo.data.video import (
    Skip,
    VideoReadError,
    eval_indices,
    read_clip_safe,
    read_eval_clip,
    read_train_clip,
    resize_frames,
    train_indices,
)
from magicvideo.video_io import write_mp4


class StubRng:
    """Returns preset values from ``integers`` (to check indices by hand)."""

    def __init__(self, *values):
        self.values = list(values)

    def integers(self, lo, hi):
        v = self.values.pop(0)
        assert lo <= v < hi, (lo, v, hi)
        return v


def test_train_indices_hand_computed():
    # Ls = 32 from frame 5 of a 30 fps video: every 2nd frame, nu = 16 / 32 * 30 = 15
    idx, nu, ls = train_indices(100, 30.0, 32, StubRng(32, 5))
    assert ls == 32 and nu == 15.0
    assert idx.tolist() == [5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 33, 35]
    # Ls = 24 on a 24-frame video: start 0, floor(i * 24 / 16), nu = 16 / 24 * 24 = 16
    idx, nu, ls = train_indices(24, 24.0, (16, 64), StubRng(24, 0))
    assert idx.tolist() == [0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16, 18, 19, 21, 22]
    assert (nu, ls) == (16.0, 24)
    # Ls = 16: consecutive frames, nu = FPS
    idx, nu, _ = train_indices(16, 8.0, 16, np.random.default_rng(0))
    assert idx.tolist() == list(range(16)) and nu == 8.0


def test_train_indices_properties_random():
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(200):
        n = int(rng.integers(16, 120))
        idx, nu, ls = train_indices(n, 25.0, (16, 64), rng)
        seen.add(ls)
        assert 16 <= ls <= min(64, n)
        assert len(idx) == 16 and np.all(np.diff(idx) >= 1) and idx[0] >= 0 and idx[-1] < n
        assert idx[-1] - idx[0] == (15 * ls) // 16  # the span is covered uniformly
        assert nu == pytest.approx(16 / ls * 25.0)
    assert len(seen) > 10  # Ls really varies


def test_train_indices_errors():
    with pytest.raises(ValueError, match="too short"):
        train_indices(15, 30.0, (16, 32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="span"):
        train_indices(100, 30.0, 8, np.random.default_rng(0))


def test_eval_indices_starts():
    assert eval_indices(40, 16, "first").tolist() == list(range(16))
    assert eval_indices(40, 16, "centre").tolist() == list(range(12, 28))
    assert eval_indices(41, 16, "centre").tolist() == list(range(12, 28))
    assert eval_indices(16, 16, "random", seed=3, key="a").tolist() == list(range(16))
    starts = {int(eval_indices(100, 16, "random", seed=0, key=f"video{k}")[0]) for k in range(50)}
    assert len(starts) > 10 and min(starts) >= 0 and max(starts) <= 84
    a = eval_indices(100, 16, "random", seed=7, key="video7010")
    assert a.tolist() == eval_indices(100, 16, "random", seed=7, key="video7010").tolist()
    with pytest.raises(ValueError, match="too short"):
        eval_indices(10, 16, "first")


def test_resize_squash_and_short_side_crop():
    f, h, w = 2, 40, 80
    ramp = np.broadcast_to((np.arange(w) * 3).astype(np.uint8)[None, None, :, None], (f, h, w, 3)).copy()
    sq = resize_frames(ramp, 20, "squash")
    assert sq.shape == (2, 20, 20, 3)
    crop = resize_frames(ramp, 20, "short_side_crop")
    assert crop.shape == (2, 20, 20, 3)
    # scale 1/2 -> 40 columns, centre crop from column 10: output column j averages input
    # columns 2(j+10) and 2(j+10)+1, i.e. value 3 * (2j + 20.5)
    for j in (3, 10, 16):
        assert abs(int(crop[0, 10, j, 0]) - 3 * (2 * j + 20.5)) <= 1
    # squash keeps the whole width: column j averages input columns 4j..4j+3
    assert abs(int(sq[0, 10, 10, 0]) - 3 * 41.5) <= 1
    # tall frames crop rows, not columns
    tall = resize_frames(np.zeros((1, 90, 30, 3), np.uint8), 15, "short_side_crop")
    assert tall.shape == (1, 15, 15, 3)
    assert resize_frames(ramp, None) is ramp


def _numbered_video(path, n, fps=10.0, size=32):
    """Frame k is flat gray 8 * k: decoded frames tell which source frame they are."""
    frames = np.repeat((np.arange(n, dtype=np.uint8) * 8)[:, None, None, None], size, 1)
    frames = np.ascontiguousarray(np.broadcast_to(frames, (n, size, size, 1)).repeat(3, -1))
    return write_mp4(path, frames, fps=fps)


def _frame_numbers(frames):
    return np.rint(frames.reshape(len(frames), -1).mean(1) / 8).astype(int).tolist()


@pytest.fixture(params=["decord", "opencv"])
def reader(request, monkeypatch):
    """Each reading test runs with decord and with the OpenCV fallback (MAGICVIDEO_VIDEO_READER)."""
    if request.param == "opencv":
        pytest.importorskip("cv2")
    monkeypatch.setenv("MAGICVIDEO_VIDEO_READER", request.param)
    return request.param


def test_read_eval_and_train_clips_decode_the_right_frames(tmp_path, reader):
    path = _numbered_video(tmp_path / "v.mp4", 30, fps=10.0)
    clip = read_eval_clip(path, 16, "centre", size=16, resize="squash")
    assert clip.frames.shape == (16, 16, 16, 3) and clip.frames.dtype == np.uint8
    assert clip.indices.tolist() == list(range(7, 23))
    assert _frame_numbers(clip.frames) == list(range(7, 23))
    assert clip.fps == pytest.approx(10.0) and clip.nu == pytest.approx(10.0)

    clip = read_train_clip(path, (24, 30), np.random.default_rng(0))
    assert _frame_numbers(clip.frames) == clip.indices.tolist()
    assert clip.nu == pytest.approx(16 / clip.span * 10.0) and 24 <= clip.span <= 30
    assert read_train_clip(path, 16, np.random.default_rng(0), fps=25.0).nu == pytest.approx(25.0)


def test_bad_videos_are_skipped_with_a_reason_or_raise(tmp_path, reader):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    short = _numbered_video(tmp_path / "short.mp4", 10)
    good = _numbered_video(tmp_path / "good.mp4", 20)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    skipped: list[Skip] = []
    for p in (corrupt, short, tmp_path / "missing.mp4", truncated, good):
        read_clip_safe(read_eval_clip, p, 16, skipped=skipped)
    assert [(s.item, s.reason) for s in skipped] == [
        ("corrupt", "unreadable"),
        ("short", "too short"),
        ("missing", "missing file"),
        ("truncated", "unreadable"),
    ]
    assert "10 frames" in skipped[1].detail
    with pytest.raises(VideoReadError, match="too short"):
        read_clip_safe(read_eval_clip, short, 16, skipped=[], on_error="raise")
    with pytest.raises(VideoReadError, match="too short"):
        read_train_clip(short, (16, 32), np.random.default_rng(0))


def test_opencv_fallback_equals_decord_bit_for_bit(tmp_path, monkeypatch):
    """The fallback decodes the same pixels as decord (both FFmpeg's H.264 decoder), on moving
    coloured content like the shapes benchmark's, for whole videos and for scattered indices."""
    pytest.importorskip("cv2")
    from magicvideo.data.video import OpenCVReader, open_video, read_whole_video

    rng = np.random.default_rng(0)
    frames = np.zeros((37, 48, 64, 3), np.uint8)
    frames[:] = rng.integers(0, 256, 3, dtype=np.uint8)
    for t in range(len(frames)):
        frames[t, 10:30, t : t + 20] = (200, 40 + 4 * t, 90)
    path = write_mp4(tmp_path / "v.mp4", frames, fps=12.0)
    monkeypatch.setenv("MAGICVIDEO_VIDEO_READER", "decord")
    ref, fps = read_whole_video(path)
    idx = [0, 5, 6, 20, 36]
    ref_idx = open_video(path).get_batch(idx).asnumpy()
    monkeypatch.setenv("MAGICVIDEO_VIDEO_READER", "opencv")
    vr = open_video(path)
    assert isinstance(vr, OpenCVReader) and len(vr) == 37 and vr.get_avg_fps() == pytest.approx(fps)
    got, got_fps = read_whole_video(path)
    assert got_fps == pytest.approx(fps) and np.array_equal(got, ref)
    assert np.array_equal(vr.get_batch(idx), ref_idx)
