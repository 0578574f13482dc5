"""The shapes text-to-image model: a diffusers ``UNet2DConditionModel`` trained on single frames
with their clips' captions, the 'pre-trained T2I model' that
:meth:`~magicvideo.models.MagicVideoUNet.from_unet2d` inflates (the paper starts from LDM).

Objective (:func:`image_diffusion_loss`): LDM's ``|| eps - eps_theta(z_t, t, tau(y)) ||^2`` on VAE
latents of frames (one frame per item; eq. 6 with F = 1), z_t from ``DDPMScheduler.add_noise`` with
the model config's noise schedule; ``v_prediction`` schedules regress v. Condition dropout to the
empty prompt's embedding, as the key-frame model (:func:`~magicvideo.training.keyframe.drop_condition`).

Components: the VAE, tokenizer and text encoder come from the model config's ``pretrained_2d``
folder (SD 1.x layout: ``vae/``, ``tokenizer/``, ``text_encoder/``; the shapes chain assembles it
stage by stage) and stay frozen; the U-Net is new (the model config's ``unet`` keys, seeded), or
``init_unet``. :func:`write_t2i_folder` adds ``unet/`` and ``scheduler/`` to that folder, making it
a complete diffusers text-to-image folder that ``build_pipeline(weights="pretrained")`` inflates.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from magicvideo.training.config import TrainConfig
from magicvideo.training.keyframe import drop_condition, noised
from magicvideo.training.trainer import Trainer, load_weights


def image_diffusion_loss(unet: nn.Module, noise_scheduler, latents: torch.Tensor, cond: torch.Tensor,
                         generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """LDM's loss on scaled latents ``(B, C, h, w)`` with condition ``(B, tokens, dim)``: MSE between
    the noise (or v) and the prediction; noise and one timestep per image from `generator`."""
    noisy, t, target = noised(noise_scheduler, latents, generator)
    return F.mse_loss(unet(noisy, t, cond).sample.float(), target.float())


class T2ITrainer(Trainer):
    """Trains a ``UNet2DConditionModel`` on (frame, caption) pairs; VAE and text encoder frozen.

    Args:
        cfg: training config (``stage: t2i``; ``condition_dropout``).
        dataset: items with ``video`` ``(1, 3, H, W)`` in [-1, 1] and ``caption``.
        unet, vae, noise_scheduler, tokenizer, text_encoder: the model and its frozen parts.
        device: overrides ``cfg.device``.
    """

    model_name = "unet"

    def __init__(self, cfg: TrainConfig, dataset, unet, vae, noise_scheduler, tokenizer, text_encoder,
                 device: str | torch.device | None = None):  # fmt: skip
        from magicvideo.conditioning import encode_prompts

        super().__init__(cfg, device)
        self.dataset, self.model, self.vae, self.noise_scheduler = dataset, unet.to(self.device), vae, noise_scheduler
        self.tokenizer, self.text_encoder = tokenizer, text_encoder
        for frozen in (vae, text_encoder):
            frozen.requires_grad_(False).eval().to(self.device)
        if cfg.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        self.null = encode_prompts(tokenizer, text_encoder, [""], device=self.device)
        self.setup()

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    @torch.no_grad()
    def latents_and_condition(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled latents of a posterior sample of each frame, and tau(caption)."""
        from magicvideo.conditioning import encode_prompts

        x = batch["video"].to(self.device)
        x = x[:, 0] if x.ndim == 5 else x
        z = self.vae.encode(x).latent_dist.sample(self.generator).float()  # fp32 noise and targets under autocast
        z = z * self.vae.config.scaling_factor
        return z, encode_prompts(self.tokenizer, self.text_encoder, list(batch["caption"]), device=self.device)

    def loss(self, batch: dict) -> torch.Tensor:
        z, cond = self.latents_and_condition(batch)
        cond = drop_condition(cond, self.null, self.cfg.condition_dropout, self.generator)
        return image_diffusion_loss(self.model, self.noise_scheduler, z, cond, self.generator)


def build_t2i_trainer(cfg: TrainConfig, dataset=None, device: str | torch.device | None = None) -> T2ITrainer:
    """A new U-Net from the model config's ``unet`` keys (seeded; ``init_unet`` weights if given),
    the frozen VAE / tokenizer / text encoder of ``model.pretrained_2d``, a DDPM noise schedule
    from the model config, and single frames of ``data.csv`` unless `dataset` is given."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    from magicvideo.build import build_scheduler
    from magicvideo.conditioning import load_text_encoder
    from magicvideo.training.vae import frame_dataset

    if cfg.stage != "t2i":
        raise ValueError(f"stage: expected 't2i', got {cfg.stage!r}")
    mc = cfg.resolved_model()
    path = mc.pretrained_path()
    if not (path / "vae").is_dir():
        raise FileNotFoundError(f"no vae/ subfolder in {path} (model config key pretrained_2d; train the image VAE first)")
    vae = AutoencoderKL.from_pretrained(path, subfolder="vae")
    tokenizer, text_encoder = load_text_encoder(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        unet = UNet2DConditionModel(**mc.unet.model_dump())
    if cfg.init_unet:
        load_weights(unet, cfg.init_unet)
    noise_scheduler = DDPMScheduler.from_config(build_scheduler(mc).config)
    return T2ITrainer(cfg, dataset if dataset is not None else frame_dataset(cfg), unet, vae, noise_scheduler,
                      tokenizer, text_encoder, device=device)  # fmt: skip


def write_t2i_folder(folder: str | Path, unet_folder: str | Path, model_config) -> Path:
    """Copy a trained U-Net (a ``save_pretrained`` folder) to ``folder/unet`` and write the model
    config's sampler as ``folder/scheduler``: with ``vae/``, ``tokenizer/``, ``text_encoder/`` there,
    a diffusers SD 1.x-layout folder (``pretrained_2d`` of the key-frame stages)."""
    from magicvideo.build import build_scheduler

    folder = Path(folder)
    shutil.rmtree(folder / "unet", ignore_errors=True)
    shutil.copytree(unet_folder, folder / "unet")
    build_scheduler(model_config).save_pretrained(folder / "scheduler")
    return folder
