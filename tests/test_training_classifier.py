"""The shapes video classifier (width-scaled Inception-I3D with attribute heads): pytorch-i3d
layout, loss lowers on a fixed batch, save/load keeps the head order, labels come from
train.csv, and brief training scores real test clips above chance."""

from __future__ import annotations

import pytest
import torch

from magicvideo.build import load_model_config
from magicvideo.data import vocabulary
from magicvideo.training import TrainConfig
from magicvideo.models.classifier import ShapesI3D
from magicvideo.training.classifier import (attribute_accuracy, build_classifier_trainer, chance_accuracy,
                                            classification_loss, read_test_clips)  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from magicvideo.data.shapes import ShapesSpec, write_shapes

    root = tmp_path_factory.mktemp("shapes")
    write_shapes(root, ShapesSpec(train=48, test=24, size=32, fps=[8.0], durations=[2.0]), workers=2)
    return root


def config(tmp_path, csv=None, **kw):
    mc = load_model_config("tiny")
    mc.resolution = 32
    base = dict(stage="classifier", model=mc, out_dir=str(tmp_path / "run"), steps=4, batch_size=8, device="cpu",
                classifier={"width": 0.125, "num_frames": 12, "dropout": 0.0}, optim={"lr": 3e-3, "warmup_steps": 0},
                ema={"enabled": False}, data={"csv": csv}, checkpoint_every=1000)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_width_one_has_the_pytorch_i3d_layout():
    """At width 1 with one 400-way head: exactly evaluation.i3d.InceptionI3d's keys and shapes."""
    from evaluation.i3d import InceptionI3d

    ours = ShapesI3D(["kinetics"], [[str(i) for i in range(400)]], width=1.0).state_dict()
    ref = InceptionI3d().state_dict()
    assert sorted(ours) == sorted(ref)
    assert all(ours[k].shape == ref[k].shape for k in ref)


def test_save_load_keeps_the_head_order(tmp_path):
    v = vocabulary()
    torch.manual_seed(0)
    model = ShapesI3D(list(v), list(v.values()), width=0.125).eval()
    model.save_pretrained(tmp_path / "c")
    loaded = ShapesI3D.from_pretrained(tmp_path / "c").eval()
    assert list(loaded.heads) == list(v) and loaded.heads == v  # not the sorted order of config.json
    x = torch.rand(2, 3, 10, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
        assert loaded.features(x).shape == (2, loaded.feature_dim)
    with pytest.raises(ValueError, match="at least 10 frames"):
        loaded.features(x[:, :, :8])


def test_labels_loss_and_chance(shapes, tmp_path):
    csv = str(shapes / "train.csv")
    clips = build_classifier_trainer(config(tmp_path / "a", csv=csv)).dataset
    item = clips[3]
    row = next(r for r in (shapes / "train.csv").read_text().splitlines()[1:] if r.startswith(item["video_id"]))
    v = vocabulary()
    names = [v[k][int(i)] for k, i in zip(v, item["labels"])]
    assert all(n in row.split(",") for n in names) and item["video"].shape == (12, 3, 32, 32)

    batch = [clips[i] for i in range(8)]
    trainer = build_classifier_trainer(config(tmp_path / "b", csv=csv, steps=12), dataset=batch)
    videos = torch.stack([b["video"] for b in batch]).transpose(1, 2)
    labels = torch.stack([b["labels"] for b in batch])

    def fixed():  # train-mode batch norm (batch statistics), no dropout: deterministic
        with torch.no_grad():
            return float(classification_loss(trainer.model, videos, labels))

    before = fixed()
    trainer.train(progress=False)
    after = fixed()
    assert after < 0.7 * before, (before, after)
    assert chance_accuracy(trainer.model.heads)["motion"] == 1 / 8


@pytest.mark.slow
def test_brief_training_beats_chance_on_test_clips(shapes, tmp_path):
    """60 steps on 48 clips: the background is read (almost) perfectly; the mean over heads beats
    chance. (A cosine schedule ends the run with small steps, so the eval-mode batch-norm
    statistics match the final weights.)

    A property of the recipe, so it is checked on the median of three training seeds: one 60-step
    run is chaotic. Its outcome changed between renders of the same fixture, because x264 does
    not encode identical frames to identical bytes here (about 4% of clips differ, by up to 18
    levels), and one run in about ten then read the background at 0.46."""
    videos, attrs = read_test_clips(shapes, num_frames=12, size=32)
    assert videos.shape == (24, 3, 12, 32, 32)
    runs = []
    for seed in range(3):
        trainer = build_classifier_trainer(config(tmp_path / str(seed), csv=str(shapes / "train.csv"), steps=60, seed=seed,
                                                  optim={"lr": 3e-3, "warmup_steps": 0, "lr_schedule": "cosine"}))  # fmt: skip
        trainer.train(progress=False)
        runs.append(attribute_accuracy(trainer.model, videos, attrs))
    chance = chance_accuracy(trainer.model.heads)
    median = {k: sorted(r[k] for r in runs)[1] for k in chance}
    mean_acc = sorted(sum(r.values()) / len(r) for r in runs)[1]
    assert median["background"] >= 0.8, runs
    assert mean_acc > sum(chance.values()) / len(chance) + 0.05, (runs, chance)


def test_resume_is_bit_exact_with_batch_norm_statistics(tmp_path):
    from safetensors.torch import load_file

    g = torch.Generator().manual_seed(0)
    data = [{"video": torch.rand(12, 3, 32, 32, generator=g) * 2 - 1, "labels": torch.tensor([i % 3, i % 6, i % 3, i % 8, i % 2])}
            for i in range(6)]  # fmt: skip
    kw = dict(batch_size=2, ema={"enabled": True, "decay": 0.9}, classifier={"width": 0.125, "num_frames": 12, "dropout": 0.5})
    build_classifier_trainer(config(tmp_path / "a", **kw), dataset=data).train(progress=False)
    build_classifier_trainer(config(tmp_path / "b", steps=2, checkpoint_every=2, **kw), dataset=data).train(progress=False)
    build_classifier_trainer(config(tmp_path / "b", **kw), dataset=data).train(progress=False)
    for sub in ("classifier", "classifier_ema"):
        a = load_file(tmp_path / "a" / "run" / "final" / sub / "diffusion_pytorch_model.safetensors")
        b = load_file(tmp_path / "b" / "run" / "final" / sub / "diffusion_pytorch_model.safetensors")
        assert any("running_var" in k for k in a) and all(torch.equal(a[k], b[k]) for k in a), sub


def test_prepare_matches_the_training_frames(shapes):
    """uint8 test clips through prepare() == the frames read at the model's size by the benchmark reader."""
    from magicvideo.data.video import read_eval_clip

    model = ShapesI3D(["shape"], [["a", "b", "c"]], width=0.125, sample_size=16, num_frames=12)
    native = read_eval_clip(shapes / "TestVideo" / "video7010.mp4", num=12).frames  # (12, 32, 32, 3)
    x = model.prepare(native[None])
    ref = read_eval_clip(shapes / "TestVideo" / "video7010.mp4", num=12, size=16).frames
    ref = torch.from_numpy(ref).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    assert x.shape == (1, 3, 12, 16, 16) and (x - ref).abs().max() < 2 / 127.5 + 1e-6
    with pytest.raises(ValueError, match="at least 12 frames"):
        model.prepare(native[None, :8])
