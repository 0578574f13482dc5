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


def test_motion_stats_sees_movement_seams_and_loops(long_video):
    """motion_stats on made-up clips of 4-frame windows sharing 1 frame (new frames start at 4, 7, 10):
    a square moving one pixel a frame (steady change, no jump at the seams, later windows farther from
    the first); the same with a jump at every seam; a clip whose windows repeat the first (a loop)."""
    window, held, frames = 4, 1, 16

    def clip(positions):
        x = np.zeros((len(positions), 24, 40, 3), dtype=np.uint8)
        for t, p in enumerate(positions):
            x[t, 8:16, p : p + 8] = 255
        return x

    steady = long_video.motion_stats([clip(list(range(frames)))], window, held=held)
    assert steady["seam_ratio"] == pytest.approx(1.0)
    assert steady["frame_change"] == pytest.approx(2 * 8 * 255 * 3 / (24 * 40 * 3))  # two 8-px columns change
    assert steady["repeat_ratio"] > 1.5  # windows move away from the first
    jumps = list(range(frames))
    for s in (4, 7, 10, 13):  # every first new frame 3 px ahead, and what follows with it
        jumps[s:] = [p + 2 for p in jumps[s:]]
    jumpy = long_video.motion_stats([clip(jumps)], window, held=held)
    assert jumpy["seam_ratio"] > 1.4
    loop = long_video.motion_stats([clip([0, 1, 2, 3, 9, 10, 11, 12] * 2)], window, held=None)  # windows A B A B
    assert loop["repeat_ratio"] == pytest.approx(2 / 3) and "seam_ratio" not in loop  # |B-A|, 0, |B-A| against |B-A| x 3
    static = long_video.motion_stats([np.full((frames, 8, 8, 3), 7, np.uint8)], window, held=held)
    assert static["frame_change"] == 0.0 and static["seam_change"] == 0.0
    assert np.isnan(static["seam_ratio"]) and np.isnan(static["repeat_ratio"])  # nothing moves: no ratio
