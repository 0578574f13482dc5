"""Key-frame training (3.1.3): eq. 6 lowers on a fixed batch, exact resume, image-embedding
pre-training then text fine-tuning, condition dropout."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from magicvideo.build import load_model_config
from magicvideo.training import TrainConfig, build_keyframe_trainer, diffusion_loss, drop_condition, list_checkpoints, read_log

CAPTIONS = ["a red circle moving left", "a blue square moving up", "a green triangle grows"]


pytestmark = pytest.mark.usefixtures("one_thread")


def small_model():
    """configs/model/tiny.yaml with 4 frames of 32x32 pixels (4x4 latents): fast on a CPU."""
    mc = load_model_config("tiny")
    mc.num_frames, mc.resolution, mc.unet.sample_size = 4, 32, 4
    return mc


def clips(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, 3, 32, 32, generator=g) * 2 - 1  # frames that change slowly over time
    video = (base + 0.1 * torch.randn(n, 4, 3, 32, 32, generator=g)).clamp(-1, 1)
    return [{"video": video[i], "caption": CAPTIONS[i % 3], "nu": 4.0 + 2 * i} for i in range(n)]


def config(tmp_path, **kw):
    base = dict(model=small_model(), out_dir=str(tmp_path / "run"), steps=4, batch_size=2, checkpoint_every=100,
                condition_dropout=0.0, optim={"lr": 1e-3, "warmup_steps": 0}, ema={"decay": 0.9}, device="cpu")  # fmt: skip
    return TrainConfig(**{**base, **kw})


def fixed_batch_loss(trainer, batch_items) -> float:
    """Eq. 6 on a fixed batch with fixed noise and timesteps."""
    video = torch.stack([b["video"] for b in batch_items]).transpose(1, 2)
    g = torch.Generator().manual_seed(123)
    trainer.model.eval()
    with torch.no_grad():
        latents = trainer.vae.encode_video(video) * trainer.vae.config.scaling_factor
        cond = trainer.condition({"caption": [b["caption"] for b in batch_items]}, video)
        fps = torch.tensor([b["nu"] for b in batch_items])
        return float(diffusion_loss(trainer.model, trainer.noise_scheduler, latents, cond, fps, g))


def test_eq6_loss_decreases_on_a_fixed_batch(tmp_path):
    data = clips(2)
    trainer = build_keyframe_trainer(config(tmp_path, steps=15, ema={"enabled": False}), dataset=data)
    before = fixed_batch_loss(trainer, data)
    trainer.train(progress=False)
    after = fixed_batch_loss(trainer, data)
    assert after < 0.8 * before, (before, after)
    log = read_log(tmp_path / "run" / "train_log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 16)) and all(r["samples"] == 2 * r["step"] for r in log)


def test_encode_chunk_is_speed_only(tmp_path):
    """`encode_chunk` (frames per VAE-encoder call) changes the launches, not the training: the same
    losses and weights whether the batch's 8 frames are encoded two at a time or in one call (up to float rounding: the convolutions may
    take another algorithm at another batch size)."""
    data = clips(2)
    runs = {}
    for chunk in (2, 8):
        trainer = build_keyframe_trainer(config(tmp_path / f"c{chunk}", steps=3, encode_chunk=chunk), dataset=data)
        encode, seen = trainer.vae.encode_video, []
        trainer.vae.encode_video = lambda *a, **kw: seen.append(kw.get("chunk_size")) or encode(*a, **kw)
        trainer.train(progress=False)
        assert seen == [chunk] * 3
        runs[chunk] = ([r["loss"] for r in read_log(tmp_path / f"c{chunk}" / "run" / "train_log.jsonl")],
                       trainer.model.state_dict())
    assert runs[2][0] == pytest.approx(runs[8][0], rel=1e-5)
    assert all(torch.allclose(v, runs[8][1][k], rtol=1e-4, atol=1e-6) for k, v in runs[2][1].items())


def _params(folder):
    return load_file(folder / "diffusion_pytorch_model.safetensors")


@pytest.mark.slow
def test_resume_is_bit_exact(tmp_path):
    """6 steps straight == 2 steps, checkpoint, new process-like trainer, resume, 4 more (with
    accumulation, dropout, EMA, epochs that wrap, a warmup schedule)."""
    data = clips(3)
    kw = dict(steps=6, batch_size=1, grad_accum=2, condition_dropout=0.5,
              optim={"lr": 1e-3, "warmup_steps": 3, "lr_schedule": "cosine"})  # fmt: skip
    straight = build_keyframe_trainer(config(tmp_path / "a", **kw), dataset=data)
    initial = {k: v.clone() for k, v in straight.model.state_dict().items()}
    straight.train(progress=False)

    first = build_keyframe_trainer(config(tmp_path / "b", **{**kw, "steps": 2, "checkpoint_every": 2}), dataset=data)
    first.train(progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "b" / "run")] == ["step_00000002"]
    resumed = build_keyframe_trainer(config(tmp_path / "b", **kw), dataset=data)
    resumed.train(progress=False)
    assert resumed.step == 6

    a, b = tmp_path / "a" / "run" / "final", tmp_path / "b" / "run" / "final"
    for name in ("unet", "unet_ema"):
        pa, pb = _params(a / name), _params(b / name)
        assert pa.keys() == pb.keys()
        assert all(torch.equal(pa[k], pb[k]) for k in pa), name
    changed = [k for k, v in _params(a / "unet").items() if not torch.equal(v, initial[k])]
    assert len(changed) > len(initial) // 2  # training did move the weights
    la, lb = read_log(tmp_path / "a" / "run" / "train_log.jsonl"), read_log(tmp_path / "b" / "run" / "train_log.jsonl")
    assert [r["loss"] for r in la] == [r["loss"] for r in lb] and len(la) == 6


@pytest.mark.slow
def test_deferred_logging_logs_every_step_and_changes_nothing(tmp_path):
    """log_every: 4 keeps losses on the device and syncs every 4 steps (and at checkpoints): the
    same weights and the same per-step log as log_every: 1; a non-finite loss still stops the run."""
    data = clips(3)
    kw = dict(steps=7, batch_size=1, checkpoint_every=5, optim={"lr": 1e-3})
    a = build_keyframe_trainer(config(tmp_path / "a", **kw), dataset=data)
    a.train(progress=False)
    b = build_keyframe_trainer(config(tmp_path / "b", **kw, log_every=4), dataset=data)
    flushes = []
    orig = b._flush_log
    b._flush_log = lambda pending, *rest: (flushes.append([r["step"] for r in pending]), orig(pending, *rest))[1]
    b.train(progress=False)
    assert flushes == [[1, 2, 3, 4], [5], [6, 7]]  # every 4 steps, and before each checkpoint
    la, lb = (read_log(tmp_path / x / "run" / "train_log.jsonl") for x in "ab")
    assert [(r["step"], r["loss"], r["grad_norm"], r["lr"]) for r in la] == [
        (r["step"], r["loss"], r["grad_norm"], r["lr"]) for r in lb]  # fmt: skip
    pa, pb = _params(tmp_path / "a" / "run" / "final" / "unet"), _params(tmp_path / "b" / "run" / "final" / "unet")
    assert all(torch.equal(pa[k], pb[k]) for k in pa)

    c = build_keyframe_trainer(config(tmp_path / "c", steps=3, batch_size=1, log_every=2), dataset=data)
    c.loss = lambda batch: torch.tensor(float("nan"), requires_grad=True)
    with pytest.raises(FloatingPointError, match="at step 1"):
        c.train(progress=False)


def test_resume_refuses_a_changed_config(tmp_path):
    data = clips(2)
    build_keyframe_trainer(config(tmp_path, steps=1), dataset=data).train(progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        build_keyframe_trainer(config(tmp_path, steps=2, batch_size=1), dataset=data).train(progress=False)


def _tiny_clip_vision(folder, dim=32):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8, projection_dim=dim)  # fmt: skip
    CLIPVisionModelWithProjection(cfg).save_pretrained(folder)
    return folder


def test_image_pretraining_then_text_finetuning(tmp_path):
    data = clips(2)
    encoder = _tiny_clip_vision(tmp_path / "clip_vision")
    pre = build_keyframe_trainer(
        config(tmp_path / "pre", steps=12, conditioning="image", image_encoder=str(encoder), condition_dropout=0.25),
        dataset=data,
    )
    video = torch.stack([d["video"] for d in data]).transpose(1, 2)
    cond = pre.condition({}, video)
    assert cond.shape == (2, 4, 32)  # one CLIP image token per frame
    before = fixed_batch_loss(pre, data)
    pre.train(progress=False)
    after = fixed_batch_loss(pre, data)
    assert after < 0.8 * before, (before, after)

    ema = tmp_path / "pre" / "run" / "final" / "unet_ema"
    fine = build_keyframe_trainer(config(tmp_path / "fine", steps=1, init_unet=str(ema)), dataset=data)
    start = _params(ema)
    assert all(torch.equal(v, start[k]) for k, v in fine.model.state_dict().items())
    fine.train(progress=False)
    assert not torch.equal(_params(tmp_path / "fine" / "run" / "final" / "unet")["conv_in.weight"], start["conv_in.weight"])


def test_image_conditioning_needs_an_encoder_of_the_right_width(tmp_path):
    with pytest.raises(ValueError, match="image_encoder"):
        build_keyframe_trainer(config(tmp_path, conditioning="image"), dataset=clips(2))
    encoder = _tiny_clip_vision(tmp_path / "clip16", dim=16)
    with pytest.raises(ValueError, match="cross_attention_dim"):
        build_keyframe_trainer(config(tmp_path, conditioning="image", image_encoder=str(encoder)), dataset=clips(2))


def test_condition_dropout_rate_and_null():
    cond, null = torch.ones(4000, 3, 2), torch.full((1, 3, 2), -1.0)
    out = drop_condition(cond, null, 0.1, torch.Generator().manual_seed(0))
    dropped = (out[:, 0, 0] == -1).float().mean()
    assert 0.08 < dropped < 0.12
    assert torch.equal(out[out[:, 0, 0] == -1], null.expand(int(dropped * 4000), 3, 2))
    assert torch.equal(drop_condition(cond, null, 0.0, None), cond)


def test_gradient_checkpointing_gives_the_same_step(tmp_path):
    data = clips(2)
    runs = []
    for gc in (False, True):
        trainer = build_keyframe_trainer(config(tmp_path / str(gc), steps=2, gradient_checkpointing=gc), dataset=data)
        trainer.train(progress=False)
        runs.append(trainer.model.state_dict())
    for k in runs[0]:
        torch.testing.assert_close(runs[0][k], runs[1][k], rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (bf16 autocast path)")
def test_cuda_bf16_training_resumes_exactly(tmp_path):
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    data = clips(3)
    kw = dict(device="cuda", mixed_precision="bf16", gradient_checkpointing=True, steps=4, batch_size=1,
              grad_accum=2, condition_dropout=0.5)  # fmt: skip
    straight = build_keyframe_trainer(config(tmp_path / "a", **kw), dataset=data)
    assert next(straight.model.parameters()).is_cuda
    straight.train(progress=False)
    build_keyframe_trainer(config(tmp_path / "b", **{**kw, "steps": 2, "checkpoint_every": 2}), dataset=data).train(progress=False)
    build_keyframe_trainer(config(tmp_path / "b", **kw), dataset=data).train(progress=False)
    la = read_log(tmp_path / "a" / "run" / "train_log.jsonl")
    lb = read_log(tmp_path / "b" / "run" / "train_log.jsonl")
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in la)
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]
    for name in ("unet", "unet_ema"):
        pa, pb = _params(tmp_path / "a" / "run" / "final" / name), _params(tmp_path / "b" / "run" / "final" / name)
        assert all(torch.equal(pa[k], pb[k]) for k in pa), name


def test_video_lr_scale_gives_the_video_additions_their_own_lr(tmp_path):
    """optim.video_lr_scale: two AdamW groups (inflated image layers at lr, temporal attention /
    adaptors / FPS embedding at lr x scale) that the schedule scales together; resume stays exact."""
    from magicvideo.models.unet import is_video_key

    data = clips(3)
    kw = dict(steps=4, batch_size=1, optim={"lr": 1e-3, "warmup_steps": 2, "video_lr_scale": 10.0})
    tr = build_keyframe_trainer(config(tmp_path / "a", **kw), dataset=data)
    image, video = tr.optimizer.param_groups
    names = {id(p): n for n, p in tr.model.named_parameters()}
    assert video["params"] and all(is_video_key(names[id(p)]) for p in video["params"])
    assert not any(is_video_key(names[id(p)]) for p in image["params"])
    assert any(".attn_temp." in names[id(p)] for p in video["params"])
    assert len(image["params"]) + len(video["params"]) == len(tr.params)
    tr.train(progress=False)
    assert video["lr"] == pytest.approx(10 * image["lr"]) and image["lr"] == pytest.approx(1e-3)
    # one group when the scale is 1 (the recipe's default)
    one = build_keyframe_trainer(config(tmp_path / "b", steps=1), dataset=data)
    assert len(one.optimizer.param_groups) == 1
    # exact resume with two groups
    first = build_keyframe_trainer(config(tmp_path / "c", **{**kw, "steps": 2, "checkpoint_every": 2}), dataset=data)
    first.train(progress=False)
    resumed = build_keyframe_trainer(config(tmp_path / "c", **kw), dataset=data)
    resumed.train(progress=False)
    pa, pb = _params(tmp_path / "a" / "run" / "final" / "unet"), _params(tmp_path / "c" / "run" / "final" / "unet")
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_cuda_graphs_is_a_speed_knob_that_trains_the_same(tmp_path):
    """cuda_graphs: on a CPU the trainer calls the U-Net itself (the same weights as without the knob),
    a run may resume with the knob flipped, and the shapes chain does not count it as a change."""
    from magicvideo.training.cuda_graphs import GraphedDenoiser
    from magicvideo.training.shapes import _comparable

    data = clips(2)
    runs = []
    for graphs in (False, True):
        trainer = build_keyframe_trainer(config(tmp_path / str(graphs), steps=2, cuda_graphs=graphs), dataset=data)
        assert trainer.denoiser is trainer.model  # a CPU trains eagerly
        trainer.train(progress=False)
        runs.append(trainer.model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    build_keyframe_trainer(config(tmp_path / "True", steps=3, cuda_graphs=False), dataset=data).train(progress=False)
    assert _comparable(config(tmp_path, cuda_graphs=True)) == _comparable(config(tmp_path, cuda_graphs=False))

    # the wrapper itself: CPU tensors, or no grad, go to the U-Net eagerly, with its result
    unet = trainer.model
    g = GraphedDenoiser(unet)
    x, t, fps = torch.randn(1, 4, 4, 4, 4), torch.tensor([10]), torch.tensor([8.0])
    cond = torch.randn(1, 8, unet.config.cross_attention_dim)
    with torch.no_grad():
        torch.testing.assert_close(g(x, t, cond, fps=fps).sample, unet(x, t, cond, fps=fps).sample)
    assert g.eager_calls == 1 and g.failed is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (graph capture)")
def test_cuda_graphs_replay_the_eager_training_steps(tmp_path):
    """On CUDA the graphed forward/backward trains like the eager one (same init, data, noise): the
    losses and weights agree to bf16 rounding, every step replays the graphs, and the capture's warm-up
    passes leave no gradient behind."""
    data = clips(3)
    kw = dict(device="cuda", mixed_precision="bf16", steps=6, batch_size=2, condition_dropout=0.5)
    runs = {}
    for graphs in (False, True):
        trainer = build_keyframe_trainer(config(tmp_path / str(graphs), cuda_graphs=graphs, **kw), dataset=data)
        trainer.train(progress=False)
        runs[graphs] = (read_log(tmp_path / str(graphs) / "run" / "train_log.jsonl"), trainer)
    (la, _), (lb, tb) = runs[False], runs[True]
    assert tb.denoiser is not tb.model and tb.denoiser.failed is None and tb.denoiser.eager_calls == 0
    torch.testing.assert_close([r["loss"] for r in lb], [r["loss"] for r in la], rtol=2e-2, atol=1e-3)
    sa, sb = runs[False][1].model.state_dict(), tb.model.state_dict()
    for k in sa:
        torch.testing.assert_close(sb[k], sa[k], rtol=2e-2, atol=2e-3)
