"""deploy/kuberay/raycluster.yaml against the parts of KubeRay's RayCluster (ray.io/v1) schema it
uses, and against the rest of the repository: the image the Dockerfile builds, the shared results
volume, and the Prefect deployment that runs on the cluster. No Kubernetes here: a schema check."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "deploy" / "kuberay" / "raycluster.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Open(BaseModel):  # Kubernetes objects: only the fields checked here are modelled
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Resources(_Strict):
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}


class Mount(_Open):
    name: str
    mountPath: str


class Container(_Open):
    name: str
    image: str
    resources: Resources
    volumeMounts: list[Mount] = []


class Volume(_Open):
    name: str


class PodSpec(_Open):
    containers: list[Container] = Field(min_length=1)
    volumes: list[Volume] = []


class Template(_Strict):
    spec: PodSpec


class StartParams(BaseModel):
    """KubeRay's rayStartParams is map[string]string: a YAML number there is rejected by the API server."""

    params: dict[str, str]

    @field_validator("params", mode="before")
    @classmethod
    def strings_only(cls, v):
        bad = {k: x for k, x in v.items() if not isinstance(x, str)}
        if bad:
            raise ValueError(f"rayStartParams values must be strings (quote them): {bad}")
        return v


class HeadGroup(_Strict):
    rayStartParams: dict
    template: Template
    serviceType: str | None = None


class WorkerGroup(_Strict):
    groupName: str
    replicas: int = Field(ge=0)
    minReplicas: int = Field(ge=0)
    maxReplicas: int = Field(ge=1)
    rayStartParams: dict
    template: Template


class Spec(_Strict):
    rayVersion: str
    enableInTreeAutoscaling: bool = False
    headGroupSpec: HeadGroup
    workerGroupSpecs: list[WorkerGroup] = Field(min_length=1)


class Metadata(_Open):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class RayCluster(_Strict):
    apiVersion: Literal["ray.io/v1"]
    kind: Literal["RayCluster"]
    metadata: Metadata
    spec: Spec


@pytest.fixture(scope="module")
def cluster() -> RayCluster:
    return RayCluster.model_validate(yaml.safe_load(MANIFEST.read_text()))


def _groups(c: RayCluster):
    yield "head", c.spec.headGroupSpec.rayStartParams, c.spec.headGroupSpec.template.spec
    for g in c.spec.workerGroupSpecs:
        yield g.groupName, g.rayStartParams, g.template.spec


def test_start_params_are_strings_and_gpus_match_the_pod_limits(cluster):
    for name, params, pod in _groups(cluster):
        StartParams(params=params)
        gpus = sum(int(c.resources.limits.get("nvidia.com/gpu", "0")) for c in pod.containers)
        assert int(params.get("num-gpus", "0")) == gpus, name
        assert params.get("dashboard-host", "127.0.0.1") != "0.0.0.0", name
    assert any(int(g.rayStartParams.get("num-gpus", "0")) >= 1 for g in cluster.spec.workerGroupSpecs)
    for g in cluster.spec.workerGroupSpecs:
        assert g.minReplicas <= g.replicas <= g.maxReplicas, g.groupName


def test_string_check_rejects_a_number():
    with pytest.raises(ValueError, match="must be strings"):
        StartParams(params={"num-gpus": 1})


def test_every_pod_runs_the_dockerfile_image_of_the_cluster_ray_version(cluster):
    dockerfile = (ROOT / "deploy" / "kuberay" / "Dockerfile").read_text()
    base = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM "))
    assert base.startswith(f"rayproject/ray:{cluster.spec.rayVersion}-")
    built = next(line.split("-t", 1)[1].split()[0] for line in dockerfile.splitlines() if "docker build" in line)
    images = {c.image for _, _, pod in _groups(cluster) for c in pod.containers}
    assert images == {built}


def test_results_volume_is_mounted_everywhere_and_the_deployment_writes_there(cluster):
    """Actors write samples where the flow reads them: one shared volume at the same path in
    every pod, and the cluster deployment's output_root below it."""
    mounts = set()
    for name, _, pod in _groups(cluster):
        volumes = {v.name for v in pod.volumes}
        for c in pod.containers:
            assert {m.name for m in c.volumeMounts} <= volumes, name
        mounts.add(frozenset(m.mountPath for c in pod.containers for m in c.volumeMounts))
    (shared,) = set.intersection(*(set(m) for m in mounts))
    deployments = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    params = deployments["msrvtt-cluster"]["parameters"]
    assert params["ray_address"] == "auto"  # its worker runs in the head pod
    assert Path(params["output_root"]).is_relative_to(shared)
    from flows.config import eval_config

    eval_config(**params, checkpoints=["/ckpt"])  # the parameters resolve to a valid config
