"""`magicvideo generate`, `magicvideo upsample` and `magicvideo flops` (registered in pyproject's
entry points)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_generate(sub: argparse._SubParsersAction) -> None:
    from .validate import non_negative_float, non_negative_int, positive_float, positive_int, utf8_text

    p = sub.add_parser("generate", help="generate clips from prompts and write mp4 files")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", default="tiny", help="model config name or YAML path (default: tiny)")
    src.add_argument("--pipeline", type=Path, help="a saved pipeline folder (save_pretrained) to load instead")
    p.add_argument("--weights", choices=["random", "pretrained"], default="random",
                   help="with --config: random init, or inflate the config's pretrained_2d checkpoint")
    p.add_argument("--prompt", action="append", required=True, type=utf8_text,
                   help="a prompt (repeat for several clips)")
    p.add_argument("--negative-prompt", default="", type=utf8_text, help="what to steer away from (CFG)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the first clip; clip k uses seed + k")
    p.add_argument("--steps", type=positive_int,
                   help="denoising steps (default: the config's; a distilled student's own, from its distillation.json)")
    p.add_argument("--guidance", type=non_negative_float,
                   help="classifier-free guidance scale, 1 = off (default: the config's)")
    p.add_argument("--scheduler", help="ddim, dpm++, euler, euler_a, pndm, ddpm, unipc (default: the config's)")
    p.add_argument("--fps", type=positive_float, help="frame rate nu to condition on (eq. 5; default: the config's)")
    p.add_argument("--out", type=Path, default=Path("outputs/clip.mp4"),
                   help="mp4 path; with several prompts, files get a _k suffix")
    p.add_argument("--save-pipeline", type=Path, help="also write the pipeline folder here")
    p.add_argument("--device", default="auto", help="cuda, cpu, ... (default auto: cuda when available)")
    p.add_argument("--quantize", choices=["int8_weight_only", "int8_dynamic"],
                   help="quantize the U-Net's linear layers (torchao; magicvideo.quantize); default: no quantization")
    p.add_argument("--stages", default="keyframes",
                   help="cascade stages, comma-separated: keyframes (16 frames, 3.1), keyframes,interpolate (61 "
                        "frames at 4x the fps, 3.2; needs a pipeline with interpolation/ and image_encoder/), "
                        "...,upsample (frames at 4x the size, 3.4; needs a pipeline with upsampler/)")
    p.add_argument("--upsample-steps", type=positive_int, help="with the upsample stage: its denoising steps (default 25)")
    p.add_argument("--noise-level", type=non_negative_int,
                   help="with the upsample stage: the noise-conditioning augmentation level of its input, 0..the "
                        "model's max_noise_level (default: the model's default_noise_level, 20)")
    p.add_argument("--num-frames", type=positive_int,
                   help="frames of the clip (default: the model's window, 16); more makes a sliding-window clip of "
                        "exactly N frames, each window continuing the previous one's last --overlap frames "
                        "(--window-method; magicvideo.long_video)")
    p.add_argument("--overlap", type=positive_int, default=1,
                   help="with --num-frames above the window: frames shared by consecutive windows (default 1)")
    p.add_argument("--window-method", choices=["held", "anchored", "i2v"], default="held",
                   help="with --num-frames above the window: how a window continues the previous one: held (the "
                        "key-frame model's directed attention with those frames held; default, drifts less on "
                        "shapes), anchored (the same, with the clip's first frame held in every window too) or i2v "
                        "(through the pipeline's image-to-video model)")
    p.add_argument("--window-guidance", type=non_negative_float, metavar="SCALE",
                   help="with --num-frames above the window: the CFG scale of the windows after the first (default: "
                        "--guidance; the first window keeps that)")
    p.add_argument("--window-noise", choices=["fresh", "reuse", "shuffle"], default="reuse",
                   help="with --num-frames above the window: the initial noise of the windows after the first: reuse "
                        "(the first window's; default, drifts least on shapes), fresh (drawn anew; before 2026-12-03) "
                        "or shuffle (its frames in a new order, FreeNoise)")
    p.add_argument("--noise-prior", type=float, metavar="ALPHA",
                   help="the key frames' mixed noise prior (PYoCo's alpha: every frame's noise shares one map with "
                        "this weight; 0 = i.i.d. per frame; magicvideo.noise_prior); default: the model's own")
    p.add_argument("--mode", choices=["t2v", "magic141"], default="t2v",
                   help="t2v: the key-frame model makes the clip; magic141: a text-to-image U-Net makes the first "
                        "frame, then the image-to-video model the clip (Magic 1-For-1)")
    app = p.add_mutually_exclusive_group()
    app.add_argument("--image", type=Path, help="image-to-video (4.3): this image is the first frame (its latent "
                     "is held fixed while the others are sampled)")
    app.add_argument("--video", type=Path, help="video variation / text-guided editing (4.3, SDEdit): num_frames "
                     "frames taken uniformly from this video, noised to --strength and denoised with --prompt")
    p.add_argument("--strength", type=positive_float, default=0.6,
                   help="with --video: noise level in (0, 1]; higher departs further from the video (default 0.6)")
    p.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    window = None
    if args.pipeline and (args.pipeline / "unet" / "config.json").is_file():
        import json

        window = json.loads((args.pipeline / "unet" / "config.json").read_text()).get("num_frames")
    if window and args.overlap >= window:
        raise ValueError(f"--overlap must be below the model's window of {window} frames, got {args.overlap}")
    if args.video and (args.mode != "t2v" or (args.num_frames and window and args.num_frames > window)):
        raise ValueError("--video (variation / editing) takes one window: no --mode magic141, no --num-frames above it")
    if args.image and args.mode == "magic141":
        raise ValueError("--image gives the first frame; --mode magic141 makes it from the text: use one of them")
    if "upsample" not in args.stages and (args.noise_level is not None or args.upsample_steps is not None):
        raise ValueError("--noise-level and --upsample-steps set the upsample stage: add it to --stages")
    if args.pipeline:  # a missing file or truncated weights: one line, before torch is even imported
        from .validate import check_pipeline_folder

        check_pipeline_folder(args.pipeline)
    from rich.console import Console

    from .build import build_pipeline, load_model_config
    from .pipeline import MagicVideoPipeline
    from .video_io import write_mp4

    console = Console()
    if args.pipeline:
        pipe = MagicVideoPipeline.from_pretrained(args.pipeline)
        steps, guidance, fps = 50, 7.5, 8.0
        from .checkpoints import sample_with

        own = sample_with(args.pipeline)  # a distilled student samples as it was trained
        steps, guidance = own.get("num_inference_steps", steps), own.get("guidance_scale", guidance)
    else:
        cfg = load_model_config(args.config)
        pipe = build_pipeline(cfg, weights=args.weights)
        steps, guidance, fps = cfg.scheduler.num_inference_steps, cfg.scheduler.guidance_scale, cfg.fps
    from .conditioning import long_prompts

    long = long_prompts(pipe.tokenizer, args.prompt)
    if long:  # the text encoder drops their tail: say so, once
        import logging

        logging.getLogger("magicvideo.generate").warning(
            "%d of %d prompts are longer than the text encoder's %d tokens and are truncated to them (prompt %s)",
            len(long), len(args.prompt), pipe.tokenizer.model_max_length, ", ".join(str(i + 1) for i in long))
    if args.scheduler:
        pipe.set_scheduler(args.scheduler)
    pipe.to(("cuda" if _cuda() else "cpu") if args.device == "auto" else args.device)
    if args.quantize:
        from .quantize import quantize_pipeline

        q = quantize_pipeline(pipe, args.quantize)
        console.print(f"U-Net: {q['layers']} linear layers quantized ({args.quantize}), "
                      f"{q['bytes_before'] / 2**20:.1f} -> {q['bytes_after'] / 2**20:.1f} MiB")
    if args.save_pipeline:
        pipe.save_pretrained(args.save_pipeline)
        console.print(f"pipeline saved to {args.save_pipeline}")
    from .pipeline import resolve_stages

    stages = resolve_stages(args.stages)
    side = (pipe.unet.config.sample_size or 32) * pipe.vae_scale_factor
    inputs: dict = {}
    if args.image:
        inputs["image"] = _read_image(args.image, side)
    if args.video:
        inputs["video"], nu = _read_video(args.video, pipe.unet.config.num_frames, side)
        inputs["strength"] = args.strength
        fps = nu  # the sampled frames' own rate (3.1.3), unless --fps says otherwise
    fps = fps if args.fps is None else args.fps
    start = time.perf_counter()
    out = pipe(
        args.prompt,
        negative_prompt=args.negative_prompt,
        seed=[args.seed + k for k in range(len(args.prompt))],
        num_inference_steps=steps if args.steps is None else args.steps,
        guidance_scale=guidance if args.guidance is None else args.guidance,
        fps=fps,
        stages=stages,
        upsample_steps=args.upsample_steps,
        upsample_noise_level=args.noise_level,
        num_frames=args.num_frames,
        overlap=args.overlap,
        window_method=args.window_method,
        window_guidance_scale=args.window_guidance,
        window_noise=args.window_noise,
        mode=args.mode,
        noise_prior=args.noise_prior,
        **inputs,
    ).frames
    elapsed = time.perf_counter() - start
    if "interpolate" in stages:
        fps = fps * (pipe.interpolation.window - 1)  # 3 new frames between key frames: 4x the rate
    for k, (prompt, clip) in enumerate(zip(args.prompt, out)):
        path = args.out if len(args.prompt) == 1 else args.out.with_name(f"{args.out.stem}_{k}{args.out.suffix}")
        write_mp4(path, clip, fps=fps)
        console.print(f"[green]wrote[/] {path}  ({clip.shape[0]} frames {clip.shape[2]}x{clip.shape[1]})  {prompt!r}")
    console.print(f"{len(out)} clip(s) in {elapsed:.1f} s")
    return 0


def _read_image(path: Path, side: int):
    """An image file as uint8 ``(side, side, 3)`` (shorter side resized, centre crop)."""
    import numpy as np
    from PIL import Image

    from .data.video import resize_frames

    if not path.is_file():
        raise FileNotFoundError(f"--image: file not found: {path}")
    with Image.open(path) as im:
        return resize_frames(np.asarray(im.convert("RGB"))[None], side)[0]


def _read_video(path: Path, num_frames: int, side: int):
    """`num_frames` frames taken uniformly over a whole video, resized to `side` (shorter side,
    centre crop): uint8 ``(num_frames, side, side, 3)`` and their rate ``nu = num_frames / N * fps``."""
    import numpy as np

    from .data.video import read_whole_video

    if not path.is_file():
        raise FileNotFoundError(f"--video: file not found: {path}")
    frames, rate = read_whole_video(path, size=side)
    n = len(frames)
    if n < num_frames:
        raise ValueError(f"--video {path}: {n} frames, the key-frame model needs at least {num_frames}")
    idx = np.round(np.linspace(0, n - 1, num_frames)).astype(int)
    return frames[idx], num_frames / n * rate


def add_upsample(sub: argparse._SubParsersAction) -> None:
    from .validate import non_negative_int, positive_int

    p = sub.add_parser("upsample", help="upsample a clip x4 with the diffusion super-resolution model (3.4)")
    p.add_argument("input", metavar="IN", type=Path, help="a video file (any size; every frame is upsampled)")
    p.add_argument("--out", type=Path, required=True, help="mp4 path of the upsampled clip (same frame rate)")
    p.add_argument("--checkpoint", type=Path,
                   help="an UpsamplerUNet folder (default: the committed checkpoints/shapes/pipeline/upsampler)")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="noise seed (every frame of the clip draws the same noise, so it does not flicker)")
    p.add_argument("--noise-level", type=non_negative_int,
                   help="noise-conditioning augmentation level of the input, 0..the model's max_noise_level "
                        "(default: the model's default_noise_level: 20, or 0 for a model trained without augmentation)")
    p.add_argument("--steps", type=positive_int, default=25, help="denoising steps")
    p.add_argument("--scheduler", default="ddim", help="ddim, dpm++, euler, euler_a, pndm, ddpm, unipc")
    p.add_argument("--frame-batch", type=positive_int, default=16, help="frames per U-Net forward (memory bound)")
    p.add_argument("--device", default="auto", help="cuda, cpu, ... (default auto: cuda when available)")
    p.set_defaults(func=run_upsample)


def run_upsample(args: argparse.Namespace) -> int:
    import json

    from .validate import InputError, check_model_folder

    folder = args.checkpoint
    if folder is None:
        from .checkpoints import shapes_checkpoint

        folder = shapes_checkpoint("pipeline") / "upsampler"
    check_model_folder(folder, "UpsamplerUNet", hint="train one with scripts/train_upsampler.py, or pass --checkpoint")
    if not args.input.is_file():
        raise InputError(f"IN: file not found: {args.input}")
    if args.out.suffix.lower() != ".mp4":
        raise InputError(f"--out must be an .mp4 path, got {args.out}")
    config = json.loads((folder / "config.json").read_text())
    top = config.get("max_noise_level", 350)
    if args.noise_level is not None and args.noise_level > top:
        raise InputError(f"--noise-level {args.noise_level}: the model {folder} takes 0..{top} (its max_noise_level)")
    if config.get("cross_attention_dim") is not None:
        raise InputError(f"{folder} is a text-conditioned upsampler; run it in a pipeline (magicvideo generate "
                         "--stages ...,upsample) with its text encoder")  # fmt: skip
    import numpy as np
    import torch
    from rich.console import Console

    from .data.video import VideoReadError, read_whole_video
    from .pipeline import make_scheduler
    from .upsampling import load_upsampler, upsample_clips
    from .video_io import write_mp4

    make_scheduler(args.scheduler)  # an unknown name fails before the video is read
    try:
        frames, fps = read_whole_video(args.input)
    except VideoReadError as exc:
        raise InputError(f"IN: {exc}") from None
    model = load_upsampler(folder).to(("cuda" if _cuda() else "cpu") if args.device == "auto" else args.device)
    start, parts = time.perf_counter(), []
    # a few frame batches at a time, to the host as uint8: every frame draws the clip's noise, so the
    # segments give the frames the whole clip would
    for k in range(0, len(frames), 4 * args.frame_batch):
        clip = torch.from_numpy(frames[k : k + 4 * args.frame_batch]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        out = upsample_clips(model, clip, [args.seed], noise_level=args.noise_level, num_inference_steps=args.steps,
                             scheduler=args.scheduler, frame_batch=args.frame_batch)  # fmt: skip
        parts.append(((out[0].permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy())
    elapsed = time.perf_counter() - start
    video = np.concatenate(parts)
    write_mp4(args.out, video, fps=fps)
    h, w = frames.shape[1:3]
    Console().print(f"[green]wrote[/] {args.out}  ({len(video)} frames {w}x{h} -> {video.shape[2]}x{video.shape[1]}, "
                    f"{fps:g} fps) in {elapsed:.1f} s")  # fmt: skip
    return 0


def add_flops(sub: argparse._SubParsersAction) -> None:
    from .validate import positive_int

    p = sub.add_parser("flops", help="count FLOPs and parameters of one denoising step of a model config")
    p.add_argument("--config", default="sd15", help="model config name (configs/model/) or YAML path")
    p.add_argument("--batch", type=positive_int, default=1, help="clips per forward")
    p.add_argument("--latent", type=positive_int, help="latent side (default: the config's unet.sample_size)")
    p.set_defaults(func=run_flops)


def run_flops(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .build import build_unet, load_model_config
    from .flops import unet_step_cost

    import torch

    cfg = load_model_config(args.config)
    with torch.device("meta"):
        unet = build_unet(cfg)
    cost = unet_step_cost(unet, batch=args.batch, height=args.latent, width=args.latent)
    side = args.latent or cfg.unet.sample_size
    table = Table(title=f"{cfg.name}: one U-Net forward, {args.batch} clip(s) x {cfg.num_frames} frames x {side}x{side} latents")
    table.add_column("module")
    table.add_column("GFLOP", justify="right")
    for name, flops in cost.by_module.items():
        table.add_row(name, f"{flops / 1e9:,.1f}")
    table.add_row("[bold]total[/]", f"[bold]{cost.flops / 1e9:,.1f}[/]")
    Console().print(table)
    print(f"parameters: {cost.params / 1e6:,.1f} M; per CFG step (2x batch): {2 * cost.flops / 1e12:,.2f} TFLOP")
    return 0


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - no torch build with CUDA: CPU default
        return False
