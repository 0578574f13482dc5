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


def test_read_clips_reports_the_primary_reader_first_and_the_others_beside(long_video):
    """Both readings of one pass: the primary reader's summary and clips at the top level, the other's under
    ``readers``; each compares every window with its own first window."""
    import torch

    class Rec:
        prompt, attributes = "a red square", {"shape": "square", "color": "red"}

    class FakeReader:
        READERS = ("d4", "plain")
        heads = {"shape": ["circle", "square"], "color": ["red", "blue"]}

        def __call__(self, wins):
            n = len(wins)
            steady = {"shape": torch.ones(n, dtype=torch.long), "color": torch.zeros(n, dtype=torch.long)}
            flips = {"shape": torch.arange(n) % 2, "color": torch.zeros(n, dtype=torch.long)}  # circle, square, ...
            return {"d4": steady, "plain": flips}

    clips = [np.zeros((5, 16, 8, 8, 3), np.uint8), np.zeros((3, 16, 8, 8, 3), np.uint8)]
    for primary, other in (("d4", "plain"), ("plain", "d4")):
        out = long_video.read_clips(FakeReader(), clips, [Rec(), Rec()], primary)
        assert out["reader"] == primary and set(out["readers"]) == {other}
        steady, flips = (out, out["readers"][other]) if primary == "d4" else (out["readers"][other], out)
        assert steady["both_same"] == 1.0 and steady["windows_compared"] == 6 and steady["first_window_prompt_shape"] == 1
        # windows 1..4 of clip 1: square, circle, square, circle against circle -> 2 of 4; clip 2: 1 of 2
        assert flips["both_same"] == pytest.approx(3 / 6) and flips["first_window_prompt_shape"] == 0
        assert [c["predicted"][:2] for c in flips["per_clip"]] == [["red circle", "red square"]] * 2
