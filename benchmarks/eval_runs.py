"""Whole ``magicvideo eval`` runs timed from outside, and their MLflow runs read back: shared by
``bench_schedule.py``, ``bench_gpus.py`` (which run them) and ``scale_report.py`` (which reads them)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def child_run(db: str | Path, experiment: str | None = None):
    """The checkpoint's (child) run in the SQLite MLflow store ``db``: of ``experiment``, else of any
    experiment; None when there is none."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    if experiment is None:
        ids = [e.experiment_id for e in client.search_experiments()]
    else:
        exp = client.get_experiment_by_name(experiment)
        ids = [exp.experiment_id] if exp else []
    runs = client.search_runs(ids) if ids else []
    return next((r for r in runs if "mlflow.parentRunId" in r.data.tags), None)


def result_metrics(metrics: dict) -> dict:
    """A run's results (what must not depend on the schedule or the GPU count): its metrics less timings
    and rates."""
    return {k: v for k, v in metrics.items() if not k.startswith("time_") and "per_s" not in k and k != "first_batch_s"}


def timed_eval(args, out: Path, sets: list[str], label: str):
    """``magicvideo eval args.benchmark`` (``args``: limit, checkpoint list, root, set list) into ``out``
    (its samples under ``out/eval``, MLflow in ``out/mlflow.db``) with ``sets`` added; ``(wall seconds,
    child run)``. A failed run ends the benchmark with its output."""
    cmd = [sys.executable, "-m", "magicvideo.cli", "eval", args.benchmark, "--limit", str(args.limit),
           "--output-root", str(out / "eval"), "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}"]
    cmd += [x for c in args.checkpoint for x in ("--checkpoint", c)] + (["--root", args.root] if args.root else [])
    cmd += [x for s in [*sets, *args.set] for x in ("--set", s)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{label}: the run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return wall, child_run(out / "mlflow.db")
