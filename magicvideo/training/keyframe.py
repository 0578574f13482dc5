"""Key-frame model training (arXiv 2211.11018, section 3.1.3).

- Frame sampling: the dataset takes 16 frames uniformly from a span of ``Ls`` successive frames
  and returns ``nu = 16 / Ls * FPS`` (:class:`magicvideo.data.VideoTextDataset`); ``nu`` is the
  U-Net's ``fps`` input (eq. 5).
- Objective, eq. 6: ``L(z0) = E_t sum_i || eps^i - eps_theta(z^i_t, t, y) ||^2`` over the F
  frames of a clip, one t per clip, z_t from diffusers' ``DDPMScheduler.add_noise`` with the
  model config's noise schedule. We take the mean over elements instead of the sum over frames
  (a constant factor, folded into the learning rate). ``v_prediction`` schedules regress v.
- Condition: ``conditioning: text`` uses the CLIP text embeddings tau(y) of the caption;
  ``conditioning: image`` is the unsupervised pre-training: the CLIP image embeddings of the
  clip's own frames (one token per frame) stand in for the text. Fine-tuning on text-video pairs
  is a second run with ``conditioning: text`` and ``init_unet`` pointing at the pre-training's
  ``final/unet_ema``.
- Condition dropout for classifier-free guidance: with probability ``condition_dropout`` a clip's
  condition is the null condition: the empty prompt's embedding (what the pipeline uses as the
  unconditional branch) for text; all-zero tokens for image embeddings (an empty prompt has no
  image counterpart; the text fine-tuning then learns the empty prompt as null).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from magicvideo.noise_prior import mix
from magicvideo.training.config import TrainConfig
from magicvideo.training.trainer import Trainer, load_weights


def noised(noise_scheduler, latents: torch.Tensor, generator: torch.Generator | None = None, noise_prior: float = 0.0):
    """The forward process of eq. 6 on clean latents ``(B, ...)``: ``(noisy latents, timesteps, target)``,
    one timestep per item; the target is the noise (v for ``v_prediction``, the clean latents for ``sample``). Noise, then timesteps,
    come from `generator` (the training stages' loss functions share this draw order). `noise_prior` > 0: video latents
    ``(B, C, F, h, w)`` get PYoCo's mixed noise with that alpha (:mod:`magicvideo.noise_prior`; its shared map is drawn
    after the per-frame noise, so 0 draws what it always did)."""
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    if noise_prior:
        if latents.ndim != 5:
            raise ValueError(f"noise_prior needs video latents (B, C, F, h, w), got shape {tuple(latents.shape)}")
        b, c, _, h, w = latents.shape
        shared = torch.randn((b, c, 1, h, w), generator=generator, device=latents.device, dtype=latents.dtype)
        noise = mix(noise, shared, noise_prior)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator,
                      device=latents.device)  # fmt: skip
    kind = noise_scheduler.config.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, t)
    elif kind == "sample":
        target = latents
    else:
        raise ValueError(f"unsupported prediction_type {kind!r}")
    return noise_scheduler.add_noise(latents, noise, t), t, target


def diffusion_loss(
    unet: nn.Module,
    noise_scheduler,
    latents: torch.Tensor,
    cond: torch.Tensor,
    fps: torch.Tensor | None,
    generator: torch.Generator | None = None,
    noise_prior: float = 0.0,
) -> torch.Tensor:
    """Eq. 6: MSE between the noise (or v) and the U-Net's prediction on every frame.

    latents: scaled clean latents ``(B, C, F, h, w)``; cond: ``(B, tokens, dim)``; fps: nu ``(B,)``.
    Noise and timesteps (one per clip) come from `generator`; `noise_prior`: PYoCo's alpha (:func:`noised`)."""
    noisy, t, target = noised(noise_scheduler, latents, generator, noise_prior)
    pred = unet(noisy, t, cond, fps=fps).sample
    return F.mse_loss(pred.float(), target.float())


def drop_condition(cond: torch.Tensor, null: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Replace each clip's condition by `null` (broadcast to ``cond[0]``) with probability `p`.
    Always draws ``B`` uniforms from `generator`, so the random stream does not depend on `p`."""
    drop = torch.rand(cond.shape[0], generator=generator, device=cond.device) < p
    return torch.where(drop[:, None, None], null.to(cond.dtype).expand_as(cond), cond)


class KeyframeTrainer(Trainer):
    """Trains a :class:`~magicvideo.models.MagicVideoUNet` on clips (all its parameters; the
    VAE, text and image encoders are frozen).

    Args:
        cfg: training config (``stage: keyframe``).
        dataset: items with ``video`` ``(F, 3, H, W)`` in [-1, 1], ``caption`` (str), ``nu`` (float).
        unet, vae, noise_scheduler: the model, the (Video)VAE whose encoder makes latents, and a
            diffusers scheduler giving the noise schedule (``add_noise``).
        tokenizer, text_encoder: for ``conditioning: text`` (and the null condition).
        image_embedder: for ``conditioning: image``: frames ``(B, 3, F, H, W)`` in [0, 1] ->
            ``(B, tokens, cross_attention_dim)``, e.g. :class:`magicvideo.conditioning.ImageEmbedder`.
        device: overrides ``cfg.device``.
    """

    model_name = "unet"

    def __init__(self, cfg: TrainConfig, dataset, unet, vae, noise_scheduler, tokenizer=None, text_encoder=None,
                 image_embedder: nn.Module | None = None, device: str | torch.device | None = None):  # fmt: skip
        super().__init__(cfg, device)
        self.dataset, self.model, self.vae, self.noise_scheduler = dataset, unet, vae, noise_scheduler
        self.tokenizer, self.text_encoder, self.image_embedder = tokenizer, text_encoder, image_embedder
        if cfg.conditioning == "text" and (tokenizer is None or text_encoder is None):
            raise ValueError("conditioning: text needs a tokenizer and a text encoder")
        if cfg.conditioning == "image" and image_embedder is None:
            raise ValueError("conditioning: image needs an image embedder (config key image_encoder)")
        for frozen in (vae, text_encoder, image_embedder):
            if frozen is not None:
                frozen.requires_grad_(False).eval().to(self.device)
        unet.to(self.device)
        if cfg.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        with torch.no_grad():
            if cfg.conditioning == "text":
                from magicvideo.conditioning import encode_prompts

                self.null = encode_prompts(tokenizer, text_encoder, [""], device=self.device)
            else:
                self.null = torch.zeros((), device=self.device)
        self.setup()
        #: what the loss calls: the U-Net, or its CUDA-graphed forward/backward (cfg.cuda_graphs)
        self.denoiser = self.model
        if cfg.cuda_graphs and self.device.type == "cuda":
            from magicvideo.training.cuda_graphs import GraphedDenoiser

            self.denoiser = GraphedDenoiser(self.model, self.params)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def param_groups(self) -> list[dict]:
        """The inflated image layers at ``optim.lr``; the video additions (temporal attention,
        adaptors, FPS embedding) at ``optim.lr * optim.video_lr_scale``."""
        from magicvideo.models.unet import is_video_key

        scale = self.cfg.optim.video_lr_scale
        if scale == 1.0:
            return [{"params": self.params}]
        video = {id(p) for n, p in self.model.named_parameters() if p.requires_grad and is_video_key(n)}
        groups = [{"params": [p for p in self.params if id(p) not in video]},
                  {"params": [p for p in self.params if id(p) in video], "lr": self.cfg.optim.lr * scale}]
        return [g for g in groups if g["params"]]

    @torch.no_grad()
    def condition(self, batch: dict, video: torch.Tensor) -> torch.Tensor:
        """tau(y) of the captions, or the image embeddings of the clip's frames (pre-training)."""
        if self.cfg.conditioning == "text":
            from magicvideo.conditioning import encode_prompts

            return encode_prompts(self.tokenizer, self.text_encoder, list(batch["caption"]), device=self.device)
        return self.image_embedder((video + 1) / 2).float()

    def loss(self, batch: dict) -> torch.Tensor:
        video = batch["video"].to(self.device).transpose(1, 2)  # (B, F, 3, H, W) -> (B, 3, F, H, W)
        with torch.no_grad():
            # encode_chunk saves launches, a GPU cost; a CPU keeps chunks of 16 frames (memory: 15 runs side by side)
            chunk = self.cfg.encode_chunk if self.device.type == "cuda" else min(self.cfg.encode_chunk, 16)
            latents = self.vae.encode_video(video, chunk_size=chunk, sample=True, generator=self.generator)
            latents = latents * self.vae.config.scaling_factor
            cond = self.condition(batch, video)
        cond = drop_condition(cond, self.null, self.cfg.condition_dropout, self.generator)
        fps = torch.as_tensor(batch["nu"], dtype=torch.float32, device=self.device)
        return diffusion_loss(self.denoiser, self.noise_scheduler, latents, cond, fps, self.generator,
                              getattr(self.model.config, "noise_prior", 0.0))  # the prior the model samples with

    def save_pipeline(self, folder: str | Path, ema: bool = True) -> Path:
        """Save a :class:`~magicvideo.pipeline.MagicVideoPipeline` folder with the trained U-Net
        (its EMA weights when `ema` and EMA is on), for ``magicvideo generate`` and the eval flows."""
        from magicvideo.build import build_scheduler
        from magicvideo.pipeline import MagicVideoPipeline

        if self.text_encoder is None:
            raise ValueError("a pipeline needs the text encoder (conditioning: text)")
        pipe = MagicVideoPipeline(unet=self.model, vae=self.vae, text_encoder=self.text_encoder,
                                  tokenizer=self.tokenizer, scheduler=build_scheduler(self.cfg.resolved_model()))  # fmt: skip
        with self.ema_weights(ema):
            pipe.save_pretrained(folder)
        return Path(folder)


def build_keyframe_trainer(cfg: TrainConfig, dataset=None, device: str | torch.device | None = None) -> KeyframeTrainer:
    """Everything from the config: the model config's pipeline (random or inflated from
    ``pretrained_2d``, seeded by ``seed``), ``init_unet`` weights (or, when ``init_unet`` is a saved
    pipeline folder, that whole pipeline to continue: :func:`continued_pipeline`), a DDPM noise schedule from the
    pipeline's scheduler config, the image encoder for pre-training, and (unless `dataset` is
    given) a :class:`~magicvideo.data.VideoTextDataset` over ``data.csv``."""
    from diffusers import DDPMScheduler

    from magicvideo.build import build_pipeline

    if cfg.stage != "keyframe":
        raise ValueError(f"stage: expected 'keyframe', got {cfg.stage!r}")
    mc = cfg.resolved_model()
    if cfg.init_unet and (Path(cfg.init_unet) / "model_index.json").is_file():
        pipe = continued_pipeline(cfg.init_unet, mc)
    else:
        pipe = build_pipeline(mc, weights=cfg.weights, seed=cfg.seed)
        if cfg.init_unet:
            load_weights(pipe.unet, cfg.init_unet)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    image_embedder = None
    if cfg.conditioning == "image":
        from magicvideo.conditioning import ImageEmbedder

        if not cfg.image_encoder:
            raise ValueError("image_encoder: required when conditioning is 'image' (a CLIP vision model folder)")

        image_embedder = ImageEmbedder.from_pretrained(cfg.image_encoder)
        if image_embedder.dim != mc.unet.cross_attention_dim:
            raise ValueError(
                f"image_encoder: projection_dim {image_embedder.dim} != model unet.cross_attention_dim "
                f"{mc.unet.cross_attention_dim}"
            )
    if dataset is None:
        dataset = video_dataset(cfg)
    return KeyframeTrainer(cfg, dataset, pipe.unet, pipe.vae, noise_scheduler, pipe.tokenizer, pipe.text_encoder,
                           image_embedder, device=device)  # fmt: skip


def continued_pipeline(folder: str | Path, mc):
    """A saved pipeline to continue training (``init_unet`` names a pipeline folder): its U-Net, VAE
    (decoder temporal layers included), text encoder, tokenizer and noise schedule. The model config
    must describe the same U-Net (frames, ablation switches, frame size); its ``noise_prior`` is the
    one trained (and then sampled) with from here on."""
    from magicvideo.pipeline import MagicVideoPipeline

    pipe = MagicVideoPipeline.from_pretrained(folder)
    u = pipe.unet.config
    want = {"num_frames": mc.num_frames, "use_adaptor": mc.use_adaptor, "temporal_attention": mc.temporal_attention,
            "fps_conditioning": mc.fps_conditioning, "resolution": mc.resolution}  # fmt: skip
    have = {"num_frames": u.num_frames, "use_adaptor": u.use_adaptor, "temporal_attention": u.temporal_attention,
            "fps_conditioning": u.fps_conditioning, "resolution": u.sample_size * pipe.vae_scale_factor}  # fmt: skip
    differ = [f"{k} {have[k]!r} (model config: {want[k]!r})" for k in want if have[k] != want[k]]
    if differ:
        raise ValueError(f"init_unet: the pipeline {folder} is another model: " + ", ".join(differ))
    pipe.unet.register_to_config(noise_prior=mc.noise_prior, sample_noise_prior=None)  # a sampling choice is re-made
    return pipe


def video_dataset(cfg: TrainConfig):
    """A :class:`~magicvideo.data.VideoTextDataset` over ``data.csv`` with the model's frames and size."""
    from magicvideo.data.training import VideoTextDataset

    if not cfg.data.csv:
        raise ValueError("data.csv: required (a WebVid-style CSV of training videos)")
    mc = cfg.resolved_model()
    d = cfg.data
    return VideoTextDataset(d.csv, root=d.root, span=d.span, num_frames=mc.num_frames, size=mc.resolution,
                            resize=d.resize, seed=d.seed, cache=d.cache, cache_workers=max(1, d.num_workers))  # fmt: skip
