"""Model configs: keys that must agree with each other are checked when the config is loaded, and
the error names them (issue 18.2), instead of a wrong clip size or a raw matmul error later."""

from __future__ import annotations

import pytest
import yaml

from magicvideo.build import build_pipeline, load_model_config
from magicvideo.configs import CONFIG_ROOT, ConfigError


def tiny_yaml(tmp_path, **overrides) -> str:
    """configs/model/tiny.yaml with dotted-key `overrides`, written to a file; its path."""
    from magicvideo.configs import apply_overrides

    data = yaml.safe_load((CONFIG_ROOT / "model" / "tiny.yaml").read_text())
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(apply_overrides(data, {k.replace("__", "."): v for k, v in overrides.items()})))
    return str(path)


# One case per pair (or group) of related keys: the override that breaks it, the error's wording.
RELATED = {
    "resolution vs unet.sample_size x VAE downsampling": (
        {"resolution": 128}, r"resolution: 128 does not match unet.sample_size 8 x the VAE's downsampling 8 .* = 64 px"),
    "VAE levels vs resolution": (
        {"vae__block_out_channels": [8, 16, 16]}, r"resolution: 64 does not match unet.sample_size 8 x the VAE's downsampling 4"),
    "text_encoder.hidden_size vs unet.cross_attention_dim": (
        {"text_encoder__hidden_size": 48}, r"text_encoder.hidden_size: 48 != unet.cross_attention_dim 32"),
    "vae.latent_channels vs unet.in_channels": (
        {"vae__latent_channels": 8}, r"unet.in_channels: 4 != vae.latent_channels 8"),
    "vae.latent_channels vs unet.out_channels": (
        {"unet__out_channels": 8}, r"unet.out_channels: 8 != vae.latent_channels 4"),
    "unet.down_block_types vs unet.block_out_channels": (
        {"unet__down_block_types": ["DownBlock2D"]}, r"unet.down_block_types: 1 blocks != 2 unet.block_out_channels"),
    "unet.up_block_types vs unet.block_out_channels": (
        {"unet__up_block_types": ["UpBlock2D"] * 3}, r"unet.up_block_types: 3 blocks != 2 unet.block_out_channels"),
    "unet.attention_head_dim list vs unet.block_out_channels": (
        {"unet__attention_head_dim": [4]}, r"unet.attention_head_dim: 1 entries != 2 unet.block_out_channels"),
    "unet heads vs widths": (
        {"unet__attention_head_dim": 5}, r"unet.block_out_channels: 32 is not divisible by unet.attention_head_dim 5"),
    "unet.norm_num_groups vs widths": (
        {"unet__norm_num_groups": 12}, r"unet.block_out_channels: \[32, 64\] not divisible by unet.norm_num_groups 12"),
    "vae.norm_num_groups vs widths": (
        {"vae__norm_num_groups": 3}, r"vae.block_out_channels: \[8, 16, 16, 16\] not divisible by vae.norm_num_groups 3"),
    "text_encoder heads vs width": (
        {"text_encoder__num_attention_heads": 3}, r"text_encoder.hidden_size: 32 is not divisible by text_encoder.num_attention_heads 3"),
    "vae.temporal_layers vs decoder sites": (
        {"vae__temporal_layers": 6}, r"vae.temporal_layers: 6 > 5"),
    "vae.temporal_head_dim vs decoder widths": (
        {"vae__temporal_head_dim": 5}, r"vae.temporal_head_dim: 5 splits the decoder's 16 channels"),
}


@pytest.mark.parametrize("overrides,message", RELATED.values(), ids=RELATED.keys())
def test_related_keys_fail_at_load_naming_the_key(tmp_path, overrides, message):
    path = tiny_yaml(tmp_path, **overrides)
    with pytest.raises(ConfigError, match=message) as info:
        build_pipeline(path)
    assert str(info.value).startswith(f"{path}: ") and "<root>" not in str(info.value) and "Value error" not in str(info.value)


def test_every_problem_is_reported_at_once(tmp_path):
    with pytest.raises(ConfigError, match=r"resolution: 128 .*; text_encoder.hidden_size: 48"):
        load_model_config(tiny_yaml(tmp_path, resolution=128, text_encoder__hidden_size=48))


def test_shipped_model_configs_agree():
    from magicvideo.training.shapes import load_shapes_recipe

    for name in ("tiny", "sd15"):
        assert load_model_config(name).related_key_problems() == []
    for recipe in ("default", "tiny"):
        assert load_shapes_recipe(recipe).model.related_key_problems() == []


def test_config_edited_by_assignment_is_checked_by_build_pipeline():
    """Keys edited one at a time may disagree in between; building from the result checks them."""
    cfg = load_model_config("tiny")
    cfg.resolution = 32  # the U-Net's sample_size (8) is left as it was
    with pytest.raises(ConfigError, match=r"model config 'tiny': resolution: 32 does not match unet.sample_size 8"):
        build_pipeline(cfg)
    cfg.unet.sample_size = 4
    pipe = build_pipeline(cfg)
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 32


def test_inline_model_of_a_training_config_names_the_section(tmp_path):
    from magicvideo.training.config import load_train_config

    model = yaml.safe_load((CONFIG_ROOT / "model" / "tiny.yaml").read_text())
    model["text_encoder"]["hidden_size"] = 48
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"stage": "keyframe", "model": model}))
    with pytest.raises(ConfigError, match=r"model: text_encoder.hidden_size: 48 != unet.cross_attention_dim 32"):
        load_train_config(path)


def test_zero_terminal_snr_schedule_reaches_the_scheduler_and_the_sampler():
    """The shapes recipe's schedule (Lin et al. 2023): SNR 0 at the last training step, v-prediction,
    sampling from t = 999; a sampler that cannot take that schedule is refused by name."""
    from magicvideo.build import build_scheduler
    from magicvideo.pipeline import make_scheduler
    from magicvideo.training.shapes import load_shapes_recipe

    model = load_shapes_recipe("default").model
    assert model.scheduler.rescale_betas_zero_snr and model.scheduler.prediction_type == "v_prediction"
    sched = build_scheduler(model)
    assert float(sched.alphas_cumprod[-1]) < 1e-6  # SD's own schedule ends at 0.0047
    sched.set_timesteps(25)
    assert int(sched.timesteps[0]) == 999
    plain = build_scheduler(load_model_config("tiny"))
    assert float(plain.alphas_cumprod[-1]) > 1e-3 and plain.config.timestep_spacing == "leading"
    for name in ("dpm++", "euler", "unipc"):
        assert make_scheduler(name, dict(sched.config)).config.rescale_betas_zero_snr
    with pytest.raises(ValueError, match="zero-terminal-SNR"):
        make_scheduler("pndm", dict(sched.config))
