"""The convention table: one pair of clip sets scored under every FVD convention in use.

Published FVDs differ by more than their models do when their code differs in resize filter, crop,
value range, batch-norm epsilon or covariance normaliser (Ge et al. 2024, "On the Content Bias in
Fréchet Video Distance", and the fvd-comparison notes of StyleGAN-V's author). This module scores
the same generated and reference clips under each reference protocol and under single-knob
departures from the original FVD (``fvd_tfhub``), all on one network (the Kinetics-400 I3D), and
says how far each moves the number.

Features are extracted once per distinct preprocessing (rows that differ only in the covariance
share them); sample counts of the protocols are not enforced here: every row uses all clips given.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .frechet import frechet_distance
from .protocols import for_protocol, get_protocol
from .stats import as_float64_features


@dataclass(frozen=True)
class Convention:
    """One row: a protocol, optionally with one knob turned (extractor options, covariance normaliser)."""

    label: str
    protocol: str
    options: dict = field(default_factory=dict)  # extractor preprocessing overrides (resize, requantize, bn_eps)
    unbiased_cov: bool | None = None             # None: the protocol's
    what: str = ""                               # the knob, in words


CONVENTIONS: tuple[Convention, ...] = (
    Convention("fvd_tfhub", "fvd_tfhub", what="google-research FVD: TF1 squash to 224, [-1,1], eps 1e-3, n-1 (baseline)"),
    Convention("fvd2048_16f", "fvd2048_16f", what="StyleGAN-V: half-pixel bilinear squash, covariance /n"),
    Convention("fvd_videogpt", "fvd_videogpt", what="VideoGPT: uint8 round trip, short side + crop, eps 1e-5"),
    Convention("fvd_common_metrics", "fvd_common_metrics", what="common_metrics videogpt: short side + crop, eps 1e-5"),
    Convention("fvd_tats", "fvd_tats", what="TATS: half-pixel bilinear squash, eps 1e-5"),
    Convention("tfhub, cov /n", "fvd_tfhub", unbiased_cov=False, what="n vs n-1: covariance divided by n"),
    Convention("tfhub, half-pixel bilinear", "fvd_tfhub", {"resize": "squash"}, what="resize grid: PyTorch/TF2 bilinear"),
    Convention("tfhub, bilinear antialias", "fvd_tfhub", {"resize": "squash_antialias"}, what="resize filter: antialiased bilinear (PIL-like)"),
    Convention("tfhub, bicubic antialias", "fvd_tfhub", {"resize": "squash_bicubic"}, what="resize filter: antialiased bicubic (clean-fid-like)"),
    Convention("tfhub, short side + crop", "fvd_tfhub", {"resize": "short_side_crop"}, what="squash vs crop: shorter side to 224, centre crop"),
    Convention("tfhub, bn eps 1e-5", "fvd_tfhub", {"bn_eps": 1e-5}, what="a port's batch-norm epsilon (VideoGPT's pytorch_i3d)"),
    Convention("tfhub, videogpt round trip", "fvd_tfhub", {"requantize": "videogpt"}, what="VideoGPT's truncating uint8 round trip alone"),
)


@dataclass
class ConventionRow:
    label: str
    protocol: str
    what: str
    value: float
    change_pct: float            # relative to the first row (the baseline)
    preprocessing: dict          # the extractor's options in this row
    unbiased_cov: bool
    n_fake: int
    n_real: int


def _features(extractor, clips, batch_size: int) -> np.ndarray:
    rows = [extractor(clips[i : i + batch_size]).double().numpy() for i in range(0, len(clips), batch_size)]
    return as_float64_features(np.concatenate(rows))


def _gaussian(x: np.ndarray, unbiased: bool) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(0)
    c = x - mu
    return mu, c.T @ c / (len(x) - 1 if unbiased else len(x))


def convention_table(fake, real, extractor, conventions=CONVENTIONS, *, batch_size: int = 8,
                     progress: Callable[[str], None] | None = None) -> list[ConventionRow]:
    """Score uint8 clips ``fake`` vs ``real`` (``[N, T, H, W, 3]`` arrays) under each convention.

    ``extractor`` is a loaded I3D extractor (``build_extractor("i3d_kinetics400")``); each row prepares
    it with ``for_protocol`` and the row's overrides, sharing the loaded network. The first row is the
    baseline of ``change_pct``.
    """
    if len(fake) < 2 or len(real) < 2:
        raise ValueError(f"need at least 2 clips per side, got {len(fake)} generated and {len(real)} reference")
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rows: list[ConventionRow] = []
    for conv in conventions:
        protocol = get_protocol(conv.protocol)
        ext = for_protocol(extractor, protocol)
        if conv.options:
            ext = ext.with_options(**conv.options)
        key = json.dumps(ext.identity(), sort_keys=True)
        if key not in cache:
            if progress:
                progress(f"features for {conv.label}: {ext.options()}")
            cache[key] = (_features(ext, fake, batch_size), _features(ext, real, batch_size))
        f, r = cache[key]
        unbiased = protocol.unbiased_cov if conv.unbiased_cov is None else conv.unbiased_cov
        value = frechet_distance(*_gaussian(f, unbiased), *_gaussian(r, unbiased))
        base = rows[0].value if rows else value
        change = 100.0 * (value - base) / base if base > 0 else float("nan")
        rows.append(ConventionRow(conv.label, protocol.name, conv.what, value, change,
                                  ext.options(), unbiased, len(f), len(r)))
    return rows


def format_table(rows: list[ConventionRow]) -> str:
    """A markdown table: convention, FVD, change against the baseline, what differs."""
    out = ["| convention | FVD | vs baseline | what differs |", "|---|---:|---:|---|"]
    for r in rows:
        out.append(f"| {r.label} | {r.value:.2f} | {r.change_pct:+.2f}% | {r.what} |")
    return "\n".join(out)
