"""The drift benchmark's summary over clips (benchmarks/long_video.py): an interval over clips, not
over windows (a clip's windows share its first window), clips at the goal, agreement with the
clip's majority reading."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def long_video():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("long_video_bench", ROOT / "benchmarks" / "long_video.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_clip_interval_matches_a_t_interval_on_smooth_data(long_video):
    x = np.random.default_rng(3).beta(8, 2, size=64)  # per-clip fractions
    low, high = long_video.clip_interval(x)
    t_low, t_high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert low < x.mean() < high
    assert abs(low - t_low) < 0.2 * (t_high - t_low) and abs(high - t_high) < 0.2 * (t_high - t_low)


def test_clip_interval_edge_cases(long_video):
    assert long_video.clip_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert all(np.isnan(v) for v in long_video.clip_interval([0.7]))


def test_clip_summary_reads_a_misread_first_window(long_video):
    per_clip = [  # first window misread, every later one agrees with the rest: 0 against the first, 3/4 majority
        {"both_same": 0.0, "predicted": ["red square", "red circle", "red circle", "red circle"]},
        {"both_same": 1.0, "predicted": ["blue circle"] * 4},
        {"both_same": 2 / 3, "predicted": ["blue star", "blue star", "blue star", "green star"]},
    ]
    s = long_video.clip_summary(per_clip)
    assert s["clips_at_goal"] == 1
    assert s["majority_same"] == pytest.approx((0.75 + 1.0 + 0.75) / 3)
    low, high = s["both_same_ci95"]
    assert low <= 5 / 9 <= high
