"""Named model configs (``configs/model/*.yaml``) and building a pipeline from one.

A model config names the architecture (U-Net, VAE, text encoder), the paper's ablation
switches, the sampler, and optionally a local text-to-image checkpoint to inflate from:

    name: sd15
    num_frames: 16            # key frames F (section 3.1)
    resolution: 256           # pixels; latents are resolution / 8
    fps: 8                    # default nu for sampling (eq. 5)
    use_adaptor: true         # eq. 1 frame-wise adaptor (ablation switch)
    temporal_attention: directed   # directed | bidirectional | none (ablation switch)
    fps_conditioning: true
    pretrained_2d: ${MAGICVIDEO_SD_PATH}   # diffusers SD 1.x folder to inflate, or null
    unet: {...}               # UNet2DConditionModel (SD 1.x) architecture keys
    vae: {...}                # AutoencoderKL keys + temporal_layers of the VideoVAE decoder
    text_encoder: {...}       # CLIPTextConfig keys (used when there is no pretrained_2d)
    scheduler: {...}          # noise schedule and default sampler
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from .conditioning import load_text_encoder, write_clip_tokenizer
from .configs import ConfigError, StrictModel, load_config
from .models import MagicVideoUNet, VideoAutoencoderKL
from .pipeline import MagicVideoPipeline, make_scheduler


class UNetSection(StrictModel):
    sample_size: int = 32
    in_channels: int = 4
    out_channels: int = 4
    down_block_types: list[str] = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
    up_block_types: list[str] = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
    block_out_channels: list[int] = [320, 640, 1280, 1280]
    layers_per_block: int = Field(2, ge=1)
    norm_num_groups: int = Field(32, ge=1)
    cross_attention_dim: int = Field(768, ge=1)
    attention_head_dim: int | list[int] = 8


class VAESection(StrictModel):
    temporal_layers: int = Field(2, ge=0)
    temporal_head_dim: int = Field(64, ge=1)
    block_out_channels: list[int] = [128, 256, 512, 512]
    layers_per_block: int = Field(2, ge=1)
    latent_channels: int = 4
    norm_num_groups: int = 32
    scaling_factor: float = 0.18215


class TextEncoderSection(StrictModel):
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 77
    projection_dim: int = 768
    hidden_act: str = "quick_gelu"
    vocabulary: list[str] = []  # words made single tokens by the local tokenizer (no pretrained_2d)


class SchedulerSection(StrictModel):
    name: Literal["ddim", "dpm++", "euler", "euler_a", "pndm", "ddpm", "unipc"] = "ddim"
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "scaled_linear"
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"
    steps_offset: int = 1
    num_inference_steps: int = Field(50, ge=1)
    guidance_scale: float = 7.5


class ModelConfig(StrictModel):
    name: str
    num_frames: int = Field(16, ge=1)
    resolution: int = Field(256, ge=8)
    fps: float = Field(8.0, gt=0)
    use_adaptor: bool = True
    temporal_attention: Literal["directed", "bidirectional", "none"] = "directed"
    fps_conditioning: bool = True
    pretrained_2d: str | None = None
    unet: UNetSection = UNetSection()
    vae: VAESection = VAESection()
    text_encoder: TextEncoderSection = TextEncoderSection()
    scheduler: SchedulerSection = SchedulerSection()

    def pretrained_path(self) -> Path:
        """`pretrained_2d` with environment variables expanded; a clear error if unset/missing."""
        raw = os.path.expandvars(self.pretrained_2d or "")
        if not raw or "$" in raw:
            raise ConfigError(
                f"model config {self.name!r}: pretrained_2d is {self.pretrained_2d!r}, which does not name a folder; "
                "point it (or MAGICVIDEO_SD_PATH) at a local diffusers-format Stable Diffusion 1.x folder"
            )
        path = Path(raw).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"pretrained_2d folder not found: {path} (a diffusers-format SD 1.x folder with unet/, vae/, "
                "text_encoder/, tokenizer/, scheduler/; set by model config key pretrained_2d or MAGICVIDEO_SD_PATH)"
            )
        return path


def load_model_config(name_or_path: str | Path) -> ModelConfig:
    return load_config(name_or_path, ModelConfig, kind="model")


def _video_options(cfg: ModelConfig) -> dict:
    return dict(use_adaptor=cfg.use_adaptor, temporal_attention=cfg.temporal_attention, fps_conditioning=cfg.fps_conditioning)


def build_unet(cfg: ModelConfig) -> MagicVideoUNet:
    return MagicVideoUNet(num_frames=cfg.num_frames, **_video_options(cfg), **cfg.unet.model_dump())


def vae_kwargs(cfg: ModelConfig, temporal: bool = True) -> dict:
    """Constructor arguments of the config's VAE: `VideoAutoencoderKL`'s, or with
    ``temporal=False`` the image `AutoencoderKL`'s (same layout, no temporal layers)."""
    v = cfg.vae
    n = len(v.block_out_channels)
    exclude = set() if temporal else {"temporal_layers", "temporal_head_dim"}
    return dict(
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        sample_size=cfg.resolution,
        **v.model_dump(exclude=exclude),
    )


def build_vae(cfg: ModelConfig) -> VideoAutoencoderKL:
    return VideoAutoencoderKL(**vae_kwargs(cfg))


def build_text_encoder(cfg: ModelConfig) -> tuple[CLIPTokenizer, CLIPTextModel]:
    t = cfg.text_encoder
    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(tmp, t.vocabulary, max_length=t.max_position_embeddings)
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **t.model_dump(exclude={"vocabulary"}),
    )
    return tokenizer, CLIPTextModel(config)


def build_scheduler(cfg: ModelConfig, base: dict | None = None):
    s = cfg.scheduler
    schedule = dict(
        num_train_timesteps=s.num_train_timesteps,
        beta_start=s.beta_start,
        beta_end=s.beta_end,
        beta_schedule=s.beta_schedule,
        prediction_type=s.prediction_type,
        steps_offset=s.steps_offset,
        clip_sample=False,
        set_alpha_to_one=False,
    )
    return make_scheduler(s.name, {**schedule, **(base or {})})


def build_pipeline(cfg: ModelConfig | str | Path, weights: Literal["random", "pretrained"] = "random",
                   seed: int = 0) -> MagicVideoPipeline:
    """A `MagicVideoPipeline` for a model config.

    weights="random": every component freshly initialised from the config (seeded), for tests
    and benchmarks. weights="pretrained": U-Net inflated from ``pretrained_2d/unet``, VideoVAE from
    its ``vae/``, tokenizer and text encoder from its folders, noise schedule from ``scheduler/``.
    """
    if not isinstance(cfg, ModelConfig):
        cfg = load_model_config(cfg)
    if weights == "pretrained":
        from diffusers import AutoencoderKL

        path = cfg.pretrained_path()
        unet = MagicVideoUNet.from_pretrained_2d(path, num_frames=cfg.num_frames, **_video_options(cfg))
        if not (path / "vae").is_dir():
            raise FileNotFoundError(f"no vae/ subfolder in {path} (model config key pretrained_2d)")
        vae = VideoAutoencoderKL.from_image_vae(
            AutoencoderKL.from_pretrained(path, subfolder="vae"),
            temporal_layers=cfg.vae.temporal_layers,
            temporal_head_dim=cfg.vae.temporal_head_dim,
        )
        tokenizer, text_encoder = load_text_encoder(path)
        base = None
        if (path / "scheduler" / "scheduler_config.json").is_file():
            import json

            base = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
            base = {k: v for k, v in base.items() if not k.startswith("_")}
        scheduler = build_scheduler(cfg, base)
    elif weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unet, vae = build_unet(cfg), build_vae(cfg)
            tokenizer, text_encoder = build_text_encoder(cfg)
        scheduler = build_scheduler(cfg)
    else:
        raise ValueError(f"weights must be 'random' or 'pretrained', got {weights!r}")
    return MagicVideoPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)
