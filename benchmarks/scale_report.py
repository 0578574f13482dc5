"""The tables of an MSR-VTT-sized run through the eval flow (issue 17.2; ``scripts/gpu_scale.sh``).

    python benchmarks/scale_report.py OUT [--json scale.json] [--prompts 2990]

OUT is the job folder of ``scripts/gpu_scale.sh``: ``walls.jsonl`` (each ``magicvideo eval`` run's wall
time, timed from outside: process start to exit) and ``mlflow.db`` (each run's experiment
``scale-<run>``; the checkpoint's child run holds the stage timings ``time_*_s``, ``clips_per_s``,
``steady_clips_per_s``, ``first_batch_s`` and the metrics). Per run: wall time by stage and clips/s;
then the whole benchmark's projected wall time at each run's step count, from that run's steady rate
plus what does not grow with prompts (wall - generated clips / steady rate), and the step count that
fits 60 minutes (the U-Net's cost is linear in steps; the VAE decode and the fixed part are not: both
are taken from the runs, as ``a + b * steps`` per clip through two runs at different step counts).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.eval_runs import child_run  # noqa: E402

STAGES = ("manifest", "reference_fvd", "reference_fid", "generation", "features", "metrics")


def read_runs(out: Path) -> list[dict]:
    rows = []
    for line in (out / "walls.jsonl").read_text().splitlines():
        wall = json.loads(line)
        child = child_run(out / "mlflow.db", f"scale-{wall['run']}")
        mets = child.data.metrics if child else {}
        rows.append({**wall, **{f"{s}_s": mets.get(f"time_{s}_s") for s in STAGES},
                     "generated": mets.get("samples_generated"), "clips_per_s": mets.get("clips_per_s"),
                     "steady_clips_per_s": mets.get("steady_clips_per_s"), "first_batch_s": mets.get("first_batch_s"),
                     "fvd": mets.get("fvd"), "fvd_ci_low": mets.get("fvd_ci_low"), "fvd_ci_high": mets.get("fvd_ci_high"),
                     "device": child.data.tags.get("generation_device") if child else None})
    return rows


def project(rows: list[dict], prompts: int, budget_s: float = 3600.0) -> dict:
    """Projected wall time of ``prompts`` at each measured step count, and the step count under ``budget_s``."""
    ok = [r for r in rows if r.get("steady_clips_per_s") and r.get("exit") == 0]
    out: dict = {"prompts": prompts, "at_steps": {}}
    for r in ok:
        per_clip = 1.0 / r["steady_clips_per_s"]
        fixed = r["wall_s"] - r["generated"] * per_clip
        out["at_steps"][r["steps"]] = {"seconds_per_clip": per_clip, "fixed_s": fixed,
                                       "projected_s": fixed + prompts * per_clip}
    if len({r["steps"] for r in ok}) >= 2:
        lo, hi = sorted(ok, key=lambda r: r["steps"])[:: len(ok) - 1]
        b = (1 / hi["steady_clips_per_s"] - 1 / lo["steady_clips_per_s"]) / (hi["steps"] - lo["steps"])
        a = 1 / lo["steady_clips_per_s"] - b * lo["steps"]
        fixed = max(v["fixed_s"] for v in out["at_steps"].values())
        out["per_clip_model"] = {"a_s": a, "b_s_per_step": b}
        out["steps_within_budget"] = int(((budget_s - fixed) / prompts - a) / b) if b > 0 else None
        out["budget_s"] = budget_s
    return out


def fmt(v, nd=1):
    return "" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--prompts", type=int, default=2990)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = read_runs(args.out)
    proj = project(rows, args.prompts)
    cols = ["run", "prompts", "steps", "wall_s", *[f"{s}_s" for s in STAGES], "first_batch_s", "clips_per_s",
            "steady_clips_per_s", "fvd", "exit"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(fmt(r.get(c), 3 if "per_s" in c else 1) for c in cols) + " |")
    print(f"\ndevice: {rows[0].get('device') if rows else None}")
    for steps, p in sorted(proj["at_steps"].items()):
        print(f"{args.prompts} prompts at {steps} steps: {p['seconds_per_clip']:.3f} s a clip, fixed {p['fixed_s']:.0f} s "
              f"-> projected {p['projected_s'] / 60:.1f} min")
    if "steps_within_budget" in proj:
        print(f"per clip ~ {proj['per_clip_model']['a_s']:.3f} s + {proj['per_clip_model']['b_s_per_step']:.4f} s x steps; "
              f"steps that fit {proj['budget_s'] / 60:.0f} min: {proj['steps_within_budget']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": rows, "projection": proj}, indent=1))


if __name__ == "__main__":
    main()
