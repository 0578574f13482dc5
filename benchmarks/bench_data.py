"""Measure the shapes generator and the loaders' decode throughput (BENCHMARKS.md, 'Data').

    python benchmarks/bench_data.py [--dir DIR] [--train 2000] [--test 256] [--workers N]

1. ``write_shapes`` of the default benchmark (64x64): clips/s for the whole write.
2. Evaluation clips of the shapes test split (``Benchmark.reference_clips``, 16 frames, 64x64).
3. Training samples from the shapes CSV (``VideoTextDataset``, span 16..64, 64x64), in this process.
4. UCF-101-like files (320x240, 25 fps, 7 s = 175 frames, x264 defaults so one keyframe per
   250 frames; content: a smooth random texture panning 1-5 px per frame plus +-4 grain) through
   the MSR-VTT/UCF protocol: 16 frames from the centre (decoding starts at the keyframe, so ~95
   frames are decoded) or the first frame, shorter side to 256 + centre crop.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _timed(fn):
    t = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    from magicvideo.data.benchmarks import load_benchmark
    from magicvideo.data.shapes import ShapesSpec, write_shapes
    from magicvideo.data.training import VideoTextDataset
    from magicvideo.data.video import read_eval_clip, resize_frames
    from magicvideo.video_io import write_mp4

    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=256)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--real-like", type=int, default=40, help="UCF-like 320x240 files to write and decode")
    args = ap.parse_args(argv)
    work = args.dir or Path(tempfile.mkdtemp(prefix="mv-data-bench-"))
    rows = []

    spec = ShapesSpec(train=args.train, test=args.test)
    _, dt = _timed(lambda: write_shapes(work / "shapes", spec, workers=args.workers))
    rows.append(("write_shapes 64x64 (train+test)", spec.train + spec.test, dt))

    bench = load_benchmark("shapes", root=work / "shapes")
    n, dt = _timed(lambda: sum(1 for _ in bench.reference_clips()))
    rows.append(("shapes reference_clips, 16x64x64", n, dt))

    ds = VideoTextDataset(work / "shapes" / "train.csv", span=(16, 64), size=64)
    k = min(len(ds), 500)
    n, dt = _timed(lambda: sum(1 for i in range(k) if ds[i] is not None))
    rows.append(("VideoTextDataset (span 16..64), 16x64x64", n, dt))

    rng = np.random.default_rng(0)
    real = work / "ucf_like"
    for i in range(args.real_like):  # a smooth random scene panning 1-5 px per frame, mild grain
        scene = rng.integers(0, 256, (1, 30, 60, 3), dtype=np.uint8)
        scene = resize_frames(scene, 240, "squash")[0]  # 240x240 smooth texture
        scene = np.concatenate([scene, scene[:, ::-1]], axis=1)  # 240x480, pans without a seam
        step = i % 5 + 1
        frames = np.stack([np.roll(scene, -step * t, axis=1)[:, :320] for t in range(175)])
        grain = rng.integers(-4, 5, frames.shape, dtype=np.int16)
        frames = np.clip(frames.astype(np.int16) + grain, 0, 255).astype(np.uint8)
        write_mp4(real / f"v{i:03d}.mp4", frames, fps=25)
    files = sorted(real.glob("*.mp4"))
    n, dt = _timed(
        lambda: sum(1 for f in files if read_eval_clip(f, 16, "centre", size=256, resize="short_side_crop") is not None)
    )
    rows.append(("320x240 25fps 7s -> centre 16 frames, 256 crop", n, dt))
    n, dt = _timed(lambda: sum(1 for f in files if read_eval_clip(f, 16, "centre", size=None) is not None))
    rows.append(("320x240 25fps 7s -> centre 16 frames, no resize", n, dt))
    n, dt = _timed(lambda: sum(1 for f in files if read_eval_clip(f, 16, "first", size=256) is not None))
    rows.append(("320x240 25fps 7s -> first 16 frames, 256 crop", n, dt))

    print(f"{'measure':50s} {'clips':>6s} {'s':>7s} {'clips/s':>8s}")
    for name, n, dt in rows:
        print(f"{name:50s} {n:6d} {dt:7.2f} {n / dt:8.1f}")
    print(f"(files under {work})")


if __name__ == "__main__":
    main()
