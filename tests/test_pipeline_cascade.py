"""MagicVideoPipeline by stage (keyframes -> interpolate): 16 -> 61 frames, every stage's output,
a later stage from stored latents, batch independence of one seed's 61 frames, save/load with
the optional interpolation components, the stages' identity for the sample store, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from magicvideo.models import InterpolationUNet
from magicvideo.pipeline import MagicVideoPipeline, add_interpolation, cascade_identity, resolve_stages

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = ["a red circle moving left", "a blue square moving up", "a green triangle grows"]
BOTH = ("keyframes", "interpolate")


def tiny_cascade(seed: int = 0) -> MagicVideoPipeline:
    """The tiny random pipeline (16 key frames, 8x8 latents) with a random interpolation stage
    whose conditioning channels are non-zero (so the key frames' latents matter)."""
    from magicvideo.build import build_pipeline
    from tests.test_model_interpolation import tiny_image_encoder

    pipe = build_pipeline("tiny", weights="random", seed=seed)
    interpolation = InterpolationUNet.from_keyframe_unet(pipe.unet)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        interpolation.conv_in.weight[:, 4:].normal_(0, 0.1)
    pipe.register_modules(interpolation=interpolation.eval(), image_encoder=tiny_image_encoder(32, seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def cascade():
    return tiny_cascade()


def test_keyframes_then_interpolate_gives_61_frames(cascade):
    kw = dict(num_inference_steps=2, seed=[5, 6])
    out = cascade(PROMPTS[:2], stages=BOTH, output_type="pt", **kw)
    assert out.frames.shape == (2, 3, 61, 64, 64)
    key, full = out.latents["keyframes"], out.latents["interpolate"]
    assert key.shape == (2, 4, 16, 8, 8) and full.shape == (2, 4, 61, 8, 8)
    assert torch.equal(full[:, :, ::4], key)  # key frames kept exactly, 3 new frames between each pair
    # the first stage is the key-frame pipeline as before
    alone = cascade(PROMPTS[:2], output_type="latent", **kw)
    assert torch.equal(alone.frames, key) and list(alone.latents) == ["keyframes"]
    # the interpolation stage alone, from the stored key frames, gives the same 61 frames
    again = cascade(stages=("interpolate",), keyframe_latents=key, seed=[5, 6], num_inference_steps=2, output_type="latent")
    torch.testing.assert_close(again.frames, full)
    # the new frames depend on the key frames they sit between
    other = cascade(stages="interpolate", keyframe_latents=key.flip(2), seed=[5, 6], num_inference_steps=2,
                    output_type="latent").frames  # fmt: skip
    assert not torch.allclose(other[:, :, 1:4], full[:, :, 1:4])


@pytest.mark.parametrize("scheduler", ["ddim", "euler_a"])
def test_one_seed_same_61_frames_whatever_the_batch(cascade, scheduler):
    cascade.set_scheduler(scheduler)
    try:
        kw = dict(stages=BOTH, num_inference_steps=2, output_type="latent", interpolation_guidance_scale=2.0)
        batch = cascade(PROMPTS[:2], seed=[11, 12], **kw).frames
        alone = cascade([PROMPTS[1]], seed=[12], **kw).frames
        torch.testing.assert_close(batch[1:2], alone, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(batch[1], cascade([PROMPTS[1]], seed=[99], **kw).frames[0])
    finally:
        cascade.set_scheduler("ddim")


def test_stage_names_and_errors(cascade, tiny_pipeline):
    assert resolve_stages("keyframes, interpolate") == BOTH and resolve_stages(["interpolate"]) == ("interpolate",)
    with pytest.raises(ValueError, match="unknown stage"):
        resolve_stages("keyframes,superres")
    with pytest.raises(ValueError, match="not consecutive in cascade order"):
        resolve_stages(("interpolate", "keyframes"))
    with pytest.raises(ValueError, match="pass keyframe_latents"):
        cascade(stages="interpolate", seed=1)
    with pytest.raises(ValueError, match="has no interpolation stage"):
        tiny_pipeline(PROMPTS[0], stages=BOTH, num_inference_steps=1)


def test_save_load_with_and_without_the_interpolation_stage(cascade, tiny_pipeline, tmp_path):
    cascade.save_pretrained(tmp_path / "full")
    index = json.loads((tmp_path / "full" / "model_index.json").read_text())
    assert index["interpolation"] == ["magicvideo.models.interpolation", "InterpolationUNet"]
    assert index["image_encoder"] == ["transformers", "CLIPVisionModelWithProjection"]
    loaded = MagicVideoPipeline.from_pretrained(tmp_path / "full")
    loaded.set_progress_bar_config(disable=True)
    kw = dict(stages=BOTH, seed=3, num_inference_steps=2, output_type="latent")
    assert torch.equal(loaded(PROMPTS[0], **kw).frames, cascade(PROMPTS[0], **kw).frames)
    # a key-frame-only folder (the committed layout) loads with both optional components None
    tiny_pipeline.save_pretrained(tmp_path / "key")
    index_file = tmp_path / "key" / "model_index.json"
    index = json.loads(index_file.read_text())
    assert index["interpolation"] == index["image_encoder"] == [None, None]  # diffusers' entry for an absent one
    for entries in (index, {k: v for k, v in index.items() if k not in ("interpolation", "image_encoder")}):
        index_file.write_text(json.dumps(entries))  # with null entries, and without them (the committed folder)
        key = MagicVideoPipeline.from_pretrained(tmp_path / "key")
        assert key.interpolation is None and key.image_encoder is None


def test_cascade_identity(cascade, tiny_pipeline, tmp_path):
    """Stable, per stage chain: adding an interpolation model leaves the key-frame identity as it
    was; the 61-frame identity changes with the interpolation weights and differs from it."""
    folder = tmp_path / "pipe"
    tiny_pipeline.save_pretrained(folder)
    key = cascade_identity(folder, ("keyframes",))
    assert key == cascade_identity(folder) and len(key) == 64
    with pytest.raises(FileNotFoundError, match="stage 'interpolate' needs the component folder"):
        cascade_identity(folder, BOTH)
    add_interpolation(folder, cascade.interpolation, cascade.image_encoder)
    both = cascade_identity(folder, "keyframes,interpolate")
    assert cascade_identity(folder, ("keyframes",)) == key and both != key
    loaded = MagicVideoPipeline.from_pretrained(folder)  # add_interpolation wrote a loadable folder
    assert isinstance(loaded.interpolation, InterpolationUNet)
    changed = InterpolationUNet.from_keyframe_unet(cascade.unet)
    add_interpolation(folder, changed, cascade.image_encoder)
    assert cascade_identity(folder, BOTH) != both and cascade_identity(folder, ("keyframes",)) == key
    with pytest.raises(FileNotFoundError, match="not a saved MagicVideoPipeline folder"):
        cascade_identity(tmp_path / "nope")


def test_cli_generate_writes_61_frames(cascade, tmp_path):
    import av

    from magicvideo.cli import main

    cascade.save_pretrained(tmp_path / "pipe")
    out = tmp_path / "clip.mp4"
    assert main(["generate", "--pipeline", str(tmp_path / "pipe"), "--stages", "keyframes,interpolate",
                 "--prompt", PROMPTS[0], "--seed", "4", "--steps", "1", "--out", str(out)]) == 0  # fmt: skip
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(video=0)]
        assert float(stream.average_rate) == 32  # 4 x the key frames' 8 fps
    assert len(frames) == 61
