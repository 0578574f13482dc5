"""Benchmarks and data: standard datasets from local paths, and the synthetic 'shapes' benchmark.

Nothing is downloaded: each loader reads a dataset's standard layout from a folder given by
``--root``, an environment variable, or the ``root`` key of ``configs/benchmarks/<name>.yaml``,
and a missing file fails with one message naming it (see :mod:`magicvideo.data.benchmarks`).

Python API::

    from magicvideo.data import load_benchmark, write_manifest

    bench = load_benchmark("msrvtt", root="/data/msrvtt")   # or "shapes", "ucf101", a YAML path
    prompts = bench.manifest()            # list[PromptRecord]: prompt_id, prompt, video, ...
    write_manifest("msrvtt.jsonl", prompts)
    scan = bench.scan(probe=True)         # prompts + usable reference videos + skipped (reasons)
    skipped = []
    for clip in bench.reference_clips(skipped=skipped):   # Clip: frames uint8 (16, S, S, 3), fps, ...
        ...

- :class:`Benchmark` (one subclass per ``kind``: ``msrvtt``, ``ucf101``, ``webvid``,
  ``drawbench``, ``shapes``): ``manifest()``, ``reference_videos()``, ``scan()``,
  ``reference_clips()``, ``protocol`` (frames, size, resize, start, fps), ``has_references``.
- :class:`PromptRecord` (pydantic, one JSONL line): ``prompt_id`` (stable:
  ``<benchmark>/<video id or class>/<caption id or sample>``), ``prompt``, ``benchmark``,
  ``video_id``, ``video`` (path of the paired reference video when found), ``label`` (UCF-101
  class), ``category`` (DrawBench), ``attributes`` (shapes labels), ``fps``.
  :func:`write_manifest` / :func:`read_manifest`.
- Video reading (:mod:`magicvideo.data.video`, decord): :func:`train_indices` /
  :func:`read_train_clip` (paper 3.1.3: span ``Ls``, 16 frames uniformly, ``nu = 16/Ls*FPS``),
  :func:`eval_indices` / :func:`read_eval_clip` (16 consecutive frames from first / centre /
  seeded random start, or with ``fps`` the frames at times ``k / fps``: every clip spans the same
  seconds; the shapes protocol reads at 8 fps), :func:`resize_frames` (squash or shorter side + centre crop, antialiased
  bilinear). Bad videos become :class:`Skip` records, or raise :class:`VideoReadError`.
- :class:`VideoTextDataset` (:mod:`magicvideo.data.training`): a torch dataset over a
  WebVid-style CSV returning ``video`` (F, 3, H, W) in [-1, 1], ``caption``, ``nu`` (with ``fps``:
  every clip sampled at that rate).
- The synthetic benchmark (:mod:`magicvideo.data.shapes`): :class:`ShapesSpec`,
  :func:`sample_clip`, :func:`render` (also at any frame times), :func:`write_shapes`; CLI
  ``magicvideo data shapes OUT``.
- Reference clips of the cascade's later stages (:mod:`magicvideo.data.stage_references`): the
  benchmark protocol with 61 frames at 4x the rate after interpolation, 4x the size after
  upsampling (``stage_references`` in a benchmark config).

CLI: ``magicvideo data shapes OUT_DIR [--train N] [--test M] [--size S] [--seed K]`` and
``magicvideo data manifest BENCHMARK [--root DIR] [--out FILE] [--no-probe] [--limit N]``.
"""

from magicvideo.data.benchmarks import (
    Benchmark,
    Protocol,
    class_label,
    list_benchmarks,
    load_benchmark,
    load_benchmark_config,
    read_video_csv,
)
from magicvideo.data.records import PromptRecord, Scan, VideoRef, read_manifest, write_manifest
from magicvideo.data.shapes import ShapeClip, ShapesSpec, render, sample_clip, vocabulary, write_shapes
from magicvideo.data.video import (
    Clip,
    Skip,
    VideoReadError,
    eval_indices,
    read_eval_clip,
    read_train_clip,
    resize_frames,
    train_indices,
)


def __getattr__(name: str):
    if name == "VideoTextDataset":  # imports torch: only when asked for
        from magicvideo.data.training import VideoTextDataset

        return VideoTextDataset
    raise AttributeError(name)


__all__ = [
    "Benchmark", "Clip", "PromptRecord", "Protocol", "Scan", "ShapeClip", "ShapesSpec", "Skip",
    "VideoReadError", "VideoRef", "VideoTextDataset", "class_label", "eval_indices", "list_benchmarks",
    "load_benchmark", "load_benchmark_config", "read_eval_clip", "read_manifest", "read_train_clip",
    "read_video_csv", "render", "resize_frames", "sample_clip", "train_indices", "vocabulary",
    "write_manifest", "write_shapes",
]  # fmt: skip
