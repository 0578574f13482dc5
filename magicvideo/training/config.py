"""Training configs (``configs/train/*.yaml``), validated by pydantic; errors name the key path.

Every stage shares one schema for everything but the model-specific keys:

    stage: keyframe            # keyframe (U-Net, eq. 6) | videovae (decoder temporal layers, 3.3)
                               # | upsample (x4 super-resolution, 3.4) | image_vae | clip | t2i
                               # | classifier (the shapes models, magicvideo.training.shapes)
    model: tiny                # model config name/path (configs/model/), or the config inline
    weights: random            # random | pretrained (inflate model.pretrained_2d, as build_pipeline)
    out_dir: runs/keyframe     # checkpoints/, train_log.jsonl, config.yaml, final/
    steps: 1000                # optimizer steps (each = grad_accum micro-batches)
    ...

See ``configs/train/keyframe_tiny.yaml`` for every key with a comment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from magicvideo.build import ModelConfig, load_model_config
from magicvideo.configs import ConfigError, StrictModel, describe_error, read_yaml, resolve_config_path


class DataSection(StrictModel):
    csv: str | None = None                      # WebVid-style CSV (videoid, name, path[, fps]); required by the CLI
    root: str | None = None                     # folder relative video paths start from (default: the CSV's)
    span: int | tuple[int, int] = (16, 64)      # Ls range of 3.1.3 (successive frames the clip is taken from)
    resize: Literal["short_side_crop", "squash"] = "short_side_crop"
    num_workers: int = Field(0, ge=0)           # DataLoader worker processes
    seed: int = 0                               # seed of the clip sampling (span, start) and the batch order
    cache: bool = False                         # decode every video once into memory (small datasets, e.g. shapes)


class OptimSection(StrictModel):
    lr: float = Field(1e-4, gt=0)               # AdamW peak learning rate
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(1e-2, ge=0)
    eps: float = Field(1e-8, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0)  # gradient clipping (null: none)
    lr_schedule: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant_with_warmup"
    warmup_steps: int = Field(0, ge=0)
    # key-frame stages: lr multiplier of the video additions to the inflated image U-Net (temporal
    # attention, frame adaptors, FPS embedding). They start at zero / identity and, at the same lr as
    # the pre-trained image layers, stay small in short runs (the shapes recipe's temporal output
    # projections reached norms of 0.2-0.9 against 3.5 for the spatial ones in 1,200 steps).
    video_lr_scale: float = Field(1.0, gt=0)


class EMASection(StrictModel):
    enabled: bool = True
    decay: float = Field(0.9999, ge=0, le=1)    # max decay of the exponential moving average
    warmup: bool = False                        # diffusers' EMA warmup: decay = 1 - (1 + step/inv_gamma)^-power
    inv_gamma: float = Field(1.0, gt=0)
    power: float = Field(2 / 3, gt=0)
    update_after_step: int = Field(0, ge=0)     # EMA copies the weights until this step


class CLIPSection(StrictModel):
    """The vision tower of the shapes CLIP pair (stage clip); the text tower is the model config's
    ``text_encoder``. Both project to ``text_encoder.projection_dim`` (= ``unet.cross_attention_dim``)."""

    image_size: int = Field(64, ge=8)           # CLIP input side (frames are resized/cropped to it)
    patch_size: int = Field(8, ge=1)
    hidden_size: int = Field(64, ge=1)
    num_hidden_layers: int = Field(4, ge=1)
    num_attention_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(256, ge=1)
    init_temperature: float = Field(0.07, gt=0)  # InfoNCE temperature at init (CLIP: 0.07; learnable)
    max_logit_scale: float = Field(100.0, gt=0)  # CLIP's clamp of the learnt 1/temperature


class ClassifierSection(StrictModel):
    """The shapes video classifier (stage classifier): a width-scaled Inception-I3D with one head
    per attribute (:mod:`magicvideo.models.classifier`, trained by :mod:`magicvideo.training.classifier`)."""

    width: float = Field(0.25, gt=0, le=1)      # channel multiplier of every I3D layer (1.0: the original widths)
    attributes: list[str] = ["shape", "color", "background", "motion", "speed"]  # heads (shapes.json vocabulary)
    dropout: float = Field(0.5, ge=0, lt=1)     # before the heads, as I3D
    num_frames: int = Field(16, ge=10)          # frames per training clip (the eval protocol's 16)
    input: Literal["rgb", "rgb_diff"] = "rgb"   # rgb_diff: the first conv also sees frame differences (motion)
    fps: float | None = Field(None, gt=0)       # read clips at this rate (null: consecutive frames); the
                                                # benchmark protocol's fps, so real and generated clips match


class UpsamplerSection(StrictModel):
    """The x4 super-resolution model and its training (stage upsample, section 3.4;
    :class:`~magicvideo.models.UpsamplerUNet`, trained by :mod:`magicvideo.training.upsampler`)."""

    scale_factor: int = Field(4, ge=1)          # output side / input side
    crop: int = Field(128, ge=8)                # side of the random high-resolution crops trained on (paper: 512
                                                # of 1024); a multiple of scale_factor
    frame_size: int | None = Field(None, ge=8)  # training frames resized to this side first (null: as stored)
    patch_size: int = Field(1, ge=1)            # p x p pixel patches folded into channels (UpsamplerUNet): p^2 less
                                                # U-Net work (crop: a multiple of p x the downsampling)
    block_out_channels: list[int] = [32, 48, 64, 96]   # UNet2DConditionModel widths, one level each
    layers_per_block: int = Field(1, ge=1)
    down_block_types: list[str] | None = None   # null: DownBlock2D at every level (no attention)
    up_block_types: list[str] | None = None     # null: UpBlock2D at every level
    mid_block_type: str | None = "UNetMidBlock2D"
    norm_num_groups: int = Field(16, ge=1)
    attention_head_dim: int = Field(8, ge=1)
    cross_attention_dim: int | None = Field(None, ge=1)  # text conditioning (with CrossAttn* blocks): the text
                                                # encoder's hidden size; null: no text
    text_encoder: str | None = None             # with cross_attention_dim: a folder with tokenizer/ and text_encoder/
    prediction_type: Literal["epsilon", "v_prediction", "sample"] = "v_prediction"
    residual: bool = False                      # x0 = bicubic(input) + U-Net output (UpsamplerUNet; needs
                                                # prediction_type: sample)
    noise_augmentation: bool = True             # noise-conditioning augmentation (false: the ablation, level 0 only)
    max_noise_level: int = Field(350, ge=0, lt=1000)  # augmentation levels are uniform in [0, max_noise_level]
    default_noise_level: int | None = Field(None, ge=0)  # inference level stored in the model (null: 20 with
                                                # augmentation, as the x4 upscaler; 0 without)

    @model_validator(mode="after")
    def _check(self) -> "UpsamplerSection":
        if self.crop % self.scale_factor:
            raise ValueError(f"crop {self.crop} must be a multiple of scale_factor {self.scale_factor}")
        if self.frame_size is not None and self.frame_size < self.crop:
            raise ValueError(f"frame_size {self.frame_size} is smaller than crop {self.crop}")
        if self.crop % (self.patch_size * 2 ** (len(self.block_out_channels) - 1)):
            raise ValueError(f"crop {self.crop} must be a multiple of patch_size {self.patch_size} x the U-Net's "
                             f"downsampling {2 ** (len(self.block_out_channels) - 1)}")  # fmt: skip
        if (self.cross_attention_dim is None) != (self.text_encoder is None):
            raise ValueError("text conditioning needs both cross_attention_dim and text_encoder (or neither)")
        if self.residual and self.prediction_type != "sample":
            raise ValueError(f"upsampler.residual needs prediction_type: sample, got {self.prediction_type}")
        return self


class TrainConfig(StrictModel):
    stage: Literal["keyframe", "videovae", "upsample", "image_vae", "clip", "t2i", "classifier"] = "keyframe"
    model: str | ModelConfig = "tiny"           # model config name/path (configs/model) or inline
    weights: Literal["random", "pretrained"] = "random"
    init_unet: str | None = None                # keyframe: a MagicVideoUNet folder to start from (fine-tuning), or a
                                                # saved pipeline folder to continue (its U-Net, VAE, text encoder);
                                                # upsample: an UpsamplerUNet folder
    init_vae: str | None = None                 # videovae: a VideoAutoencoderKL folder to start from
    out_dir: str = "runs/train"
    seed: int = 0                               # seeds the random init, noise, timesteps, condition dropout
    steps: int = Field(1000, ge=1)              # optimizer steps
    batch_size: int = Field(1, ge=1)            # clips per micro-batch
    grad_accum: int = Field(1, ge=1)            # micro-batches per optimizer step
    optim: OptimSection = OptimSection()
    ema: EMASection = EMASection()
    mixed_precision: Literal["bf16", "no"] = "bf16"  # bf16 autocast on CUDA only; CPU always runs fp32
    gradient_checkpointing: bool = False
    cuda_graphs: bool = False                   # keyframe: the U-Net's forward and backward as CUDA graphs, captured
                                                # once, replayed every step (magicvideo.training.cuda_graphs); on CUDA
                                                # only (a CPU trains eagerly); a speed knob, not part of what trains
    encode_chunk: int = Field(16, ge=1)         # keyframe: frames per VAE-encoder call when making the latents of a
                                                # batch (memory against launches: the shapes recipe encodes its 512
                                                # frames in one call; a CPU uses at most 16); a speed knob, not part of
                                                # what trains (on a GPU the posterior noise comes in other pieces of
                                                # the generator's stream: the same distribution, other values)
    device: str = "auto"                        # auto (cuda if available) | cpu | cuda | cuda:N
    checkpoint_every: int = Field(500, ge=1)    # optimizer steps between checkpoints (and at the end)
    log_every: int = Field(1, ge=1)             # steps per host sync: losses stay on the device and are logged
                                                # (and checked for NaN) every N steps; >1 lets the CPU queue the
                                                # next steps while the GPU works (small, launch-bound models)
    keep_checkpoints: int = Field(2, ge=1)      # newest checkpoints kept
    resume: Literal["auto", "never"] | str = "auto"  # auto: newest checkpoint in out_dir; or a checkpoint folder
    data: DataSection = DataSection()

    # ---- keyframe stage (section 3.1.3) ----
    conditioning: Literal["text", "image"] = "text"  # image: unsupervised pre-training on CLIP frame embeddings
    image_encoder: str | None = None            # CLIPVisionModelWithProjection folder (conditioning: image)
    interpolation_residual: bool = False        # interpolation stage: denoise the correction to the key frames' latent
                                                # blend (InterpolationUNet blend_residual; magicvideo.models.interpolation)
    condition_dropout: float = Field(0.1, ge=0, le=1)  # P(condition replaced by the null condition), for CFG

    # ---- videovae stage (section 3.3); recon_loss also image_vae's ----
    recon_loss: Literal["mse", "l1"] = "mse"
    sample_posterior: bool = True               # decode a posterior sample (True) or its mode

    # ---- shapes models (magicvideo.training.shapes): image_vae, clip, t2i, classifier ----
    kl_weight: float = Field(1e-6, ge=0)        # image_vae: weight of KL(q(z|x) || N(0, I)) next to the pixel loss (recon_loss)
    foreground_weight: float = Field(1.0, ge=1)  # image_vae: pixel-loss weight of pixels unlike the frame's median colour
    clip: CLIPSection = CLIPSection()           # clip: vision tower and temperature
    classifier: ClassifierSection = ClassifierSection()  # classifier: width and heads

    # ---- upsample stage (section 3.4); condition_dropout applies to its text condition ----
    upsampler: UpsamplerSection = UpsamplerSection()

    def resolved_model(self) -> ModelConfig:
        """The resolved model config (loaded by name/path when ``model`` is a string)."""
        return self.model if isinstance(self.model, ModelConfig) else load_model_config(self.model)

    @property
    def out_path(self) -> Path:
        return Path(self.out_dir)


def load_train_config(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A training config by name (``configs/train/<name>.yaml``) or path, with `overrides` of
    dotted keys applied before validation (``{"steps": 10, "optim.lr": 1e-3}``); any error names
    the file and the key's path."""
    path = resolve_config_path(name_or_path, "train")
    data = read_yaml(path, overrides)
    return validate_train_config(data, source=str(path))


def validate_train_config(data: object, source: str = "config") -> TrainConfig:
    """Validate a training config dict; errors name the key path (``model.unet.layers_per_block``,
    without pydantic's union branch names for the name-or-inline ``model`` key)."""
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        inline = isinstance(data, dict) and isinstance(data.get("model"), dict)
        problems = []
        for err in exc.errors():
            loc = list(err["loc"])
            # loc[1] names the union's branch: "str", or the ModelConfig schema ("ModelConfig", or
            # "function-wrap[...]" after its validator of related keys)
            if loc[:1] == ["model"] and len(loc) > 1:
                if (loc[1] != "str") != inline:
                    continue  # the other branch of the union: not what the user meant
                loc = ["model", *loc[2:]]
            problems.append(describe_error(loc, err["msg"]))
        raise ConfigError(f"{source}: {'; '.join(problems)}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """``key.path=value`` (value parsed as YAML) -> (key path, value)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects KEY=VALUE (e.g. optim.lr=1e-3), got {text!r}")
    return key.strip(), yaml.safe_load(value)
