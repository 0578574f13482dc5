"""Speed of a few-step distilled student against its CFG teacher (issue point 2): seconds per clip.

The student (``scripts/train_student.py``, DMD2) has the teacher's architecture, so its cost is the
teacher's U-Net at fewer steps and without classifier-free guidance (half the batch through the
U-Net). One pipeline of a model config with random weights (``sd15``: the SD 1.5 U-Net inflated,
16 frames, 256x256 = 32x32 latents), or ``--pipeline DIR`` (a saved teacher; ``--student DIR`` its
student, else the same weights stand in), all in the same process, median of ``--repeats``:

  * teacher, ``--teacher-steps`` (50 and 25) DDIM steps, CFG ``--guidance`` (the U-Net sees 2 x batch)
  * student, ``--student-steps`` (4) steps, guidance 1

each to latents (the denoising alone) and to uint8 frames (text encoding, denoising and the VAE
decode of every frame: what a caller gets), and the speed-up of the student over each teacher.
``--compile`` applies ``pipe.enable_fast_inference()`` (fused QKV, channels-last, torch.compile
of the U-Net with CUDA graphs, and of the VideoVAE decode unless ``--eager-decoder``) to every
pipeline first; each shape compiles once in the warm-up.

Usage (repo root):
    python benchmarks/bench_student.py --batch 8 [--compile] [--json out.json]        # GPU, sd15, bf16
    python benchmarks/bench_student.py --pipeline checkpoints/shapes/pipeline --student checkpoints/shapes/student
    python benchmarks/bench_student.py --smoke                                          # CPU, tiny config

Goal: at most 0.1 s per clip for the 4-step student at batch 8, a 10x cut against the 50-step CFG teacher.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_interpolation import timed  # noqa: E402 - the same median-of-repeats timer, CUDA synchronised


def load(args, which: str):
    from magicvideo.build import build_pipeline, load_model_config
    from magicvideo.pipeline import MagicVideoPipeline

    folder = args.student if which == "student" and args.student else args.pipeline
    if folder:
        pipe = MagicVideoPipeline.from_pretrained(folder)
    else:
        pipe = build_pipeline(load_model_config(args.config), weights="random", seed=0)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    pipe.to(args.device, dtype if args.device != "cpu" else torch.float32)
    pipe.set_progress_bar_config(disable=True)
    if args.compile:
        pipe.enable_fast_inference(decoder=not args.eager_decoder)
    return pipe


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="sd15", help="model config (configs/model) with random weights")
    p.add_argument("--pipeline", help="a saved teacher pipeline folder instead of --config")
    p.add_argument("--student", help="the saved student folder (default: the teacher's weights stand in)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="bf16", help="CUDA only; CPU runs fp32")
    p.add_argument("--batch", type=int, default=8, help="clips per call")
    p.add_argument("--teacher-steps", default="50,25")
    p.add_argument("--guidance", type=float, default=7.5, help="the teacher's CFG scale")
    p.add_argument("--student-steps", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="pipe.enable_fast_inference() (CUDA)")
    p.add_argument("--eager-decoder", action="store_true",
                   help="with --compile: leave the VAE as it is (the U-Net alone compiled, as before 2026-12-03)")
    p.add_argument("--decode-chunk", type=int, default=16,
                   help="frames per VAE decoder call (the pipeline's decode_chunk_size; the decode is ~40%% of the "
                        "student's decoded time at sd15 size, batch 8)")
    p.add_argument("--smoke", action="store_true", help="CPU smoke run: tiny config, batch 2, 1 repeat")
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args(argv)
    if args.smoke:
        args.config, args.device, args.batch, args.repeats, args.warmup = "tiny", "cpu", 2, 1, 0
        args.teacher_steps = "4,2"
        args.student_steps = min(args.student_steps, 2)

    teacher = load(args, "teacher")
    student = load(args, "student") if args.student else teacher
    prompts = [f"a red circle moves left {i}" for i in range(args.batch)]
    seeds = list(range(args.batch))
    runs = [(f"teacher {s} steps, CFG {args.guidance:g}", teacher, int(s), args.guidance)
            for s in args.teacher_steps.split(",")] + [
            (f"student {args.student_steps} steps, guidance 1", student, args.student_steps, 1.0)]  # fmt: skip
    rows = []
    with torch.no_grad():
        for name, pipe, steps, guidance in runs:
            row = {"run": name, "steps": steps, "guidance": guidance}
            for out in ("latent", "uint8"):
                call = lambda: pipe(prompts, seed=seeds, num_inference_steps=steps, guidance_scale=guidance,  # noqa: E731
                                    output_type=out, decode_chunk_size=args.decode_chunk)  # fmt: skip
                row[f"{out}_s_per_clip"] = timed(call, args.device, args.repeats, args.warmup) / args.batch
            rows.append(row)
    student_row = rows[-1]
    for r in rows:
        for out in ("latent", "uint8"):
            r[f"{out}_student_speedup"] = r[f"{out}_s_per_clip"] / student_row[f"{out}_s_per_clip"]
    res = {"config": args.pipeline or args.config, "student": args.student, "device": args.device,
           "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
           "dtype": str(teacher.unet.dtype).removeprefix("torch."), "batch": args.batch, "compile": args.compile,
           "compiled_decoder": args.compile and not args.eager_decoder,
           "decode_chunk": args.decode_chunk,
           "frames": teacher.unet.config.num_frames,
           "resolution": teacher.unet.config.sample_size * teacher.vae_scale_factor, "rows": rows}  # fmt: skip

    from rich.console import Console
    from rich.table import Table

    compiled = (", compiled U-Net" + ("" if args.eager_decoder else " + decoder")) if args.compile else ""
    table = Table(title=f"{res['config']}: {res['frames']} x {res['resolution']} x {res['resolution']}, batch "
                        f"{args.batch}, {res['dtype']}, {res['gpu'] or args.device}{compiled}")
    for col in ("run", "s/clip (latents)", "s/clip (frames)", "student speed-up (latents)", "student speed-up (frames)"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in rows:
        table.add_row(r["run"], f"{r['latent_s_per_clip']:.4f}", f"{r['uint8_s_per_clip']:.4f}",
                      f"{r['latent_student_speedup']:.1f}x", f"{r['uint8_student_speedup']:.1f}x")
    Console(width=140).print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
