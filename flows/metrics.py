"""Features, Fréchet metrics and attribute accuracy for the flow, from the ``evaluation`` library
(no orchestration here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from evaluation import (DEFAULT_PROTOCOL, FeatureStats, ReferenceStatsCache, ShapesI3DExtractor, bootstrap_frechet,
                        build_extractor as _build, cache_key, extract_stats, for_protocol, frechet_distance, get_protocol,
                        score_attributes, weights)
from flows.store import read_sample


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_extractor(settings, device: str):
    """The extractor a ``FrechetSettings`` names, loaded from its local weights file and prepared as its
    protocol requires (``evaluation.for_protocol``)."""
    extractor = _build(settings.extractor, settings.weights, device=device, precision=settings.precision,
                       **settings.options)
    return for_protocol(extractor, protocol_of(settings))


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


def attribute_accuracy(paths: list[Path], requested: list[dict[str, str]], classifier, *, batch_size: int,
                       frame_step: int = 1):
    """``(AttributeAccuracy, predictions)`` of the samples at ``paths`` against ``requested``; ``frame_step``:
    read every that many frames (an interpolated clip at its key frames' rate, the classifier's)."""
    return score_attributes(batched((read_sample(p)[::frame_step] for p in paths), batch_size), requested, classifier)


#: Benchmark kinds whose prompts are captions (a sentence describing the clip): CLIPSIM applies. UCF-101's
#: prompts are class names put into a template: no captions, CLIPSIM is skipped there.
CAPTIONED_KINDS = ("msrvtt", "shapes", "webvid", "drawbench")

#: ``metrics.clipsim.model`` -> its weights (a missing folder names ``metrics.clipsim.weights``)
CLIPSIM_WEIGHTS = {
    "clip": weights.CLIP,
    "shapes_clip": dataclasses.replace(
        weights.SHAPES_CLIP, what="CLIPSIM: the shapes CLIP pair (transformers CLIPModel + CLIPProcessor folder)",
        config_key="metrics.clipsim.weights", env_var="MAGICVIDEO_SHAPES_CLIP_PATH"),
}


def clipsim_skip_reason(benchmark: str) -> str | None:
    """Why a benchmark (name or YAML path) gets no CLIPSIM (no captions), or None when it gets one."""
    from magicvideo.data.benchmarks import load_benchmark_config

    kind = load_benchmark_config(benchmark).kind
    if kind in CAPTIONED_KINDS:
        return None
    return f"CLIPSIM skipped: benchmark {benchmark!r} ({kind}) has no captions (its prompts are class names)"


def clipsim_weights(settings) -> Path:
    """The CLIP folder of ``metrics.clipsim`` (a ``ClipSimSettings``); a missing one raises
    ``MissingWeightsError`` naming ``metrics.clipsim.weights``, the environment variable, and how to
    turn CLIPSIM off."""
    spec = CLIPSIM_WEIGHTS[settings.model]
    try:
        return weights.resolve_weights(settings.weights, spec, directory=True)
    except weights.MissingWeightsError as exc:
        raise weights.MissingWeightsError(f"{exc} Or turn CLIPSIM off: metrics.clipsim: null "
                                          "(--set metrics.clipsim=null).") from None


def build_clipsim_scorer(settings, device: str):
    """The ``CLIPSimScorer`` of ``metrics.clipsim``, from its local folder (:func:`clipsim_weights`)."""
    from evaluation import CLIPSimScorer

    return CLIPSimScorer(clipsim_weights(settings), device=device)


def clipsim(paths: list[Path], prompts: list[str], scorer, *, batch_size: int, precision: str = "fp32") -> dict:
    """CLIPSIM of the samples at ``paths`` (in this order, ``batch_size`` clips per scorer call) against
    their ``prompts``: ``{"value": mean over clips, "per_sample": [...], "n": ...}``."""
    from evaluation import compute_clipsim, precision_mode

    with precision_mode(precision, scorer.device.type):
        mean, per_clip = compute_clipsim(batched((read_sample(p) for p in paths), batch_size), prompts,
                                         scorer=scorer, batch_size=batch_size)
    return {"value": mean, "per_sample": [float(v) for v in per_clip], "n": len(per_clip),
            "weights_sha256": scorer.weights_sha256}


def frechet(fake: FeatureStats, real: FeatureStats, protocol, *, bootstrap: int, seed: int, groups=None) -> dict:
    """The distance (float64 statistics) and, with ``bootstrap`` replicates, ``bootstrap_frechet``'s 95%
    interval (``ci_low``/``ci_high``, method ``ci_method``), its bias estimate and the bias-corrected value.

    ``groups``: a prompt (or clip) id per generated feature row (:func:`sample_groups`), resampled as a
    whole; frame-level FID rows without it are resampled frame by frame (a note says the interval is then
    too narrow). The reference is the cached Gaussian, held fixed (a note says so).
    """
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
                              unbiased=ub, groups_a=groups)
        out.update(ci_low=float(b.low), ci_high=float(b.high), ci_std=float(b.std), ci=float(b.ci),
                   ci_method=b.method, bias=float(b.bias), value_debiased=float(b.value_debiased),
                   bias_bootstrap=float(b.bias_bootstrap))
        out["notes"].extend(b.notes)
        if groups is None and protocol.metric == "fid":
            out["notes"].append("frames resampled one by one (no clip groups): frames of a clip are correlated, "
                                "so this interval is too narrow")
        out["replicates"] = b.replicates.tolist()
    return out


def sample_groups(items, num_rows: int) -> np.ndarray:
    """The prompt number of each feature row (``items`` in feature order; each clip gives the same number of
    rows: 1 for FVD, its frames for FID), for ``frechet(groups=...)`` and the paired comparison."""
    if not items or num_rows % len(items):
        raise ValueError(f"{num_rows} feature rows do not split evenly over {len(items)} clips")
    prompts = {p: i for i, p in enumerate(dict.fromkeys(it.prompt_id for it in items))}
    return np.repeat([prompts[it.prompt_id] for it in items], num_rows // len(items))


FEATURES_DIR = "features"


def _digest(*parts: str) -> str:
    import hashlib

    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:24]


def save_features(output_root: str | Path, items, feats: dict, refs: dict, results: dict | None = None) -> dict:
    """Per-sample generated features of each metric, for the paired comparison of ``magicvideo compare``.

    Writes ``<output_root>/features/<metric>/<digest>.npz`` (digest of the extractor identity, protocol
    and the samples' content addresses): the feature rows (float32 when that is lossless), and per clip
    its address, prompt id, sample index and seed; the reference Gaussian goes once to
    ``reference-<digest>.npz`` beside it. A metric whose features were not kept (``metrics.bootstrap=0``)
    is skipped. Returns ``{metric: path}``, and records each path in ``results[metric]["features_file"]``
    (so it lands in the run's results.json).
    """
    import json

    paths = {}
    if not items:
        return paths
    for metric, f in feats.items():
        stats, ref = f["stats"], refs[metric]
        if not stats.keep_features or stats.n == 0:
            continue
        x = stats.features()
        protocol, identity = ref["protocol"], json.dumps(ref["extractor"].identity(), sort_keys=True)
        folder = Path(output_root) / FEATURES_DIR / metric
        folder.mkdir(parents=True, exist_ok=True)
        mu, sigma = ref["stats"].mean(), ref["stats"].cov(unbiased=protocol.unbiased_cov)
        ref_digest = _digest(identity, protocol.name, mu.tobytes().hex(), sigma.tobytes().hex())
        ref_path = folder / f"reference-{ref_digest}.npz"
        if not ref_path.is_file():
            _write_npz(ref_path, mean=mu, cov=sigma, n=np.int64(ref["stats"].n))
        addresses = [it.address for it in items]
        path = folder / f"{_digest(identity, protocol.name, *addresses)}.npz"
        x32 = x.astype(np.float32)
        _write_npz(path, features=x32 if np.array_equal(x32, x) else x,
                   rows_per_clip=np.int64(x.shape[0] // max(1, len(items))), address=np.array(addresses),
                   prompt_id=np.array([it.prompt_id for it in items]),
                   sample_index=np.array([it.sample_index for it in items], dtype=np.int64),
                   seed=np.array([it.seed for it in items], dtype=np.int64), metric=np.array(metric),
                   protocol=np.array(protocol.name), extractor_identity=np.array(identity),
                   unbiased_cov=np.array(protocol.unbiased_cov), reference_file=np.array(ref_path.name))
        paths[metric] = str(path)
        if results is not None and metric in results:
            results[metric]["features_file"] = str(path)
    return paths


def _write_npz(path: Path, **arrays) -> None:
    """``np.savez``, atomically (a file under its name is complete)."""
    from magicvideo.fileio import atomic_open

    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_features(path: str | Path) -> dict:
    """A file of :func:`save_features` as a dict (features as float64, the reference Gaussian as ``ref_mean``,
    ``ref_cov``); raises ``FileNotFoundError`` naming what is missing."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        out = {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}
    ref = path.parent / out["reference_file"]
    with np.load(ref, allow_pickle=False) as z:
        out["ref_mean"], out["ref_cov"] = z["mean"], z["cov"]
    out["features"] = np.asarray(out["features"], dtype=np.float64)
    return out
