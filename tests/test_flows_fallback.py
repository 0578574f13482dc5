"""Issue 18.4: the fast temporary Prefect server (private PREFECT__SERVER_* settings of prefect 3.8.8)
is only a fast path; when it fails or another prefect version is installed, `magicvideo eval` runs its
flow in Prefect's public embedded mode."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import use_ray_token_auth

use_ray_token_auth()  # before `import ray`

pytest.importorskip("prefect")
from prefect import flow  # noqa: E402 - configures Prefect's logging now, not under the test's caplog


def test_fast_path_only_on_the_checked_prefect_version(monkeypatch):
    import prefect

    from flows import services

    monkeypatch.delenv(services.FAST_PATH_ENV, raising=False)
    monkeypatch.setattr(prefect, "__version__", services.FAST_PATH_PREFECT)
    assert services.fast_server_unavailable() is None
    monkeypatch.setattr(prefect, "__version__", "3.9.1")
    assert "prefect 3.9.1 is installed" in services.fast_server_unavailable()
    monkeypatch.setattr(prefect, "__version__", services.FAST_PATH_PREFECT)
    monkeypatch.setenv(services.FAST_PATH_ENV, "0")
    assert "is off" in services.fast_server_unavailable()


@pytest.mark.slow
def test_a_failing_fast_server_falls_back_to_prefects_embedded_mode(tmp_path, monkeypatch, caplog):
    import ray
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from flows import services

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect_home"))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    monkeypatch.delenv(services.FAST_PATH_ENV, raising=False)
    if PREFECT_API_URL.value() or ray.is_initialized():
        pytest.skip("needs a process with no Prefect API configured and no Ray running")
    # the private path breaks (as it would on a prefect whose private settings changed): its server exits
    monkeypatch.setattr(services.TemporaryPrefectServer, "_run",
                        lambda self: subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"]))

    @flow(name="fallback-check")
    def tiny(x: int) -> int:
        return x + 1

    with caplog.at_level("WARNING", logger="flows.services"):
        with services.starting_services(None) as started:
            pass
    try:
        assert started.server is None
        assert "using Prefect's own embedded server" in caplog.text
        with started.prefect():
            assert PREFECT_API_URL.value() is None  # nothing points Prefect at a server: its embedded mode
            assert tiny(1) == 2
            with get_client(sync_client=True) as client:  # (an embedded server may hold other tests' runs)
                flow_id = client.read_flow_by_name("fallback-check").id
                runs = [r for r in client.read_flow_runs() if r.flow_id == flow_id]
        assert runs and all(r.name and r.state.is_completed() for r in runs)
    finally:
        started.stop_ray()
        from prefect.server.api.server import SubprocessASGIServer

        SubprocessASGIServer().stop()  # Prefect's embedded server, now rather than at exit (pytest's streams closed)
