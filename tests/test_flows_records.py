"""What an eval run records, without MLflow (flows.run_records), and reading a run's config back
from its logged params (flows.config.config_from_params)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from flows.config import CheckpointSpec, config_from_params, flatten, resolve_config  # noqa: E402
from flows.generation import GenerationReport  # noqa: E402
from flows import run_records  # noqa: E402
from flows.store import SampleItem  # noqa: E402

CKPT = {"path": "/ckpts/step-100", "id": "abc", "step": None, "label": "step-100", "ablation": None}
ITEMS = [SampleItem("a1", "p0", "a red circle", 0, 11), SampleItem("b2", "p1", "a blue square", 0, 12)]
RESULTS = {"fvd": {"value": 10.0, "ci_low": 8.0, "ci_high": 12.0, "value_debiased": 9.0, "replicates": [1.0, 2.0],
                   "features_file": "/out/features/fvd/x.npz"}}


def report(generated: int) -> GenerationReport:
    return GenerationReport(total=2, skipped=2 - generated, generated=generated, seconds=4.0 if generated else 0.0,
                            batches=1, redone_batches=0, actor_deaths=0, first_batch_s=1.0 if generated else 0.0,
                            records={"a1": {"generated": bool(generated), "seconds": 2.0, "pid": 1}})


@pytest.fixture
def cfg():
    return resolve_config("shapes", {"output_root": "/out"})


def test_clips_per_s_reads_cached_when_nothing_was_generated(cfg):
    mets = run_records.child_metrics(report(0), {"generation": 0.1}, RESULTS)
    assert "clips_per_s" not in mets and "first_batch_s" not in mets and mets["samples_skipped"] == 2
    assert run_records.child_tags(CKPT, cfg, "parent", None, report(0))["generation"] == "cached"
    row = run_records.summary_row(CKPT, cfg, "rid", mets, RESULTS)
    assert row["clips_per_s"] == "cached" and row["fvd"] == 10.0 and row["fvd_features_file"].endswith("x.npz")

    mets = run_records.child_metrics(report(2), {"generation": 4.0}, RESULTS)
    assert mets["clips_per_s"] == 0.5 and mets["fvd_debiased"] == 9.0 and mets["time_generation_s"] == 4.0
    assert run_records.child_tags(CKPT, cfg, "parent", None, report(2))["generation"] == "generated"
    assert run_records.summary_row(CKPT, cfg, "rid", mets, RESULTS)["clips_per_s"] == 0.5


def test_step_less_checkpoint_is_tagged_so(cfg):
    tags = run_records.child_tags(CKPT, cfg, "parent", "flow", report(1))
    assert tags["step_known"] == "false" and tags["mlflow.parentRunId"] == "parent" and "ablation" not in tags
    assert run_records.child_params(CKPT, cfg, ITEMS, {}, RESULTS)["checkpoint.step"] == "None"


def test_results_document_and_per_sample_records(cfg):
    mets = run_records.child_metrics(report(2), {}, RESULTS)
    doc = run_records.results_document(CKPT, cfg, mets, RESULTS, "flow")
    assert doc["frechet"]["fvd"] == {k: v for k, v in RESULTS["fvd"].items() if k != "replicates"}
    recs = run_records.per_sample_records(CKPT, cfg, ITEMS, report(2), RESULTS)
    assert [r["address"] for r in recs] == ["a1", "b2"] and recs[0]["path"] == "/out/samples/a1/a1.npy"
    assert recs[0]["generated"] is True and "pid" not in recs[0] and "generated" not in recs[1]


def test_provenance_names_code_packages_and_devices():
    prov = run_records.provenance("cpu")
    assert len(prov["mlflow.source.git.commit"]) == 40 and prov["git_dirty"] in ("true", "false")
    assert {f"version.{p}" for p in ("torch", "diffusers", "prefect", "ray", "mlflow")} <= set(prov)
    assert prov["version.torch"][0].isdigit() and prov["metrics_device"].startswith("cpu (")
    assert run_records.devices_tag(["NVIDIA H200"] * 2 + ["cpu (x86_64)"]) == "NVIDIA H200 x2, cpu (x86_64) x1"
    assert run_records.devices_tag([]) == "unknown"
    assert run_records.code_version.__wrapped__("/") == {"git_commit": "unknown", "git_dirty": "unknown"}


@pytest.mark.parametrize("name", ["shapes", "msrvtt", "ucf101", "ablations"])
def test_config_round_trips_through_logged_params(name):
    cfg = resolve_config(name, {"metrics": {"fvd": {"extractor": "i3d_pytorch", "options": {"bn_eps": 0.001}}},
                                "sampler": {"negative_prompt": "123"}, "seed": 5, "limit": None})
    cfg = cfg.model_copy(update={"checkpoints": [CheckpointSpec(path="/x/y", label="a", step=3)]})
    params = {**flatten(cfg.model_dump()), "num_samples": "8"}  # a param that is not a config key: ignored
    back = config_from_params(params)
    assert back == cfg and back.metrics.fvd.options == {"bn_eps": 0.001} and back.sampler.negative_prompt == "123"


def test_where_to_look_names_run_uri_and_outputs():
    from flows.tracking import where_to_look

    class Client:
        class _tracking_client:
            tracking_uri = "sqlite:////tmp/m.db"

    text = where_to_look(Client(), "3", "rid", "/out")
    assert text.splitlines() == ["MLflow run rid (sqlite:////tmp/m.db)",
                                 "open: mlflow ui --backend-store-uri sqlite:////tmp/m.db, then "
                                 "http://127.0.0.1:5000/#/experiments/3/runs/rid", "outputs: /out"]
    Client._tracking_client.tracking_uri = "http://mlflow:5000/"
    assert "open: http://mlflow:5000/#/experiments/3/runs/rid" in where_to_look(Client(), "3", "rid", "/out")


def test_a_distilled_student_is_evaluated_with_its_own_sampler(tmp_path, cfg):
    """flows.config.checkpoint_sampler: a folder with a distillation record samples at its
    ``sample_with`` steps and guidance; the spec's own fields win; other folders keep the config's.
    The child run's params and the summary row carry the checkpoint's sampler."""
    import json

    from flows.config import checkpoint_sampler

    student, teacher = tmp_path / "student", tmp_path / "teacher"
    student.mkdir(), teacher.mkdir()
    (student / "distillation.json").write_text(json.dumps({"method": "DMD2", "sample_with": {
        "num_inference_steps": 4, "guidance_scale": 1.0}}))  # fmt: skip
    assert cfg.sampler.num_inference_steps == 25 and cfg.sampler.guidance_scale == 7.5
    own = checkpoint_sampler(cfg.sampler, CheckpointSpec(path=str(student)), student)
    assert (own.num_inference_steps, own.guidance_scale, own.scheduler, own.fps) == (4, 1.0, "ddim", cfg.sampler.fps)
    assert checkpoint_sampler(cfg.sampler, CheckpointSpec(path=str(teacher)), teacher) == cfg.sampler
    given = checkpoint_sampler(cfg.sampler, CheckpointSpec(path=str(student), num_inference_steps=2), student)
    assert (given.num_inference_steps, given.guidance_scale) == (2, 1.0)
    ckpt = {**CKPT, "sampler": own}
    params = run_records.child_params(ckpt, cfg, ITEMS, {}, RESULTS)
    assert params["sampler.num_inference_steps"] == "4" and params["sampler.guidance_scale"] == "1.0"
    row = run_records.summary_row(ckpt, cfg, "rid", run_records.child_metrics(report(2), {}, RESULTS), RESULTS)
    assert (row["steps"], row["guidance"]) == (4, 1.0)
    assert run_records.summary_row(CKPT, cfg, "rid", {}, RESULTS)["steps"] == 25
    (student / "distillation.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="distillation.json: not a distillation record"):
        checkpoint_sampler(cfg.sampler, CheckpointSpec(path=str(student)), student)
