"""Few-step distillation (DMD2, magicvideo.training.distill) on the tiny pipeline with 2 key frames."""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = ["a red circle moves left on a blue background", "a green square moves up on a white background",
           "a yellow triangle grows slowly on a black background"]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    from magicvideo.build import build_pipeline, load_model_config

    cfg = load_model_config("tiny").model_copy(update={"num_frames": 2})
    folder = tmp_path_factory.mktemp("distill") / "teacher"
    build_pipeline(cfg, weights="random", seed=0).save_pretrained(folder)
    return folder


def tiny_cfg(**kw):
    from magicvideo.training.distill import DistillConfig

    base = dict(steps=1, batch_size=2, student_steps=2, fake_updates=1, regression_pairs=2, regression_batch=1,
                teacher_steps=2, log_every=1, dm_t_min=0.2, dm_t_max=0.8)
    return DistillConfig(**{**base, **kw})


def trainer(teacher_dir, out, **kw):
    from magicvideo.training.distill import DistillTrainer, load_teacher

    return DistillTrainer(tiny_cfg(**kw), load_teacher(teacher_dir), PROMPTS, out, device="cpu")


def state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_one_step_changes_student_and_fake_score_but_never_the_teacher(teacher_dir, tmp_path):
    tr = trainer(teacher_dir, tmp_path / "run")
    teacher, student, fake = state(tr.teacher), state(tr.student), state(tr.fake)
    assert all(torch.equal(teacher[k], v) for k, v in student.items())  # both start as the teacher
    summary = tr.train(progress=False)
    assert summary["steps"] == 1 and summary["regression_pairs"] == 2
    assert all(torch.equal(teacher[k], v) for k, v in tr.teacher.state_dict().items())
    assert not any(p.requires_grad for p in tr.teacher.parameters())
    assert any(not torch.equal(student[k], v) for k, v in tr.student.state_dict().items())
    assert any(not torch.equal(fake[k], v) for k, v in tr.fake.state_dict().items())
    (rec,) = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert {"dm_loss", "fake_loss", "regression_loss", "grad_norm", "seconds_per_step"} <= set(rec)


def test_student_samples_the_timesteps_it_was_trained_on_like_the_pipeline(teacher_dir, tmp_path):
    """Backward simulation runs the pipeline's own sampling: the trainer's chain from a seed's noise is what
    the pipeline returns for that seed at student_steps and guidance 1."""
    from magicvideo.pipeline import MagicVideoPipeline

    tr = trainer(teacher_dir, tmp_path / "run", regression_weight=0.0)
    tr.train(progress=False)
    t = tr.teacher_pipe
    pipe = MagicVideoPipeline(unet=tr.student.eval(), vae=t.vae, text_encoder=t.text_encoder, tokenizer=t.tokenizer,
                              scheduler=t.scheduler)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(PROMPTS[:2], seed=[3, 4], num_inference_steps=2, guidance_scale=1.0, output_type="latent").frames
    noise, _ = pipe.prepare_latents([3, 4], 2, 64, 64, torch.float32)
    torch.testing.assert_close(tr.sample(noise, tr.cond[:2]), out, rtol=1e-4, atol=1e-5)
    assert tr.timesteps == [int(x) for x in t.scheduler.timesteps]  # the pipeline's scheduler at 2 steps


def test_saved_student_is_a_pipeline_folder_that_samples_at_its_steps(teacher_dir, tmp_path):
    from safetensors import safe_open

    from magicvideo.pipeline import MagicVideoPipeline, cascade_identity

    tr = trainer(teacher_dir, tmp_path / "run", regression_weight=0.0)
    summary = tr.train(progress=False)
    folder = tr.save_student(tmp_path / "student", teacher_dir, summary)
    doc = json.loads((folder / "distillation.json").read_text())
    assert doc["method"] == "DMD2" and doc["guidance_folded_in"] == 7.5 and doc["student_steps"] == 2
    assert doc["sample_with"] == {"num_inference_steps": 2, "guidance_scale": 1.0}
    assert doc["teacher"]["keyframes_identity"] == cascade_identity(teacher_dir, "keyframes")
    for comp in ("vae", "text_encoder", "tokenizer", "scheduler"):  # the teacher's files, byte for byte
        for f in (teacher_dir / comp).rglob("*"):
            if f.is_file():
                assert (folder / comp / f.relative_to(teacher_dir / comp)).read_bytes() == f.read_bytes()
    with safe_open(folder / "unet" / "diffusion_pytorch_model.safetensors", "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16
    pipe = MagicVideoPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    a = pipe(PROMPTS[:2], seed=[1, 2], num_inference_steps=2, guidance_scale=1.0).frames
    b = pipe(PROMPTS[:1], seed=[1], num_inference_steps=2, guidance_scale=1.0).frames
    assert a.shape == (2, 2, 64, 64, 3) and a.dtype.name == "uint8"
    assert abs(a[0].astype(int) - b[0].astype(int)).max() <= 1  # sample k depends on its own seed only


def test_same_seed_same_student(teacher_dir, tmp_path):
    a, b = (trainer(teacher_dir, tmp_path / name, regression_weight=0.0) for name in ("a", "b"))
    a.train(progress=False)
    b.train(progress=False)
    assert all(torch.equal(v, b.student.state_dict()[k]) for k, v in a.student.state_dict().items())


def test_resume_continues_exactly(teacher_dir, tmp_path):
    full = trainer(teacher_dir, tmp_path / "full", steps=2, regression_weight=0.0)
    full.train(progress=False)
    part = trainer(teacher_dir, tmp_path / "part", steps=1, regression_weight=0.0)
    part.train(progress=False)
    resumed = trainer(teacher_dir, tmp_path / "part", steps=2, regression_weight=0.0)
    resumed.train(progress=False)
    assert resumed.step == 2
    assert all(torch.equal(v, resumed.student.state_dict()[k]) for k, v in full.student.state_dict().items())
    with pytest.raises(ValueError, match="settings changed.*guidance"):
        trainer(teacher_dir, tmp_path / "part", steps=3, guidance=3.0, regression_weight=0.0).train(progress=False)


def test_bad_inputs_get_one_clear_error(teacher_dir, tmp_path):
    from pydantic import ValidationError

    from magicvideo.training.distill import DistillConfig, DistillTrainer, load_teacher, shapes_prompts
    from scripts.train_student import main

    with pytest.raises(FileNotFoundError, match="not a saved MagicVideoPipeline folder"):
        load_teacher(tmp_path / "missing")
    with pytest.raises(ValidationError, match="steps"):
        DistillConfig(steps=0)
    with pytest.raises(ValidationError, match="dm_t_min"):
        DistillConfig(dm_t_min=0.9, dm_t_max=0.5)
    with pytest.raises(ValueError, match="no prompts"):
        DistillTrainer(tiny_cfg(), load_teacher(teacher_dir), [], tmp_path / "run", device="cpu")
    with pytest.raises(FileNotFoundError, match="train.csv"):
        shapes_prompts(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "out"), "--steps", "0"])
    assert exc.value.code == 2
    with pytest.raises(FileNotFoundError, match="missing"):
        main([str(tmp_path / "out"), "--teacher", str(tmp_path / "missing")])


def test_default_prompts_are_the_benchmark_training_captions(tmp_path):
    from magicvideo.data.shapes import ShapesSpec, train_csv, sample_clip
    from magicvideo.training.distill import shapes_prompts

    spec = ShapesSpec(train=5)
    clips = [sample_clip(spec, "train", i) for i in range(5)]
    (tmp_path / "train.csv").write_text(train_csv(clips))
    assert shapes_prompts(tmp_path) == shapes_prompts(count=5) == [c.caption for c in clips]


def test_script_writes_a_student_folder(teacher_dir, tmp_path, capsys):
    from magicvideo.data.shapes import ShapesSpec, sample_clip, train_csv
    from scripts.train_student import main

    (tmp_path / "train.csv").write_text(train_csv([sample_clip(ShapesSpec(), "train", i) for i in range(3)]))
    assert main([str(tmp_path / "out"), "--teacher", str(teacher_dir), "--data", str(tmp_path), "--steps", "1",
                 "--batch-size", "1", "--student-steps", "2", "--fake-updates", "1", "--regression-pairs", "1",
                 "--device", "cpu", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 1 and summary["timesteps"] == [501, 1] and summary["prompts"] == 3
    assert (tmp_path / "out" / "student" / "model_index.json").is_file()
    assert (tmp_path / "out" / "run" / "checkpoint.pt").is_file()


def test_generate_samples_a_student_at_its_own_steps_unless_told(teacher_dir, tmp_path, monkeypatch):
    """`magicvideo generate --pipeline STUDENT` without --steps/--guidance uses distillation.json's."""
    from magicvideo.cli import main
    from magicvideo.pipeline import MagicVideoPipeline

    tr = trainer(teacher_dir, tmp_path / "run", regression_weight=0.0)
    folder = tr.save_student(tmp_path / "student", teacher_dir, tr.train(progress=False))
    calls = []
    real = MagicVideoPipeline.__call__

    def spy(self, *args, **kwargs):
        calls.append((kwargs["num_inference_steps"], kwargs["guidance_scale"]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MagicVideoPipeline, "__call__", spy)
    base = ["generate", "--pipeline", str(folder), "--prompt", PROMPTS[0], "--out", str(tmp_path / "a.mp4")]
    assert main(base) == 0
    assert main([*base, "--steps", "1", "--guidance", "3"]) == 0
    assert calls == [(2, 1.0), (1, 3.0)]


def test_a_teacher_trained_under_the_mixed_noise_prior_is_distilled_under_it(teacher_dir, tmp_path, monkeypatch):
    """The teacher's scores are those of noise with its alpha (PYoCo's mixed prior), and the student samples
    with the alpha in its copied config: the student's initial noise, the distribution-matching noise and the
    fake score's loss all draw with the teacher's alpha; alpha 0 draws what plain torch.randn draws."""
    import shutil

    import magicvideo.training.distill as distill
    import magicvideo.training.keyframe as keyframe
    from magicvideo.pipeline import MagicVideoPipeline
    from magicvideo.training.distill import DistillTrainer, load_teacher

    plain = trainer(teacher_dir, tmp_path / "plain", regression_weight=0.0)
    assert plain.noise_prior == 0.0
    state = plain.generator.get_state()
    torch.testing.assert_close(plain._noise(3), torch.randn((3, *plain.shape), generator=plain.generator.set_state(state)))

    teacher = load_teacher(teacher_dir)
    teacher.unet.register_to_config(noise_prior=1.0, sample_noise_prior=2.0)  # trained at 1, sampled at 2
    tr = DistillTrainer(tiny_cfg(regression_weight=0.0), teacher, PROMPTS, tmp_path / "mixed", device="cpu")
    assert tr.noise_prior == 1.0 and tr.student.config.noise_prior == 1.0  # the alpha the teacher's scores know
    assert tr.student.config.sample_noise_prior is None and teacher.unet.config.sample_noise_prior == 2.0
    z = tr._noise(400)  # (B, C, F=2, h, w): the two frames' noise correlates by alpha^2 / (1 + alpha^2) = 0.5
    r = torch.corrcoef(torch.stack([z[:, :, 0].flatten(), z[:, :, 1].flatten()]))[0, 1]
    assert abs(float(r) - 0.5) < 0.02 and abs(float(z.std()) - 1.0) < 0.02

    alphas, losses = [], []
    real_video_noise, real_loss = distill.video_noise, keyframe.diffusion_loss
    monkeypatch.setattr(distill, "video_noise", lambda shape, alpha, *a, **k: alphas.append(alpha) or real_video_noise(shape, alpha, *a, **k))
    monkeypatch.setattr(keyframe, "diffusion_loss", lambda *a, **k: losses.append(k.get("noise_prior")) or real_loss(*a, **k))
    tr.train(progress=False)
    assert alphas and set(alphas) == {1.0} and len(alphas) >= 3  # fake update, generator update, dm loss
    assert losses == [1.0]
    # a teacher folder with other stages (here an I2V entry, as the committed pipeline has): the student holds none
    rich = tmp_path / "teacher_with_i2v"
    shutil.copytree(teacher_dir, rich)
    index = json.loads((rich / "model_index.json").read_text())
    (rich / "model_index.json").write_text(json.dumps({**index, "i2v": ["magicvideo.models.i2v", "ImageToVideoUNet"]}))
    folder = tr.save_student(tmp_path / "student", rich)
    assert json.loads((folder / "unet" / "config.json").read_text())["noise_prior"] == 1.0
    assert json.loads((folder / "model_index.json").read_text())["i2v"] == [None, None]
    pipe = MagicVideoPipeline.from_pretrained(folder)
    assert pipe.i2v is None and pipe.noise_prior() == 1.0
