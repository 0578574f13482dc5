"""Reference clips for the later stages of the cascade (the eval flow's per-stage scoring).

A stage's output is not the key frames' 16 frames at 64 px: ``interpolate`` gives ``4 (F - 1) + 1``
frames (61) at 4x the key frames' rate, ``upsample`` frames at 4x the size. Its references must be read
the same way (:func:`stage_protocol`): the benchmark's ``protocol`` with that many frames, that rate
(``fps: 8`` -> 32; a protocol without ``fps`` reads consecutive frames, then 61 of them) and that size.

Where they come from (:func:`stage_reference_clips`, the benchmark's ``stage_references``), in order:

1. a chain with ``upsample`` and ``stage_references.upsample_root`` set: that folder's videos (the
   dataset rendered at the upsampled size, same layout and video ids), read with the stage protocol;
2. the shapes benchmark with ``stage_references.render`` (its default): every test clip drawn again by
   the generator from the parameters its annotation records, at the stage's frame times and size, with
   no codec. Its mp4s are 8, 12 or 24 fps; read at 32 fps they would repeat frames (3 of every 4 at 8
   fps), which a frame-change metric would read as a clip that stutters. The key frames' references
   stay the mp4s (their cached statistics unchanged): later stages' references differ from them by
   the codec (x264 at crf 18) too;
3. otherwise the benchmark's own videos read with the stage protocol (:meth:`Benchmark.reference_clips`):
   resampled to the stage's rate (a rate above the video's repeats frames) and resized to its size.

:func:`stage_reference_identity` is what a cache of their statistics keys on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from magicvideo.data.video import Clip, Skip, eval_indices
from magicvideo.stages import INTERPOLATION_FACTOR, UPSAMPLE_FACTOR


def stage_protocol(protocol, chain: Sequence[str]):
    """The benchmark ``protocol`` (a :class:`~magicvideo.data.benchmarks.Protocol`) as a stage chain's
    output is read: ``interpolate`` multiplies the rate by 4 and gives ``4 (F - 1) + 1`` frames; ``upsample``
    multiplies the size by 4. ``("keyframes",)`` gives the protocol itself."""
    update: dict = {}
    if "interpolate" in chain:
        update["num_frames"] = INTERPOLATION_FACTOR * (protocol.num_frames - 1) + 1
        if protocol.fps is not None:
            update["fps"] = protocol.fps * INTERPOLATION_FACTOR
    if "upsample" in chain and protocol.size is not None:
        update["size"] = protocol.size * UPSAMPLE_FACTOR
    return protocol.model_copy(update=update)


def _source(bench, chain: Sequence[str]) -> tuple[str, Path | None]:
    refs = bench.config.stage_references
    if "upsample" in chain and refs.upsample_root:
        return "videos", Path(refs.upsample_root).expanduser().resolve()
    if getattr(refs, "render", False) and bench.config.kind == "shapes":
        return "render", bench.root
    return "videos", bench.root


def stage_reference_identity(bench, chain: Sequence[str]) -> dict:
    """What a stage's reference clips depend on: the chain, the stage protocol, where they come from."""
    source, root = _source(bench, chain)
    return {"stages": list(chain), "clips": stage_protocol(bench.protocol, chain).model_dump(), "source": source,
            "root": str(root)}


def stage_reference_clips(bench, chain: Sequence[str], limit: int | None = None,
                          skipped: list[Skip] | None = None) -> Iterator[Clip]:
    """The reference clips of a stage chain's output, uint8, as the module docstring says; bad or
    too-short videos are appended to ``skipped`` and left out. ``limit`` stops after that many clips."""
    protocol = stage_protocol(bench.protocol, chain)
    source, root = _source(bench, chain)
    if source == "render":
        yield from _rendered(bench, protocol, limit, skipped if skipped is not None else [])
        return
    if root != bench.root:
        from magicvideo.data.benchmarks import load_benchmark

        bench = load_benchmark(bench.config_path or bench.name, root=root)
    yield from bench.reference_clips(limit=limit, skipped=skipped, protocol=protocol)


def _rendered(bench, protocol, limit: int | None, skipped: list[Skip]) -> Iterator[Clip]:
    """The shapes benchmark's reference clips drawn again from their annotation parameters (the same
    videos as :meth:`Benchmark.reference_videos`, the frames at the protocol's times)."""
    from magicvideo.data.shapes import clip_from_annotation, render

    videos, _ = bench._annotations()
    by_id = {v["video_id"]: v for v in videos}
    refs, missing = bench.reference_videos()
    skipped.extend(missing)
    size = protocol.size or _native_size(bench)
    count = 0
    for ref in refs:
        if limit is not None and count >= limit:
            return
        clip = clip_from_annotation(by_id[ref.video_id])
        rate = protocol.fps or clip.fps
        step = clip.fps / rate  # source frames per output frame, as read_eval_clip places the clip
        try:
            start = int(eval_indices(clip.num_frames, protocol.num_frames, protocol.start, protocol.seed,
                                     ref.video_id, step=step)[0])
        except ValueError as exc:  # too short for this many frames at this rate
            skipped.append(Skip(ref.video_id, "too short", ref.path, str(exc)))
            continue
        times = start / clip.fps + np.arange(protocol.num_frames) / rate
        frames = render(clip, size, times)
        count += 1
        yield Clip(frames, np.arange(protocol.num_frames), clip.fps, float(rate), protocol.num_frames, ref.video_id,
                   ref.path, {"label": ref.label, "rendered": True})


def _native_size(bench) -> int:
    """The rendered frame side of a shapes dataset (its ``shapes.json``; else the config's generate size)."""
    meta = bench.root / "shapes.json" if bench.root is not None else None
    if meta is not None and meta.is_file():
        return int(json.loads(meta.read_text())["spec"]["size"])
    return bench.config.generate.size
