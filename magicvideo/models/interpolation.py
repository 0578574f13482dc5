"""MagicVideo's frame-interpolation U-Net (arXiv 2211.11018, section 3.2).

"A separate frame-interpolation network synthesises unseen frames between two adjacent key
frames ... trained in the latent space under a similar pipeline as the key frame generation ...
conditioned on the adjacent two frames": their CLIP image embeddings go into the cross-attention
and their latents are concatenated to the noise; the U-Net is initialised from the key-frame
model; it predicts 3 new frames between each pair of adjacent key frames (16 -> 61 frames).

`InterpolationUNet` is a :class:`~magicvideo.models.unet.MagicVideoUNet` (same 3D U-Net code,
same config keys) run on a window of ``num_frames = 5`` latent frames: the two key frames at
window positions 0 and 4 and the 3 new frames between them. Its layout follows from the config:

- ``out_channels = C``: the latent channels it denoises (4);
- ``in_channels = 2C + 1``: the noisy window (C), the key frames' latents placed at their window
  positions with zeros at the new positions (C), and a mask channel that is 1 at the key-frame
  positions and 0 elsewhere. The mask says where the concatenated latents are given (an
  all-zero latent is a legitimate latent value, so zeros alone do not say "absent"); it costs
  one input channel of the first convolution. ``in_channels = 2C`` (no mask) is accepted too;
- ``num_frames = 5``: the window; ``num_frames - 2`` new frames per key-frame pair.

The conditioning tokens are the two key frames' CLIP image embeddings, one token each,
``(windows, 2, cross_attention_dim)``. The FPS condition (eq. 5) is the frame rate of the
output: the key frames' nu times ``num_frames - 1`` (x4).

Temporal attention. The key-frame model's directed mask lets frame p see frames q <= p only; in
an interpolation window the new frames would then never see the right-hand key frame's latent
(frame 4), only its CLIP embedding. `from_keyframe_unet` therefore switches the temporal
attention to ``bidirectional`` by default (same weights, no mask); ``temporal_attention=
"directed"`` keeps the key-frame model's mask. The paper does not say which it used.

Residual over the latent blend (``blend_residual``, :meth:`from_keyframe_unet` ``residual=True``).
The plain model denoises the whole window, so everything it outputs is generated: trained on a
small budget it lost to plain linear blending of the two key latents on PSNR and FVD (BENCHMARKS.md,
"Cascade"), although the blend is in its reach. With ``blend_residual`` the diffused variable is the
window minus :func:`latent_blend` of its key frames (zero at the key positions), the sampler adds
the blend back, and the last convolution starts at zero, so an untrained model's one-step sample is
the blend and training only has to learn what blending lacks (motion along a path instead of a
cross-fade). This is SRDiff's idea for super-resolution (Li et al. 2022, "SRDiff: single image
super-resolution with diffusion probabilistic models": diffuse the residual over the upsampled
input; the shapes upsampler does the same over bicubic) carried to the time axis; the diffusion,
its scheduler and the samplers stay the standard ones. The caller (trainer, pipeline) subtracts
and adds the blend; the model's forward is the same.

All windows of all clips run as one batch: a clip of K key frames gives K - 1 windows, and a
batch of B clips one forward of ``B (K - 1)`` windows (:func:`keyframe_pairs`,
:func:`insert_frames`, :func:`pair_tokens`), never a Python call per pair.
"""

from __future__ import annotations

import torch
from diffusers import ModelMixin  # noqa: F401  (DiffusionPipeline.from_pretrained finds a component's
# loader by looking up diffusers' base classes in the module that defines it)

from .unet import MagicVideoUNet, MagicVideoUNetOutput

#: window length of the paper's interpolation model: 2 key frames + 3 new frames between them
WINDOW = 5
#: the pipeline's and the eval flow's default interpolation step count: on real shapes clips 4 DDIM
#: steps beat 25 on FVD-61 and PSNR for both the plain and the residual model, at a fifth of the time
#: (BENCHMARKS.md, Cascade; checkpoints/shapes/README.md, "Frame interpolation")
DEFAULT_STEPS = 4


class InterpolationUNet(MagicVideoUNet):
    """The interpolation denoiser: a :class:`MagicVideoUNet` on 5-frame windows whose input is
    the noisy window, the two key frames' latents at window positions 0 and 4, and a mask channel
    (module docstring). Build it from a trained key-frame model with :meth:`from_keyframe_unet`;
    ``from_pretrained`` / ``save_pretrained`` work as for any diffusers model.

    Forward: ``unet(sample, t, tokens, fps=nu_out, keyframes=pair)`` with ``sample`` the noisy
    window ``(N, C, 5, h, w)``, ``pair`` the two key frames' clean (scaled) latents
    ``(N, C, 2, h, w)``, ``tokens`` their CLIP image embeddings ``(N, 2, D)``; returns the noise
    prediction for all 5 positions (the key-frame positions' predictions are not used).
    """

    # ---- layout (derived from the config, see the module docstring) -----------------------

    @property
    def window(self) -> int:
        return self.config.num_frames

    @property
    def new_frames(self) -> int:
        """New frames between two key frames (3 for the paper's 5-frame window)."""
        return self.config.num_frames - 2

    @property
    def latent_channels(self) -> int:
        return self.config.out_channels

    @property
    def residual(self) -> bool:
        """Whether the model denoises the correction to the latent blend (module docstring)."""
        return bool(self.config.blend_residual)

    def reference(self, keyframes: torch.Tensor) -> torch.Tensor:
        """What the denoised variable is measured from, ``(N, C, window, h, w)`` for a key-frame pair
        ``(N, C, 2, h, w)``: the pair's :func:`latent_blend` for a residual model, zeros otherwise.
        The window is ``denoised + reference``."""
        if self.residual:
            return latent_blend(keyframes, self.window)
        n, c, _, h, w = keyframes.shape
        return keyframes.new_zeros(n, c, self.window, h, w)

    @property
    def mask_channel(self) -> bool:
        extra = self.config.in_channels - 2 * self.config.out_channels
        if extra not in (0, 1) or self.config.num_frames < 3:
            raise ValueError(
                f"not an interpolation layout: in_channels={self.config.in_channels} must be 2 * out_channels "
                f"(+1 for the mask) = {2 * self.config.out_channels} or {2 * self.config.out_channels + 1}, "
                f"num_frames={self.config.num_frames} must be >= 3"
            )
        return bool(extra)

    # ---- initialisation from the key-frame model -------------------------------------------

    @classmethod
    def from_keyframe_unet(
        cls,
        unet: MagicVideoUNet,
        window: int = WINDOW,
        mask_channel: bool = True,
        temporal_attention: str | None = "bidirectional",
        residual: bool = False,
    ) -> "InterpolationUNet":
        """An interpolation U-Net holding every weight of the key-frame model `unet`.

        - ``conv_in``'s weight gains input channels for the key-frame latents (and the mask),
          initialised at zero: the new model starts as the key-frame model on the noisy window,
          and the conditioning's influence is learned from there;
        - the frame-wise adaptors (eq. 1) keep their first `window` rows (frame positions
          0..window-1 of a key-frame clip; rows past a shorter key-frame model's get the mean
          of its rows);
        - `temporal_attention`: "bidirectional" (default, see the module docstring), "directed",
          or None to keep the key-frame model's mode. "none" is only possible when the key-frame
          model has no temporal attention either;
        - `residual`: denoise the correction to the latent blend (``blend_residual``, module
          docstring); ``conv_out`` (and its adaptor's bias) then starts at zero, so the untrained
          model's prediction is 0.

        With ``temporal_attention="directed"`` the result equals the key-frame model on the
        first `window` frames of a clip (zero new channels, causal attention), which the tests
        check.
        """
        src = dict(unet.config)
        c = src["out_channels"]
        if src["in_channels"] != c:
            raise ValueError(f"expected a key-frame U-Net (in_channels == out_channels), got {src['in_channels']} vs {c}")
        if window < 3:
            raise ValueError(f"window must be >= 3 (2 key frames and at least one new frame), got {window}")
        mode = temporal_attention or src["temporal_attention"]
        if (mode == "none") != (src["temporal_attention"] == "none"):
            raise ValueError(
                f"cannot switch temporal attention from {src['temporal_attention']!r} to {mode!r}: the layers "
                "would have to be created or dropped"
            )
        config = {k: v for k, v in src.items() if not k.startswith("_")}
        config.update(num_frames=window, in_channels=2 * c + int(mask_channel), temporal_attention=mode,
                      noise_prior=0.0, sample_noise_prior=None,  # its own trainer and sampler draw i.i.d. noise
                      blend_residual=bool(residual))
        model = cls.from_config(config)
        state = {}
        for key, value in unet.state_dict().items():
            if key == "conv_in.weight":
                extra = value.new_zeros(value.shape[0], c + int(mask_channel), *value.shape[2:])
                value = torch.cat([value, extra], dim=1)
            elif key.endswith((".adaptor_scale", ".adaptor_bias")):
                rows = value[:window]
                if window > len(value):  # a key-frame model of fewer frames than the window: mean row
                    rows = torch.cat([rows, value.mean(0, keepdim=True).expand(window - len(value), -1)])
                value = rows
            state[key] = value
        model.load_state_dict(state)  # strict: every key of both models
        if residual:  # the untrained residual model returns the latent blend (module docstring)
            for name in ("weight", "bias", "adaptor_bias"):  # the frame-wise adaptor's bias too (eq. 1)
                if getattr(model.conv_out, name, None) is not None:
                    torch.nn.init.zeros_(getattr(model.conv_out, name))
        if model.dtype != unet.dtype:
            model.to(dtype=unet.dtype)
        return model.to(unet.device)

    # ---- forward --------------------------------------------------------------------------

    def condition_channels(self, keyframes: torch.Tensor) -> torch.Tensor:
        """The concatenated input: key-frame pair ``(N, C, 2, h, w)`` -> ``(N, C (+1), window, h, w)``
        with the pair at positions 0 and window-1, zeros between, and the mask channel."""
        n, c, two, h, w = keyframes.shape
        if two != 2 or c != self.latent_channels:
            raise ValueError(
                f"keyframes must be (windows, {self.latent_channels}, 2, height, width), got {tuple(keyframes.shape)}"
            )
        cond = keyframes.new_zeros(n, c, self.window, h, w)
        cond[:, :, 0], cond[:, :, -1] = keyframes[:, :, 0], keyframes[:, :, 1]
        if not self.mask_channel:
            return cond
        mask = keyframes.new_zeros(n, 1, self.window, h, w)
        mask[:, :, 0] = mask[:, :, -1] = 1
        return torch.cat([cond, mask], dim=1)

    def forward(  # type: ignore[override]
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        fps: torch.Tensor | float | None = None,
        keyframes: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> MagicVideoUNetOutput | tuple[torch.Tensor]:
        """Predict the noise of every window position.

        Args:
            sample: noisy window latents ``(N, C, window, h, w)``.
            timestep: diffusion step, scalar or ``(N,)``.
            encoder_hidden_states: the two key frames' CLIP image embeddings ``(N, 2, D)`` (any
                token count is accepted).
            fps: the output frame rate (key frames' nu x (window - 1)), scalar or ``(N,)``.
            keyframes: the two key frames' clean scaled latents ``(N, C, 2, h, w)``; required.
        """
        if keyframes is None:
            raise ValueError("InterpolationUNet needs keyframes: the two key frames' latents (N, C, 2, h, w)")
        if sample.ndim != 5 or sample.shape[1] != self.latent_channels or sample.shape[2] != self.window:
            raise ValueError(
                f"sample must be (windows, {self.latent_channels}, {self.window}, height, width), got {tuple(sample.shape)}"
            )
        if keyframes.shape[0] != sample.shape[0] or keyframes.shape[-2:] != sample.shape[-2:]:
            raise ValueError(f"keyframes {tuple(keyframes.shape)} do not match sample {tuple(sample.shape)}")
        x = torch.cat([sample, self.condition_channels(keyframes.to(sample.dtype))], dim=1)
        return super().forward(x, timestep, encoder_hidden_states, fps=fps, return_dict=return_dict)


# ---- batched windows ------------------------------------------------------------------------


def interpolated_length(num_keyframes: int, new_frames: int = WINDOW - 2) -> int:
    """Frames after interpolation: ``K + (K - 1) * new_frames`` (16 -> 61)."""
    return num_keyframes + (num_keyframes - 1) * new_frames


def latent_blend(keyframes: torch.Tensor, window: int = WINDOW) -> torch.Tensor:
    """Linear blending of each key-frame pair across its window: ``(N, C, 2, h, w)`` ->
    ``(N, C, window, h, w)``, position ``j`` is ``left (1 - j / (window - 1)) + right j / (window - 1)``
    (the key frames themselves, exactly, at 0 and ``window - 1``)."""
    left, right = keyframes[:, :, :1], keyframes[:, :, 1:2]
    j = (torch.arange(window, device=keyframes.device, dtype=keyframes.dtype) / (window - 1)).view(1, 1, window, 1, 1)
    return left * (1 - j) + right * j  # this form is exact at both ends


def keyframe_pairs(latents: torch.Tensor) -> torch.Tensor:
    """Every pair of adjacent key frames as a batch of windows:
    ``(B, C, K, h, w)`` -> ``(B (K-1), C, 2, h, w)``, clip-major (clip b's pairs are rows
    ``b (K-1) .. (b+1)(K-1) - 1``, in time order)."""
    if latents.ndim != 5 or latents.shape[2] < 2:
        raise ValueError(f"key-frame latents must be (batch, channels, frames >= 2, h, w), got {tuple(latents.shape)}")
    b, c, k, h, w = latents.shape
    pairs = torch.stack([latents[:, :, :-1], latents[:, :, 1:]], dim=3)  # (B, C, K-1, 2, h, w)
    return pairs.transpose(1, 2).reshape(b * (k - 1), c, 2, h, w)


def pair_tokens(embeds: torch.Tensor) -> torch.Tensor:
    """Per-frame CLIP embeddings ``(B, K, D)`` -> each adjacent pair's two tokens ``(B (K-1), 2, D)``
    (same row order as :func:`keyframe_pairs`)."""
    b, k, d = embeds.shape
    return torch.stack([embeds[:, :-1], embeds[:, 1:]], dim=2).reshape(b * (k - 1), 2, d)


def insert_frames(keyframes: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """Put each window's new frames between its key frames.

    keyframes ``(B, C, K, h, w)``, windows ``(B (K-1), C, W, h, w)`` (rows as
    :func:`keyframe_pairs`) -> ``(B, C, K + (K-1)(W-2), h, w)``. The key frames are taken from
    `keyframes` (exactly), the new frames from window positions 1..W-2."""
    b, c, k, h, w = keyframes.shape
    n, _, win, _, _ = windows.shape
    if n != b * (k - 1):
        raise ValueError(f"{n} windows for {b} clips of {k} key frames (expected {b * (k - 1)})")
    new = windows[:, :, 1:-1].reshape(b, k - 1, c, win - 2, h, w)
    left = keyframes[:, :, :-1].transpose(1, 2).unsqueeze(3)  # (B, K-1, C, 1, h, w)
    segments = torch.cat([left, new.to(keyframes.dtype)], dim=3)  # (B, K-1, C, W-1, h, w)
    body = segments.permute(0, 2, 1, 3, 4, 5).reshape(b, c, (k - 1) * (win - 1), h, w)
    return torch.cat([body, keyframes[:, :, -1:]], dim=2)


def window_frames(video: torch.Tensor, starts: torch.Tensor, spacing: torch.Tensor, window: int = WINDOW) -> torch.Tensor:
    """Frames ``starts + spacing * arange(window)`` of each clip: ``(B, C, T, ...)`` -> ``(B, C, window, ...)``
    (one gather; `starts`, `spacing` are ``(B,)`` integer tensors)."""
    idx = starts[:, None] + spacing[:, None] * torch.arange(window, device=starts.device)  # (B, window)
    if int(idx.max()) >= video.shape[2] or int(idx.min()) < 0:
        raise ValueError(f"window indices up to {int(idx.max())} exceed the clip's {video.shape[2]} frames")
    gather = idx.view(video.shape[0], 1, window, *([1] * (video.ndim - 3)))
    return torch.gather(video, 2, gather.expand(video.shape[0], video.shape[1], window, *video.shape[3:]))


__all__ = ["DEFAULT_STEPS", "InterpolationUNet", "WINDOW", "insert_frames", "interpolated_length", "keyframe_pairs", "latent_blend",
           "pair_tokens", "window_frames"]  # fmt: skip
