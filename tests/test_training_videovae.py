"""VideoVAE decoder training (3.3): only the temporal layers change, the reconstruction loss
lowers on a fixed batch, and resume is exact."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from magicvideo.build import load_model_config
from magicvideo.training import TrainConfig, build_videovae_trainer, read_log, reconstruction_loss


pytestmark = pytest.mark.usefixtures("one_thread")


def clips(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, 3, 32, 32, generator=g) * 2 - 1
    video = (base + 0.1 * torch.randn(n, 4, 3, 32, 32, generator=g)).clamp(-1, 1)
    return [{"video": video[i], "caption": "x", "nu": 8.0} for i in range(n)]


def config(tmp_path, **kw):
    mc = load_model_config("tiny")
    mc.num_frames, mc.resolution = 4, 32
    base = dict(stage="videovae", model=mc, out_dir=str(tmp_path / "run"), steps=10, batch_size=2,
                checkpoint_every=100, optim={"lr": 3e-3, "weight_decay": 0.0}, ema={"decay": 0.9}, device="cpu")  # fmt: skip
    return TrainConfig(**{**base, **kw})


def fixed_loss(trainer, data) -> float:
    video = torch.stack([d["video"] for d in data]).transpose(1, 2)
    with torch.no_grad():
        return float(reconstruction_loss(trainer.model, video, sample=False))


def test_only_temporal_layers_train_and_the_loss_lowers(tmp_path):
    data = clips()
    trainer = build_videovae_trainer(config(tmp_path), dataset=data)
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert {id(p) for p in trainer.params} == {id(p) for p in trainer.model.temporal.parameters()}
    before = fixed_loss(trainer, data)
    trainer.train(progress=False)
    after = fixed_loss(trainer, data)
    assert after < before - 1e-3, (before, after)

    saved = load_file(tmp_path / "run" / "final" / "vae" / "diffusion_pytorch_model.safetensors")
    assert saved.keys() == initial.keys()
    changed = {k for k in saved if not torch.equal(saved[k], initial[k])}
    temporal = {k for k in saved if k.startswith("temporal.")}
    assert changed and changed <= temporal  # nothing outside the temporal layers moved
    assert {k for k in changed if "to_out" in k}  # the zero-initialised outputs learned


def test_videovae_resume_is_bit_exact(tmp_path):
    data = clips(3)
    kw = dict(steps=4, batch_size=1, grad_accum=2)
    a = build_videovae_trainer(config(tmp_path / "a", **kw), dataset=data)
    a.train(progress=False)
    build_videovae_trainer(config(tmp_path / "b", **{**kw, "steps": 1, "checkpoint_every": 1}), dataset=data).train(progress=False)
    b = build_videovae_trainer(config(tmp_path / "b", **kw), dataset=data)
    b.train(progress=False)
    for name in ("vae", "vae_ema"):
        fa = load_file(tmp_path / "a" / "run" / "final" / name / "diffusion_pytorch_model.safetensors")
        fb = load_file(tmp_path / "b" / "run" / "final" / name / "diffusion_pytorch_model.safetensors")
        assert all(torch.equal(fa[k], fb[k]) for k in fa), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (bf16 autocast path)")
def test_videovae_trains_on_cuda_in_bf16(tmp_path):
    data = clips()
    trainer = build_videovae_trainer(config(tmp_path, device="cuda", mixed_precision="bf16", steps=3), dataset=data)
    trainer.train(progress=False)
    assert all(p.is_cuda for p in trainer.params)
    assert all(r["loss"] > 0 for r in read_log(tmp_path / "run" / "train_log.jsonl"))
