"""Reference statistics cache: keyed by dataset, protocol and extractor identity; second run loads."""

import json

import numpy as np

from evaluation import FeatureStats, ReferenceStatsCache, cache_key


def test_second_run_loads_and_keys_separate(tmp_path):
    cache = ReferenceStatsCache(tmp_path / "cache")
    x = np.random.default_rng(0).standard_normal((40, 6))
    ident = {"extractor": "i3d_pytorch", "weights_sha256": "aa" * 32, "resize": "short_side_crop"}
    key = cache_key("msrvtt", {"name": "fvd_videogpt", "num_frames": 16}, ident)
    calls = []

    def compute():
        calls.append(1)
        return FeatureStats().update(x)

    s1, hit1 = cache.get_or_compute(key, compute)
    s2, hit2 = cache.get_or_compute(key, compute)
    assert (hit1, hit2) == (False, True) and len(calls) == 1
    np.testing.assert_array_equal(s1.cov(), s2.cov())
    assert s2.n == 40
    npz, meta = cache.paths(key)
    assert npz.name.startswith("msrvtt-i3d_pytorch-") and meta.is_file()
    assert json.loads(meta.read_text())["key"]["extractor"]["weights_sha256"] == "aa" * 32
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary files left behind
    # other weights, another protocol or another dataset: a miss
    for other in (cache_key("msrvtt", {"name": "fvd_videogpt", "num_frames": 16}, {**ident, "weights_sha256": "bb" * 32}),
                  cache_key("msrvtt", {"name": "fvd_videogpt", "num_frames": 32}, ident),
                  cache_key("ucf101", {"name": "fvd_videogpt", "num_frames": 16}, ident)):
        assert cache.load(other) is None
