"""The eval flow's generation stage on Ray against a bare loop, for a machine without Prefect/MLflow.

Issue 5's overhead benchmark on the GPU: the device tool's machine cannot be given Prefect and
MLflow (their wheels and needs exceed what a call may carry), so this measures the part of the
flow that scales with prompts -- ``flows.generation.generate`` over a Ray actor that holds the
pipeline on the GPU (bounded in-flight batches, atomic content-addressed writes) -- against the
same ``GenerationWorker`` called in a loop in this process, same items, seeds, batch and sampler.
The flow's remaining fixed costs (Prefect's embedded server, MLflow) are measured on the CPU
(``python benchmarks/bench_overhead.py``; BENCHMARKS.md) and added by ``--flow-fixed-s`` to the
projection.

    python benchmarks/overhead_ray.py --model sd15 --prompts 48 --steps 25 --batch-size 8 --out /tmp/ovh
    python benchmarks/overhead_ray.py --checkpoint checkpoints/shapes/pipeline --prompts 256 --batch-size 32

Order: bare, Ray, bare again (the two bare runs bound the drift of the machine). Each side's
"fixed" time is its wall time minus prompts / its steady rate (everything after the first batch).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path


def _items(n: int, ckpt: Path, sampler: dict):
    from magicvideo.data.shapes import ShapesSpec, sample_clip

    from flows.store import checkpoint_id, plan_samples

    class Rec:  # what plan_samples reads of a manifest record
        def __init__(self, i: int):
            self.prompt_id, self.prompt = f"p{i}", sample_clip(ShapesSpec(), "test", i).caption

    return plan_samples([Rec(i) for i in range(n)], checkpoint_id(ckpt), sampler, 1, 0)


def bare(ckpt: Path, items, sampler: dict, batch: int, out: Path) -> dict:
    """The same worker class the actors run, called in this process."""
    from flows.generation import GenerationWorker

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    w = GenerationWorker()
    w.load(str(ckpt), sampler["scheduler"])
    first = None
    for i in range(0, len(items), batch):
        w.generate(str(ckpt), [it.as_dict() for it in items[i : i + batch]], sampler, str(out))
        if first is None:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    steady = (len(items) - batch) / (total - first)
    del w
    _free()
    return {"total_s": total, "first_batch_s": first, "steady_clips_per_s": steady}


def on_ray(ckpt: Path, items, sampler: dict, batch: int, out: Path, cpus: float) -> dict:
    import ray

    from flows.config import RaySettings
    from flows.generation import generate, start_actors

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    os.environ.setdefault("RAY_worker_niceness", "0")  # as flows.ray_cluster.ensure_ray does
    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
    init_s = time.perf_counter() - t0
    settings = RaySettings(num_cpus_per_actor=cpus, batch_size=batch)
    actors = start_actors(settings)
    rep = generate(actors, str(ckpt), items, sampler, str(out), batch_size=batch,
                   max_in_flight_per_actor=settings.max_in_flight_per_actor, max_restarts=settings.max_restarts)
    total = time.perf_counter() - t0
    for a in actors:
        ray.kill(a)
    ray.shutdown()
    assert rep.generated == len(items), rep
    return {"total_s": total, "ray_init_s": init_s, "stage_s": rep.seconds, "first_batch_s": rep.first_batch_s,
            "steady_clips_per_s": rep.steady_clips_per_s, "actors": len(actors)}


def _free() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="a saved MagicVideoPipeline folder")
    ap.add_argument("--model", help="or a model config (tiny, sd15, ...) built with random weights")
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--cpus-per-actor", type=float, default=4)
    ap.add_argument("--flow-fixed-s", type=float, default=7.0,
                    help="Prefect + MLflow fixed seconds added to the flow's projection (CPU-measured)")
    ap.add_argument("--out", default="/tmp/magicvideo_overhead_ray")
    ap.add_argument("--json", help="write the result here too")
    args = ap.parse_args()
    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.checkpoint:
        ckpt = Path(args.checkpoint)
    elif args.model:
        from magicvideo.build import build_pipeline

        ckpt = out / f"ckpt_{Path(args.model).stem}"
        if not (ckpt / "model_index.json").is_file():
            build_pipeline(args.model, weights="random", seed=0).save_pretrained(ckpt)
            _free()
    else:
        ap.error("give --checkpoint or --model")
    sampler = {"scheduler": "ddim", "num_inference_steps": args.steps, "guidance_scale": 7.5, "fps": 8.0,
               "negative_prompt": "", "eta": 0.0}
    items = _items(args.prompts, ckpt, sampler)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU x{os.cpu_count()}"
    print(f"{ckpt}: {len(items)} prompts, {args.steps} DDIM steps, batch {args.batch_size}, {device}", flush=True)
    b1 = bare(ckpt, items, sampler, args.batch_size, out / "bare")
    print("bare", json.dumps(b1), flush=True)
    r = on_ray(ckpt, items, sampler, args.batch_size, out / "ray", args.cpus_per_actor)
    print("ray ", json.dumps(r), flush=True)
    b2 = bare(ckpt, items, sampler, args.batch_size, out / "bare")
    print("bare", json.dumps(b2), flush=True)

    def fixed(run: dict) -> float:
        return run["total_s"] - args.prompts / run["steady_clips_per_s"]

    bare_fixed = (fixed(b1) + fixed(b2)) / 2
    bare_rate = (b1["steady_clips_per_s"] + b2["steady_clips_per_s"]) / 2
    ray_fixed = fixed(r)
    proj = {n: 100 * ((ray_fixed + args.flow_fixed_s + n / r["steady_clips_per_s"]) / (bare_fixed + n / bare_rate) - 1)
            for n in (100, 1000, 10000)}
    res = {"checkpoint": str(ckpt), "device": device, "prompts": args.prompts, "steps": args.steps,
           "batch_size": args.batch_size, "bare": [b1, b2], "ray": r,
           "steady_overhead_pct": 100 * (bare_rate / r["steady_clips_per_s"] - 1),
           "fixed_s": {"bare": bare_fixed, "ray": ray_fixed, "flow_extra": args.flow_fixed_s},
           "projected_overhead_pct": proj}
    print(f"| steady clips/s bare / ray | {bare_rate:.3f} / {r['steady_clips_per_s']:.3f} "
          f"({res['steady_overhead_pct']:+.1f}%) |")
    print(f"| fixed s bare / ray (+ Prefect, MLflow) | {bare_fixed:.1f} / {ray_fixed:.1f} (+{args.flow_fixed_s}) |")
    print("| projected flow overhead at 100 / 1,000 / 10,000 prompts | "
          + " / ".join(f"{v:+.1f}%" for v in proj.values()) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
