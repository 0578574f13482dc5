"""MagicVideoPipeline: prompts -> 16 key frames in latent space -> (61 interpolated frames) ->
decoded frames -> (x4 super-resolution) (section 3), run by stage; and the applications of section 4.3.

A diffusers `DiffusionPipeline`, so `save_pretrained` / `from_pretrained` write and read one
folder of safetensors components (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``,
``scheduler/``, ``model_index.json``) and any diffusers scheduler can be swapped in with
``pipe.scheduler = SomeScheduler.from_config(pipe.scheduler.config)`` (see `set_scheduler`).

Determinism: every sample's initial noise (and any noise a stochastic scheduler draws) comes
from its own `torch.Generator` seeded with that sample's seed, never from its batch position,
so sample k of a batch equals the same prompt and seed generated alone (up to floating-point
reassociation of batched matrix products, ~1e-6).

The cascade runs by stage (``stages=("keyframes", "interpolate", "upsample")``, :data:`STAGES`):
each stage is its own model (``unet``; ``interpolation`` + ``image_encoder``; ``upsampler``: optional
components a folder may hold), each latent stage's latents are returned (``output.latents[stage]``),
a later stage can start from stored latents, and :func:`cascade_identity` gives a stable id of the
stages and the checkpoint files they read, for the sample store's content address. The
``upsample`` stage (3.4) works on the decoded frames, in pixel space (:mod:`magicvideo.upsampling`).
The applications (4.3) are :meth:`MagicVideoPipeline.image_to_video`,
:meth:`~MagicVideoPipeline.video_variation` and :meth:`~MagicVideoPipeline.edit_video` (the
``image`` / ``video`` / ``strength`` arguments).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Sequence
from pathlib import Path

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
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

from .conditioning import encode_prompts
from .noise_prior import check_alpha, video_noise
from .models import ImageToVideoUNet, InterpolationUNet, MagicVideoUNet, UpsamplerUNet, VideoAutoencoderKL
from .models.interpolation import DEFAULT_STEPS as INTERPOLATION_STEPS
from .stages import OPTIONAL_STAGES, STAGE_COMPONENTS, STAGES, resolve_stages  # noqa: F401 - re-exported

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
    config = {**dict(base_config or {}), **overrides}
    if config.get("rescale_betas_zero_snr") and "rescale_betas_zero_snr" not in inspect.signature(cls.__init__).parameters:
        raise ValueError(f"scheduler {name!r} ({cls.__name__}) does not support the zero-terminal-SNR schedule "
                         "(rescale_betas_zero_snr) this model was trained with; choose another sampler")
    return cls.from_config(dict(base_config or {}), **{**defaults, **overrides})


@dataclasses.dataclass
class MagicVideoPipelineOutput(BaseOutput):
    """``frames``: uint8 ``(batch, frames, height, width, 3)`` (numpy), or float / latent tensors
    for ``output_type`` "pt" / "latent", of the last stage (with "upsample": at 4x the size);
    ``latents``: every latent stage's scaled latents ``(batch, C, frames, h, w)`` by stage name
    ("keyframes", "interpolate"; the pixel-space "upsample" stage has none)."""

    frames: np.ndarray | torch.Tensor
    latents: dict[str, torch.Tensor] | None = None


class MagicVideoPipeline(DiffusionPipeline):
    """Text-to-video generation with MagicVideo's cascade.

    Components: ``unet`` (`MagicVideoUNet`), ``vae`` (`VideoAutoencoderKL` or an image
    `AutoencoderKL`, which then decodes frame by frame), ``text_encoder`` + ``tokenizer`` (CLIP),
    ``scheduler`` (any diffusers scheduler; every stage samples with it). Optional, for the
    "interpolate" stage (3.2): ``interpolation`` (`InterpolationUNet`) and ``image_encoder``
    (CLIP vision tower with projection, whose width is the interpolation U-Net's
    ``cross_attention_dim``); a folder without them loads with both None. Optional, for the
    "upsample" stage (3.4): ``upsampler`` (`UpsamplerUNet`, with its own noise schedule in its
    config; text-conditioned ones read the ``text_encoder``'s hidden states). Optional, for Magic
    1-For-1's modes (:mod:`magicvideo.long_video`): ``i2v`` (`ImageToVideoUNet`, with the
    ``image_encoder``): image-to-video, ``mode="magic141"`` and sliding-window long clips
    (``num_frames`` > 16); ``t2i_unet`` (a diffusers ``UNet2DConditionModel``): magic141's first frame.
    """

    model_cpu_offload_seq = "text_encoder->t2i_unet->unet->image_encoder->i2v->interpolation->vae->upsampler"
    _optional_components = ["interpolation", "image_encoder", "upsampler", "i2v", "t2i_unet"]

    def __init__(
        self,
        unet: MagicVideoUNet,
        vae: VideoAutoencoderKL | AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        scheduler,
        interpolation: InterpolationUNet | None = None,
        image_encoder: CLIPVisionModelWithProjection | None = None,
        upsampler: UpsamplerUNet | None = None,
        i2v: ImageToVideoUNet | None = None,
        t2i_unet=None,
    ) -> None:
        super().__init__()
        self.register_modules(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
                              interpolation=interpolation, image_encoder=image_encoder, upsampler=upsampler,
                              i2v=i2v, t2i_unet=t2i_unet)  # fmt: skip
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    def set_scheduler(self, name: str, **overrides) -> None:
        """Swap the sampler, keeping the trained noise schedule (`make_scheduler`)."""
        self.scheduler = make_scheduler(name, self.scheduler.config, **overrides)

    def enable_fast_inference(self, compile_mode: str | None = "reduce-overhead", inductor_tuning: bool = False,
                              decoder: bool = True) -> None:  # fmt: skip
        """GPU inference recipe measured in BENCHMARKS.md: fused QKV projections, channels-last
        U-Net, and `torch.compile` (``reduce-overhead`` adds CUDA graphs, which matter at small
        batches where the step is launch-bound). The first call per input shape compiles (about
        1-2 minutes for sd15). `inductor_tuning` turns 1x1 convolutions into matmuls and enables
        coordinate-descent tuning of the generated kernels; off by default because on an H100 the
        sd15 compile then ran past 9 minutes (BENCHMARKS.md), so its benefit is unmeasured.

        `decoder` also makes the VAE channels-last and compiles its decode (inductor's default
        mode: no CUDA graphs, as the decoded frame count varies from call to call). At sd15 size the
        decode is ~40% of the 4-step student's time per decoded clip (BENCHMARKS.md, issue 16); the
        compiled decode fuses the decoder's GroupNorm + SiLU pairs that eager mode runs one by one.
        The I2V U-Net (long clips' I2V windows, magic141), when present, is treated as the key-frame one."""
        denoisers = ["unet"] + (["i2v"] if self.i2v is not None else [])
        for name in denoisers:
            getattr(self, name).fuse_qkv_projections()
            getattr(self, name).to(memory_format=torch.channels_last)
        if decoder:
            self.vae.to(memory_format=torch.channels_last)
        if compile_mode is None:
            return
        if inductor_tuning:
            import torch._inductor.config as inductor

            inductor.conv_1x1_as_mm = True
            inductor.coordinate_descent_tuning = True
            inductor.coordinate_descent_check_all_directions = True
        for name in denoisers:
            setattr(self, name, torch.compile(getattr(self, name), mode=None if compile_mode == "default" else compile_mode))
        if decoder:
            # An instance attribute shadows the method; the weights and their state-dict keys stay as they were.
            name = "decode_video" if isinstance(self.vae, VideoAutoencoderKL) else "decode"
            setattr(self.vae, name, torch.compile(getattr(self.vae, name)))

    # ---- pieces --------------------------------------------------------------------------

    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        return encode_prompts(self.tokenizer, self.text_encoder, list(prompts), device=self._execution_device)

    def noise_prior(self, override: float | None = None) -> float:
        """The mixed noise prior's alpha (:mod:`magicvideo.noise_prior`) the key frames are sampled
        with: `override`, else the key-frame U-Net's ``sample_noise_prior`` when set (a sampling alpha
        chosen after training), else its ``noise_prior`` (what it was trained with)."""
        if override is not None:
            return check_alpha(override)
        config = self.unet.config
        chosen = getattr(config, "sample_noise_prior", None)
        return check_alpha(getattr(config, "noise_prior", 0.0) if chosen is None else chosen)

    def prepare_latents(self, seeds: Sequence[int], num_frames: int, height: int, width: int, dtype: torch.dtype,
                        noise_prior: float | None = None):  # fmt: skip
        """Initial noise ``(batch, C, F, h, w)``: sample k drawn from its own generator, under the
        mixed noise prior `noise_prior` (None: the U-Net's, :meth:`noise_prior`)."""
        shape = (
            len(seeds),
            self.unet.config.in_channels,
            num_frames,
            height // self.vae_scale_factor,
            width // self.vae_scale_factor,
        )
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        latents = video_noise(shape, self.noise_prior(noise_prior), generators, self._execution_device, dtype)
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

    def encode_frames(self, frames: torch.Tensor, chunk_size: int = 16) -> torch.Tensor:
        """Frames ``(B, 3, F, H, W)`` in [-1, 1] -> scaled latents ``(B, C, F, h, w)`` (posterior
        mode, frame by frame: the applications' inputs)."""
        x = frames.to(self._execution_device, self.vae.dtype)
        if isinstance(self.vae, VideoAutoencoderKL):
            z = self.vae.encode_video(x, chunk_size=chunk_size)
        else:
            b, c, f, h, w = x.shape
            flat = x.transpose(1, 2).reshape(b * f, c, h, w)
            z = torch.cat([self.vae.encode(part).latent_dist.mode() for part in flat.split(chunk_size)])
            z = z.view(b, f, *z.shape[1:]).transpose(1, 2)
        return z * self.vae.config.scaling_factor

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
        stages: str | Sequence[str] = ("keyframes",),
        keyframe_latents: torch.Tensor | None = None,
        image=None,
        video=None,
        strength: float = 0.6,
        interpolation_steps: int | None = None,
        interpolation_guidance_scale: float = 1.0,
        guidance_rescale: float = 0.0,
        upsample_steps: int | None = None,
        upsample_noise_level: int | None = None,
        upsample_scheduler: str = "ddim",
        upsample_frame_batch: int = 16,
        mode: str = "t2v",
        overlap: int = 1,
        window_method: str = "held",
        noise_prior: float | None = None,
        window_guidance_scale: float | None = None,
        window_noise: str = "reuse",
    ) -> MagicVideoPipelineOutput | tuple:
        """Generate one clip per prompt, running the cascade's `stages` in order.

        Args:
            prompt: one prompt or a list (one clip each). Or pass `prompt_embeds` instead
                (e.g. CLIP image embeddings for image-conditioned models).
            negative_prompt: classifier-free guidance's unconditional text ("" if None).
            seed: one seed per clip (a single int is used for every clip); sample k's noise comes
                from ``torch.Generator("cpu").manual_seed(seed[k])`` (each later stage: from its
                own seed derived from seed[k], :func:`stage_seed`).
            num_frames: key frames F (default: the U-Net's ``num_frames``, 16). More than that makes a
                sliding-window clip of exactly `num_frames` frames (:mod:`magicvideo.long_video`).
            height, width: output size in pixels (default: the size of `image` / `video`, else the
                U-Net's ``sample_size`` x 8).
            fps: the key frames' frame rate nu (FPS conditioning, eq. 5); the interpolated clip
                has ``4 * fps``.
            num_inference_steps, guidance_scale, eta: sampler settings; guidance 1 disables CFG.
            guidance_rescale: phi of Lin et al. (2023, sec. 3.4) for the key frames: the guided
                prediction's std is pulled toward the text branch's by this fraction (0 = off;
                0.7 is their value for zero-terminal-SNR models, against over-exposure at high CFG).
            output_type: "uint8" (numpy ``(B, F, H, W, 3)``), "pt" (``(B, 3, F, H, W)`` in
                [-1, 1]) or "latent" (``(B, C, F, h, w)``, scaled) of the last stage.
            decode_chunk_size: frames per VAE decoder chunk (memory bound).
            stages: "keyframes" (16 key frames, 3.1), "interpolate" (3 new frames between each
                adjacent pair, 16 -> 61, 3.2) and "upsample" (the decoded frames x4, 3.4), in that
                order, interpolation optional; a comma-separated string works too. Starting at
                "interpolate" needs `keyframe_latents`; "upsample" alone is :meth:`upsample` on
                decoded frames. Every latent stage's latents are returned in the output's
                ``latents`` dict (scaled, by stage name).
            keyframe_latents: ``(B, C, F, h, w)`` scaled key-frame latents (a stored "keyframes"
                output) for ``stages=("interpolate",)``.
            image: image-to-video (4.3): the first frame (PIL image, uint8 ``(H, W, 3)`` /
                ``(B, H, W, 3)`` array, or float ``(B, 3, H, W)`` in [-1, 1]). Its latent is held
                fixed during sampling (see :meth:`image_to_video`).
            video: video variation / editing (4.3): a clip of `num_frames` frames (uint8
                ``(F, H, W, 3)`` / ``(B, F, H, W, 3)``, or float ``(B, 3, F, H, W)`` in [-1, 1]),
                noised to `strength` and denoised (SDEdit, see :meth:`video_variation`).
            strength: with `video`: how far it is noised, in (0, 1] (1 = pure noise).
            interpolation_steps: denoising steps of the interpolation stage (default 4,
                :data:`magicvideo.models.interpolation.DEFAULT_STEPS`).
            interpolation_guidance_scale: CFG scale of the interpolation stage on the key frames'
                CLIP embeddings (null condition: zero embeddings); 1 (default) disables it.
            upsample_steps: denoising steps of the upsample stage (default 25,
                :data:`magicvideo.upsampling.DEFAULT_STEPS`).
            upsample_noise_level: its noise-conditioning augmentation level (default: the
                upsampler's ``default_noise_level``, 20 for a model trained with augmentation).
            upsample_scheduler: its sampler (a :func:`make_scheduler` name; default DDIM).
            upsample_frame_batch: frames per upsampler forward (memory; results do not depend on it).
            mode: "t2v" (the key-frame model makes the clip) or "magic141" (Magic 1-For-1: the
                ``t2i_unet``, else the key-frame model's frame 0, makes the first frame, then the
                ``i2v`` model makes the clip; :mod:`magicvideo.long_video`).
            overlap: frames each sliding window continues from the previous one (1..15).
            window_method: how windows after the first continue the previous one: "held" (the
                key-frame model's directed attention with those frames held; default: it drifts
                less on shapes), "anchored" (the same with the clip's first frame held too) or "i2v"
                (through the ``i2v`` model); :mod:`magicvideo.long_video`.
            noise_prior: the key frames' initial noise shares one map over the frames with this weight
                (PYoCo's mixed prior, :mod:`magicvideo.noise_prior`; 0: i.i.d. per frame). Default:
                the key-frame U-Net's ``config.sample_noise_prior`` when set, else its ``noise_prior``
                (the alpha it was trained with).
            window_guidance_scale: the CFG scale of the sliding windows after the first (default:
                `guidance_scale`); the first window keeps `guidance_scale` (:mod:`magicvideo.long_video`).
            window_noise: the initial noise of the sliding windows after the first: "reuse" (default:
                the first window's; it drifts least on shapes), "fresh" (drawn anew, the clips before
                2026-12-03) or "shuffle" (its frames reordered, FreeNoise); :mod:`magicvideo.long_video`.
        """
        if output_type not in ("uint8", "pt", "latent"):
            raise ValueError(f"output_type must be 'uint8', 'pt' or 'latent', got {output_type!r}")
        stages = resolve_stages(stages)
        if stages[0] == "upsample":
            raise ValueError("stages start at 'upsample': call pipe.upsample(frames, seeds) on decoded frames")
        if "upsample" in stages and output_type == "latent":
            raise ValueError("the upsample stage works in pixel space: output_type 'latent' has nothing to return")
        if "upsample" in stages:
            self._require_upsampler()  # before the key frames are made
        if image is not None and video is not None:
            raise ValueError("pass image (image-to-video) or video (variation / editing), not both")
        if stages[0] != "keyframes" and (image is not None or video is not None):
            raise ValueError("image and video act on the keyframes stage; include it in stages")
        latents_by_stage: dict[str, torch.Tensor] = {}
        if stages[0] == "keyframes":
            if keyframe_latents is not None:
                raise ValueError("keyframe_latents replace the keyframes stage: pass stages=('interpolate',)")
            latents, seeds = self._keyframes(
                prompt, negative_prompt, seed, num_frames, height, width, fps, num_inference_steps, guidance_scale,
                eta, prompt_embeds, negative_prompt_embeds, image, video, strength, guidance_rescale, mode, overlap,
                window_method, noise_prior, window_guidance_scale, window_noise,
            )  # fmt: skip
            latents_by_stage["keyframes"] = latents
        else:
            if keyframe_latents is None:
                raise ValueError("stages start at 'interpolate': pass keyframe_latents (a stored keyframes output)")
            latents = keyframe_latents.to(self._execution_device, self.unet.dtype)
            seeds = _seeds(seed, latents.shape[0])
        if "interpolate" in stages:
            latents = self.interpolate(
                latents, seeds, fps=fps, num_inference_steps=interpolation_steps or INTERPOLATION_STEPS,
                guidance_scale=interpolation_guidance_scale, eta=eta, decode_chunk_size=decode_chunk_size,
            )  # fmt: skip
            latents_by_stage["interpolate"] = latents

        if output_type == "latent":
            out = latents
        else:
            frames = self.decode_latents(latents, chunk_size=decode_chunk_size)
            if "upsample" in stages:
                text = None
                if self.upsampler is not None and self.upsampler.config.cross_attention_dim is not None:
                    text = prompt_embeds if prompt is None else self.encode_prompt(
                        [prompt] * len(seeds) if isinstance(prompt, str) else list(prompt))
                frames = self.upsample(frames, seeds, noise_level=upsample_noise_level, num_inference_steps=upsample_steps,
                                       scheduler=upsample_scheduler, frame_batch=upsample_frame_batch,
                                       prompt_embeds=text)  # fmt: skip
            out = frames if output_type == "pt" else self.to_uint8(frames)
        self.maybe_free_model_hooks()
        return MagicVideoPipelineOutput(frames=out, latents=latents_by_stage) if return_dict else (out,)

    # ---- stage 1: key frames (3.1), with the applications of 4.3 ---------------------------

    def _keyframes(self, prompt, negative_prompt, seed, num_frames, height, width, fps, num_inference_steps,
                   guidance_scale, eta, prompt_embeds, negative_prompt_embeds, image, video, strength,
                   guidance_rescale=0.0, mode="t2v", overlap=1, window_method="held", noise_prior=None,
                   window_guidance_scale=None, window_noise="reuse"):  # fmt: skip
        from .long_video import check_mode, check_window_method, check_window_noise, window_count

        check_mode(mode)
        check_window_method(window_method)
        check_window_noise(window_noise)
        if prompt_embeds is None:
            if prompt is None:
                raise ValueError("pass a prompt (or prompt_embeds)")
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            prompt_embeds = self.encode_prompt(prompts)
        batch = prompt_embeds.shape[0]
        if batch == 0:
            raise ValueError("no prompts given")
        seeds = _seeds(seed, batch)
        num_frames = num_frames or self.unet.config.num_frames
        window = self.unet.config.num_frames
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
        window_count(num_frames, window, overlap, window_method)  # validates overlap
        magic = (mode == "magic141" or num_frames > window or (image is not None and self.i2v is not None)
                 or (num_frames < window and self.unet.config.use_adaptor))  # fewer: one window, cut
        if video is not None and magic:
            raise ValueError(f"video variation / editing takes one {window}-frame window: num_frames <= {window}, "
                             "mode 't2v'")  # fmt: skip
        device, dtype = self._execution_device, self.unet.dtype
        given = None  # the application's pixels: (B, 3, F, H, W) in [-1, 1]
        if image is not None:
            given = _as_frames(image, batch, video=False, height=height, width=width)
        elif video is not None:
            given = _as_frames(video, batch, video=True, height=height, width=width)
            if given.shape[2] != num_frames:
                raise ValueError(f"video has {given.shape[2]} frames; the key-frame model takes num_frames={num_frames} "
                                 "(sample that many frames from it, e.g. uniformly)")  # fmt: skip
            if not 0 < strength <= 1:
                raise ValueError(f"strength must be in (0, 1], got {strength}")
        if given is not None and height is None and width is None:
            height, width = given.shape[-2:]
        default_side = (self.unet.config.sample_size or 32) * self.vae_scale_factor
        height, width = height or default_side, width or default_side
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(f"height and width must be multiples of {self.vae_scale_factor}, got {height}x{width}")

        prompt_embeds = prompt_embeds.to(device, dtype)
        # sliding windows after the first may have their own CFG scale: the unconditional tokens are needed if either is > 1
        do_cfg = guidance_scale > 1.0 or (magic and window_guidance_scale is not None and window_guidance_scale > 1.0)
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
        if magic:  # Magic 1-For-1: magic141, the I2V model, sliding windows
            from .long_video import generate

            latents = generate(self, cond, seeds, num_frames, height, width, fps, num_inference_steps, guidance_scale,
                               eta, guidance_rescale, image=given, mode=mode, overlap=overlap,
                               window_method=window_method, noise_prior=self.noise_prior(noise_prior),
                               window_guidance_scale=window_guidance_scale, window_noise=window_noise)  # fmt: skip
            return latents, seeds

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        latents, generators = self.prepare_latents(seeds, num_frames, height, width, dtype, noise_prior)
        noise = latents / self.scheduler.init_noise_sigma
        known = known_mask = None
        if video is not None:
            # SDEdit: start from the given clip noised to `strength` (diffusers' img2img schedule)
            clean = self.encode_frames(given.to(device)).to(dtype)
            steps = min(int(num_inference_steps * strength), num_inference_steps)
            if steps < 1:
                raise ValueError(f"strength {strength} x {num_inference_steps} steps leaves no denoising step")
            start = (num_inference_steps - steps) * self.scheduler.order
            timesteps = timesteps[start:]
            if hasattr(self.scheduler, "set_begin_index"):
                self.scheduler.set_begin_index(start)
            latents = self.scheduler.add_noise(clean, noise, timesteps[:1].repeat(batch))
        elif image is not None:
            # image-to-video: frame 0 is the image's latent, re-noised to every step's level
            z = self.encode_frames(given.to(device)).to(dtype)  # (B, C, 1, h, w)
            known = torch.zeros_like(latents)
            known[:, :, :1] = z
            known_mask = torch.zeros(1, 1, num_frames, 1, 1, dtype=torch.bool, device=device)
            known_mask[:, :, 0] = True
        fps_t = torch.full((cond.shape[0],), float(fps), device=device)
        latents = self.denoise(
            self.unet, latents, timesteps, cond, fps_t if self.unet.config.fps_conditioning else None, guidance_scale,
            generators, eta, known=known, known_mask=known_mask, noise=noise, guidance_rescale=guidance_rescale,
        )  # fmt: skip
        return latents, seeds

    # ---- stage 2: frame interpolation (3.2) ------------------------------------------------

    @torch.no_grad()
    def interpolate(
        self,
        keyframe_latents: torch.Tensor,
        seeds: Sequence[int],
        fps: float = 8.0,
        num_inference_steps: int = 50,
        guidance_scale: float = 1.0,
        eta: float = 0.0,
        decode_chunk_size: int = 16,
    ) -> torch.Tensor:
        """Key frames ``(B, C, K, h, w)`` (scaled latents) -> ``(B, C, K + 3 (K - 1), h, w)``.

        Every adjacent pair of key frames becomes one 5-frame window, and all ``B (K - 1)``
        windows are denoised as one batch by the ``interpolation`` U-Net
        (:class:`~magicvideo.models.InterpolationUNet`), conditioned on the pair's latents
        (concatenated to the noise at window positions 0 and 4) and their CLIP image embeddings
        (the decoded key frames through ``image_encoder``; cross-attention), at FPS ``4 * fps``.
        The key-frame positions of each window are held at the key latents re-noised to every
        step's level, as in training; the output's key frames are the input's exactly. A
        ``blend_residual`` model denoises the correction to the pair's latent blend (zero at the
        key positions), which is added back. Clip k's
        noise comes from ``stage_seed(seeds[k], "interpolate")``, its windows drawn in order, so
        the result does not depend on the batch.
        """
        from .models.interpolation import insert_frames, keyframe_pairs, pair_tokens

        if self.interpolation is None or self.image_encoder is None:
            raise ValueError(
                "this pipeline has no interpolation stage: it needs the `interpolation` (InterpolationUNet) and "
                "`image_encoder` (CLIPVisionModelWithProjection) components (a pipeline folder's interpolation/ and "
                "image_encoder/; magicvideo train shapes' interpolation stage writes them)"
            )
        model = self.interpolation
        b, c, k, h, w = keyframe_latents.shape
        if len(seeds) != b:
            raise ValueError(f"got {len(seeds)} seeds for {b} clips")
        device, dtype = self._execution_device, model.dtype
        z = keyframe_latents.to(device, dtype)
        pairs = keyframe_pairs(z)  # (B (K-1), C, 2, h, w)
        n, win = pairs.shape[0], model.window
        tokens = pair_tokens(self.embed_frames(self.decode_latents(z, chunk_size=decode_chunk_size)).to(device, dtype))
        do_cfg = guidance_scale > 1.0
        cond = torch.cat([torch.zeros_like(tokens), tokens]) if do_cfg else tokens
        pair_in = torch.cat([pairs, pairs]) if do_cfg else pairs

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        # each clip's generator, once per window of that clip: draws in window order, batch-independent
        generators = [torch.Generator("cpu").manual_seed(stage_seed(s, "interpolate")) for s in seeds]
        per_window = [g for g in generators for _ in range(k - 1)]
        noise = randn_tensor((n, c, win, h, w), generator=per_window, device=device, dtype=dtype)
        reference = model.reference(pairs)  # zeros, or the latent blend a residual model corrects
        known = torch.zeros_like(noise)
        known[:, :, [0, -1]] = pairs - reference[:, :, [0, -1]]
        known_mask = torch.zeros(1, 1, win, 1, 1, dtype=torch.bool, device=device)
        known_mask[:, :, 0] = known_mask[:, :, -1] = True
        fps_t = torch.full((cond.shape[0],), float(fps) * (win - 1), device=device)
        windows = self.denoise(
            model, noise * self.scheduler.init_noise_sigma, self.scheduler.timesteps, cond,
            fps_t if model.config.fps_conditioning else None, guidance_scale, per_window, eta,
            known=known, known_mask=known_mask, noise=noise, model_kwargs={"keyframes": pair_in},
        )  # fmt: skip
        return insert_frames(keyframe_latents.to(device), windows + reference)

    @torch.no_grad()
    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings of frames ``(B, 3, F, H, W)`` in [-1, 1] -> ``(B, F, D)`` (the
        interpolation stage's cross-attention condition)."""
        from .conditioning import ImageEmbedder

        return ImageEmbedder(self.image_encoder)(((frames.float() + 1) / 2).clamp(0, 1))

    # ---- stage 3: super-resolution (3.4) ---------------------------------------------------

    @torch.no_grad()
    def upsample(
        self,
        frames: torch.Tensor,
        seeds: Sequence[int],
        noise_level: int | None = None,
        num_inference_steps: int | None = None,
        scheduler: str = "ddim",
        frame_batch: int = 16,
        prompt_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decoded clips ``(B, 3, F, H, W)`` in [-1, 1] -> ``(B, 3, F, 4H, 4W)`` in [-1, 1] with the
        ``upsampler`` (:func:`magicvideo.upsampling.upsample_clips`): frame by frame, in batches of
        `frame_batch`, every frame of clip k with the same noise, from ``stage_seed(seeds[k],
        "upsample")``, so a clip does not flicker and the result does not depend on the batch.
        `prompt_embeds` ``(B, L, D)``: the text condition of a text-conditioned upsampler."""
        from .upsampling import DEFAULT_STEPS, upsample_clips

        self._require_upsampler()
        return upsample_clips(self.upsampler, frames, seeds, noise_level=noise_level,
                              num_inference_steps=num_inference_steps or DEFAULT_STEPS, scheduler=scheduler,
                              frame_batch=frame_batch, encoder_hidden_states=prompt_embeds,
                              progress=self.progress_bar)  # fmt: skip

    def _require_upsampler(self) -> None:
        if self.upsampler is None:
            raise ValueError(
                "this pipeline has no upsample stage: it needs the `upsampler` component (UpsamplerUNet; a pipeline "
                "folder's upsampler/, written by scripts/train_upsampler.py or magicvideo train shapes' upsample stage)"
            )

    # ---- the shared denoising loop ---------------------------------------------------------

    def denoise(self, model, latents, timesteps, cond, fps, guidance_scale, generators, eta=0.0, known=None,
                known_mask=None, noise=None, model_kwargs=None, guidance_rescale=0.0) -> torch.Tensor:  # fmt: skip
        """The sampling loop of every stage: classifier-free guidance (cond's first half is the
        unconditional one when ``guidance_scale > 1``) and, where `known` is given, replacement
        of the positions `known_mask` marks (frames) by ``scheduler.add_noise(known, noise, t)``
        before every step and by `known` itself after the last (the inpainting method: the
        frozen positions follow the forward process, the others are denoised around them)."""
        do_cfg = guidance_scale > 1.0
        accepted = inspect.signature(self.scheduler.step).parameters
        step_kwargs = {k: v for k, v in {"generator": generators, "eta": eta}.items() if k in accepted}
        model_kwargs = model_kwargs or {}
        for t in self.progress_bar(timesteps):
            if known is not None:
                noisy = self.scheduler.add_noise(known, noise, t.reshape(1).repeat(latents.shape[0]))
                latents = torch.where(known_mask, noisy.to(latents.dtype), latents)
            model_in = torch.cat([latents] * 2) if do_cfg else latents
            model_in = self.scheduler.scale_model_input(model_in, t)
            pred = model(model_in, t, cond, fps=fps, **model_kwargs).sample
            if do_cfg:
                uncond, text = pred.chunk(2)
                pred = uncond + guidance_scale * (text - uncond)
                if guidance_rescale > 0:
                    pred = rescale_noise_cfg(pred, text, guidance_rescale)
            latents = self.scheduler.step(pred, t, latents, **step_kwargs).prev_sample
        if known is not None:
            latents = torch.where(known_mask, known.to(latents.dtype), latents)
        return latents

    # ---- the applications (4.3), as documented calls ----------------------------------------

    def image_to_video(self, image, prompt: str | Sequence[str], **kwargs) -> MagicVideoPipelineOutput:
        """Image-to-video (4.3): a clip whose first frame is `image`.

        Method: the image is encoded by the VAE (posterior mode) and frame 0's latent is held
        fixed while the other frames are sampled: before every denoising step frame 0 is
        replaced by the image latent noised to that step's level (``scheduler.add_noise``, the
        noise drawn once), after the last by the image latent itself, as in diffusion
        inpainting. The key-frame model's directed temporal attention (eq. 4) lets every later
        frame attend to frame 0, and frame 0 attends to itself only, so it never sees the frames
        it conditions; no retraining is needed. With the VideoVAE's directed temporal layers
        frame 0 also decodes on its own: the output's first frame is the image's VAE
        reconstruction. With an ``i2v`` component (:class:`~magicvideo.models.ImageToVideoUNet`) the
        I2V model makes the clip instead: the image latent is concatenated to the noise and its CLIP
        embedding joins the text in the cross-attention (:mod:`magicvideo.long_video`). `kwargs` are
        those of ``__call__`` (seed, steps, stages, num_frames, ...)."""
        return self(prompt, image=image, **kwargs)

    def video_variation(self, video, strength: float = 0.6, prompt: str | Sequence[str] = "", **kwargs
                        ) -> MagicVideoPipelineOutput:  # fmt: skip
        """Video variation (4.3), SDEdit: the clip's latents are noised to the level of step
        ``strength * num_inference_steps`` from the end (``scheduler.add_noise``) and denoised
        from there, so the result keeps the clip's layout and motion (less with higher
        `strength`). `prompt` may describe the clip (or stay empty); `video` holds num_frames
        frames (the CLI samples them uniformly from a file)."""
        return self(prompt, video=video, strength=strength, **kwargs)

    def edit_video(self, video, prompt: str | Sequence[str], strength: float = 0.7, **kwargs) -> MagicVideoPipelineOutput:
        """Text-guided video editing (4.3): :meth:`video_variation` with a new prompt, which guides
        the denoising (classifier-free guidance) away from the clip's content towards the text."""
        return self(prompt, video=video, strength=strength, **kwargs)


# ---- the cascade's stages (names and components: magicvideo.stages) --------------------------

def stage_seed(seed: int, stage: str) -> int:
    """The seed of a later stage's noise, derived from the sample's seed (a separate stream, so a
    stage run alone from stored inputs draws the same noise as in the whole cascade)."""
    import hashlib

    return int(hashlib.sha256(f"{int(seed)}:{stage}".encode()).hexdigest()[:15], 16)


def cascade_identity(folder: str | Path, stages: str | Sequence[str] = ("keyframes",), mode: str = "t2v",
                     num_frames: int | None = None, image: bool = False, window_method: str = "held") -> str:
    """A stable identity (SHA-256 hex) of a cascade run from a saved pipeline folder: the stage
    names, and the relative paths and contents of the files of every component those stages
    read (:data:`STAGE_COMPONENTS`; ``model_index.json`` and other folders are not read). So
    adding an ``interpolation/`` model to a folder leaves its key-frame samples' identity as it
    was, and the same folder run to 61 frames has another. For the sample store's content
    address: a sample of the "interpolate" stage should be addressed with the whole chain,
    ``("keyframes", "interpolate")``, since its key frames come from the first stage.

    `mode` "magic141", `num_frames` above the U-Net's window (a sliding-window clip) with
    ``window_method="i2v"``, or `image` (image-to-video, which reads the I2V model when the folder
    has one) add the components those read (:func:`magicvideo.stages.mode_components`: ``i2v``,
    ``image_encoder``, ``t2i_unet``), each hashed when the folder holds it and recorded as absent
    otherwise (the pipeline then takes its fallback); a sliding-window clip whose windows are held
    by the key-frame model (``"held"``, the default) reads no more than the key frames do, but is
    marked as long. The defaults give the identity as before."""
    import hashlib
    import json

    from .stages import mode_components

    root = Path(folder)
    if not (root / "model_index.json").is_file():
        raise FileNotFoundError(f"{root} is not a saved MagicVideoPipeline folder (no model_index.json)")
    names = resolve_stages(stages)
    h = hashlib.sha256(("stages:" + ",".join(names) + "\0").encode())
    components = sorted({c for s in names for c in STAGE_COMPONENTS[s]})
    window = num_frames
    if num_frames is not None and (root / "unet" / "config.json").is_file():
        window = json.loads((root / "unet" / "config.json").read_text()).get("num_frames", 16)
    long = num_frames is not None and num_frames > window
    extra = [c for c in mode_components(mode, (long and window_method == "i2v") or image) if c not in components]
    if extra or long:
        method = f";windows:{window_method}" if long else ""
        h.update(f"mode:{mode};frames:{num_frames};image:{int(image)}{method}\0".encode())
        for comp in extra:
            if not (root / comp).is_dir():
                h.update(f"absent:{comp}\0".encode())
                continue
            components.append(comp)
    for comp in components:
        sub = root / comp
        if not sub.is_dir():
            stage = next(s for s in names if comp in STAGE_COMPONENTS[s])
            raise FileNotFoundError(f"stage {stage!r} needs the component folder {sub}, which is missing")
        for f in sorted(p for p in sub.rglob("*") if p.is_file()):
            h.update(f.relative_to(root).as_posix().encode() + b"\0")
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def add_interpolation(folder: str | Path, interpolation, image_encoder) -> Path:
    """Write an interpolation stage into a saved pipeline folder: ``interpolation/`` and
    ``image_encoder/`` (``save_pretrained``) and their ``model_index.json`` entries; the other
    components' files are left as they are."""
    return _add_components(folder, {
        "interpolation": (interpolation, [type(interpolation).__module__, type(interpolation).__name__]),
        "image_encoder": (image_encoder, ["transformers", type(image_encoder).__name__]),
    })  # fmt: skip


def add_upsampler(folder: str | Path, upsampler) -> Path:
    """Write an upsample stage into a saved pipeline folder: ``upsampler/`` (``save_pretrained``;
    a complete SR checkpoint on its own, what ``magicvideo upsample --checkpoint`` reads) and its
    ``model_index.json`` entry; the other components' files are left as they are."""
    return _add_components(folder, {"upsampler": (upsampler, [type(upsampler).__module__, type(upsampler).__name__])})


def add_i2v(folder: str | Path, i2v=None, image_encoder=None, t2i_unet=None) -> Path:
    """Write Magic 1-For-1's components into a saved pipeline folder: ``i2v/``
    (:class:`~magicvideo.models.ImageToVideoUNet`), ``image_encoder/`` (when given; the I2V model
    reads its CLIP embeddings) and ``t2i_unet/`` (a ``UNet2DConditionModel``: magic141's first
    frame), each when given, with their ``model_index.json`` entries."""
    parts = {}
    if i2v is not None:
        parts["i2v"] = (i2v, [type(i2v).__module__, type(i2v).__name__])
    if image_encoder is not None:
        parts["image_encoder"] = (image_encoder, ["transformers", type(image_encoder).__name__])
    if t2i_unet is not None:
        parts["t2i_unet"] = (t2i_unet, ["diffusers", type(t2i_unet).__name__])
    return _add_components(folder, parts)


def _add_components(folder: str | Path, components: dict[str, tuple]) -> Path:
    """``save_pretrained`` each ``name: (module, index entry)`` into ``folder/name`` and write the
    entries into ``model_index.json`` (atomically)."""
    import json

    root = Path(folder)
    index_file = root / "model_index.json"
    if not index_file.is_file():
        raise FileNotFoundError(f"{root} is not a saved MagicVideoPipeline folder (no model_index.json)")
    index = json.loads(index_file.read_text())
    for name, (module, entry) in components.items():
        module.save_pretrained(root / name)
        index[name] = entry
    tmp = index_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, index_file)
    return root


def _seeds(seed: int | Sequence[int], batch: int) -> list[int]:
    seeds = [seed] * batch if isinstance(seed, int) else list(seed)
    if len(seeds) != batch:
        raise ValueError(f"got {len(seeds)} seeds for {batch} prompts: pass one seed per prompt")
    return seeds


def _as_frames(x, batch: int, video: bool, height: int | None, width: int | None) -> torch.Tensor:
    """An image or clip as float frames ``(B, 3, F, H, W)`` in [-1, 1] (F = 1 for an image),
    broadcast to `batch`, resized (bilinear, antialiased) to height x width when given."""
    import torch.nn.functional as F

    if not isinstance(x, (np.ndarray, torch.Tensor)):
        x = np.asarray(x.convert("RGB")) if hasattr(x, "convert") else np.asarray(x)  # PIL image
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8 or x.shape[-1] != 3:
            raise ValueError(f"{'video' if video else 'image'} arrays must be uint8 (..., H, W, 3), got {x.dtype} {x.shape}")
        t = torch.from_numpy(np.ascontiguousarray(x)).float() / 127.5 - 1
        want = 4 if video else 3
        if t.ndim == want:
            t = t[None]
        if t.ndim != want + 1:
            raise ValueError(f"expected a {'(F, H, W, 3)' if video else '(H, W, 3)'} array or a batch of them, got {x.shape}")
        t = t.permute(0, 4, 1, 2, 3) if video else t.permute(0, 3, 1, 2)[:, :, None]
    else:
        t = x.float()
        if not video:
            t = t[None] if t.ndim == 3 else t
            t = t[:, :, None]
        elif t.ndim == 4:
            t = t[None]
        if t.ndim != 5 or t.shape[1] != 3:
            raise ValueError(f"expected float (B, 3, {'F, ' if video else ''}H, W) frames in [-1, 1], got {tuple(x.shape)}")
    if t.shape[0] == 1 and batch > 1:
        t = t.expand(batch, *t.shape[1:])
    if t.shape[0] != batch:
        raise ValueError(f"got {t.shape[0]} {'videos' if video else 'images'} for {batch} prompts")
    h, w = height or t.shape[-2], width or t.shape[-1]
    if (h, w) != tuple(t.shape[-2:]):
        b, c, f = t.shape[:3]
        flat = t.transpose(1, 2).reshape(b * f, c, *t.shape[-2:])
        flat = F.interpolate(flat, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        t = flat.view(b, f, c, h, w).transpose(1, 2)
    return t.clamp(-1, 1)
