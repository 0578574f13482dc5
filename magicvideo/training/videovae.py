"""VideoVAE decoder training (arXiv 2211.11018, section 3.3).

The image VAE (encoder, decoder, quant convs) stays frozen; only the decoder's directed temporal
attention layers (``vae.temporal``) learn, from the reconstruction loss of clips: frames are
encoded one by one, the latents decoded as a video, and the result compared with the input
(MSE or L1 in pixel space). Since those layers start as an identity (zero-initialised output), the
VideoVAE starts as the image VAE and can only improve on its reconstructions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from magicvideo.training.config import TrainConfig
from magicvideo.training.trainer import Trainer, load_weights


def reconstruction_loss(vae, video: torch.Tensor, kind: str = "mse", sample: bool = True,
                        generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """Loss of ``decode_video(encode_video(video))`` against `video` ``(B, 3, F, H, W)`` in
    [-1, 1]; the encoder runs without gradients (it is frozen)."""
    with torch.no_grad():
        latents = vae.encode_video(video, sample=sample, generator=generator)
    recon = vae.decode_video(latents).float()
    return F.mse_loss(recon, video.float()) if kind == "mse" else F.l1_loss(recon, video.float())


class VideoVAETrainer(Trainer):
    """Trains ``vae.temporal`` of a :class:`~magicvideo.models.VideoAutoencoderKL`; every other
    parameter is frozen (``requires_grad=False``) and bit-for-bit unchanged.

    Args:
        cfg: training config (``stage: videovae``; ``recon_loss``, ``sample_posterior``).
        dataset: items with ``video`` ``(F, 3, H, W)`` in [-1, 1].
        vae: the VideoVAE; it needs ``temporal_layers > 0``.
        device: overrides ``cfg.device``.
    """

    model_name = "vae"

    def __init__(self, cfg: TrainConfig, dataset, vae, device: str | torch.device | None = None):
        super().__init__(cfg, device)
        if len(vae.temporal) == 0:
            raise ValueError("the VAE has no temporal layers to train (model vae.temporal_layers: 0)")
        self.dataset, self.model = dataset, vae.to(self.device)
        vae.requires_grad_(False)
        vae.temporal.requires_grad_(True)
        if cfg.gradient_checkpointing:
            vae.enable_gradient_checkpointing()  # honoured by decode_video, chunk by chunk
        self.setup()

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.model.temporal.parameters())

    def loss(self, batch: dict) -> torch.Tensor:
        video = batch["video"].to(self.device).transpose(1, 2)  # (B, F, 3, H, W) -> (B, 3, F, H, W)
        return reconstruction_loss(self.model, video, self.cfg.recon_loss, self.cfg.sample_posterior, self.generator)


def build_videovae_trainer(cfg: TrainConfig, dataset=None, device: str | torch.device | None = None) -> VideoVAETrainer:
    """The model config's VideoVAE (random or from ``pretrained_2d``'s image VAE, seeded by
    ``seed``), ``init_vae`` weights if given, and a dataset over ``data.csv`` unless given."""
    from magicvideo.build import build_vae
    from magicvideo.models import VideoAutoencoderKL

    if cfg.stage != "videovae":
        raise ValueError(f"stage: expected 'videovae', got {cfg.stage!r}")
    mc = cfg.resolved_model()
    if cfg.weights == "pretrained":
        from diffusers import AutoencoderKL

        path = mc.pretrained_path()
        if not (path / "vae").is_dir():
            raise FileNotFoundError(f"no vae/ subfolder in {path} (model config key pretrained_2d)")
        vae = VideoAutoencoderKL.from_image_vae(AutoencoderKL.from_pretrained(path, subfolder="vae"),
                                                mc.vae.temporal_layers, mc.vae.temporal_head_dim)  # fmt: skip
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            vae = build_vae(mc)
    if cfg.init_vae:
        load_weights(vae, cfg.init_vae)
    if dataset is None:
        from magicvideo.training.keyframe import video_dataset

        dataset = video_dataset(cfg)
    return VideoVAETrainer(cfg, dataset, vae, device=device)
