"""GPU benchmark of MagicVideo's key-frame model (issue: model, GPU benchmark).

Measures, at the `sd15` config (SD 1.5 U-Net inflated, 16 frames, 32x32 latents = 256x256 px),
random weights, bf16:
  * the bf16 matmul peak of this GPU (8192^3 GEMM, the MFU denominator);
  * one classifier-free-guidance denoising step (U-Net forward on 2 x batch clips) for each
    optimisation variant: eager SDPA, + channels-last, + fused QKV, + torch.compile,
    + CUDA graphs; FLOPs counted by torch's FlopCounterMode (magicvideo.flops);
  * the same step for diffusers' UNet3DConditionModel (ModelScope layout) and UNetMotionModel
    (AnimateDiff layout) at the same latent shape and dtype;
  * the whole pipeline (50 DDIM steps with CFG + VideoVAE decode) at batch 1/2/4/8: seconds
    per clip, achieved TFLOP/s and MFU of the denoising loop, peak memory, VAE decode time.

Usage (on the GPU machine, repo root on PYTHONPATH):
    python benchmarks/bench_unet.py --part steps        # variants + diffusers baselines
    python benchmarks/bench_unet.py --part pipeline     # end-to-end at batch 1/2/4/8
Prints tables; --json writes every number.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from magicvideo.build import build_pipeline, build_unet, load_model_config
from magicvideo.flops import unet_step_cost


PROFILE = False
INDUCTOR_TUNING = False


def cuda_time(fn, warmup: int = 3, iters: int = 10) -> float:
    """Median seconds of fn() over `iters` runs, timed with CUDA events after `warmup` runs."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def matmul_peak() -> float:
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    t = cuda_time(lambda: a @ b, warmup=5, iters=20)
    return 2 * n**3 / t


def count_flops(model, inputs: tuple, kwargs: dict) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs, **kwargs)
    return counter.get_total_flops()


# ---------------------------------------------------------------------------------------------


def magicvideo_step_inputs(cfg, batch: int, dtype, channels_last: bool = False):
    f, s = cfg.num_frames, cfg.unet.sample_size
    x = torch.randn(2 * batch, 4, f, s, s, device="cuda", dtype=dtype)
    ehs = torch.randn(2 * batch, 77, cfg.unet.cross_attention_dim, device="cuda", dtype=dtype)
    t = torch.full((2 * batch,), 500, device="cuda")
    fps = torch.full((2 * batch,), 8.0, device="cuda")
    return x, t, ehs, fps


def bench_variants(batch: int, peak: float, compile_modes: list[str]) -> list[dict]:
    """One CFG step under each optimisation, each measured from the same weights."""
    cfg = load_model_config("sd15")
    dtype = torch.bfloat16
    with torch.device("cuda"):
        unet = build_unet(cfg).to(dtype).eval()
    flops = unet_step_cost(unet, batch=2 * batch).flops
    x, t, ehs, fps = magicvideo_step_inputs(cfg, batch, dtype)
    rows = []

    def run(name: str, model) -> None:
        torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            sec = cuda_time(lambda: model(x, t, ehs, fps=fps, return_dict=False))
        rows.append(dict(model="MagicVideo", variant=name, batch=batch, ms_per_step=sec * 1e3,
                         tflops=flops / sec / 1e12, mfu=flops / sec / peak,
                         peak_gib=torch.cuda.max_memory_allocated() / 2**30))
        print(rows[-1], flush=True)

    run("eager (SDPA)", unet)
    unet.to(memory_format=torch.channels_last)
    run("eager + channels_last", unet)
    unet.to(memory_format=torch.contiguous_format)
    unet.fuse_qkv_projections()
    run("eager + fused QKV", unet)
    for mode in compile_modes:
        torch._dynamo.reset()
        compiled = torch.compile(unet, mode=None if mode == "default" else mode)
        start = time.perf_counter()
        with torch.no_grad():
            compiled(x, t, ehs, fps=fps)
        torch.cuda.synchronize()
        print(f"compile {mode}: {time.perf_counter() - start:.0f} s", flush=True)
        run(f"fused QKV + torch.compile ({mode})", compiled)
        if PROFILE and mode == "default":
            from torch.profiler import ProfilerActivity, profile

            with torch.no_grad(), profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(3):
                    compiled(x, t, ehs, fps=fps)
                torch.cuda.synchronize()
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=90))
    return rows


def bench_diffusers_baselines(batch: int, peak: float, compile_it: bool) -> list[dict]:
    from diffusers import MotionAdapter, UNet2DConditionModel, UNet3DConditionModel, UNetMotionModel

    cfg = load_model_config("sd15")
    dtype = torch.bfloat16
    f, s = cfg.num_frames, cfg.unet.sample_size
    rows = []
    with torch.device("cuda"):
        modelscope = UNet3DConditionModel(
            sample_size=s, block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=1024,
            attention_head_dim=64, layers_per_block=2,
        )
        sd_unet = UNet2DConditionModel(**{k: v for k, v in cfg.unet.model_dump().items()})
        animatediff = UNetMotionModel.from_unet2d(sd_unet, MotionAdapter())
        del sd_unet
    for name, model, ctx_dim in (("UNet3DConditionModel (ModelScope)", modelscope, 1024),
                                 ("UNetMotionModel (AnimateDiff)", animatediff, 768)):
        model = model.to(dtype).eval()
        x = torch.randn(2 * batch, 4, f, s, s, device="cuda", dtype=dtype)
        ehs = torch.randn(2 * batch, 77, ctx_dim, device="cuda", dtype=dtype)
        if isinstance(model, UNetMotionModel):  # its pipeline passes text embeddings per frame
            ehs = ehs.repeat_interleave(f, dim=0)
        t = torch.full((2 * batch,), 500, device="cuda")
        flops = count_flops(model, (x, t, ehs), {"return_dict": False})
        variants = [("eager (SDPA)", model)]
        if compile_it:
            torch._dynamo.reset()
            variants.append(("torch.compile (default)", torch.compile(model)))
        for variant, m in variants:
            torch.cuda.reset_peak_memory_stats()
            with torch.no_grad():
                sec = cuda_time(lambda: m(x, t, ehs, return_dict=False))
            rows.append(dict(model=name, variant=variant, batch=batch, ms_per_step=sec * 1e3,
                             tflops=flops / sec / 1e12, mfu=flops / sec / peak,
                             peak_gib=torch.cuda.max_memory_allocated() / 2**30,
                             params_m=sum(p.numel() for p in model.parameters()) / 1e6))
            print(rows[-1], flush=True)
        del model, variants
        torch.cuda.empty_cache()
    return rows


def bench_pipeline(batches: list[int], peak: float, compile_mode: str | None, steps: int) -> list[dict]:
    cfg = load_model_config("sd15")
    pipe = build_pipeline(cfg, weights="random").to("cuda", torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_fast_inference(compile_mode, inductor_tuning=INDUCTOR_TUNING)
    rows = []
    for batch in batches:
        prompts = [f"prompt {i}" for i in range(batch)]
        flops = unet_step_cost(pipe.unet if not compile_mode else pipe.unet._orig_mod, batch=2 * batch).flops * steps
        kw = dict(num_inference_steps=steps, guidance_scale=7.5, seed=list(range(batch)))
        pipe(prompts, **{**kw, "num_inference_steps": 2})  # warm-up (compilation for this shape)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        latents = pipe(prompts, output_type="latent", **kw).frames
        torch.cuda.synchronize()
        denoise = time.perf_counter() - start
        with torch.no_grad():
            decode = cuda_time(lambda: pipe.decode_latents(latents), warmup=1, iters=3)
        rows.append(dict(batch=batch, s_per_clip=(denoise + decode) / batch, denoise_s=denoise, decode_s=decode,
                         tflops=flops / denoise / 1e12, mfu=flops / denoise / peak,
                         peak_gib=torch.cuda.max_memory_allocated() / 2**30))
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) and abs(v) < 10 else (f"{v:.1f}" if isinstance(v, float) else str(v))

    widths = [max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in cols]
    lines = [" | ".join(c.ljust(w) for c, w in zip(cols, widths)), "-|-".join("-" * w for w in widths)]
    lines += [" | ".join(fmt(r.get(c, "")).ljust(w) for c, w in zip(cols, widths)) for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["steps", "pipeline", "all"], default="all")
    ap.add_argument("--batch", type=int, default=1, help="clips per step for the variant comparison")
    ap.add_argument("--batches", default="1,2,4,8")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--compile-modes", default="default,reduce-overhead")
    ap.add_argument("--baseline-compile", action="store_true", help="also time diffusers' models compiled")
    ap.add_argument("--skip-variants", action="store_true")
    ap.add_argument("--pipeline-compile", default="default", help="compile mode for the pipeline part, or none")
    ap.add_argument("--json")
    ap.add_argument("--inductor-tuning", action="store_true", help="pipeline part: 1x1 convs as matmuls, "
                    "coordinate-descent tuning (MagicVideoPipeline.enable_fast_inference)")
    ap.add_argument("--profile", action="store_true", help="print the top CUDA kernels of the compiled step")
    args = ap.parse_args()
    global PROFILE, INDUCTOR_TUNING
    PROFILE = args.profile
    INDUCTOR_TUNING = args.inductor_tuning

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    peak = matmul_peak()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}; bf16 matmul peak {peak / 1e12:.0f} TFLOP/s",
          flush=True)
    result: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "peak_tflops": peak / 1e12}
    modes = [m for m in args.compile_modes.split(",") if m]
    if args.part in ("steps", "all"):
        rows = [] if args.skip_variants else bench_variants(args.batch, peak, modes)
        rows += bench_diffusers_baselines(args.batch, peak, compile_it=args.baseline_compile)
        result["steps"] = rows
        print(f"\nOne CFG denoising step, {args.batch} clip(s) x 16 frames x 32x32 latents, bf16:")
        print(table(rows, ["model", "variant", "ms_per_step", "tflops", "mfu", "peak_gib"]))
    if args.part in ("pipeline", "all"):
        mode = None if args.pipeline_compile == "none" else args.pipeline_compile
        rows = bench_pipeline([int(b) for b in args.batches.split(",")], peak, mode, args.steps)
        result["pipeline"] = rows
        print(f"\nsd15 pipeline, {args.steps} DDIM steps with CFG + VideoVAE decode, bf16, compile={mode}, "
              f"inductor tuning={args.inductor_tuning}:")
        print(table(rows, ["batch", "s_per_clip", "denoise_s", "decode_s", "tflops", "mfu", "peak_gib"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
