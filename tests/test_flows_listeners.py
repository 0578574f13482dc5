"""Issue 19.2: every listener the project starts binds to 127.0.0.1 unless the user asks otherwise.

Measured with Ray 2.60.0 on a machine whose outward address is 192.0.2.2, before the fix
(``ray.init(address="local", _node_ip_address="127.0.0.1")``: Ray replaces a loopback node address by
the machine's): GCS, raylet (node manager and object manager), the driver's and every worker's
core-worker gRPC server and the dashboard agent's gRPC server on ``:::`` (all interfaces), the
dashboard agent's metrics port on 0.0.0.0, its HTTP port on 192.0.2.2 and 127.0.0.1, the runtime-env
agent on 192.0.2.2, the autoscaler monitor's and dashboard process's metrics ports on 0.0.0.0. After
(:func:`flows.ray_cluster.keeping_loopback`): all on 127.0.0.1 (``::ffff:127.0.0.1`` for the gRPC
servers' IPv6 sockets). The temporary Prefect server was and is on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows import reaper
from tests.conftest import use_ray_token_auth
from tests.procnet import is_loopback, listening_sockets

REPO = Path(__file__).resolve().parents[1]


def test_is_loopback():
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.0.2.2", "::ffff:192.0.2.2", "::ffff:0.0.0.0"]))


@pytest.fixture
def fake_ray_init(monkeypatch):
    """``flows.ray_cluster.ensure_ray`` with ``ray.init`` replaced by a recorder of its arguments and of
    Ray's local-only switch at the time of the call; nothing starts."""
    ray = pytest.importorskip("ray")
    from ray._private import ray_constants

    import flows.ray_cluster as rc

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append((kw, ray_constants.ENABLE_RAY_CLUSTER)))
    monkeypatch.setattr(rc, "_ray_daemons", dict)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_worker_niceness", os.environ.get("RAY_worker_niceness", "0"))  # restored after
    return calls, ray_constants


@pytest.mark.parametrize("settings, node_ip, switch_off", [
    ({}, "127.0.0.1", True),                                  # the default: a local Ray on loopback
    ({"node_ip_address": "localhost"}, "localhost", True),
    ({"node_ip_address": None}, None, False),                 # Ray's own choice: the machine's address
    ({"node_ip_address": "192.0.2.7"}, "192.0.2.7", False),   # an address the user gives
    ({"address": "127.0.0.1:6379"}, None, True),              # a `ray start` head on loopback
    ({"address": "10.1.2.3:6379"}, None, False),
    ({"address": "auto"}, None, False),
])
def test_ensure_ray_keeps_a_local_ray_on_loopback_unless_asked_otherwise(fake_ray_init, settings, node_ip, switch_off):
    from flows.config import RaySettings
    from flows.ray_cluster import ensure_ray

    calls, ray_constants = fake_ray_init
    before = ray_constants.ENABLE_RAY_CLUSTER
    assert ensure_ray(RaySettings(**settings))
    ((kw, switch),) = calls
    assert kw.get("_node_ip_address") == node_ip
    assert kw["address"] == settings.get("address", "local")
    assert switch is (not switch_off if before else False)  # off only for the call ...
    assert ray_constants.ENABLE_RAY_CLUSTER is before       # ... and restored after it


_SERVICES = """
import sys, os, time
sys.path.insert(0, {repo!r})
import ray
from flows.services import starting_services

with starting_services(None) as services:  # as `magicvideo eval` starts them: Prefect's server, a local Ray
    pass

@ray.remote(num_cpus=0)
class Actor:  # a worker's core-worker server listens too
    def pid(self):
        return os.getpid()

a = Actor.remote()
ray.get(a.pid.remote())
print("up", flush=True)
sys.stdin.readline()
services.stop_ray()
if services.server is not None:
    services.server.stop()
"""


@pytest.mark.slow
def test_the_services_an_eval_starts_listen_on_loopback_only(tmp_path):
    """`magicvideo eval`'s services (``flows.services.starting_services``: the temporary Prefect
    server, a local Ray with an actor): every listening socket of every process they start (Ray's
    agents included) is on loopback."""
    use_ray_token_auth()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "RAY_ADDRESS"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect_home"), RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.Popen([sys.executable, "-c", _SERVICES.format(repo=str(REPO))], env=env, cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        wanted = ("uvicorn", "gcs_server", "raylet", "ray::DashboardAgent", "ray::RuntimeEnvAgent", "ray::Actor")
        deadline = time.monotonic() + 60  # the agents open their ports a little later
        while True:
            found = listening_sockets([proc.pid, *reaper.descendants(proc.pid)])
            missing = [w for w in wanted if not any(w in cmd for _, cmd, _, _ in found)]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert not missing, (missing, found)
        time.sleep(3)  # and any later one (Ray's dashboard process, autoscaler monitor: metrics ports)
        found = listening_sockets([proc.pid, *reaper.descendants(proc.pid)])
        exposed = [f for f in found if not is_loopback(f[2])]
        assert not exposed, exposed
        assert len(found) >= 9, found  # Prefect; GCS; raylet x2; agents; the driver's and the actor's servers
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _session(proc.pid):  # anything left of it (a failed run): its own session only
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _session(sid: int) -> list[int]:
    out = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if os.getsid(int(entry.name)) == sid:
                out.append(int(entry.name))
    return out


def test_the_temporary_prefect_server_is_out_of_the_terminals_process_group(monkeypatch):
    """A terminal's Ctrl-C signals its whole foreground process group: the temporary Prefect server
    runs in a group of its own, so it outlives the SIGINT until the run has reported its flow run's end
    (end to end: ``tests/test_flows_kill.py``, SIGINT to the run's process group)."""
    import flows.services as services

    seen = {}

    class Popen:
        def __init__(self, argv, **kw):
            seen.update(kw, argv=argv)

    monkeypatch.setattr(services.subprocess, "Popen", Popen)
    server = services.TemporaryPrefectServer()
    server.port = 1
    server._run()
    assert seen["process_group"] == 0
    assert seen["argv"][seen["argv"].index("--host") + 1] == "127.0.0.1"
