"""Temporal consistency of clips: how much frames change from one to the next, and whether what a
per-frame predictor sees (shape, colour, background) stays the same over a clip.

FVD scores a clip as a whole and can miss frames that each look right but do not belong together
(the shapes key-frame model of issue 15.3 drew a new background on every frame). Two numbers, each
computed for the generated clips and for real clips under the same reading, so that they are read
as a ratio to the real clips' value, not on an absolute scale:

- ``frame_change``: per clip, the mean over consecutive frame pairs of ``1 - cos(e_t, e_{t+1})``
  between per-frame embeddings (a CLIP image tower: "CLIP temporal consistency" as Gen-1,
  EvalCrafter and VBench report it, there as the cosine itself). ``pixel_change`` is the same on
  raw pixels: the mean absolute difference of consecutive frames, in [0, 1].
- ``attribute_stability``: per clip and attribute, the fraction of frames whose per-frame
  prediction equals the clip's most frequent one (1 = the same value on every frame). On the
  shapes benchmark the predictor is the committed classifier on each frame held still for its
  whole input (``static_frame_predictions``): colour and background read 1.00 that way on real
  frames, shape 0.62, so shape stability is read against the real clips' value.

The ratio ``generated / real`` of the mean change is what the issue's goal is stated in ("within
20% of real clips": a ratio in [0.8, 1.2]); a ratio well above 1 is flicker, well below 1 is a
clip that barely moves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np


def _videos(videos) -> np.ndarray:
    v = np.asarray(videos)
    if v.ndim != 5 or v.shape[-1] != 3:
        raise ValueError(f"expected uint8 videos (B, T, H, W, 3), got shape {v.shape}")
    if v.shape[1] < 2:
        raise ValueError(f"temporal consistency needs at least 2 frames per clip, got {v.shape[1]}")
    return v


def pixel_change(videos) -> np.ndarray:
    """Per clip ``[B]``: mean absolute difference of consecutive frames, pixels scaled to [0, 1]."""
    v = _videos(videos)
    d = np.abs(np.diff(v.astype(np.int16), axis=1)).astype(np.float64) / 255.0
    return d.reshape(v.shape[0], -1).mean(1)


def frame_change(videos, embed: Callable[[np.ndarray], np.ndarray], batch_clips: int = 16) -> np.ndarray:
    """Per clip ``[B]``: mean over consecutive frames of ``1 - cos(e_t, e_{t+1})``.

    embed: uint8 frames ``[N, H, W, 3]`` -> embeddings ``[N, d]`` (any scale: they are normalised
    here), e.g. ``CLIPEncoder.image_embeddings``.
    """
    v = _videos(videos)
    b, t = v.shape[:2]
    out = []
    for i in range(0, b, batch_clips):
        part = v[i : i + batch_clips]
        e = np.asarray(_numpy(embed(part.reshape(-1, *v.shape[2:]))), dtype=np.float64).reshape(len(part), t, -1)
        e = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
        out.append(1.0 - (e[:, 1:] * e[:, :-1]).sum(-1).mean(1))
    return np.concatenate(out)


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def static_frame_predictions(videos, predict: Callable[[np.ndarray], list[dict[str, str]]], num_frames: int,
                             attributes: Sequence[str] | None = None) -> list[list[dict[str, str]]]:
    """Per clip, per frame: what a clip classifier sees in that frame held still for ``num_frames``
    frames (``predict``: uint8 clips ``[N, num_frames, H, W, 3]`` -> one ``{attribute: value}`` per
    clip, e.g. ``ShapesI3DExtractor.predict``). Only ``attributes`` are kept (default: all);
    motion and speed mean nothing on a still frame."""
    v = _videos(videos)
    out = []
    for clip in v:
        still = np.repeat(clip[:, None], num_frames, axis=1)  # (T, num_frames, H, W, 3)
        preds = predict(still)
        out.append([{k: p[k] for k in (attributes or p)} for p in preds])
    return out


def attribute_stability(per_frame: Sequence[Sequence[dict[str, str]]]) -> dict[str, np.ndarray]:
    """Attribute -> per clip ``[B]``: the fraction of frames predicting the clip's most frequent value."""
    if not per_frame:
        raise ValueError("no clips")
    names = list(per_frame[0][0])
    return {k: np.array([Counter(f[k] for f in clip).most_common(1)[0][1] / len(clip) for clip in per_frame])
            for k in names}  # fmt: skip


@dataclass
class TemporalConsistency:
    """Means over clips, generated and real, and their ratios (``generated / real``)."""

    n_generated: int
    n_real: int
    pixel_change: float
    pixel_change_real: float
    frame_change: float | None = None
    frame_change_real: float | None = None
    stability: dict[str, float] | None = None
    stability_real: dict[str, float] | None = None

    @property
    def pixel_change_ratio(self) -> float:
        return self.pixel_change / self.pixel_change_real if self.pixel_change_real > 0 else float("inf")

    @property
    def frame_change_ratio(self) -> float | None:
        if self.frame_change is None or self.frame_change_real is None:
            return None
        return self.frame_change / self.frame_change_real if self.frame_change_real > 0 else float("inf")

    def metrics(self) -> dict[str, float]:
        """Flat metrics under ``temporal/`` (``_real`` suffix: the real clips' value)."""
        out = {"temporal/pixel_change": self.pixel_change, "temporal/pixel_change_real": self.pixel_change_real,
               "temporal/pixel_change_ratio": self.pixel_change_ratio}  # fmt: skip
        if self.frame_change is not None:
            out.update({"temporal/frame_change": self.frame_change, "temporal/frame_change_real": self.frame_change_real,
                        "temporal/frame_change_ratio": self.frame_change_ratio})  # fmt: skip
        for k, v in (self.stability or {}).items():
            out[f"temporal/stability/{k}"] = v
        for k, v in (self.stability_real or {}).items():
            out[f"temporal/stability_real/{k}"] = v
        return out

    def as_dict(self) -> dict:
        return {**asdict(self), "pixel_change_ratio": self.pixel_change_ratio, "frame_change_ratio": self.frame_change_ratio}


def temporal_consistency(fake, real, embed: Callable[[np.ndarray], np.ndarray] | None = None,
                         predict: Callable[[np.ndarray], list[dict[str, str]]] | None = None,
                         num_frames: int = 16, attributes: Sequence[str] = ("shape", "color", "background"),
                         ) -> TemporalConsistency:  # fmt: skip
    """Temporal consistency of generated clips `fake` against real clips `real` (uint8 ``[B, T, H, W, 3]``
    each; frame rates should match, as FVD's do). ``embed`` adds the embedding change; ``predict``
    (a clip classifier, see :func:`static_frame_predictions`) the per-frame attribute stability."""
    fake, real = _videos(fake), _videos(real)
    res = TemporalConsistency(n_generated=len(fake), n_real=len(real), pixel_change=float(pixel_change(fake).mean()),
                              pixel_change_real=float(pixel_change(real).mean()))  # fmt: skip
    if embed is not None:
        res.frame_change = float(frame_change(fake, embed).mean())
        res.frame_change_real = float(frame_change(real, embed).mean())
    if predict is not None:
        res.stability = {k: float(v.mean()) for k, v in attribute_stability(
            static_frame_predictions(fake, predict, num_frames, attributes)).items()}  # fmt: skip
        res.stability_real = {k: float(v.mean()) for k, v in attribute_stability(
            static_frame_predictions(real, predict, num_frames, attributes)).items()}  # fmt: skip
    return res
