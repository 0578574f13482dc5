"""PYoCo's mixed noise prior (magicvideo.noise_prior): its statistics, alpha = 0 is the i.i.d. draw
as before, the pipeline samples with the U-Net's own alpha (or a call's), clip k of a batch is
clip k alone, training draws the noise the model samples with, and the eval flow's addresses."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor

from magicvideo.noise_prior import check_alpha, mix, video_noise

PROMPTS = ["a red circle moving left", "a blue square moving up", "a green triangle grows"]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_marginals_stay_standard_and_frames_correlate_by_alpha(alpha):
    """Every frame's noise is N(0, 1); two frames' correlate by alpha^2 / (1 + alpha^2)."""
    gens = [torch.Generator().manual_seed(k) for k in range(1500)]
    x = video_noise((1500, 4, 8, 4, 4), alpha, gens)
    per_frame = x.transpose(0, 2).reshape(8, -1)  # (frames, samples)
    assert per_frame.mean(1).abs().max() < 0.02 and (per_frame.std(1) - 1).abs().max() < 0.02
    corr = torch.corrcoef(per_frame)
    off = corr[~torch.eye(8, dtype=torch.bool)]
    want = alpha**2 / (1 + alpha**2)
    assert (off - want).abs().max() < 0.02, (off.min(), off.max(), want)


def test_alpha_zero_is_the_iid_draw_and_batches_do_not_matter():
    shape = (3, 4, 5, 2, 2)
    iid = randn_tensor(shape, generator=[torch.Generator().manual_seed(s) for s in (1, 2, 3)])
    torch.testing.assert_close(video_noise(shape, 0.0, [torch.Generator().manual_seed(s) for s in (1, 2, 3)]), iid,
                               rtol=0, atol=0)  # fmt: skip
    batch = video_noise(shape, 1.0, [torch.Generator().manual_seed(s) for s in (1, 2, 3)])
    alone = video_noise((1, *shape[1:]), 1.0, [torch.Generator().manual_seed(2)])
    torch.testing.assert_close(batch[1:2], alone, rtol=0, atol=0)
    # the per-frame draw comes first: the mixed noise is the i.i.d. draw plus a shared map, rescaled
    shared = (batch * 2**0.5 - iid)[:, :, :1]
    torch.testing.assert_close(batch, mix(iid, shared, 1.0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), "1"])
def test_bad_alpha_is_one_clear_error(bad):
    with pytest.raises(ValueError, match="noise_prior"):
        check_alpha(bad)


def test_pipeline_samples_with_the_unet_s_alpha_unless_told(tiny_pipeline_4f, tmp_path):
    from magicvideo.pipeline import MagicVideoPipeline, cascade_identity

    pipe = tiny_pipeline_4f
    kw = dict(num_inference_steps=2, guidance_scale=3.0, output_type="latent")
    assert pipe.unet.config.noise_prior == 0 and pipe.noise_prior() == 0
    iid = pipe(PROMPTS, seed=[5, 6, 7], **kw).frames
    mixed = pipe(PROMPTS, seed=[5, 6, 7], noise_prior=1.0, **kw).frames
    assert not torch.allclose(iid, mixed)
    torch.testing.assert_close(pipe(PROMPTS, seed=[5, 6, 7], noise_prior=0.0, **kw).frames, iid, rtol=0, atol=0)
    alone = pipe([PROMPTS[2]], seed=[7], noise_prior=1.0, **kw).frames
    torch.testing.assert_close(mixed[2:], alone, atol=1e-5, rtol=1e-4)
    # the initial noise is the mixed draw
    z, _ = pipe.prepare_latents([5], 4, 32, 32, torch.float32, noise_prior=1.0)
    want = video_noise(z.shape, 1.0, [torch.Generator().manual_seed(5)]) * pipe.scheduler.init_noise_sigma
    torch.testing.assert_close(z, want, rtol=0, atol=0)
    # a U-Net trained with alpha = 1 samples with it by default; the saved folder keeps it and its id moves
    pipe.save_pretrained(tmp_path / "iid")
    pipe.unet.register_to_config(noise_prior=1.0)
    try:
        torch.testing.assert_close(pipe(PROMPTS, seed=[5, 6, 7], **kw).frames, mixed, rtol=0, atol=0)
        pipe.save_pretrained(tmp_path / "mixed")
    finally:
        pipe.unet.register_to_config(noise_prior=0.0)
    loaded = MagicVideoPipeline.from_pretrained(tmp_path / "mixed")
    assert loaded.unet.config.noise_prior == 1.0 and loaded.noise_prior() == 1.0 and loaded.noise_prior(0.25) == 0.25
    assert cascade_identity(tmp_path / "iid") != cascade_identity(tmp_path / "mixed")
    with pytest.raises(ValueError, match="noise_prior"):
        pipe(PROMPTS[0], noise_prior=-1.0, **kw)


def test_long_clips_draw_each_key_frame_window_under_the_prior(tiny_pipeline_4f, monkeypatch):
    """Windows of a long clip that draw fresh noise (``window_noise="fresh"``) each mix it with one map for
    the whole clip; window 0 is the short clip of the same seed."""
    from magicvideo import long_video

    kw = dict(num_inference_steps=2, guidance_scale=1.0, output_type="latent")
    a = tiny_pipeline_4f(PROMPTS[0], seed=3, num_frames=7, window_noise="fresh", **kw).frames
    mixes = []
    real_mix = long_video.mix
    monkeypatch.setattr(long_video, "mix", lambda i, s, p: mixes.append((s, p)) or real_mix(i, s, p))
    b = tiny_pipeline_4f(PROMPTS[0], seed=3, noise_prior=2.0, num_frames=7, window_noise="fresh", **kw).frames
    assert a.shape == b.shape and a.shape[2] == 7 and not torch.allclose(a, b)
    assert len(mixes) == 2 and all(s is mixes[0][0] and p == 2.0 for s, p in mixes)  # 2 windows (4 + 3), one map
    short = tiny_pipeline_4f(PROMPTS[0], seed=3, noise_prior=2.0, num_frames=4, **kw).frames
    torch.testing.assert_close(b[:, :, :4], short, atol=1e-5, rtol=1e-4)


def test_training_draws_the_noise_the_model_samples_with(tmp_path, monkeypatch):
    from magicvideo.training import TrainConfig, build_keyframe_trainer
    from magicvideo.training import keyframe
    from tests.test_training_keyframe import clips, small_model

    sched = DDPMScheduler(num_train_timesteps=1000)
    latents = torch.zeros(2000, 1, 6, 1, 1)  # clean latents at zero: the noisy latents are the scaled noise
    noisy, t, target = keyframe.noised(sched, latents, torch.Generator().manual_seed(0), noise_prior=1.0)
    frames = target.transpose(0, 2).reshape(6, -1)
    off = torch.corrcoef(frames)[~torch.eye(6, dtype=torch.bool)]
    assert (off - 0.5).abs().max() < 0.06 and (frames.std(1) - 1).abs().max() < 0.06
    # alpha = 0: noise, then timesteps, exactly as before the prior existed
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(latents.shape, generator=g)
    steps = torch.randint(0, 1000, (2000,), generator=g)
    _, t0, target0 = keyframe.noised(sched, latents, torch.Generator().manual_seed(4))
    assert torch.equal(target0, noise) and torch.equal(t0, steps)
    with pytest.raises(ValueError, match="video latents"):
        keyframe.noised(sched, torch.zeros(2, 4, 8, 8), None, noise_prior=1.0)

    model = small_model()
    model.noise_prior = 1.5
    seen = []
    real = keyframe.noised
    monkeypatch.setattr(keyframe, "noised", lambda *a: seen.append(a[3]) or real(*a))
    cfg = TrainConfig(model=model, out_dir=str(tmp_path / "run"), steps=1, batch_size=2, checkpoint_every=100,
                      optim={"lr": 1e-3, "warmup_steps": 0}, ema={"enabled": False}, device="cpu")  # fmt: skip
    trainer = build_keyframe_trainer(cfg, dataset=clips(2))
    assert trainer.model.config.noise_prior == 1.5
    trainer.train(progress=False)
    assert seen == [1.5]


def test_interpolation_and_i2v_models_start_iid(tiny_pipeline_4f):
    from magicvideo.models import ImageToVideoUNet, InterpolationUNet

    unet = tiny_pipeline_4f.unet
    unet.register_to_config(noise_prior=1.0, sample_noise_prior=1.5)
    try:
        for cls in (ImageToVideoUNet, InterpolationUNet):
            config = cls.from_keyframe_unet(unet).config
            assert config.noise_prior == 0 and config.sample_noise_prior is None
    finally:
        unet.register_to_config(noise_prior=0.0, sample_noise_prior=None)


def test_a_sampling_alpha_chosen_after_training_is_the_default_and_travels_with_the_folder(tiny_pipeline_4f, tmp_path):
    """``sample_noise_prior`` (an alpha chosen on validation clips after training) is what the pipeline samples
    with unless a call says otherwise; it is saved with the U-Net, moves the checkpoint's identity, and a
    continued training run drops it (the choice is re-made for the new model)."""
    from magicvideo.pipeline import MagicVideoPipeline, cascade_identity

    pipe = tiny_pipeline_4f
    kw = dict(num_inference_steps=2, guidance_scale=3.0, output_type="latent")
    at_15 = pipe(PROMPTS[:2], seed=[5, 6], noise_prior=1.5, **kw).frames
    pipe.save_pretrained(tmp_path / "trained")
    pipe.unet.register_to_config(noise_prior=1.0, sample_noise_prior=1.5)
    try:
        assert pipe.noise_prior() == 1.5 and pipe.noise_prior(1.0) == 1.0 and pipe.noise_prior(0.0) == 0.0
        torch.testing.assert_close(pipe(PROMPTS[:2], seed=[5, 6], **kw).frames, at_15, rtol=0, atol=0)
        pipe.save_pretrained(tmp_path / "chosen")
    finally:
        pipe.unet.register_to_config(noise_prior=0.0, sample_noise_prior=None)
    loaded = MagicVideoPipeline.from_pretrained(tmp_path / "chosen")
    assert (loaded.unet.config.noise_prior, loaded.unet.config.sample_noise_prior, loaded.noise_prior()) == (1.0, 1.5, 1.5)
    assert cascade_identity(tmp_path / "trained") != cascade_identity(tmp_path / "chosen")
    with pytest.raises(ValueError, match="noise_prior"):
        type(pipe.unet).from_config({**dict(pipe.unet.config), "sample_noise_prior": -1.0})


def test_eval_addresses_move_only_when_the_sampler_sets_a_prior(tmp_path, tiny_pipeline_4f):
    from flows.config import resolve_config
    from flows.stages import plan
    from magicvideo.data.records import PromptRecord

    tiny_pipeline_4f.save_pretrained(tmp_path / "ckpt")
    records = [PromptRecord(prompt_id=f"shapes/v{i}/0", prompt=p, benchmark="shapes") for i, p in enumerate(PROMPTS)]
    base = plan(str(tmp_path / "ckpt"), records, resolve_config("shapes", {}))
    assert "noise_prior" not in base.sampler
    set_ = plan(str(tmp_path / "ckpt"), records, resolve_config("shapes", {"sampler": {"noise_prior": 1.0}}))
    assert set_.sampler["noise_prior"] == 1.0
    assert all(a.address != b.address for a, b in zip(base.items["keyframes"], set_.items["keyframes"]))
    with pytest.raises(Exception, match="noise_prior"):
        resolve_config("shapes", {"sampler": {"noise_prior": -1}})
