"""`magicvideo train shapes`: the recipes validate and fit the size budget; the whole chain runs
end to end at tiny sizes on a CPU from one seed, its outputs load in their standard formats and
generate, and a second run reuses the finished stages."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from magicvideo.cli import main
from magicvideo.training.shapes import STAGES, ShapesChain, load_shapes_recipe, shapes_words, size_report


pytestmark = pytest.mark.usefixtures("one_thread")


def test_vocabulary_covers_every_caption():
    from magicvideo.data.shapes import ShapesSpec, sample_clip

    words = set(shapes_words())
    spec = ShapesSpec()
    for i in range(50):
        for caption in sample_clip(spec, "test", i).captions():
            assert set(caption.replace(",", " ").split()) <= words


def test_default_recipe_fits_the_size_budget():
    """The shipped models (pipeline, classifier, CLIP) of configs/train/shapes/default.yaml: at
    most ~20 MB of fp32 weights (issue 6, point 5), and the widths the chain requires."""
    from transformers import CLIPModel, CLIPTextModel

    from magicvideo.build import build_text_encoder, build_unet, build_vae
    from magicvideo.models.classifier import ShapesI3D
    from magicvideo.training.clip import clip_config
    from magicvideo.training.config import TrainConfig

    recipe = load_shapes_recipe("default")
    mc = recipe.model.model_copy(deep=True)
    mc.text_encoder.vocabulary = shapes_words()
    tokenizer, text = build_text_encoder(mc)
    cfg = TrainConfig(stage="clip", model=mc, **{k: v for k, v in recipe.stages.clip.items() if k == "clip"})
    width, inp = recipe.stages.classifier["classifier"]["width"], recipe.stages.classifier["classifier"].get("input", "rgb")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    n = {
        "unet": count(build_unet(mc)), "vae": count(build_vae(mc)), "text_encoder": count(text),
        "classifier": count(ShapesI3D(["a"] * 5, [["x"] * 3, ["x"] * 6, ["x"] * 3, ["x"] * 8, ["x"] * 2], width=width, input=inp)),
        "clip": count(CLIPModel(clip_config(cfg, tokenizer))),
    }  # fmt: skip
    assert isinstance(text, CLIPTextModel)
    assert 4 * sum(n.values()) <= 20.5e6, n
    assert mc.resolution == recipe.data.size and len(tokenizer(["a red circle"]).input_ids[0]) == 5


def test_stage_configs_scale_steps_and_skip_zero(tmp_path):
    recipe = load_shapes_recipe("default", {"stages.pretrain.steps": 0, "seed": 7})
    chain = ShapesChain(tmp_path, recipe, steps_scale=0.01, device="cpu")
    t2i = chain.stage_config("t2i")
    assert t2i.steps == 12 and t2i.optim.warmup_steps == 1 and t2i.device == "cpu"
    assert t2i.seed == 7 and t2i.data.seed == 7 and t2i.data.csv == str(tmp_path / "data" / "train.csv")
    assert t2i.resolved_model().pretrained_2d == str(tmp_path / "t2i")
    assert chain.stage_config("pretrain") is None
    fin = chain.stage_config("finetune", weights="pretrained", conditioning="text")
    assert fin.stage == "keyframe" and fin.out_dir == str(tmp_path / "runs" / "finetune")
    assert ShapesChain(tmp_path, recipe, steps_scale=1e-6).stage_config("clip").steps == 1


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """`magicvideo train shapes` of the tiny recipe, run once; the tests below each check one part
    of what it left."""
    out = tmp_path_factory.mktemp("chain") / "shapes"
    args = ["train", "shapes", str(out), "--recipe", "tiny", "--seed", "3", "--device", "cpu", "--no-progress"]
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        rc = main(args)
    return {"out": out, "args": args, "rc": rc, "printed": printed.getvalue()}


@pytest.mark.slow
def test_chain_trains_every_stage_from_one_seed(chain):
    out = chain["out"]
    assert chain["rc"] == 0
    report = json.loads((out / "report.json").read_text())
    up = STAGES.index("upsample")  # renders the benchmark at 4x first (data_hr)
    assert list(report["stages"]) == ["data", *STAGES[:up], "data_hr", *STAGES[up:]]
    for stage in STAGES:
        s = report["stages"][stage]
        assert s["steps"] >= 1 and s["loss"] > 0 and (out / "runs" / stage / "done.json").is_file()
        assert yaml.safe_load((out / "runs" / stage / "config.yaml").read_text())["seed"] == 3
    assert json.loads((out / "data" / "shapes.json").read_text())["spec"]["seed"] == 3
    hr = json.loads((out / "data_hr" / "shapes.json").read_text())["spec"]
    assert hr["seed"] == 3 and hr["size"] == 4 * 32
    assert report["sizes"] == size_report(out) and report["sizes"]["total"] > 0
    acc = report["stages"]["classifier"]["test_accuracy"]
    assert set(acc) == {"shape", "color", "background", "motion", "speed"}
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "image_encoder"):
        assert (out / "t2i" / sub).is_dir(), sub
    assert "classifier test accuracy" in chain["printed"] and "sizes: pipeline" in chain["printed"]


@pytest.mark.slow
def test_chain_outputs_load_and_generate(chain):
    from transformers import CLIPModel, CLIPProcessor

    from magicvideo.models.classifier import ShapesI3D
    from magicvideo.pipeline import MagicVideoPipeline

    out = chain["out"]
    pipe = MagicVideoPipeline.from_pretrained(out / "pipeline")
    pipe.set_progress_bar_config(disable=True)
    video = pipe("a red circle moving left slowly on a black background", num_inference_steps=2, seed=0).frames
    assert tuple(video.shape) == (1, 4, 32, 32, 3)
    big = pipe("a red circle moving left slowly on a black background", num_inference_steps=1, seed=0,
               stages="keyframes,upsample", upsample_steps=1).frames
    assert tuple(big.shape) == (1, 4, 128, 128, 3) and pipe.upsampler.dtype == torch.float32  # stored float16
    clf = ShapesI3D.from_pretrained(out / "classifier")
    assert list(clf.heads) == ["shape", "color", "background", "motion", "speed"]
    CLIPModel.from_pretrained(out / "clip")
    CLIPProcessor.from_pretrained(out / "clip")


@pytest.mark.slow
def test_chain_rerun_reuses_finished_stages_only_with_the_same_settings(chain, tmp_path, capsys):
    out, args = chain["out"], chain["args"]
    assert main(args) == 0  # a second run reuses every finished stage and the benchmark
    again = json.loads((out / "report.json").read_text())
    assert all(again["stages"][s].get("reused") for s in ["data", "data_hr", *STAGES])
    # ... and refuses to reuse stages trained with other settings
    assert main([*args, "--steps-scale", "2"]) == 2
    assert "was trained with other settings (steps)" in capsys.readouterr().err
    assert main([*args[:-5], "--seed", "4", "--device", "cpu", "--no-progress"]) == 2
    assert "another spec or seed" in capsys.readouterr().err
    # a chain folder copied elsewhere (a device call's output unpacked here) is still reused
    moved = tmp_path / "moved"
    shutil.copytree(out, moved, symlinks=True)
    assert main(["train", "shapes", str(moved), *args[3:]]) == 0
    assert all(json.loads((moved / "report.json").read_text())["stages"][s].get("reused") for s in STAGES)


@pytest.mark.slow
def test_ablation_variant_on_top_of_the_chain(chain, tmp_path, capsys):
    """It shares the chain's upstream stages through relative links and trains only its own
    key-frame stages, with the recipe's budgets and seed."""
    from magicvideo.pipeline import MagicVideoPipeline
    from magicvideo.training.ablations import variant_pipeline

    out = chain["out"]
    assert main(["train", "ablation", str(out), "no_adaptor", "--recipe", "tiny", "--seed", "3", "--device", "cpu",
                 "--no-progress"]) == 0  # fmt: skip
    var = out / "ablations" / "no_adaptor"
    assert (var / "t2i").is_symlink() and not Path(os.readlink(var / "t2i")).is_absolute()
    rep = json.loads((var / "report.json").read_text())
    assert set(rep["stages"]) == {"data", "pretrain", "finetune"} and rep["stages"]["finetune"]["steps"] >= 1
    pipe = MagicVideoPipeline.from_pretrained(variant_pipeline(out, "no_adaptor"))
    assert pipe.unet.config.use_adaptor is False and MagicVideoPipeline.from_pretrained(out / "pipeline").unet.config.use_adaptor
    assert variant_pipeline(out, "full") == out / "pipeline"
    assert main(["train", "ablation", str(tmp_path / "nothing"), "no_temporal", "--recipe", "tiny"]) == 2
    assert "train the base chain first" in capsys.readouterr().err


@pytest.mark.slow
def test_skipped_stages_no_pretraining_variant(tmp_path):
    """steps: 0 skips a stage: without pre-training the fine-tuning starts from the inflated T2I
    U-Net (the ablation's 'no unsupervised pre-training'), without videovae the pipeline keeps the
    identity temporal layers."""
    from magicvideo.pipeline import MagicVideoPipeline
    from magicvideo.training.shapes import train_shapes

    recipe = load_shapes_recipe("tiny", {"stages.pretrain.steps": 0, "stages.videovae.steps": 0})
    report = train_shapes(tmp_path / "out", recipe, device="cpu", progress=False,
                          stages=("image_vae", "clip", "t2i", "videovae", "pretrain", "finetune"))  # fmt: skip
    assert report["stages"]["pretrain"] == {"skipped": "steps: 0"} and "classifier" not in report["stages"]
    assert yaml.safe_load((tmp_path / "out" / "runs" / "finetune" / "config.yaml").read_text())["init_unet"] is None
    assert not (tmp_path / "out" / "runs" / "pretrain").exists()
    pipe = MagicVideoPipeline.from_pretrained(tmp_path / "out" / "pipeline")
    outs = [p.detach() for n, p in pipe.vae.temporal.named_parameters() if "to_out" in n]
    assert outs and all(not p.any() for p in outs)  # zero-initialised outputs: untrained


def test_replicate_seeds_retrain_only_the_keyframe_stages(chain):
    """A multi-seed ablation's replicate (train-ablations --seeds): `full` and a variant retrained at
    another seed in their own folders, on the base chain's benchmark and upstream models; the seed
    reaches the key-frame stages' initialisation, noise and batches, and nothing else."""
    import torch

    from magicvideo.pipeline import MagicVideoPipeline
    from magicvideo.training.ablations import train_variant, variant_dir, variant_pipeline
    from magicvideo.training.shapes import load_shapes_recipe

    out = chain["out"]
    recipe = load_shapes_recipe("tiny").model_copy(update={"seed": 3})  # the base chain's seed
    for variant in ("full", "no_adaptor"):
        rep = train_variant(out, variant, recipe, seed=5, device="cpu", progress=False, replicate=True)
        folder = variant_dir(out, variant, 5)
        assert folder == out / "ablations" / "seed5" / variant and rep["seed"] == 5
        assert set(rep["stages"]) == {"data", "pretrain", "finetune"}
        assert (folder / "data").is_symlink() and (folder / "t2i").is_symlink()
        for stage in ("pretrain", "finetune"):
            cfg = json.loads((folder / "runs" / stage / "done.json").read_text())["config"]
            assert cfg["seed"] == 5 and cfg["data"]["seed"] == 5
    base = MagicVideoPipeline.from_pretrained(out / "pipeline").unet
    again = MagicVideoPipeline.from_pretrained(variant_pipeline(out, "full", 5)).unet
    public = lambda c: {k: v for k, v in c.items() if not k.startswith("_")}  # noqa: E731
    assert public(base.config) == public(again.config)
    assert any(not torch.equal(a, b) for a, b in zip(base.state_dict().values(), again.state_dict().values()))
    with pytest.raises(ValueError, match="needs its seed"):
        train_variant(out, "full", recipe, replicate=True)


@pytest.mark.slow
def test_finetune_continues_a_saved_pipeline_with_a_noise_prior(chain, tmp_path):
    """stages.finetune.init_unet = a saved pipeline folder: the key-frame model trains on from it (its VideoVAE
    and text encoder kept as they are), and the model config's noise_prior is trained and saved with it."""
    import json
    import shutil

    from safetensors.torch import load_file

    from magicvideo.pipeline import MagicVideoPipeline

    base = chain["out"]
    assert chain["rc"] == 0
    start = tmp_path / "start"  # the chain's pipeline with a sampling alpha chosen for it: continuing drops the choice
    shutil.copytree(base / "pipeline", start)
    config = json.loads((start / "unet" / "config.json").read_text())
    (start / "unet" / "config.json").write_text(json.dumps({**config, "sample_noise_prior": 1.5}))
    out = tmp_path / "continued"
    out.mkdir()
    (out / "data").symlink_to(base / "data")
    args = ["train", "shapes", str(out), "--recipe", "tiny", "--seed", "3", "--device", "cpu", "--no-progress",
            "--stages", "finetune", "--set", f"stages.finetune.init_unet={start}", "--set", "model.noise_prior=1"]
    assert main(args) == 0
    pipe = MagicVideoPipeline.from_pretrained(out / "pipeline")
    assert pipe.unet.config.noise_prior == 1.0 and pipe.noise_prior() == 1.0
    assert pipe.unet.config.sample_noise_prior is None
    for comp, name in (("vae", "diffusion_pytorch_model"), ("text_encoder", "model")):
        old, new = load_file(base / "pipeline" / comp / f"{name}.safetensors"), load_file(out / "pipeline" / comp / f"{name}.safetensors")
        assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old), comp
    old, new = load_file(base / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors"), \
        load_file(out / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors")  # fmt: skip
    assert old.keys() == new.keys() and any(not torch.equal(old[k], new[k]) for k in old)
    video = pipe("a red circle moving left slowly on a black background", num_inference_steps=2, seed=0).frames
    assert tuple(video.shape) == (1, 4, 32, 32, 3)


def test_continuing_another_model_is_one_clear_error(tiny_pipeline_4f, tmp_path):
    from magicvideo.training.keyframe import continued_pipeline
    from tests.test_training_keyframe import small_model

    tiny_pipeline_4f.save_pretrained(tmp_path / "p")
    mc = small_model()
    mc.temporal_attention = "bidirectional"
    with pytest.raises(ValueError, match="another model: temporal_attention 'directed'"):
        continued_pipeline(tmp_path / "p", mc)
