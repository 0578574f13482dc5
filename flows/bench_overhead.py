"""Orchestration overhead: the same generation work through the ``eval`` flow and as a bare loop.

    python -m flows.bench_overhead --prompts 48 --steps 2 --batch-size 8 --out /tmp/overhead

Both sides: the tiny model (random weights, saved as a checkpoint folder), the same prompts (the
shapes benchmark's first N), seeds, batch size and sampler, each clip written as an ``.npy``.
The flow side runs with metrics off (generation only): embedded Prefect, a local Ray with one CPU
actor given every core (Ray sets OMP_NUM_THREADS to the actor's num_cpus), SQLite MLflow. Reported:
the bare loop (model load + generation + writes), the flow's generation stage (what scales with
prompts) and the flow's whole wall time (adds Ray start, actor start, Prefect and MLflow: fixed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", default="/tmp/magicvideo_overhead")
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    import torch

    from magicvideo.build import build_pipeline
    from magicvideo.data import ShapesSpec, load_benchmark, write_shapes
    from magicvideo.pipeline import MagicVideoPipeline

    from flows.store import checkpoint_id, plan_samples, sample_path, write_sample

    cores = os.cpu_count() or 1
    build_pipeline("tiny", weights="random", seed=0).save_pretrained(out / "ckpt")
    write_shapes(out / "shapes", ShapesSpec(train=0, test=args.prompts, durations=[2.0], fps=[8.0]), workers=0)
    records = load_benchmark("shapes", root=out / "shapes").manifest()[: args.prompts]
    sampler = {"scheduler": "ddim", "num_inference_steps": args.steps, "guidance_scale": 7.5, "fps": 8.0,
               "negative_prompt": "", "eta": 0.0}

    # bare loop
    torch.set_num_threads(cores)
    t0 = time.perf_counter()
    pipe = MagicVideoPipeline.from_pretrained(out / "ckpt")
    pipe.set_progress_bar_config(disable=True)
    pipe.set_scheduler("ddim")
    items = plan_samples(records, checkpoint_id(out / "ckpt"), sampler, 1, 0)
    load_s = time.perf_counter() - t0
    for i in range(0, len(items), args.batch_size):
        if i == args.batch_size:
            t_first = time.perf_counter()
        b = items[i : i + args.batch_size]
        frames = pipe([it.prompt for it in b], seed=[it.seed for it in b], negative_prompt=[""] * len(b),
                      num_inference_steps=args.steps, guidance_scale=7.5, fps=8.0, output_type="uint8").frames
        for it, clip in zip(b, frames):
            write_sample(sample_path(out / "bare", it.address), clip)
    bare = time.perf_counter() - t0
    bare_steady = (len(items) - args.batch_size) / (time.perf_counter() - t_first)

    # the flow (embedded Prefect, local Ray)
    from flows.eval_flow import eval_flow

    t0 = time.perf_counter()
    rows = eval_flow(benchmark="shapes", checkpoints=[str(out / "ckpt")], limit=args.prompts,
                     output_root=str(out / "flow"), overrides={
                         "benchmark_root": str(out / "shapes"), "sampler": sampler,
                         "ray": {"num_actors": 1, "num_cpus_per_actor": cores, "batch_size": args.batch_size},
                         "metrics": {"fvd": None, "fid": None},
                         "tracking": {"uri": "sqlite:///" + str(out / "mlflow.db"), "grid_samples": 0}})
    total = time.perf_counter() - t0
    gen = rows[0]["time_generation_s"]
    flow_steady = rows[0]["steady_clips_per_s"]
    fixed_flow = total - args.prompts / flow_steady  # everything that does not scale with prompts
    fixed_bare = bare - args.prompts / bare_steady
    res = {"prompts": args.prompts, "steps": args.steps, "batch_size": args.batch_size, "cores": cores,
           "bare_s": round(bare, 2), "flow_generation_stage_s": round(gen, 2), "flow_total_s": round(total, 2),
           "overhead_generation_stage_pct": round(100 * (gen / bare - 1), 1),
           "overhead_total_pct": round(100 * (total / bare - 1), 1),
           "bare_clips_per_s": round(args.prompts / bare, 3), "flow_clips_per_s": round(rows[0]["clips_per_s"], 3),
           "bare_load_s": round(load_s, 2), "flow_first_batch_s": round(rows[0]["first_batch_s"], 2),
           "bare_steady_clips_per_s": round(bare_steady, 3), "flow_steady_clips_per_s": round(flow_steady, 3),
           "steady_overhead_pct": round(100 * (bare_steady / flow_steady - 1), 1),
           "fixed_bare_s": round(fixed_bare, 1), "fixed_flow_s": round(fixed_flow, 1),
           "projected_overhead_1000_prompts_pct": round(
               100 * ((fixed_flow + 1000 / flow_steady) / (fixed_bare + 1000 / bare_steady) - 1), 1)}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
