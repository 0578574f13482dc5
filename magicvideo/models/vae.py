"""VideoVAE (arXiv 2211.11018, section 3.3): the image VAE with a temporally aware decoder.

Frames are encoded one by one by the image encoder (section 3.1: ``z = [E(x^1) .. E(x^F)]``).
The decoder is the image decoder plus directed temporal attention layers (two in the paper)
against pixel dithering. We place them where the decoder's features are smallest, so the
attention over frames costs little: the first after the decoder's middle block, the next after
each up-block in turn. Each is ``x + Attn_t(GroupNorm(x))`` with a zero-initialised output
projection, so a VideoVAE made from an image VAE decodes exactly as the image VAE does until
its temporal layers are trained.

Decoding runs in chunks of frames to bound memory: every part of the decoder except the
temporal layers is frame-local, so it runs chunk by chunk, and the temporal layers run on all
frames at once at the low resolution where they sit. The result equals unchunked decoding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import AutoencoderKL
from diffusers import ModelMixin  # noqa: F401  (DiffusionPipeline.from_pretrained finds a component's
# loader by looking up diffusers' base classes in the module that defines it)
from diffusers.configuration_utils import register_to_config
from torch import nn
from torch.utils.checkpoint import checkpoint

from .unet import TemporalAttention, _without_parent_keys


class TemporalDecoderLayer(nn.Module):
    """``x + TemporalAttention(GroupNorm(x))`` on ``(batch * frames, C, H, W)`` feature maps."""

    def __init__(self, channels: int, norm_groups: int, head_dim: int = 64) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        self.attn = TemporalAttention(channels, max(1, channels // head_dim), directed=True)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        # The decoder's mid-block can hand over a channels-last tensor; torch 2.13's CPU GroupNorm
        # backward crashes on that when the input needs no grad but the norm's weight does (frozen
        # image decoder, trained temporal layers). A contiguous copy computes the same values.
        x = x.contiguous()
        n, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (b f) (h w) c
        return x + self.attn(tokens, num_frames).transpose(1, 2).view(n, c, h, w)


class VideoAutoencoderKL(AutoencoderKL):
    """diffusers `AutoencoderKL` whose decoder adds directed temporal attention (VideoVAE).

    Args (video): temporal_layers: number of temporal attention layers in the decoder (paper: 2;
    0 gives the plain image VAE); temporal_head_dim: channels per attention head. The remaining
    args are `AutoencoderKL`'s, with the same meaning.

    Use `encode_video` / `decode_video` with ``(batch, channels, frames, height, width)`` tensors;
    `encode` / `decode` keep the image VAE's frame-wise behaviour.
    """

    @register_to_config
    def __init__(
        self,
        temporal_layers: int = 2,
        temporal_head_dim: int = 64,
        in_channels: int = 3,
        out_channels: int = 3,
        down_block_types: tuple[str, ...] = ("DownEncoderBlock2D",),
        up_block_types: tuple[str, ...] = ("UpDecoderBlock2D",),
        block_out_channels: tuple[int, ...] = (64,),
        layers_per_block: int = 1,
        act_fn: str = "silu",
        latent_channels: int = 4,
        norm_num_groups: int = 32,
        sample_size: int = 32,
        scaling_factor: float = 0.18215,
        force_upcast: bool = True,
        mid_block_add_attention: bool = True,
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types),
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            act_fn=act_fn,
            latent_channels=latent_channels,
            norm_num_groups=norm_num_groups,
            sample_size=sample_size,
            scaling_factor=scaling_factor,
            force_upcast=force_upcast,
            mid_block_add_attention=mid_block_add_attention,
        )
        sites = len(up_block_types) + 1
        if not 0 <= temporal_layers <= sites:
            raise ValueError(f"temporal_layers must be in 0..{sites} for this decoder, got {temporal_layers}")
        # Channels at each site: after the middle block, then after each up block.
        widths = [block_out_channels[-1]] + list(reversed(block_out_channels))
        self.temporal = nn.ModuleList(
            TemporalDecoderLayer(widths[i], norm_num_groups, temporal_head_dim) for i in range(temporal_layers)
        )

    @classmethod
    def extract_init_dict(cls, config_dict: dict, **kwargs):
        """Drop `AutoencoderKL`'s own config keys (registered by its `__init__`, derived from ours)."""
        return super().extract_init_dict(_without_parent_keys(cls, AutoencoderKL, config_dict), **kwargs)

    @classmethod
    def from_image_vae(cls, vae: AutoencoderKL, temporal_layers: int = 2, temporal_head_dim: int = 64) -> "VideoAutoencoderKL":
        """A VideoVAE whose image parts are `vae`'s weights; decodes exactly as `vae` at first."""
        keys = (
            "in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels",
            "layers_per_block", "act_fn", "latent_channels", "norm_num_groups", "sample_size",
            "scaling_factor", "force_upcast", "mid_block_add_attention",
        )  # fmt: skip
        cfg = vae.config
        if cfg.get("shift_factor") is not None or not cfg.get("use_quant_conv", True) or not cfg.get("use_post_quant_conv", True):
            raise ValueError("VideoVAE supports Stable Diffusion 1.x/2.x style VAEs (quant convs, no shift_factor)")
        model = cls(temporal_layers=temporal_layers, temporal_head_dim=temporal_head_dim, **{k: cfg[k] for k in keys})
        missing, unexpected = model.load_state_dict(vae.state_dict(), strict=False)
        if unexpected or any(not k.startswith("temporal.") for k in missing):
            raise ValueError(f"image VAE weights do not fit: unexpected {unexpected[:5]}, missing {missing[:5]}")
        return model if model.dtype == vae.dtype else model.to(vae.dtype)

    # ---- video encode / decode ------------------------------------------------------------

    def encode_video(self, frames: torch.Tensor, chunk_size: int = 16, sample: bool = False,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Encode frames ``(B, 3, F, H, W)`` in [-1, 1] one by one (eq. z = [E(x^1)..E(x^F)]).

        Returns unscaled latents ``(B, latent_channels, F, H/8, W/8)``: the posterior mode, or a
        sample when `sample` is True."""
        b, c, f, h, w = _check_video(frames, self.config.in_channels, "frames")
        flat = frames.transpose(1, 2).reshape(b * f, c, h, w)
        parts = []
        for chunk in flat.split(chunk_size):
            dist = self.encode(chunk).latent_dist
            parts.append(dist.sample(generator) if sample else dist.mode())
        z = torch.cat(parts)
        return z.view(b, f, *z.shape[1:]).transpose(1, 2)

    def decode_video(self, latents: torch.Tensor, chunk_size: int = 16) -> torch.Tensor:
        """Decode unscaled latents ``(B, C, F, h, w)`` to frames ``(B, 3, F, 8h, 8w)`` in about
        [-1, 1], `chunk_size` frames at a time through every frame-local stage."""
        b, c, f, h, w = _check_video(latents, self.config.latent_channels, "latents")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        dec = self.decoder
        x = latents.transpose(1, 2).reshape(b * f, c, h, w)

        # diffusers' enable_gradient_checkpointing() sets the decoder's flag; this path drives the
        # decoder's blocks itself, so it honours the flag here: each chunk of each frame-local stage
        # is recomputed in the backward pass instead of keeping its activations.
        recompute = bool(getattr(dec, "gradient_checkpointing", False)) and torch.is_grad_enabled()

        def by_chunks(fn: Callable[[torch.Tensor], torch.Tensor], t: torch.Tensor) -> torch.Tensor:
            if recompute:
                return torch.cat([checkpoint(fn, part, use_reentrant=False) for part in t.split(chunk_size)])
            return torch.cat([fn(part) for part in t.split(chunk_size)])

        # Stages between temporal sites; frames of one video are contiguous, so a chunk of the
        # flattened batch is a set of whole frames and each stage is frame-local.
        def stem(t: torch.Tensor) -> torch.Tensor:
            if self.post_quant_conv is not None:
                t = self.post_quant_conv(t)
            return dec.mid_block(dec.conv_in(t), None)

        stages: list[Callable[[torch.Tensor], torch.Tensor]] = [stem]
        stages += [lambda t, blk=blk: blk(t, None) for blk in dec.up_blocks]
        stages.append(lambda t: dec.conv_out(dec.conv_act(dec.conv_norm_out(t))))

        for i, stage in enumerate(stages):
            x = by_chunks(stage, x)
            if i < len(self.temporal):
                x = self.temporal[i](x, f)
        return x.view(b, f, *x.shape[1:]).transpose(1, 2)


def _check_video(x: torch.Tensor, channels: int, name: str) -> tuple[int, int, int, int, int]:
    if x.ndim != 5:
        raise ValueError(f"{name} must be (batch, channels, frames, height, width), got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{name} have {x.shape[1]} channels, expected {channels}")
    return tuple(x.shape)  # type: ignore[return-value]
