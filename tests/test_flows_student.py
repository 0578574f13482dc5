"""A distilled student in the eval flow and ``magicvideo compare``: evaluated like any checkpoint with its own
steps and guidance 1, beside its teacher at other sampler settings."""

from __future__ import annotations

import pytest

from tests.conftest import use_ray_token_auth

use_ray_token_auth()  # before `import ray` (tests.test_flows_eval imports it)

pytest.importorskip("mlflow")


def test_compare_keeps_one_row_per_checkpoint_and_sampler(tmp_path):
    """The teacher at 25 and 50 steps and its student at 4 are three rows, told apart by their sampler
    columns; the newest run of each (checkpoint, sampler) counts."""
    from flows import tracking
    from flows.compare import compare

    uri = "sqlite:///" + str(tmp_path / "mlflow.db")
    client = tracking.client(uri)
    exp_id = tracking.experiment_id(client, "magicvideo-eval")

    def log(label, steps, guidance, fvd):
        rid = client.create_run(exp_id, tags={"benchmark": "shapes", "checkpoint_id": f"id-{label}",
                                              "checkpoint_label": label}).info.run_id
        tracking.log_params(client, rid, {"checkpoint.step": "None", "sampler.scheduler": "ddim",
                                          "sampler.num_inference_steps": str(steps), "sampler.guidance_scale": str(guidance)})
        tracking.log_metrics(client, rid, {"fvd": fvd}, step=0)
        client.set_terminated(rid, "FINISHED")

    log("pipeline", 25, 7.5, 90.0)
    log("pipeline", 50, 7.5, 88.0)
    log("student", 4, 1.0, 99.0)
    log("student", 4, 1.0, 97.0)  # a rerun: the newest counts
    table = compare(uri)["shapes"].set_index("checkpoint")
    assert sorted(table.index) == ["pipeline @25 steps, cfg 7.5", "pipeline @50 steps, cfg 7.5", "student"]
    assert table.loc["student", "fvd"] == 97.0 and table.loc["student", "steps"] == 4
    assert table.loc["student", "guidance"] == 1.0 and table.loc["pipeline @50 steps, cfg 7.5", "fvd"] == 88.0


@pytest.mark.slow
def test_student_folder_through_the_eval_flow_and_compare(tmp_path):
    """A tiny teacher and its student (1 DMD2 update, 2 steps), each evaluated by the flow with its own
    sampler; compare's table has both, and the paired differences pair the student with the teacher."""
    pytest.importorskip("prefect")
    ray = pytest.importorskip("ray")
    import os

    import torch
    from mlflow.tracking import MlflowClient

    from evaluation import InceptionI3d
    from flows.compare import compare, paired_differences
    from flows.eval_flow import eval_flow
    from magicvideo.build import build_pipeline
    from magicvideo.data import ShapesSpec, write_shapes
    from magicvideo.training.distill import DistillConfig, DistillTrainer, load_teacher
    from tests.test_flows_eval import overrides

    root = tmp_path
    saved = {k: os.environ.get(k) for k in ("PREFECT_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["PREFECT_HOME"] = str(root / "prefect_home")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    teacher = root / "teacher"
    build_pipeline("tiny", weights="random", seed=0).save_pretrained(teacher)
    cfg = DistillConfig(steps=1, batch_size=1, student_steps=2, fake_updates=1, regression_weight=0.0)
    tr = DistillTrainer(cfg, load_teacher(teacher), ["a red circle moves left on a blue background"], root / "run",
                        device="cpu")
    tr.train(progress=False)
    student = tr.save_student(root / "student", teacher)
    write_shapes(root / "shapes", ShapesSpec(train=0, test=4, durations=[2.0], fps=[8.0]), workers=0)
    torch.manual_seed(0)
    torch.save(InceptionI3d().state_dict(), root / "i3d_pretrained_400.pt")
    env = {"root": root}
    from prefect.testing.utilities import prefect_test_harness

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with prefect_test_harness(server_startup_timeout=120):
            for ckpt, steps, guidance in ((teacher, 3, 7.5), (student, 2, 1.0)):
                o = overrides(env, root, sampler={"num_inference_steps": steps, "guidance_scale": guidance})
                (row,) = eval_flow(benchmark="shapes", checkpoints=[str(ckpt)], limit=4, output_root=str(root / "eval"),
                                   overrides=o)
                assert row["checkpoint"] == ckpt.name and row["fvd"] > 0
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    uri = "sqlite:///" + str(root / "mlflow.db")
    table = compare(uri)["shapes"].set_index("checkpoint")
    assert table.loc["student", "steps"] == 2 and table.loc["student", "guidance"] == 1.0
    assert table.loc["teacher", "steps"] == 3 and table.loc["teacher", "guidance"] == 7.5
    diffs = paired_differences(uri, baseline="teacher", num_replicates=10, num_permutations=9)["shapes"]
    assert set(diffs["checkpoint"]) == {"student"} and "fvd" in set(diffs["metric"])
    c = MlflowClient(uri)
    runs = c.search_runs([c.get_experiment_by_name("magicvideo-eval").experiment_id],
                         "tags.checkpoint_label = 'student'")  # fmt: skip
    assert runs[0].data.params["sampler.num_inference_steps"] == "2"
