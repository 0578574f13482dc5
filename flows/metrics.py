"""Features, Fréchet metrics and attribute accuracy for the flow, from the ``evaluation`` library
(no orchestration here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from evaluation import (DEFAULT_PROTOCOL, FeatureStats, ReferenceStatsCache, ShapesI3DExtractor, bootstrap_frechet,
                        build_extractor as _build, cache_key, extract_stats, frechet_distance, get_protocol,
                        score_attributes, weights)
from flows.store import read_sample


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_extractor(settings, device: str):
    """The extractor a ``FrechetSettings`` names, loaded from its local weights file."""
    return _build(settings.extractor, settings.weights, device=device, precision=settings.precision)


ATTRIBUTE_WEIGHTS = dataclasses.replace(weights.SHAPES_CLASSIFIER, config_key="metrics.attributes.weights")


def build_attribute_classifier(settings, device: str) -> ShapesI3DExtractor:
    """The classifier of ``metrics.attributes`` (an ``AttributeSettings``); a missing folder names
    the key ``metrics.attributes.weights``."""
    return ShapesI3DExtractor(settings.weights, device=device, spec=ATTRIBUTE_WEIGHTS)


def requested_attributes(records, benchmark: str) -> dict[str, dict[str, str]]:
    """prompt id -> the attributes its prompt states; one clear error when a prompt states none."""
    missing = [r.prompt_id for r in records if not r.attributes]
    if missing:
        raise ValueError(f"metrics.attributes: benchmark {benchmark!r} has prompts without attribute labels "
                         f"(e.g. {missing[0]}); attribute accuracy needs a shapes benchmark: set metrics.attributes=null")
    return {r.prompt_id: dict(r.attributes) for r in records}


def protocol_of(settings):
    return get_protocol(settings.protocol or DEFAULT_PROTOCOL[settings.extractor])


def batched(arrays: Iterable[np.ndarray], n: int) -> Iterator[np.ndarray]:
    buf = []
    for a in arrays:
        buf.append(a)
        if len(buf) == n:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def reference_stats(bench, extractor, protocol, cache_dir: str | Path, *, batch_size: int,
                    max_clips: int | None) -> tuple[FeatureStats, bool, dict]:
    """Reference statistics of a benchmark, cached by (dataset, protocols, extractor identity)."""
    key = cache_key(
        dataset=bench.name,
        protocol={"frechet": protocol.as_dict(), "clips": bench.config.protocol.model_dump(),
                  "root": str(bench.root), "max_clips": max_clips},
        extractor_identity=extractor.identity(),
    )

    def compute() -> FeatureStats:
        clips = (c.frames for c in bench.reference_clips(limit=max_clips))
        stats = extract_stats(batched(clips, batch_size), extractor, num_frames=protocol.num_frames)
        if stats.n < 2:
            raise ValueError(f"benchmark {bench.name!r}: {stats.n} usable reference clips, need at least 2")
        return stats

    stats, cached = ReferenceStatsCache(cache_dir).get_or_compute(key, compute)
    return stats, cached, key


def generated_stats(paths: list[Path], extractor, protocol, *, batch_size: int, keep_features: bool) -> FeatureStats:
    return extract_stats(batched((read_sample(p) for p in paths), batch_size), extractor,
                         num_frames=protocol.num_frames, keep_features=keep_features)


def attribute_accuracy(paths: list[Path], requested: list[dict[str, str]], classifier, *, batch_size: int):
    """``(AttributeAccuracy, predictions)`` of the samples at ``paths`` against ``requested``."""
    return score_attributes(batched((read_sample(p) for p in paths), batch_size), requested, classifier)


def frechet(fake: FeatureStats, real: FeatureStats, protocol, *, bootstrap: int, seed: int) -> dict:
    """The distance (float64 statistics) and, with ``bootstrap`` replicates, a 95% percentile interval."""
    ub = protocol.unbiased_cov
    mu_r, sig_r = real.mean(), real.cov(unbiased=ub)
    out = {"value": float(frechet_distance(fake.mean(), fake.cov(unbiased=ub), mu_r, sig_r)),
           "n_fake": fake.n, "n_real": real.n, "protocol": protocol.name, "notes": []}
    for side, want, have in (("generated", protocol.num_fake, fake.n), ("reference", protocol.num_real, real.n)):
        if want is not None and have != want:
            out["notes"].append(f"{protocol.name} uses {want} {side} samples, this run has {have}: "
                                "not comparable to published values")
    if bootstrap > 0:
        b = bootstrap_frechet(fake.features(), gaussian_b=(mu_r, sig_r), num_replicates=bootstrap, seed=seed,
                              unbiased=ub)
        out.update(ci_low=float(b.low), ci_high=float(b.high), ci_std=float(b.std), ci=float(b.ci))
        out["replicates"] = b.replicates.tolist()
    return out
