"""Ray for the flows: connect to a cluster or start a local Ray, and keep a local Ray's own
processes out of the way of the work (their priority).

Also used by ``magicvideo eval`` before the flow (:mod:`flows.services`), where no Prefect run
logger exists yet: messages then go to the ``flows.ray_cluster`` logger.
"""

from __future__ import annotations

import os
from pathlib import Path


def ensure_ray(settings) -> bool:
    """Connect to ``settings.address`` or start a local Ray; returns True when this call started it.

    Ray 2.60's token authentication stays on: a local Ray uses ``RAY_AUTH_TOKEN_PATH`` /
    ``RAY_AUTH_TOKEN`` when set, else writes ``~/.ray/auth_token``; a cluster needs the same token.
    """
    import ray

    if ray.is_initialized():
        return False
    if settings.address is None:
        # Ray starts worker processes at nice 15: on a shared CPU machine the generation actors
        # (the flow's whole workload) then lose to every other process and ran 3-8x slower than
        # the same pipeline in the driver (BENCHMARKS.md, Orchestration). Our actors are the work.
        os.environ.setdefault("RAY_worker_niceness", "0")
    mode = os.environ.get("RAY_AUTH_MODE", "token (Ray's default)")
    _log().info("Ray: %s, auth mode %s", settings.address or "local", mode)
    local = settings.address is None and not os.environ.get("RAY_ADDRESS")
    # A local Ray is this run's own: "local" (with no address Ray attaches to any cluster that `ray start`
    # left on the machine), advertised on 127.0.0.1 (its GCS and raylet addresses)
    ray.init(address="local" if local else settings.address, include_dashboard=False, log_to_driver=False,
             configure_logging=False, **({"_node_ip_address": "127.0.0.1"} if local else {}))
    if settings.address is None:
        lowered = lower_priority(_ray_daemons())
        _log().info("Ray's own processes at nice %d: %s", DAEMON_NICENESS, ", ".join(lowered) or "none")
    return True


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
