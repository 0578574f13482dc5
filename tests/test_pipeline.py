"""MagicVideoPipeline: per-sample seeds, schedulers, CFG, save/load, outputs, errors; CLI; FLOPs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magicvideo.build import build_pipeline, load_model_config
from magicvideo.pipeline import MagicVideoPipeline

PROMPTS = ["a red circle moving left", "a blue square moving up", "a green triangle grows"]


@pytest.fixture
def tiny_pipeline(tiny_pipeline_4f):
    """4 key frames here: every test below runs the same code as at configs/model/tiny.yaml's 16."""
    return tiny_pipeline_4f


def tiny_4f_yaml(tmp_path) -> str:
    import yaml

    from magicvideo.configs import CONFIG_ROOT

    data = yaml.safe_load((CONFIG_ROOT / "model" / "tiny.yaml").read_text())
    (tmp_path / "tiny4.yaml").write_text(yaml.safe_dump({**data, "num_frames": 4}))
    return str(tmp_path / "tiny4.yaml")


# ddim (deterministic) and euler_a (fresh noise at every step, from each sample's generator) in the
# quick loop; the other two samplers run the same per-sample code. PyTorch's default threads here: the
# tolerance was set with them (one thread picks other kernels for batches of 3 and 1)
@pytest.mark.parametrize("scheduler", ["ddim", pytest.param("dpm++", marks=pytest.mark.slow),
                                       pytest.param("euler", marks=pytest.mark.slow), "euler_a"])
def test_sample_k_of_a_batch_equals_it_alone(tiny_pipeline, scheduler):
    tiny_pipeline.set_scheduler(scheduler)
    kw = dict(num_inference_steps=3, guidance_scale=4.0, output_type="latent")
    batch = tiny_pipeline(PROMPTS, seed=[11, 12, 13], **kw).frames
    alone = tiny_pipeline([PROMPTS[1]], seed=[12], **kw).frames
    torch.testing.assert_close(batch[1:2], alone, atol=1e-5, rtol=1e-4)
    again = tiny_pipeline(PROMPTS[::-1], seed=[13, 12, 11], **kw).frames
    torch.testing.assert_close(batch, again.flip(0), atol=1e-5, rtol=1e-4)


@pytest.mark.usefixtures("one_thread")  # tiny models: as fast, no spinning against other processes
def test_seeds_and_guidance_change_the_sample(tiny_pipeline):
    kw = dict(num_inference_steps=2, output_type="latent")
    a = tiny_pipeline(PROMPTS[0], seed=1, **kw).frames
    b = tiny_pipeline(PROMPTS[0], seed=2, **kw).frames
    c = tiny_pipeline(PROMPTS[0], seed=1, guidance_scale=1.0, **kw).frames
    d = tiny_pipeline(PROMPTS[0], seed=1, negative_prompt="blurry", **kw).frames
    assert not torch.allclose(a, b) and not torch.allclose(a, c) and not torch.allclose(a, d)


@pytest.mark.usefixtures("one_thread")
def test_guidance_rescale_is_diffusers_rescale_noise_cfg(tiny_pipeline, monkeypatch):
    """phi = 0 is plain CFG; phi > 0 pulls each guided prediction's std toward the text branch's
    (Lin et al. 2023, eq. 15-16), checked on the prediction of the first step by hand."""
    kw = dict(num_inference_steps=1, guidance_scale=5.0, output_type="latent", seed=3)
    plain = tiny_pipeline(PROMPTS[0], **kw).frames
    assert torch.equal(plain, tiny_pipeline(PROMPTS[0], guidance_rescale=0.0, **kw).frames)
    preds = []
    step = tiny_pipeline.scheduler.step

    def spy(pred, t, latents, **k):
        preds.append(pred)
        return step(pred, t, latents, **k)

    monkeypatch.setattr(tiny_pipeline.scheduler, "step", spy)
    forward = tiny_pipeline.unet.forward
    raw = []
    monkeypatch.setattr(tiny_pipeline.unet, "forward", lambda *a, **k: raw.append(forward(*a, **k)) or raw[-1])
    tiny_pipeline(PROMPTS[0], guidance_rescale=0.7, **kw)
    uncond, text = raw[0].sample.chunk(2)
    cfg = uncond + 5.0 * (text - uncond)
    dims = tuple(range(1, cfg.ndim))
    want = 0.7 * cfg * text.std(dim=dims, keepdim=True) / cfg.std(dim=dims, keepdim=True) + 0.3 * cfg
    torch.testing.assert_close(preds[0], want)


@pytest.mark.usefixtures("one_thread")
def test_uint8_frames_and_mp4(tiny_pipeline, tmp_path):
    import av

    from magicvideo.video_io import write_mp4

    out = tiny_pipeline(PROMPTS[:2], seed=[0, 1], num_inference_steps=2).frames
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (2, 4, 64, 64, 3)
    path = write_mp4(tmp_path / "clip.mp4", out[0], fps=8)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (64, 64, 3)
    assert not list(tmp_path.glob(".clip*"))  # no temporary file left behind
    pt = tiny_pipeline(PROMPTS[0], num_inference_steps=2, output_type="pt").frames
    assert pt.shape == (1, 3, 4, 64, 64)


@pytest.mark.usefixtures("one_thread")
def test_prompt_embeds_path(tiny_pipeline):
    emb = tiny_pipeline.encode_prompt([PROMPTS[0]])
    a = tiny_pipeline(prompt_embeds=emb, seed=3, num_inference_steps=2, output_type="latent").frames
    b = tiny_pipeline(PROMPTS[0], seed=3, num_inference_steps=2, output_type="latent").frames
    torch.testing.assert_close(a, b)


@pytest.mark.usefixtures("one_thread")
def test_pipeline_save_load_round_trip(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "pipe")
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tmp_path / "pipe" / sub).is_dir()
    assert list((tmp_path / "pipe" / "unet").glob("*.safetensors"))
    loaded = MagicVideoPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    for name in ("unet", "vae", "text_encoder"):
        a, b = getattr(tiny_pipeline, name).state_dict(), getattr(loaded, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    kw = dict(seed=5, num_inference_steps=2, output_type="latent")
    assert torch.equal(tiny_pipeline(PROMPTS[0], **kw).frames, loaded(PROMPTS[0], **kw).frames)


def test_pipeline_errors(tiny_pipeline):
    with pytest.raises(ValueError, match="one seed per prompt"):
        tiny_pipeline(PROMPTS, seed=[1, 2])
    with pytest.raises(ValueError, match="multiples of 8"):
        tiny_pipeline(PROMPTS[0], height=60)
    with pytest.raises(ValueError, match="unknown scheduler"):
        tiny_pipeline.set_scheduler("nope")
    # other frame counts than the model's 4-frame window: a sliding-window clip (magicvideo.long_video)
    assert tiny_pipeline(PROMPTS[0], num_frames=8, num_inference_steps=1, output_type="latent").frames.shape[2] == 8
    with pytest.raises(ValueError, match="num_frames must be a positive integer"):
        tiny_pipeline(PROMPTS[0], num_frames=-1, num_inference_steps=1)


def test_model_config_errors(tmp_path):
    from magicvideo.configs import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nunet:\n  block_out_channels: [32, 64]\n  layer_per_block: 1\n")
    with pytest.raises(ConfigError, match=r"unet.layer_per_block: Extra inputs are not permitted"):
        load_model_config(bad)
    bad.write_text("name: x\ntemporal_attention: sideways\n")
    with pytest.raises(ConfigError, match="temporal_attention"):
        load_model_config(bad)
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_model_config(bad)
    with pytest.raises(ConfigError, match="no model config named 'nope'"):
        load_model_config("nope")
    with pytest.raises(FileNotFoundError, match="pretrained_2d folder not found"):
        cfg = load_model_config("tiny").model_copy(update={"pretrained_2d": str(tmp_path / "sd")})
        build_pipeline(cfg, weights="pretrained")


@pytest.mark.usefixtures("one_thread")
def test_pretrained_build_from_a_diffusers_sd_folder(tiny_pipeline, tmp_path):
    """A local SD-1.x-layout folder (2D U-Net, image VAE, CLIP) inflates into a working pipeline."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    cfg = load_model_config("tiny").model_copy(update={"num_frames": 4})
    sd = tmp_path / "sd"
    # the folder's own sample_size (SD 1.5: 64) does not size the output: the config's resolution does
    unet2d = UNet2DConditionModel(**{**cfg.unet.model_dump(), "sample_size": 16})
    unet2d.save_pretrained(sd / "unet")
    vae = tiny_pipeline.vae
    AutoencoderKL(**{k: vae.config[k] for k in ("down_block_types", "up_block_types", "block_out_channels",
                                                 "layers_per_block", "latent_channels", "norm_num_groups")}).save_pretrained(sd / "vae")
    tiny_pipeline.text_encoder.save_pretrained(sd / "text_encoder")
    tiny_pipeline.tokenizer.save_pretrained(sd / "tokenizer")
    tiny_pipeline.scheduler.save_pretrained(sd / "scheduler")
    pipe = build_pipeline(cfg.model_copy(update={"pretrained_2d": str(sd)}), weights="pretrained")
    torch.testing.assert_close(pipe.unet.conv_in.weight, unet2d.conv_in.weight)
    assert pipe.unet.config.sample_size == 8
    pipe.set_progress_bar_config(disable=True)
    assert pipe(PROMPTS[0], num_inference_steps=1).frames.shape == (1, 4, 64, 64, 3)
    import shutil

    shutil.rmtree(sd / "text_encoder")
    with pytest.raises(FileNotFoundError, match="text_encoder subfolder not found"):
        build_pipeline(cfg.model_copy(update={"pretrained_2d": str(sd)}), weights="pretrained")


@pytest.mark.usefixtures("one_thread")
def test_cli_generate_and_flops(tmp_path, capsys):
    from magicvideo.cli import main

    out = tmp_path / "clip.mp4"
    assert main(["generate", "--config", tiny_4f_yaml(tmp_path), "--prompt", "a red circle moving left", "--steps", "2",
                 "--out", str(out),
                 "--save-pipeline", str(tmp_path / "pipe")]) == 0
    assert out.is_file() and out.stat().st_size > 1000
    assert main(["generate", "--pipeline", str(tmp_path / "pipe"), "--prompt", "a", "--prompt", "b",
                 "--steps", "1", "--out", str(tmp_path / "c.mp4")]) == 0
    assert (tmp_path / "c_0.mp4").is_file() and (tmp_path / "c_1.mp4").is_file()
    assert main(["generate", "--pipeline", str(tmp_path / "missing"), "--prompt", "a"]) == 2
    assert "pipeline folder not found" in capsys.readouterr().err
    assert main(["flops", "--config", "tiny"]) == 0
    assert "total" in capsys.readouterr().out


def test_flop_count_matches_hand_count_for_a_conv():
    """The counter's convention: 2 FLOPs per multiply-add; check one layer by hand."""
    from magicvideo.build import build_unet
    from magicvideo.flops import unet_step_cost

    cfg = load_model_config("tiny")
    cost = unet_step_cost(build_unet(cfg), batch=2)
    # conv_in: 4 -> 32 channels, 3x3, on 2 clips x 16 frames x 8 x 8 positions
    assert cost.by_module["conv_in"] == 2 * (2 * 16 * 8 * 8) * 32 * 4 * 9
    assert cost.flops == sum(cost.by_module.values())
    assert cost.params == sum(p.numel() for p in build_unet(cfg).parameters())


def test_shared_pipeline_fixture_puts_the_scheduler_back_even_after_a_failure():
    """The session-wide pipelines are handed out by tests/conftest.py's ``_shared``: a test that
    swaps the sampler and then fails does not leave it swapped for the next test."""
    from types import SimpleNamespace

    from tests.conftest import _shared

    pipe = SimpleNamespace(scheduler="ddim")
    for ending in ("passes", "fails"):
        handed = _shared(pipe)
        next(handed).scheduler = "euler"
        if ending == "passes":
            with pytest.raises(StopIteration):
                next(handed)
        else:
            with pytest.raises(AssertionError):
                handed.throw(AssertionError("the test failed"))
        assert pipe.scheduler == "ddim", ending


@pytest.mark.usefixtures("one_thread")
def test_fast_inference_keeps_the_samples_and_compiles_the_unet_and_the_video_decode(tmp_path, monkeypatch):
    """enable_fast_inference: fused QKV and channels-last U-Net and VAE give the same clip (no compile
    here); with a compile mode, torch.compile gets the U-Net and the VideoVAE's decode_video, whose
    state-dict keys stay unchanged, and `decoder=False` leaves the VAE alone."""
    pipe = build_pipeline(load_model_config(tiny_4f_yaml(tmp_path)), weights="random", seed=0)
    pipe.set_progress_bar_config(disable=True)
    kw = dict(num_inference_steps=2, guidance_scale=3.0, seed=[4, 5], output_type="pt")
    before = pipe(PROMPTS[:2], **kw).frames
    keys = sorted(pipe.vae.state_dict())
    pipe.enable_fast_inference(None)
    torch.testing.assert_close(pipe(PROMPTS[:2], **kw).frames, before, atol=1e-4, rtol=1e-4)

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **_: compiled.append(fn) or fn)
    unet, decode = pipe.unet, pipe.vae.decode_video
    pipe.enable_fast_inference("default")
    assert compiled == [unet, decode] and "decode_video" in vars(pipe.vae)
    assert sorted(pipe.vae.state_dict()) == keys
    torch.testing.assert_close(pipe(PROMPTS[:2], **kw).frames, before, atol=1e-4, rtol=1e-4)

    other = build_pipeline(load_model_config(tiny_4f_yaml(tmp_path)), weights="random", seed=0)
    compiled.clear()
    other.enable_fast_inference("default", decoder=False)
    assert compiled == [other.unet] and "decode_video" not in vars(other.vae)
    assert next(other.vae.parameters()).is_contiguous()
