"""The image-to-video U-Net of Magic 1-For-1 (text -> image -> video): a key-frame model
conditioned on a first frame.

Magic 1-For-1 (arXiv 2502.07701) splits text-to-video into a text-to-image step and an
image-to-video step, and conditions the video model on the image in two ways ("multi-modal
prior injection"): the image's VAE latent is concatenated to the noise, and its semantic
embedding goes into the cross-attention beside the text. Here:

- ``in_channels = 2C + 1``: the noisy clip (C), the conditioning frames' clean (scaled) latents
  placed at their own positions, zeros elsewhere (C), and a mask channel (1 where a latent is
  given). The condition is the first ``k`` frames of the window, ``1 <= k < num_frames``: ``k = 1``
  is image-to-video (the first frame only, the paper's setting); ``k > 1`` continues a clip from
  its last ``k`` frames (the sliding-window long video, :mod:`magicvideo.long_video`). The latent
  is given at those positions only, not broadcast to every frame: a frame that is not the image
  should not be told it is, and the mask says which positions carry it (a zero latent is a
  legitimate value, so zeros alone do not say "absent").
- Priors injected into the cross-attention: the text tokens (the key-frame model's condition,
  CLIP text encoder) and the CLIP image embedding of the first frame (the pipeline's
  ``image_encoder``, projected width = ``cross_attention_dim``), appended as one more token:
  ``(B, L + 1, D)``. Classifier-free guidance's null conditions are the empty prompt and an
  all-zero image token (:mod:`magicvideo.training.i2v` drops them independently in training).
- Initialised from the key-frame model (:meth:`ImageToVideoUNet.from_keyframe_unet`): every
  weight is kept and the new ``conv_in`` input channels start at zero, so with text tokens alone
  the new model predicts exactly what the key-frame model does, whatever the conditioning
  latents (tested). The appended image token is not gated: at init it only adds one key/value
  pair to the cross-attention's softmax; its use is learned.
- Temporal attention stays the key-frame model's (directed, eq. 4): the conditioning frames come
  first, so every generated frame can attend to them.
"""

from __future__ import annotations

import torch
from diffusers import ModelMixin  # noqa: F401  (DiffusionPipeline.from_pretrained finds a component's
# loader by looking up diffusers' base classes in the module that defines it)

from .unet import MagicVideoUNet, MagicVideoUNetOutput


class ImageToVideoUNet(MagicVideoUNet):
    """A :class:`MagicVideoUNet` whose input is the noisy clip, the conditioning frames' latents at
    positions ``0..k-1`` and a mask channel (module docstring). Build it from a trained key-frame
    model with :meth:`from_keyframe_unet`; ``from_pretrained`` / ``save_pretrained`` as any model.

    Forward: ``unet(sample, t, tokens, fps=nu, frames=z)`` with ``sample`` ``(B, C, F, h, w)``,
    ``z`` the clean scaled latents of the first ``k`` frames ``(B, C, k, h, w)``, ``tokens`` the
    text tokens with the image token appended (:meth:`condition_tokens`).
    """

    @property
    def latent_channels(self) -> int:
        return self.config.out_channels

    @property
    def window(self) -> int:
        return self.config.num_frames

    @property
    def mask_channel(self) -> bool:
        extra = self.config.in_channels - 2 * self.config.out_channels
        if extra not in (0, 1):
            raise ValueError(f"not an image-to-video layout: in_channels={self.config.in_channels} must be "
                             f"2 * out_channels (+1 for the mask) = {2 * self.config.out_channels}(+1)")  # fmt: skip
        return bool(extra)

    @classmethod
    def from_keyframe_unet(cls, unet: MagicVideoUNet, mask_channel: bool = True) -> "ImageToVideoUNet":
        """An I2V U-Net holding every weight of the key-frame model `unet`, with ``conv_in``'s new
        input channels (the conditioning latents and the mask) at zero."""
        src = dict(unet.config)
        c = src["out_channels"]
        if src["in_channels"] != c:
            raise ValueError(f"expected a key-frame U-Net (in_channels == out_channels), got {src['in_channels']} vs {c}")
        config = {k: v for k, v in src.items() if not k.startswith("_")}
        config.update(in_channels=2 * c + int(mask_channel), noise_prior=0.0,
                      sample_noise_prior=None)  # its own trainer draws i.i.d. noise
        model = cls.from_config(config)
        state = dict(unet.state_dict())
        w = state["conv_in.weight"]
        state["conv_in.weight"] = torch.cat([w, w.new_zeros(w.shape[0], c + int(mask_channel), *w.shape[2:])], dim=1)
        model.load_state_dict(state)  # strict: every key of both models
        if model.dtype != unet.dtype:
            model.to(dtype=unet.dtype)
        return model.to(unet.device)

    @staticmethod
    def condition_tokens(text: torch.Tensor, image_embeds: torch.Tensor | None) -> torch.Tensor:
        """The cross-attention's priors: text tokens ``(B, L, D)`` and the first frame's CLIP image
        embedding ``(B, D)`` or ``(B, 1, D)`` -> ``(B, L + 1, D)`` (text alone when None)."""
        if image_embeds is None:
            return text
        img = image_embeds[:, None] if image_embeds.ndim == 2 else image_embeds
        if img.ndim != 3 or img.shape[0] != text.shape[0] or img.shape[-1] != text.shape[-1]:
            raise ValueError(f"image embeddings {tuple(image_embeds.shape)} do not fit text tokens {tuple(text.shape)} "
                             "(need (batch, dim) with dim = the U-Net's cross_attention_dim)")  # fmt: skip
        return torch.cat([text, img.to(text.dtype)], dim=1)

    def condition_channels(self, frames: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Conditioning latents ``(B, C, k, h, w)`` -> ``(B, C (+1), num_frames, h, w)``: the latents at
        positions ``0..k-1``, zeros after, and the mask channel."""
        b, c, k, h, w = frames.shape
        if c != self.latent_channels or not 1 <= k < num_frames:
            raise ValueError(f"frames must be (batch, {self.latent_channels}, k, h, w) with 1 <= k < {num_frames}, "
                             f"got {tuple(frames.shape)}")  # fmt: skip
        cond = frames.new_zeros(b, c, num_frames, h, w)
        cond[:, :, :k] = frames
        if not self.mask_channel:
            return cond
        mask = frames.new_zeros(b, 1, num_frames, h, w)
        mask[:, :, :k] = 1
        return torch.cat([cond, mask], dim=1)

    def forward(  # type: ignore[override]
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        fps: torch.Tensor | float | None = None,
        frames: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> MagicVideoUNetOutput | tuple[torch.Tensor]:
        """Predict the noise (or v) of every frame; `frames`: the first k frames' clean scaled
        latents ``(B, C, k, h, w)`` (required)."""
        if frames is None:
            raise ValueError("ImageToVideoUNet needs frames: the conditioning frames' latents (batch, C, k, h, w)")
        if sample.ndim != 5 or sample.shape[1] != self.latent_channels:
            raise ValueError(f"sample must be (batch, {self.latent_channels}, frames, h, w), got {tuple(sample.shape)}")
        if frames.ndim != 5 or frames.shape[0] != sample.shape[0] or frames.shape[-2:] != sample.shape[-2:]:
            raise ValueError(f"frames {tuple(frames.shape)} do not match sample {tuple(sample.shape)}")
        x = torch.cat([sample, self.condition_channels(frames.to(sample.dtype), sample.shape[2])], dim=1)
        return super().forward(x, timestep, encoder_hidden_states, fps=fps, return_dict=return_dict)


def first_frame_unet(unet: MagicVideoUNet) -> MagicVideoUNet:
    """The key-frame model restricted to frame 0: the same weights with ``num_frames = 1`` and the
    adaptors' first row. Under directed temporal attention (or none) frame 0 of a clip depends on
    frame 0 only (convolutions, norms and spatial attention are per frame; the causal mask lets it
    see itself alone), so this is exactly frame 0 of the key-frame model: a text-to-image model,
    magic141's fallback when a pipeline has no ``t2i_unet``. Refused for bidirectional attention."""
    if unet.config.temporal_attention == "bidirectional":
        raise ValueError("the key-frame model's frame 0 is an image model only under directed (or no) temporal "
                         "attention; this one is bidirectional: add a t2i_unet to the pipeline")  # fmt: skip
    config = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
    model = MagicVideoUNet.from_config({**config, "num_frames": 1})
    state = {k: (v[:1] if k.endswith((".adaptor_scale", ".adaptor_bias")) else v) for k, v in unet.state_dict().items()}
    model.load_state_dict(state)
    if model.dtype != unet.dtype:
        model.to(dtype=unet.dtype)
    return model.to(unet.device).eval()


__all__ = ["ImageToVideoUNet", "first_frame_unet"]
