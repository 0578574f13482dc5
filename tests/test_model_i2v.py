"""ImageToVideoUNet (Magic 1-For-1's I2V model): initialisation from the key-frame U-Net (exactly
the key-frame model at init), the conditioning layout, the image token, the training objective and
trainer on tiny clips, and `first_frame_unet` (the key-frame model's frame 0 as an image model)."""

from __future__ import annotations

import pytest
import torch

from magicvideo.models import ImageToVideoUNet
from magicvideo.models.i2v import first_frame_unet
from tests.test_model_interpolation import keyframe_unet, tiny_image_encoder

pytestmark = pytest.mark.usefixtures("one_thread")


def inputs(seed: int = 0, b: int = 2, f: int = 16):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 4, f, 8, 8, generator=g), torch.tensor([10, 500]), torch.randn(b, 5, 32, generator=g),
            torch.tensor([8.0, 4.0]))  # fmt: skip


def test_from_keyframe_unet_predicts_what_the_keyframe_model_does():
    unet = keyframe_unet()
    model = ImageToVideoUNet.from_keyframe_unet(unet).eval()
    assert model.config.in_channels == 9 and model.mask_channel and model.window == 16
    sample, t, text, fps = inputs()
    with torch.no_grad():
        ref = unet(sample, t, text, fps=fps).sample
        for k in (1, 3):
            frames = torch.randn(2, 4, k, 8, 8)
            out = model(sample, t, text, fps=fps, frames=frames).sample
            assert torch.equal(out, ref)  # zero new channels: the key-frame model exactly
        # once the new channels are trained, the frame latents matter
        model.conv_in.weight[:, 4:].normal_(0, 0.1)
        assert not torch.allclose(model(sample, t, text, fps=fps, frames=frames).sample, ref)


def test_condition_layout_and_tokens():
    model = ImageToVideoUNet.from_keyframe_unet(keyframe_unet())
    frames = torch.randn(2, 4, 2, 8, 8)
    cond = model.condition_channels(frames, 16)
    assert cond.shape == (2, 5, 16, 8, 8)
    assert torch.equal(cond[:, :4, :2], frames) and not cond[:, :4, 2:].any()
    assert cond[:, 4, :2].eq(1).all() and not cond[:, 4, 2:].any()
    text, img = torch.randn(2, 5, 32), torch.randn(2, 32)
    tokens = model.condition_tokens(text, img)
    assert tokens.shape == (2, 6, 32) and torch.equal(tokens[:, -1], img)
    assert model.condition_tokens(text, None) is text
    with pytest.raises(ValueError, match="do not fit text tokens"):
        model.condition_tokens(text, torch.randn(2, 16))
    with pytest.raises(ValueError, match="1 <= k < 16"):
        model.condition_channels(torch.randn(2, 4, 16, 8, 8), 16)
    sample, t, text, fps = inputs()
    with pytest.raises(ValueError, match="needs frames"):
        model(sample, t, text, fps=fps)
    with pytest.raises(ValueError, match="key-frame U-Net"):
        ImageToVideoUNet.from_keyframe_unet(model)


def test_save_load_roundtrip(tmp_path):
    model = ImageToVideoUNet.from_keyframe_unet(keyframe_unet()).eval()
    model.save_pretrained(tmp_path / "i2v")
    again = ImageToVideoUNet.from_pretrained(tmp_path / "i2v").eval()
    sample, t, text, fps = inputs()
    frames = torch.randn(2, 4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(again(sample, t, text, fps=fps, frames=frames).sample,
                                   model(sample, t, text, fps=fps, frames=frames).sample)  # fmt: skip


def test_first_frame_unet_is_frame_0_of_the_keyframe_model():
    unet = keyframe_unet()
    image = first_frame_unet(unet)
    sample, t, text, fps = inputs()
    with torch.no_grad():
        full = unet(sample, t, text, fps=fps).sample
        one = image(sample[:, :, :1], t, text, fps=fps).sample
    torch.testing.assert_close(one, full[:, :, :1], atol=1e-5, rtol=1e-4)
    bidir = keyframe_unet()
    bidir.register_to_config(temporal_attention="bidirectional")
    with pytest.raises(ValueError, match="directed"):
        first_frame_unet(bidir)


def test_i2v_loss_and_trainer_step(tmp_path):
    from diffusers import DDPMScheduler

    from magicvideo.build import build_pipeline
    from magicvideo.conditioning import ImageEmbedder
    from magicvideo.training.config import validate_train_config
    from magicvideo.training.i2v import I2VTrainer, draw_context, i2v_loss

    import random

    ks = [draw_context(4, random.Random(i)) for i in range(400)]
    assert set(ks) == {1, 2, 3, 4} and 0.4 < ks.count(1) / len(ks) < 0.7
    pipe = build_pipeline("tiny", weights="random", seed=0)
    model = ImageToVideoUNet.from_keyframe_unet(pipe.unet)
    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    latents = torch.randn(2, 4, 16, 8, 8)
    loss = i2v_loss(model, sched, latents, torch.randn(2, 5, 32), torch.randn(2, 1, 32), 2, torch.tensor([8.0, 8.0]),
                    torch.Generator().manual_seed(0))  # fmt: skip
    assert loss.ndim == 0 and torch.isfinite(loss)

    data = [{"video": torch.rand(16, 3, 64, 64) * 2 - 1, "caption": c, "nu": 8.0}
            for c in ("a red circle moving left", "a blue square moving up")]  # fmt: skip
    cfg = validate_train_config({"stage": "keyframe", "model": "tiny", "steps": 2, "batch_size": 2, "device": "cpu",
                                 "out_dir": str(tmp_path / "run"), "mixed_precision": "no",
                                 "ema": {"enabled": True}})  # fmt: skip
    trainer = I2VTrainer(cfg, data, model, pipe.vae, sched, pipe.tokenizer, pipe.text_encoder,
                         ImageEmbedder(tiny_image_encoder(32)), device="cpu")  # fmt: skip
    summary = trainer.train(progress=False)
    assert summary["steps"] == 2 and summary["loss"] == summary["loss"]
    pipe.save_pretrained(tmp_path / "pipe")
    trainer.save_pipeline(tmp_path / "pipe", dtype=torch.float16)
    from magicvideo.pipeline import MagicVideoPipeline

    loaded = MagicVideoPipeline.from_pretrained(tmp_path / "pipe")
    assert isinstance(loaded.i2v, ImageToVideoUNet) and loaded.image_encoder is not None
    with pytest.raises(ValueError, match="conditioning: text"):
        I2VTrainer(cfg.model_copy(update={"conditioning": "image"}), data, model, pipe.vae, sched, pipe.tokenizer,
                   pipe.text_encoder, ImageEmbedder(tiny_image_encoder(32)), device="cpu")  # fmt: skip
