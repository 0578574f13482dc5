"""MagicVideoPipeline: prompts -> 16 key frames in latent space -> decoded frames (section 3).

A diffusers `DiffusionPipeline`, so `save_pretrained` / `from_pretrained` write and read one
folder of safetensors components (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``,
``scheduler/``, ``model_index.json``) and any diffusers scheduler can be swapped in with
``pipe.scheduler = SomeScheduler.from_config(pipe.scheduler.config)`` (see `set_scheduler`).

Determinism: every sample's initial noise (and any noise a stochastic scheduler draws) comes
from its own `torch.Generator` seeded with that sample's seed, never from its batch position,
so sample k of a batch equals the same prompt and seed generated alone (up to floating-point
reassociation of batched matrix products, ~1e-6).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer

from .conditioning import encode_prompts
from .models import MagicVideoUNet, VideoAutoencoderKL

SCHEDULERS = {
    "ddim": (DDIMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),
    "ddpm": (DDPMScheduler, {}),
    "unipc": (UniPCMultistepScheduler, {}),
}


def make_scheduler(name: str, base_config: dict | None = None, **overrides):
    """A diffusers scheduler by short name (``ddim``, ``dpm++``, ``euler``, ``euler_a``, ``pndm``,
    ``ddpm``, ``unipc``), carrying over the noise schedule of `base_config`."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    cls, defaults = SCHEDULERS[name]
    return cls.from_config(dict(base_config or {}), **{**defaults, **overrides})


@dataclasses.dataclass
class MagicVideoPipelineOutput(BaseOutput):
    """``frames``: uint8 ``(batch, frames, height, width, 3)`` (numpy), or float / latent tensors
    for ``output_type`` "pt" / "latent"."""

    frames: np.ndarray | torch.Tensor


class MagicVideoPipeline(DiffusionPipeline):
    """Text-to-video generation with MagicVideo's key-frame model.

    Components: ``unet`` (`MagicVideoUNet`), ``vae`` (`VideoAutoencoderKL` or an image
    `AutoencoderKL`, which then decodes frame by frame), ``text_encoder`` + ``tokenizer`` (CLIP),
    ``scheduler`` (any diffusers scheduler).
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(
        self,
        unet: MagicVideoUNet,
        vae: VideoAutoencoderKL | AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        scheduler,
    ) -> None:
        super().__init__()
        self.register_modules(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    def set_scheduler(self, name: str, **overrides) -> None:
        """Swap the sampler, keeping the trained noise schedule (`make_scheduler`)."""
        self.scheduler = make_scheduler(name, self.scheduler.config, **overrides)

    def enable_fast_inference(self, compile_mode: str | None = "reduce-overhead", inductor_tuning: bool = False) -> None:
        """GPU inference recipe measured in BENCHMARKS.md: fused QKV projections, channels-last
        U-Net, and `torch.compile` (``reduce-overhead`` adds CUDA graphs, which matter at small
        batches where the step is launch-bound). The first call per input shape compiles (about
        1-2 minutes for sd15). `inductor_tuning` turns 1x1 convolutions into matmuls and enables
        coordinate-descent tuning of the generated kernels; off by default because on an H100 the
        sd15 compile then ran past 9 minutes (BENCHMARKS.md), so its benefit is unmeasured."""
        self.unet.fuse_qkv_projections()
        self.unet.to(memory_format=torch.channels_last)
        if compile_mode is None:
            return
        if inductor_tuning:
            import torch._inductor.config as inductor

            inductor.conv_1x1_as_mm = True
            inductor.coordinate_descent_tuning = True
            inductor.coordinate_descent_check_all_directions = True
        self.unet = torch.compile(self.unet, mode=None if compile_mode == "default" else compile_mode)

    # ---- pieces --------------------------------------------------------------------------

    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        return encode_prompts(self.tokenizer, self.text_encoder, list(prompts), device=self._execution_device)

    def prepare_latents(self, seeds: Sequence[int], num_frames: int, height: int, width: int, dtype: torch.dtype):
        """Initial noise ``(batch, C, F, h, w)``: sample k drawn from its own generator."""
        shape = (
            len(seeds),
            self.unet.config.in_channels,
            num_frames,
            height // self.vae_scale_factor,
            width // self.vae_scale_factor,
        )
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        latents = randn_tensor(shape, generator=generators, device=self._execution_device, dtype=dtype)
        return latents * self.scheduler.init_noise_sigma, generators

    def decode_latents(self, latents: torch.Tensor, chunk_size: int = 16) -> torch.Tensor:
        """Latents ``(B, C, F, h, w)`` -> frames ``(B, 3, F, H, W)`` in [-1, 1]."""
        z = latents / self.vae.config.scaling_factor
        z = z.to(self.vae.dtype)
        if isinstance(self.vae, VideoAutoencoderKL):
            return self.vae.decode_video(z, chunk_size=chunk_size)
        b, c, f, h, w = z.shape
        flat = z.transpose(1, 2).reshape(b * f, c, h, w)
        out = torch.cat([self.vae.decode(part).sample for part in flat.split(chunk_size)])
        return out.view(b, f, *out.shape[1:]).transpose(1, 2)

    @staticmethod
    def to_uint8(frames: torch.Tensor) -> np.ndarray:
        """``(B, 3, F, H, W)`` in [-1, 1] -> uint8 ``(B, F, H, W, 3)``."""
        x = ((frames.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return x.permute(0, 2, 3, 4, 1).cpu().numpy()

    # ---- sampling ------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str] | None = None,
        negative_prompt: str | Sequence[str] | None = None,
        seed: int | Sequence[int] = 0,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        fps: float = 8.0,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        eta: float = 0.0,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "uint8",
        decode_chunk_size: int = 16,
        return_dict: bool = True,
    ) -> MagicVideoPipelineOutput | tuple:
        """Generate one clip per prompt.

        Args:
            prompt: one prompt or a list (one clip each). Or pass `prompt_embeds` instead
                (e.g. CLIP image embeddings for image-conditioned models).
            negative_prompt: classifier-free guidance's unconditional text ("" if None).
            seed: one seed per clip (a single int is used for every clip); sample k's noise comes
                from ``torch.Generator("cpu").manual_seed(seed[k])``.
            num_frames: key frames F (default: the U-Net's ``num_frames``, 16).
            height, width: output size in pixels (default: the U-Net's ``sample_size`` x 8).
            fps: the frame rate nu the clip should show (FPS conditioning, eq. 5).
            num_inference_steps, guidance_scale, eta: sampler settings; guidance 1 disables CFG.
            output_type: "uint8" (numpy ``(B, F, H, W, 3)``), "pt" (``(B, 3, F, H, W)`` in
                [-1, 1]) or "latent" (``(B, C, F, h, w)``, scaled).
            decode_chunk_size: frames per VAE decoder chunk (memory bound).
        """
        if output_type not in ("uint8", "pt", "latent"):
            raise ValueError(f"output_type must be 'uint8', 'pt' or 'latent', got {output_type!r}")
        if prompt_embeds is None:
            if prompt is None:
                raise ValueError("pass a prompt (or prompt_embeds)")
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            prompt_embeds = self.encode_prompt(prompts)
        batch = prompt_embeds.shape[0]
        if batch == 0:
            raise ValueError("no prompts given")
        seeds = [seed] * batch if isinstance(seed, int) else list(seed)
        if len(seeds) != batch:
            raise ValueError(f"got {len(seeds)} seeds for {batch} prompts: pass one seed per prompt")
        num_frames = num_frames or self.unet.config.num_frames
        default_side = (self.unet.config.sample_size or 32) * self.vae_scale_factor
        height, width = height or default_side, width or default_side
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(f"height and width must be multiples of {self.vae_scale_factor}, got {height}x{width}")

        device, dtype = self._execution_device, self.unet.dtype
        prompt_embeds = prompt_embeds.to(device, dtype)
        do_cfg = guidance_scale > 1.0
        if do_cfg:
            if negative_prompt_embeds is None:
                neg = negative_prompt if negative_prompt is not None else ""
                negs = [neg] * batch if isinstance(neg, str) else list(neg)
                if len(negs) != batch:
                    raise ValueError(f"got {len(negs)} negative prompts for {batch} prompts")
                negative_prompt_embeds = self.encode_prompt(negs)
            cond = torch.cat([negative_prompt_embeds.to(device, dtype), prompt_embeds])
        else:
            cond = prompt_embeds

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        latents, generators = self.prepare_latents(seeds, num_frames, height, width, dtype)
        fps_t = torch.full((cond.shape[0],), float(fps), device=device)
        accepted = inspect.signature(self.scheduler.step).parameters
        step_kwargs = {k: v for k, v in {"generator": generators, "eta": eta}.items() if k in accepted}

        for t in self.progress_bar(self.scheduler.timesteps):
            model_in = torch.cat([latents] * 2) if do_cfg else latents
            model_in = self.scheduler.scale_model_input(model_in, t)
            noise = self.unet(model_in, t, cond, fps=fps_t if self.unet.config.fps_conditioning else None).sample
            if do_cfg:
                uncond, text = noise.chunk(2)
                noise = uncond + guidance_scale * (text - uncond)
            latents = self.scheduler.step(noise, t, latents, **step_kwargs).prev_sample

        if output_type == "latent":
            out = latents
        else:
            frames = self.decode_latents(latents, chunk_size=decode_chunk_size)
            out = frames if output_type == "pt" else self.to_uint8(frames)
        self.maybe_free_model_hooks()
        return MagicVideoPipelineOutput(frames=out) if return_dict else (out,)
