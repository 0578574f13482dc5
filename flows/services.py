"""What ``magicvideo eval`` / ``train-ablations`` start before the flow, side by side: a temporary
Prefect server, Ray, the flow's generation actors (loading the first checkpoint) and MLflow's store.

A flow started on its own starts them one after the other, each when first needed. Every one is
slow to start (BENCHMARKS.md, Orchestration: ~3-8 s for Prefect's server, ~3 s for ``ray.init``,
~3.5 s for an actor's process and imports, ~1 s for MLflow's SQLite store) and they do not depend on
each other, so the CLI starts them together and imports the flow meanwhile. On a 2-core machine the
flow's start-up and shutdown beyond a bare loop's went from ~14 s to ~7 s (with the changes to exit
in ``magicvideo.cli``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time


class TemporaryPrefectServer:
    """The API server of Prefect's embedded mode, started as early as possible.

    Prefect's own ``SubprocessASGIServer`` runs the same command (uvicorn on Prefect's
    ``create_app`` factory, UI off, ephemeral mode, 127.0.0.1, a free port, stopped at exit), but
    it lives in ``prefect.server.api.server``, whose import costs ~3 s of CPU in the calling
    process before the subprocess even starts. This starts the subprocess at once; the flow is
    then run inside :meth:`Services.prefect`, which points Prefect's client at it (``PREFECT_API_URL``).
    Unlike Prefect's, it runs in a process group of its own, out of reach of a terminal's Ctrl-C.

    It relies on Prefect's private settings (``PREFECT__SERVER_EPHEMERAL``, ``PREFECT__SERVER_FINAL``) as
    of prefect 3.8.8 (:data:`FAST_PATH_PREFECT`): :func:`fast_server_unavailable` keeps it to that
    version, and :func:`starting_services` falls back to Prefect's public embedded mode (no
    ``PREFECT_API_URL``: Prefect starts its own temporary server when the flow runs) when it does not
    start.
    """

    def __init__(self) -> None:
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        self.port = _free_port()
        self.process = self._run()
        atexit.register(self.stop)

    def _run(self) -> subprocess.Popen:
        import prefect
        from prefect.settings import get_current_settings

        env = {**os.environ, **get_current_settings().to_environment_variables(exclude_unset=True),
               "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        # its own process group: a terminal's Ctrl-C (SIGINT to the whole foreground group) is for the run,
        # which then reports its flow run's end to this server and stops it. In the run's group uvicorn exited
        # at once; Prefect's engine retried the Crashed state for ~100 s, the run failed with a ConnectError
        # instead of "interrupted" and then hung at exit (measured, issue 19.2). Ray's own processes block SIGINT.
        return subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "error", "--lifespan", "on"], env=env, process_group=0)

    def wait(self, timeout: float = 60.0) -> None:
        """Until ``/api/health`` answers; a clear error if the server exited or never answered."""
        import httpx

        deadline = time.monotonic() + timeout
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                if self.process.poll() == 3:  # uvicorn: the port was taken meanwhile
                    self.port = _free_port()
                    self.process = self._run()
                if self.process.poll() is not None:
                    raise RuntimeError(f"the temporary Prefect server exited with code {self.process.returncode} "
                                       f"(port {self.port}); its output is above")
                try:
                    if client.get(f"{self.api_url}/health", timeout=2.0).status_code == 200:
                        # up: from now on it serves the flow's logs and states in the gaps of the work
                        from flows.ray_cluster import lower_priority

                        lower_priority({self.process.pid: "prefect server"})
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"the temporary Prefect server on port {self.port} did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


#: The prefect version whose private server settings :class:`TemporaryPrefectServer` was checked with.
FAST_PATH_PREFECT = "3.8.8"
#: Set to 0 to always use Prefect's public embedded mode (a few seconds slower to start).
FAST_PATH_ENV = "MAGICVIDEO_FAST_PREFECT_SERVER"


def fast_server_unavailable() -> str | None:
    """Why the fast temporary server is not used here (None: it is)."""
    import prefect

    if os.environ.get(FAST_PATH_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return f"${FAST_PATH_ENV} is off"
    if prefect.__version__ != FAST_PATH_PREFECT:
        return f"prefect {prefect.__version__} is installed; the fast path was checked with {FAST_PATH_PREFECT}"
    return None


def _log():
    import logging

    return logging.getLogger("flows.services")


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_server_configured() -> bool:
    """A Prefect API to use already (``PREFECT_API_URL`` from the environment or the profile)."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


class Services:
    """What :func:`starting_services` started, for the flow to run with and the CLI to stop."""

    def __init__(self, server: TemporaryPrefectServer | None):
        self.server = server
        self.started_ray = False

    @contextlib.contextmanager
    def prefect(self):
        """The context to run the flow in: Prefect's client talks to the temporary server (no-op
        with a configured one). Its UI is off, so flow runs get no "View at" link. On leaving,
        the flow's last logs and events are sent while the server is still up, and Prefect's
        workers that send them stop (they would keep its address in this process)."""
        if self.server is None:
            yield
            return
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.server.api_url, PREFECT_UI_URL: ""}):
            try:
                yield
            finally:
                APILogWorker.drain_all(timeout=30)
                EventsWorker.drain_all(timeout=30)

    def stop_ray(self) -> None:
        """Shut down a local Ray started here, now rather than at interpreter exit (where Ray first
        sleeps 0.5 s for log lines that ``log_to_driver=False`` never sends)."""
        if self.started_ray:
            import ray

            ray.shutdown()
            self.started_ray = False


@contextlib.contextmanager
def starting_services(ray_address: str | None, warm=None):
    """Start a temporary Prefect server (unless one is configured), Ray, and, given the flow's
    resolved ``EvalConfig`` as ``warm``, its generation actors and MLflow store, side by side.

    Yields :class:`Services`. The body of the ``with`` runs while they start (the flow's own
    imports); on leaving, it waits until the server answers and MLflow is open. The actors load
    the first checkpoint meanwhile (``flows.generation.prestart_actors``); the flow takes them over.
    """
    server = None
    if not prefect_server_configured():
        reason = fast_server_unavailable()
        if reason is None:
            server = TemporaryPrefectServer()
        else:
            _log().info("Prefect: its own embedded server (%s)", reason)
    services = Services(server)
    if services.server is not None:
        try:
            services.server.start()
        except Exception as exc:  # noqa: BLE001 - the public embedded mode still works
            _fall_back(services, exc)
    mlflow_open = None
    if warm is not None:
        mlflow_open = threading.Thread(target=_open_tracking, args=(warm,), name="mlflow-open", daemon=True)
        mlflow_open.start()
    try:
        from flows import generation
        from flows.config import RaySettings, checkpoint_path
        from flows.ray_cluster import ensure_ray

        if warm is None:
            services.started_ray = ensure_ray(RaySettings(address=ray_address))
        else:
            services.started_ray = ensure_ray(warm.ray)
            generation.prestart_actors(warm.ray, checkpoint_path(warm.checkpoints[0]), warm.sampler.scheduler,
                                       warm.sampler.quantize, warm.sampler.dtype)
        yield services
        if services.server is not None:
            try:
                services.server.wait()
            except RuntimeError as exc:  # the private path failed: Prefect's public embedded mode instead
                _fall_back(services, exc)
    except BaseException:
        services.stop_ray()
        if services.server is not None:
            services.server.stop()
        raise
    finally:
        if mlflow_open is not None:
            mlflow_open.join()


def _fall_back(services: Services, exc: BaseException) -> None:
    _log().warning("the fast start of Prefect's temporary server failed (%s); using Prefect's own embedded "
                   "server instead", exc)
    services.server.stop()
    services.server = None


def _open_tracking(cfg) -> None:
    """Create (migrate) and cache MLflow's store for the flow; a failure is the flow's to report."""
    from flows import tracking

    try:
        tracking.experiment_id(tracking.client(tracking.tracking_uri(cfg.tracking.uri)), cfg.tracking.experiment)
    except Exception:  # noqa: BLE001 - the flow opens it again and fails with MLflow's own message
        pass
