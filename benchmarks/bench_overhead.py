"""Orchestration overhead: the same generation work through ``magicvideo eval`` and as a bare loop.

    python benchmarks/bench_overhead.py --prompts 96 --steps 25 --batch-size 8 --repeats 3 --out /tmp/overhead
    python benchmarks/bench_overhead.py --model sd15 --prompts 32 --steps 25 --batch-size 8   # on a GPU

Both sides are whole commands, timed from outside (wall time from process start to exit, imports
included), on the same work: a model config with random weights (``--model``: tiny, or sd15 for the
paper's size on a GPU), saved as a checkpoint folder, the shapes benchmark's first N prompts, seeds,
batch size and sampler, each clip written as an ``.npy`` under its content address; fp32, on CUDA
when there is a GPU.

- bare: ``python benchmarks/bench_overhead.py --bare``: imports, ``from_pretrained``, pipeline calls, writes.
- flow: ``magicvideo eval shapes --checkpoint ...`` with metrics off (generation only): a temporary
  Prefect server, a local Ray with one actor (the GPU, or every core on a CPU: Ray sets
  OMP_NUM_THREADS to the actor's num_cpus), SQLite MLflow; what a user runs.

The steady-state rate of each side (clips/s after the first batch) comes from the bare loop's own
timing and from the flow's MLflow run; "fixed" is wall time minus prompts / steady rate: what does
not grow with prompts. Projected overhead at P prompts: (fixed_flow + P / steady_flow) /
(fixed_bare + P / steady_bare) - 1. Runs alternate bare, flow, bare, flow, ...; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _sampler(steps: int) -> dict:
    return {"scheduler": "ddim", "num_inference_steps": steps, "guidance_scale": 7.5, "fps": 8.0,
            "negative_prompt": "", "eta": 0.0}


def bare(args) -> None:
    """The bare loop (run as its own process by :func:`main`); prints its steady rate as JSON."""
    import torch

    from magicvideo.data import load_benchmark
    from magicvideo.pipeline import MagicVideoPipeline

    from flows.store import checkpoint_id, plan_samples, sample_path, write_sample

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    out = Path(args.out)
    records = load_benchmark("shapes", root=out / "shapes").manifest()[: args.prompts]
    pipe = MagicVideoPipeline.from_pretrained(out / "ckpt").to("cuda" if torch.cuda.is_available() else "cpu")
    pipe.set_progress_bar_config(disable=True)
    pipe.set_scheduler("ddim")
    items = plan_samples(records, checkpoint_id(out / "ckpt"), _sampler(args.steps), 1, 0)
    for i in range(0, len(items), args.batch_size):
        if i == args.batch_size:
            t_first = time.perf_counter()
        b = items[i : i + args.batch_size]
        frames = pipe([it.prompt for it in b], seed=[it.seed for it in b], negative_prompt=[""] * len(b),
                      num_inference_steps=args.steps, guidance_scale=7.5, fps=8.0, output_type="uint8").frames
        for it, clip in zip(b, frames):
            write_sample(sample_path(out / "bare", it.address), clip)
    print(json.dumps({"steady_clips_per_s": (len(items) - args.batch_size) / (time.perf_counter() - t_first)}))


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu x {os.cpu_count()}"


def _timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def _flow_steady(db: Path, run_index: int) -> float:
    from mlflow.tracking import MlflowClient

    c = MlflowClient("sqlite:///" + str(db))
    exp = c.get_experiment_by_name("magicvideo-eval")
    runs = [r for r in c.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
            if "mlflow.parentRunId" in r.data.tags]
    return runs[run_index].data.metrics["steady_clips_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny", help="model config (configs/model), random weights")
    ap.add_argument("--checkpoint", help="a saved pipeline folder to use instead of building --model's")
    ap.add_argument("--shapes", help="a rendered shapes benchmark (magicvideo data shapes) to use instead of writing one")
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=1, help="bare/flow pairs, alternated")
    ap.add_argument("--threads", type=int, help="CPU threads of the bare loop and CPUs of the flow's actor "
                    "(default: every core)")
    ap.add_argument("--cpu", action="store_true", help="hide the GPUs (CUDA_VISIBLE_DEVICES='') from both sides")
    ap.add_argument("--out", default="/tmp/magicvideo_overhead")
    ap.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare:
        return bare(args)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    from magicvideo.build import build_pipeline
    from magicvideo.data import ShapesSpec, write_shapes

    if args.checkpoint:
        (out / "ckpt").symlink_to(Path(args.checkpoint).resolve())
    else:
        build_pipeline(args.model, weights="random", seed=0).save_pretrained(out / "ckpt")
    if args.shapes:  # e.g. where PyAV (the mp4 writer) is missing
        (out / "shapes").symlink_to(Path(args.shapes).resolve())
    else:
        write_shapes(out / "shapes", ShapesSpec(train=0, test=args.prompts, durations=[2.0], fps=[8.0]), workers=0)
    cores = args.threads or os.cpu_count() or 1
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    if args.cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    bare_cmd = [sys.executable, str(Path(__file__).resolve()), "--bare", "--prompts", str(args.prompts),
                "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--out", str(out),
                *(["--threads", str(args.threads)] if args.threads else [])]
    flow_cmd = [sys.executable, "-m", "magicvideo.cli", "eval", "shapes", "--checkpoint", str(out / "ckpt"),
                "--root", str(out / "shapes"), "--limit", str(args.prompts), "--steps", str(args.steps),
                "--output-root", str(out / "flow"), "--tracking-uri", "sqlite:///" + str(out / "mlflow.db"),
                "--set", "ray.num_actors=1", "--set", f"ray.num_cpus_per_actor={cores}",
                "--set", f"ray.batch_size={args.batch_size}", "--set", "metrics.fvd=null",
                "--set", "metrics.fid=null", "--set", "metrics.attributes=null", "--set", "metrics.clipsim=null",
                "--set", "tracking.grid_samples=0"]
    runs = []
    for r in range(args.repeats):
        shutil.rmtree(out / "bare", ignore_errors=True)
        shutil.rmtree(out / "flow", ignore_errors=True)  # else the rerun skips every finished sample
        bare_s, stdout = _timed(bare_cmd, env)
        bare_steady = json.loads(stdout.strip().splitlines()[-1])["steady_clips_per_s"]
        flow_s, _ = _timed(flow_cmd, env)
        flow_steady = _flow_steady(out / "mlflow.db", r)
        runs.append({"bare_s": bare_s, "flow_s": flow_s, "bare_steady": bare_steady, "flow_steady": flow_steady,
                     "fixed_bare_s": bare_s - args.prompts / bare_steady,
                     "fixed_flow_s": flow_s - args.prompts / flow_steady})
        print(json.dumps({k: round(v, 3) for k, v in runs[-1].items()}), file=sys.stderr)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}

    def projected(p: int) -> float:
        return round(100 * ((med["fixed_flow_s"] + p / med["flow_steady"])
                            / (med["fixed_bare_s"] + p / med["bare_steady"]) - 1), 1)

    res = {"model": args.model, "device": "cpu" if args.cpu else _device_name(), "machine_cores": os.cpu_count(),
           "threads": cores, "prompts": args.prompts, "steps": args.steps, "batch_size": args.batch_size,
           "repeats": args.repeats, "bare_s": round(med["bare_s"], 2), "flow_s": round(med["flow_s"], 2),
           "overhead_pct": round(100 * (med["flow_s"] / med["bare_s"] - 1), 1),
           "bare_steady_clips_per_s": round(med["bare_steady"], 3),
           "flow_steady_clips_per_s": round(med["flow_steady"], 3),
           "steady_overhead_pct": round(100 * (med["bare_steady"] / med["flow_steady"] - 1), 1),
           "fixed_bare_s": round(med["fixed_bare_s"], 1), "fixed_flow_s": round(med["fixed_flow_s"], 1),
           **{f"projected_overhead_{p}_prompts_pct": projected(p) for p in (100, 1000, 10000)}}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
