"""Super-resolution model training (arXiv 2211.11018, section 3.4): images only.

"The SR model is trained only on image datasets ... on 512x512 random crops of 1024x1024 images
with 128x128 input frames ... we degrade low-resolution images with random Gaussian noise and add
the noise level as another conditioning signal." One training step, per image of the batch
(every draw from the trainer's generator, in this order):

1. a random ``upsampler.crop`` x ``crop`` window of a high-resolution frame (:func:`random_crops`;
   the frames are single frames of the training videos, one per item and epoch);
2. the low-resolution input: the crop shrunk ``scale_factor`` times, bicubic with antialiasing
   (``F.interpolate(antialias=True)``), rounded to 8-bit levels as the frames it will upsample are;
3. noise-conditioning augmentation: a level uniform in ``[0, max_noise_level]``, the input
   forward-diffused to it (:meth:`UpsamplerUNet.augment`); ``noise_augmentation: false`` (the
   ablation) sets every level to 0, the clean input, but draws the same numbers, so both variants
   see the same crops, noise and timesteps;
4. eq. 6 in pixel space: the crop noised at a uniform timestep (``DDPMScheduler.add_noise`` of the
   model's own schedule), MSE between the noise (or v) and the model's prediction given the
   augmented input and its level (:func:`upsampler_loss`).

With ``upsampler.cross_attention_dim`` and ``upsampler.text_encoder`` the model is also conditioned
on the caption's text-encoder states, replaced by the empty prompt's with probability
``condition_dropout``; the shapes model is not (no caption reaches it at SR time).

The training config is ``stage: upsample`` with the ``upsampler`` keys
(:class:`~magicvideo.training.config.UpsamplerSection`); ``data.csv`` lists the high-resolution
videos (the shapes chain renders its benchmark at ``scale_factor`` x its size for this stage).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from magicvideo.models.upsampler import (DEFAULT_NOISE_LEVEL, UpsamplerUNet, downsample, quantize,
                                         sample_noise_levels)  # fmt: skip
from magicvideo.training.config import TrainConfig, UpsamplerSection
from magicvideo.training.keyframe import drop_condition, noised
from magicvideo.training.trainer import Trainer, load_weights


def random_crops(images: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One uniform ``size`` x ``size`` window of each image ``(N, C, H, W)`` (one gather, no host sync)."""
    n, c, h, w = images.shape
    if size > min(h, w):
        raise ValueError(f"crop {size} is larger than the {h}x{w} training frames (upsampler.crop, upsampler.frame_size)")
    dev = images.device
    top = torch.randint(0, h - size + 1, (n,), generator=generator, device=dev)
    left = torch.randint(0, w - size + 1, (n,), generator=generator, device=dev)
    span = torch.arange(size, device=dev)
    rows, cols = (top[:, None] + span)[:, None, :, None], (left[:, None] + span)[:, None, None, :]
    return images[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                  rows, cols]  # fmt: skip


def upsampler_loss(model: UpsamplerUNet, noise_scheduler, high_res: torch.Tensor, low_res: torch.Tensor,
                   levels: torch.Tensor, text: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """Eq. 6 on high-resolution images ``(N, 3, H, W)`` given their augmented low-resolution
    inputs and levels; noise and one timestep per image from `generator`."""
    noisy, t, target = noised(noise_scheduler, high_res, generator)
    pred = model(noisy, t, low_res, levels, encoder_hidden_states=text).sample
    return F.mse_loss(pred.float(), target.float())


class UpsamplerTrainer(Trainer):
    """Trains every parameter of an :class:`UpsamplerUNet` on crops of single frames (module
    docstring); a text encoder, when given, is frozen.

    Args:
        cfg: training config (``stage: upsample``; the ``upsampler`` section).
        dataset: items with ``video`` ``(1, 3, H, W)`` (or ``(3, H, W)``) in [-1, 1] (and
            ``caption`` with text conditioning), e.g. :func:`hr_frame_dataset`.
        model: the SR model; noise_scheduler: a diffusers scheduler of its noise schedule.
        tokenizer, text_encoder: the text condition (both or neither).
        device: overrides ``cfg.device``.
    """

    model_name = "upsampler"

    def __init__(self, cfg: TrainConfig, dataset, model: UpsamplerUNet, noise_scheduler, tokenizer=None,
                 text_encoder=None, device: str | torch.device | None = None):  # fmt: skip
        super().__init__(cfg, device)
        text = model.config.cross_attention_dim is not None
        if (tokenizer is None) != (text_encoder is None) or (text_encoder is not None) != text:
            raise ValueError("a text-conditioned upsampler needs a tokenizer and a text encoder; one without text, neither")
        self.dataset, self.model, self.noise_scheduler = dataset, model.to(self.device), noise_scheduler
        self.tokenizer, self.text_encoder, self.null = tokenizer, text_encoder, None
        if text_encoder is not None:
            from magicvideo.conditioning import encode_prompts

            text_encoder.requires_grad_(False).eval().to(self.device)
            self.null = encode_prompts(tokenizer, text_encoder, [""], device=self.device)
        if cfg.gradient_checkpointing:
            model.enable_gradient_checkpointing()
        self.setup()

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def loss(self, batch: dict) -> torch.Tensor:
        u, g = self.cfg.upsampler, self.generator
        x = batch["video"].to(self.device).float()
        x = x[:, 0] if x.ndim == 5 else x
        high = random_crops(x, u.crop, g)
        low = quantize(downsample(high, u.scale_factor))
        levels = sample_noise_levels(len(high), u.max_noise_level, u.noise_augmentation, g, self.device)
        low = self.model.augment(low, levels, torch.randn(low.shape, generator=g, device=self.device))
        text = None
        if self.text_encoder is not None:
            from magicvideo.conditioning import encode_prompts

            text = encode_prompts(self.tokenizer, self.text_encoder, list(batch["caption"]), device=self.device)
            text = drop_condition(text, self.null, self.cfg.condition_dropout, g)
        return upsampler_loss(self.model, self.noise_scheduler, high, low, levels, text, g)


def upsampler_from_config(u: UpsamplerSection) -> UpsamplerUNet:
    """A randomly initialised :class:`UpsamplerUNet` with the section's keys; its stored inference
    level is ``default_noise_level``, or 20 (at most ``max_noise_level``) with augmentation and 0 without."""
    level = u.default_noise_level
    if level is None:
        level = min(DEFAULT_NOISE_LEVEL, u.max_noise_level) if u.noise_augmentation else 0
    return UpsamplerUNet(
        scale_factor=u.scale_factor, patch_size=u.patch_size, block_out_channels=tuple(u.block_out_channels),
        layers_per_block=u.layers_per_block,
        down_block_types=tuple(u.down_block_types) if u.down_block_types else None,
        up_block_types=tuple(u.up_block_types) if u.up_block_types else None, mid_block_type=u.mid_block_type,
        norm_num_groups=u.norm_num_groups, attention_head_dim=u.attention_head_dim,
        cross_attention_dim=u.cross_attention_dim, prediction_type=u.prediction_type,
        max_noise_level=u.max_noise_level, default_noise_level=level,
        noise_augmentation=u.noise_augmentation, residual=u.residual,
    )  # fmt: skip


def hr_frame_dataset(cfg: TrainConfig):
    """Single frames of the videos of ``data.csv`` at ``upsampler.frame_size`` (default: as stored),
    one per item, another frame of each video every epoch."""
    from magicvideo.data.training import VideoTextDataset

    d = cfg.data
    if not d.csv:
        raise ValueError("data.csv: required (a WebVid-style CSV of high-resolution training videos)")
    return VideoTextDataset(d.csv, root=d.root, span=1, num_frames=1, size=cfg.upsampler.frame_size, resize=d.resize,
                            seed=d.seed, cache=d.cache, cache_workers=max(1, d.num_workers))  # fmt: skip


def build_upsampler_trainer(cfg: TrainConfig, dataset=None, device: str | torch.device | None = None) -> UpsamplerTrainer:
    """A new :class:`UpsamplerUNet` from the ``upsampler`` keys (seeded by ``seed``; ``init_unet``:
    an UpsamplerUNet folder to start from), a DDPM schedule of its noise schedule, the text encoder
    of ``upsampler.text_encoder`` if any, and :func:`hr_frame_dataset` unless `dataset` is given."""
    from diffusers import DDPMScheduler

    if cfg.stage != "upsample":
        raise ValueError(f"stage: expected 'upsample', got {cfg.stage!r}")
    u = cfg.upsampler
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = upsampler_from_config(u)
    if cfg.init_unet:
        load_weights(model, cfg.init_unet)
    tokenizer = text_encoder = None
    if u.text_encoder:
        from magicvideo.conditioning import load_text_encoder

        tokenizer, text_encoder = load_text_encoder(u.text_encoder)
        if text_encoder.config.hidden_size != u.cross_attention_dim:
            raise ValueError(f"upsampler.text_encoder: hidden size {text_encoder.config.hidden_size} != "
                             f"upsampler.cross_attention_dim {u.cross_attention_dim}")  # fmt: skip
    noise_scheduler = DDPMScheduler.from_config(model.noise_schedule)
    return UpsamplerTrainer(cfg, dataset if dataset is not None else hr_frame_dataset(cfg), model, noise_scheduler,
                            tokenizer, text_encoder, device=device)  # fmt: skip


__all__ = ["UpsamplerTrainer", "build_upsampler_trainer", "hr_frame_dataset", "random_crops", "upsampler_from_config",
           "upsampler_loss"]  # fmt: skip
