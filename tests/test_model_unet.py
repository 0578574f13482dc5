"""MagicVideoUNet: inflation equals the image model, directed attention is causal, errors."""

from __future__ import annotations

import pytest
import torch

from magicvideo import MagicVideoUNet
from magicvideo.models.unet import AdaptedConv2d, SpatioTemporalBlock

F = 4


def _inputs(batch=2, frames=F, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 4, frames, 8, 8, generator=g),
        torch.tensor([10, 700][:batch]),
        torch.randn(batch, 7, 16, generator=g),
    )


def test_inflated_model_equals_image_model_frame_by_frame(tiny_unet2d):
    video = MagicVideoUNet.from_unet2d(tiny_unet2d, num_frames=F).eval()
    x, t, text = _inputs()
    with torch.no_grad():
        out = video(x, t, text, fps=12.0).sample
        ref = torch.stack([tiny_unet2d(x[:, :, i], t, text).sample for i in range(F)], dim=2)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_inflation_copies_every_2d_weight_and_lists_new_ones(tiny_unet2d):
    video = MagicVideoUNet.from_unet2d(tiny_unet2d, num_frames=F)
    own = video.state_dict()
    for key, value in tiny_unet2d.state_dict().items():
        assert torch.equal(own[key], value), key
    new = set(video.new_parameters)
    assert new == set(own) - set(tiny_unet2d.state_dict())
    assert any(".attn_temp." in k for k in new) and any(k.endswith("adaptor_scale") for k in new)
    assert "fps_embedding.linear_2.weight" in new
    # every 2D conv is adapted, every transformer block is spatio-temporal
    assert not any(type(m) is torch.nn.Conv2d for m in video.modules())
    from diffusers.models.attention import BasicTransformerBlock

    n_blocks = sum(isinstance(m, BasicTransformerBlock) for m in tiny_unet2d.modules())
    assert n_blocks == 4 and sum(isinstance(m, SpatioTemporalBlock) for m in video.modules()) == n_blocks
    adaptors = [m for m in video.modules() if isinstance(m, AdaptedConv2d)]
    assert all(m.adaptor_scale.shape == (F, m.out_channels) for m in adaptors)


def _frame_sensitivity(mode: str, tiny_unet2d) -> tuple[float, float]:
    video = MagicVideoUNet.from_unet2d(tiny_unet2d, num_frames=F, temporal_attention=mode).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # random, non-zero weights everywhere (temporal output and adaptors too)
        for name, p in video.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    x, t, text = _inputs()
    j = 2
    x2 = x.clone()
    x2[:, :, j] += torch.randn_like(x2[:, :, j])
    with torch.no_grad():
        a = video(x, t, text, fps=8.0).sample
        b = video(x2, t, text, fps=8.0).sample
    before = (a[:, :, :j] - b[:, :, :j]).abs().max().item()
    after = (a[:, :, j:] - b[:, :, j:]).abs().max().item()
    return before, after


def test_directed_attention_past_frames_do_not_see_the_future(tiny_unet2d):
    before, after = _frame_sensitivity("directed", tiny_unet2d)
    assert before == 0.0
    assert after > 1e-3


def test_bidirectional_attention_sees_the_future(tiny_unet2d):
    before, _ = _frame_sensitivity("bidirectional", tiny_unet2d)
    assert before > 1e-3


def test_no_temporal_attention_keeps_frames_independent(tiny_unet2d):
    video = MagicVideoUNet.from_unet2d(tiny_unet2d, num_frames=F, temporal_attention="none", use_adaptor=False)
    assert not any("attn_temp" in k for k in video.state_dict())
    assert not any("adaptor" in k for k in video.state_dict())
    before, after = _frame_sensitivity("none", tiny_unet2d)
    assert before == 0.0


def test_adaptor_is_frame_wise_affine():
    conv = torch.nn.Conv2d(3, 5, 3, padding=1)
    ad = AdaptedConv2d.from_conv(conv, num_frames=F)
    with torch.no_grad():
        ad.adaptor_scale.copy_(torch.randn(F, 5))
        ad.adaptor_bias.copy_(torch.randn(F, 5))
    x = torch.randn(2 * F, 3, 6, 6)
    y = ad(x)
    ref = conv(x).view(2, F, 5, 6, 6) * ad.adaptor_scale[None, :, :, None, None] + ad.adaptor_bias[None, :, :, None, None]
    torch.testing.assert_close(y, ref.view(2 * F, 5, 6, 6))


def test_fps_conditioning_changes_output_once_trained(tiny_unet2d):
    video = MagicVideoUNet.from_unet2d(tiny_unet2d, num_frames=F).eval()
    x, t, text = _inputs()
    with torch.no_grad():
        same = (video(x, t, text, fps=4.0).sample - video(x, t, text, fps=30.0).sample).abs().max()
        torch.nn.init.normal_(video.fps_embedding.linear_2.weight)
        differ = (video(x, t, text, fps=4.0).sample - video(x, t, text, fps=30.0).sample).abs().max()
    assert same == 0 and differ > 1e-3


def test_save_load_round_trip_is_exact(tiny_unet2d, tmp_path):
    video = MagicVideoUNet.from_unet2d(tiny_unet2d, num_frames=F, temporal_attention="bidirectional")
    _ = [p.data.normal_() for n, p in video.named_parameters() if "temp" in n]
    video.save_pretrained(tmp_path / "unet")
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = MagicVideoUNet.from_pretrained(tmp_path / "unet")
    assert loaded.config.temporal_attention == "bidirectional" and loaded.config.num_frames == F
    a, b = video.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_from_pretrained_2d_reads_a_diffusers_folder(tiny_unet2d, tmp_path):
    tiny_unet2d.save_pretrained(tmp_path / "sd" / "unet")
    video = MagicVideoUNet.from_pretrained_2d(tmp_path / "sd", num_frames=F)
    torch.testing.assert_close(video.conv_in.weight, tiny_unet2d.conv_in.weight)


def test_clear_errors(tiny_unet2d, tmp_path):
    video = MagicVideoUNet.from_unet2d(tiny_unet2d, num_frames=F)
    x, t, text = _inputs()
    with pytest.raises(ValueError, match="frames but the frame-wise adaptors were built for num_frames=4"):
        video(x[:, :, :3], t, text, fps=8)
    with pytest.raises(ValueError, match="channels"):
        video(x[:, :3], t, text, fps=8)
    with pytest.raises(ValueError, match=r"\(batch, channels, frames, height, width\)"):
        video(x[:, :, 0], t, text, fps=8)
    with pytest.raises(ValueError, match="pass fps"):
        video(x, t, text)
    with pytest.raises(FileNotFoundError, match="text-to-image model folder not found"):
        MagicVideoUNet.from_pretrained_2d(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no U-Net config"):
        MagicVideoUNet.from_pretrained_2d(tmp_path / "empty")
    with pytest.raises(ValueError, match="temporal_attention must be one of"):
        MagicVideoUNet.from_unet2d(tiny_unet2d, num_frames=F, temporal_attention="sideways")


def test_inflation_rejects_unsupported_2d_settings():
    from diffusers import UNet2DConditionModel

    from tests.conftest import TINY_UNET2D

    other = UNet2DConditionModel(**TINY_UNET2D, time_cond_proj_dim=8)
    with pytest.raises(ValueError, match="time_cond_proj_dim=8"):
        MagicVideoUNet.from_unet2d(other, num_frames=F)


def test_load_2d_weights_names_mismatches(tiny_unet2d):
    from magicvideo.models.unet import load_2d_weights

    video = MagicVideoUNet.from_unet2d(tiny_unet2d, num_frames=F)
    sd = tiny_unet2d.state_dict()
    sd["conv_in.weight"] = torch.zeros(16, 5, 3, 3)
    sd["not.a.key"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"conv_in.weight: 2D \(16, 5, 3, 3\)") as err:
        load_2d_weights(video, sd)
    assert "not.a.key" in str(err.value)


@pytest.mark.parametrize("use_adaptor", [False, True])
def test_frame_order_is_seen_only_through_the_mask_or_the_adaptor(tiny_unet2d, use_adaptor):
    """No frame position encoding (the paper names none; decided in issue 15): bidirectional temporal
    attention without the adaptor is blind to frame order (reversing the input frames reverses the
    output), the per-frame adaptor gives it an order, and the causal mask of directed attention
    always does."""
    x, t, text = _inputs()
    flip = lambda v: v.flip(2)  # noqa: E731 - reverse the frames
    out = {}
    for mode in ("bidirectional", "directed"):
        video = MagicVideoUNet.from_unet2d(tiny_unet2d, num_frames=F, temporal_attention=mode, use_adaptor=use_adaptor,
                                           fps_conditioning=False).eval()  # fmt: skip
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for _, p in video.named_parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
            a, b = video(x, t, text).sample, video(flip(x), t, text).sample
        out[mode] = (flip(b) - a).abs().max().item()
    if use_adaptor:
        assert out["bidirectional"] > 1e-3
    else:
        assert out["bidirectional"] < 1e-5
    assert out["directed"] > 1e-3
