"""The MagicVideo key-frame 3D U-Net (arXiv 2211.11018, section 3.1), in the paper's order.

The model is a Stable Diffusion 1.x text-to-image U-Net (diffusers `UNet2DConditionModel`
layout, so SD weights load key for key) turned into a video model by three additions:

1. Video distribution adaptor (3.1.1, eq. 1). Every 2D convolution is shared by all frames and
   followed by a frame-wise affine map ``z_i = S_i * Conv2d(z_i) + B_i`` with ``S, B`` of shape
   ``(num_frames, channels)``, initialised to the identity (S = 1, B = 0).
2. Spatial and directed temporal attention in parallel (3.1.2, eqs. 2-4). In every transformer
   block of the image U-Net, the spatial branch is the block's own self-attention followed by
   cross-attention to the text (eq. 3); the temporal branch is self-attention over the frames at
   each spatial position, with a lower-triangular mask in `directed` mode (frame p attends to
   frames q <= p, eq. 4). Both branches read the same input and their outputs are added (eq. 2),
   then the block's feed-forward follows. The temporal output projection starts at zero, so an
   inflated model starts as exactly the image model applied frame by frame.
   The image U-Net has attention at every level but the lowest-resolution one (SD 1.x: latent
   strides 1, 2, 4 and the middle block); the paper's "after the 4x, 8x, 16x down-sampling
   blocks" counts pixel strides of VDM's 64x64 model. We add the temporal branch wherever the
   image model has a spatial transformer block.
3. FPS conditioning (3.1.3, eq. 5). ``emb_nu = Linear(SiLU(Linear(Sin(nu))))`` with the same
   sinusoidal projection as the timestep. It is added to the timestep embedding, which every
   ResNet block projects and adds to its features: the FPS embedding is thereby added to the
   frame features at every resolution, with a width that matches each level, which a single
   addition of a C-vector at one place could not do. Its last Linear starts at zero, so the
   inflated model is unchanged until training moves it.

Ablation switches (configuration, each documented in `MagicVideoUNet`): ``use_adaptor``,
``temporal_attention`` in {"directed", "bidirectional", "none"}, ``fps_conditioning``; and the
noise the model is trained and sampled with, ``noise_prior`` (:mod:`magicvideo.noise_prior`).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers import ModelMixin  # noqa: F401  (DiffusionPipeline.from_pretrained finds a component's
# loader by looking up diffusers' base classes in the module that defines it)
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.embeddings import TimestepEmbedding
from diffusers.utils import BaseOutput
from torch import nn

from ..noise_prior import check_alpha

TEMPORAL_MODES = ("directed", "bidirectional", "none")

# UNet2DConditionModel arguments that MagicVideoUNet exposes (the Stable Diffusion 1.x / 2.x
# family). Any other argument of a source 2D model must be at its default, or inflation refuses.
UNET2D_KEYS = (
    "sample_size",
    "in_channels",
    "out_channels",
    "flip_sin_to_cos",
    "freq_shift",
    "down_block_types",
    "mid_block_type",
    "up_block_types",
    "block_out_channels",
    "layers_per_block",
    "downsample_padding",
    "mid_block_scale_factor",
    "act_fn",
    "norm_num_groups",
    "norm_eps",
    "cross_attention_dim",
    "attention_head_dim",
    "num_attention_heads",
    "use_linear_projection",
    "upcast_attention",
)


# --------------------------------------------------------------------------------------------
# 3.1.1 Video distribution adaptor (eq. 1)
# --------------------------------------------------------------------------------------------


class AdaptedConv2d(nn.Conv2d):
    """A 2D convolution shared across frames, followed by the frame-wise adaptor of eq. 1.

    Inputs are frames stacked along the batch, ``(batch * num_frames, C, H, W)`` with frames
    contiguous per video. The parameters ``adaptor_scale`` (S) and ``adaptor_bias`` (B) have shape
    ``(num_frames, out_channels)``; their state-dict keys sit next to the convolution's own
    ``weight`` and ``bias``, so the 2D weights keep the image model's key names.
    """

    def __init__(self, *args: Any, num_frames: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.num_frames = num_frames
        self.adaptor_scale = nn.Parameter(torch.ones(num_frames, self.out_channels))
        self.adaptor_bias = nn.Parameter(torch.zeros(num_frames, self.out_channels))

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, num_frames: int) -> "AdaptedConv2d":
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            num_frames=num_frames,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        new.weight = conv.weight
        new.bias = conv.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        n, c, h, w = y.shape
        y = y.view(n // self.num_frames, self.num_frames, c, h, w)
        y = torch.addcmul(self.adaptor_bias[:, :, None, None], y, self.adaptor_scale[:, :, None, None])
        return y.view(n, c, h, w)


# --------------------------------------------------------------------------------------------
# 3.1.2 Spatial and directed temporal attention (eqs. 2-4)
# --------------------------------------------------------------------------------------------


class TemporalAttention(nn.Module):
    """Multi-head self-attention over frames at each spatial position (eq. 4).

    Args:
        dim: token width (channels).
        heads: number of heads; ``dim`` must be divisible by it.
        directed: lower-triangular mask (frame p attends to q <= p) if True, else bidirectional.
        zero_init: start the output projection at zero (the branch then adds nothing).

    Input ``(batch * frames, tokens, dim)`` with ``num_frames`` given; output of the same shape.
    The query, key and value projections are one fused Linear (one GEMM instead of three).
    """

    def __init__(self, dim: int, heads: int, directed: bool = True, zero_init: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"temporal attention: dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.directed = directed
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)
        if zero_init:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, n, c = x.shape
        b = bf // num_frames
        # (b f) n c -> (b n) f c: each spatial position becomes a sequence of frames.
        x = x.view(b, num_frames, n, c).transpose(1, 2).reshape(b * n, num_frames, c)
        q, k, v = self.to_qkv(x).view(b * n, num_frames, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.directed)
        out = self.to_out(out.transpose(1, 2).reshape(b * n, num_frames, c))
        return out.view(b, n, num_frames, c).transpose(1, 2).reshape(bf, n, c)


class SpatioTemporalBlock(nn.Module):
    """A transformer block with spatial and temporal attention in parallel (eq. 2).

    Holds the image block's own modules under their own names (``norm1, attn1, norm2, attn2,
    norm3, ff``: eq. 3's LN, MHSA, LN, Cross-Attn and the feed-forward) and adds ``norm_temp`` and
    ``attn_temp`` (T-Attn). Forward::

        s = x + attn1(norm1(x));  s = s + attn2(norm2(s), text)     # S-Attn with residuals, eq. 3
        t = attn_temp(norm_temp(x))                                  # T-Attn on the same input
        x = s + t                                                    # eq. 2
        x = x + ff(norm3(x))
    """

    def __init__(self, block: BasicTransformerBlock, num_frames: int, temporal_attention: str) -> None:
        super().__init__()
        if (block.norm_type != "layer_norm" or block.pos_embed is not None or block.only_cross_attention
                or block.attn2 is None):
            raise ValueError(
                "MagicVideoUNet supports Stable Diffusion 1.x/2.x transformer blocks only "
                f"(layer_norm, cross-attention, no positional embedding); got norm_type={block.norm_type!r}"
            )
        for name in ("norm1", "attn1", "norm2", "attn2", "norm3", "ff"):
            setattr(self, name, getattr(block, name))
        self.num_frames = num_frames
        self.temporal_attention = temporal_attention
        if temporal_attention != "none":
            dim = block.dim
            self.norm_temp = nn.LayerNorm(dim, eps=block.norm1.eps)
            self.attn_temp = TemporalAttention(dim, block.num_attention_heads, directed=temporal_attention == "directed")

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        timestep: Any = None,
        cross_attention_kwargs: dict | None = None,
        class_labels: Any = None,
        added_cond_kwargs: Any = None,
    ) -> torch.Tensor:
        kwargs = dict(cross_attention_kwargs or {})
        num_frames = kwargs.pop("num_frames", self.num_frames)
        x = hidden_states
        s = x + self.attn1(self.norm1(x), attention_mask=attention_mask, **kwargs)
        # Cross-attention is per query, so the frames of a clip are folded into the token axis and
        # attend to the clip's text once: ``(b f) n c -> b (f n) c``. Same result as repeating the
        # text for every frame, with the key/value projections computed once per clip, not per frame.
        bf, n, c = s.shape
        b = encoder_hidden_states.shape[0]
        cross = self.attn2(
            self.norm2(s).reshape(b, (bf // b) * n, c),
            encoder_hidden_states=encoder_hidden_states,
            attention_mask=encoder_attention_mask,
            **kwargs,
        )
        s = s + cross.reshape(bf, n, c)
        if self.temporal_attention != "none":
            s = s + self.attn_temp(self.norm_temp(x), num_frames)
        return s + self.ff(self.norm3(s))


# --------------------------------------------------------------------------------------------
# The 3D U-Net
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class MagicVideoUNetOutput(BaseOutput):
    """``sample``: the predicted noise, ``(batch, channels, frames, height, width)``."""

    sample: torch.Tensor


class MagicVideoUNet(UNet2DConditionModel):
    """MagicVideo's key-frame denoiser: a 2D text-to-image U-Net with shared convolutions,
    frame-wise adaptors, parallel spatial/temporal attention and FPS conditioning.

    Video-specific args:
        num_frames: frames per clip F; the adaptors' S and B have F rows (16 in the paper).
        use_adaptor: follow every 2D convolution with the frame-wise adaptor (eq. 1). Ablation
            switch: False uses the shared convolutions alone.
        temporal_attention: "directed" (eq. 4, the paper's), "bidirectional" (no mask) or "none"
            (no temporal branch). Ablation switch.
        fps_conditioning: add the FPS embedding of eq. 5 to the timestep embedding.
        noise_prior: PYoCo's alpha (:mod:`magicvideo.noise_prior`): the frames' noise shares a map
            with this weight, in training (the key-frame objective reads it here) and in sampling
            (the pipeline's default); 0 is i.i.d. noise per frame. It changes no weight.
        sample_noise_prior: the alpha the pipeline samples with by default when it is not the
            trained one (None: ``noise_prior``); chosen after training, on a validation set (the
            committed shapes model: benchmarks/results/sweep_noise_prior_val_20261203.json).
        blend_residual: :class:`~magicvideo.models.InterpolationUNet` only: the model denoises the
            correction to the latent blend of its two key frames, not the frames themselves
            (:mod:`magicvideo.models.interpolation`); it changes no layer. False for a key-frame model.

    Image-model args (those of diffusers' `UNet2DConditionModel` for SD 1.x/2.x, same meaning):
        sample_size: latent side the model was trained at (64 for SD 1.5 at 512 px).
        in_channels, out_channels: latent channels (4).
        flip_sin_to_cos, freq_shift: sinusoidal timestep projection convention.
        down_block_types, mid_block_type, up_block_types: diffusers block names.
        block_out_channels: channels per level.
        layers_per_block: ResNet blocks per down level (up levels have one more).
        downsample_padding, mid_block_scale_factor: as in diffusers.
        act_fn, norm_num_groups, norm_eps: activation and GroupNorm settings.
        cross_attention_dim: width of the text embedding (768 for SD 1.x).
        attention_head_dim, num_attention_heads: head settings (SD 1.x stores the head count in
            `attention_head_dim`, a diffusers quirk kept for weight compatibility).
        use_linear_projection, upcast_attention: SD 2.x variants.

    Forward input is ``(batch, channels, frames, height, width)``; the model folds frames into
    the batch, so every frame-local operator (convolutions, GroupNorm, spatial attention) runs
    once on ``batch * frames`` images.
    """

    @register_to_config
    def __init__(
        self,
        num_frames: int = 16,
        use_adaptor: bool = True,
        temporal_attention: str = "directed",
        fps_conditioning: bool = True,
        noise_prior: float = 0.0,
        sample_noise_prior: float | None = None,
        blend_residual: bool = False,
        sample_size: int | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: tuple[str, ...] = (
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        mid_block_type: str | None = "UNetMidBlock2DCrossAttn",
        up_block_types: tuple[str, ...] = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 768,
        attention_head_dim: int | tuple[int, ...] = 8,
        num_attention_heads: int | tuple[int, ...] | None = None,
        use_linear_projection: bool = False,
        upcast_attention: bool = False,
    ) -> None:
        if temporal_attention not in TEMPORAL_MODES:
            raise ValueError(f"temporal_attention must be one of {TEMPORAL_MODES}, got {temporal_attention!r}")
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        check_alpha(noise_prior)
        if sample_noise_prior is not None:
            check_alpha(sample_noise_prior)
        super().__init__(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            flip_sin_to_cos=flip_sin_to_cos,
            freq_shift=freq_shift,
            down_block_types=tuple(down_block_types),
            mid_block_type=mid_block_type,
            up_block_types=tuple(up_block_types),
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            downsample_padding=downsample_padding,
            mid_block_scale_factor=mid_block_scale_factor,
            act_fn=act_fn,
            norm_num_groups=norm_num_groups,
            norm_eps=norm_eps,
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=attention_head_dim,
            num_attention_heads=num_attention_heads,
            use_linear_projection=use_linear_projection,
            upcast_attention=upcast_attention,
        )
        if fps_conditioning:
            # eq. 5: Linear(SiLU(Linear(Sin(nu)))), Sin being the timestep's sinusoidal projection.
            self.fps_embedding = TimestepEmbedding(
                self.time_embedding.linear_1.in_features, self.time_embedding.linear_2.out_features, act_fn=act_fn
            )
            nn.init.zeros_(self.fps_embedding.linear_2.weight)
            nn.init.zeros_(self.fps_embedding.linear_2.bias)
        _inflate_modules(self, num_frames, use_adaptor, temporal_attention)

    @classmethod
    def extract_init_dict(cls, config_dict: dict, **kwargs: Any):
        """Drop the image model's own config keys before `from_config` / `from_pretrained`:
        `UNet2DConditionModel.__init__` registers all of its arguments, so a saved config holds
        them too, but they are derived from this class's arguments and would only draw warnings."""
        return super().extract_init_dict(_without_parent_keys(cls, UNet2DConditionModel, config_dict), **kwargs)

    # ---- inflation from an image model ---------------------------------------------------

    @classmethod
    def from_unet2d(cls, unet2d: UNet2DConditionModel, num_frames: int = 16, **options: Any) -> "MagicVideoUNet":
        """Inflate a text-to-image U-Net: every 2D weight is copied; the new parameters
        (adaptors, temporal attention, FPS embedding) start so that the video model equals the
        image model applied frame by frame. `options` are the video args of this class.

        Raises ValueError naming the offending config keys or parameters if the 2D model uses
        settings this class does not expose, or if any key or shape does not match.
        """
        config = dict(unet2d.config)
        sig = inspect.signature(UNet2DConditionModel.__init__)
        unsupported = [
            k
            for k, p in sig.parameters.items()
            if k not in UNET2D_KEYS and k != "self" and k in config and _differs(config[k], p.default)
        ]
        if unsupported:
            raise ValueError(
                "cannot inflate this UNet2DConditionModel: it uses settings MagicVideoUNet does not "
                f"support: {', '.join(f'{k}={config[k]!r}' for k in unsupported)}"
            )
        kwargs = {k: config[k] for k in UNET2D_KEYS if k in config}
        model = cls(num_frames=num_frames, **kwargs, **options)
        if unet2d.dtype != model.dtype:
            model.to(dtype=unet2d.dtype)
        model.new_parameters = load_2d_weights(model, unet2d.state_dict())
        return model

    @classmethod
    def from_pretrained_2d(
        cls, path: str | Path, subfolder: str | None = "unet", num_frames: int = 16, **options: Any
    ) -> "MagicVideoUNet":
        """Inflate the U-Net of a local diffusers-format text-to-image folder (e.g. SD 1.5:
        ``PATH/unet/config.json`` + ``diffusion_pytorch_model.safetensors``)."""
        path = Path(path)
        folder = path / subfolder if subfolder else path
        if not path.is_dir():
            raise FileNotFoundError(
                f"text-to-image model folder not found: {path} (a diffusers-format Stable Diffusion 1.x "
                "folder with unet/, vae/, text_encoder/, tokenizer/, scheduler/; set model.pretrained_2d "
                "in the model config or MAGICVIDEO_SD_PATH)"
            )
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"no U-Net config at {folder / 'config.json'}: is {path} a diffusers SD folder?")
        unet2d = UNet2DConditionModel.from_pretrained(path, subfolder=subfolder)
        return cls.from_unet2d(unet2d, num_frames=num_frames, **options)

    # ---- forward ------------------------------------------------------------------------------

    def get_class_embed(self, sample: torch.Tensor, class_labels: torch.Tensor | None) -> torch.Tensor | None:
        """The FPS embedding of eq. 5 (diffusers' U-Net adds this to the timestep embedding)."""
        if not self.config.fps_conditioning:
            return None
        nu = self.time_proj(class_labels).to(dtype=sample.dtype)
        return self.fps_embedding(nu)

    def forward(  # type: ignore[override]
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        fps: torch.Tensor | float | None = None,
        return_dict: bool = True,
    ) -> MagicVideoUNetOutput | tuple[torch.Tensor]:
        """Predict the noise of every frame.

        Args:
            sample: noisy latents ``(batch, in_channels, frames, height, width)``.
            timestep: diffusion step, a scalar or one per clip ``(batch,)``.
            encoder_hidden_states: conditioning tokens ``(batch, tokens, cross_attention_dim)``, one
                set per clip
                (text embeddings, or CLIP image embeddings for unsupervised pre-training).
            fps: the clip's frame rate nu of eq. 5, a scalar or ``(batch,)``; required when
                ``fps_conditioning`` is on.
        """
        cfg = self.config
        if sample.ndim != 5:
            raise ValueError(f"sample must be (batch, channels, frames, height, width), got shape {tuple(sample.shape)}")
        b, c, f, h, w = sample.shape
        if c != cfg.in_channels:
            raise ValueError(f"sample has {c} channels, the model expects in_channels={cfg.in_channels}")
        if cfg.use_adaptor and f != cfg.num_frames:
            raise ValueError(
                f"sample has {f} frames but the frame-wise adaptors were built for num_frames={cfg.num_frames}"
            )
        if encoder_hidden_states.ndim != 3 or encoder_hidden_states.shape[0] != b:
            raise ValueError(
                f"encoder_hidden_states must be (batch={b}, tokens, dim), got {tuple(encoder_hidden_states.shape)}"
            )
        timestep = torch.as_tensor(timestep, device=sample.device)
        timestep = timestep.expand(b) if timestep.ndim == 0 else timestep
        class_labels = None
        if cfg.fps_conditioning:
            if fps is None:
                raise ValueError("this model has fps_conditioning: pass fps (the clip's frame rate, eq. 5)")
            fps = torch.as_tensor(fps, device=sample.device, dtype=torch.float32)
            class_labels = (fps.expand(b) if fps.ndim == 0 else fps).repeat_interleave(f)

        x = sample.transpose(1, 2).reshape(b * f, c, h, w)
        out = super().forward(
            x,
            timestep.repeat_interleave(f),
            encoder_hidden_states,  # one copy per clip: SpatioTemporalBlock folds frames into tokens
            class_labels=class_labels,
            cross_attention_kwargs={"num_frames": f},
            return_dict=False,
        )[0]
        out = out.view(b, f, -1, h, w).transpose(1, 2)
        return MagicVideoUNetOutput(sample=out) if return_dict else (out,)


def _without_parent_keys(cls: type, parent: type, config: dict) -> dict:
    """`config` less the keys that only `parent.__init__` takes (shared by VideoAutoencoderKL)."""
    own = set(inspect.signature(cls.__init__).parameters)
    parent_only = set(inspect.signature(parent.__init__).parameters) - own
    return {k: v for k, v in config.items() if k not in parent_only}


def _differs(value: Any, default: Any) -> bool:
    if isinstance(value, list):
        value = tuple(value)
    return value != default


def _inflate_modules(model: nn.Module, num_frames: int, use_adaptor: bool, temporal_attention: str) -> None:
    """Swap the image model's modules for their video versions, keeping every key name."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if use_adaptor and type(child) is nn.Conv2d:
                setattr(parent, name, AdaptedConv2d.from_conv(child, num_frames))
            elif type(child) is BasicTransformerBlock:
                setattr(parent, name, SpatioTemporalBlock(child, num_frames, temporal_attention))


def load_2d_weights(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Copy an image U-Net's state dict into `model`; return the names of the new parameters.

    Every 2D key must exist in the video model with the same shape; keys the video model has in
    addition must be the video additions (adaptor, temporal attention, FPS embedding).
    """
    own = model.state_dict()
    missing = sorted(k for k in state_dict if k not in own)
    mismatched = sorted(
        f"{k}: 2D {tuple(v.shape)} vs video {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and own[k].shape != v.shape
    )
    if missing or mismatched:
        lines = [f"missing in the video model: {k}" for k in missing[:10]] + mismatched[:10]
        raise ValueError(
            f"2D weights do not fit the video U-Net ({len(missing)} unknown keys, {len(mismatched)} shape "
            "mismatches):\n  " + "\n  ".join(lines)
        )
    new = sorted(k for k in own if k not in state_dict)
    unexpected = [k for k in new if not is_video_key(k)]
    if unexpected:
        raise ValueError(f"2D weights lack keys the image model should have: {', '.join(unexpected[:10])}")
    model.load_state_dict(state_dict, strict=False)
    return new


def is_video_key(key: str) -> bool:
    """Whether a state-dict key belongs to the video additions (not in the inflated image U-Net)."""
    return (
        ".adaptor_" in key
        or key.startswith("adaptor_")
        or ".attn_temp." in key
        or ".norm_temp." in key
        or key.startswith("fps_embedding.")
    )
