"""Image-to-video model training (Magic 1-For-1's I2V step; :mod:`magicvideo.models.i2v`).

The model (:class:`~magicvideo.models.ImageToVideoUNet`) starts from the trained key-frame U-Net
(:meth:`~magicvideo.models.ImageToVideoUNet.from_keyframe_unet`; ``init_unet``: a key-frame
pipeline folder such as the committed ``checkpoints/shapes/pipeline``) and learns to make a clip
from its first frame(s), on real clips:

- Clips: the key-frame stage's (``data.span`` frames, 16 taken uniformly, ``nu`` their rate).
- Condition, per clip: the latents of its first ``k`` frames (VAE posterior samples, scaled),
  concatenated to the noise with the mask channel; ``k`` is drawn per step, 1 with probability
  about 1/2 (image-to-video) and else uniform in ``2..max_context`` (the sliding window's
  continuation from the previous window's last frames). The cross-attention's priors are the
  caption's CLIP text tokens and the CLIP image embedding of the clip's first frame (the
  pipeline's ``image_encoder``), appended as one token.
- Classifier-free guidance: the text is replaced by the empty prompt's embedding and, separately,
  the image token by zeros, each with probability ``condition_dropout``
  (:func:`~magicvideo.training.keyframe.drop_condition`); the frame latents are always given (an
  I2V model always has its image). The sampler's null branch is the empty prompt with a zero
  image token.
- Objective: eq. 6 / v-prediction (:func:`~magicvideo.training.keyframe.noised`), one ``t`` per
  clip over the whole clip (the conditioning positions then carry their noised true latents, which
  the sampler also feeds there), the MSE taken over the generated positions ``k..F-1`` only.

The training config is a key-frame config (``stage: keyframe``, ``conditioning: text``);
``scripts/train_i2v.py`` runs it from a pipeline folder and writes the ``i2v/`` component.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from magicvideo.models.i2v import ImageToVideoUNet
from magicvideo.training.config import TrainConfig
from magicvideo.training.interpolation import keyframe_derived_unet
from magicvideo.training.keyframe import (
    KeyframeTrainer,
    drop_condition,
    noised,
    video_dataset,
)


def i2v_loss(unet: ImageToVideoUNet, noise_scheduler, latents: torch.Tensor, text: torch.Tensor,
             image_embeds: torch.Tensor | None, k: int, fps: torch.Tensor | None,
             generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """Eq. 6 on the generated frames: latents ``(B, C, F, h, w)`` (scaled, clean), the first `k`
    given as the condition; text ``(B, L, D)``; image_embeds ``(B, 1, D)`` (or None)."""
    noisy, t, target = noised(noise_scheduler, latents, generator)
    tokens = unet.condition_tokens(text, image_embeds)
    pred = unet(noisy, t, tokens, fps=fps, frames=latents[:, :, :k]).sample
    return F.mse_loss(pred[:, :, k:].float(), target[:, :, k:].float())


def draw_context(max_context: int, rng: random.Random) -> int:
    """Conditioning frames k: 1 with probability ``max_context / (2 max_context - 1)`` (~1/2), else
    uniform in ``2..max_context``. A host-side draw (no device sync in the training step)."""
    if max_context < 1:
        raise ValueError(f"max_context must be >= 1, got {max_context}")
    return 1 + max(0, rng.randint(-(max_context - 1), max_context - 1))


class I2VTrainer(KeyframeTrainer):
    """Trains an :class:`~magicvideo.models.ImageToVideoUNet` (every parameter; VAE, text and
    image encoders frozen) on clips with their first frame(s) as the condition (module docstring).

    Args:
        cfg: a key-frame training config with ``conditioning: text``.
        dataset: items with ``video`` ``(F, 3, H, W)`` in [-1, 1], ``caption`` and ``nu``.
        unet: the I2V U-Net; vae, noise_scheduler, tokenizer, text_encoder: as :class:`KeyframeTrainer`.
        image_embedder: frames ``(B, 3, F, H, W)`` in [0, 1] -> ``(B, F, D)`` CLIP embeddings.
        max_context: most conditioning frames drawn (the sliding window's largest overlap).
    """

    model_name = "i2v"

    def __init__(self, cfg: TrainConfig, dataset, unet: ImageToVideoUNet, vae, noise_scheduler, tokenizer,
                 text_encoder, image_embedder: nn.Module, device: str | torch.device | None = None,
                 max_context: int = 4):  # fmt: skip
        if cfg.conditioning != "text":
            raise ValueError("the I2V model is conditioned on the caption (and the first frame): set conditioning: text")
        if not isinstance(unet, ImageToVideoUNet):
            raise TypeError(f"expected an ImageToVideoUNet, got {type(unet).__name__}")
        if not 1 <= max_context < unet.window:
            raise ValueError(f"max_context must be in 1..{unet.window - 1}, got {max_context}")
        self.max_context = max_context
        super().__init__(cfg, dataset, unet, vae, noise_scheduler, tokenizer, text_encoder, image_embedder,
                         device=device)  # fmt: skip

    def loss(self, batch: dict) -> torch.Tensor:
        video = batch["video"].to(self.device).transpose(1, 2)  # (B, F, 3, H, W) -> (B, 3, F, H, W)
        with torch.no_grad():
            latents = self.vae.encode_video(video, sample=True, generator=self.generator)
            latents = latents * self.vae.config.scaling_factor
            text = self.condition(batch, video)
            image = self.image_embedder((video[:, :, :1] + 1) / 2).float()  # (B, 1, D)
        text = drop_condition(text, self.null, self.cfg.condition_dropout, self.generator)
        image = drop_condition(image, torch.zeros((), device=self.device), self.cfg.condition_dropout, self.generator)
        # k from the seed and step: the same on a resumed run, and no device sync
        k = draw_context(self.max_context, random.Random(self.cfg.seed * 1_000_003 + self.step))
        fps = torch.as_tensor(batch["nu"], dtype=torch.float32, device=self.device)
        return i2v_loss(self.model, self.noise_scheduler, latents, text, image, k, fps, self.generator)

    def save_pipeline(self, folder: str | Path, ema: bool = True, dtype: torch.dtype | None = None,
                      image_encoder: bool = True) -> Path:  # fmt: skip
        """Add the trained model (EMA weights when `ema` and EMA is on; cast to `dtype` if given) to
        a saved pipeline folder as ``i2v/`` (:func:`~magicvideo.pipeline.add_i2v`), with the image
        encoder it was trained with unless `image_encoder` is False."""
        from magicvideo.pipeline import add_i2v

        model = self.exported_model(ema, dtype)
        return add_i2v(folder, model, self.image_embedder.vision if image_encoder else None)


def build_i2v_trainer(cfg: TrainConfig, dataset=None, device: str | torch.device | None = None,
                      max_context: int = 4) -> I2VTrainer:  # fmt: skip
    """Everything from the config: ``init_unet`` a saved key-frame pipeline folder (its U-Net, VAE,
    text encoder, noise schedule, and its ``image_encoder`` unless the config names one), or an
    I2V U-Net folder to continue from, or none (the model config's pipeline, random or inflated);
    the key-frame U-Net becomes an :class:`ImageToVideoUNet`; and (unless `dataset` is given) the
    key-frame stage's clips over ``data.csv``."""
    from diffusers import DDPMScheduler

    from magicvideo.conditioning import ImageEmbedder

    if cfg.stage != "keyframe":
        raise ValueError(f"stage: expected 'keyframe' (the I2V model trains with the key-frame keys), got {cfg.stage!r}")
    pipe, unet = keyframe_derived_unet(cfg, ImageToVideoUNet)
    if cfg.image_encoder:
        image_embedder = ImageEmbedder.from_pretrained(cfg.image_encoder)
    elif getattr(pipe, "image_encoder", None) is not None:
        image_embedder = ImageEmbedder(pipe.image_encoder)
    else:
        raise ValueError("image_encoder: required (a CLIP vision model folder) when the pipeline has none")
    if image_embedder.dim != unet.config.cross_attention_dim:
        raise ValueError(f"image_encoder: projection_dim {image_embedder.dim} != the U-Net's cross_attention_dim "
                         f"{unet.config.cross_attention_dim}")  # fmt: skip
    if dataset is None:
        dataset = video_dataset(cfg)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    return I2VTrainer(cfg, dataset, unet, pipe.vae, noise_scheduler, pipe.tokenizer, pipe.text_encoder, image_embedder,
                      device=device, max_context=max_context)  # fmt: skip
