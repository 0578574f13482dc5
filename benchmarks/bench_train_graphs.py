"""Key-frame training steps of the shapes model, eager against CUDA graphs (``cuda_graphs``), alone
and with several runs side by side on one GPU (how ``scripts/gpu_retrain_shapes.sh`` trains the
ablation variants and their seeds).

Each run is the shapes recipe's key-frame stage as it trains (`KeyframeTrainer.train`: the VideoVAE
encoder, the text encoder, eq. 6, fused AdamW, EMA, bf16 autocast, the recipe's batch of 32 clips of
16 frames at 64 px) on synthetic clips held in memory, so that only the step is timed. Random
weights: the step's cost does not depend on them. Prints one row per (mode, runs side by side):
ms per step of each run and the steps per second of all runs together, and, alone, the largest
difference between the eager and the graphed run's losses over the same steps.

    python benchmarks/bench_train_graphs.py [--steps 60] [--procs 1,5,15] [--mps] [--profile] [--json FILE]

--mps runs the side-by-side runs under the CUDA Multi-Process Service (a control daemon started for the
runs and stopped after them, its pipe and log folders in a temporary directory): without it the GPU
time-slices between the processes' contexts, so one process's small kernels never overlap another's;
with it they share the SMs. --profile prints, for one run alone, the ops that take the most GPU and CPU
time over its steps (torch.profiler).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one_run(out: str, steps: int, graphs: bool, seed: int, profile: bool = False, encode_chunk: int = 0,
            data_dir: str | None = None) -> dict:
    """Train `steps` steps into `out`; the seconds of the last half (after capture and warm-up)."""
    import torch

    from magicvideo.training import TrainConfig, build_keyframe_trainer, read_log
    from magicvideo.training.shapes import load_shapes_recipe, shapes_words

    rec = load_shapes_recipe("default")
    model = rec.model.model_copy(deep=True)
    model.text_encoder.vocabulary = shapes_words()
    stage = dict(rec.stages.finetune)
    data_cfg = stage.pop("data", {})
    if data_dir:  # the rendered benchmark through the recipe's loader (span sampling, cache, workers)
        stage["data"] = {**data_cfg, "csv": str(Path(data_dir) / "train.csv")}
    if encode_chunk:
        stage["encode_chunk"] = encode_chunk
    cfg = TrainConfig(**{**stage, "model": model, "out_dir": out, "steps": steps, "seed": seed, "log_every": 10,
                         "checkpoint_every": 10 * steps, "cuda_graphs": graphs,
                         "device": "cuda" if torch.cuda.is_available() else "cpu"})  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    words = ["a red circle moving left", "a blue square moving up on black", "a green triangle rotating"]
    data = [{"video": (torch.rand(16, 3, 64, 64, generator=g) * 2 - 1), "caption": words[i % 3], "nu": 8.0}
            for i in range(64)]
    trainer = build_keyframe_trainer(cfg, dataset=None if data_dir else data)
    prof = None
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        prof = torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
    with prof if prof is not None else contextlib.nullcontext():
        trainer.train(progress=False)
    if prof is not None:
        ka = prof.key_averages()
        for key in ("self_cuda_time_total", "self_cpu_time_total"):
            print(ka.table(sort_by=key, row_limit=20, max_name_column_width=60), file=sys.stderr, flush=True)
    log = read_log(Path(out) / "train_log.jsonl")
    half = len(log) // 2
    secs = log[-1]["elapsed_s"] - log[half - 1]["elapsed_s"]
    den = trainer.denoiser
    return {"ms_per_step": 1000 * secs / (len(log) - half), "losses": [r["loss"] for r in log],
            "eager_calls": getattr(den, "eager_calls", None), "capture_failed": getattr(den, "failed", None)}


@contextlib.contextmanager
def mps_daemon(tmp: str):
    """The CUDA MPS control daemon for the processes started inside (their env gets its pipe folder)."""
    env = {**os.environ, "CUDA_MPS_PIPE_DIRECTORY": f"{tmp}/mps_pipe", "CUDA_MPS_LOG_DIRECTORY": f"{tmp}/mps_log"}
    for d in ("mps_pipe", "mps_log"):
        os.makedirs(f"{tmp}/{d}", exist_ok=True)
    subprocess.run(["nvidia-cuda-mps-control", "-d"], env=env, check=True)
    try:
        yield env
    finally:
        subprocess.run(["nvidia-cuda-mps-control"], input="quit\n", text=True, env=env, check=False)


def side_by_side(procs: int, steps: int, graphs: bool, mps: bool = False, encode_chunk: int = 0,
                 data_dir: str | None = None) -> dict:
    """`procs` runs at once, each its own process (as the retraining job runs them)."""
    with tempfile.TemporaryDirectory() as tmp, (mps_daemon(tmp) if mps else contextlib.nullcontext(os.environ)) as base:
        env = {**base, "OMP_NUM_THREADS": "2", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        t0 = time.perf_counter()
        ps = [subprocess.Popen([sys.executable, __file__, "--one", f"{tmp}/r{i}", "--steps", str(steps),
                                "--seed", str(i), "--encode-chunk", str(encode_chunk)] + (["--graphs"] if graphs else [])
                               + (["--data", data_dir] if data_dir else []),
                               stdout=subprocess.PIPE, env=env, text=True) for i in range(procs)]  # fmt: skip
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in ps]
        wall = time.perf_counter() - t0
    ms = sorted(o["ms_per_step"] for o in outs)
    return {"mode": ("graphs" if graphs else "eager") + ("+mps" if mps else "") + (f"/e{encode_chunk}" if encode_chunk else "")
            + ("/data" if data_dir else ""), "procs": procs, "ms_per_step_median": ms[len(ms) // 2],
            "steps_per_s_all": sum(1000 / m for m in ms), "wall_s": wall,
            "eager_calls": [o["eager_calls"] for o in outs], "capture_failed": [o["capture_failed"] for o in outs],
            "losses_run0": outs[0]["losses"]}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--procs", default="1,5,15")
    ap.add_argument("--modes", default="eager,graphs")
    ap.add_argument("--mps", action="store_true", help="also run each side-by-side row (procs > 1) under CUDA MPS")
    ap.add_argument("--profile", action="store_true", help="profile one run alone (stderr)")
    ap.add_argument("--encode-chunks", default="0",
                    help="VAE-encoder frames per call to compare, e.g. 16,512 (0: the recipe's encode_chunk)")
    ap.add_argument("--data", help="a rendered shapes benchmark (OUT/data of the chain): train on its clips through "
                                   "the recipe's loader instead of synthetic clips held in memory")
    ap.add_argument("--encode-chunk", type=int, default=0, help=argparse.SUPPRESS)
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
        print(json.dumps(one_run(args.one, args.steps, args.graphs, args.seed, args.profile, args.encode_chunk,
                                 args.data)))
        return 0
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, __file__, "--one", f"{tmp}/p", "--steps", str(args.steps), "--graphs",
                            "--profile"], check=True, stdout=subprocess.DEVNULL)
    rows = []
    print(f"{'mode':>16} {'runs':>5} {'ms/step (median run)':>21} {'steps/s, all runs':>18} {'wall s':>7}", flush=True)
    for procs in [int(p) for p in args.procs.split(",")]:
        runs = [(m, x, int(e)) for m in args.modes.split(",") for x in ([False, True] if args.mps and procs > 1 else [False])
                for e in args.encode_chunks.split(",")]
        for mode, mps, chunk in runs:
            r = side_by_side(procs, args.steps, mode == "graphs", mps, chunk, args.data)
            rows.append(r)
            print(f"{r['mode']:>16} {procs:>5} {r['ms_per_step_median']:>21.1f} {r['steps_per_s_all']:>18.1f} "
                  f"{r['wall_s']:>7.1f}  eager calls {r['eager_calls'][:3]} failed {r['capture_failed'][:1]}", flush=True)
    alone = {r["mode"]: r["losses_run0"] for r in rows if r["procs"] == 1 and r["mode"] in ("eager", "graphs")}
    if len(alone) == 2:
        diff = max(abs(a - b) for a, b in zip(alone["eager"], alone["graphs"]))
        print(f"alone, same seed: largest |loss eager - loss graphs| over {len(alone['eager'])} steps = {diff:.2e} "
              f"(losses {min(alone['eager']):.3f}..{max(alone['eager']):.3f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
