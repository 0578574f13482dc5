"""Temporal consistency metrics (evaluation.temporal) against direct float64 computations."""

import numpy as np
import pytest

from evaluation.temporal import (attribute_stability, frame_change, pixel_change, static_frame_predictions,
                                 temporal_consistency)  # fmt: skip


def _clips(rng, b=3, t=5, side=8):
    return rng.integers(0, 256, (b, t, side, side, 3), dtype=np.uint8)


def test_pixel_change_matches_a_loop():
    rng = np.random.default_rng(0)
    v = _clips(rng)
    want = [np.mean([np.abs(c[i + 1].astype(float) - c[i].astype(float)).mean() / 255 for i in range(len(c) - 1)])
            for c in v]  # fmt: skip
    np.testing.assert_allclose(pixel_change(v), want, rtol=1e-12)
    still = np.repeat(v[:, :1], 5, axis=1)
    assert np.all(pixel_change(still) == 0)


def test_frame_change_is_one_minus_consecutive_cosine():
    rng = np.random.default_rng(1)
    v = _clips(rng, b=5)
    proj = rng.normal(size=(8 * 8 * 3, 6))

    def embed(frames):  # any per-frame embedding, unnormalised
        return frames.reshape(len(frames), -1).astype(np.float64) @ proj

    got = frame_change(v, embed, batch_clips=2)  # batches of clips must not change anything
    for c, g in zip(v, got):
        e = embed(c)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        assert g == pytest.approx(np.mean([1 - e[i] @ e[i + 1] for i in range(len(e) - 1)]), rel=1e-10)
    assert np.allclose(frame_change(np.repeat(v[:, :1], 5, axis=1), embed), 0, atol=1e-12)


def test_stability_counts_the_most_frequent_value():
    per_frame = [[{"shape": "circle"}] * 3 + [{"shape": "square"}],
                 [{"shape": "circle"}, {"shape": "square"}, {"shape": "triangle"}, {"shape": "square"}]]
    np.testing.assert_allclose(attribute_stability(per_frame)["shape"], [0.75, 0.5])


def test_static_frames_reach_the_classifier_held_still():
    rng = np.random.default_rng(2)
    v = _clips(rng, b=2, t=3)
    seen = []

    def predict(clips):
        seen.append(clips.shape)
        # every input clip must be one frame repeated
        assert np.all(clips == clips[:, :1])
        return [{"color": "red" if c[0].mean() > 127 else "blue", "motion": "left"} for c in clips]

    out = static_frame_predictions(v, predict, num_frames=4, attributes=("color",))
    assert seen == [(3, 4, 8, 8, 3)] * 2
    assert len(out) == 2 and all(len(c) == 3 and set(c[0]) == {"color"} for c in out)


def test_report_ratios_and_errors():
    rng = np.random.default_rng(3)
    real = _clips(rng)
    flicker = _clips(rng)
    smooth = np.repeat(real[:, :1], 5, axis=1).copy()
    smooth[:, -1] = real[:, 1]  # one change per clip
    r = temporal_consistency(flicker, real)
    assert r.pixel_change_ratio == pytest.approx(pixel_change(flicker).mean() / pixel_change(real).mean())
    assert temporal_consistency(smooth, real).pixel_change_ratio < 0.5
    m = r.metrics()
    assert {"temporal/pixel_change", "temporal/pixel_change_real", "temporal/pixel_change_ratio"} <= set(m)
    with pytest.raises(ValueError, match="at least 2 frames"):
        pixel_change(real[:, :1])
    with pytest.raises(ValueError, match="expected uint8 videos"):
        pixel_change(real[0])
