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
    noise_prior: 0            # PYoCo's mixed noise prior alpha (0: i.i.d. noise per frame), trained and sampled with
    pretrained_2d: ${MAGICVIDEO_SD_PATH}   # diffusers SD 1.x folder to inflate, or null
    unet: {...}               # UNet2DConditionModel (SD 1.x) architecture keys
    vae: {...}                # AutoencoderKL keys + temporal_layers of the VideoVAE decoder
    text_encoder: {...}       # CLIPTextConfig keys (used when there is no pretrained_2d)
    scheduler: {...}          # noise schedule and default sampler
"""

from __future__ import annotations

import os
import tempfile
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, model_validator
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from .conditioning import load_text_encoder, write_clip_tokenizer
from .configs import ConfigError, StrictModel, load_config
from .models import MagicVideoUNet, VideoAutoencoderKL
from .pipeline import MagicVideoPipeline, make_scheduler


#: set while a `ModelConfig` field is assigned, when its related keys are not checked
_ASSIGNING: ContextVar[bool] = ContextVar("model_config_assigning", default=False)


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
    # Zero terminal SNR (Lin et al. 2023, "Common diffusion noise schedules and sample steps are
    # flawed"): rescale the betas so the last training step is pure noise, with v_prediction and
    # "trailing" timesteps. With SD's schedule (SNR 0.0047 at t=999) a frame's low frequencies
    # (background colour, layout) leak through the noise in training, so each frame of a clip
    # reads its own from its own noise at sampling time instead of agreeing with the other frames
    # through temporal attention (issue 15.3: measured on the shapes model).
    rescale_betas_zero_snr: bool = False
    timestep_spacing: Literal["leading", "trailing", "linspace"] = "leading"
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
    noise_prior: float = Field(0.0, ge=0)  # PYoCo's mixed-noise alpha, trained and sampled with (magicvideo.noise_prior)
    pretrained_2d: str | None = None
    unet: UNetSection = UNetSection()
    vae: VAESection = VAESection()
    text_encoder: TextEncoderSection = TextEncoderSection()
    scheduler: SchedulerSection = SchedulerSection()

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent along a side: the VAE halves the side at every level but the last."""
        return 2 ** (len(self.vae.block_out_channels) - 1)

    def related_key_problems(self) -> list[str]:
        """Keys that must agree with each other and do not, each problem naming its keys. A config
        that passes builds a U-Net, VAE and text encoder that fit together at the first forward."""
        u, v, t = self.unet, self.vae, self.text_encoder
        problems = []
        side = u.sample_size * self.vae_scale_factor
        if self.resolution != side:
            problems.append(
                f"resolution: {self.resolution} does not match unet.sample_size {u.sample_size} x the VAE's "
                f"downsampling {self.vae_scale_factor} (2 ** (len(vae.block_out_channels) - 1)) = {side} px; "
                f"set resolution: {side} or unet.sample_size: {self.resolution / self.vae_scale_factor:g}"
            )
        if t.hidden_size != u.cross_attention_dim:
            problems.append(f"text_encoder.hidden_size: {t.hidden_size} != unet.cross_attention_dim "
                            f"{u.cross_attention_dim} (the U-Net attends to the text encoder's tokens)")
        for key in ("in_channels", "out_channels"):
            if getattr(u, key) != v.latent_channels:
                problems.append(f"unet.{key}: {getattr(u, key)} != vae.latent_channels {v.latent_channels} "
                                "(the U-Net denoises the VAE's latents)")
        n = len(u.block_out_channels)
        for key in ("down_block_types", "up_block_types"):
            if len(getattr(u, key)) != n:
                problems.append(f"unet.{key}: {len(getattr(u, key))} blocks != {n} unet.block_out_channels")
        heads = u.attention_head_dim if isinstance(u.attention_head_dim, list) else [u.attention_head_dim] * n
        if len(heads) != n:
            problems.append(f"unet.attention_head_dim: {len(heads)} entries != {n} unet.block_out_channels")
        for width, h in zip(u.block_out_channels, heads):
            if width % h:
                problems.append(f"unet.block_out_channels: {width} is not divisible by unet.attention_head_dim {h} "
                                "(the number of attention heads in SD 1.x's naming)")
        for section, groups, widths in (("unet", u.norm_num_groups, u.block_out_channels),
                                        ("vae", v.norm_num_groups, v.block_out_channels)):
            bad = [w for w in widths if w % groups]
            if bad:
                problems.append(f"{section}.block_out_channels: {bad} not divisible by {section}.norm_num_groups {groups}")
        if t.hidden_size % t.num_attention_heads:
            problems.append(f"text_encoder.hidden_size: {t.hidden_size} is not divisible by "
                            f"text_encoder.num_attention_heads {t.num_attention_heads}")
        sites = [v.block_out_channels[-1], *reversed(v.block_out_channels)]  # VideoAutoencoderKL's temporal layers
        if v.temporal_layers > len(sites):
            problems.append(f"vae.temporal_layers: {v.temporal_layers} > {len(sites)}, the decoder's sites "
                            "(len(vae.block_out_channels) + 1)")
        for width in sites[: v.temporal_layers]:
            if width % max(1, width // v.temporal_head_dim):
                problems.append(f"vae.temporal_head_dim: {v.temporal_head_dim} splits the decoder's {width} "
                                f"channels (vae.block_out_channels) into unequal heads")
        return problems

    @model_validator(mode="wrap")
    @classmethod
    def _related_keys_agree(cls, data, handler) -> "ModelConfig":
        # A config read from a file or a dict is checked. An existing instance (a training config's
        # `model`) is taken as it is, as are fields assigned one at a time (``cfg.resolution = 32``),
        # which may disagree in between: build_unet and build_pipeline check the config they build.
        cfg = handler(data)
        if not isinstance(data, ModelConfig) and not _ASSIGNING.get() and (problems := cfg.related_key_problems()):
            raise ValueError("; ".join(problems))
        return cfg

    def __setattr__(self, name: str, value: object) -> None:
        token = _ASSIGNING.set(True)
        try:
            super().__setattr__(name, value)
        finally:
            _ASSIGNING.reset(token)

    def check_related_keys(self) -> None:
        """Raise `ConfigError` naming the keys if `related_key_problems` finds any."""
        if problems := self.related_key_problems():
            raise ConfigError(f"model config {self.name!r}: {'; '.join(problems)}")

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
    return dict(use_adaptor=cfg.use_adaptor, temporal_attention=cfg.temporal_attention, fps_conditioning=cfg.fps_conditioning,
                noise_prior=cfg.noise_prior)  # fmt: skip


def build_unet(cfg: ModelConfig) -> MagicVideoUNet:
    cfg.check_related_keys()
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
        rescale_betas_zero_snr=s.rescale_betas_zero_snr,
        timestep_spacing=s.timestep_spacing,
        clip_sample=False,
        set_alpha_to_one=False,
    )
    return make_scheduler(s.name, {**schedule, **(base or {})})


def _fit_pretrained(cfg: ModelConfig, path: Path, unet: MagicVideoUNet, vae: VideoAutoencoderKL,
                    text_encoder: CLIPTextModel) -> None:
    """Check that the parts read from a pretrained_2d folder fit together and give the config's
    `resolution`: the U-Net's sample_size (which sizes the pipeline's output) is set from it, as
    SD 1.5's own 64 would give 512x512 clips for a 256x256 config."""
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    problems = []
    if cfg.resolution % factor:
        problems.append(f"resolution: {cfg.resolution} is not a multiple of the VAE's downsampling {factor}")
    if text_encoder.config.hidden_size != unet.config.cross_attention_dim:
        problems.append(f"text_encoder hidden_size {text_encoder.config.hidden_size} != unet cross_attention_dim "
                        f"{unet.config.cross_attention_dim}")
    if vae.config.latent_channels != unet.config.in_channels:
        problems.append(f"vae latent_channels {vae.config.latent_channels} != unet in_channels {unet.config.in_channels}")
    if problems:
        raise ConfigError(f"model config {cfg.name!r}, pretrained_2d {path}: {'; '.join(problems)}")
    unet.register_to_config(sample_size=cfg.resolution // factor)


def build_pipeline(cfg: ModelConfig | str | Path, weights: Literal["random", "pretrained"] = "random",
                   seed: int = 0) -> MagicVideoPipeline:
    """A `MagicVideoPipeline` for a model config.

    weights="random": every component freshly initialised from the config (seeded), for tests
    and benchmarks. weights="pretrained": U-Net inflated from ``pretrained_2d/unet``, VideoVAE from
    its ``vae/``, tokenizer and text encoder from its folders, noise schedule from ``scheduler/``.
    """
    if not isinstance(cfg, ModelConfig):
        cfg = load_model_config(cfg)
    cfg.check_related_keys()  # again: a config edited by assignment or model_copy is not re-validated
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
        _fit_pretrained(cfg, path, unet, vae, text_encoder)
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
