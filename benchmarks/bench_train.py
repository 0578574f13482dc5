"""Training throughput of the sd15-size key-frame model on one GPU (issue 6, Benchmarks).

One optimizer step of the key-frame objective (eq. 6, :func:`magicvideo.training.keyframe.diffusion_loss`)
on 16 x 32 x 32 latents (256 x 256 video) with 77 text tokens, bf16 autocast, fused AdamW, the
U-Net's full 913.8 M parameters trained, for each micro-batch and with activation checkpointing
off and on. Prints per row: step time, samples/s, achieved TFLOP/s and MFU (useful FLOPs = 3x the
forward's, counted by ``torch.utils.flop_counter`` on the meta device; recomputation not counted,
as in the usual MFU definition), and peak memory. The MFU denominator is the measured bf16 GEMM
peak of this GPU (8192^3, as ``bench_unet.py``). Random weights and inputs: throughput does not
depend on them. The VAE encoder and text encoder are not in the step (their outputs are cached in
a real run's data pipeline or cost <2% of it).

    python benchmarks/bench_train.py [--batches 1,2,4,8,16] [--steps 8] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sd15")
    ap.add_argument("--batches", default="1,2,4,8,16")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per row (after 3 warm-up steps)")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_train needs a CUDA GPU", file=sys.stderr)
        return 2
    from diffusers import DDPMScheduler

    from bench_unet import matmul_peak
    from magicvideo.build import build_scheduler, build_unet, load_model_config
    from magicvideo.flops import unet_step_cost
    from magicvideo.training.keyframe import diffusion_loss

    mc = load_model_config(args.model)
    peak = matmul_peak()
    dev = torch.device("cuda")
    unet = build_unet(mc).to(dev).train()
    noise = DDPMScheduler.from_config(build_scheduler(mc).config)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-5, fused=True)
    f, s, dim = mc.num_frames, mc.unet.sample_size, mc.unet.cross_attention_dim
    fwd_per_clip = unet_step_cost(unet, batch=1).flops
    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  bf16 GEMM peak {peak / 1e12:.0f} TFLOP/s  "
          f"{sum(p.numel() for p in unet.parameters()) / 1e6:.1f} M params  {fwd_per_clip / 1e12:.3f} TFLOP/clip fwd "
          f"at {f}x{s}x{s}")  # fmt: skip
    gen = torch.Generator(dev).manual_seed(0)
    rows = []
    for ckpt in (False, True):
        if ckpt:
            unet.enable_gradient_checkpointing()
        else:
            unet.disable_gradient_checkpointing()
        for b in (int(x) for x in args.batches.split(",")):
            lat = torch.randn(b, 4, f, s, s, device=dev)
            cond = torch.randn(b, 77, dim, device=dev)
            fps = torch.full((b,), 8.0, device=dev)

            def step():
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = diffusion_loss(unet, noise, lat, cond, fps, gen)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)

            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            row = {"micro_batch": b, "checkpointing": ckpt}
            try:
                for _ in range(3):
                    step()
                torch.cuda.synchronize()
                times = []
                for _ in range(args.steps):
                    t0 = time.perf_counter()
                    step()
                    torch.cuda.synchronize()
                    times.append(time.perf_counter() - t0)
                sec = statistics.median(times)
                flops = 3 * fwd_per_clip * b
                row.update(step_s=sec, samples_per_s=b / sec, tflops=flops / sec / 1e12, mfu=flops / sec / peak,
                           peak_gib=torch.cuda.max_memory_allocated() / 2**30)  # fmt: skip
                print(f"micro-batch {b:3d}  ckpt {'on ' if ckpt else 'off'}  {sec * 1e3:8.1f} ms  "
                      f"{row['samples_per_s']:6.2f} clips/s  {row['tflops']:6.1f} TFLOP/s  MFU {100 * row['mfu']:5.1f}%  "
                      f"peak {row['peak_gib']:5.1f} GiB", flush=True)  # fmt: skip
            except torch.OutOfMemoryError:
                opt.zero_grad(set_to_none=True)
                row["oom"] = True
                print(f"micro-batch {b:3d}  ckpt {'on ' if ckpt else 'off'}  out of memory", flush=True)
            rows.append(row)
            del lat, cond, fps
    if args.json:
        Path(args.json).write_text(json.dumps({"device": torch.cuda.get_device_name(), "peak": peak,
                                               "fwd_flops_per_clip": fwd_per_clip, "rows": rows}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
