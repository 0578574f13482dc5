"""MLflow: tracking URI resolution and what a flow run logs. Only the flow process calls this.

Runs are written through ``MlflowClient`` with explicit run ids (not the fluent API's active-run
stack), so Prefect tasks on worker threads log into the right run.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

PARENT_TAG = "mlflow.parentRunId"


def tracking_uri(configured: str | None = None) -> str:
    """Config, else ``$MLFLOW_TRACKING_URI``, else ``mlflow.db`` (SQLite) in the working directory.

    The default is made absolute (``sqlite:////abs/path``: four slashes, STACK.md) so that a
    worker thread or subprocess with another working directory writes the same file.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return "sqlite:///" + str(Path.cwd().resolve() / "mlflow.db")


def client(uri: str):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def experiment_id(c, name: str) -> str:
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    uri = c._tracking_client.tracking_uri
    artifact_location = None
    if uri.startswith("sqlite:"):  # artifacts beside the database, not in whatever the cwd is
        db = Path(uri.split(":///", 1)[1] if not uri.startswith("sqlite:////") else uri[len("sqlite:///"):])
        artifact_location = (db.resolve().parent / "mlruns").as_uri()
    try:
        return c.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # created meanwhile by another flow process
        return c.get_experiment_by_name(name).experiment_id


def log_params(c, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k[:250], str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i : i + 100])


def log_metrics(c, run_id: str, metrics: dict[str, float], step: int) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None and np.isfinite(v)]
    if items:
        c.log_batch(run_id, metrics=items)


def log_json(c, run_id: str, obj, name: str, artifact_path: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_text(json.dumps(obj, indent=2, default=str))
        c.log_artifact(run_id, str(p), artifact_path)


def log_jsonl(c, run_id: str, rows: list[dict], name: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
        c.log_artifact(run_id, str(p))


def sample_grid(clips: list[np.ndarray], cols: int = 4) -> np.ndarray:
    """Tile clips ``(F, H, W, 3)`` into one clip, ``cols`` per row (blank cells black)."""
    f, h, w, _ = clips[0].shape
    rows = -(-len(clips) // cols)
    cols = min(cols, len(clips))
    grid = np.zeros((f, rows * h, cols * w, 3), np.uint8)
    for i, c in enumerate(clips):
        r, k = divmod(i, cols)
        grid[:, r * h : (r + 1) * h, k * w : (k + 1) * w] = c
    return grid


def log_grid(c, run_id: str, clips: list[np.ndarray], fps: float) -> None:
    from magicvideo.video_io import write_mp4

    if not clips:
        return
    with tempfile.TemporaryDirectory() as d:
        p = write_mp4(Path(d) / "samples_grid.mp4", sample_grid(clips), fps=fps)
        c.log_artifact(run_id, str(p), "samples")


def log_figure(c, run_id: str, fig, name: str) -> None:
    """Log a matplotlib figure as ``plots/<name>`` and close it."""
    import matplotlib.pyplot as plt

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        fig.savefig(p, dpi=100, bbox_inches="tight")
        c.log_artifact(run_id, str(p), "plots")
    plt.close(fig)


def where_to_look(c, experiment_id: str, run_id: str, output_root: str) -> str:
    """The lines a run ends with: its MLflow run id and tracking URI, how to open it, the output folder."""
    uri = c._tracking_client.tracking_uri
    page = f"#/experiments/{experiment_id}/runs/{run_id}"
    if uri.startswith(("http://", "https://")):
        how = f"{uri.rstrip('/')}/{page}"
    else:  # a file store or database: through a local UI
        how = f"mlflow ui --backend-store-uri {uri}, then http://127.0.0.1:5000/{page}"
    return f"MLflow run {run_id} ({uri})\nopen: {how}\noutputs: {output_root}"
