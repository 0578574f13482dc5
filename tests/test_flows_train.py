"""The train-ablations flow under prefect_test_harness: the tiny shapes chain and two ablation
variants trained through Ray tasks, then evaluated side by side by the eval subflow (MLflow read back)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import use_ray_token_auth

use_ray_token_auth()  # before `import ray`: Ray reads its auth settings at import

pytest.importorskip("prefect")
ray = pytest.importorskip("ray")

# the tiny recipe at 16 frames (the FVD I3D needs >= 10): 2-second clips at 8 fps, spans of 16
TINY_16 = {"model.num_frames": 16, "stages.videovae.data.span": 16, "stages.pretrain.data.span": 16,
           "stages.finetune.data.span": 16}  # fmt: skip


@pytest.mark.slow
def test_train_ablations_flow_trains_variants_and_evaluates_them(tmp_path):
    import torch
    from mlflow.tracking import MlflowClient
    from prefect.testing.utilities import prefect_test_harness

    from evaluation import InceptionI3d
    from flows.train_flow import train_ablations_flow
    from magicvideo.pipeline import MagicVideoPipeline

    torch.manual_seed(0)
    torch.save(InceptionI3d().state_dict(), tmp_path / "i3d.pt")
    saved = os.environ.get("PREFECT_HOME")
    os.environ["PREFECT_HOME"] = str(tmp_path / "prefect_home")
    eval_overrides = {
        "sampler": {"num_inference_steps": 2, "guidance_scale": 1.0},
        "ray": {"num_actors": 1, "batch_size": 2, "num_cpus_per_actor": 0.5},
        "metrics": {"device": "cpu", "batch_size": 4, "bootstrap": 5, "fid": None,
                    "fvd": {"extractor": "i3d_pytorch", "weights": str(tmp_path / "i3d.pt"), "protocol": None},
                    "cache_dir": str(tmp_path / "refstats")},
        "tracking": {"uri": "sqlite:///" + str(tmp_path / "mlflow.db"), "grid_samples": 2},
        "output_root": str(tmp_path / "eval"),
    }  # fmt: skip
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # not a `ray start` cluster
    try:
        with prefect_test_harness(server_startup_timeout=120):
            result = train_ablations_flow(out=str(tmp_path / "chain"), recipe="tiny", seeds=[1, 2], device="cpu",
                                          variants=["full", "no_temporal"], recipe_overrides=TINY_16, limit=3,
                                          eval_overrides=eval_overrides)  # fmt: skip
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PREFECT_HOME", None)
        else:
            os.environ["PREFECT_HOME"] = saved

    chain = tmp_path / "chain"
    assert set(result["train"]) == {"full", "no_temporal", "full@2", "no_temporal@2"}  # seed 2: a replicate of each
    assert set(result["train"]["full@2"]["stages"]) == {"data", "pretrain", "finetune"}
    assert (chain / "ablations" / "seed2" / "full" / "pipeline" / "model_index.json").is_file()
    assert result["train"]["no_temporal"]["stages"]["finetune"]["steps"] >= 1
    assert set(result["train"]["no_temporal"]["stages"]) == {"data", "pretrain", "finetune"}  # upstream shared
    unet = MagicVideoPipeline.from_pretrained(chain / "ablations" / "no_temporal" / "pipeline").unet
    assert unet.config.temporal_attention == "none" and unet.config.num_frames == 16
    assert json.loads((chain / "ablations" / "train_reports.json").read_text()).keys() == set(result["train"])

    rows = result["eval"]
    assert [(r["variant"], r["ablation_seed"]) for r in rows] == [
        ("full", 1), ("temporal attention off", 1), ("full", 2), ("temporal attention off", 2)]
    assert all(np.isfinite(r["fvd"]) for r in rows) and rows[0]["fvd"] != rows[1]["fvd"] != rows[3]["fvd"]
    c = MlflowClient("sqlite:///" + str(tmp_path / "mlflow.db"))
    runs = c.search_runs([c.get_experiment_by_name("magicvideo-eval").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    abl = json.loads(Path(c.download_artifacts(parent.info.run_id, "ablations.json", str(tmp_path / "p"))).read_text())
    assert [(a["variant"], a["seed"]) for a in abl] == [(r["variant"], r["ablation_seed"]) for r in rows]
    assert all(0 <= a["attr_acc/mean"] <= 1 for a in abl)  # the shapes config scores attributes too
    # paired differences against the full model need >= 4 prompts: 3 here, so the table says whose
    # baseline it is and carries no difference (the paired numbers are tested in tests/test_eval_paired.py)
    assert [a["paired_baseline"] for a in abl] == ["full"] * 4 and "fvd_diff" not in abl[1]
    assert {"plots/ablations.png", "plots/ablations_seeds.png"} <= {a.path for a in c.list_artifacts(parent.info.run_id, "plots")}
    over = json.loads(Path(c.download_artifacts(parent.info.run_id, "ablations_seeds.json", str(tmp_path / "s"))).read_text())
    assert [(o["variant"], o["n_seeds"], o["seeds"]) for o in over] == [("full", 2, [1, 2]), ("temporal attention off", 2, [1, 2])]
    fvds = [r["fvd"] for r in rows if r["variant"] == "full"]
    assert over[0]["fvd/mean"] == pytest.approx(np.mean(fvds)) and over[0]["fvd/std"] == pytest.approx(np.std(fvds, ddof=1))
