"""Speed of the interpolation stage (16 -> 61 frames) next to the key-frame stage (issue 13).

A model config's pipeline with random weights (``sd15``: the SD 1.5 U-Net inflated, 16 frames,
256x256 = 32x32 latents), its key-frame U-Net inflated as the interpolation U-Net
(:meth:`InterpolationUNet.from_keyframe_unet`) and a random CLIP image tower (ViT-L/14 layout,
projection 768, for sd15; a tiny one otherwise). Timed, median of ``--repeats``:

  * keyframes     the key-frame stage: N denoising steps with CFG (batch 2 x B clips x 16 frames)
  * interpolate   the interpolation stage from those key frames: VAE decode of the 16 key frames,
                  CLIP embeddings, N steps on B x 15 windows x 5 frames (CFG off by default)
  *   of which    the decode + CLIP part alone
  * decode 61     the VideoVAE decode of the 61 frames (what the cascade then costs to decode)
  * one U-Net step of each stage, and the ratio interpolate / keyframes (the goal: <= 1.5 at the
    same step count).

Work per step, in frame-forwards of the U-Net: the key-frame stage runs 2 x 16 = 32 (CFG), the
interpolation stage 15 x 5 = 75 (no CFG; 150 with it): the windows recompute their key frames,
so at equal step counts the interpolation stage does ~2.3x the key-frame stage's U-Net work.

Usage (repo root):
    python benchmarks/bench_interpolation.py --config sd15 --steps 50 --dtype bf16     # GPU
    python benchmarks/bench_interpolation.py --config tiny --steps 2 --device cpu --repeats 1   # CPU smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def timed(fn, device: str, repeats: int, warmup: int) -> float:
    """Median wall seconds of fn() (CUDA synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def image_encoder(cfg_name: str, dim: int):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    if cfg_name == "sd15":  # CLIP ViT-L/14 vision tower
        config = CLIPVisionConfig(image_size=224, patch_size=14, hidden_size=1024, num_hidden_layers=24,
                                  num_attention_heads=16, intermediate_size=4096, projection_dim=dim)  # fmt: skip
    else:
        config = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, projection_dim=dim)  # fmt: skip
    return CLIPVisionModelWithProjection(config)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="sd15", help="model config (configs/model): sd15 or tiny")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="bf16")
    p.add_argument("--steps", type=int, default=50, help="denoising steps of each stage (the same for both)")
    p.add_argument("--batch", type=int, default=1, help="clips")
    p.add_argument("--guidance", type=float, default=7.5, help="key-frame CFG scale")
    p.add_argument("--interpolation-guidance", type=float, default=1.0, help="interpolation CFG scale (1: off)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args()

    from magicvideo.build import build_pipeline, load_model_config
    from magicvideo.models import InterpolationUNet

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    if args.device == "cpu" and dtype != torch.float32:
        dtype = torch.float32  # CPU: fp32 only
    cfg = load_model_config(args.config)
    pipe = build_pipeline(cfg, weights="random", seed=0)
    pipe.register_modules(interpolation=InterpolationUNet.from_keyframe_unet(pipe.unet),
                          image_encoder=image_encoder(args.config, cfg.unet.cross_attention_dim))  # fmt: skip
    pipe.to(args.device, dtype)
    pipe.set_progress_bar_config(disable=True)
    prompts = ["a red circle moving left"] * args.batch
    seeds = list(range(args.batch))
    steps = args.steps
    res = {"config": args.config, "device": args.device, "dtype": str(dtype).split(".")[-1], "steps": steps,
           "batch": args.batch, "resolution": cfg.resolution, "key_frames": cfg.num_frames}  # fmt: skip
    if args.device.startswith("cuda"):
        res["gpu"] = torch.cuda.get_device_name()

    state = {}

    def keyframes():
        state["z"] = pipe(prompts, seed=seeds, num_inference_steps=steps, guidance_scale=args.guidance,
                          output_type="latent").frames  # fmt: skip

    def interpolate():
        state["z61"] = pipe.interpolate(state["z"], seeds, fps=cfg.fps, num_inference_steps=steps,
                                        guidance_scale=args.interpolation_guidance)  # fmt: skip

    def condition():
        pipe.embed_frames(pipe.decode_latents(state["z"]))

    def decode61():
        pipe.decode_latents(state["z61"])

    with torch.no_grad():
        res["keyframes_s"] = timed(keyframes, args.device, args.repeats, args.warmup)
        res["interpolate_s"] = timed(interpolate, args.device, args.repeats, args.warmup)
        res["interpolate_condition_s"] = timed(condition, args.device, args.repeats, args.warmup)
        res["decode61_s"] = timed(decode61, args.device, args.repeats, args.warmup)
        assert state["z61"].shape[2] == cfg.num_frames + 3 * (cfg.num_frames - 1)

        # one U-Net call of each stage at the shapes the samplers use
        h = cfg.resolution // pipe.vae_scale_factor
        k, b = cfg.num_frames, args.batch
        cfg_mult = 2 if args.guidance > 1 else 1
        x = torch.randn(cfg_mult * b, 4, k, h, h, device=args.device, dtype=dtype)
        text = torch.randn(cfg_mult * b, 77, cfg.unet.cross_attention_dim, device=args.device, dtype=dtype)
        t = torch.tensor(500, device=args.device)
        key_step = lambda: pipe.unet(x, t, text, fps=cfg.fps)  # noqa: E731
        n = (2 if args.interpolation_guidance > 1 else 1) * b * (k - 1)
        w = torch.randn(n, 4, 5, h, h, device=args.device, dtype=dtype)
        pair = torch.randn(n, 4, 2, h, h, device=args.device, dtype=dtype)
        tok = torch.randn(n, 2, cfg.unet.cross_attention_dim, device=args.device, dtype=dtype)
        interp_step = lambda: pipe.interpolation(w, t, tok, fps=4 * cfg.fps, keyframes=pair)  # noqa: E731
        res["keyframe_unet_step_s"] = timed(key_step, args.device, max(3, args.repeats), 2)
        res["interpolation_unet_step_s"] = timed(interp_step, args.device, max(3, args.repeats), 2)
        res["frame_forwards_per_step"] = {"keyframes": cfg_mult * b * k, "interpolate": n * 5}
    if args.device.startswith("cuda"):
        res["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
    res["ratio_stage"] = res["interpolate_s"] / res["keyframes_s"]
    res["ratio_unet_step"] = res["interpolation_unet_step_s"] / res["keyframe_unet_step_s"]

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.config} ({cfg.resolution}x{cfg.resolution}, {k} key frames -> "
                        f"{k + 3 * (k - 1)}), {steps} steps, batch {b}, {res['dtype']}, {args.device}")  # fmt: skip
    table.add_column("part")
    table.add_column("seconds", justify="right")
    table.add_column("per clip", justify="right")
    for name, key in (("keyframes (CFG)", "keyframes_s"), ("interpolate", "interpolate_s"),
                      ("  of which decode 16 + CLIP", "interpolate_condition_s"), ("decode 61 frames", "decode61_s"),
                      ("key-frame U-Net step", "keyframe_unet_step_s"),
                      ("interpolation U-Net step", "interpolation_unet_step_s")):  # fmt: skip
        table.add_row(name, f"{res[key]:.4f}", f"{res[key] / b:.4f}")
    Console().print(table)
    print(f"interpolate / keyframes: {res['ratio_stage']:.2f}x per stage, {res['ratio_unet_step']:.2f}x per U-Net step "
          f"(frame-forwards per step {res['frame_forwards_per_step']})")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
