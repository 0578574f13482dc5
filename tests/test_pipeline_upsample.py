"""The cascade's upsample stage (3.4): x4 frames, one noise per clip (a static clip upsamples to
identical frames; results do not depend on the frame batch or the other clips), save/load with
the optional upsampler, the stage's identity, and the CLI: `generate --stages keyframes,upsample`,
`upsample IN.mp4` and its fail-fast errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from magicvideo.pipeline import MagicVideoPipeline, add_upsampler, cascade_identity, resolve_stages
from magicvideo.upsampling import bicubic_clips, upsample_clips
from tests.test_model_upsampler import tiny_upsampler

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = ["a red circle moving left", "a blue square moving up"]


@pytest.fixture
def cascade(tiny_pipeline_4f):
    """The tiny 4-frame pipeline (64x64) with a tiny random upsampler (a new pipeline object over
    the session's shared components)."""
    pipe = MagicVideoPipeline(**{**tiny_pipeline_4f.components, "upsampler": tiny_upsampler()})
    pipe.set_progress_bar_config(disable=True)
    return pipe


def clips(b: int = 2, f: int = 3, side: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, f, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_keyframes_then_upsample_gives_x4_frames(cascade):
    kw = dict(seed=[5, 6], num_inference_steps=1, upsample_steps=1)
    out = cascade(PROMPTS, stages="keyframes,upsample", output_type="pt", **kw)
    assert out.frames.shape == (2, 3, 4, 256, 256) and list(out.latents) == ["keyframes"]
    low = cascade(PROMPTS, output_type="pt", **{k: v for k, v in kw.items() if k != "upsample_steps"}).frames
    again = cascade.upsample(low, [5, 6], num_inference_steps=1)
    torch.testing.assert_close(again, out.frames)  # the stage alone on the decoded frames
    u8 = cascade(PROMPTS, stages=("keyframes", "upsample"), **kw).frames
    assert u8.dtype == np.uint8 and u8.shape == (2, 4, 256, 256, 3)


def test_every_frame_of_a_clip_gets_the_same_noise():
    model = tiny_upsampler()
    static = clips(2, 1).expand(-1, -1, 4, -1, -1)  # 4 identical frames per clip
    out = upsample_clips(model, static, [3, 4], num_inference_steps=2, frame_batch=3)
    for k in range(2):
        for f in range(1, 4):
            torch.testing.assert_close(out[k, :, f], out[k, :, 0], atol=1e-5, rtol=0)
    assert not torch.allclose(out[0, :, 0], upsample_clips(model, static[:1], [9], num_inference_steps=2)[0, :, 0])


@pytest.mark.parametrize("scheduler", ["ddim", "ddpm"])
def test_results_depend_on_the_clip_seed_only(scheduler):
    model = tiny_upsampler()
    x = clips(2, 3)
    kw = dict(num_inference_steps=2, scheduler=scheduler)
    together = upsample_clips(model, x, [11, 12], frame_batch=4, **kw)  # batches mix the two clips' frames
    alone = upsample_clips(model, x[1:], [12], frame_batch=1, **kw)
    torch.testing.assert_close(together[1:], alone, atol=1e-5, rtol=1e-4)


def test_noise_level_and_its_default():
    model = tiny_upsampler(default_noise_level=0)
    x = clips(1, 1)
    kw = dict(num_inference_steps=2)
    base = upsample_clips(model, x, [1], **kw)
    assert torch.equal(upsample_clips(model, x, [1], noise_level=0, **kw), base)
    assert not torch.allclose(upsample_clips(model, x, [1], noise_level=100, **kw), base)
    with pytest.raises(ValueError, match=r"noise_level must be in \[0, 350\]"):
        upsample_clips(model, x, [1], noise_level=351, **kw)
    with pytest.raises(ValueError, match="got 2 seeds for 1 clips"):
        upsample_clips(model, x, [1, 2], **kw)
    assert bicubic_clips(x).shape == (1, 3, 1, 32, 32)


def test_stage_names_and_errors(cascade, tiny_pipeline_4f):
    assert resolve_stages("keyframes,upsample") == ("keyframes", "upsample")
    assert resolve_stages("keyframes,interpolate,upsample") == ("keyframes", "interpolate", "upsample")
    assert resolve_stages("interpolate,upsample") == ("interpolate", "upsample")
    with pytest.raises(ValueError, match="not consecutive"):
        resolve_stages("upsample,keyframes")
    with pytest.raises(ValueError, match="has no upsample stage"):
        tiny_pipeline_4f(PROMPTS[0], stages="keyframes,upsample", num_inference_steps=1)
    with pytest.raises(ValueError, match="pixel space"):
        cascade(PROMPTS[0], stages="keyframes,upsample", output_type="latent")
    with pytest.raises(ValueError, match="call pipe.upsample"):
        cascade(stages="upsample")


def test_save_load_and_identity(cascade, tiny_pipeline_4f, tmp_path):
    folder = tmp_path / "pipe"
    tiny_pipeline_4f.save_pretrained(folder)
    key = cascade_identity(folder, ("keyframes",))
    with pytest.raises(FileNotFoundError, match="stage 'upsample' needs the component folder"):
        cascade_identity(folder, "keyframes,upsample")
    add_upsampler(folder, cascade.upsampler)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["upsampler"] == ["magicvideo.models.upsampler", "UpsamplerUNet"]
    both = cascade_identity(folder, "keyframes,upsample")
    assert both != key and cascade_identity(folder, ("keyframes",)) == key
    loaded = MagicVideoPipeline.from_pretrained(folder)
    loaded.set_progress_bar_config(disable=True)
    kw = dict(stages="keyframes,upsample", seed=2, num_inference_steps=1, upsample_steps=1, output_type="pt")
    assert torch.equal(loaded(PROMPTS[0], **kw).frames, cascade(PROMPTS[0], **kw).frames)
    add_upsampler(folder, tiny_upsampler(seed=1))
    assert cascade_identity(folder, "keyframes,upsample") != both
    from magicvideo.validate import check_pipeline_folder

    assert check_pipeline_folder(folder)["upsampler"] > 0


def test_cli_generate_and_upsample(cascade, tmp_path, capsys):
    import av

    from magicvideo.cli import main
    from magicvideo.video_io import write_mp4

    cascade.save_pretrained(tmp_path / "pipe")
    out = tmp_path / "clip.mp4"
    assert main(["generate", "--pipeline", str(tmp_path / "pipe"), "--stages", "keyframes,upsample", "--prompt",
                 PROMPTS[0], "--steps", "1", "--upsample-steps", "1", "--noise-level", "5", "--out", str(out)]) == 0  # fmt: skip
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (256, 256, 3)
    assert main(["generate", "--pipeline", str(tmp_path / "pipe"), "--prompt", "x", "--noise-level", "5"]) == 2
    assert "add it to --stages" in capsys.readouterr().err

    clip = np.zeros((5, 16, 32, 3), np.uint8)  # (decord misreads frames less than 32 px wide)
    clip[:, 4:12, 6:14] = (220, 40, 40)
    write_mp4(tmp_path / "in.mp4", clip, fps=12)
    ckpt = tmp_path / "pipe" / "upsampler"
    args = ["upsample", str(tmp_path / "in.mp4"), "--checkpoint", str(ckpt), "--steps", "1", "--seed", "3"]
    assert main([*args, "--out", str(tmp_path / "a.mp4")]) == 0
    with av.open(str(tmp_path / "a.mp4")) as container:
        stream = container.streams.video[0]
        got = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert float(stream.average_rate) == 12
    assert len(got) == 5 and got[0].shape == (64, 128, 3)
    capsys.readouterr()

    # fail fast, one line, exit code 2
    assert main([*args, "--out", str(tmp_path / "b.mp4"), "--noise-level", "351"]) == 2
    assert "takes 0..350 (its max_noise_level)" in capsys.readouterr().err
    assert main(["upsample", str(tmp_path / "nope.mp4"), "--checkpoint", str(ckpt), "--out", str(tmp_path / "b.mp4")]) == 2
    assert "IN: file not found" in capsys.readouterr().err
    assert main(["upsample", str(tmp_path / "in.mp4"), "--checkpoint", str(tmp_path), "--out", str(tmp_path / "b.mp4")]) == 2
    assert "missing config.json" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "b.avi")]) == 2
    assert "must be an .mp4 path" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse's types: before anything loads
        main([*args, "--out", str(tmp_path / "b.mp4"), "--steps", "0"])
    assert exc.value.code == 2 and "'0': must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "b.mp4").exists()


def test_cli_upsample_names_the_missing_default_checkpoint(tmp_path, capsys, monkeypatch):
    from magicvideo import checkpoints
    from magicvideo.cli import main

    monkeypatch.setattr(checkpoints, "SHAPES_CHECKPOINTS", tmp_path / "shapes")
    (tmp_path / "in.mp4").write_bytes(b"")
    assert main(["upsample", str(tmp_path / "in.mp4"), "--out", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shapes/pipeline/upsampler: UpsamplerUNet folder not found" in err[0]
    assert "scripts/train_upsampler.py" in err[0]


def test_the_committed_shapes_upsampler_restores_real_frames(tmp_path):
    """``magicvideo upsample`` with no --checkpoint reads the committed shapes SR model: a real test clip
    rendered at 64 px comes back at 256 px nearer the same clip rendered at 256 than bicubic
    upsampling of the same decoded frames is (35.3 dB against 34.1, though only the SR output goes
    through a second mp4 encoding; the plain-parameterization model it replaced gave ~32 dB, a random
    one ~10; checkpoints/shapes/README.md), and ``generate --stages keyframes,upsample`` on the
    committed pipeline writes 16 frames of 256 x 256."""
    import av

    from magicvideo.checkpoints import shapes_checkpoint
    from magicvideo.cli import main
    from magicvideo.data.benchmarks import load_benchmark_config
    from magicvideo.data.shapes import render, sample_clip
    from magicvideo.video_io import write_mp4

    clip = sample_clip(load_benchmark_config("shapes").generate, "test", 0)
    low, high = render(clip, 64)[:3], render(clip, 256)[:3]
    write_mp4(tmp_path / "in.mp4", low, fps=8)
    assert main(["upsample", str(tmp_path / "in.mp4"), "--out", str(tmp_path / "x4.mp4"), "--steps", "10"]) == 0
    with av.open(str(tmp_path / "x4.mp4")) as container:
        got = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert got.shape == high.shape == (3, 256, 256, 3)
    with av.open(str(tmp_path / "in.mp4")) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    x = torch.from_numpy(decoded).permute(0, 3, 1, 2).float()
    bicubic = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic").clamp(0, 255).round()
    psnr = lambda a: 10 * np.log10(255**2 / np.mean((a.astype(np.float64) - high) ** 2))  # noqa: E731
    sr_db, bicubic_db = psnr(got), psnr(bicubic.permute(0, 2, 3, 1).numpy())
    assert sr_db > bicubic_db + 0.5 and sr_db > 33, (sr_db, bicubic_db)

    out = tmp_path / "gen.mp4"
    assert main(["generate", "--pipeline", str(shapes_checkpoint("pipeline")), "--stages", "keyframes,upsample",
                 "--prompt", "a red circle moving left", "--steps", "2", "--upsample-steps", "1", "--out", str(out)]) == 0  # fmt: skip
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 16 and frames[0].shape == (256, 256, 3)
