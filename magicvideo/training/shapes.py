"""Train every 'shapes' model in order, from one recipe and one seed (``magicvideo train shapes``).

The chain (issue 6, point 4; DESIGN.md "The embedded default"):

1. data        render the shapes benchmark (:func:`magicvideo.data.write_shapes`)
2. image_vae   ``AutoencoderKL`` on single frames (:mod:`.vae`); then LDM's latent scaling factor
3. clip        CLIP text/image pair, contrastive (:mod:`.clip`); exported as text_encoder/,
               tokenizer/, image_encoder/ and clip/
4. t2i         ``UNet2DConditionModel`` on frames + captions (:mod:`.t2i`); with 2 and 3 it makes a
               diffusers SD 1.x-layout text-to-image folder, ``OUT/t2i``
5. videovae    the VideoVAE decoder's temporal layers, image VAE frozen (:mod:`.videovae`, 3.3)
6. pretrain    key-frame model inflated from ``OUT/t2i`` (``MagicVideoUNet.from_unet2d``), trained on
               the CLIP image embeddings of each clip's frames (3.1.3, unsupervised pre-training)
7. finetune    the same model on text-video pairs (:mod:`.keyframe`); saved with the VideoVAE as a
               ``MagicVideoPipeline`` folder, ``OUT/pipeline``
8. interpolation  frame interpolation (3.2, :mod:`.interpolation`): an ``InterpolationUNet``
               initialised from the fine-tuned key-frame U-Net, trained on windows of real clips
               conditioned on the CLIP image embeddings of ``OUT/t2i/image_encoder``; written into
               ``OUT/pipeline`` as ``interpolation/`` (float16 storage, loaded as float32: the
               committed-size budget) and ``image_encoder/``. Its recipe entry is optional: without
               one the stage is skipped (``steps: 0``)
9. upsample    x4 super-resolution (3.4, :mod:`.upsampler`): an ``UpsamplerUNet`` trained on random
               crops of single frames of the benchmark rendered again at ``scale_factor`` x its size
               (``OUT/data_hr``, same seed and clips: its test clips are the high-resolution
               references); written into ``OUT/pipeline`` as ``upsampler/`` (float16). Optional like
               interpolation
10. classifier  width-scaled I3D with attribute heads (:mod:`.classifier`) -> ``OUT/classifier``;
               scored on the test split (attribute accuracy vs chance)

A stage with ``steps: 0`` is skipped (videovae: the pipeline keeps identity temporal layers;
pretrain: fine-tuning starts from the inflated T2I U-Net, the "no pre-training" ablation). Each
stage trains in ``OUT/runs/<stage>`` with the ordinary :class:`~magicvideo.training.Trainer`
(checkpoints, exact resume, ``train_log.jsonl``) and writes ``done.json`` when its outputs are in
place; a re-run skips finished stages (and refuses a folder whose data or finished stages came
from other settings) and resumes an interrupted one. Layout::

    OUT/data/          the benchmark (train.csv, TestVideo/, test_videodatainfo.json, shapes.json)
    OUT/data_hr/       the same benchmark at scale_factor x the size (the upsample stage's frames)
    OUT/runs/<stage>/  each stage's training folder
    OUT/t2i/           unet/ vae/ text_encoder/ tokenizer/ scheduler/ image_encoder/ (SD 1.x layout)
    OUT/pipeline/      the key-frame MagicVideoPipeline (what `magicvideo generate`/eval load)
    OUT/classifier/    ShapesI3D (save_pretrained: config.json + safetensors)
    OUT/clip/          CLIPModel + CLIPProcessor (CLIPSIM on this domain)
    OUT/report.json    per stage: steps, final loss, seconds, parameters; sizes; classifier accuracy

One seed (the recipe's ``seed``, or ``--seed``) sets the benchmark's seed, every stage's ``seed``
(initialisation, noise, timesteps, dropout) and every stage's ``data.seed`` (clip sampling and
batch order). ``steps_scale`` multiplies every stage's ``steps`` and ``optim.warmup_steps`` (a CPU
smoke run: 0.01).

Recipes: ``configs/train/shapes/default.yaml`` (the committed models, GPU) and
``configs/train/shapes/tiny.yaml`` (tiny sizes: a CPU smoke run and the tests). They live in a
subfolder because every ``configs/train/*.yaml`` is a single-stage training config.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from pydantic import ValidationError

from magicvideo.build import ModelConfig
from magicvideo.configs import ConfigError, StrictModel, read_yaml, resolve_config_path
from magicvideo.data.shapes import ShapesSpec
from magicvideo.training.config import TrainConfig, validate_train_config

# the generator's stages in cascade order, then the classifier (an evaluator); ablations.FULL_STAGES is what the
# "full" variant trains (up to interpolation)
STAGES = ("image_vae", "clip", "t2i", "videovae", "pretrain", "finetune", "interpolation", "upsample", "classifier")
#: the interpolation U-Net's storage dtype in OUT/pipeline (halves its file; loaded as float32)
INTERPOLATION_STORAGE_DTYPE = torch.float16
#: the SR model's storage dtype in OUT/pipeline (as the interpolation U-Net's)
UPSAMPLER_STORAGE_DTYPE = torch.float16
#: what the eval flows and `magicvideo generate` load (the committed part of OUT)
SHIPPED = ("pipeline", "classifier", "clip")


class StagesSection(StrictModel):
    """Per stage: keys of a training config (``configs/train/keyframe_tiny.yaml`` documents them)
    merged over what the chain sets (stage, model, seed, out_dir, data.csv, init/pretrained paths)."""

    image_vae: dict[str, Any] = {}
    clip: dict[str, Any] = {}
    t2i: dict[str, Any] = {}
    videovae: dict[str, Any] = {}
    pretrain: dict[str, Any] = {}
    finetune: dict[str, Any] = {}
    classifier: dict[str, Any] = {}
    interpolation: dict[str, Any] = {"steps": 0}  # a recipe without this stage skips it
    upsample: dict[str, Any] = {"steps": 0}  # a recipe without this stage skips it


class ShapesRecipe(StrictModel):
    seed: int = 0                               # the one seed: benchmark, every stage's init, noise and batches
    data: ShapesSpec = ShapesSpec()             # the benchmark rendered in OUT/data (its seed is replaced by `seed`)
    model: ModelConfig                          # the shapes model config (pretrained_2d is set to OUT/t2i)
    scaling_frames: int = 256                   # frames used to estimate the VAE's latent scaling factor
    stages: StagesSection = StagesSection()


def load_shapes_recipe(name_or_path: str | Path = "default", overrides: dict[str, Any] | None = None) -> ShapesRecipe:
    """A recipe by name (``configs/train/shapes/<name>.yaml``) or path, with dotted `overrides`
    (``{"stages.t2i.steps": 100}``); errors name the file and key path."""
    path = resolve_config_path(name_or_path, "train/shapes")
    data = read_yaml(path, overrides)
    try:
        return ShapesRecipe.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{path}: {'; '.join(problems)}") from None


def shapes_words() -> list[str]:
    """Every word of every shapes caption phrasing (the local tokenizer makes each one token)."""
    from itertools import product

    from magicvideo.data.shapes import ShapeClip, vocabulary

    v = vocabulary()
    words: dict[str, None] = {}
    for shape, color, bg, motion, speed in product(v["shape"], v["color"], v["background"], v["motion"], v["speed"]):
        clip = ShapeClip("train", 0, shape, color, bg, motion, speed, 8.0, 16, 0.5, 0.5, 0.1, 0.0, (0, 0, 0), 0)
        for caption in clip.captions():
            words.update(dict.fromkeys(caption.replace(",", " ").split()))
    return list(words)


def folder_bytes(path: str | Path) -> int:
    """Bytes of every file under `path`."""
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# ---- the chain --------------------------------------------------------------------------------


class ShapesChain:
    """Runs the recipe's stages into `out` (see the module docstring); :meth:`run` returns the report.

    Args:
        out: output folder.
        recipe: the recipe (:func:`load_shapes_recipe`).
        steps_scale: multiplies every stage's steps and warmup (at least 1 step for a stage that runs).
        device: overrides every stage's ``device``.
        progress: rich progress bars of the stages.
        log: called with one line per event (stage start/end).
    """

    def __init__(self, out: str | Path, recipe: ShapesRecipe, steps_scale: float = 1.0, device: str | None = None,
                 progress: bool = True, log: Callable[[str], None] = lambda line: None):  # fmt: skip
        if steps_scale <= 0:
            raise ValueError(f"steps_scale must be positive, got {steps_scale}")
        self.out, self.recipe, self.steps_scale = Path(out), recipe, steps_scale
        self.device, self.progress, self.log = device, progress, log
        model = recipe.model.model_copy(deep=True)
        model.pretrained_2d = str(self.out / "t2i")
        if not model.text_encoder.vocabulary:
            model.text_encoder.vocabulary = shapes_words()
        self.model = model
        self.report: dict[str, Any] = {"seed": recipe.seed, "steps_scale": steps_scale, "stages": {}}

    # -- paths and configs -------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.out / "data"

    @property
    def hr_data_dir(self) -> Path:
        """The benchmark at ``scale_factor`` x the size (the upsample stage's training frames)."""
        return self.out / "data_hr"

    @property
    def t2i_dir(self) -> Path:
        return self.out / "t2i"

    def run_dir(self, stage: str) -> Path:
        return self.out / "runs" / stage

    def stage_config(self, stage: str, **chain: Any) -> TrainConfig | None:
        """The stage's training config: the recipe's keys over the chain's; None when its steps are 0."""
        r = self.recipe
        user = dict(getattr(r.stages, stage))
        base: dict[str, Any] = {"stage": stage, "model": self.model.model_dump(), "seed": r.seed,
                                "out_dir": str(self.run_dir(stage))}  # fmt: skip
        if stage in ("pretrain", "finetune", "interpolation"):
            base["stage"] = "keyframe"
        base.update(chain)
        frames = self.hr_data_dir if stage == "upsample" else self.data_dir
        # a stage's own `seed` (the replicates of a multi-seed ablation) also draws its batches
        data = {"csv": str(frames / "train.csv"), **dict(user.pop("data", {})), "seed": user.get("seed", r.seed)}
        optim = dict(user.pop("optim", {}))
        merged = {**base, **user, "data": data, "optim": optim}
        steps = int(merged.get("steps", TrainConfig.model_fields["steps"].default))
        if steps == 0:
            return None
        merged["steps"] = max(1, round(steps * self.steps_scale))
        if "warmup_steps" in optim:
            optim["warmup_steps"] = round(optim["warmup_steps"] * self.steps_scale)
        if self.device:
            merged["device"] = self.device
        return validate_train_config(merged, source=f"recipe stages.{stage}")

    @staticmethod
    def final_weights(cfg: TrainConfig, name: str) -> Path:
        """``final/<name>_ema`` when EMA is on, else ``final/<name>``."""
        return cfg.out_path / "final" / (f"{name}_ema" if cfg.ema.enabled else name)

    def _done(self, stage: str, cfg: TrainConfig) -> dict | None:
        """The summary of a finished stage, or None; raises if it was trained with another config."""
        marker = self.run_dir(stage) / "done.json"
        if not marker.is_file():
            return None
        done = json.loads(marker.read_text())
        old, new = _relocatable(_with_defaults(done.get("config", {}))), _relocatable(_comparable(cfg))
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            raise ValueError(f"{self.run_dir(stage)} was trained with other settings ({', '.join(changed)}); "
                             "use another output folder, or delete that stage's folder to retrain it")  # fmt: skip
        return done

    def _stage(self, stage: str, cfg: TrainConfig | None, train: Callable[[TrainConfig], dict]) -> None:
        if cfg is None:
            self.report["stages"][stage] = {"skipped": "steps: 0"}
            self.log(f"{stage}: skipped (steps: 0)")
            return
        done = self._done(stage, cfg)
        if done is not None:
            self.report["stages"][stage] = {**{k: v for k, v in done.items() if k != "config"}, "reused": True}
            self.log(f"{stage}: done before, reusing {self.run_dir(stage)}")
            return
        self.log(f"{stage}: {cfg.steps} steps of {cfg.batch_size}x{cfg.grad_accum} -> {cfg.out_dir}")
        t0 = time.perf_counter()
        summary = train(cfg)
        summary = {**summary, "seconds": round(time.perf_counter() - t0, 2)}
        (self.run_dir(stage) / "done.json").write_text(json.dumps({**summary, "config": _comparable(cfg)}, indent=1))
        self.report["stages"][stage] = summary
        self.log(f"{stage}: loss {summary.get('loss')}, {summary['seconds']:.1f} s")

    def _fit(self, trainer) -> dict:
        n = sum(p.numel() for p in trainer.params)
        summary = trainer.train(progress=self.progress)
        return {"steps": summary["steps"], "loss": summary["loss"], "train_seconds": round(summary["seconds"], 2),
                "data_wait_seconds": summary["data_wait_seconds"], "trainable_parameters": n}  # fmt: skip

    # -- stages ------------------------------------------------------------------------------

    def data(self) -> None:
        self._render("data", self.data_dir, self.recipe.data.model_copy(update={"seed": self.recipe.seed}))

    def hr_data(self, scale_factor: int) -> None:
        """The recipe's benchmark rendered at `scale_factor` x its size into ``OUT/data_hr``."""
        spec = ShapesSpec.model_validate({**self.recipe.data.model_dump(), "seed": self.recipe.seed,
                                          "size": self.recipe.data.size * scale_factor})  # fmt: skip
        self._render("data_hr", self.hr_data_dir, spec)

    def _render(self, name: str, folder: Path, spec: ShapesSpec) -> None:
        from magicvideo.data import write_shapes

        summary_file = folder / "shapes.json"
        if summary_file.is_file():
            if json.loads(summary_file.read_text()).get("spec") != spec.model_dump():
                raise ValueError(f"{folder} holds a shapes benchmark of another spec or seed; use another "
                                 "output folder (its models were trained on that data)")  # fmt: skip
            self.report["stages"][name] = {"reused": True}
            return
        t0 = time.perf_counter()
        self.log(f"{name}: rendering {spec.train} train + {spec.test} test clips at {spec.size}x{spec.size} -> {folder}")
        write_shapes(folder, spec, workers=None if spec.train + spec.test >= 64 else 0)
        self.report["stages"][name] = {"train": spec.train, "test": spec.test, "seconds": round(time.perf_counter() - t0, 2)}

    def image_vae(self) -> None:
        from diffusers import AutoencoderKL

        from magicvideo.training.vae import build_image_vae_trainer, latent_scaling_factor

        def train(cfg):
            trainer = build_image_vae_trainer(cfg)
            summary = self._fit(trainer)
            vae = AutoencoderKL.from_pretrained(self.final_weights(cfg, "vae")).to(trainer.device)
            n = min(self.recipe.scaling_frames, len(trainer.dataset))
            frames = torch.stack([trainer.dataset[i]["video"][0] for i in range(n)])
            scale = latent_scaling_factor(vae, frames)
            vae.register_to_config(scaling_factor=scale)
            vae.save_pretrained(self.t2i_dir / "vae")
            return {**summary, "scaling_factor": scale}

        self._stage("image_vae", self.stage_config("image_vae"), train)

    def clip(self) -> None:
        from transformers import CLIPModel

        from magicvideo.training.clip import build_clip_trainer, export_clip

        def train(cfg):
            summary = self._fit(build_clip_trainer(cfg))
            model = CLIPModel.from_pretrained(self.final_weights(cfg, "clip"))
            export_clip(model, self.model.text_encoder.vocabulary, self.t2i_dir)
            shutil.rmtree(self.out / "clip", ignore_errors=True)
            shutil.copytree(self.t2i_dir / "clip", self.out / "clip")
            shutil.rmtree(self.t2i_dir / "clip")
            return {**summary, "logit_scale": float(model.logit_scale.detach().exp())}

        self._stage("clip", self.stage_config("clip"), train)

    def t2i(self) -> None:
        from magicvideo.training.t2i import build_t2i_trainer, write_t2i_folder

        def train(cfg):
            summary = self._fit(build_t2i_trainer(cfg))
            write_t2i_folder(self.t2i_dir, self.final_weights(cfg, "unet"), self.model)
            return summary

        self._stage("t2i", self.stage_config("t2i"), train)

    def videovae(self) -> None:
        from magicvideo.training.videovae import build_videovae_trainer

        self._stage("videovae", self.stage_config("videovae", weights="pretrained"),
                    lambda cfg: self._fit(build_videovae_trainer(cfg)))  # fmt: skip

    def pretrain(self) -> None:
        from magicvideo.training.keyframe import build_keyframe_trainer

        cfg = self.stage_config("pretrain", weights="pretrained", conditioning="image",
                                image_encoder=str(self.t2i_dir / "image_encoder"))  # fmt: skip
        self._stage("pretrain", cfg, lambda cfg: self._fit(build_keyframe_trainer(cfg)))

    def finetune(self) -> None:
        from magicvideo.training.keyframe import build_keyframe_trainer
        from magicvideo.training.trainer import load_weights

        pre = self.stage_config("pretrain")
        init = str(self.final_weights(pre, "unet")) if pre is not None else None
        vv = self.stage_config("videovae")
        # stages.finetune.init_unet: a saved pipeline to continue (its VideoVAE comes with it), e.g. the committed one
        continued = bool(self.recipe.stages.finetune.get("init_unet"))

        def train(cfg):
            trainer = build_keyframe_trainer(cfg)
            summary = self._fit(trainer)
            if vv is not None and not continued:  # the decoder's trained temporal layers (the encoder is unchanged)
                load_weights(trainer.vae, self.final_weights(vv, "vae"))
            shutil.rmtree(self.out / "pipeline", ignore_errors=True)
            trainer.save_pipeline(self.out / "pipeline", ema=cfg.ema.enabled)
            return summary

        self._stage("finetune", self.stage_config("finetune", weights="pretrained", conditioning="text", init_unet=init), train)

    def classifier(self) -> None:
        from magicvideo.training.classifier import (ShapesI3D, attribute_accuracy, build_classifier_trainer,
                                                    chance_accuracy, read_test_clips)  # fmt: skip

        def train(cfg):
            summary = self._fit(build_classifier_trainer(cfg))
            shutil.rmtree(self.out / "classifier", ignore_errors=True)
            shutil.copytree(self.final_weights(cfg, "classifier"), self.out / "classifier")
            model = ShapesI3D.from_pretrained(self.out / "classifier")
            videos, attrs = read_test_clips(self.data_dir, cfg.classifier.num_frames, self.model.resolution,
                                            fps=model.config.fps)  # the rate it was trained at  # fmt: skip
            return {**summary, "test_accuracy": attribute_accuracy(model, videos, attrs),
                    "chance": chance_accuracy(model.heads), "test_clips": len(videos)}  # fmt: skip

        self._stage("classifier", self.stage_config("classifier"), train)

    def interpolation(self) -> None:
        from magicvideo.training.interpolation import build_interpolation_trainer

        start = self.stage_config("finetune") or self.stage_config("pretrain")
        init = str(self.final_weights(start, "unet")) if start is not None else None
        cfg = self.stage_config("interpolation", weights="pretrained", conditioning="image", init_unet=init,
                                image_encoder=str(self.t2i_dir / "image_encoder"))  # fmt: skip
        self._stage("interpolation", cfg, lambda cfg: self._fit(build_interpolation_trainer(cfg)))
        pipeline = self.out / "pipeline"
        if cfg is None or not (pipeline / "model_index.json").is_file():
            return
        # (re)attach: the fine-tuning stage rewrites OUT/pipeline whenever it runs
        from transformers import CLIPVisionModelWithProjection

        from magicvideo.models import InterpolationUNet
        from magicvideo.pipeline import add_interpolation

        model = InterpolationUNet.from_pretrained(self.final_weights(cfg, "interpolation"))
        encoder = CLIPVisionModelWithProjection.from_pretrained(self.t2i_dir / "image_encoder")
        add_interpolation(pipeline, model.to(dtype=INTERPOLATION_STORAGE_DTYPE), encoder)

    def upsample(self) -> None:
        from magicvideo.training.upsampler import build_upsampler_trainer

        cfg = self.stage_config("upsample")
        if cfg is not None:
            self.hr_data(cfg.upsampler.scale_factor)
        self._stage("upsample", cfg, lambda cfg: self._fit(build_upsampler_trainer(cfg)))
        pipeline = self.out / "pipeline"
        if cfg is None or not (pipeline / "model_index.json").is_file():
            return
        # (re)attach: the fine-tuning stage rewrites OUT/pipeline whenever it runs
        from magicvideo.models import UpsamplerUNet
        from magicvideo.pipeline import add_upsampler

        add_upsampler(pipeline, UpsamplerUNet.from_pretrained(self.final_weights(cfg, "upsampler"),
                                                              torch_dtype=UPSAMPLER_STORAGE_DTYPE))  # fmt: skip

    def run(self, stages: tuple[str, ...] = STAGES) -> dict[str, Any]:
        """Run `stages` (in the chain's order; each needs its predecessors' outputs) and write
        ``OUT/report.json``."""
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "recipe.yaml").write_text(yaml.safe_dump(self.recipe.model_dump(mode="json"), sort_keys=False))
        t0 = time.perf_counter()
        self.data()
        for stage in STAGES:
            if stage in stages:
                getattr(self, stage)()
        self.report["seconds"] = round(time.perf_counter() - t0, 2)
        self.report["sizes"] = size_report(self.out)
        (self.out / "report.json").write_text(json.dumps(self.report, indent=1))
        return self.report


def _comparable(cfg: TrainConfig) -> dict[str, Any]:
    """A stage config without the keys that do not change what it trains."""
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k not in ("device", "resume", "checkpoint_every",
                                                                            "log_every", "keep_checkpoints",
                                                                            "cuda_graphs", "encode_chunk")}  # fmt: skip


def _with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A stored stage config re-validated, so that a settings key added since (at its default)
    does not count as a change; as stored when it no longer validates."""
    try:
        return _comparable(TrainConfig.model_validate(config))
    except ValueError:
        return config


def _relocatable(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with every path inside its chain folder written as ``<out>/...``, so that a chain
    folder moved or copied elsewhere (a device call's /tmp/s unpacked into .shapes) still reuses
    its stages. The chain folder is the stage's ``out_dir`` (``OUT/runs/<stage>``) two levels up."""
    if not config.get("out_dir"):
        return config
    root = str(Path(config["out_dir"]).parent.parent)

    def rel(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: rel(v) for k, v in x.items()}
        if isinstance(x, list):
            return [rel(v) for v in x]
        if isinstance(x, str) and (x == root or x.startswith(root.rstrip(os.sep) + os.sep)):
            return "<out>" + x[len(root) :]
        return x

    return rel(config)


def size_report(out: str | Path) -> dict[str, Any]:
    """Bytes of the shipped folders (pipeline/, classifier/, clip/) and their total."""
    sizes = {name: folder_bytes(Path(out) / name) for name in SHIPPED}
    return {**sizes, "total": sum(sizes.values())}


def train_shapes(out: str | Path, recipe: str | Path | ShapesRecipe = "default", seed: int | None = None,
                 steps_scale: float = 1.0, device: str | None = None, progress: bool = True,
                 stages: tuple[str, ...] = STAGES, log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:  # fmt: skip
    """Train the shapes models into `out` (see the module docstring) and return the report.

    recipe: a :class:`ShapesRecipe`, or a name/path for :func:`load_shapes_recipe`; `seed`
    replaces its seed."""
    if not isinstance(recipe, ShapesRecipe):
        recipe = load_shapes_recipe(recipe)
    if seed is not None:
        recipe = recipe.model_copy(update={"seed": seed})
    return ShapesChain(out, recipe, steps_scale, device, progress, log).run(stages)
