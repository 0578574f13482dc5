"""End to end against real services: `prefect server start` on 127.0.0.1, a process worker,
`prefect deploy --all` from prefect.yaml, `prefect deployment run eval/shapes` to completion, then
the MLflow run is read back. Servers are stopped by PID (worker SIGINT first, then the server)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.services, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(env, *args, timeout=120, check=True):
    prefect = str(Path(sys.executable).parent / "prefect")
    r = subprocess.run([prefect, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"prefect {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def _stop(proc: subprocess.Popen, sig) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_deployment_run_eval_shapes(tmp_path):
    import torch

    from evaluation import InceptionI3d
    from magicvideo.build import build_pipeline
    from magicvideo.data import ShapesSpec, write_shapes

    ckpt = tmp_path / "checkpoints" / "step-300"
    build_pipeline("tiny", weights="random", seed=0).save_pretrained(ckpt)
    write_shapes(tmp_path / "shapes", ShapesSpec(train=0, test=4, durations=[2.0], fps=[8.0]), workers=0)
    torch.manual_seed(0)
    torch.save(InceptionI3d().state_dict(), tmp_path / "i3d.pt")
    token = tmp_path / "ray_token"
    token.write_text(secrets.token_hex(32))
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect_home"),
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "PREFECT_WORKER_QUERY_SECONDS": "2",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "PWD": str(REPO)}
    env.pop("RAY_AUTH_TOKEN", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    logs = tmp_path / "logs"
    logs.mkdir()
    prefect = str(Path(sys.executable).parent / "prefect")
    server = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], cwd=tmp_path,
                              env=env, stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT)
    worker = None
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError("prefect server did not start:\n" + (logs / "server.log").read_text()[-3000:])
                time.sleep(1)
        _cli(env, "work-pool", "create", "magicvideo", "--type", "process")
        _cli(env, "--no-prompt", "deploy", "--all")
        listed = _cli(env, "deployment", "ls").stdout
        for name in ("eval/msrvtt", "eval/ucf101", "eval/shapes", "eval/ablations", "sweep/nightly"):
            assert name in listed
        nightly = _cli(env, "deployment", "inspect", "sweep/nightly").stdout
        assert "0 2 * * *" in nightly
        worker = subprocess.Popen([prefect, "worker", "start", "--pool", "magicvideo"], cwd=tmp_path, env=env,
                                  stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT)
        uri = "sqlite:///" + str(tmp_path / "mlflow.db")
        params = {
            "checkpoints": [str(ckpt)], "limit": 2, "output_root": str(tmp_path / "eval"),
            "overrides": {"benchmark_root": str(tmp_path / "shapes"),
                          "sampler": {"num_inference_steps": 2, "guidance_scale": 1.0},
                          "ray": {"num_actors": 1, "batch_size": 2, "shutdown": True},
                          "metrics": {"device": "cpu", "bootstrap": 0, "fid": None,
                                      "fvd": {"extractor": "i3d_pytorch", "weights": str(tmp_path / "i3d.pt")}},
                          "tracking": {"uri": uri}},
        }
        r = _cli(env, "deployment", "run", "eval/shapes", "--params", json.dumps(params), "--watch",
                 "--watch-timeout", "400", timeout=420, check=False)
        (logs / "deployment_run.txt").write_text(r.stdout + r.stderr)
        assert r.returncode == 0 and "Completed" in r.stdout, (r.stdout + r.stderr + (logs / "worker.log").read_text()[-4000:])
    finally:
        if worker is not None:
            _stop(worker, signal.SIGINT)  # the worker ignores SIGTERM (STACK.md)
        _stop(server, signal.SIGTERM)

    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("magicvideo-eval")
    runs = c.search_runs([exp.experiment_id])
    child = [x for x in runs if "mlflow.parentRunId" in x.data.tags]
    assert len(runs) == 2 and len(child) == 1
    assert child[0].info.status == "FINISHED" and child[0].data.tags["benchmark"] == "shapes"
    assert child[0].data.metrics["fvd"] > 0 and child[0].data.metrics["samples_generated"] == 2
    assert [m.step for m in c.get_metric_history(child[0].info.run_id, "fvd")] == [300]
    flow_run_id = child[0].data.tags["prefect_flow_run_id"]
    assert flow_run_id in r.stdout  # the MLflow run belongs to the deployment's flow run
