"""Sampling the x4 super-resolution model (section 3.4) over every frame of a batch of clips.

The SR model is an image model (:class:`~magicvideo.models.UpsamplerUNet`, trained on single
frames); a clip is upsampled frame by frame, in batches of ``frame_batch`` frames (any mix of
clips). What keeps a clip from flickering is its noise: every frame of clip ``k`` draws its
augmentation noise, its initial noise and any noise a stochastic scheduler adds from its own
``torch.Generator`` seeded with the same ``stage_seed(seeds[k], "upsample")``, so all frames of a
clip get identical noise, and a frame's result depends on its clip's seed, not on the batch it
ran in or on ``frame_batch``. Frames that are identical in the input (a static clip) come out
identical.

The inputs are rounded to 8-bit levels first (:func:`~magicvideo.models.upsampler.quantize`): the
model is trained on 8-bit frames, and the cascade's stage then gives what upsampling the stored
uint8 sample would.

Defaults: ``noise_level`` None is the model's ``default_noise_level`` (20, the x4 upscaler's
default, for a model trained with augmentation; 0 for one trained without); 25 DDIM steps
(:data:`DEFAULT_STEPS`); no classifier-free guidance.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from diffusers.utils.torch_utils import randn_tensor

from .models.upsampler import UpsamplerUNet, quantize
from .pipeline import make_scheduler, stage_seed

#: denoising steps of the SR stage unless given
DEFAULT_STEPS = 25
#: the SR stage's seed stream name (:func:`magicvideo.pipeline.stage_seed`)
STAGE = "upsample"


def default_upsampler() -> Path:
    """The committed shapes SR model, ``checkpoints/shapes/pipeline/upsampler`` (not checked)."""
    from .checkpoints import shapes_checkpoint

    return shapes_checkpoint("pipeline") / "upsampler"


def load_upsampler(folder: str | Path) -> UpsamplerUNet:
    """An :class:`UpsamplerUNet` from its ``save_pretrained`` folder, checked first (one
    :class:`~magicvideo.validate.InputError` naming a missing folder or file)."""
    from .validate import check_model_folder

    check_model_folder(folder, "UpsamplerUNet", hint="train one with scripts/train_upsampler.py or the shapes "
                       "chain's upsample stage (magicvideo train shapes OUT --stages upsample)")  # fmt: skip
    return UpsamplerUNet.from_pretrained(folder).eval()


@torch.no_grad()
def upsample_clips(
    model: UpsamplerUNet,
    frames: torch.Tensor,
    seeds: Sequence[int],
    noise_level: int | None = None,
    num_inference_steps: int = DEFAULT_STEPS,
    scheduler: str = "ddim",
    eta: float = 0.0,
    frame_batch: int = 16,
    encoder_hidden_states: torch.Tensor | None = None,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> torch.Tensor:
    """Clips ``(B, 3, F, h, w)`` in [-1, 1] -> ``(B, 3, F, s h, s w)`` in [-1, 1] (float32, on the
    model's device), ``s = model.config.scale_factor`` (module docstring).

    Args:
        model: the SR model (its device and dtype are used).
        frames: the clips, float in [-1, 1].
        seeds: one per clip; clip k's noise comes from ``stage_seed(seeds[k], "upsample")``.
        noise_level: augmentation level in ``[0, max_noise_level]`` (default: the model's
            ``default_noise_level``).
        num_inference_steps, scheduler, eta: the sampler (a :func:`~magicvideo.pipeline.make_scheduler`
            name over the model's own noise schedule).
        frame_batch: frames per U-Net forward (the memory bound; results do not depend on it).
        encoder_hidden_states: text tokens ``(B, L, D)`` per clip, for a text-conditioned model.
        progress: wraps the denoising steps of each batch (e.g. a pipeline's ``progress_bar``).
    """
    if frames.ndim != 5 or frames.shape[1] != 3:
        raise ValueError(f"frames must be clips (B, 3, F, h, w), got {tuple(frames.shape)}")
    b, _, f, h, w = frames.shape
    if len(seeds) != b:
        raise ValueError(f"got {len(seeds)} seeds for {b} clips")
    if frame_batch < 1:
        raise ValueError(f"frame_batch must be >= 1, got {frame_batch}")
    c = model.config
    level = c.default_noise_level if noise_level is None else int(noise_level)
    if not 0 <= level <= c.max_noise_level:
        raise ValueError(f"noise_level must be in [0, {c.max_noise_level}] (the model's max_noise_level), got {level}")
    if (encoder_hidden_states is None) != (c.cross_attention_dim is None):
        if c.cross_attention_dim is not None:
            raise ValueError("this upsampler is text-conditioned: pass encoder_hidden_states (one per clip)")
        raise ValueError("this upsampler is not text-conditioned: pass no encoder_hidden_states")
    device, dtype, s = model.device, model.dtype, c.scale_factor
    low = quantize(frames.float()).transpose(1, 2).reshape(b * f, 3, h, w)  # clip-major rows
    clip_of = [k for k in range(b) for _ in range(f)]
    out = []
    for start in range(0, b * f, frame_batch):
        rows = clip_of[start : start + frame_batch]
        n = len(rows)
        # one generator per frame, seeded by its clip: every frame of a clip draws the same noise
        gens = [torch.Generator("cpu").manual_seed(stage_seed(seeds[k], STAGE)) for k in rows]
        aug_noise = randn_tensor((n, 3, h, w), generator=gens, device=device, dtype=dtype)
        noisy = randn_tensor((n, 3, s * h, s * w), generator=gens, device=device, dtype=dtype)
        levels = torch.full((n,), level, device=device, dtype=torch.long)
        cond = model.augment(low[start : start + n].to(device, dtype), levels, aug_noise)
        text = None if encoder_hidden_states is None else encoder_hidden_states.to(device, dtype)[rows]
        sched = make_scheduler(scheduler, model.noise_schedule)
        sched.set_timesteps(num_inference_steps, device=device)
        accepted = inspect.signature(sched.step).parameters
        step_kwargs = {k: v for k, v in {"generator": gens, "eta": eta}.items() if k in accepted}
        x = noisy * sched.init_noise_sigma
        for t in progress(sched.timesteps):
            pred = model(sched.scale_model_input(x, t), t, cond, levels, encoder_hidden_states=text).sample
            x = sched.step(pred, t, x, **step_kwargs).prev_sample
        out.append(x.float())
    hr = torch.cat(out).clamp(-1, 1)
    return hr.view(b, f, 3, s * h, s * w).transpose(1, 2)


def bicubic_clips(frames: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """The baseline: clips ``(B, 3, F, h, w)`` upsampled `scale` times, bicubic, clamped to [-1, 1]."""
    import torch.nn.functional as F

    b, c, f, h, w = frames.shape
    flat = frames.float().transpose(1, 2).reshape(b * f, c, h, w)
    up = F.interpolate(flat, scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1, 1)
    return up.view(b, f, c, scale * h, scale * w).transpose(1, 2)


__all__ = ["DEFAULT_STEPS", "bicubic_clips", "default_upsampler", "load_upsampler", "upsample_clips"]
