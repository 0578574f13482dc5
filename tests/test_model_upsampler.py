"""The x4 super-resolution model (3.4): layout, save/load, the noise-conditioning augmentation,
its draws, and the degradation of the training inputs."""

from __future__ import annotations

import json

import pytest
import torch

from magicvideo.models import UpsamplerUNet
from magicvideo.models.upsampler import downsample, quantize, sample_noise_levels

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(block_out_channels=(8, 16), norm_num_groups=4)


def tiny_upsampler(seed: int = 0, **kw) -> UpsamplerUNet:
    """A tiny random SR model whose output is not all zeros (diffusers zero-initialises nothing
    here, but keep the weights away from a degenerate init)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UpsamplerUNet(**{**TINY, **kw}).eval()


def inputs(n: int = 2, side: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, side, side, generator=g), torch.rand(n, 3, side // 4, side // 4, generator=g) * 2 - 1


def test_shapes_and_layout():
    model = tiny_upsampler()
    x, low = inputs()
    out = model(x, torch.tensor([10, 900]), low, torch.tensor([0, 100])).sample
    assert out.shape == x.shape
    assert model.unet.conv_in.in_channels == 6 and model.unet.conv_out.out_channels == 3  # noisy HR + upsampled LR
    assert model.unet.config.class_embed_type == "timestep"  # the level: a timestep-style embedding
    # fully convolutional: any size that the levels divide
    assert model(torch.randn(1, 3, 24, 40), 5, torch.randn(1, 3, 6, 10)).sample.shape == (1, 3, 24, 40)
    with pytest.raises(ValueError, match="low_res must be"):
        model(x, 1, torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match="refused by one without text"):
        model(x, 1, low, encoder_hidden_states=torch.randn(2, 4, 8))
    with pytest.raises(ValueError, match="text conditioning needs both"):
        UpsamplerUNet(**TINY, cross_attention_dim=8)
    with pytest.raises(ValueError, match="default_noise_level"):
        UpsamplerUNet(**TINY, max_noise_level=10, default_noise_level=20)


def test_patches_fold_pixels_into_channels_and_back():
    """patch_size p: the U-Net runs on the input folded p x p into channels, its output unfolded."""
    model = UpsamplerUNet(**TINY, patch_size=2).eval()
    assert model.unet.conv_in.in_channels == 24 and model.unet.conv_out.out_channels == 12
    x, low = inputs(side=32)
    t, level = torch.tensor([10, 900]), torch.tensor([0, 100])
    out = model(x, t, low, level).sample
    assert out.shape == x.shape
    folded = torch.nn.functional.pixel_unshuffle(torch.cat([x, model.condition(low, (32, 32))], 1), 2)
    expected = torch.nn.functional.pixel_shuffle(model.unet(folded, t, None, class_labels=level).sample, 2)
    torch.testing.assert_close(out, expected)
    assert torch.equal(model(x, t, low, level, return_dict=False)[0], out)
    with pytest.raises(ValueError, match="multiples of patch_size"):
        UpsamplerUNet(**TINY, patch_size=8)(torch.randn(1, 3, 36, 36), 1, torch.randn(1, 3, 9, 9))
    with pytest.raises(ValueError, match="patch_size must be"):
        UpsamplerUNet(**TINY, patch_size=0)


def test_the_low_resolution_input_and_its_level_condition_the_output():
    model = tiny_upsampler()
    x, low = inputs()
    t = torch.tensor([500, 500])
    base = model(x, t, low, 0).sample
    assert not torch.allclose(model(x, t, low.flip(-1), 0).sample, base)
    assert not torch.allclose(model(x, t, low, 200).sample, base)  # the level is a condition
    assert torch.equal(model(x, t, low).sample, model(x, t, low, model.config.default_noise_level).sample)


def test_text_conditioning_is_optional():
    model = tiny_upsampler(cross_attention_dim=8, attention_head_dim=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                           up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), mid_block_type="UNetMidBlock2DCrossAttn")  # fmt: skip
    x, low = inputs()
    a = model(x, 3, low, 5, encoder_hidden_states=torch.randn(2, 4, 8)).sample
    b = model(x, 3, low, 5, encoder_hidden_states=torch.randn(2, 4, 8)).sample
    assert a.shape == x.shape and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="required by a text-conditioned upsampler"):
        model(x, 3, low, 5)


def test_augmentation_level_zero_is_the_clean_input_and_higher_levels_add_more_noise():
    model = tiny_upsampler()
    _, low = inputs(4)
    noise = torch.randn_like(low)
    assert torch.equal(model.augment(low, 0, noise), low)
    levels = torch.tensor([0, 20, 100, 350])
    out = model.augment(low, levels, noise)
    assert torch.equal(out[0], low[0])
    err = (out - low).flatten(1).std(1)
    assert err[1] > 0.02 and err[1] < err[2] < err[3]  # level 20 ~ std 0.08, 350 ~ 0.85 of noise
    # the x4 upscaler's formula: sqrt(abar) x + sqrt(1 - abar) eps of the model's own schedule
    from diffusers import DDPMScheduler

    abar = DDPMScheduler.from_config(model.noise_schedule).alphas_cumprod[350]
    torch.testing.assert_close(out[3], abar.sqrt() * low[3] + (1 - abar).sqrt() * noise[3])


def test_noise_level_draws_do_not_depend_on_the_flag():
    on = sample_noise_levels(64, 350, True, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    off = sample_noise_levels(64, 350, False, g)
    assert torch.equal(off, torch.zeros_like(off)) and on.min() >= 0 and on.max() <= 350 and on.float().std() > 50
    after = torch.Generator().manual_seed(1)
    sample_noise_levels(64, 350, True, after)
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=after))  # same stream afterwards


def test_degradation_is_antialiased_and_8_bit():
    stripes = torch.tensor([-1.0, 1.0]).repeat(16).view(1, 1, 1, 32).expand(1, 3, 32, 32)
    low = downsample(stripes, 4)
    assert low.shape == (1, 3, 8, 8) and low.abs().max() < 0.1  # 1-px stripes average out, not alias
    q = quantize(torch.tensor([0.0, 0.5, -1.2]))
    assert torch.allclose((q + 1) * 127.5, ((q + 1) * 127.5).round()) and q[2] == -1
    with pytest.raises(ValueError, match="not a multiple of 4"):
        downsample(torch.zeros(1, 3, 30, 32), 4)


def test_save_load_round_trip_and_float16_storage(tmp_path):
    model = tiny_upsampler(max_noise_level=300, default_noise_level=0, noise_augmentation=False)
    x, low = inputs()
    model.save_pretrained(tmp_path / "sr")
    config = json.loads((tmp_path / "sr" / "config.json").read_text())
    assert config["_class_name"] == "UpsamplerUNet" and config["noise_augmentation"] is False
    assert config["default_noise_level"] == 0 and config["max_noise_level"] == 300
    loaded = UpsamplerUNet.from_pretrained(tmp_path / "sr")
    assert torch.equal(loaded(x, 7, low, 3).sample, model(x, 7, low, 3).sample)
    assert loaded.noise_schedule == model.noise_schedule and loaded.noise_schedule["prediction_type"] == "v_prediction"
    model.to(torch.float16).save_pretrained(tmp_path / "half")
    half = UpsamplerUNet.from_pretrained(tmp_path / "half", torch_dtype=torch.float32)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half(x, 7, low, 3).sample, loaded(x, 7, low, 3).sample, atol=2e-2, rtol=2e-2)


def test_residual_model_starts_as_bicubic_and_adds_its_correction():
    """residual: x0 = bicubic(input) / sqrt(abar_level) + U-Net output; the last convolution starts
    at zero, so an untrained model predicts the bicubic upsampling (of the clean input at level 0,
    of the augmented one brought back to its brightness above it)."""
    with pytest.raises(ValueError, match="residual needs prediction_type 'sample'"):
        UpsamplerUNet(**TINY, residual=True)
    model = tiny_upsampler(residual=True, prediction_type="sample")
    x, low = inputs()
    levels = torch.tensor([0, 300])
    out = model(x, torch.tensor([10, 900]), low, levels).sample
    up = model.condition(low, (32, 32))
    from diffusers import DDPMScheduler

    abar = DDPMScheduler.from_config(model.noise_schedule).alphas_cumprod
    torch.testing.assert_close(model.signal_scale(levels), torch.stack([torch.tensor(1.0), abar[300].sqrt()]))
    torch.testing.assert_close(out[0], up[0])
    torch.testing.assert_close(out[1], up[1] / abar[300].sqrt())
    # once the convolution has weights, the output is the skip plus what the plain model would give
    torch.nn.init.normal_(model.unet.conv_out.weight, std=0.1)
    plain = tiny_upsampler(prediction_type="sample")
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(x, 5, low, levels).sample - plain(x, 5, low, levels).sample,
                               up / model.signal_scale(levels).view(-1, 1, 1, 1))  # fmt: skip


def test_untrained_residual_model_samples_the_bicubic_upsampling():
    """Through the sampler (DDIM over an x0 prediction): an untrained residual model returns the
    bicubic upsampling of the 8-bit input, whatever the noise."""
    from magicvideo.upsampling import bicubic_clips, upsample_clips

    model = tiny_upsampler(residual=True, prediction_type="sample", default_noise_level=0)
    clips = torch.rand(2, 3, 3, 8, 8) * 2 - 1
    hr = upsample_clips(model, clips, seeds=[0, 1], num_inference_steps=5)
    ref = bicubic_clips(quantize(clips))
    assert hr.shape == ref.shape == (2, 3, 3, 32, 32)
    # the last DDIM step lands on alphas_cumprod[0] (not 1): up to its noise, 0.01 x the initial draw
    assert (hr - ref).abs().mean() < 0.02, (hr - ref).abs().mean()
