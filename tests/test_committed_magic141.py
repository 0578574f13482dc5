"""The committed Magic 1-For-1 models on the shapes benchmark (issue 16): the 4-step DMD2 student
(``checkpoints/shapes/student``) and the I2V model (``checkpoints/shapes/pipeline/i2v``), used the
way the issue's acceptance checks use them."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from magicvideo.checkpoints import SHAPES_CHECKPOINTS

STUDENT = SHAPES_CHECKPOINTS / "student"
TEACHER = SHAPES_CHECKPOINTS / "pipeline"
PROMPT = "black background, a blue triangle moves left slowly"


@pytest.fixture(scope="module")
def pipes():
    from magicvideo.pipeline import MagicVideoPipeline

    teacher = MagicVideoPipeline.from_pretrained(str(TEACHER))
    student = MagicVideoPipeline.from_pretrained(str(STUDENT))
    for p in (teacher, student):
        p.set_progress_bar_config(disable=True)
    return teacher, student


def test_the_student_shares_the_teachers_other_components():
    """Only the student's U-Net is its own: VAE, text encoder and tokenizer are links to the teacher's
    folders (committed once; a copy would put the weights over the size budget), and its
    distillation record names the teacher it was distilled from and how it samples."""
    for part in ("vae", "text_encoder", "tokenizer"):
        link = STUDENT / part
        assert link.is_symlink() and link.resolve() == (TEACHER / part).resolve(), part
    assert not (STUDENT / "unet").is_symlink()
    record = json.loads((STUDENT / "distillation.json").read_text())
    assert record["method"] == "DMD2" and record["student_steps"] == 4
    assert record["sample_with"] == {"num_inference_steps": 4, "guidance_scale": 1.0}


@pytest.mark.slow
def test_student_is_called_like_the_teacher_and_is_at_least_4x_faster(pipes):
    """The issue's check: 8 clips (here 2) of the student at 4 steps and guidance 1 against the 25-step
    CFG teacher in one process: at least 4x (measured 9.2x for 8 clips on the 2-core CPU)."""
    teacher, student = pipes
    prompts, seeds = [PROMPT] * 2, [0, 1]
    student(prompts[:1], seed=[0], num_inference_steps=4, guidance_scale=1.0)  # warm-up
    t0 = time.perf_counter()
    teacher(prompts, seed=seeds, num_inference_steps=25, guidance_scale=7.5)
    t_teacher = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = student(prompts, seed=seeds, num_inference_steps=4, guidance_scale=1.0)
    t_student = time.perf_counter() - t0
    assert out.frames.shape == (2, 16, 64, 64, 3) and out.frames.dtype == np.uint8
    assert t_teacher / t_student >= 4.0, (t_teacher, t_student)
    # a trained student, not noise: its clips are as smooth over time as the teacher's (real clips change
    # ~1 grey level per frame; a random U-Net's output changes by tens)
    change = np.abs(np.diff(out.frames.astype(np.float64), axis=1)).mean()
    assert change < 10, change


def test_cli_generate_with_the_committed_student(tmp_path):
    import av

    from magicvideo.cli import main

    out = tmp_path / "student.mp4"
    assert main(["generate", "--pipeline", str(STUDENT), "--steps", "4", "--guidance", "1", "--prompt", PROMPT,
                 "--device", "cpu", "--out", str(out)]) == 0  # fmt: skip
    with av.open(str(out)) as container:
        assert len(list(container.decode(video=0))) == 16


@pytest.mark.slow
def test_committed_i2v_sliding_window_and_first_frame(pipes):
    """The committed pipeline holds the I2V model: ``--num-frames 24`` gives exactly 24 frames, with
    the windows held by the key-frame model (the default) and through the I2V model, and image-to-video
    starts from the given frame (its first output frame is that image's VAE
    reconstruction, far nearer to it than to another clip's first frame)."""
    from magicvideo.data.benchmarks import load_benchmark_config
    from magicvideo.data.shapes import render, sample_clip

    teacher, _ = pipes
    assert teacher.i2v is not None
    for method in ("held", "i2v"):
        long = teacher([PROMPT], seed=[0], num_inference_steps=2, num_frames=24, window_method=method)
        assert long.frames.shape == (1, 24, 64, 64, 3)
    spec = load_benchmark_config("shapes").generate
    clip = sample_clip(spec, "test", 0)
    first = render(clip, spec.size)[0]
    other = render(sample_clip(spec, "test", 5), spec.size)[0]
    out = teacher([clip.captions()[0]], seed=[0], num_inference_steps=4, image=first[None]).frames[0]
    err = lambda a, b: np.abs(a.astype(np.float64) - b).mean()  # noqa: E731
    assert err(out[0], first) < 0.5 * err(out[0], other), (err(out[0], first), err(out[0], other))
