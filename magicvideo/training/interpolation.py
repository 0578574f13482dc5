"""Frame-interpolation model training (arXiv 2211.11018, section 3.2).

The model (:class:`~magicvideo.models.InterpolationUNet`) starts from the trained key-frame
U-Net (``init_unet``: its ``final/unet_ema``; :meth:`InterpolationUNet.from_keyframe_unet`) and
learns to fill in the 3 frames between two key frames, on real clips:

- Windows. Each item of the dataset is ``T`` consecutive frames of a training video
  (``data.span``, one number: the dataset reads ``T`` frames from a span of ``T``, so
  ``nu = FPS``). Per clip and step a spacing ``d`` in ``1 .. (T - 1) // 4`` and a start are
  drawn (from the trainer's generator), and the window is frames ``start + d * (0, 1, 2, 3, 4)``:
  frames 0 and 4 play the two adjacent key frames (``4 d`` source frames apart, key-frame rate
  ``FPS / 4d``); frames 1-3 are the held-out intermediate frames the model must produce.
- Condition. The two key frames' latents (VAE posterior samples, scaled) are concatenated to
  the noisy window at positions 0 and 4 (with the mask channel); their CLIP image embeddings
  (``image_encoder``, one token each) go into the cross-attention, replaced by zeros with
  probability ``condition_dropout`` (classifier-free guidance's null condition, as in the
  key-frame pre-training). The FPS condition is the window's own frame rate ``FPS / d`` = the
  key frames' rate x 4, as at sampling time.
- Objective: eq. 6 on the held-out frames (of the correction to the key frames' latent blend
  for a ``blend_residual`` model, ``interpolation_residual: true``). The whole window is noised at one ``t``
  (``DDPMScheduler.add_noise``; the key positions then carry their noised true latents, which
  is what the sampler feeds there too) and the MSE between noise (or v) and prediction is taken
  over window positions 1-3 only.

The training config is a key-frame config (``stage: keyframe``, the same keys, ``conditioning:
image`` with ``image_encoder``); ``magicvideo train shapes`` runs it as its ``interpolation``
stage and writes the result into the pipeline folder (``interpolation/``, ``image_encoder/``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from magicvideo.models.interpolation import InterpolationUNet, window_frames
from magicvideo.training.config import TrainConfig
from magicvideo.training.keyframe import KeyframeTrainer, drop_condition, noised
from magicvideo.training.trainer import load_weights


def interpolation_loss(
    unet: InterpolationUNet,
    noise_scheduler,
    windows: torch.Tensor,
    cond: torch.Tensor,
    fps: torch.Tensor | None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Eq. 6 on the new frames of each window.

    windows: scaled clean latents ``(B, C, 5, h, w)`` (key frames at 0 and 4); cond: the key
    frames' CLIP embeddings ``(B, 2, D)``; fps: the window's frame rate ``(B,)``. One t per window;
    noise and t from `generator`."""
    keys = windows[:, :, [0, -1]]
    noisy, t, target = noised(noise_scheduler, windows - unet.reference(keys), generator)
    pred = unet(noisy, t, cond, fps=fps, keyframes=keys).sample
    return F.mse_loss(pred[:, :, 1:-1].float(), target[:, :, 1:-1].float())


def sample_windows(video: torch.Tensor, window: int, generator: torch.Generator | None = None,
                   max_spacing: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """One window per clip from consecutive frames ``(B, 3, T, H, W)``: a spacing ``d`` uniform in
    ``1 .. (T - 1) // (window - 1)`` (capped by `max_spacing`) and a uniform start. Returns the
    frames ``(B, 3, window, H, W)`` and ``d`` ``(B,)``."""
    b, _, t = video.shape[:3]
    top = (t - 1) // (window - 1)
    if top < 1:
        raise ValueError(f"clips of {t} frames are too short for a {window}-frame window (data.span >= {window})")
    top = min(top, max_spacing) if max_spacing else top
    device = video.device
    d = torch.randint(1, top + 1, (b,), generator=generator, device=device)
    room = t - (window - 1) * d  # possible starts per clip
    start = (torch.rand(b, generator=generator, device=device) * room).long().clamp(max=room - 1)
    return window_frames(video, start, d, window), d


class InterpolationTrainer(KeyframeTrainer):
    """Trains an :class:`~magicvideo.models.InterpolationUNet` (every parameter; VAE and CLIP
    image encoder frozen) on windows of real clips (module docstring).

    Args:
        cfg: a key-frame training config with ``conditioning: image``.
        dataset: items with ``video`` ``(T, 3, H, W)`` of consecutive frames in [-1, 1] and ``nu``
            (their frame rate), e.g. :func:`window_dataset`.
        unet: the interpolation U-Net; vae, noise_scheduler: as :class:`KeyframeTrainer`.
        image_embedder: frames ``(B, 3, F, H, W)`` in [0, 1] -> ``(B, F, D)`` CLIP embeddings.
        max_spacing: largest window spacing ``d`` (default: what the clip length allows).
    """

    model_name = "interpolation"

    def __init__(self, cfg: TrainConfig, dataset, unet: InterpolationUNet, vae, noise_scheduler,
                 image_embedder: nn.Module, device: str | torch.device | None = None,
                 max_spacing: int | None = None):  # fmt: skip
        if cfg.conditioning != "image":
            raise ValueError("the interpolation model is conditioned on CLIP image embeddings: set conditioning: image")
        if not isinstance(unet, InterpolationUNet):
            raise TypeError(f"expected an InterpolationUNet, got {type(unet).__name__}")
        self.max_spacing = max_spacing
        super().__init__(cfg, dataset, unet, vae, noise_scheduler, image_embedder=image_embedder, device=device)

    def loss(self, batch: dict) -> torch.Tensor:
        video = batch["video"].to(self.device).transpose(1, 2)  # (B, T, 3, H, W) -> (B, 3, T, H, W)
        window = self.model.window
        frames, d = sample_windows(video, window, self.generator, self.max_spacing)
        with torch.no_grad():
            latents = self.vae.encode_video(frames, sample=True, generator=self.generator)
            latents = latents * self.vae.config.scaling_factor
            cond = self.image_embedder((frames[:, :, [0, -1]] + 1) / 2).float()  # (B, 2, D)
        cond = drop_condition(cond, self.null, self.cfg.condition_dropout, self.generator)
        fps = torch.as_tensor(batch["nu"], dtype=torch.float32, device=self.device) / d
        return interpolation_loss(self.model, self.noise_scheduler, latents, cond, fps, self.generator)

    def save_pipeline(self, folder: str | Path, ema: bool = True, dtype: torch.dtype | None = None) -> Path:
        """Add the trained model (its EMA weights when `ema` and EMA is on) and the image encoder
        to an existing :class:`~magicvideo.pipeline.MagicVideoPipeline` folder
        (:func:`~magicvideo.pipeline.add_interpolation`); `dtype` stores a cast copy (e.g.
        float16 to halve the file; ``from_pretrained`` loads it as float32)."""
        from magicvideo.pipeline import add_interpolation

        model = self.exported_model(ema, dtype)
        return add_interpolation(folder, model, self.image_embedder.vision)


def keyframe_derived_unet(cfg: TrainConfig, unet_class, **init):
    """The pipeline and the model of a stage built on the key-frame U-Net (interpolation, I2V):
    ``init_unet`` a saved key-frame pipeline folder (its U-Net, VAE, text encoder and noise schedule
    are used; its frame size must be the model config's ``resolution``), or a key-frame U-Net folder,
    or a `unet_class` folder to continue from, or none (the model config's pipeline, random or
    inflated from ``pretrained_2d``, seeded by ``seed``); the key-frame U-Net becomes a `unet_class`
    by its ``from_keyframe_unet``. Returns ``(pipe, unet)``."""
    import json

    from magicvideo.build import build_pipeline

    mc = cfg.resolved_model()
    from_pipeline = bool(cfg.init_unet) and (Path(cfg.init_unet) / "model_index.json").is_file()
    if from_pipeline:
        from magicvideo.pipeline import MagicVideoPipeline

        pipe = MagicVideoPipeline.from_pretrained(cfg.init_unet)
        side = pipe.unet.config.sample_size * pipe.vae_scale_factor
        if side != mc.resolution:
            raise ValueError(f"init_unet: the pipeline {cfg.init_unet} makes {side} px frames, the model config's "
                             f"resolution is {mc.resolution}")  # fmt: skip
    else:
        pipe = build_pipeline(mc, weights=cfg.weights, seed=cfg.seed)
    init_class = None
    if cfg.init_unet and not from_pipeline:
        config_file = Path(cfg.init_unet) / "config.json"
        init_class = json.loads(config_file.read_text()).get("_class_name") if config_file.is_file() else None
        if init_class != unet_class.__name__:
            load_weights(pipe.unet, cfg.init_unet)
    unet = unet_class.from_keyframe_unet(pipe.unet, **init)
    if init_class == unet_class.__name__:
        load_weights(unet, cfg.init_unet)
    return pipe, unet


def build_interpolation_trainer(cfg: TrainConfig, dataset=None, device: str | torch.device | None = None,
                                max_spacing: int | None = None) -> InterpolationTrainer:  # fmt: skip
    """Everything from the config: the model config's key-frame U-Net (random, or inflated from
    ``pretrained_2d``, seeded by ``seed``) with the ``init_unet`` weights (a trained key-frame
    U-Net, or an interpolation U-Net to continue from; or a saved key-frame pipeline folder,
    whose U-Net, VAE and noise schedule are then used), turned into an
    :class:`InterpolationUNet`; the VAE; a DDPM noise schedule from the pipeline's scheduler
    config; the CLIP image encoder ``image_encoder``; and (unless `dataset` is given)
    :func:`window_dataset`."""
    from diffusers import DDPMScheduler

    from magicvideo.conditioning import ImageEmbedder

    if cfg.stage != "keyframe":
        raise ValueError(f"stage: expected 'keyframe' (the interpolation model trains with the key-frame keys), got {cfg.stage!r}")
    if not cfg.image_encoder:
        raise ValueError("image_encoder: required (a CLIP vision model folder; the interpolation condition)")
    pipe, unet = keyframe_derived_unet(cfg, InterpolationUNet, residual=cfg.interpolation_residual)
    image_embedder = ImageEmbedder.from_pretrained(cfg.image_encoder)
    if image_embedder.dim != unet.config.cross_attention_dim:
        raise ValueError(f"image_encoder: projection_dim {image_embedder.dim} != the U-Net's cross_attention_dim "
                         f"{unet.config.cross_attention_dim}")  # fmt: skip
    if dataset is None:
        dataset = window_dataset(cfg)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    return InterpolationTrainer(cfg, dataset, unet, pipe.vae, noise_scheduler, image_embedder, device=device,
                                max_spacing=max_spacing)  # fmt: skip


def window_dataset(cfg: TrainConfig):
    """A :class:`~magicvideo.data.VideoTextDataset` of ``data.span`` consecutive frames per item
    (``data.span`` must be one number, at least 5) at the model's resolution."""
    from magicvideo.data.training import VideoTextDataset

    d = cfg.data
    if not d.csv:
        raise ValueError("data.csv: required (a WebVid-style CSV of training videos)")
    span = d.span if isinstance(d.span, int) else (d.span[0] if d.span[0] == d.span[1] else None)
    if span is None or span < 5:
        raise ValueError(f"data.span: the interpolation stage reads that many consecutive frames per clip; set one "
                         f"number >= 5 (e.g. 16), got {d.span}")  # fmt: skip
    mc = cfg.resolved_model()
    return VideoTextDataset(d.csv, root=d.root, span=span, num_frames=span, size=mc.resolution, resize=d.resize,
                            seed=d.seed, cache=d.cache, cache_workers=max(1, d.num_workers))  # fmt: skip
