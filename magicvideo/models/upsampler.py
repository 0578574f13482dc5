"""MagicVideo's x4 super-resolution model (arXiv 2211.11018, section 3.4).

"We train a diffusion-based super-resolution (SR) model in RGB space to upsample videos from
256x256 to 1024x1024 ... trained only on image datasets ... on 512x512 random crops of 1024x1024
images with 128x128 input frames ... following [Saharia et al.], we degrade low-resolution images
with random Gaussian noise and add the noise level as another conditioning signal."

:class:`UpsamplerUNet` is a diffusers ``UNet2DConditionModel`` wrapped with what makes it an SR
model; its own config (``config.json``) holds the architecture, the diffusion noise schedule and
the noise-conditioning augmentation, so one ``save_pretrained`` folder is a complete SR checkpoint.

The pattern is diffusers' Stable Diffusion x4 upscaler (``StableDiffusionUpscalePipeline``): the
low-resolution image is concatenated to the noisy sample along channels, it is degraded by
``add_noise`` of a DDPM schedule at an integer ``noise_level`` in ``[0, max_noise_level]`` (350
there, the default here), and the level enters the U-Net through ``class_labels``. Where we differ:

- **Pixel space, not latent.** The x4 upscaler denoises the 4-channel latent of its own VAE,
  whose grid has the low-resolution image's size, so it concatenates the image as it is. The
  paper's SR model works in RGB, so the noisy sample is the 3-channel high-resolution image and
  the low-resolution input is first upsampled to its size (bicubic; :meth:`condition`), as SR3
  and Imagen do: ``in_channels = 6``, ``out_channels = 3``, no VAE.
- **The level embedding.** The upscaler looks the level up in a learned table
  (``num_class_embeds = 1000``); here it goes through the timestep's own sinusoidal projection and
  an MLP (``class_embed_type = "timestep"``), a few thousand parameters instead of a
  1000-row table, smooth in the level.
- **One schedule.** The upscaler's ``low_res_scheduler`` is a separate DDPM scheduler; here the
  augmentation uses the model's own noise schedule (the config's ``beta_*`` keys, linear 1e-4 to
  0.02 over 1000 steps by default: the upscaler's ``low_res_scheduler`` numbers), so level ``s``
  means ``sqrt(abar_s) x + sqrt(1 - abar_s) eps``: at the default inference level 20 the noise
  std is ~0.08 in [-1, 1] units (~10 gray levels), at 350 ~0.85.
- **Level 0 is the clean input** (:meth:`UpsamplerUNet.augment`; the upscaler's DDPM step 0 adds a
  little noise). Training levels are uniform in ``[0, max_noise_level]``
  (:func:`sample_noise_levels`), one draw per image; a model trained without augmentation (the
  ablation) stores ``noise_augmentation: false`` and ``default_noise_level: 0``, the only level
  it has seen.
- **Patches for large outputs** (``patch_size``, default 1: off). At 1024 px a pixel U-Net's top
  level runs on a million positions per frame; with ``patch_size = p`` the 6-channel input is
  folded into ``6 p^2`` channels at ``1/p`` the side (``pixel_unshuffle``) and the output unfolded
  back (``pixel_shuffle``), so the U-Net's first level runs at the low-resolution input's grid for
  p = 4. This is simple diffusion's way to high resolution (Hoogeboom et al. 2023, "simple
  diffusion: end-to-end diffusion for high resolution images", sec. 3: the first layer downsamples,
  as a ViT's patch embedding); the upscaler needs none since its VAE does the folding.
- **Residual over bicubic** (``residual = True``, with ``prediction_type = "sample"``). The plain
  model (the x4 upscaler's way) predicts the noise (or v) of the whole image, so everything it
  outputs, flat areas included, is generated: trained on a small budget it rounds and textures
  flat-coloured shapes and loses to plain bicubic upsampling on PSNR and FID
  (``checkpoints/shapes/README.md``). With ``residual`` the network predicts the clean image as
  the bicubic upsampling of the input it is given plus a correction,
  ``x0 = bicubic(low_res) / sqrt(abar_level) + unet(...)``, and its last convolution starts at zero,
  so an untrained model already returns bicubic and training only has to learn what bicubic lacks
  (edges). This is SRDiff's idea (Li et al. 2022, "SRDiff: single image super-resolution with
  diffusion probabilistic models": diffuse the residual over the upsampled input), carried out as
  a skip on the x0 prediction so that the diffusion itself, its scheduler and the samplers stay the
  standard ones; the skip uses the *augmented* input the model sees (rescaled by
  ``1 / sqrt(abar_level)`` to the input's brightness), so under noise-conditioning augmentation
  the correction must also remove the augmentation noise: what the augmentation teaches.
- **No classifier-free guidance** at sampling (the upscaler defaults to 9 with text); text
  conditioning is optional (``cross_attention_dim``) and off in the shapes model, whose frames
  come with no caption at SR time.

Sampling (:mod:`magicvideo.upsampling`) uses any diffusers scheduler built from
:attr:`UpsamplerUNet.noise_schedule`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from diffusers import DDPMScheduler, UNet2DConditionModel
from diffusers import ModelMixin  # (DiffusionPipeline.from_pretrained finds a component's loader by looking up
# diffusers' base classes in the module that defines it)
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

#: the x4 upscaler's maximum augmentation level (``StableDiffusionUpscalePipeline(max_noise_level=350)``)
MAX_NOISE_LEVEL = 350
#: the level used at inference unless one is given (the upscaler's ``noise_level`` default)
DEFAULT_NOISE_LEVEL = 20


class UpsamplerUNet(ModelMixin, ConfigMixin):
    """x4 diffusion super-resolution in RGB (module docstring).

    Forward: ``model(sample, t, low_res, noise_level)`` with ``sample`` the noisy high-resolution
    images ``(N, 3, H, W)``, ``low_res`` the (already augmented) low-resolution images
    ``(N, 3, H / scale_factor, W / scale_factor)`` in [-1, 1], ``noise_level`` their augmentation
    level (scalar or ``(N,)``); returns the noise (or v) prediction ``(N, 3, H, W)``.

    Args:
        scale_factor: how much larger the output is than the input (4).
        patch_size: the U-Net sees ``p x p`` pixel patches folded into channels (module docstring);
            output sides must be multiples of ``p`` times the U-Net's total downsampling.
        block_out_channels, layers_per_block, down_block_types, up_block_types, mid_block_type,
            norm_num_groups, attention_head_dim: the ``UNet2DConditionModel``'s (block types default
            to ``DownBlock2D`` / ``UpBlock2D`` at every level and a middle block without attention:
            a fully convolutional model that runs at any size).
        cross_attention_dim: width of the text condition's tokens; None (default) for no text. With
            it, some blocks must be ``CrossAttn*`` blocks and forward needs ``encoder_hidden_states``.
        num_train_timesteps, beta_start, beta_end, beta_schedule, prediction_type: the diffusion noise
            schedule (diffusers scheduler keys; :attr:`noise_schedule`); also the augmentation's.
        max_noise_level: highest augmentation level trained on.
        default_noise_level: the level :mod:`magicvideo.upsampling` uses when none is given.
        noise_augmentation: whether it was trained with noise-conditioning augmentation (False: the
            ablation, trained at level 0 only).
        residual: predict the clean image as the bicubic upsampling of the input plus the U-Net's
            output (module docstring); needs ``prediction_type = "sample"``.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        scale_factor: int = 4,
        patch_size: int = 1,
        block_out_channels: tuple[int, ...] = (32, 48, 64, 96),
        layers_per_block: int = 1,
        down_block_types: tuple[str, ...] | None = None,
        up_block_types: tuple[str, ...] | None = None,
        mid_block_type: str | None = "UNetMidBlock2D",
        norm_num_groups: int = 16,
        attention_head_dim: int = 8,
        cross_attention_dim: int | None = None,
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        prediction_type: str = "v_prediction",
        max_noise_level: int = MAX_NOISE_LEVEL,
        default_noise_level: int = DEFAULT_NOISE_LEVEL,
        noise_augmentation: bool = True,
        residual: bool = False,
    ):
        super().__init__()
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"prediction_type must be epsilon, v_prediction or sample, got {prediction_type!r}")
        if residual and prediction_type != "sample":
            raise ValueError(f"residual needs prediction_type 'sample' (the skip adds to the x0 prediction), "
                             f"got {prediction_type!r}")  # fmt: skip
        if scale_factor < 1:
            raise ValueError(f"scale_factor must be >= 1, got {scale_factor}")
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}")
        if not 0 <= default_noise_level <= max_noise_level < num_train_timesteps:
            raise ValueError(f"need 0 <= default_noise_level ({default_noise_level}) <= max_noise_level "
                             f"({max_noise_level}) < num_train_timesteps ({num_train_timesteps})")  # fmt: skip
        levels = len(block_out_channels)
        down = tuple(down_block_types or ("DownBlock2D",) * levels)
        up = tuple(up_block_types or ("UpBlock2D",) * levels)
        if len(down) != levels or len(up) != levels:
            raise ValueError(f"down_block_types ({len(down)}) and up_block_types ({len(up)}) need one entry per "
                             f"block_out_channels level ({levels})")  # fmt: skip
        uses_text = any("CrossAttn" in b for b in (*down, *up, mid_block_type or ""))
        if uses_text != (cross_attention_dim is not None):
            raise ValueError("text conditioning needs both cross_attention_dim and CrossAttn* block types; got "
                             f"cross_attention_dim={cross_attention_dim}, "
                             f"blocks {down} / {mid_block_type} / {up}")  # fmt: skip
        text = {"cross_attention_dim": cross_attention_dim} if cross_attention_dim is not None else {}
        self.unet = UNet2DConditionModel(
            sample_size=None, in_channels=6 * patch_size**2, out_channels=3 * patch_size**2, down_block_types=down, up_block_types=up,
            mid_block_type=mid_block_type, block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block, norm_num_groups=norm_num_groups,
            attention_head_dim=attention_head_dim, class_embed_type="timestep", **text,
        )  # fmt: skip
        if residual:  # an untrained residual model returns the bicubic upsampling (module docstring)
            nn.init.zeros_(self.unet.conv_out.weight)
            nn.init.zeros_(self.unet.conv_out.bias)
        self._signal_scale: torch.Tensor | None = None  # sqrt(abar) per level, built on first use

    # ---- the schedule ---------------------------------------------------------------------

    @property
    def noise_schedule(self) -> dict:
        """The diffusion noise schedule as diffusers scheduler config keys (training: a
        ``DDPMScheduler`` of it; sampling: any scheduler ``from_config`` it). ``trailing`` timestep
        spacing: sampling starts at the last training step, pure noise, not at ``t = 961`` as
        ``leading`` spacing would for 25 steps (a pixel-space model sees the image through that)."""
        c = self.config
        return {"num_train_timesteps": c.num_train_timesteps, "beta_start": c.beta_start, "beta_end": c.beta_end,
                "beta_schedule": c.beta_schedule, "prediction_type": c.prediction_type, "clip_sample": False,
                "timestep_spacing": "trailing"}  # fmt: skip

    def augment(self, low_res: torch.Tensor, noise_level: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
        """Noise-conditioning augmentation: ``low_res`` forward-diffused to ``noise_level`` (per
        image) with `noise`, as the x4 upscaler's ``low_res_scheduler.add_noise``, except at level
        0, which here is the clean input (the upscaler's step 0 still adds noise of std 0.01): what
        a model trained without augmentation sees."""
        level = torch.as_tensor(noise_level, device=low_res.device).long().reshape(-1).expand(low_res.shape[0])
        schedule = DDPMScheduler.from_config(self.noise_schedule)
        noised = schedule.add_noise(low_res, noise.to(low_res.dtype), level)
        return torch.where((level > 0).view(-1, 1, 1, 1), noised, low_res)

    def signal_scale(self, noise_level: torch.Tensor) -> torch.Tensor:
        """``sqrt(abar)`` of each augmentation level ``(N,)`` (1 at level 0, the clean input): how
        much of the input's signal its augmented version keeps."""
        if self._signal_scale is None:
            abar = DDPMScheduler.from_config(self.noise_schedule).alphas_cumprod
            self._signal_scale = abar.sqrt().float()
        scale = self._signal_scale.to(noise_level.device)[noise_level.long()]
        return torch.where(noise_level > 0, scale, torch.ones_like(scale))

    # ---- forward --------------------------------------------------------------------------

    def condition(self, low_res: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The low-resolution images upsampled (bicubic) to the output's `size`."""
        return F.interpolate(low_res, size=size, mode="bicubic", align_corners=False)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        low_res: torch.Tensor,
        noise_level: torch.Tensor | int | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet2DConditionOutput | tuple[torch.Tensor]:
        """Predict the noise (or v) of the high-resolution `sample` (class docstring).

        Args:
            sample: noisy high-resolution images ``(N, 3, H, W)``.
            timestep: diffusion step, scalar or ``(N,)``.
            low_res: augmented low-resolution images ``(N, 3, H / s, W / s)`` in [-1, 1].
            noise_level: their augmentation level, scalar or ``(N,)`` (default: ``default_noise_level``).
            encoder_hidden_states: text tokens ``(N, L, cross_attention_dim)``; required with text
                conditioning, refused without.
        """
        s, p = self.config.scale_factor, self.config.patch_size
        if sample.ndim != 4 or sample.shape[1] != 3:
            raise ValueError(f"sample must be (N, 3, H, W), got {tuple(sample.shape)}")
        h, w = sample.shape[-2:]
        if h % p or w % p:
            raise ValueError(f"sample sides {(h, w)} must be multiples of patch_size {p}")
        if low_res.shape[0] != sample.shape[0] or tuple(low_res.shape[1:]) != (3, h // s, w // s) or h % s or w % s:
            raise ValueError(f"low_res must be (N, 3, H/{s}, W/{s}) for sample {tuple(sample.shape)}, got "
                             f"{tuple(low_res.shape)}")  # fmt: skip
        if (encoder_hidden_states is None) != (self.config.cross_attention_dim is None):
            raise ValueError("encoder_hidden_states: required by a text-conditioned upsampler (cross_attention_dim set), "
                             "refused by one without text conditioning")  # fmt: skip
        level = self.config.default_noise_level if noise_level is None else noise_level
        level = torch.as_tensor(level, device=sample.device).reshape(-1).expand(sample.shape[0])
        up = self.condition(low_res.to(sample.dtype), (h, w))
        x = torch.cat([sample, up], dim=1)
        if p == 1:
            out = self.unet(x, timestep, encoder_hidden_states=encoder_hidden_states, class_labels=level).sample
        else:
            out = self.unet(F.pixel_unshuffle(x, p), timestep, encoder_hidden_states=encoder_hidden_states,
                            class_labels=level).sample  # fmt: skip
            out = F.pixel_shuffle(out, p)
        if self.config.residual:
            out = out + up / self.signal_scale(level).to(up.dtype).view(-1, 1, 1, 1)
        return UNet2DConditionOutput(sample=out) if return_dict else (out,)


# ---- degradation and augmentation draws --------------------------------------------------------


def downsample(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Images ``(N, 3, H, W)`` shrunk `factor` times, bicubic with antialiasing (PIL's resize filter)."""
    if images.shape[-1] % factor or images.shape[-2] % factor:
        raise ValueError(f"image side {tuple(images.shape[-2:])} is not a multiple of {factor}")
    size = (images.shape[-2] // factor, images.shape[-1] // factor)
    return F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True)


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] rounded to the 256 levels of 8-bit frames (what the model's inputs are at
    inference: decoded or stored uint8 frames)."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def sample_noise_levels(n: int, max_level: int, enabled: bool = True, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None) -> torch.Tensor:  # fmt: skip
    """Training augmentation levels ``(n,)``: uniform integers in ``[0, max_level]``, or zeros when
    not `enabled`. Always draws `n` integers from `generator`, so the rest of a training step's random
    stream (crops, diffusion noise, timesteps) does not depend on `enabled`: the ablation trains on
    the same draws."""
    levels = torch.randint(0, max_level + 1, (n,), generator=generator, device=device)
    return levels if enabled else torch.zeros_like(levels)


__all__ = ["DEFAULT_NOISE_LEVEL", "MAX_NOISE_LEVEL", "UpsamplerUNet", "downsample", "quantize", "sample_noise_levels"]
