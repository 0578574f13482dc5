"""The shapes image models: image VAE, CLIP pair, text-to-image U-Net. A few steps lower each
loss on a fixed batch; the saved artifacts load back in their standard formats."""

from __future__ import annotations

import math

import pytest
import torch

from magicvideo.build import load_model_config
from magicvideo.training import TrainConfig

CAPTIONS = ["a red circle moving left", "a blue square moving up", "a green triangle grows", "a yellow circle rotates"]


pytestmark = pytest.mark.usefixtures("one_thread")


def small_model():
    """configs/model/tiny.yaml at 32x32 pixels (4x4 latents)."""
    mc = load_model_config("tiny")
    mc.num_frames, mc.resolution, mc.unet.sample_size = 4, 32, 4
    return mc


def frames(n=4, seed=0):
    """Items of single frames: flat colour blocks, roughly what the shapes frames look like."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 1, 1, generator=g).expand(n, 3, 32, 32).clone() * 2 - 1
    for i in range(n):
        x[i, :, 8 + i : 20 + i, 8:20] = torch.rand(3, 1, 1, generator=g) * 2 - 1
    return [{"video": x[i : i + 1], "caption": CAPTIONS[i % 4]} for i in range(n)]


def batch_of(items):
    return {"video": torch.stack([b["video"] for b in items]), "caption": [b["caption"] for b in items]}


def config(tmp_path, stage, **kw):
    base = dict(stage=stage, model=small_model(), out_dir=str(tmp_path / stage), steps=4, batch_size=4, checkpoint_every=100,
                optim={"lr": 1e-3, "warmup_steps": 0}, ema={"enabled": False}, device="cpu", condition_dropout=0.0)  # fmt: skip
    return TrainConfig(**{**base, **kw})


# ---- image VAE ----------------------------------------------------------------------------------


def test_image_vae_loss_decreases_and_saves_an_autoencoderkl(tmp_path):
    from diffusers import AutoencoderKL

    from magicvideo.models import VideoAutoencoderKL
    from magicvideo.training.vae import build_image_vae_trainer, latent_scaling_factor, vae_loss

    data = frames()
    trainer = build_image_vae_trainer(config(tmp_path, "image_vae", steps=15, optim={"lr": 3e-3}), dataset=data)
    x = batch_of(data)["video"][:, 0]

    def fixed():
        with torch.no_grad():
            return float(vae_loss(trainer.model, x, 1e-6, torch.Generator().manual_seed(1)))

    before = fixed()
    trainer.train(progress=False)
    after = fixed()
    assert after < 0.7 * before, (before, after)
    vae = AutoencoderKL.from_pretrained(tmp_path / "image_vae" / "final" / "vae")
    scale = latent_scaling_factor(vae, x)
    assert math.isfinite(scale) and scale > 0
    vae.register_to_config(scaling_factor=scale)
    vae.save_pretrained(tmp_path / "vae")
    video = VideoAutoencoderKL.from_image_vae(AutoencoderKL.from_pretrained(tmp_path / "vae"), temporal_layers=1,
                                              temporal_head_dim=8)  # fmt: skip
    assert video.config.scaling_factor == pytest.approx(scale)


def test_vae_kl_term_is_a_per_element_mean():
    from magicvideo.training.vae import image_vae_from_config, vae_loss

    torch.manual_seed(0)
    vae = image_vae_from_config(small_model())
    x = batch_of(frames())["video"][:, 0]
    with torch.no_grad():
        rec = float(vae_loss(vae, x, 0.0, torch.Generator().manual_seed(0)))
        both = float(vae_loss(vae, x, 1.0, torch.Generator().manual_seed(0)))
        post = vae.encode(x).latent_dist
        kl = 0.5 * (post.mean**2 + post.var - 1 - post.logvar).mean()
    assert both - rec == pytest.approx(float(kl), rel=1e-4)


def test_foreground_weights_mark_the_shape_pixels():
    from magicvideo.training.vae import foreground_weights, image_vae_from_config, vae_loss

    x = torch.full((2, 3, 16, 16), -0.5)
    x[0, :, 2:6, 3:7] = torch.tensor([0.9, -1.0, 0.2])[:, None, None]
    x[1, 1, 10:12, 10:12] = -0.45  # within the threshold: background
    w = foreground_weights(x, 5.0)
    assert w.shape == (2, 1, 16, 16) and w[0, 0, 2:6, 3:7].eq(5).all() and w.sum() == 2 * 256 + 16 * 4
    torch.manual_seed(0)
    vae = image_vae_from_config(small_model())
    with torch.no_grad():
        plain = float(vae_loss(vae, x, 0.0, torch.Generator().manual_seed(0), "l1"))
        recon = vae(x, sample_posterior=True, generator=torch.Generator().manual_seed(0)).sample
    assert plain == pytest.approx(float((recon - x).abs().mean()), rel=1e-5)


# ---- CLIP pair ----------------------------------------------------------------------------------

CLIP_TINY = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64}  # fmt: skip


def test_info_nce_is_clip_symmetric_cross_entropy():
    from magicvideo.training.clip import info_nce

    g = torch.Generator().manual_seed(0)
    t, i = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    scale = torch.tensor(math.log(10.0))
    tn, inn = t / t.norm(dim=1, keepdim=True), i / i.norm(dim=1, keepdim=True)
    logits = 10.0 * tn @ inn.T
    ref = (torch.nn.functional.cross_entropy(logits, torch.arange(5)) + torch.nn.functional.cross_entropy(logits.T, torch.arange(5))) / 2
    assert float(info_nce(t, i, scale)) == pytest.approx(float(ref), rel=1e-5)
    assert float(info_nce(t, t, torch.tensor(10.0), max_scale=100.0)) < 1e-3  # clamped at 100, still near 0
    assert float(info_nce(t, i, torch.tensor(50.0), max_scale=10.0)) == pytest.approx(float(ref), rel=1e-5)


def test_clip_loss_decreases_and_exports_standard_folders(tmp_path):
    from transformers import CLIPModel, CLIPProcessor

    from magicvideo.conditioning import ImageEmbedder, encode_prompts, load_text_encoder
    from magicvideo.training.clip import build_clip_trainer, export_clip

    data = frames()
    trainer = build_clip_trainer(config(tmp_path, "clip", steps=10, clip=CLIP_TINY), dataset=data)
    b = batch_of(data)
    with torch.no_grad():
        before = float(trainer.loss(b))
    trainer.train(progress=False)
    with torch.no_grad():
        after = float(trainer.loss(b))
        text, image = trainer.embed(b["caption"], b["video"][:, 0])
    assert after < 0.5 * before, (before, after)

    model = CLIPModel.from_pretrained(tmp_path / "clip" / "final" / "clip")
    paths = export_clip(model, small_model().text_encoder.vocabulary, tmp_path / "export")
    assert sorted(paths) == ["clip", "image_encoder", "text_encoder", "tokenizer"]
    embedder = ImageEmbedder.from_pretrained(tmp_path / "export")  # image_encoder/: the pre-training's condition
    clipvid = ((b["video"] + 1) / 2).transpose(1, 2)  # (B, 3, F=1, H, W) in [0, 1]
    with torch.no_grad():
        tokens = embedder(clipvid)
        tokenizer, text_encoder = load_text_encoder(tmp_path / "export")
        hidden = encode_prompts(tokenizer, text_encoder, b["caption"])
    assert tokens.shape == (4, 1, 32) and torch.allclose(tokens[:, 0], image, atol=1e-5)
    assert hidden.shape == (4, tokenizer.model_max_length, 32)
    CLIPProcessor.from_pretrained(tmp_path / "export" / "clip")  # what evaluation.clipsim loads


def test_clip_widths_must_match_the_unet():
    from magicvideo.training.clip import build_clip_trainer

    mc = small_model()
    mc.text_encoder.projection_dim = 16
    with pytest.raises(ValueError, match="projection_dim = 16: must equal model.unet.cross_attention_dim = 32"):
        build_clip_trainer(TrainConfig(stage="clip", model=mc, clip=CLIP_TINY, device="cpu"), dataset=[])


# ---- text-to-image U-Net ------------------------------------------------------------------------


def t2i_folder(tmp_path, mc):
    """An SD-layout folder with a random VAE, the local tokenizer and a random text encoder."""
    from magicvideo.build import build_text_encoder
    from magicvideo.conditioning import write_clip_tokenizer
    from magicvideo.training.vae import image_vae_from_config

    torch.manual_seed(0)
    folder = tmp_path / "t2i"
    image_vae_from_config(mc).save_pretrained(folder / "vae")
    _, text_encoder = build_text_encoder(mc)
    text_encoder.save_pretrained(folder / "text_encoder")
    write_clip_tokenizer(folder / "tokenizer", mc.text_encoder.vocabulary, mc.text_encoder.max_position_embeddings)
    mc.pretrained_2d = str(folder)
    return folder


def test_t2i_loss_decreases_and_the_folder_inflates(tmp_path):
    from magicvideo.build import build_pipeline
    from magicvideo.training.t2i import build_t2i_trainer, image_diffusion_loss, write_t2i_folder

    mc = small_model()
    folder = t2i_folder(tmp_path, mc)
    data = frames()
    trainer = build_t2i_trainer(config(tmp_path, "t2i", model=mc, steps=15, optim={"lr": 3e-3}), dataset=data)

    def fixed():
        trainer.model.eval()
        with torch.no_grad():
            z, cond = trainer.latents_and_condition(batch_of(data))
            return float(image_diffusion_loss(trainer.model, trainer.noise_scheduler, z, cond, torch.Generator().manual_seed(3)))

    before = fixed()
    trainer.train(progress=False)
    after = fixed()
    assert after < 0.8 * before, (before, after)

    write_t2i_folder(folder, tmp_path / "t2i" / "final" / "unet", mc)
    pipe = build_pipeline(mc, weights="pretrained")  # MagicVideoUNet.from_unet2d of the trained U-Net
    unet2d = trainer.model.eval()
    z = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    cond = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        frame = unet2d(z, 10, cond).sample
        video = pipe.unet(z[:, :, None].expand(1, 4, 4, 4, 4), 10, cond, fps=torch.tensor([8.0])).sample
    assert torch.allclose(video[:, :, 0], frame, atol=1e-4)  # the video model starts as the image model


@pytest.mark.parametrize("stage", ["image_vae", "clip", pytest.param("t2i", marks=pytest.mark.slow)])
def test_resume_is_bit_exact(tmp_path, stage):
    """4 steps straight == 2 steps, a new trainer resuming from the checkpoint, 2 more (EMA on)."""
    from safetensors.torch import load_file

    from magicvideo.training.clip import build_clip_trainer
    from magicvideo.training.t2i import build_t2i_trainer
    from magicvideo.training.vae import build_image_vae_trainer

    build = {"image_vae": build_image_vae_trainer, "clip": build_clip_trainer, "t2i": build_t2i_trainer}[stage]
    mc = small_model()
    if stage == "t2i":
        t2i_folder(tmp_path, mc)
    data = frames(6)
    kw = dict(model=mc, batch_size=2, clip=CLIP_TINY, ema={"decay": 0.9}, condition_dropout=0.3)
    build(config(tmp_path / "a", stage, **kw), dataset=data).train(progress=False)
    build(config(tmp_path / "b", stage, steps=2, checkpoint_every=2, **kw), dataset=data).train(progress=False)
    build(config(tmp_path / "b", stage, **kw), dataset=data).train(progress=False)
    name = {"image_vae": "vae", "clip": "clip", "t2i": "unet"}[stage]
    file = "model.safetensors" if stage == "clip" else "diffusion_pytorch_model.safetensors"
    for sub in (name, f"{name}_ema"):
        a = load_file(tmp_path / "a" / stage / "final" / sub / file)
        b = load_file(tmp_path / "b" / stage / "final" / sub / file)
        assert all(torch.equal(a[k], b[k]) for k in a), sub
