"""Magic 1-For-1's generation modes in MagicVideoPipeline (magicvideo.long_video): sliding-window
clips of exactly N frames (held by the key-frame model's directed attention, or through the I2V
model), one seed's
clip whatever the batch, magic141 (T2I U-Net or the key-frame model's frame 0, then I2V),
image-to-video through the I2V model, the sample identity, the CLI's --num-frames / --mode, errors."""

from __future__ import annotations

import pytest
import torch

from magicvideo.models import ImageToVideoUNet
from magicvideo.pipeline import MagicVideoPipeline, add_i2v, cascade_identity

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = ["a red circle moving left", "a blue square moving up"]
KW = dict(num_inference_steps=2, output_type="latent")


def tiny_magic(frames: int = 4, t2i: bool = True, seed: int = 0) -> MagicVideoPipeline:
    """The tiny random pipeline with `frames`-frame windows, a random I2V model whose conditioning
    channels are non-zero, an image encoder and (optionally) a T2I U-Net."""
    from diffusers import UNet2DConditionModel

    from magicvideo.build import build_pipeline, load_model_config
    from tests.test_model_interpolation import tiny_image_encoder

    cfg = load_model_config("tiny").model_copy(update={"num_frames": frames})
    pipe = build_pipeline(cfg, weights="random", seed=seed)
    i2v = ImageToVideoUNet.from_keyframe_unet(pipe.unet)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        i2v.conv_in.weight[:, 4:].normal_(0, 0.1)
        t2i_unet = UNet2DConditionModel(**cfg.unet.model_dump()).eval() if t2i else None
    pipe.register_modules(i2v=i2v.eval(), image_encoder=tiny_image_encoder(32, seed), t2i_unet=t2i_unet)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def magic():
    return tiny_magic()


@pytest.mark.parametrize("overlap", [1, 2])
def test_sliding_window_gives_exactly_n_frames_and_keeps_the_overlap(magic, overlap):
    out = magic(PROMPTS[:1], num_frames=11, overlap=overlap, seed=[3], **KW).frames
    assert out.shape == (1, 4, 11, 8, 8)
    # the first window is the key-frame model's clip; later windows continue it
    first = magic(PROMPTS[:1], seed=[3], **KW).frames
    assert torch.equal(out[:, :, :4], first)
    assert magic(PROMPTS[:1], num_frames=3, seed=[3], **KW).frames.shape[2] == 3


@pytest.mark.parametrize("with_i2v", [True, False])
def test_one_seed_same_long_clip_whatever_the_batch(magic, with_i2v, tiny_pipeline_4f):
    pipe = magic if with_i2v else tiny_pipeline_4f
    kw = dict(num_frames=10, guidance_scale=2.0, window_method="i2v" if with_i2v else "held", **KW)
    batch = pipe(PROMPTS, seed=[11, 12], **kw).frames
    alone = pipe(PROMPTS[1:], seed=[12], **kw).frames
    torch.testing.assert_close(batch[1:], alone, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(alone, pipe(PROMPTS[1:], seed=[13], **kw).frames)


def test_fallback_holds_the_overlap_through_directed_attention(tiny_pipeline_4f):
    out = tiny_pipeline_4f(PROMPTS[:1], num_frames=7, overlap=1, seed=[5], **KW).frames
    assert out.shape[2] == 7
    first = tiny_pipeline_4f(PROMPTS[:1], seed=[5], **KW).frames
    assert torch.equal(out[:, :, :4], first)


def test_windows_are_held_by_the_keyframe_model_unless_i2v_is_asked_for(magic):
    """window_method "held" (default): a long t2v clip never reads the I2V model, so it equals the
    clip of the same pipeline without one; "i2v" continues the windows through it."""
    kw = dict(num_frames=7, overlap=1, seed=[5], **KW)
    held = magic(PROMPTS[:1], **kw).frames
    i2v = magic(PROMPTS[:1], window_method="i2v", **kw).frames
    bare = tiny_magic(t2i=False)
    bare.register_modules(i2v=None)
    assert torch.equal(bare(PROMPTS[:1], **kw).frames, held)
    assert held.shape == i2v.shape and torch.equal(held[:, :, :4], i2v[:, :, :4]) and not torch.allclose(held, i2v)
    with pytest.raises(ValueError, match="window_method must be one of"):
        magic(PROMPTS[:1], window_method="other", **kw)
    with pytest.raises(ValueError, match="window_method 'i2v' needs the pipeline's i2v component"):
        bare(PROMPTS[:1], window_method="i2v", **kw)


def test_anchored_windows_hold_the_clip_s_first_frame_beside_the_overlap(tiny_pipeline_4f, monkeypatch):
    """window_method "anchored": every window after the first holds the clip's first frame at position 0 and
    the previous window's last `overlap` frames after it (directed attention); each adds window - overlap - 1
    frames, and the clip has exactly N frames; the first window is the short clip's."""
    pipe = tiny_pipeline_4f
    held = []
    denoise = pipe.denoise

    def spy(*args, known=None, known_mask=None, **kw):
        held.append(None if known is None else known[:, :, : int(known_mask.sum())].clone())
        return denoise(*args, known=known, known_mask=known_mask, **kw)

    monkeypatch.setattr(pipe, "denoise", spy)
    out = pipe(PROMPTS[:1], num_frames=8, overlap=1, window_method="anchored", seed=[5], **KW).frames
    assert out.shape[2] == 8 and len(held) == 3 and held[0] is None  # 4 + 2 + 2 frames
    assert torch.equal(held[1], out[:, :, [0, 3]]) and torch.equal(held[2], out[:, :, [0, 5]])
    monkeypatch.setattr(pipe, "denoise", denoise)
    assert torch.equal(out[:, :, :4], pipe(PROMPTS[:1], seed=[5], **KW).frames)
    plain = pipe(PROMPTS[:1], num_frames=8, overlap=1, seed=[5], **KW).frames
    assert torch.equal(plain[:, :, :4], out[:, :, :4]) and not torch.allclose(plain, out)
    with pytest.raises(ValueError, match="overlap must be in 1..2 .*besides the anchor frame"):
        pipe(PROMPTS[:1], num_frames=8, overlap=3, window_method="anchored", **KW)


def test_magic141_runs_with_and_without_a_t2i_unet(magic):
    out = magic(PROMPTS, mode="magic141", seed=[1, 2], num_inference_steps=2, num_frames=6)
    assert out.frames.shape == (2, 6, 64, 64, 3)
    alone = magic(PROMPTS[1:], mode="magic141", seed=[2], guidance_scale=2.0, **KW).frames
    both = magic(PROMPTS, mode="magic141", seed=[1, 2], guidance_scale=2.0, **KW).frames
    torch.testing.assert_close(both[1:], alone, atol=1e-5, rtol=1e-4)
    no_t2i = tiny_magic(t2i=False)
    other = no_t2i(PROMPTS[1:], mode="magic141", seed=[2], guidance_scale=2.0, **KW).frames
    assert other.shape == alone.shape and not torch.allclose(other, alone)  # frame 0 from the key-frame model


def test_image_to_video_uses_the_i2v_model(magic, tiny_pipeline_4f):
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    out = magic.image_to_video(image, PROMPTS[0], seed=3, **KW).frames
    z = magic.encode_frames(image[:, :, None])
    assert torch.equal(out[:, :, :1], z)  # frame 0 is the image latent exactly
    # without an I2V model: the latent-replacement fallback, as before
    old = tiny_pipeline_4f.image_to_video(image, PROMPTS[0], seed=3, **KW).frames
    assert torch.equal(old[:, :, :1], z) and not torch.allclose(old, out)


def test_errors(magic):
    with pytest.raises(ValueError, match="unknown mode"):
        magic(PROMPTS[:1], mode="magic", **KW)
    with pytest.raises(ValueError, match="overlap must be in 1..3"):
        magic(PROMPTS[:1], num_frames=9, overlap=4, **KW)
    with pytest.raises(ValueError, match="num_frames must be a positive integer"):
        magic(PROMPTS[:1], num_frames=-2, **KW)
    with pytest.raises(ValueError, match="not both"):
        magic(PROMPTS[:1], mode="magic141", image=torch.zeros(1, 3, 64, 64), **KW)
    with pytest.raises(ValueError, match="takes one 4-frame window"):
        magic(PROMPTS[:1], num_frames=8, video=torch.zeros(1, 3, 4, 64, 64), **KW)


def test_identity_includes_the_i2v_components_when_used(tmp_path):
    pipe = tiny_magic(frames=4, t2i=False)
    pipe.save_pretrained(tmp_path / "p")
    folder = tmp_path / "p"
    base = cascade_identity(folder)
    assert cascade_identity(folder, num_frames=4) == base  # one window: as before
    long_id, magic_id = cascade_identity(folder, num_frames=40, window_method="i2v"), cascade_identity(folder, mode="magic141")
    image_id, held_id = cascade_identity(folder, image=True), cascade_identity(folder, num_frames=40)
    assert len({base, long_id, magic_id, image_id, held_id}) == 5
    i2v = ImageToVideoUNet.from_pretrained(folder / "i2v")
    with torch.no_grad():
        i2v.conv_in.weight.add_(1.0)
    add_i2v(folder, i2v)
    assert cascade_identity(folder) == base and cascade_identity(folder, num_frames=40, window_method="i2v") != long_id
    assert cascade_identity(folder, image=True) != image_id
    assert cascade_identity(folder, num_frames=40) == held_id  # held windows never read the I2V model
    with pytest.raises(ValueError, match="unknown mode"):
        cascade_identity(folder, mode="x")


def test_cli_num_frames_and_mode(tmp_path):
    import av

    from magicvideo.cli import main

    out = tmp_path / "clip.mp4"
    assert main(["generate", "--config", "tiny", "--prompt", PROMPTS[0], "--steps", "1", "--num-frames", "21",
                 "--overlap", "4", "--window-noise", "shuffle", "--device", "cpu", "--out", str(out)]) == 0  # fmt: skip
    with av.open(str(out)) as container:
        assert len(list(container.decode(video=0))) == 21
    tiny_magic(frames=4).save_pretrained(tmp_path / "pipe")
    assert main(["generate", "--pipeline", str(tmp_path / "pipe"), "--mode", "magic141", "--prompt", PROMPTS[1],
                 "--steps", "1", "--num-frames", "9", "--device", "cpu", "--out", str(out)]) == 0  # fmt: skip
    with av.open(str(out)) as container:
        assert len(list(container.decode(video=0))) == 9
    assert main(["generate", "--pipeline", str(tmp_path / "pipe"), "--overlap", "4", "--prompt", "x",
                 "--num-frames", "9", "--out", str(out)]) == 2  # fmt: skip
    with pytest.raises(SystemExit):
        main(["generate", "--config", "tiny", "--prompt", "x", "--mode", "magic"])
    with pytest.raises(SystemExit):
        main(["generate", "--config", "tiny", "--prompt", "x", "--num-frames", "0"])
    with pytest.raises(SystemExit):
        main(["generate", "--config", "tiny", "--prompt", "x", "--num-frames", "20", "--window-noise", "same"])


def test_window_guidance_applies_to_the_windows_after_the_first(tiny_pipeline_4f, monkeypatch):
    """window_guidance_scale: the first window keeps guidance_scale, later windows take their own CFG scale
    (with the unconditional half only where it is > 1); unset, every window is as before."""
    pipe = tiny_pipeline_4f
    calls = []
    denoise = pipe.denoise

    def spy(model, latents, timesteps, cond, fps, guidance_scale, *args, **kw):
        calls.append((guidance_scale, cond.shape[0], None if fps is None else fps.shape[0]))
        return denoise(model, latents, timesteps, cond, fps, guidance_scale, *args, **kw)

    monkeypatch.setattr(pipe, "denoise", spy)
    kw = dict(num_frames=8, overlap=1, seed=[5, 6], **KW)
    mixed = pipe(PROMPTS, guidance_scale=4.0, window_guidance_scale=1.0, **kw).frames
    assert [c[:2] for c in calls] == [(4.0, 4), (1.0, 2), (1.0, 2)]  # [uncond; cond] only in the first window
    assert all(c[2] in (None, c[1]) for c in calls)  # the fps condition has the tokens' batch
    calls.clear()
    up = pipe(PROMPTS, guidance_scale=1.0, window_guidance_scale=3.0, **kw).frames
    assert [c[:2] for c in calls] == [(1.0, 2), (3.0, 4), (3.0, 4)]
    calls.clear()
    same = pipe(PROMPTS, guidance_scale=4.0, **kw).frames
    assert [c[:2] for c in calls] == [(4.0, 4)] * 3
    monkeypatch.setattr(pipe, "denoise", denoise)
    # the first window is the plain CFG-4 clip's; a later window's scale changes what follows it
    assert torch.equal(mixed[:, :, :4], same[:, :, :4]) and not torch.allclose(mixed, same)
    assert torch.equal(pipe(PROMPTS, guidance_scale=4.0, window_guidance_scale=4.0, **kw).frames, same)
    assert torch.equal(up[:, :, :4], pipe(PROMPTS, guidance_scale=1.0, seed=[5, 6], **KW).frames)


@pytest.mark.parametrize("window_method", ["held", "i2v"])
def test_window_noise_reuses_or_reorders_the_first_windows_noise(magic, tiny_pipeline_4f, window_method, monkeypatch):
    """window_noise: "reuse" (default) starts every later window from the first window's noise map for map;
    "fresh" draws every window's noise anew; "shuffle" starts from the first window's frames in a new
    order per window and clip (FreeNoise's rescheduling); anything else is refused."""
    pipe = magic if window_method == "i2v" else tiny_pipeline_4f
    noises = []
    denoise = pipe.denoise

    def spy(*args, noise=None, **kw):
        noises.append(noise.clone())
        return denoise(*args, noise=noise, **kw)

    kw = dict(num_frames=10, overlap=1, seed=[5, 6], window_method=window_method, guidance_scale=2.0, **KW)
    before = pipe(PROMPTS, **kw).frames
    monkeypatch.setattr(pipe, "denoise", spy)
    fresh = pipe(PROMPTS, window_noise="fresh", **kw).frames
    assert len(noises) == 3
    assert not torch.equal(noises[1], noises[0]) and not torch.equal(noises[2], noises[1])
    noises.clear()
    reused = pipe(PROMPTS, window_noise="reuse", **kw).frames
    assert all(torch.equal(n, noises[0]) for n in noises[1:]) and torch.equal(reused, before)  # the default
    assert torch.equal(reused[:, :, :4], fresh[:, :, :4]) and not torch.allclose(reused, fresh)
    noises.clear()
    pipe(PROMPTS, window_noise="shuffle", **kw)
    first = noises[0]
    for later in noises[1:]:
        for k in range(first.shape[0]):  # each clip's later noise is its own first window's frames, reordered
            order = [next(j for j in range(first.shape[2]) if torch.equal(later[k, :, i], first[k, :, j]))
                     for i in range(first.shape[2])]  # fmt: skip
            assert sorted(order) == list(range(first.shape[2]))
    assert any(not torch.equal(n, first) for n in noises[1:])
    monkeypatch.setattr(pipe, "denoise", denoise)
    with pytest.raises(ValueError, match="window_noise must be one of"):
        pipe(PROMPTS, window_noise="same", **kw)


def test_fast_inference_takes_the_i2v_model_along(monkeypatch):
    """enable_fast_inference fuses, lays out channels-last and compiles the I2V U-Net beside the
    key-frame one: I2V windows give the same clip (no compile), and torch.compile gets both U-Nets."""
    pipe = tiny_magic(t2i=False, seed=2)
    kw = dict(num_frames=7, overlap=1, seed=[5], window_method="i2v", guidance_scale=2.0, **KW)
    before = pipe(PROMPTS[:1], **kw).frames
    pipe.enable_fast_inference(None)
    assert pipe.i2v.original_attn_processors is not None  # diffusers' mark of fused QKV projections
    torch.testing.assert_close(pipe(PROMPTS[:1], **kw).frames, before, atol=1e-4, rtol=1e-4)
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **_: compiled.append(fn) or fn)
    unet, i2v = pipe.unet, pipe.i2v
    pipe.enable_fast_inference("default", decoder=False)
    assert compiled == [unet, i2v]
