"""FVD, FID and CLIPSIM from uint8 videos: extract features, accumulate stats, compare.

``compute_fvd`` / ``compute_fid`` take generated clips (one array ``[N, T, H, W, 3]`` or an
iterable of such batches) and either reference clips or reference ``FeatureStats`` (e.g. from
``ReferenceStatsCache``), and return a ``FrechetResult`` that says which protocol and extractor
made the number.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .bootstrap import BootstrapResult, ExtrapolationResult, bootstrap_frechet, frechet_infinity
from .frechet import frechet_distance
from .protocols import DEFAULT_PROTOCOL, FrechetProtocol, for_protocol, get_protocol
from .stats import FeatureStats


@dataclass
class FrechetResult:
    """A Fréchet distance with what produced it."""

    value: float
    metric: str
    protocol: str
    extractor: dict
    n_real: int
    n_fake: int
    bootstrap: BootstrapResult | None = None
    extrapolation: ExtrapolationResult | None = None
    notes: list[str] = field(default_factory=list)


def _batches(videos, batch_size: int) -> Iterable:
    if hasattr(videos, "shape") and len(videos.shape) == 5:
        for i in range(0, videos.shape[0], batch_size):
            yield videos[i : i + batch_size]
    else:
        yield from videos


def extract_stats(videos, extractor, *, batch_size: int = 16, num_frames: int | None = None,
                  keep_features: bool = False, max_items: int | None = None, progress: bool = False) -> FeatureStats:
    """Stream ``videos`` through ``extractor`` into float64 ``FeatureStats``.

    ``num_frames``: every clip must have exactly that many frames. ``max_items``: stop after that
    many feature rows (clips for I3D, frames for Inception), as StyleGAN-V's ``max_items``. With
    ``keep_features``, ``stats.groups`` holds the clip number of each kept row (frame-level
    extractors give several rows per clip), so intervals resample clips, not frames.
    """
    stats = FeatureStats(extractor.num_features, keep_features=keep_features)
    groups: list[np.ndarray] = []
    clips = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"{extractor.name} features", unit="row")
    for batch in _batches(videos, batch_size):
        if num_frames is not None and batch.shape[1] != num_frames:
            raise ValueError(f"the protocol needs clips of exactly {num_frames} frames, got {batch.shape[1]}")
        feats = extractor(batch)
        per_clip = max(1, len(feats) // len(batch))
        ids = np.repeat(np.arange(clips, clips + len(batch)), per_clip)
        clips += len(batch)
        if max_items is not None:
            feats, ids = feats[: max_items - stats.n], ids[: max_items - stats.n]
        stats.update(feats)
        groups.append(ids)
        if bar is not None:
            bar.update(len(feats))
        if max_items is not None and stats.n >= max_items:
            break
    if bar is not None:
        bar.close()
    stats.groups = np.concatenate(groups) if keep_features and groups else None
    return stats


def _frechet(fake, real, real_stats, extractor, protocol: FrechetProtocol, *, batch_size, bootstrap, extrapolate,
             seed, progress) -> FrechetResult:
    extractor = for_protocol(extractor, protocol)
    if (real is None) == (real_stats is None):
        raise ValueError("give exactly one of real (videos) or real_stats (FeatureStats)")
    keep = bootstrap > 0 or extrapolate
    kw = dict(batch_size=batch_size, num_frames=protocol.num_frames, progress=progress)
    fake_stats = extract_stats(fake, extractor, keep_features=keep, max_items=protocol.num_fake, **kw)
    if real_stats is None:
        real_stats = extract_stats(real, extractor, keep_features=bootstrap > 0, max_items=protocol.num_real, **kw)
    ub = protocol.unbiased_cov
    mu_r, sig_r = real_stats.mean(), real_stats.cov(unbiased=ub)
    value = frechet_distance(fake_stats.mean(), fake_stats.cov(unbiased=ub), mu_r, sig_r)
    notes = []
    for side, want, have in (("generated", protocol.num_fake, fake_stats.n), ("reference", protocol.num_real, real_stats.n)):
        if want is not None and have != want:
            notes.append(f"{protocol.name} uses {want} {side} samples, this run has {have}: not comparable to published values")
            warnings.warn(notes[-1], stacklevel=3)
    boot = None
    if bootstrap > 0:
        kw = dict(num_replicates=bootstrap, seed=seed, unbiased=ub, groups_a=getattr(fake_stats, "groups", None))
        if real_stats.keep_features:
            boot = bootstrap_frechet(fake_stats.features(), real_stats.features(),
                                     groups_b=getattr(real_stats, "groups", None), **kw)
        else:
            boot = bootstrap_frechet(fake_stats.features(), gaussian_b=(mu_r, sig_r), **kw)
    ext = frechet_infinity(fake_stats.features(), mu_r, sig_r, seed=seed, unbiased=ub) if extrapolate else None
    return FrechetResult(value, protocol.metric, protocol.name, extractor.identity(), real_stats.n, fake_stats.n,
                         boot, ext, notes)


def compute_fvd(fake_videos, real_videos=None, *, extractor, protocol: str | FrechetProtocol | None = None,
                real_stats: FeatureStats | None = None, batch_size: int = 16, bootstrap: int = 0,
                extrapolate: bool = False, seed: int = 0, progress: bool = False) -> FrechetResult:
    """Fréchet Video Distance between generated and reference clips (uint8 ``[N, T, H, W, 3]``).

    Args:
        fake_videos: generated clips (array or iterable of batches).
        real_videos: reference clips; or give ``real_stats`` (cached statistics) instead.
        extractor: ``I3DKinetics400Extractor``, ``StyleGANVI3DExtractor``, ``I3DExtractor`` or ``ShapesI3DExtractor``;
            the protocol sets its preprocessing (``evaluation.protocols.for_protocol``).
        protocol: a name from ``PROTOCOLS``; default the extractor's (``DEFAULT_PROTOCOL``):
            ``fvd_tfhub`` for the Kinetics-400 I3D, ``fvd2048_16f`` for the TorchScript detector,
            ``fvd_common_metrics`` for the pytorch-i3d file.
        bootstrap: number of bootstrap replicates for a 95% interval (0: none).
        extrapolate: also fit FVD-infinity over sample counts.
    """
    p = get_protocol(protocol or DEFAULT_PROTOCOL[extractor.name])
    if p.metric != "fvd":
        raise ValueError(f"protocol {p.name!r} is a {p.metric} protocol")
    return _frechet(fake_videos, real_videos, real_stats, extractor, p, batch_size=batch_size, bootstrap=bootstrap,
                    extrapolate=extrapolate, seed=seed, progress=progress)


def compute_fid(fake_videos, real_videos=None, *, extractor, protocol: str | FrechetProtocol | None = None,
                real_stats: FeatureStats | None = None, batch_size: int = 4, bootstrap: int = 0,
                extrapolate: bool = False, seed: int = 0, progress: bool = False) -> FrechetResult:
    """Frame-level FID between generated and reference clips (every frame is one sample).

    Args as ``compute_fvd``, with an ``InceptionExtractor`` (protocol ``fid_frames``) or a
    ``CLIPImageExtractor`` (``fid_clip_frames``); ``batch_size`` counts clips.
    """
    p = get_protocol(protocol or DEFAULT_PROTOCOL[extractor.name])
    if p.metric != "fid":
        raise ValueError(f"protocol {p.name!r} is a {p.metric} protocol")
    return _frechet(fake_videos, real_videos, real_stats, extractor, p, batch_size=batch_size, bootstrap=bootstrap,
                    extrapolate=extrapolate, seed=seed, progress=progress)


def compute_clipsim(videos, prompts: list[str], *, scorer, batch_size: int = 8) -> tuple[float, np.ndarray]:
    """``(mean CLIPSIM, per-clip values)`` for uint8 clips and one prompt per clip."""
    prompts = list(prompts)
    per_clip = []
    start = 0
    for batch in _batches(videos, batch_size):
        per_clip.append(scorer(batch, prompts[start : start + len(batch)]))
        start += len(batch)
    if start != len(prompts):
        raise ValueError(f"need one prompt per clip: {start} clips, {len(prompts)} prompts")
    values = np.concatenate(per_clip)
    return float(values.mean()), values
