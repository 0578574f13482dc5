"""Magic 1-For-1 generation modes of :class:`~magicvideo.pipeline.MagicVideoPipeline`'s key-frame
stage: text -> image -> video (``mode="magic141"``), image-to-video through the I2V model, and
sliding-window long videos (``num_frames`` > the model's 16-frame window).

**magic141.** Frame 0 comes from a text-to-image model: the pipeline's ``t2i_unet`` (a diffusers
``UNet2DConditionModel``, the shapes chain's ``t2i`` stage) when it has one; otherwise the key-frame
U-Net restricted to frame 0 (:func:`~magicvideo.models.i2v.first_frame_unet`: under directed
temporal attention that *is* frame 0 of the key-frame model, an image model). Then the clip is
made from that frame as in image-to-video.

**Image-to-video.** With an ``i2v`` component (:class:`~magicvideo.models.ImageToVideoUNet`) the
first frame's latent is concatenated to the noise (with the mask channel) and its CLIP image
embedding (``image_encoder``) is appended to the text tokens; frame 0 is held at the image latent
re-noised to each step's level and is the image latent exactly at the end. Without ``i2v`` the
pipeline's latent-replacement method is used (:meth:`MagicVideoPipeline.image_to_video`: frame 0
held fixed, the key-frame model's directed attention carries it forward).

**Sliding window** (the choice, documented): a clip of N frames is made window by window; window
``i > 0`` is 16 frames whose first ``overlap`` frames are the previous window's last ``overlap``
frames (clean latents), held fixed. Three ways (``window_method``):

- ``"held"`` (default): the key-frame model's directed attention with those frames replaced by
  their re-noised latents before every step (the held frames come first and never see the new
  ones), as inpainting does;
- ``"anchored"``: as ``"held"``, with the clip's first frame held too, at window position 0 before
  the ``overlap`` frames (so every window sees where the clip began, not only where the last one
  ended; each window then adds ``15 - overlap`` frames). Tried against shape drift (under directed
  attention every new frame attends to the held ones, and the first frame carries the shape and
  colour the prompt asked for); it did not reduce drift: 0.750 of windows against 0.758 held, 32
  clips of 60 s on an H200 (0.79 against 0.72 over 16 clips of 20 s on the CPU);
- ``"i2v"``: through the I2V model (``k = overlap`` conditioning frames concatenated to the noise,
  the image token being the CLIP embedding of the clip's first frame, an anchor against drift).

The default is the one that drifts less on the shapes benchmark: over 32 clips of 60 s (30 windows
each) the classifier reads the first window's shape and colour in 77% of later windows with
``"held"`` against 61% through the committed I2V model (BENCHMARKS.md, "Third lease"); with the
key-frame model continued under the mixed noise prior, 76% held, 75% anchored, 59% through I2V. The first
window of an image-to-video or magic141 clip goes through the I2V model whenever the pipeline has
one, whatever ``window_method``. Each window adds ``16 - overlap`` frames; the last is cut so that
the clip has exactly N frames. ``overlap = 1`` (default) is Magic 1-For-1's first-frame
conditioning, the cheapest per new frame; more overlap carries more motion (it did not reduce
drift: 0.59 at overlap 4 against 0.61 at 1 through the I2V model).

Guidance: ``window_guidance_scale`` sets the CFG scale of the windows after the first (default: the
first window's ``guidance_scale``). Lowering it after the first window (the held frames already fix the
content) made shapes drift more, not less: over 128 clips of 60 s on an H200, read in 8 orientations,
CFG 7.5 then 1 kept shape and colour in 0.697 of windows against 0.780 at 7.5 throughout, 2 then 1 in
0.812 against 0.852 at 2 throughout (the best measured; no guidance at all: 0.804; BENCHMARKS.md, "The
drift reader").

Noise of the windows after the first (``window_noise``): ``"reuse"`` (default) starts every later
window from the first window's noise (each frame's map again, in order); ``"fresh"`` draws each
window's noise anew (the clips before 2026-12-03's sixth session); ``"shuffle"`` starts from the first
window's frames in a new random order per window and clip (FreeNoise's noise rescheduling, Qiu et al.
2024, "FreeNoise: Tuning-Free Longer Video Diffusion via Noise Rescheduling", sec. 3.2: later frames
reuse the first window's noise, locally shuffled, so that the content the noise decided stays while
the order varies). The held frames are re-noised with the same maps. The idea: the first window's
noise is what decided its shape, so later windows started from it keep deciding the same. Measured
over 128 clips of 60 s on an H200 (held windows, d4 reader): CFG 2 keeps shape and colour in 0.913 of
windows with ``"reuse"`` against 0.852 fresh (paired +0.062 [+0.039, +0.097]), the first time the 0.90
goal is reached; the 4-step student 0.782 reuse, 0.739 shuffle, 0.717 fresh. Reused noise does not make
the clip loop (later windows stay farther from the first than from the one before) and moves less
between frames, nearer real video (BENCHMARKS.md, "Reused window noise").

Determinism: clip k's noise is drawn from one ``torch.Generator`` seeded with ``seed[k]`` (the same
first draw as the 16-frame key-frame stage), window after window, so a clip does not depend on its
batch, and ``mode="t2v"`` without I2V reproduces the 16-frame clip as its first window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from .noise_prior import mix

MODES = ("t2v", "magic141")
#: how the windows after the first continue the previous one (module docstring)
WINDOW_METHODS = ("held", "anchored", "i2v")
#: the initial noise of the windows after the first (module docstring)
WINDOW_NOISES = ("fresh", "reuse", "shuffle")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)} (t2v: the key-frame model; "
                         "magic141: text -> image (T2I U-Net) -> video (I2V model))")  # fmt: skip
    return mode


def check_window_method(window_method: str, pipe=None) -> str:
    """`window_method` if it is one of :data:`WINDOW_METHODS` (and, with `pipe`, one that pipeline can run)."""
    if window_method not in WINDOW_METHODS:
        raise ValueError(f"window_method must be one of {WINDOW_METHODS}, got {window_method!r}")
    if window_method == "i2v" and pipe is not None and pipe.i2v is None:
        raise ValueError("window_method 'i2v' needs the pipeline's i2v component; this pipeline has none "
                         "(window_method 'held' needs none)")  # fmt: skip
    return window_method


def check_window_noise(window_noise: str) -> str:
    if window_noise not in WINDOW_NOISES:
        raise ValueError(f"window_noise must be one of {WINDOW_NOISES}, got {window_noise!r}")
    return window_noise


def window_count(num_frames: int, window: int, overlap: int, window_method: str = "held") -> int:
    """Windows of a sliding-window clip of `num_frames` frames (1 when it fits in one window);
    ``"anchored"`` windows hold one frame more (the clip's first)."""
    held = overlap + (window_method == "anchored")
    if not 1 <= overlap or not held < window:
        raise ValueError(f"overlap must be in 1..{window - 1 - (held - overlap)} (frames shared by consecutive windows"
                         f"{', besides the anchor frame' if held > overlap else ''}), got {overlap}")  # fmt: skip
    return 1 + math.ceil(max(0, num_frames - window) / (window - held))


class _ImageModel(nn.Module):
    """A 2D ``UNet2DConditionModel`` seen as a 1-frame video model (``(B, C, 1, h, w)`` in and out),
    for the pipeline's denoising loop; it has no FPS condition."""

    def __init__(self, unet2d) -> None:
        super().__init__()
        self.unet2d = unet2d
        self.config = unet2d.config

    def forward(self, sample, timestep, encoder_hidden_states, fps=None):
        out = self.unet2d(sample[:, :, 0], timestep, encoder_hidden_states).sample[:, :, None]
        return type("Out", (), {"sample": out})()


def generate(pipe, cond: torch.Tensor, seeds: Sequence[int], num_frames: int, height: int, width: int, fps: float,
             steps: int, guidance_scale: float, eta: float, guidance_rescale: float = 0.0,
             image: torch.Tensor | None = None, mode: str = "t2v", overlap: int = 1,
             window_method: str = "held", noise_prior: float = 0.0,
             window_guidance_scale: float | None = None, window_noise: str = "reuse") -> torch.Tensor:  # fmt: skip
    """The key-frame stage's latents ``(B, C, num_frames, h, w)`` by the module's method.

    cond: the text tokens, ``[uncond; cond]`` stacked when either guidance scale is > 1; image: the first
    frame's pixels ``(B, 3, 1, H, W)`` in [-1, 1] or None; noise_prior: the mixed noise prior of the
    windows the key-frame model makes (:mod:`magicvideo.noise_prior`; the I2V model's windows take
    its own ``config.noise_prior``), one shared map for the whole clip; window_guidance_scale: the CFG
    scale of the windows after the first (default: ``guidance_scale``), whose content the held frames
    already fix; window_noise: the later windows' initial noise, fresh, the first window's reused, or
    its frames shuffled (see the module docstring)."""
    check_mode(mode)
    check_window_noise(window_noise)
    check_window_method(window_method, pipe)
    if mode == "magic141" and image is not None:
        raise ValueError("mode 'magic141' makes the first frame from the text: pass an image or that mode, not both")
    window = pipe.unet.config.num_frames
    window_count(num_frames, window, overlap, window_method)  # validates overlap
    b, device, dtype = len(seeds), pipe._execution_device, pipe.unet.dtype
    if pipe.i2v is not None and pipe.image_encoder is None:
        raise ValueError("the i2v component needs the image_encoder component (the CLIP image embedding it reads)")
    shape = (b, pipe.unet.config.in_channels, window, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    later_guidance = guidance_scale if window_guidance_scale is None else float(window_guidance_scale)
    stacked = guidance_scale > 1.0 or later_guidance > 1.0  # cond holds [uncond; cond]
    if cond.shape[0] != (2 * b if stacked else b):
        raise ValueError(f"cond has {cond.shape[0]} rows for {b} clips at CFG {guidance_scale} / {later_guidance}")
    kw = dict(generators=generators, eta=eta, guidance_rescale=guidance_rescale)

    shared: list[torch.Tensor] = []  # the clip's one shared noise map, drawn with the first window's noise

    def draw(frames: int, prior: float = 0.0) -> torch.Tensor:
        """A window's noise. Under the mixed prior every window of the clip shares one map (PYoCo's
        prior is over all the frames of a video, and a long clip is one video): windows start from
        correlated noise, as the frames of one window do. Window 0 draws what a 16-frame clip draws."""
        iid = randn_tensor((*shape[:2], frames, *shape[3:]), generator=generators, device=device, dtype=dtype)
        if not prior:
            return iid
        if not shared:
            shared.append(randn_tensor((*shape[:2], 1, *shape[3:]), generator=generators, device=device, dtype=dtype))
        return mix(iid, shared[0], prior)

    first_noise: list[torch.Tensor] = []  # the first window's noise, for window_noise "reuse" / "shuffle"

    def window_noise_for(prior: float) -> torch.Tensor:
        """A window's initial noise under `window_noise` (the first window always draws its own)."""
        if window_noise == "fresh" or not first_noise:
            noise = draw(window, prior)
            if not first_noise:
                first_noise.append(noise)
            return noise
        if window_noise == "reuse":
            return first_noise[0]
        order = torch.stack([torch.randperm(window, generator=g) for g in generators]).to(device)  # (B, window)
        index = order[:, None, :, None, None].expand_as(first_noise[0])
        return torch.gather(first_noise[0], 2, index)

    def text(g: float) -> torch.Tensor:
        """The text tokens of a window denoised at CFG scale `g`."""
        return cond if g > 1.0 else cond[-b:]

    def run(model, noise, g, tokens=None, context=None, model_kwargs=None, use_fps=True):
        """Denoise one window from `noise` at CFG scale `g`; its first k frames held at `context` (B, C, k, h, w)."""
        tokens = text(g) if tokens is None else tokens
        fps_t = torch.full((tokens.shape[0],), float(fps), device=device)
        pipe.scheduler.set_timesteps(steps, device=device)
        known = mask = None
        if context is not None:
            mask = torch.zeros(1, 1, noise.shape[2], 1, 1, dtype=torch.bool, device=device)
            mask[:, :, : context.shape[2]] = True
            known = torch.zeros_like(noise)
            known[:, :, : context.shape[2]] = context
        return pipe.denoise(model, noise * pipe.scheduler.init_noise_sigma, pipe.scheduler.timesteps, tokens,
                            fps_t if use_fps and model.config.fps_conditioning else None, known=known,
                            known_mask=mask, noise=noise, model_kwargs=model_kwargs, guidance_scale=g, **kw)  # fmt: skip

    # -- the first frame (magic141: text -> image) ------------------------------------------------
    first = None  # its scaled latent (B, C, 1, h, w)
    if mode == "magic141":
        if pipe.t2i_unet is not None:
            first = run(_ImageModel(pipe.t2i_unet), draw(1), guidance_scale, use_fps=False)
        else:
            from .models.i2v import first_frame_unet

            first = run(first_frame_unet(pipe.unet), draw(1), guidance_scale)
    elif image is not None:
        first = pipe.encode_frames(image.to(device)).to(dtype)

    anchor = None  # the CLIP image embedding of the clip's first frame (B, 1, D), for the I2V model

    def embed(latent0: torch.Tensor) -> torch.Tensor:
        px = image if (image is not None and mode != "magic141") else pipe.decode_latents(latent0)
        return pipe.embed_frames(px.to(device)).to(device, dtype)

    def window_from(context: torch.Tensor, first_window: bool = False) -> torch.Tensor:
        """One window whose first k frames are `context` (B, C, k, h, w), held fixed."""
        nonlocal anchor
        g = guidance_scale if first_window else later_guidance
        if pipe.i2v is None or (window_method in ("held", "anchored") and not first_window):
            # the key-frame model's directed attention around the held frames
            return run(pipe.unet, window_noise_for(noise_prior), g, context=context)
        noise = window_noise_for(getattr(pipe.i2v.config, "noise_prior", 0.0))
        if anchor is None:
            anchor = embed(first)
        tokens, frames = pipe.i2v.condition_tokens(cond[-b:], anchor), context
        if g > 1.0:  # the null condition: the empty prompt and a zero image token; the frames stay
            null = pipe.i2v.condition_tokens(cond[:b], torch.zeros_like(anchor))
            tokens, frames = torch.cat([null, tokens]), torch.cat([context, context])
        return run(pipe.i2v, noise, g, tokens=tokens, context=context, model_kwargs={"frames": frames.to(dtype)})

    # -- window 0 -----------------------------------------------------------------------------------
    if first is None:
        clip = run(pipe.unet, window_noise_for(noise_prior), guidance_scale)
        first = clip[:, :, :1]  # the anchor of the I2V windows' image token
    else:
        clip = window_from(first, first_window=True)
    # -- the following windows, each continuing the last `overlap` frames -------------------------------
    while clip.shape[2] < num_frames:
        context = clip[:, :, -overlap:]
        if window_method == "anchored":  # the clip's first frame at position 0, then the overlap frames
            context = torch.cat([clip[:, :, :1], context], dim=2)
        nxt = window_from(context)
        clip = torch.cat([clip, nxt[:, :, context.shape[2]:]], dim=2)
    return clip[:, :, :num_frames]
