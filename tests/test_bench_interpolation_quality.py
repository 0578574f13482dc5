"""benchmarks/interpolation_quality.py on the committed shapes pipeline, two real clips on the CPU:
``--steps`` reaches the interpolation stage (it once set the key-frame steps, so every run sampled at
the 4-step default), and the blends, which do not depend on it, do not move; its paired FVD-61
differences."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("interpolation_quality", ROOT / "benchmarks" / "interpolation_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("one_thread")
def test_steps_reach_the_interpolation_stage(bench, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    got = {}
    for steps in (1, 4):
        out = tmp_path / f"{steps}.json"
        monkeypatch.setattr(sys, "argv", ["interpolation_quality.py", "--clips", "2", "--batch", "2", "--steps", str(steps),
                                          "--device", "cpu", "--json", str(out)])  # fmt: skip
        bench.main()
        got[steps] = json.loads(out.read_text())
    assert got[1]["steps"] == 1 and got[4]["steps"] == 4
    assert got[1]["methods"]["model"]["psnr"] != pytest.approx(got[4]["methods"]["model"]["psnr"], abs=1e-3)
    for m in ("pixel blend", "pixel blend, decoded keys", "latent blend", "vae recon"):
        assert got[1]["methods"][m] == got[4]["methods"][m]
    m = got[4]["methods"]
    assert m["pixel blend"]["psnr"] > m["vae recon"]["psnr"] > m["pixel blend, decoded keys"]["psnr"] - 1


def test_paired_fvd61_is_the_table_s_difference_with_an_interval_over_clips(bench):
    import numpy as np

    from evaluation.frechet import frechet_distance
    from evaluation.stats import FeatureStats

    rng = np.random.default_rng(0)
    clips, windows, d = 16, 4, 6
    feats = {"real": rng.normal(size=(clips * windows, d)), "near": rng.normal(0.05, size=(clips * windows, d)),
             "far": rng.normal(1.5, size=(clips * windows, d))}  # fmt: skip

    def fd(x):
        s, r = FeatureStats(), FeatureStats()
        s.update(x)
        r.update(feats["real"])
        return frechet_distance(s.mean(), s.cov(), r.mean(), r.cov())

    out = bench.paired_fvd61(feats, [("near", "far"), ("far", "near")], clips)
    r = out["near - far"]
    assert r["a"] == pytest.approx(fd(feats["near"])) and r["b"] == pytest.approx(fd(feats["far"]))
    assert r["diff"] == pytest.approx(r["a"] - r["b"]) and r["clips"] == clips
    assert r["high"] < 0 and r["p_value"] < 0.05  # far off by 1.5 in every dimension: clearly worse
    assert out["far - near"]["low"] > 0
