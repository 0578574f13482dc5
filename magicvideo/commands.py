"""`magicvideo generate` and `magicvideo flops` (registered in pyproject's entry points)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate clips from prompts and write mp4 files")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", default="tiny", help="model config name or YAML path (default: tiny)")
    src.add_argument("--pipeline", type=Path, help="a saved pipeline folder (save_pretrained) to load instead")
    p.add_argument("--weights", choices=["random", "pretrained"], default="random",
                   help="with --config: random init, or inflate the config's pretrained_2d checkpoint")
    p.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for several clips)")
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--seed", type=int, default=0, help="seed of the first clip; clip k uses seed + k")
    p.add_argument("--steps", type=int, help="denoising steps (default: the config's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the config's)")
    p.add_argument("--scheduler", help="ddim, dpm++, euler, euler_a, pndm, ddpm, unipc")
    p.add_argument("--fps", type=float, help="frame rate nu to condition on (eq. 5; default: the config's)")
    p.add_argument("--out", type=Path, default=Path("outputs/clip.mp4"),
                   help="mp4 path; with several prompts, files get a _k suffix")
    p.add_argument("--save-pipeline", type=Path, help="also write the pipeline folder here")
    p.add_argument("--device", default="auto", help="cuda, cpu, ... (default auto: cuda when available)")
    p.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .build import build_pipeline, load_model_config
    from .pipeline import MagicVideoPipeline
    from .video_io import write_mp4

    console = Console()
    if args.pipeline:
        if not args.pipeline.is_dir():
            raise FileNotFoundError(f"pipeline folder not found: {args.pipeline}")
        pipe = MagicVideoPipeline.from_pretrained(args.pipeline)
        steps, guidance, fps = 50, 7.5, 8.0
    else:
        cfg = load_model_config(args.config)
        pipe = build_pipeline(cfg, weights=args.weights)
        steps, guidance, fps = cfg.scheduler.num_inference_steps, cfg.scheduler.guidance_scale, cfg.fps
    if args.scheduler:
        pipe.set_scheduler(args.scheduler)
    pipe.to(("cuda" if _cuda() else "cpu") if args.device == "auto" else args.device)
    if args.save_pipeline:
        pipe.save_pretrained(args.save_pipeline)
        console.print(f"pipeline saved to {args.save_pipeline}")
    fps = args.fps or fps
    start = time.perf_counter()
    out = pipe(
        args.prompt,
        negative_prompt=args.negative_prompt,
        seed=[args.seed + k for k in range(len(args.prompt))],
        num_inference_steps=args.steps or steps,
        guidance_scale=guidance if args.guidance is None else args.guidance,
        fps=fps,
    ).frames
    elapsed = time.perf_counter() - start
    for k, (prompt, clip) in enumerate(zip(args.prompt, out)):
        path = args.out if len(args.prompt) == 1 else args.out.with_name(f"{args.out.stem}_{k}{args.out.suffix}")
        write_mp4(path, clip, fps=fps)
        console.print(f"[green]wrote[/] {path}  ({clip.shape[0]} frames {clip.shape[2]}x{clip.shape[1]})  {prompt!r}")
    console.print(f"{len(out)} clip(s) in {elapsed:.1f} s")
    return 0


def add_flops(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flops", help="count FLOPs and parameters of one denoising step of a model config")
    p.add_argument("--config", default="sd15")
    p.add_argument("--batch", type=int, default=1, help="clips per forward")
    p.add_argument("--latent", type=int, help="latent side (default: the config's unet.sample_size)")
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
