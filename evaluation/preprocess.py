"""From uint8 frames to each extractor's input: layout, frame count, resize protocol, value range.

Videos enter as uint8 ``[B, T, H, W, 3]`` (numpy or torch; the layout decoders and
``magicvideo.video_io`` use). Each extractor then needs:

| extractor                        | resize (default)                        | values                    |
| -------------------------------- | --------------------------------------- | ------------------------- |
| I3D, ``i3d_pretrained_400.pt``   | shorter side to 224 + centre crop       | float ``x/255`` -> [-1, 1]|
|   (VideoGPT/TATS/common_metrics)  | (bilinear, align_corners=False, no AA)  | ``[B, 3, T, 224, 224]``   |
| I3D, StyleGAN-V TorchScript      | none: the detector resizes (resize=True)| uint8 ``[B, 3, T, H, W]``, |
|                                  |                                         | detector rescales         |
| Inception-v3 (FID)               | none: the network resizes to 299 (TF1)  | uint8 ``[N, 3, H, W]``     |
| CLIP (CLIPSIM)                   | CLIPProcessor: short side 224 bicubic,  | CLIP mean/std             |
|                                  | centre crop                             |                           |

Resize protocols (``resize_frames``), chosen per benchmark protocol (``evaluation.protocols``):
- ``"squash"``: both sides to ``size`` (aspect ratio not kept), bilinear with half-pixel centres
  (``F.interpolate(align_corners=False)``, as PyTorch and TF2 ``tf.image.resize``);
- ``"squash_tf1"``: both sides to ``size`` with TF1 ``tf.image.resize_bilinear`` (``align_corners=False``,
  *no* half-pixel centres: source = destination * in/out) -- the original FVD's
  (google-research ``frechet_video_distance.preprocess``) and the original FID's resize;
- ``"squash_antialias"`` / ``"squash_bicubic"``: both sides to ``size``, bilinear / bicubic with antialiasing
  (as PIL and clean-fid resize): no reference FVD uses them; the convention table shows what they change;
- ``"short_side_crop"``: shorter side to ``size`` (other side ``ceil``), then a centre crop starting
  at ``(side - size) // 2`` -- VideoGPT's ``preprocess_single``;
- ``"center_crop"``: the central ``min(H, W)`` square, no interpolation;
- ``"none"``: frames unchanged.
No antialiasing in any reference protocol.

Requantisation before I3D (``REQUANTIZE``): ``"none"``, or ``"videogpt"``: VideoGPT's own evaluation
(``scripts/compute_fvd.py``) gets its real clips from its data loader in [-0.5, 0.5] (``x / 255 - 0.5`` in
float32) and turns them back into uint8 with ``((x + 0.5) * 255).astype(uint8)``, which truncates: 63 of the
256 levels come back one lower (``requantize_videogpt``). Every I3D input is then ``2 x / 255 - 1`` in [-1, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

RESIZE_MODES = ("squash", "squash_tf1", "squash_antialias", "squash_bicubic", "short_side_crop", "center_crop", "none")
REQUANTIZE = ("none", "videogpt")


def as_videos(videos) -> torch.Tensor:
    """uint8 ``[B, T, H, W, 3]`` torch tensor from numpy/torch; grayscale ``[..., 1]`` repeated to RGB."""
    if isinstance(videos, np.ndarray):
        videos = torch.from_numpy(videos)
    if not isinstance(videos, torch.Tensor):
        raise TypeError(f"videos must be a numpy array or torch tensor, got {type(videos).__name__}")
    if videos.dtype != torch.uint8:
        raise ValueError(
            f"videos must be uint8 [B, T, H, W, 3], got {videos.dtype}; convert float frames with "
            "float_to_uint8 first"
        )
    if videos.ndim != 5 or videos.shape[-1] not in (1, 3):
        raise ValueError(f"videos must be [B, T, H, W, 3] (channels last), got shape {tuple(videos.shape)}")
    if videos.shape[-1] == 1:  # StyleGAN-V repeats a single channel to three
        videos = videos.expand(*videos.shape[:-1], 3)
    return videos


def check_frames(videos: torch.Tensor, num_frames: int | None = None, min_frames: int | None = None) -> None:
    """Raise if the clips do not have exactly ``num_frames`` (or at least ``min_frames``) frames."""
    t = videos.shape[1]
    if num_frames is not None and t != num_frames:
        raise ValueError(f"the protocol needs clips of exactly {num_frames} frames, got {t}")
    if min_frames is not None and t < min_frames:
        raise ValueError(f"the extractor needs at least {min_frames} frames per clip, got {t}")


def float_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Frames in [-1, 1] to uint8 as StyleGAN-V's generator loop: ``(x * 127.5 + 128).clamp(0, 255)``, truncated.

    (For x >= -1 this equals rounding ``(x + 1) * 127.5`` half up.)
    """
    return (x * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def resize_bilinear_tf1(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize as TensorFlow 1.x ``resize_bilinear(align_corners=False)``, float ``[N, C, H, W]``.

    Source coordinate = destination index * (in / out), no half-pixel offset; neighbours clamped at
    the border. Coordinates in float32 and the interpolation order as torch-fidelity's
    ``interpolate_bilinear_2d_like_tensorflow1x`` ('slow' method), so results match it bit for bit.
    Hand-written: no PyTorch op has TF1's legacy (non-half-pixel) sampling grid.
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    in_h, in_w = x.shape[-2:]

    def axis(n_out: int, n_in: int):
        pos = torch.arange(n_out, dtype=torch.float32, device=x.device) * torch.tensor(n_in / n_out, dtype=torch.float32)
        lo = pos.long()
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, (pos - lo.float()).to(x.dtype)

    y_lo, y_hi, dy = axis(out_h, in_h)
    x_lo, x_hi, dx = axis(out_w, in_w)
    top, bottom = x.index_select(-2, y_lo), x.index_select(-2, y_hi)
    tl, tr = top.index_select(-1, x_lo), top.index_select(-1, x_hi)
    bl, br = bottom.index_select(-1, x_lo), bottom.index_select(-1, x_hi)
    t = tl + (tr - tl) * dx.view(1, 1, 1, out_w)
    b = bl + (br - bl) * dx.view(1, 1, 1, out_w)
    return t + (b - t) * dy.view(1, 1, out_h, 1)


def resize_frames(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Resize float frames ``[N, C, H, W]`` by one of ``RESIZE_MODES`` (see the module docstring)."""
    h, w = x.shape[-2:]
    if mode == "none":
        return x
    if mode == "squash":
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    if mode in ("squash_antialias", "squash_bicubic"):
        filt = "bicubic" if mode == "squash_bicubic" else "bilinear"
        return F.interpolate(x, size=(size, size), mode=filt, align_corners=False, antialias=True)
    if mode == "squash_tf1":
        return resize_bilinear_tf1(x, size) if x.shape[-2:] != (size, size) else x
    if mode == "center_crop":
        s = min(h, w)
        return x[..., (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    if mode == "short_side_crop":
        scale = size / min(h, w)
        target = (size, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), size)
        x = F.interpolate(x, size=target, mode="bilinear", align_corners=False, antialias=False)
        h, w = x.shape[-2:]
        top, left = (h - size) // 2, (w - size) // 2
        return x[..., top : top + size, left : left + size]
    raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")


def _frames_float(videos: torch.Tensor, device) -> tuple[torch.Tensor, int, int]:
    b, t = videos.shape[:2]
    x = videos.to(device, non_blocking=True).permute(0, 1, 4, 2, 3).reshape(b * t, 3, *videos.shape[2:4])
    return x.float(), b, t


def requantize_videogpt(videos: torch.Tensor) -> torch.Tensor:
    """uint8 clips through VideoGPT's loader-and-back round trip: float32 ``x / 255 - 0.5``, then
    ``(x + 0.5) * 255`` truncated to uint8 (``scripts/compute_fvd.py``); some levels drop by one."""
    x = videos.float() / 255.0 - 0.5
    return ((x + 0.5) * 255).to(torch.uint8)


def i3d_input(videos, resize: str = "short_side_crop", size: int = 224, device="cpu",
              requantize: str = "none") -> torch.Tensor:
    """I3D input: float ``[B, 3, T, size, size]`` in [-1, 1] from uint8 ``[B, T, H, W, 3]``.

    ``x / 255``, resize in float (no re-quantisation), then ``(x - 0.5) * 2`` (VideoGPT's order; the
    TF-Hub FVD resizes 0..255 values and then takes ``2 x / 255 - 1``: both are linear, so the two differ
    by float32 rounding only). ``requantize="videogpt"`` first applies ``requantize_videogpt``.
    """
    if requantize not in REQUANTIZE:
        raise ValueError(f"requantize must be one of {REQUANTIZE}, got {requantize!r}")
    videos = as_videos(videos)
    if requantize == "videogpt":
        videos = requantize_videogpt(videos)
    x, b, t = _frames_float(videos, device)
    x = resize_frames(x / 255.0, size, resize)
    if x.shape[-2:] != (size, size):
        raise ValueError(f"after resize mode {resize!r} frames are {tuple(x.shape[-2:])}, I3D needs {size}x{size}")
    x = (x - 0.5) * 2
    return x.reshape(b, t, 3, size, size).permute(0, 2, 1, 3, 4).contiguous()


def stylegan_i3d_input(videos, resize: str = "none", size: int = 224, device="cpu") -> torch.Tensor:
    """StyleGAN-V's detector input: uint8 ``[B, 3, T, H, W]`` (``images.permute(0, 2, 1, 3, 4)``).

    With ``resize != "none"`` frames are resized in float and rounded back to uint8.
    """
    videos = as_videos(videos)
    if resize != "none":
        x, b, t = _frames_float(videos, device)
        x = resize_frames(x, size, resize).round().clamp(0, 255).to(torch.uint8)
        videos = x.reshape(b, t, 3, *x.shape[-2:]).permute(0, 1, 3, 4, 2)
    return videos.to(device).permute(0, 4, 1, 2, 3).contiguous()


def inception_input(videos, resize: str = "none", size: int = 299, device="cpu") -> torch.Tensor:
    """Every frame as uint8 ``[B*T, 3, H, W]`` for the FID Inception (which resizes to 299 itself)."""
    videos = as_videos(videos)
    b, t, h, w, _ = videos.shape
    x = videos.to(device).permute(0, 1, 4, 2, 3).reshape(b * t, 3, h, w)
    if resize == "none":
        return x.contiguous()
    if resize == "center_crop":
        return resize_frames(x, size, resize).contiguous()
    return resize_frames(x.float(), size, resize).round().clamp(0, 255).to(torch.uint8)
