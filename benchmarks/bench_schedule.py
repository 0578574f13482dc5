"""The eval flow's two schedules on the same work (issue 17.4): references computed while the actors
generate (``metrics.schedule: pipelined``, the default) against before generation (``staged``).

    python benchmarks/bench_schedule.py --benchmark shapes --limit 64 --pairs 2 [--checkpoint CKPT]
        [--root DATA] [--set KEY=JSON ...] [--out /tmp/schedule] [--json schedule.json]

Each run is a whole ``magicvideo eval`` (timed from outside) with a fresh output root and reference cache,
so both schedules compute every reference and generate every clip; runs alternate staged, pipelined,
... The flow's own stage timings come from its MLflow run: generation, the reference statistics
(``time_reference_<metric>_s``), the part of them generation did not hide (``time_reference_wait_s``) and
the metrics stage (where the temporal metric's real side is computed when the staged schedule runs it).
The results must agree to the last digit; the script checks it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.eval_runs import result_metrics, timed_eval  # noqa: E402


def one(args, schedule: str, k: int) -> dict:
    out = Path(args.out) / f"{k:02d}-{schedule}"
    shutil.rmtree(out, ignore_errors=True)
    wall, child = timed_eval(args, out, [f"metrics.schedule={schedule}", f"metrics.cache_dir={out / 'refs'}"], schedule)
    m = child.data.metrics
    return {"schedule": schedule, "wall_s": wall, **{k: v for k, v in m.items() if k.startswith("time_")},
            "results": result_metrics(m)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--benchmark", default="shapes")
    ap.add_argument("--checkpoint", action="append", default=[])
    ap.add_argument("--root")
    ap.add_argument("--limit", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--out", default="/tmp/magicvideo_schedule")
    ap.add_argument("--json")
    args = ap.parse_args()
    runs = []
    for k in range(args.pairs):
        for schedule in ("staged", "pipelined"):
            runs.append(one(args, schedule, k))
            r = runs[-1]
            print(f"{schedule:9s} wall {r['wall_s']:.1f} s, generation {r.get('time_generation_s', 0):.1f} s, "
                  f"reference wait {r.get('time_reference_wait_s', 0):.1f} s, metrics {r.get('time_metrics_s', 0):.1f} s",
                  flush=True)
    same = all(r["results"] == runs[0]["results"] for r in runs)
    keys = sorted({k for r in runs for k in r if k.startswith("time_")})
    print("\n| schedule | wall s (median) | " + " | ".join(k.removeprefix("time_") for k in keys) + " |")
    print("|---|---:|" + "---:|" * len(keys))
    med = {}
    for s in ("staged", "pipelined"):
        rs = [r for r in runs if r["schedule"] == s]
        med[s] = statistics.median(r["wall_s"] for r in rs)
        print(f"| {s} | {med[s]:.1f} | " + " | ".join(f"{statistics.median(r.get(k, 0.0) for r in rs):.1f}" for k in keys) + " |")
    pairs = [runs[2 * i + 1]["wall_s"] / runs[2 * i]["wall_s"] - 1 for i in range(args.pairs)]
    print(f"\npipelined vs staged, per pair: {', '.join(f'{100 * p:+.1f}%' for p in pairs)}; identical results: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "pairs": pairs, "identical": same}, indent=1))
    if not same:
        sys.exit("the two schedules gave different results")


if __name__ == "__main__":
    main()
