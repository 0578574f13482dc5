"""The eval flow on a Ray cluster of two nodes, both on this machine's loopback: a head started with
``ray start --head`` and a second node joining it with ``ray start --address``, as a user's
cluster would be. Actors spread over both nodes; losing the second node mid-run loses nothing.

Each node is one ``ray start --block`` in its own session, so it is stopped (with everything it
started: raylet, GCS, agents, workers) by its process group, never with ``ray stop``, which would
also stop other Ray instances on the machine.

Both nodes stay on 127.0.0.1, every port of theirs included (issue 19.2). Ray 2.60 rewrites a loopback
``--node-ip-address`` or ``--address`` into the machine's outward address, whose nodes listen on all
interfaces (:func:`flows.ray_cluster.keeping_loopback`). The head runs with Ray's local-only switch
off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``); ``ray start --address`` refuses to join a cluster with
that switch off, so the second node runs Ray's CLI with the rewrite disabled instead
(``_RAY_CLI_KEEPING_LOOPBACK``); the test's driver connects inside ``keeping_loopback``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from flows.ray_cluster import keeping_loopback
from tests.conftest import use_ray_token_auth
from tests.procnet import is_loopback, listening_sockets

use_ray_token_auth()  # before `import ray`; the `ray start` nodes inherit the same token

pytest.importorskip("prefect")
ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

N_PROMPTS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


#: `ray` (its CLI) with Ray's rewrite of a loopback address into the machine's turned off, for a node
#: joining a head on loopback (``ray._private.services.resolve_ip_for_localhost``, Ray 2.60)
_RAY_CLI_KEEPING_LOOPBACK = ("import sys, ray._private.services as s; s.resolve_ip_for_localhost = lambda host: host; "
                             "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())")


def _start_node(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    if "--head" in args:
        cli = [_ray_bin()]
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray's local-only switch: the head keeps 127.0.0.1
    else:
        cli = [sys.executable, "-c", _RAY_CLI_KEEPING_LOOPBACK]
    with open(log, "wb") as fh:
        return subprocess.Popen([*cli, "start", "--block", "--node-ip-address", "127.0.0.1",
                                 "--disable-usage-stats", *args],
                                stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip


def _session_pids(sid: int) -> list[int]:
    """Live (not zombie) processes of session `sid`."""
    out = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if os.getsid(int(entry.name)) == sid and state != "Z":
                out.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            pass
    return out


def _stop_node(proc: subprocess.Popen) -> None:
    """SIGTERM the node's process group, then SIGKILL whatever is left of its session."""
    sid = proc.pid
    try:
        os.killpg(sid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.time() + 10
    while time.time() < deadline and _session_pids(sid):
        time.sleep(0.2)
    for pid in _session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=10)
    deadline = time.time() + 30
    while time.time() < deadline and _session_pids(sid):
        time.sleep(0.2)


def _wait_for_nodes(address: str, n: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if not ray.is_initialized():
                with keeping_loopback():
                    ray.init(address=address, log_to_driver=False, include_dashboard=False)
            if sum(node["Alive"] for node in ray.nodes()) >= n:
                return
        except Exception:  # the head is still starting
            pass
        time.sleep(1)
    raise TimeoutError(f"the Ray cluster at {address} did not reach {n} live nodes in {timeout} s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head (2 CPUs: one actor, and room for a restarted one) and a worker node (1 CPU)."""
    from magicvideo.build import build_pipeline
    from magicvideo.data import ShapesSpec, write_shapes

    import torch
    from evaluation import InceptionI3d

    root = tmp_path_factory.mktemp("cluster")
    saved = {k: os.environ.get(k) for k in ("PREFECT_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["PREFECT_HOME"] = str(root / "prefect_home")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    if ray.is_initialized():
        ray.shutdown()
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head = _start_node(["--head", "--port", str(port), "--num-cpus", "2", "--num-gpus", "0",
                        "--include-dashboard", "false", "--resources", '{"head_node": 1}'], root / "head.log")  # fmt: skip
    worker = None
    try:
        _wait_for_nodes(address, 1)
        worker = _start_node(["--address", address, "--num-cpus", "1", "--num-gpus", "0",
                              "--resources", '{"worker_node": 1}'], root / "worker.log")  # fmt: skip
        _wait_for_nodes(address, 2)
        # every port of both nodes, and of this driver, on loopback (the agents open theirs a little later)
        time.sleep(5)
        sockets = listening_sockets([os.getpid(), *_session_pids(head.pid), *_session_pids(worker.pid)])
        assert len(sockets) >= 10 and not [s for s in sockets if not is_loopback(s[2])], sockets
        assert {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]} == {"127.0.0.1"}
        build_pipeline("tiny", weights="random", seed=0).save_pretrained(root / "ckpt" / "step-100")
        write_shapes(root / "shapes", ShapesSpec(train=0, test=N_PROMPTS, durations=[2.0], fps=[8.0]), workers=0)
        torch.manual_seed(0)
        torch.save(InceptionI3d().state_dict(), root / "i3d.pt")
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=120):
            yield {"root": root, "address": address, "head": head, "worker": worker,
                   "ckpt": str(root / "ckpt" / "step-100")}  # fmt: skip
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for proc in (worker, head):
            if proc is not None:
                _stop_node(proc)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert not _session_pids(head.pid) and (worker is None or not _session_pids(worker.pid))


def _overrides(cluster, out: Path) -> dict:
    return {
        "benchmark_root": str(cluster["root"] / "shapes"),
        "sampler": {"num_inference_steps": 10, "guidance_scale": 1.0},  # ~1 s a clip: the kill lands mid-run
        "ray": {"address": cluster["address"], "num_actors": 2, "batch_size": 1, "num_cpus_per_actor": 1,
                "max_restarts": 1, "max_in_flight_per_actor": 2},
        "metrics": {"device": "cpu", "batch_size": 4, "bootstrap": 20, "fid": None, "clipsim": None,
                    "fvd": {"extractor": "i3d_pytorch", "weights": str(cluster["root"] / "i3d.pt")},
                    "cache_dir": str(cluster["root"] / "refstats")},
        "tracking": {"uri": "sqlite:///" + str(out / "mlflow.db"), "grid_samples": 2},
    }


def _run(cluster, out: Path) -> dict:
    from flows.eval_flow import eval_flow

    (row,) = eval_flow(benchmark="shapes", checkpoints=[cluster["ckpt"]], limit=N_PROMPTS,
                       output_root=str(out / "eval"), overrides=_overrides(cluster, out))  # fmt: skip
    return row


def _samples(out: Path) -> dict[str, np.ndarray]:
    return {p.name: np.load(p) for p in sorted((out / "eval" / "samples").rglob("*.npy"))}


def _metrics(row: dict) -> dict:
    return {k: v for k, v in row.items() if k.startswith(("fvd", "fid", "attr", "clipsim")) and not k.endswith("_file")}


def test_actors_spread_over_both_nodes(cluster):
    from flows.config import RaySettings
    from flows.generation import start_actors

    if not ray.is_initialized():
        with keeping_loopback():
            ray.init(address=cluster["address"], log_to_driver=False)
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    actors = start_actors(RaySettings(address=cluster["address"], num_actors=2, num_cpus_per_actor=1), gpus=0)
    try:
        placed = {ray.get(a.info.remote(), timeout=120)["node"] for a in actors}
    finally:
        for a in actors:
            ray.kill(a)
    assert len(nodes) == 2 and placed == nodes


def test_losing_a_node_mid_run_redoes_its_batches_and_changes_no_result(cluster, tmp_path):
    """An undisturbed run, then the same run with the worker node killed once two samples exist:
    the lost node's batches are redone on the head, every sample is written once, and the samples
    and metrics equal the undisturbed run's."""
    calm = _run(cluster, tmp_path / "calm")
    assert calm["samples_generated"] == N_PROMPTS and calm["actor_deaths"] == 0

    out = tmp_path / "lost"
    samples_dir = out / "eval" / "samples"
    killed = threading.Event()

    def kill_worker_node():  # the whole node at once: `ray start`, its raylet, agents and workers
        deadline = time.time() + 600
        while time.time() < deadline:
            if samples_dir.exists() and any(samples_dir.rglob("*.npy")):
                for pid in _session_pids(cluster["worker"].pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                killed.set()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_worker_node, daemon=True)
    watcher.start()
    lost = _run(cluster, out)
    watcher.join(timeout=5)
    assert killed.is_set()
    assert lost["actor_deaths"] >= 1, lost
    # a sample the lost actor wrote just before dying is found on disk by the redo, not made twice
    assert lost["samples_generated"] + lost["samples_skipped"] <= N_PROMPTS and lost["samples_skipped"] == 0, lost
    a, b = _samples(tmp_path / "calm"), _samples(out)
    assert list(a) == list(b) and len(a) == N_PROMPTS
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert _metrics(lost) == _metrics(calm) and _metrics(calm)
