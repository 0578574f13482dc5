"""StyleGAN-V TorchScript path: a scripted detector with StyleGAN-V's call signature, end to end to FVD."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evaluation import FeatureStats, MissingWeightsError, StyleGANVI3DExtractor, compute_fvd, frechet_distance


class StyleGANVLikeDetector(torch.nn.Module):
    """Same signature as i3d_torchscript.pt; refuses any call StyleGAN-V would not make."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 16, 400)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        if x.dtype != torch.uint8:
            raise RuntimeError("expects uint8 videos")
        if x.dim() != 5 or x.shape[1] != 3:
            raise RuntimeError("expects [B, 3, T, H, W]")
        if not (rescale and resize and return_features):
            raise RuntimeError("StyleGAN-V calls with rescale=True, resize=True, return_features=True")
        v = x.float() / 127.5 - 1.0
        v = F.interpolate(v, size=[x.shape[2], 8, 8], mode="trilinear", align_corners=False)
        return self.proj(v.mean(dim=[3, 4]).flatten(1))  # [B, 3*T] -> 400 "logits"


@pytest.fixture(scope="module")
def detector_path(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ts") / "i3d_torchscript.pt"
    torch.jit.script(StyleGANVLikeDetector()).save(str(path))
    return path


def videos(n, seed, t=16, offset=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 200, (n, t, 20, 24, 3), dtype=torch.uint8, generator=g) + offset).to(torch.uint8)


def test_scripted_detector_called_as_stylegan_v(detector_path):
    ext = StyleGANVI3DExtractor(detector_path)
    v = videos(3, 0)
    feats = ext(v)
    assert feats.shape == (3, 400) and feats.dtype == torch.float32
    det = torch.jit.load(str(detector_path))
    # StyleGAN-V: clips [B, T, C, H, W] -> permute(0, 2, 1, 3, 4); ours arrive as [B, T, H, W, C]
    expected = det(v.permute(0, 4, 1, 2, 3).contiguous(), rescale=True, resize=True, return_features=True)
    torch.testing.assert_close(feats, expected)
    gray = v[..., :1]
    torch.testing.assert_close(ext(gray), det(gray.permute(0, 4, 1, 2, 3).repeat(1, 3, 1, 1, 1), rescale=True,
                                              resize=True, return_features=True))
    assert ext.identity()["detector_kwargs"] == dict(rescale=True, resize=True, return_features=True)


def test_fvd2048_16f_end_to_end_uses_biased_covariance(detector_path):
    ext = StyleGANVI3DExtractor(detector_path)
    fake, real = videos(12, 1), videos(10, 2, offset=40)
    with pytest.warns(UserWarning, match="2048"):
        result = compute_fvd(fake, real, extractor=ext, batch_size=5)
    assert result.protocol == "fvd2048_16f" and (result.n_fake, result.n_real) == (12, 10)
    ff, fr = ext(fake).double().numpy(), ext(real).double().numpy()
    biased = frechet_distance(ff.mean(0), np.cov(ff, rowvar=False, bias=True), fr.mean(0), np.cov(fr, rowvar=False, bias=True))
    unbiased = frechet_distance(ff.mean(0), np.cov(ff, rowvar=False), fr.mean(0), np.cov(fr, rowvar=False))
    assert result.value == pytest.approx(biased, rel=1e-6)
    assert abs(result.value - unbiased) > 1e-3 * abs(unbiased)
    # cached reference stats give the same number
    with pytest.warns(UserWarning):
        again = compute_fvd(fake, extractor=ext, real_stats=FeatureStats().update(fr))
    assert again.value == pytest.approx(result.value, rel=1e-6)  # batches of 5 vs 10: float32 rounding


def test_frame_count_is_checked(detector_path):
    ext = StyleGANVI3DExtractor(detector_path)
    with pytest.raises(ValueError, match="exactly 16 frames"):
        compute_fvd(videos(2, 0, t=12), videos(2, 1, t=12), extractor=ext)


def test_missing_torchscript_names_env_and_key(monkeypatch):
    monkeypatch.delenv("MAGICVIDEO_I3D_TORCHSCRIPT", raising=False)
    with pytest.raises(MissingWeightsError) as e:
        StyleGANVI3DExtractor()
    for part in ("i3d_torchscript.pt", "StyleGAN-V", "metrics.fvd.weights", "MAGICVIDEO_I3D_TORCHSCRIPT"):
        assert part in str(e.value)
