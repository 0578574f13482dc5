"""Metrics of the cascade's later stages (``interpolate``, ``upsample``) for the eval flow, from the
``evaluation`` library; the key frames' are :mod:`flows.metrics`' (unchanged).

- **References** are the stage's own (:mod:`magicvideo.data.stage_references`): 61 frames at 4x the
  key frames' rate after ``interpolate``, 4x the size after ``upsample``. Their statistics are cached
  like the key frames' (``<output_root>/reference_stats``), keyed on the stage protocol and source too.
- **FVD** reads clips in windows of the protocol's frame count (the key frames' count when the protocol
  sets none): ``0-15, 15-30, 30-45, 45-60`` of a 61-frame clip, as ``benchmarks/interpolation_quality.py``
  does, each window a feature row (4 per clip; the intervals resample prompts, all of a clip's windows
  together). The windows of an interpolated clip span 0.5 s at 32 fps: a network trained on 8 fps
  clips (the shapes classifier) sees slower motion than it was trained on, so an FVD of the
  ``interpolate`` stage compares runs of that stage, not with the key frames' FVD. Upsampled clips go
  through the extractor's own resize, as its protocol says.
- **FID** is over every frame, at the stage's resolution, against reference frames at that resolution.
- **The ``upsample`` stage's baseline**: the previous stage's samples upsampled bicubic, scored by every
  Fréchet metric against the same references (``<metric>_bicubic``), so a run says whether the SR
  model beats plain interpolation.
- **Temporal consistency** (:mod:`evaluation.temporal`) of the stages in ``metrics.temporal.stages``:
  the generated clips against the reference clips at the same rate: pixel change, the change of the FID
  network's per-frame features (when ``metrics.fid`` is set), and with the attribute classifier the
  per-frame stability of shape, colour and background. The real clips' values are cached beside the
  reference statistics.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from evaluation import FeatureStats, ReferenceStatsCache, cache_key, extract_stats
from evaluation.cache import key_digest
from evaluation.temporal import (TemporalConsistency, attribute_stability, frame_change, pixel_change,
                                 static_frame_predictions)
from flows.metrics import batched
from flows.store import read_sample
from magicvideo.data.stage_references import stage_reference_clips, stage_reference_identity
from magicvideo.fileio import atomic_write_text


def fvd_window(protocol, bench) -> int:
    """Frames per FVD window: the protocol's clip length, else the benchmark's key-frame count."""
    return protocol.num_frames or bench.protocol.num_frames


def windows(clips: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Each clip ``(T, H, W, 3)`` as its windows of ``size`` frames, overlapping by one frame (starts
    ``0, size - 1, 2 (size - 1), ...`` while a whole window fits), stacked ``(n, size, H, W, 3)``."""
    for clip in clips:
        starts = range(0, len(clip) - size + 1, max(1, size - 1))
        if not starts:
            raise ValueError(f"a clip of {len(clip)} frames is shorter than the FVD window of {size} frames")
        yield np.stack([clip[s : s + size] for s in starts])


def _rows(clip_windows: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Windows of several clips in batches of about ``batch_size`` windows (a clip's windows together)."""
    buf: list[np.ndarray] = []
    for w in clip_windows:
        buf.append(w)
        if sum(len(b) for b in buf) >= batch_size:
            yield np.concatenate(buf)
            buf = []
    if buf:
        yield np.concatenate(buf)


def _stats(clips: Iterable[np.ndarray], extractor, protocol, *, batch_size: int, window: int | None,
           keep_features: bool = False) -> FeatureStats:
    batches = _rows(windows(clips, window), batch_size) if window else batched(clips, batch_size)
    return extract_stats(batches, extractor, num_frames=protocol.num_frames, keep_features=keep_features)


def stage_reference_stats(bench, chain, extractor, protocol, cache_dir: str | Path, *, batch_size: int,
                          max_clips: int | None, window: int | None) -> tuple[FeatureStats, bool, dict]:
    """Reference statistics of a stage chain's output (cached by dataset, stage protocol and source,
    Fréchet protocol, window and extractor identity)."""
    key = cache_key(dataset=bench.name,
                    protocol={"frechet": protocol.as_dict(), **stage_reference_identity(bench, chain),
                              "max_clips": max_clips, "fvd_window": window},
                    extractor_identity=extractor.identity())

    def compute() -> FeatureStats:
        clips = (c.frames for c in stage_reference_clips(bench, chain, limit=max_clips))
        stats = _stats(clips, extractor, protocol, batch_size=batch_size, window=window)
        if stats.n < 2:
            raise ValueError(f"benchmark {bench.name!r}, stages {'+'.join(chain)}: {stats.n} usable reference "
                             "clips, need at least 2")
        return stats

    stats, cached = ReferenceStatsCache(cache_dir).get_or_compute(key, compute)
    return stats, cached, key


def stage_generated_stats(paths: list[Path], extractor, protocol, *, batch_size: int, keep_features: bool,
                          window: int | None, num_frames: int | None = None,
                          transform: Callable[[np.ndarray], np.ndarray] | None = None) -> FeatureStats:
    """Features of the samples at ``paths``; with ``window``, FVD windows of each clip. ``num_frames``:
    the frames every clip must have (its references'), else one error naming both counts. ``transform``:
    applied to each clip before its features (:func:`bicubic_stats`)."""
    def clips() -> Iterator[np.ndarray]:
        for p in paths:
            clip = read_sample(p)
            if num_frames is not None and len(clip) != num_frames:
                raise ValueError(f"sample {p} has {len(clip)} frames, its stage's reference clips {num_frames} "
                                 "(the interpolation stage makes 4 (F - 1) + 1 frames of F key frames)")
            yield clip if transform is None else transform(clip)

    return _stats(clips(), extractor, protocol, batch_size=batch_size, window=window, keep_features=keep_features)


def bicubic_stats(paths: list[Path], extractor, protocol, *, scale: int, batch_size: int, window: int | None,
                  num_frames: int | None = None) -> FeatureStats:
    """Features of the samples at ``paths`` (the stage before ``upsample``) upsampled ``scale`` x bicubic:
    the SR stage's baseline, scored against the same references as the SR output (issue 14: FID at
    the high resolution against bicubic upsampling of the same frames)."""
    import torch

    from magicvideo.pipeline import MagicVideoPipeline
    from magicvideo.upsampling import bicubic_clips

    def upsample(clip: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(clip).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        return MagicVideoPipeline.to_uint8(bicubic_clips(x, scale))[0]

    return stage_generated_stats(paths, extractor, protocol, batch_size=batch_size, keep_features=False,
                                 window=window, num_frames=num_frames, transform=upsample)  # fmt: skip


# ------------------------------------------------------------------------------- temporal consistency
def _embed(extractor):
    """Per-frame features of a frame-level (FID) extractor: uint8 ``[N, H, W, 3]`` -> ``[N, d]``."""
    return lambda frames: extractor(frames[None])


def _per_clip(clips: Iterable[np.ndarray], embed, classifier, batch_size: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"pixel_change": []}
    for batch in batched(clips, batch_size):
        out["pixel_change"] += pixel_change(batch).tolist()
        if embed is not None:
            out.setdefault("frame_change", []).extend(frame_change(batch, embed, batch_clips=batch_size).tolist())
        if classifier is not None:
            stab = attribute_stability(static_frame_predictions(batch, classifier.predict,
                                                                classifier.model.config.num_frames,
                                                                ("shape", "color", "background")))
            for k, v in stab.items():
                out.setdefault(f"stability/{k}", []).extend(v.tolist())
    return out


def _means(values: dict[str, list[float]]) -> dict[str, float]:
    return {k: float(np.mean(v)) for k, v in values.items()}


def _stability(means: dict[str, float]) -> dict[str, float] | None:
    return {k.split("/", 1)[1]: v for k, v in means.items() if k.startswith("stability/")} or None


def temporal_reference(bench, chain, *, embed_extractor=None, classifier=None, cache_dir: str | Path,
                       batch_size: int, max_clips: int | None) -> dict[str, list[float]]:
    """The real side of :func:`temporal`: per-clip measures of the stage's reference clips, computed once
    and cached in ``cache_dir`` by what they depend on (the eval flow warms it while generation runs)."""
    key = {"kind": "temporal", "dataset": bench.name, **stage_reference_identity(bench, chain), "max_clips": max_clips,
           "embed": embed_extractor.identity() if embed_extractor is not None else None,
           "classifier": classifier.identity() if classifier is not None else None}
    cache = Path(cache_dir) / f"{bench.name}-temporal-{key_digest(key)[:16]}.json"
    if cache.is_file():
        return json.loads(cache.read_text())["per_clip"]
    embed = _embed(embed_extractor) if embed_extractor is not None else None
    real = _per_clip((c.frames for c in stage_reference_clips(bench, chain, limit=max_clips)), embed, classifier,
                     batch_size)
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, json.dumps({"key": key, "per_clip": real}))
    return real


def temporal(paths: list[Path], bench, chain, *, embed_extractor=None, classifier=None, cache_dir: str | Path,
             batch_size: int, max_clips: int | None) -> TemporalConsistency:
    """Temporal consistency of the samples at ``paths`` against the stage's reference clips (the real
    side cached in ``cache_dir``); ``embed_extractor``: the FID extractor (frame change in its
    features), ``classifier``: the attribute classifier (per-frame stability)."""
    real = temporal_reference(bench, chain, embed_extractor=embed_extractor, classifier=classifier,
                              cache_dir=cache_dir, batch_size=batch_size, max_clips=max_clips)
    embed = _embed(embed_extractor) if embed_extractor is not None else None
    fake = _per_clip((read_sample(p) for p in paths), embed, classifier, batch_size)
    f, r = _means(fake), _means(real)
    return TemporalConsistency(n_generated=len(fake["pixel_change"]), n_real=len(real["pixel_change"]),
                               pixel_change=f["pixel_change"], pixel_change_real=r["pixel_change"],
                               frame_change=f.get("frame_change"), frame_change_real=r.get("frame_change"),
                               stability=_stability(f), stability_real=_stability(r))
