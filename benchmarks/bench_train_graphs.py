"""Key-frame training steps of the shapes model, eager against CUDA graphs (``cuda_graphs``), alone
and with several runs side by side on one GPU (how ``scripts/gpu_retrain_shapes.sh`` trains the
ablation variants and their seeds).

Each run is the shapes recipe's key-frame stage as it trains (`KeyframeTrainer.train`: the VideoVAE
encoder, the text encoder, eq. 6, fused AdamW, EMA, bf16 autocast, the recipe's batch of 32 clips of
16 frames at 64 px) on synthetic clips held in memory, so that only the step is timed. Random
weights: the step's cost does not depend on them. Prints one row per (mode, runs side by side):
ms per step of each run and the steps per second of all runs together, and, alone, the largest
difference between the eager and the graphed run's losses over the same steps.

    python benchmarks/bench_train_graphs.py [--steps 60] [--procs 1,5,15] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one_run(out: str, steps: int, graphs: bool, seed: int) -> dict:
    """Train `steps` steps into `out`; the seconds of the last half (after capture and warm-up)."""
    import torch

    from magicvideo.training import TrainConfig, build_keyframe_trainer, read_log
    from magicvideo.training.shapes import load_shapes_recipe, shapes_words

    rec = load_shapes_recipe("default")
    model = rec.model.model_copy(deep=True)
    model.text_encoder.vocabulary = shapes_words()
    stage = dict(rec.stages.finetune)
    stage.pop("data", None)
    cfg = TrainConfig(**{**stage, "model": model, "out_dir": out, "steps": steps, "seed": seed, "log_every": 10,
                         "checkpoint_every": 10 * steps, "cuda_graphs": graphs,
                         "device": "cuda" if torch.cuda.is_available() else "cpu"})  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    words = ["a red circle moving left", "a blue square moving up on black", "a green triangle rotating"]
    data = [{"video": (torch.rand(16, 3, 64, 64, generator=g) * 2 - 1), "caption": words[i % 3], "nu": 8.0}
            for i in range(64)]
    trainer = build_keyframe_trainer(cfg, dataset=data)
    trainer.train(progress=False)
    log = read_log(Path(out) / "train_log.jsonl")
    half = len(log) // 2
    secs = log[-1]["elapsed_s"] - log[half - 1]["elapsed_s"]
    den = trainer.denoiser
    return {"ms_per_step": 1000 * secs / (len(log) - half), "losses": [r["loss"] for r in log],
            "eager_calls": getattr(den, "eager_calls", None), "capture_failed": getattr(den, "failed", None)}


def side_by_side(procs: int, steps: int, graphs: bool) -> dict:
    """`procs` runs at once, each its own process (as the retraining job runs them)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        t0 = time.perf_counter()
        ps = [subprocess.Popen([sys.executable, __file__, "--one", f"{tmp}/r{i}", "--steps", str(steps),
                                "--seed", str(i)] + (["--graphs"] if graphs else []),
                               stdout=subprocess.PIPE, env=env, text=True) for i in range(procs)]  # fmt: skip
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in ps]
        wall = time.perf_counter() - t0
    ms = sorted(o["ms_per_step"] for o in outs)
    return {"mode": "graphs" if graphs else "eager", "procs": procs, "ms_per_step_median": ms[len(ms) // 2],
            "steps_per_s_all": sum(1000 / m for m in ms), "wall_s": wall,
            "eager_calls": [o["eager_calls"] for o in outs], "capture_failed": [o["capture_failed"] for o in outs],
            "losses_run0": outs[0]["losses"]}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--procs", default="1,5,15")
    ap.add_argument("--modes", default="eager,graphs")
    ap.add_argument("--json")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--graphs", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("bench_train_graphs needs a CUDA GPU", file=sys.stderr)
        return 2
    if args.one:
        print(json.dumps(one_run(args.one, args.steps, args.graphs, args.seed)))
        return 0
    rows = []
    print(f"{'mode':>7} {'runs':>5} {'ms/step (median run)':>21} {'steps/s, all runs':>18} {'wall s':>7}", flush=True)
    for procs in [int(p) for p in args.procs.split(",")]:
        for mode in args.modes.split(","):
            r = side_by_side(procs, args.steps, mode == "graphs")
            rows.append(r)
            print(f"{r['mode']:>7} {procs:>5} {r['ms_per_step_median']:>21.1f} {r['steps_per_s_all']:>18.1f} "
                  f"{r['wall_s']:>7.1f}  eager calls {r['eager_calls'][:3]} failed {r['capture_failed'][:1]}", flush=True)
    alone = {r["mode"]: r["losses_run0"] for r in rows if r["procs"] == 1}
    if len(alone) == 2:
        diff = max(abs(a - b) for a, b in zip(alone["eager"], alone["graphs"]))
        print(f"alone, same seed: largest |loss eager - loss graphs| over {len(alone['eager'])} steps = {diff:.2e} "
              f"(losses {min(alone['eager']):.3f}..{max(alone['eager']):.3f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
