"""The applications of paper 4.3 on the tiny pipeline: image-to-video (first frame held fixed,
inpainting-style), video variation (SDEdit) and text-guided editing; pipeline calls and CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cascade():
    from tests.test_pipeline_cascade import tiny_cascade

    return tiny_cascade()


def test_image(size: int = 64) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    img[...] = (20, 40, 120)
    img[16:40, 20:44] = (230, 30, 30)
    return img


test_image.__test__ = False  # a helper, not a test


@torch.no_grad()
def reconstruction(pipe, image: np.ndarray) -> torch.Tensor:
    """The VAE's reconstruction of one image, ``(3, H, W)`` in [-1, 1]."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None, :, None].float() / 127.5 - 1
    return pipe.decode_latents(pipe.encode_frames(x))[0, :, 0]


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++"])
def test_image_to_video_first_frame_is_the_image(cascade, scheduler):
    """The output's first frame equals the image up to the VAE's reconstruction error: it is the
    reconstruction itself, in the key frames and after interpolation; the other frames are
    sampled (and differ from it)."""
    torch.set_grad_enabled(False)
    cascade.set_scheduler(scheduler)
    try:
        img = test_image()
        rec = reconstruction(cascade, img)
        x = torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1
        for stages in ("keyframes", "keyframes,interpolate"):
            out = cascade.image_to_video(img, "a red square", seed=2, num_inference_steps=3, output_type="pt", stages=stages)
            first = out.frames[0, :, 0]
            torch.testing.assert_close(first, rec, atol=1e-4, rtol=0)
            assert (first - x).abs().mean() == pytest.approx((rec - x).abs().mean().item(), abs=1e-4)
            assert (out.frames[0, :, 1] - rec).abs().mean() > 1e-2
        # one image for a batch of prompts: every clip starts with it
        # (compared in latent space: the random tiny decoder amplifies a batch's float reassociation ~40x)
        z = cascade.encode_frames(x[None, :, None])[:, :, 0]
        out = cascade.image_to_video(img, ["a red square", "a blue circle"], seed=[1, 2], num_inference_steps=2,
                                     output_type="latent")  # fmt: skip
        torch.testing.assert_close(out.frames[:, :, 0], z.expand(2, -1, -1, -1), atol=1e-4, rtol=0)
        assert not torch.allclose(out.frames[0, :, 1], out.frames[1, :, 1])
    finally:
        cascade.set_scheduler("ddim")
        torch.set_grad_enabled(True)


def test_video_variation_follows_strength_and_editing_follows_the_prompt(cascade):
    """SDEdit: low strength stays near the given clip's latents, strength 1 departs from it; a
    strength runs ``strength x steps`` denoising steps; a new prompt changes the result."""
    video = cascade("a red circle", seed=0, num_inference_steps=2).frames[0]  # uint8 (16, 64, 64, 3)
    x = torch.from_numpy(video).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    z = cascade.encode_frames(x)
    calls = []
    hook = cascade.unet.register_forward_hook(lambda *a: calls.append(1))
    try:
        dist = {}
        for s in (0.2, 1.0):
            calls.clear()
            v = cascade.video_variation(video, strength=s, prompt="a red circle", num_inference_steps=10, seed=4,
                                        output_type="latent").frames  # fmt: skip
            dist[s] = (v - z).pow(2).mean().sqrt().item()
            assert len(calls) == round(10 * s)
    finally:
        hook.remove()
    assert dist[0.2] < 0.5 * dist[1.0]
    kw = dict(strength=0.6, num_inference_steps=4, seed=4, output_type="latent")
    same = cascade.video_variation(video, prompt="a red circle", **kw).frames
    edit = cascade.edit_video(video, "a green square moving up", **kw).frames
    assert torch.equal(cascade.edit_video(video, "a red circle", **kw).frames, same)
    assert not torch.allclose(edit, same)


def test_application_errors(cascade):
    img, video = test_image(), np.zeros((16, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="not both"):
        cascade("a", image=img, video=video)
    with pytest.raises(ValueError, match="strength must be in"):
        cascade.video_variation(video, strength=0.0)
    with pytest.raises(ValueError, match="video has 8 frames"):
        cascade.video_variation(video[:8])
    with pytest.raises(ValueError, match="uint8"):
        cascade.image_to_video(img.astype(np.float32), "a")
    with pytest.raises(ValueError, match="got 2 images for 1 prompts"):
        cascade.image_to_video(np.stack([img, img]), "a")


def test_cli_image_to_video_and_video_variation(cascade, tmp_path):
    import av
    from PIL import Image

    from magicvideo.cli import main
    from magicvideo.data.video import resize_frames
    from magicvideo.video_io import write_mp4

    cascade.save_pretrained(tmp_path / "pipe")
    Image.fromarray(test_image(96)).save(tmp_path / "img.png")  # resized to the model's 64 px
    base = ["generate", "--pipeline", str(tmp_path / "pipe"), "--steps", "2", "--seed", "1"]
    assert main([*base, "--image", str(tmp_path / "img.png"), "--prompt", "a red square",
                 "--out", str(tmp_path / "i2v.mp4")]) == 0  # fmt: skip
    # the CLI's clip is the pipeline call on the resized image (up to float noise in a reloaded pipeline)
    image = resize_frames(test_image(96)[None], 64)[0]
    ref = cascade.image_to_video(image, "a red square", seed=1, num_inference_steps=2, guidance_scale=7.5, fps=8).frames[0]
    write_mp4(tmp_path / "ref.mp4", ref, fps=8)

    def decoded(name):
        with av.open(str(tmp_path / name)) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])

    got = decoded("i2v.mp4")
    assert got.shape == (16, 64, 64, 3) and np.abs(got.astype(int) - decoded("ref.mp4")).mean() < 0.5
    assert main([*base, "--video", str(tmp_path / "i2v.mp4"), "--strength", "0.5", "--prompt", "a green circle",
                 "--stages", "keyframes,interpolate", "--out", str(tmp_path / "edit.mp4")]) == 0  # fmt: skip
    with av.open(str(tmp_path / "edit.mp4")) as c:
        assert len(list(c.decode(video=0))) == 61
    assert main([*base, "--video", str(tmp_path / "missing.mp4"), "--prompt", "a", "--out", str(tmp_path / "x.mp4")]) != 0
