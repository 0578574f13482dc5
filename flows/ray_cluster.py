"""Ray for the flows: connect to a cluster or start a local Ray, keep a local Ray's ports on loopback
(issue 19.2), and keep its own processes out of the way of the work (their priority).

Also used by ``magicvideo eval`` before the flow (:mod:`flows.services`), where no Prefect run
logger exists yet: messages then go to the ``flows.ray_cluster`` logger.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def ensure_ray(settings) -> bool:
    """Connect to ``settings.address`` or start a local Ray; returns True when this call started it.

    A local Ray runs on ``settings.node_ip_address``: 127.0.0.1 (the default) puts every port of its
    processes on loopback (:func:`keeping_loopback`). An address to connect to whose host is loopback
    (a ``ray start`` head on 127.0.0.1) is connected to as given.

    Ray 2.60's token authentication stays on: a local Ray uses ``RAY_AUTH_TOKEN_PATH`` /
    ``RAY_AUTH_TOKEN`` when set, else writes ``~/.ray/auth_token``; a cluster needs the same token.
    """
    import ray

    if ray.is_initialized():
        return False
    local = settings.address is None and not os.environ.get("RAY_ADDRESS")
    host = settings.node_ip_address if local else _host_of(settings.address or os.environ.get("RAY_ADDRESS"))
    if settings.address is None:
        # Ray starts worker processes at nice 15: on a shared CPU machine the generation actors
        # (the flow's whole workload) then lose to every other process and ran 3-8x slower than
        # the same pipeline in the driver (BENCHMARKS.md, Orchestration). Our actors are the work.
        os.environ.setdefault("RAY_worker_niceness", "0")
    mode = os.environ.get("RAY_AUTH_MODE", "token (Ray's default)")
    _log().info("Ray: %s, auth mode %s%s", settings.address or "local", mode,
                f", node address {host}" if local and host else "")
    # A local Ray is this run's own: "local" (with no address Ray attaches to any cluster that `ray start`
    # left on the machine), on `ray.node_ip_address` (127.0.0.1: every one of its ports on loopback)
    with keeping_loopback(is_ray_localhost(host)):
        ray.init(address="local" if local else settings.address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, **({"_node_ip_address": host} if local and host else {}))
    if settings.address is None:
        lowered = lower_priority(_ray_daemons())
        _log().info("Ray's own processes at nice %d: %s", DAEMON_NICENESS, ", ".join(lowered) or "none")
    return True


def is_ray_localhost(host: str | None) -> bool:
    """Whether Ray treats `host` as this machine's loopback: exactly ``127.0.0.1``, ``localhost`` or
    ``::1``, as ``ray._common.network_utils.is_localhost`` does. Ray's agents bind loopback only for
    those; for any other node address, 127.0.0.2 included, the dashboard agent binds its gRPC port on
    all interfaces (``ray/dashboard/agent.py``)."""
    return host is not None and host.strip("[]") in ("127.0.0.1", "localhost", "::1")


def _host_of(address: str | None) -> str | None:
    """The host of a ``host:port`` Ray address (None for "auto", "ray://...", or none)."""
    if not address or "://" in address or address in ("auto", "local"):
        return None
    return address.rsplit(":", 1)[0] if ":" in address else address


@contextlib.contextmanager
def keeping_loopback(enabled: bool = True):
    """Ray, within this block, keeps a loopback node address and a loopback cluster address as given.

    Ray 2.60 rewrites 127.0.0.1 (``localhost``, ``::1``) into the machine's outward address, both a
    node IP (``ray.init(_node_ip_address=...)``, ``ray start --node-ip-address``) and the host of an
    address to connect to (``ray._private.services.resolve_ip_for_localhost``), so that other
    machines can reach the node. A node on that address runs the gRPC servers of its GCS, raylet,
    workers and dashboard agent on all interfaces, the agent's metrics port on 0.0.0.0, and the
    agents' HTTP ports on that address (measured with Ray 2.60.0: ``tests/test_flows_listeners.py``).
    Ray skips the rewrite when its "local-only" switch is off: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
    read once at ``import ray`` into ``ray._private.ray_constants.ENABLE_RAY_CLUSTER`` (on by default
    on Linux; it exists so that Ray on macOS and Windows stays on loopback). The node IP is then
    127.0.0.1 and every Ray port, the dashboard agent's and runtime-env agent's included, binds
    127.0.0.1 only. The attribute is private to Ray: a Ray without it gets a warning and binds as it
    does (``tests/test_flows_listeners.py`` then fails).

    The switch is turned off only for the ``ray.init`` call (``ray`` is already imported by then) and
    restored after it: it also makes ``ray start --address`` refuse to join a cluster, and a later
    connection to a remote cluster from this process must see Ray's default.
    """
    from ray._private import ray_constants

    if enabled and not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        import ray

        _log().warning("Ray %s has no local-only switch (ray_constants.ENABLE_RAY_CLUSTER): its processes may "
                       "listen beyond loopback", ray.__version__)
        enabled = False
    if not enabled:
        yield
        return
    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


#: Niceness for the services around the work (a local Ray's GCS, raylet, agents, dashboard head,
#: log monitor; the temporary Prefect server): on a machine whose cores all run the actors, they
#: then take CPU in the gaps instead of preempting a thread of the actor's OpenMP team, which
#: stalls its partner at the next barrier (BENCHMARKS.md, Orchestration). 0 leaves them alone.
DAEMON_NICENESS = int(os.environ.get("MAGICVIDEO_DAEMON_NICENESS", "19"))


def lower_priority(pids: dict[int, str]) -> list[str]:
    """Set ``DAEMON_NICENESS`` on these processes (pid -> name); returns the names changed."""
    done = []
    for pid, name in pids.items() if DAEMON_NICENESS else ():
        try:
            os.setpriority(os.PRIO_PROCESS, pid, DAEMON_NICENESS)
            done.append(name)
        except OSError:  # gone, or not ours
            pass
    return done


def _ray_daemons() -> dict[int, str]:
    """A local Ray's own processes: this process's children that Ray started, and the raylet's
    agents; never a worker (workers start at ``RAY_worker_niceness``, set absolutely by the raylet)."""
    procs = _processes()
    mine = {pid: cmd for pid, (ppid, cmd) in procs.items() if ppid == os.getpid() and "/ray/" in cmd}
    raylets = [pid for pid, cmd in mine.items() if "raylet" in cmd.split()[0]]
    agents = {pid: cmd for pid, (ppid, cmd) in procs.items()
              if ppid in raylets and cmd.startswith(("ray::DashboardAgent", "ray::RuntimeEnvAgent"))}
    return {pid: _name(cmd) for pid, cmd in {**mine, **agents}.items()}


def _name(cmd: str) -> str:
    """A short name: the Python script's (``log_monitor.py``), else the executable's or Ray's title."""
    words = cmd.split() or ["?"]
    script = next((w for w in words if w.endswith(".py")), None)
    return Path(script if script and Path(words[0]).name.startswith("python") else words[0]).name


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line), from /proc (empty where there is none)."""
    out = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        out[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmd)
    return out


def _log():
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a flow run (magicvideo eval starts Ray before the flow)
        import logging

        return logging.getLogger("flows.ray_cluster")
