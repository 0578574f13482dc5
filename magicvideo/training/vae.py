"""The image VAE of the shapes models: a diffusers ``AutoencoderKL`` trained from scratch on single
frames (the first model of :mod:`magicvideo.training.shapes`; the VideoVAE is built from it).

Objective (``vae_loss``): ``w * |D(z) - x|^p + kl_weight * KL(q(z|x) || N(0, I))`` with
``z ~ q(z|x)``, both averaged over elements, pixels in [-1, 1]; ``p`` = 2 or 1 (``recon_loss``:
mse | l1) and ``w`` = ``foreground_weight`` on pixels of the shape, 1 on the background
(:func:`foreground_weights`). LDM's autoencoder adds a perceptual (LPIPS) and a patch-GAN loss for
natural images; no LPIPS weights can be downloaded here, and for flat-coloured shapes the pixel
loss suffices once the few shape pixels are not drowned by the background (a short CPU probe with
plain MSE gave blurred shapes of the wrong colour). The KL term only keeps the latents near unit
scale, as LDM's "KL-reg" autoencoder (weight ~1e-6).

After training, :func:`latent_scaling_factor` estimates LDM's ``scaling_factor`` (1 / std of the
latents over training frames) so that the diffusion models see unit-variance latents; the chain
stores it in the saved ``config.json``.

Architecture: the model config's ``vae`` section (:func:`image_vae_from_config`), i.e. the image
part of the VideoVAE that ``VideoAutoencoderKL.from_image_vae`` later wraps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from magicvideo.training.config import TrainConfig
from magicvideo.training.trainer import Trainer, load_weights


def frame_dataset(cfg: TrainConfig, num_frames: int = 1):
    """Single frames (``num_frames`` consecutive ones) from the videos of ``data.csv``: a
    :class:`~magicvideo.data.VideoTextDataset` with span ``num_frames``; each epoch draws another
    frame of every video. Items: ``video`` ``(num_frames, 3, S, S)`` in [-1, 1], ``caption``, ..."""
    from magicvideo.data.training import VideoTextDataset

    if not cfg.data.csv:
        raise ValueError("data.csv: required (a WebVid-style CSV of training videos)")
    d, mc = cfg.data, cfg.resolved_model()
    return VideoTextDataset(d.csv, root=d.root, span=num_frames, num_frames=num_frames, size=mc.resolution,
                            resize=d.resize, seed=d.seed, cache=d.cache, cache_workers=max(1, d.num_workers))  # fmt: skip


def image_vae_from_config(cfg) -> "AutoencoderKL":  # noqa: F821
    """A randomly initialised ``AutoencoderKL`` with the model config's ``vae`` keys (without the
    VideoVAE's temporal ones): the same layout as :func:`magicvideo.build.build_vae`'s image part."""
    from diffusers import AutoencoderKL

    from magicvideo.build import vae_kwargs

    return AutoencoderKL(**vae_kwargs(cfg, temporal=False))


def foreground_weights(frames: torch.Tensor, weight: float, threshold: float = 0.1) -> torch.Tensor:
    """Per-pixel loss weights ``(B, 1, H, W)``: `weight` where a pixel's colour differs from its
    frame's median colour (the plain background of a shapes frame) by more than `threshold` in
    some channel, else 1. Averaged pixel losses are dominated by the background; a shape covers
    ~1-5 % of a shapes frame."""
    median = frames.flatten(2).median(dim=2).values[:, :, None, None]
    fg = ((frames - median).abs() > threshold).any(dim=1, keepdim=True)
    return 1 + (weight - 1) * fg.to(frames.dtype)


def vae_loss(vae, frames: torch.Tensor, kl_weight: float, generator: torch.Generator | None = None,
             kind: str = "mse", foreground_weight: float = 1.0) -> torch.Tensor:  # fmt: skip
    """Pixel loss (`kind`: mse | l1, weighted by :func:`foreground_weights`) of the reconstruction
    of a posterior sample + ``kl_weight`` * mean KL to N(0, I).

    frames: ``(B, 3, H, W)`` in [-1, 1]."""
    posterior = vae.encode(frames).latent_dist
    recon = vae.decode(posterior.sample(generator)).sample
    err = recon.float() - frames.float()
    err = err.square() if kind == "mse" else err.abs()
    if foreground_weight != 1.0:
        err = err * foreground_weights(frames.float(), foreground_weight)
    rec = err.mean()
    if kl_weight == 0:
        return rec
    # DiagonalGaussianDistribution.kl() sums over C, H, W; divide to a per-element mean
    kl = posterior.kl().float().mean() / posterior.mean[0].numel()
    return rec + kl_weight * kl


@torch.no_grad()
def latent_scaling_factor(vae, frames: torch.Tensor, batch: int = 64) -> float:
    """LDM's ``scaling_factor``: 1 / std of posterior samples over `frames` ``(N, 3, H, W)``."""
    g = torch.Generator(vae.device).manual_seed(0)
    z = torch.cat([vae.encode(x.to(vae.device, vae.dtype)).latent_dist.sample(g).float() for x in frames.split(batch)])
    return float(1.0 / z.std())


class ImageVAETrainer(Trainer):
    """Trains every parameter of an ``AutoencoderKL`` on frames.

    Args:
        cfg: training config (``stage: image_vae``; ``kl_weight``).
        dataset: items with ``video`` ``(1, 3, H, W)`` (or ``(3, H, W)``) in [-1, 1].
        vae: the ``AutoencoderKL``.
        device: overrides ``cfg.device``.
    """

    model_name = "vae"

    def __init__(self, cfg: TrainConfig, dataset, vae, device: str | torch.device | None = None):
        super().__init__(cfg, device)
        self.dataset, self.model = dataset, vae.to(self.device)
        if cfg.gradient_checkpointing:
            vae.enable_gradient_checkpointing()
        self.setup()

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def loss(self, batch: dict) -> torch.Tensor:
        x = batch["video"].to(self.device)
        if x.ndim == 5:  # (B, F, 3, H, W): every frame is a sample
            x = x.flatten(0, 1)
        c = self.cfg
        return vae_loss(self.model, x, c.kl_weight, self.generator, c.recon_loss, c.foreground_weight)


def build_image_vae_trainer(cfg: TrainConfig, dataset=None, device: str | torch.device | None = None) -> ImageVAETrainer:
    """A new ``AutoencoderKL`` from the model config (seeded by ``seed``; ``init_vae`` weights if
    given) and single frames of ``data.csv`` unless `dataset` is given."""
    if cfg.stage != "image_vae":
        raise ValueError(f"stage: expected 'image_vae', got {cfg.stage!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        vae = image_vae_from_config(cfg.resolved_model())
    if cfg.init_vae:
        load_weights(vae, cfg.init_vae)
    return ImageVAETrainer(cfg, dataset if dataset is not None else frame_dataset(cfg), vae, device=device)
