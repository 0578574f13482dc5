"""The same eval flow on 1 and on N GPUs (issue 17.3): clips/s, speed-up, and byte-identical samples and
metrics at every GPU count.

    python benchmarks/bench_gpus.py --actors 1,2 --benchmark shapes_scale --checkpoint CKPT --root DATA \\
        --limit 600 [--set KEY=JSON ...] [--out /tmp/gpus] [--json gpus.json]

Each count is a whole ``magicvideo eval`` (timed from outside) with ``ray.num_actors`` set to it (one GPU
per actor when the machine has GPUs; CPU actors otherwise, which is how the script is checked here), a
fresh output root and a reference cache shared by all counts (computed by the first run, so the later
runs time generation and scoring, not the references). Reported per count: wall time, generation
seconds, steady clips/s (from the flow's MLflow run), speed-up over the first count, the generated
clips' feature extraction (which runs in the flow process, whatever the count), and whether every sample
file (SHA-256, by content address) and every metric equals the first count's. Exit status 1 when they
differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.eval_runs import result_metrics, timed_eval  # noqa: E402


def digests(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "samples").rglob("*.npy"))}


def one(args, actors: int) -> dict:
    out = Path(args.out) / f"actors-{actors}"
    shutil.rmtree(out, ignore_errors=True)
    wall, child = timed_eval(args, out, [f"ray.num_actors={actors}", f"metrics.cache_dir={Path(args.out) / 'refs'}"],
                             f"{actors} actor(s)")
    m = child.data.metrics
    return {"actors": actors, "wall_s": wall, "generation_s": m.get("time_generation_s"),
            "features_s": m.get("time_features_s"), "steady_clips_per_s": m.get("steady_clips_per_s"),
            "clips_per_s": m.get("clips_per_s"), "device": child.data.tags.get("generation_device"),
            "results": result_metrics(m), "samples": digests(out / "eval")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--actors", default="1,2", help="comma-separated actor counts (GPUs on a GPU machine)")
    ap.add_argument("--benchmark", default="shapes")
    ap.add_argument("--checkpoint", action="append", default=[])
    ap.add_argument("--root")
    ap.add_argument("--limit", type=int, default=64)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--out", default="/tmp/magicvideo_gpus")
    ap.add_argument("--json")
    args = ap.parse_args()
    shutil.rmtree(Path(args.out) / "refs", ignore_errors=True)
    runs = [one(args, int(n)) for n in args.actors.split(",")]
    base = runs[0]
    print("| actors | device | wall s | generation s | steady clips/s | speed-up | features s | samples identical | metrics identical |")
    print("|---:|---|---:|---:|---:|---:|---:|---|---|")
    ok = True
    for r in runs:
        r["speedup"] = (r["steady_clips_per_s"] or 0) / base["steady_clips_per_s"] if base["steady_clips_per_s"] else None
        r["samples_identical"] = r["samples"] == base["samples"] and len(r["samples"]) == args.limit
        r["metrics_identical"] = r["results"] == base["results"]
        ok &= r["samples_identical"] and r["metrics_identical"]
        print(f"| {r['actors']} | {r['device']} | {r['wall_s']:.1f} | {r['generation_s']:.1f} | "
              f"{r['steady_clips_per_s'] or 0:.3f} | {r['speedup'] or 0:.2f}x | {r['features_s']:.1f} | "
              f"{r['samples_identical']} | {r['metrics_identical']} |")
    if args.json:
        Path(args.json).write_text(json.dumps([{k: v for k, v in r.items() if k != "samples"} for r in runs], indent=1))
    if not ok:
        sys.exit("samples or metrics differ between actor counts")


if __name__ == "__main__":
    main()
