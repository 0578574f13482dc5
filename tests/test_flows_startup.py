"""`magicvideo eval`'s start-up (flows.services): a temporary Prefect server, Ray, the generation
actors (already loading the checkpoint) and MLflow, started side by side; the flow takes them over."""

from __future__ import annotations

import os

import pytest

from tests.conftest import use_ray_token_auth

use_ray_token_auth()  # before `import ray`: Ray reads its auth settings at import

pytest.importorskip("prefect")
ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """No Prefect API configured, no Ray running, Prefect's home in tmp_path."""
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect_home"))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if PREFECT_API_URL.value() or ray.is_initialized():
        pytest.skip("needs a process with no Prefect API configured and no Ray running")
    return tmp_path


def test_services_start_side_by_side_and_the_flow_takes_over_the_actors(fresh, monkeypatch):
    from mlflow.tracking import MlflowClient
    from prefect.client.orchestration import get_client

    from flows import generation, ray_cluster
    from flows.config import checkpoint_path, eval_config
    from flows.services import starting_services
    from magicvideo.build import build_pipeline
    from magicvideo.data import ShapesSpec, write_shapes

    tmp = fresh
    build_pipeline("tiny", weights="random", seed=0).save_pretrained(tmp / "ckpt")
    write_shapes(tmp / "shapes", ShapesSpec(train=0, test=2, durations=[2.0], fps=[8.0]), workers=0)
    uri = "sqlite:///" + str(tmp / "mlflow.db")
    params = dict(benchmark="shapes", checkpoints=[str(tmp / "ckpt")], limit=2, output_root=str(tmp / "eval"),
                  overrides={"benchmark_root": str(tmp / "shapes"),
                             "sampler": {"num_inference_steps": 2, "guidance_scale": 1.0},
                             "ray": {"num_actors": 1, "num_cpus_per_actor": 1, "batch_size": 2},
                             "metrics": {"fvd": None, "fid": None, "attributes": None},
                             "tracking": {"uri": uri, "grid_samples": 0}})
    cfg = eval_config(**params)
    started = []
    real_start = generation.start_actors
    monkeypatch.setattr(generation, "start_actors", lambda *a, **k: started.append(1) or real_start(*a, **k))
    with starting_services(None, warm=cfg) as services:
        from flows.eval_flow import eval_flow  # what the CLI does meanwhile
    try:
        assert services.server is not None and services.server.process.poll() is None
        assert ray.is_initialized() and services.started_ray and started == [1]
        (pre,) = generation._prestarted.values()
        # the actor was asked to load the checkpoint before any flow ran
        info = ray.get(pre[0].info.remote())
        assert info["checkpoint"] == checkpoint_path(cfg.checkpoints[0])
        # the work at nice 0; Ray's own processes and the Prefect server below it
        daemons = ray_cluster._ray_daemons()
        assert {"gcs_server", "raylet"} <= set(daemons.values())
        assert info["pid"] not in daemons and os.getpriority(os.PRIO_PROCESS, info["pid"]) == 0
        for pid in [*daemons, services.server.process.pid]:
            assert os.getpriority(os.PRIO_PROCESS, pid) == ray_cluster.DAEMON_NICENESS == 19
        assert MlflowClient(uri).get_experiment_by_name("magicvideo-eval") is not None  # store opened meanwhile
        with services.prefect():
            (row,) = eval_flow(**params)
            with get_client(sync_client=True) as client:  # the flow run is on the temporary server
                (run,) = client.read_flow_runs()
        assert run.name and run.state.is_completed() and row["samples_generated"] == 2
        assert started == [1] and not generation._prestarted  # the flow took over the pre-started actor
        with pytest.raises(ray.exceptions.RayActorError):  # and killed it when it ended
            ray.get(pre[0].info.remote(), timeout=30)
    finally:
        services.stop_ray()
        services.server.stop()
    assert not ray.is_initialized() and services.server.process is None


def test_take_actors_kills_actors_prestarted_with_other_settings(fresh):
    from flows import generation
    from flows.config import RaySettings

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # not a `ray start` cluster
    try:
        a = RaySettings(num_actors=1, num_cpus_per_actor=1)
        b = RaySettings(num_actors=1, num_cpus_per_actor=2)
        (pre,) = generation.start_actors(a)
        generation._prestarted[generation._actor_key(a)] = [pre]
        (mine,) = generation.take_actors(b)  # other settings: a new actor; the pre-started one would hold CPUs
        assert ray.get(mine.ready.remote(), timeout=60)
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(pre.info.remote(), timeout=30)
        assert not generation._prestarted
    finally:
        ray.shutdown()


def test_temporary_server_that_exits_fails_clearly(fresh):
    from flows.services import TemporaryPrefectServer

    server = TemporaryPrefectServer()
    server.start()
    server.process.kill()
    server.process.wait()
    with pytest.raises(RuntimeError, match=r"temporary Prefect server exited with code -9"):
        server.wait(timeout=20)
    server.stop()
    assert os.environ.get("PREFECT_API_URL") is None
