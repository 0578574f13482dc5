"""InterpolationUNet (paper 3.2): initialisation from the key-frame U-Net, the windows' layout
(16 -> 61 frames, batched), the training objective on held-out frames, the trainer on real
shapes clips, and the `interpolation` stage of `magicvideo train shapes`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from magicvideo.build import build_unet, load_model_config
from magicvideo.models import InterpolationUNet, MagicVideoUNet
from magicvideo.models.interpolation import (insert_frames, interpolated_length, keyframe_pairs, pair_tokens,
                                             window_frames)  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_thread")


def keyframe_unet(seed: int = 0) -> MagicVideoUNet:
    """The tiny key-frame U-Net with its video additions moved off their identity init, so that
    frame positions, temporal attention and FPS all matter."""
    torch.manual_seed(seed)
    unet = build_unet(load_model_config("tiny")).eval()
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "adaptor" in name or "attn_temp.to_out" in name or "fps_embedding.linear_2" in name:
                p.add_(0.2 * torch.randn_like(p))
    return unet


def tiny_image_encoder(dim: int = 32, seed: int = 0):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    return CLIPVisionModelWithProjection(CLIPVisionConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, projection_dim=dim)).eval()  # fmt: skip


def test_from_keyframe_unet_starts_as_the_keyframe_model():
    """Every key-frame weight is kept; the new input channels start at zero, so with the
    key-frame model's directed attention the window model equals the key-frame model on the
    first 5 frames of a clip, whatever the key-frame latents."""
    unet = keyframe_unet()
    model = InterpolationUNet.from_keyframe_unet(unet, temporal_attention="directed").eval()
    assert model.config.in_channels == 9 and model.config.num_frames == 5 and model.mask_channel
    assert model.window == 5 and model.new_frames == 3
    w = model.conv_in.weight
    assert torch.equal(w[:, :4], unet.conv_in.weight) and not w[:, 4:].any()
    assert torch.equal(model.conv_in.adaptor_scale, unet.conv_in.adaptor_scale[:5])
    x, text = torch.randn(2, 4, 16, 8, 8), torch.randn(2, 3, 32)
    with torch.no_grad():
        ref = unet(x, 10, text, fps=8).sample[:, :, :5]
        out = model(x[:, :, :5], 10, text, fps=8, keyframes=torch.randn(2, 4, 2, 8, 8)).sample
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
        # the default (bidirectional): the new frames also see the right-hand key frame
        bi = InterpolationUNet.from_keyframe_unet(unet).eval()
        assert bi.config.temporal_attention == "bidirectional"
        assert not torch.allclose(bi(x[:, :, :5], 10, text, fps=8, keyframes=torch.zeros(2, 4, 2, 8, 8)).sample, ref)
        # once the new channels have weights, the key frames' latents change the prediction
        model.conv_in.weight[:, 4:].normal_(0, 0.1)
        a = model(x[:, :, :5], 10, text, fps=8, keyframes=torch.zeros(2, 4, 2, 8, 8)).sample
        b = model(x[:, :, :5], 10, text, fps=8, keyframes=torch.ones(2, 4, 2, 8, 8)).sample
        assert not torch.allclose(a, b)


def test_layout_options_and_errors(tmp_path):
    unet = keyframe_unet()
    plain = InterpolationUNet.from_keyframe_unet(unet, mask_channel=False, window=4)
    assert plain.config.in_channels == 8 and not plain.mask_channel and plain.new_frames == 2
    plain.save_pretrained(tmp_path / "m")
    loaded = InterpolationUNet.from_pretrained(tmp_path / "m")
    assert type(loaded) is InterpolationUNet and loaded.config.in_channels == 8 and loaded.window == 4
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(ValueError, match="window must be >= 3"):
        InterpolationUNet.from_keyframe_unet(unet, window=2)
    with pytest.raises(ValueError, match="cannot switch temporal attention"):
        InterpolationUNet.from_keyframe_unet(unet, temporal_attention="none")
    model = InterpolationUNet.from_keyframe_unet(unet)
    with pytest.raises(ValueError, match="needs keyframes"):
        model(torch.randn(1, 4, 5, 8, 8), 1, torch.randn(1, 2, 32), fps=8)
    with pytest.raises(ValueError, match="sample must be"):
        model(torch.randn(1, 4, 16, 8, 8), 1, torch.randn(1, 2, 32), fps=8, keyframes=torch.randn(1, 4, 2, 8, 8))
    # a key-frame model of fewer frames than the window: the extra adaptor rows are its mean row
    short = build_unet(load_model_config("tiny").model_copy(update={"num_frames": 4}))
    with torch.no_grad():
        short.conv_in.adaptor_bias.copy_(torch.arange(4.0)[:, None].expand(4, 32))
    assert InterpolationUNet.from_keyframe_unet(short).conv_in.adaptor_bias[:, 0].tolist() == [0, 1, 2, 3, 1.5]


def test_windows_are_batched_and_give_61_frames():
    """16 key frames -> 15 windows per clip, clip-major rows; the new frames go between their
    key frames, the key frames are kept exactly: 61 frames."""
    b, k = 3, 16
    z = torch.randn(b, 4, k, 2, 2)
    pairs = keyframe_pairs(z)
    assert pairs.shape == (b * 15, 4, 2, 2, 2)
    assert torch.equal(pairs[15 + 7, :, 0], z[1, :, 7]) and torch.equal(pairs[15 + 7, :, 1], z[1, :, 8])
    windows = torch.randn(b * 15, 4, 5, 2, 2)
    out = insert_frames(z, windows)
    assert out.shape[2] == interpolated_length(k) == 61
    assert torch.equal(out[:, :, ::4], z)
    assert torch.equal(out[2, :, 4 * 9 + 1 : 4 * 9 + 4], windows[2 * 15 + 9, :, 1:4])
    emb = torch.randn(b, k, 6)
    tokens = pair_tokens(emb)
    assert tokens.shape == (b * 15, 2, 6) and torch.equal(tokens[15 + 7], emb[1, 7:9])
    with pytest.raises(ValueError, match="windows for 3 clips"):
        insert_frames(z, windows[:-1])
    clip = torch.arange(20.0).view(1, 1, 20, 1).expand(2, 3, 20, 2)
    got = window_frames(clip, torch.tensor([0, 3]), torch.tensor([1, 4]))
    assert got[:, 0, :, 0].tolist() == [[0, 1, 2, 3, 4], [3, 7, 11, 15, 19]]


def test_loss_is_eq6_on_the_held_out_frames_only():
    """The loss is the MSE over window positions 1-3 (recomputed by hand from the same random
    draws), and its gradient reaches the zero-initialised conditioning channels."""
    from diffusers import DDPMScheduler

    from magicvideo.training.interpolation import interpolation_loss

    model = InterpolationUNet.from_keyframe_unet(keyframe_unet())
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    windows, cond, fps = torch.randn(2, 4, 5, 8, 8), torch.randn(2, 2, 32), torch.tensor([8.0, 24.0])
    loss = interpolation_loss(model, sched, windows, cond, fps, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(windows.shape, generator=g)
    t = torch.randint(0, 1000, (2,), generator=g)
    pred = model(sched.add_noise(windows, noise, t), t, cond, fps=fps, keyframes=windows[:, :, [0, 4]]).sample
    torch.testing.assert_close(loss, ((pred - noise)[:, :, 1:4] ** 2).mean())
    assert not torch.isclose(loss, ((pred - noise) ** 2).mean())
    loss.backward()
    assert model.conv_in.weight.grad[:, 4:].abs().sum() > 0


def shapes_clips(n: int, frames: int, size: int) -> list[dict]:
    """`n` real shapes clips (rendered, no codec) of `frames` consecutive frames, as dataset items."""
    from magicvideo.data.shapes import ShapesSpec, render, sample_clip

    items = []
    for i in range(n):
        clip = sample_clip(ShapesSpec(size=size, durations=[3.0], fps=[8.0]), "train", i)
        video = render(clip, size)[:frames]
        items.append({"video": torch.from_numpy(video).permute(0, 3, 1, 2).float() / 127.5 - 1,
                      "caption": clip.caption, "nu": float(clip.fps)})  # fmt: skip
    return items


def test_trainer_steps_on_real_clips_and_attaches_to_a_pipeline(tmp_path, tiny_pipeline):
    """A few optimizer steps on windows of rendered shapes clips, the stage's weights saved, and
    the model written into a pipeline folder that then interpolates."""
    from magicvideo.pipeline import MagicVideoPipeline
    from magicvideo.training.config import TrainConfig
    from magicvideo.training.interpolation import build_interpolation_trainer, sample_windows

    tiny_image_encoder().save_pretrained(tmp_path / "image_encoder")
    tiny_pipeline.unet.save_pretrained(tmp_path / "keyframe_unet")
    cfg = TrainConfig(stage="keyframe", model="tiny", conditioning="image", image_encoder=str(tmp_path / "image_encoder"),
                      init_unet=str(tmp_path / "keyframe_unet"), out_dir=str(tmp_path / "run"), steps=2, batch_size=2,
                      device="cpu", ema={"decay": 0.9}, optim={"lr": 1e-3})  # fmt: skip
    trainer = build_interpolation_trainer(cfg, dataset=shapes_clips(4, 12, 64))
    assert torch.equal(trainer.model.conv_in.weight[:, :4], tiny_pipeline.unet.conv_in.weight)
    before = trainer.model.conv_in.weight[:, 4:].detach().clone()
    summary = trainer.train(progress=False)
    assert summary["steps"] == 2 and np.isfinite(summary["loss"])
    assert not torch.equal(trainer.model.conv_in.weight[:, 4:], before)  # the new channels learn
    assert (tmp_path / "run" / "final" / "interpolation_ema" / "config.json").is_file()
    frames, d = sample_windows(torch.randn(64, 3, 12, 1, 1), 5, torch.Generator().manual_seed(0))
    assert set(d.tolist()) == {1, 2} and frames.shape == (64, 3, 5, 1, 1)

    tiny_pipeline.save_pretrained(tmp_path / "pipe")
    trainer.save_pipeline(tmp_path / "pipe", dtype=torch.float16)
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["interpolation"] == ["magicvideo.models.interpolation", "InterpolationUNet"]
    pipe = MagicVideoPipeline.from_pretrained(tmp_path / "pipe")
    assert pipe.interpolation.dtype == torch.float32  # stored in float16, loaded as float32
    pipe.set_progress_bar_config(disable=True)
    out = pipe("a red circle", stages="keyframes,interpolate", num_inference_steps=1, output_type="latent")
    assert out.frames.shape == (1, 4, 61, 8, 8)
    with pytest.raises(ValueError, match="set conditioning: image"):
        build_interpolation_trainer(cfg.model_copy(update={"conditioning": "text"}), dataset=shapes_clips(2, 12, 64))


def test_window_dataset_needs_one_span(tmp_path):
    from magicvideo.training.config import TrainConfig
    from magicvideo.training.interpolation import window_dataset

    cfg = TrainConfig(stage="keyframe", model="tiny", data={"csv": str(tmp_path / "x.csv"), "span": [16, 48]})
    with pytest.raises(ValueError, match="data.span: the interpolation stage reads"):
        window_dataset(cfg)


def test_default_recipe_with_interpolation_fits_30_mb():
    """The issue's budget: every committed weight, the interpolation U-Net (stored as float16)
    and the pipeline's copy of the CLIP image encoder included, at most 30 MB."""
    from transformers import CLIPModel, CLIPTextModel

    from magicvideo.build import build_text_encoder, build_vae
    from magicvideo.training.classifier import ShapesI3D
    from magicvideo.training.clip import clip_config
    from magicvideo.training.config import TrainConfig
    from magicvideo.training.shapes import load_shapes_recipe, shapes_words

    recipe = load_shapes_recipe("default")
    assert recipe.stages.interpolation["steps"] > 0 and recipe.stages.interpolation["data"]["span"] >= 5
    mc = recipe.model.model_copy(deep=True)
    mc.text_encoder.vocabulary = shapes_words()
    tokenizer, text = build_text_encoder(mc)
    assert isinstance(text, CLIPTextModel)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    unet = build_unet(mc)
    clip = CLIPModel(clip_config(TrainConfig(stage="clip", model=mc, clip=recipe.stages.clip["clip"]), tokenizer))
    width = recipe.stages.classifier["classifier"]["width"]
    classifier = ShapesI3D(["a"] * 5, [["x"] * 3, ["x"] * 6, ["x"] * 3, ["x"] * 8, ["x"] * 2], width=width)
    fp32 = count(unet) + count(build_vae(mc)) + count(text) + count(classifier) + count(clip)
    fp32 += count(clip.vision_model) + count(clip.visual_projection)  # pipeline/image_encoder
    fp16 = count(InterpolationUNet.from_keyframe_unet(unet))
    assert 4 * fp32 + 2 * fp16 <= 30e6, (fp32, fp16)


@pytest.mark.slow
def test_shapes_chain_interpolation_stage(tmp_path):
    """`magicvideo train shapes --recipe tiny` trains the interpolation stage after the key-frame
    model, writes it into OUT/pipeline, reuses it on a re-run, and re-attaches it when the
    pipeline folder was rewritten (~15 s)."""
    import shutil

    from magicvideo.cli import main
    from magicvideo.pipeline import MagicVideoPipeline

    out = tmp_path / "shapes"
    args = ["train", "shapes", str(out), "--recipe", "tiny", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    s = report["stages"]["interpolation"]
    assert s["steps"] == 2 and s["loss"] > 0
    cfg = json.loads((out / "runs" / "interpolation" / "done.json").read_text())["config"]
    assert cfg["init_unet"] == str(out / "runs" / "finetune" / "final" / "unet_ema") and cfg["data"]["span"] == 16
    pipe = MagicVideoPipeline.from_pretrained(out / "pipeline")
    pipe.set_progress_bar_config(disable=True)
    video = pipe("a red circle moving left slowly on a black background", stages="keyframes,interpolate",
                 num_inference_steps=2).frames  # fmt: skip
    assert video.shape == (1, 4 + 3 * 3, 32, 32, 3)  # tiny: 4 key frames -> 13
    shutil.rmtree(out / "pipeline" / "interpolation")  # as if the fine-tuning stage had rewritten the folder
    assert main([*args, "--stages", "interpolation"]) == 0
    assert json.loads((out / "report.json").read_text())["stages"]["interpolation"]["reused"]
    assert (out / "pipeline" / "interpolation" / "config.json").is_file()


def test_trainer_starts_from_a_saved_keyframe_pipeline(tmp_path, tiny_pipeline):
    """init_unet may name a whole key-frame pipeline folder (an interpolation model for a pipeline
    trained elsewhere): its U-Net, VAE and noise schedule are used, not the model config's."""
    from magicvideo.training.config import TrainConfig
    from magicvideo.training.interpolation import build_interpolation_trainer

    tiny_image_encoder().save_pretrained(tmp_path / "image_encoder")
    tiny_pipeline.save_pretrained(tmp_path / "pipe")
    cfg = TrainConfig(stage="keyframe", model="tiny", conditioning="image", image_encoder=str(tmp_path / "image_encoder"),
                      init_unet=str(tmp_path / "pipe"), out_dir=str(tmp_path / "run"), steps=1, batch_size=2,
                      device="cpu", seed=123)  # fmt: skip
    trainer = build_interpolation_trainer(cfg, dataset=shapes_clips(2, 12, 64))
    assert torch.equal(trainer.model.conv_in.weight[:, :4], tiny_pipeline.unet.conv_in.weight)
    assert not trainer.model.conv_in.weight[:, 4:].any()
    vae_ref = dict(tiny_pipeline.vae.named_parameters())
    assert all(torch.equal(p, vae_ref[n]) for n, p in trainer.vae.named_parameters())
    mc = load_model_config("tiny")
    mc.resolution, mc.unet.sample_size = 32, 4
    with pytest.raises(ValueError, match="makes 64 px frames"):
        build_interpolation_trainer(cfg.model_copy(update={"model": mc}), dataset=shapes_clips(2, 12, 64))


def test_residual_model_starts_as_the_latent_blend(tmp_path):
    """``residual=True``: the model denoises the correction to the key frames' latent blend; it
    starts with a zero last convolution (prediction 0), keeps every other key-frame weight, and its
    flag survives save/load. A plain model's reference is zero."""
    from magicvideo.models.interpolation import latent_blend

    pair = torch.randn(3, 4, 2, 8, 8)
    blend = latent_blend(pair, 5)
    for j in range(5):
        torch.testing.assert_close(blend[:, :, j], pair[:, :, 0] * (1 - j / 4) + pair[:, :, 1] * (j / 4))
    unet = keyframe_unet()
    model = InterpolationUNet.from_keyframe_unet(unet, residual=True).eval()
    assert model.residual and model.config.blend_residual
    assert not model.conv_out.weight.any() and not model.conv_out.bias.any()
    assert torch.equal(model.conv_in.weight[:, :4], unet.conv_in.weight)
    with torch.no_grad():
        out = model(torch.randn(3, 4, 5, 8, 8), 500, torch.randn(3, 2, 32), fps=32, keyframes=pair).sample
    assert not out.any()
    torch.testing.assert_close(model.reference(pair), blend)
    model.save_pretrained(tmp_path / "m")
    assert InterpolationUNet.from_pretrained(tmp_path / "m").residual
    plain = InterpolationUNet.from_keyframe_unet(unet)
    assert not plain.residual and not plain.reference(pair).any()
    assert not plain.conv_out.weight.equal(torch.zeros_like(plain.conv_out.weight))


def test_residual_loss_is_eq6_on_the_correction_to_the_blend():
    """For a residual model the diffused variable is the window minus its latent blend: the loss
    equals the plain objective recomputed by hand on that correction (same draws)."""
    from diffusers import DDPMScheduler

    from magicvideo.models.interpolation import latent_blend
    from magicvideo.training.interpolation import interpolation_loss

    model = InterpolationUNet.from_keyframe_unet(keyframe_unet(), residual=True)
    with torch.no_grad():
        model.conv_out.weight.normal_(0, 0.05)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                          prediction_type="v_prediction")  # fmt: skip
    windows, cond, fps = torch.randn(2, 4, 5, 8, 8), torch.randn(2, 2, 32), torch.tensor([8.0, 24.0])
    loss = interpolation_loss(model, sched, windows, cond, fps, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(windows.shape, generator=g)
    t = torch.randint(0, 1000, (2,), generator=g)
    r = windows - latent_blend(windows[:, :, [0, 4]], 5)
    assert not r[:, :, [0, 4]].any()  # the key positions carry no correction
    pred = model(sched.add_noise(r, noise, t), t, cond, fps=fps, keyframes=windows[:, :, [0, 4]]).sample
    torch.testing.assert_close(loss, ((pred - sched.get_velocity(r, noise, t))[:, :, 1:4] ** 2).mean())


def test_pipeline_adds_the_blend_back_for_a_residual_model(monkeypatch):
    """The pipeline holds a residual model's key positions at zero correction and returns the
    denoised correction plus the latent blend; the key frames stay exact."""
    from magicvideo.models.interpolation import keyframe_pairs, latent_blend
    from tests.test_pipeline_cascade import tiny_cascade

    pipe = tiny_cascade()
    pipe.register_modules(interpolation=InterpolationUNet.from_keyframe_unet(pipe.unet, residual=True).eval())
    keys = torch.randn(2, 4, 16, 8, 8)
    seen = {}
    correction = torch.randn(2 * 15, 4, 5, 8, 8)

    def denoise(model, latents, timesteps, cond, fps, guidance, generators, eta, known=None, known_mask=None, **kw):
        seen["known"], seen["mask"] = known, known_mask
        return correction

    monkeypatch.setattr(pipe, "denoise", denoise)
    out = pipe.interpolate(keys, seeds=[1, 2], num_inference_steps=2)
    assert not seen["known"][:, :, [0, 4]].any() and seen["mask"].flatten().tolist() == [True, False, False, False, True]
    expected = (correction + latent_blend(keyframe_pairs(keys), 5))[:, :, 1:4]  # (30, C, 3, h, w), clip-major
    got = torch.stack([out[:, :, 4 * i + 1 : 4 * i + 4] for i in range(15)], dim=1).flatten(0, 1)
    torch.testing.assert_close(got, expected)
    assert torch.equal(out[:, :, ::4], keys)
