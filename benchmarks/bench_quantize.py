"""Quantized inference of the key-frame U-Net (issue 16.4): memory and speed on one GPU.

At the `sd15` config (SD 1.5 U-Net inflated, 16 frames, 32x32 latents = 256x256 px), random
weights: the bf16 pipeline against the same pipeline with its U-Net's linear layers quantized by
torchao (``magicvideo.quantize``: int8 weight-only, int8 dynamic). For each: the U-Net's weight
bytes, peak GPU memory and seconds per clip of the denoising loop (``--steps`` DDIM steps with
classifier-free guidance, batch ``--batch``), and how far the final latents move from bf16's
(relative RMS; same seeds).

Usage (GPU machine, repo root on PYTHONPATH; torchao installed):
    python benchmarks/bench_quantize.py [--steps 25] [--batch 8] [--model sd15] [--json out.json]
It also runs on a CPU at ``--model tiny --device cpu`` (a smoke run, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from magicvideo.build import build_pipeline, load_model_config
from magicvideo.quantize import MODES, quantize_pipeline


def unet_bytes(unet) -> int:
    from magicvideo.quantize import _tensor_bytes

    return sum(_tensor_bytes(p) for p in unet.parameters()) + sum(b.numel() * b.element_size() for b in unet.buffers())


def run(pipe, batch: int, steps: int, device: str) -> tuple[float, float, torch.Tensor]:
    prompts = [f"prompt {i}" for i in range(batch)]
    kw = dict(guidance_scale=7.5, seed=list(range(batch)), output_type="latent")
    pipe(prompts, num_inference_steps=2, **kw)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    latents = pipe(prompts, num_inference_steps=steps, **kw).frames
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / batch
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return seconds, peak, latents.float()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="sd15")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    dtype = torch.bfloat16 if a.device == "cuda" else torch.float32
    rows = []
    ref = None
    for mode in (None, *MODES):
        # a fresh pipeline per mode (the same seeded random weights), so that the peak memory is this
        # mode's alone
        pipe = build_pipeline(load_model_config(a.model), weights="random", seed=0).to(a.device, dtype)
        pipe.set_progress_bar_config(disable=True)
        info = quantize_pipeline(pipe, mode) or {}
        sec, peak, lat = run(pipe, a.batch, a.steps, a.device)
        if ref is None:
            ref = lat
        rel = float((lat - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())
        rows.append({"mode": mode or str(dtype).replace("torch.", ""), "unet_gib": unet_bytes(pipe.unet) / 2**30,
                     "quantized_layers": info.get("layers", 0), "peak_gib": peak, "s_per_clip": sec,
                     "latent_rel_rms_vs_base": rel})  # fmt: skip
        del pipe
        if a.device == "cuda":
            torch.cuda.empty_cache()
    name = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
    print(f"{a.model}, 16 frames, {a.steps} DDIM steps + CFG, batch {a.batch}, {name}")
    print(f"{'mode':<18} {'U-Net GiB':>9} {'layers':>6} {'peak GiB':>9} {'s/clip':>8} {'x base':>7} {'rel RMS':>8}")
    for r in rows:
        print(f"{r['mode']:<18} {r['unet_gib']:>9.3f} {r['quantized_layers']:>6} {r['peak_gib']:>9.2f} "
              f"{r['s_per_clip']:>8.3f} {rows[0]['s_per_clip'] / r['s_per_clip']:>7.2f} {r['latent_rel_rms_vs_base']:>8.4f}")  # fmt: skip
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"device": name, "args": vars(a), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
