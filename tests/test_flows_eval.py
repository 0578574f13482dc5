"""The eval flow under prefect_test_harness, tiny pipelines, a local Ray (token auth), SQLite MLflow."""

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

N_PROMPTS = 4


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Checkpoints (2 steps), shapes data, random I3D weights, Prefect harness, local Ray."""
    import torch

    from evaluation import InceptionI3d
    from magicvideo.build import build_pipeline
    from magicvideo.data import ShapesSpec, write_shapes

    root = tmp_path_factory.mktemp("flows")
    saved = {k: os.environ.get(k) for k in ("PREFECT_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["PREFECT_HOME"] = str(root / "prefect_home")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    ckpts = []
    for step, seed in ((100, 0), (200, 1)):
        pipe = build_pipeline("tiny", weights="random", seed=seed)
        pipe.save_pretrained(root / f"ckpt/step-{step}")
        ckpts.append(str(root / f"ckpt/step-{step}"))
    write_shapes(root / "shapes", ShapesSpec(train=0, test=6, durations=[2.0], fps=[8.0]), workers=0)
    torch.manual_seed(0)
    torch.save(InceptionI3d().state_dict(), root / "i3d_pretrained_400.pt")
    from prefect.testing.utilities import prefect_test_harness

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # not a `ray start` cluster
    with prefect_test_harness(server_startup_timeout=120):
        yield {"root": root, "ckpts": ckpts}
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def overrides(env, out: Path, **extra) -> dict:
    o = {
        "benchmark_root": str(env["root"] / "shapes"),
        "sampler": {"num_inference_steps": 2, "guidance_scale": 1.0},
        "ray": {"num_actors": 2, "batch_size": 1, "num_cpus_per_actor": 0.5, "max_restarts": 1},
        "metrics": {"device": "cpu", "batch_size": 4, "bootstrap": 20, "fid": None,
                    "fvd": {"extractor": "i3d_pytorch", "weights": str(env["root"] / "i3d_pretrained_400.pt")},
                    "cache_dir": str(env["root"] / "refstats")},
        "tracking": {"uri": "sqlite:///" + str(out / "mlflow.db"), "grid_samples": 4},
    }
    for k, v in extra.items():
        o[k] = {**o[k], **v} if isinstance(v, dict) and isinstance(o.get(k), dict) else v
    return o


def run(env, out, ckpts, **extra):
    from flows.eval_flow import eval_flow

    return eval_flow(benchmark="shapes", checkpoints=ckpts, limit=N_PROMPTS, output_root=str(out / "eval"),
                     overrides=overrides(env, out, **extra))


def samples(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "eval" / "samples").rglob("*.npy")}


@pytest.fixture(scope="module")
def full_run(env, tmp_path_factory):
    """One eval of both checkpoints (labelled as ablation variants), read back from MLflow; the
    tests below each check one part of what it left."""
    from mlflow.tracking import MlflowClient

    out = tmp_path_factory.mktemp("full_run")
    ckpts = [{"path": env["ckpts"][0], "ablation": "full"}, {"path": env["ckpts"][1], "ablation": "adaptor off"}]
    rows = run(env, out, ckpts)
    c = MlflowClient("sqlite:///" + str(out / "mlflow.db"))
    runs = c.search_runs([c.get_experiment_by_name("magicvideo-eval").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = sorted((r for r in runs if "mlflow.parentRunId" in r.data.tags), key=lambda r: r.data.tags["checkpoint"])
    return {"out": out, "rows": rows, "client": c, "parents": parents, "children": children}


@pytest.mark.slow
def test_full_run_rows(full_run):
    rows = full_run["rows"]
    assert [r["step"] for r in rows] == [100, 200]
    assert len(samples(full_run["out"])) == 2 * N_PROMPTS
    for r in rows:
        assert np.isfinite(r["fvd"]) and r["fvd"] > 0
        assert r["fvd_ci_low"] <= r["fvd"] * 1.5 and r["fvd_ci_low"] <= r["fvd_ci_high"]
        assert r["samples_generated"] == N_PROMPTS and r["clips_per_s"] > 0
    assert rows[0]["fvd"] != rows[1]["fvd"]  # different weights, different samples
    # what the console ends with: the MLflow run, how to open it, the output folder
    where = rows[0]["where"].splitlines()
    assert where[0] == f"MLflow run {full_run['parents'][0].info.run_id} (sqlite:///{full_run['out'] / 'mlflow.db'})"
    assert where[1].startswith("open: mlflow ui --backend-store-uri ") and where[2] == f"outputs: {full_run['out'] / 'eval'}"


@pytest.mark.slow
def test_full_run_parent_and_child_runs(full_run, env):
    from flows.store import checkpoint_id

    parents, children, rows = full_run["parents"], full_run["children"], full_run["rows"]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["prefect_flow_run_id"] not in ("", "None")
    assert parent.data.params["sampler.num_inference_steps"] == "2"
    for ch, row, ck in zip(children, rows, env["ckpts"]):
        assert ch.info.status == "FINISHED" and ch.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert ch.data.tags["checkpoint_id"] == checkpoint_id(ck) and ch.data.tags["generation"] == "generated"
        assert ch.data.params["checkpoint.step"] == str(row["step"])
        # the child run spans the checkpoint's evaluation (generation included), not just its logging
        assert ch.info.end_time - ch.info.start_time >= 1000 * row["time_generation_s"]
        assert ch.info.start_time >= parent.info.start_time


@pytest.mark.slow
def test_full_run_provenance(full_run):
    """Code version, package versions and devices on the parent and every child run (issue 19.4)."""
    for r in full_run["parents"] + full_run["children"]:
        tags = r.data.tags
        assert len(tags["mlflow.source.git.commit"]) == 40 and tags["git_dirty"] in ("true", "false")
        assert all(tags[f"version.{p}"][0].isdigit() for p in ("torch", "diffusers", "prefect", "ray", "mlflow"))
        assert tags["generation_device"].startswith("cpu (") and tags["generation_device"].endswith(" x2")
        assert tags["metrics_device"].startswith("cpu (")


@pytest.mark.slow
def test_full_run_child_metrics_and_attributes(full_run):
    c = full_run["client"]
    for ch, row in zip(full_run["children"], full_run["rows"]):
        assert ch.data.metrics["fvd"] == pytest.approx(row["fvd"])
        # configs/eval/shapes.yaml turns attribute accuracy on (the committed classifier)
        for a in ("shape", "color", "background", "motion", "speed", "mean", "all"):
            assert 0 <= ch.data.metrics[f"attr_acc/{a}"] <= 1 and ch.data.metrics[f"attr_acc/{a}"] == row[f"attr_acc/{a}"]
        assert ch.data.metrics["attr_chance/color"] == pytest.approx(1 / 6)
        assert ch.data.metrics["attr_chance/motion"] == pytest.approx(1 / 8)
        hist = c.get_metric_history(ch.info.run_id, "fvd")
        assert [m.step for m in hist] == [row["step"]]


@pytest.mark.slow
def test_full_run_child_artifacts(full_run, tmp_path):
    c = full_run["client"]
    for ch in full_run["children"]:
        arts = {a.path for a in c.list_artifacts(ch.info.run_id)} | {
            a.path for d in ("samples", "plots") for a in c.list_artifacts(ch.info.run_id, d)}
        assert {"results.json", "samples.jsonl", "samples/samples_grid.mp4", "plots/bootstrap_fvd.png"} <= arts
        local = c.download_artifacts(ch.info.run_id, "samples.jsonl", str(tmp_path / ch.info.run_id))
        lines = [json.loads(s) for s in Path(local).read_text().splitlines()]
        assert len(lines) == N_PROMPTS and all(Path(x["path"]).is_file() for x in lines)
        for x in lines:  # what the prompt asked for, what the classifier saw, and whether they agree
            assert set(x["requested"]) == set(x["predicted"]) == set(x["attr_correct"]) == {
                "shape", "color", "background", "motion", "speed"}
            assert all(x["attr_correct"][k] == (x["requested"][k] == x["predicted"][k]) for k in x["requested"])
            assert x["requested"]["color"] in x["prompt"]
        shape_acc = sum(x["attr_correct"]["shape"] for x in lines) / len(lines)
        assert ch.data.metrics["attr_acc/shape"] == pytest.approx(shape_acc)
        res = json.loads(Path(c.download_artifacts(ch.info.run_id, "results.json", str(tmp_path / "r" / ch.info.run_id)))
                         .read_text())
        assert res["attributes"]["n"] == N_PROMPTS and res["attributes"]["accuracy"]["shape"] == pytest.approx(shape_acc)


@pytest.mark.slow
def test_full_run_ablation_table_and_compare(full_run, tmp_path):
    from flows.compare import compare

    c, rows, parent = full_run["client"], full_run["rows"], full_run["parents"][0]
    assert {"plots/fvd_vs_step.png", "plots/ablations.png"} <= {a.path for a in c.list_artifacts(parent.info.run_id, "plots")}
    abl = json.loads(Path(c.download_artifacts(parent.info.run_id, "ablations.json", str(tmp_path / "p"))).read_text())
    assert [(a["variant"], a["fvd"]) for a in abl] == [("full", rows[0]["fvd"]), ("adaptor off", rows[1]["fvd"])]
    table = compare("sqlite:///" + str(full_run["out"] / "mlflow.db"), "magicvideo-eval", tmp_path / "plots")["shapes"]
    assert list(table["step"]) == [100, 200]
    assert list(table["fvd"]) == pytest.approx([r["fvd"] for r in rows])
    assert (tmp_path / "plots" / "shapes_fvd.png").is_file()


@pytest.mark.slow
def test_rerun_from_the_logged_params_gives_the_same_metrics(full_run, tmp_path):
    """Reproducible from MLflow alone: the parent run's params give back the run's config; evaluated
    again into an empty output folder (samples generated afresh), the metrics are the same."""
    from flows.config import config_from_params
    from flows.eval_flow import eval_flow

    cfg = config_from_params(full_run["parents"][0].data.params)
    o = cfg.model_dump(exclude={"benchmark", "checkpoints"})
    o["output_root"], o["tracking"]["uri"] = str(tmp_path / "eval"), "sqlite:///" + str(tmp_path / "mlflow.db")
    rows = eval_flow(benchmark=cfg.benchmark, checkpoints=[c.model_dump() for c in cfg.checkpoints], overrides=o)
    assert [r["samples_generated"] for r in rows] == [N_PROMPTS, N_PROMPTS]

    def metrics(r):
        return {k: v for k, v in r.items() if k.split("_")[0] in ("fvd", "clipsim", "step") or k.startswith("attr_")
                if not k.endswith("_features_file")}

    assert [metrics(r) for r in rows] == [metrics(r) for r in full_run["rows"]]
    assert {"fvd", "fvd_ci_low", "attr_acc/mean"} <= set(metrics(rows[0]))


@pytest.mark.slow
def test_rerun_after_crash_regenerates_nothing_finished(env, tmp_path, kill_actor_once):
    """One actor, no restarts, SIGKILLed at its 3rd batch: the flow fails; the rerun makes only the rest."""
    marker = kill_actor_once(2)
    ray_crash = {"num_actors": 1, "max_restarts": 0, "max_in_flight_per_actor": 1}
    nometrics = {"fvd": None}
    with pytest.raises(Exception, match="every generation actor died"):
        run(env, tmp_path, env["ckpts"][:1], ray=ray_crash, metrics=nometrics)
    before = samples(tmp_path)
    assert len(before) == 2 and not marker.exists()
    assert not list((tmp_path / "eval" / "samples").rglob("*.tmp"))
    rows = run(env, tmp_path, env["ckpts"][:1], ray=ray_crash, metrics=nometrics)
    after = samples(tmp_path)
    assert len(after) == N_PROMPTS
    assert {k: after[k] for k in before} == before  # finished samples untouched
    assert rows[0]["samples_generated"] == N_PROMPTS - 2 and rows[0]["samples_skipped"] == 2
    rows = run(env, tmp_path, env["ckpts"][:1], ray=ray_crash, metrics=nometrics)  # a third run regenerates nothing
    assert rows[0]["samples_generated"] == 0 and samples(tmp_path) == after


@pytest.mark.slow
def test_killed_actor_batch_is_redone(env, tmp_path, kill_actor_once):
    from flows.generation import GenerationWorker, generate, start_actors
    from flows.config import RaySettings
    from flows.store import checkpoint_id, plan_samples, read_sample, sample_path
    from magicvideo.data import PromptRecord

    marker = kill_actor_once(0)  # the first batch started dies
    records = [PromptRecord(prompt_id=f"t/{i}", prompt=p, benchmark="t")
               for i, p in enumerate(["a red circle moving left", "a blue square moving up", "a green triangle"])]
    sampler = {"scheduler": "ddim", "num_inference_steps": 2, "guidance_scale": 1.0, "fps": 8.0,
               "negative_prompt": "", "eta": 0.0}
    ck = env["ckpts"][0]
    items = plan_samples(records, checkpoint_id(ck), sampler, 2, 0)
    actors = start_actors(RaySettings(num_actors=2, num_cpus_per_actor=0.5, max_restarts=0), gpus=0)
    try:
        rep = generate(actors, ck, items, sampler, str(tmp_path), batch_size=2, max_in_flight_per_actor=2,
                       max_restarts=0)
    finally:
        for a in actors:
            ray.kill(a)
    assert not marker.exists() and rep.actor_deaths == 1 and rep.redone_batches >= 1
    assert rep.generated == len(items) == 6
    # every sample equals the same prompt + seed generated alone
    w = GenerationWorker("cpu")
    w.load(ck, "ddim")
    it = items[3]
    alone = w.pipe([it.prompt], seed=[it.seed], num_inference_steps=2, guidance_scale=1.0, fps=8.0,
                   negative_prompt=[""], output_type="uint8").frames[0]
    assert np.array_equal(read_sample(sample_path(tmp_path, it.address)), alone)


@pytest.mark.slow
def test_sweep_evaluates_only_new_checkpoints_and_cli(env, tmp_path):
    """The nightly sweep evaluates a new checkpoint once; `magicvideo eval` runs the same flow."""
    import shutil

    from flows.eval_flow import sweep_flow
    from magicvideo.cli import main

    watch = tmp_path / "watch"
    shutil.copytree(env["ckpts"][0], watch / "run-a" / "step-100")  # found below the watched folder
    (watch / "run-a" / "logs").mkdir()
    o = overrides(env, tmp_path, metrics={"fvd": None})
    o.update(limit=2, output_root=str(tmp_path / "eval"))
    new = str(watch / "run-a" / "step-100")
    assert sweep_flow(watch_dir=str(watch), benchmarks=["shapes"], overrides=o) == {"shapes": [new]}
    assert sweep_flow(watch_dir=str(watch), benchmarks=["shapes"], overrides=o) == {"shapes": []}
    assert len(samples(tmp_path)) == 2
    rc = main(["eval", "shapes", "--checkpoint", env["ckpts"][1], "--limit", "2", "--steps", "2",
               "--root", str(env["root"] / "shapes"), "--output-root", str(tmp_path / "eval"),
               "--tracking-uri", o["tracking"]["uri"], "--set", "metrics.fvd=null", "--set", "metrics.fid=null",
               "--set", "ray.num_cpus_per_actor=0.5"])
    assert rc == 0 and len(samples(tmp_path)) == 4
    from flows.compare import compare

    assert list(compare(o["tracking"]["uri"])["shapes"]["step"]) == [100, 200]


@pytest.mark.slow
def test_fid_through_the_flow(env, tmp_path):
    """The FID path (Inception pool3 over every frame, bootstrap interval) runs end to end."""
    import torch
    from mlflow.tracking import MlflowClient

    from evaluation import InceptionV3FID

    torch.manual_seed(0)
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(InceptionV3FID().state_dict(), weights)
    from flows.eval_flow import eval_flow

    o = overrides(env, tmp_path, metrics={"fvd": None, "fid": {"extractor": "inception_v3_fid", "weights": str(weights)},
                                          "bootstrap": 5})
    rows = eval_flow(benchmark="shapes", checkpoints=env["ckpts"][:1], limit=2, output_root=str(tmp_path / "eval"),
                     overrides=o)
    (row,) = rows
    assert "fvd" not in row and np.isfinite(row["fid"]) and row["fid"] > 0
    assert row["fid_ci_low"] <= row["fid_ci_high"]
    c = MlflowClient("sqlite:///" + str(tmp_path / "mlflow.db"))
    child = [r for r in c.search_runs([c.get_experiment_by_name("magicvideo-eval").experiment_id])
             if "mlflow.parentRunId" in r.data.tags]
    assert child and child[0].data.metrics["fid"] == pytest.approx(row["fid"])


@pytest.mark.slow
def test_shapes_domain_metrics_and_committed_pipeline_through_the_cli(env, tmp_path, capsys):
    """`magicvideo eval shapes` with no --checkpoint: the committed pipeline, FVD on the ShapesI3D
    features, FID on the shapes CLIP's frame embeddings, attribute accuracy; all in MLflow and printed."""
    from mlflow.tracking import MlflowClient

    from magicvideo.checkpoints import shapes_checkpoint
    from magicvideo.cli import main
    from flows.store import checkpoint_id

    uri = "sqlite:///" + str(tmp_path / "mlflow.db")
    rc = main(["eval", "shapes", "--limit", "3", "--steps", "2", "--root", str(env["root"] / "shapes"),
               "--output-root", str(tmp_path / "eval"), "--tracking-uri", uri, "--set", "metrics.bootstrap=5",
               "--set", "ray.num_cpus_per_actor=0.5", "--set", "ray.batch_size=3",
               "--set", f"metrics.cache_dir={json.dumps(str(tmp_path / 'refstats'))}"])
    assert rc == 0 and len(samples(tmp_path)) == 3
    c = MlflowClient(uri)
    (child,) = [r for r in c.search_runs([c.get_experiment_by_name("magicvideo-eval").experiment_id])
                if "mlflow.parentRunId" in r.data.tags]
    assert child.data.tags["checkpoint_id"] == checkpoint_id(shapes_checkpoint("pipeline"))
    m, p = child.data.metrics, child.data.params
    assert json.loads(p["fvd.extractor_identity"])["extractor"] == "shapes_i3d"
    assert json.loads(p["fid.extractor_identity"])["extractor"] == "clip_image"
    assert np.isfinite(m["fvd"]) and m["fvd"] > 0 and np.isfinite(m["fid"]) and m["fid"] > 0
    assert m["fvd_ci_low"] <= m["fvd_ci_high"] and {"attr_acc/mean", "attr_chance/mean", "attr_acc/color"} <= set(m)
    out = capsys.readouterr().out
    assert "FVD [95% CI]" in out and "FID [95% CI]" in out
    # the console ends with the MLflow run, how to open it, and the output folder
    run_line, open_line, outputs = out.rstrip().splitlines()[-3:]
    assert run_line == f"MLflow run {child.data.tags['mlflow.parentRunId']} ({uri})"
    assert open_line.startswith(f"open: mlflow ui --backend-store-uri {uri}, then http://127.0.0.1:5000/#/experiments/")
    assert outputs == f"outputs: {tmp_path / 'eval'}"
    assert f"{m['fvd']:.3f} [{m['fvd_ci_low']:.2f}, {m['fvd_ci_high']:.2f}]" in out
    clipsim = next(line for line in out.splitlines() if "CLIPSIM" in line)  # on in configs/eval/shapes.yaml
    assert -1 <= m["clipsim"] <= 1 and f"{m['clipsim']:.3f}" in clipsim
    color = next(line for line in out.splitlines() if "attribute acc. color" in line)
    assert f"{m['attr_acc/color']:.3f}" in color and color.rstrip(" │").endswith(f"{1 / 6:.3f}")


@pytest.mark.slow
def test_missing_classifier_fails_before_generation(env, tmp_path):
    from evaluation import MissingWeightsError
    from flows.config import AttributeSettings
    from flows.metrics import build_attribute_classifier

    with pytest.raises(MissingWeightsError, match=r"nope.*`metrics\.attributes\.weights`"):
        build_attribute_classifier(AttributeSettings(weights=str(tmp_path / "nope")), "cpu")
    with pytest.raises(MissingWeightsError, match=r"nope.*metrics\.attributes\.weights"):
        run(env, tmp_path, env["ckpts"][:1], metrics={"attributes": {"weights": str(tmp_path / "nope")}})
    assert not (tmp_path / "eval" / "samples").exists()


def test_default_checkpoint_is_the_committed_pipeline(tmp_path, monkeypatch):
    import magicvideo.checkpoints as ck
    from flows.config import default_checkpoint
    from magicvideo.checkpoints import shapes_checkpoint

    spec = default_checkpoint("shapes")
    assert spec.path == str(shapes_checkpoint("pipeline")) and (shapes_checkpoint("pipeline") / "model_index.json").is_file()
    with pytest.raises(ValueError, match="no checkpoints given"):
        default_checkpoint("msrvtt")
    monkeypatch.setattr(ck, "SHAPES_CHECKPOINTS", tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match=r"gone/pipeline"):
        default_checkpoint("shapes")


def test_find_checkpoints_walks_below_the_watched_folder(tmp_path):
    from flows.store import find_checkpoints

    for rel in ("a", "x/b", "x/y/z/c", "x/y/z/w/too-deep", ".hidden/d", "a/inner"):
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "model_index.json").write_text("{}")
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    got = [p.relative_to(tmp_path).as_posix() for p in find_checkpoints(tmp_path, max_depth=4)]
    assert got == ["a", "x/b", "x/y/z/c"]  # not inside a checkpoint, not hidden, not past max_depth
    assert find_checkpoints(tmp_path / "a") == [tmp_path / "a"] and find_checkpoints(tmp_path / "missing") == []


# ------------------------------------------------------------------------------------------ CLIPSIM
@pytest.mark.slow
def test_clipsim_through_the_flow(env, tmp_path):
    """configs/eval/shapes.yaml turns CLIPSIM on with the committed shapes CLIP: the flow logs the mean over
    clips (beside FVD) and each clip's value, equal to compute_clipsim on the stored samples."""
    from mlflow.tracking import MlflowClient

    from evaluation import CLIPSimScorer, compute_clipsim
    from flows.compare import compare
    from flows.store import read_sample, sample_path
    from magicvideo.checkpoints import shapes_checkpoint

    shapes_metrics = {"fvd": {"extractor": "shapes_i3d"}, "fid": {"extractor": "clip_image"}}
    (row,) = run(env, tmp_path, env["ckpts"][:1], metrics={**shapes_metrics, "bootstrap": 0, "attributes": None})
    assert np.isfinite(row["fvd"]) and np.isfinite(row["fid"]) and np.isfinite(row["clipsim"])
    assert -1 <= row["clipsim"] <= 1
    uri = "sqlite:///" + str(tmp_path / "mlflow.db")
    c = MlflowClient(uri)
    (child,) = [r for r in c.search_runs([c.get_experiment_by_name("magicvideo-eval").experiment_id])
                if "mlflow.parentRunId" in r.data.tags]
    assert child.data.metrics["clipsim"] == row["clipsim"] and {"fvd", "fid"} <= set(child.data.metrics)
    assert child.data.params["metrics.clipsim.model"] == "shapes_clip" and child.data.params["clipsim.weights_sha256"]
    lines = [json.loads(s) for s in Path(c.download_artifacts(child.info.run_id, "samples.jsonl", str(tmp_path / "a")))
             .read_text().splitlines()]
    res = json.loads(Path(c.download_artifacts(child.info.run_id, "results.json", str(tmp_path / "b"))).read_text())
    assert res["clipsim"]["value"] == row["clipsim"] and res["clipsim"]["n"] == N_PROMPTS == len(lines)
    # the same numbers, computed directly from the stored samples and their prompts
    videos = np.stack([read_sample(sample_path(tmp_path / "eval", x["address"])) for x in lines])
    mean, per_clip = compute_clipsim(videos, [x["prompt"] for x in lines], scorer=CLIPSimScorer(shapes_checkpoint("clip")),
                                     batch_size=4)
    assert row["clipsim"] == pytest.approx(mean, abs=1e-6)
    np.testing.assert_allclose([x["clipsim"] for x in lines], per_clip, atol=1e-6)
    assert list(compare(uri)["shapes"]["clipsim"]) == pytest.approx([row["clipsim"]])


@pytest.mark.slow
def test_missing_clip_folder_fails_before_generation(env, tmp_path, monkeypatch):
    """A CLIPSIM CLIP folder that is not there fails the run before anything is generated, naming the
    config key and the environment variable; on real benchmarks (no default folder) too; UCF-101
    (class-name prompts) skips CLIPSIM instead."""
    from evaluation import MissingWeightsError
    from flows.eval_flow import eval_flow
    from flows.metrics import clipsim_skip_reason

    with pytest.raises(MissingWeightsError, match=r"nope.*`metrics\.clipsim\.weights`.*MAGICVIDEO_SHAPES_CLIP_PATH"):
        run(env, tmp_path, env["ckpts"][:1], metrics={"clipsim": {"weights": str(tmp_path / "nope")}})
    assert not (tmp_path / "eval").exists()
    monkeypatch.delenv("MAGICVIDEO_CLIP_PATH", raising=False)
    o = {"tracking": {"uri": "sqlite:///" + str(tmp_path / "mlflow.db")}}
    with pytest.raises(MissingWeightsError, match=r"no path given.*`metrics\.clipsim\.weights`.*MAGICVIDEO_CLIP_PATH"
                                                  r".*metrics\.clipsim=null"):
        eval_flow(benchmark="msrvtt", checkpoints=env["ckpts"][:1], output_root=str(tmp_path / "eval"), overrides=o)
    assert not (tmp_path / "eval").exists()
    assert clipsim_skip_reason("msrvtt") is None and clipsim_skip_reason("shapes") is None
    assert "no captions" in clipsim_skip_reason("ucf101")


# ------------------------------------------------------------------ results independent of the split
def test_generation_runs_with_tf32_off_unless_asked(tmp_path):
    """ray.tf32 (default off) holds for the pipeline call only: with TF32 on, cuDNN picks convolution
    algorithms by batch shape and a GPU sample depends on its batch (flows.generation._numerics)."""
    from types import SimpleNamespace

    import torch

    from flows.generation import GenerationWorker

    seen = []

    def pipe(prompts, **kw):
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return SimpleNamespace(frames=np.zeros((len(prompts), 2, 8, 8, 3), np.uint8))

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    sampler = {"scheduler": "ddim", "num_inference_steps": 1, "guidance_scale": 1.0, "fps": 8.0,
               "negative_prompt": "", "eta": 0.0}
    for k, tf32 in enumerate((False, True)):
        w = GenerationWorker("cpu", tf32=tf32)
        w.pipe, w.checkpoint, w.scheduler = pipe, "ck", "ddim"
        w.generate("ck", [{"address": f"{k}" * 64, "prompt": "p", "seed": 0}], sampler, str(tmp_path))
    assert seen == [(False, False), (True, True)]
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_generation_dtype_and_compile_reach_the_worker(tmp_path, monkeypatch):
    """sampler.dtype loads the pipeline in that precision (and enters the samples' address only when set);
    ray.compile goes through MagicVideoPipeline.enable_fast_inference once per load; the same settings
    keep the loaded pipeline; a clip comes out of a bf16 pipeline (CPU) as uint8."""
    import torch

    from flows.config import RaySettings, SamplerSettings, stage_sampler
    from flows.generation import GenerationWorker
    from magicvideo.build import build_pipeline
    from magicvideo.pipeline import MagicVideoPipeline

    build_pipeline("tiny", weights="random", seed=0).save_pretrained(tmp_path / "ck")
    modes = []
    monkeypatch.setattr(MagicVideoPipeline, "enable_fast_inference", lambda self, mode: modes.append(mode))
    w = GenerationWorker("cpu", compile=RaySettings(compile="default").compile)
    w.load(str(tmp_path / "ck"), "ddim", None, "bf16")
    first = w.pipe
    assert first.unet.dtype == torch.bfloat16 and first.vae.dtype == torch.bfloat16 and modes == ["default"]
    w.load(str(tmp_path / "ck"), "ddim", None, "bf16")
    assert w.pipe is first and modes == ["default"]
    sampler = {"scheduler": "ddim", "num_inference_steps": 1, "guidance_scale": 7.5, "fps": 8.0,
               "negative_prompt": "", "eta": 0.0, "dtype": "bf16"}
    (rec,) = w.generate(str(tmp_path / "ck"), [{"address": "a" * 64, "prompt": "a red circle", "seed": 0}],
                        sampler, str(tmp_path / "out"))
    assert rec["generated"] and w.pipe is first
    from flows.store import read_sample, sample_path

    assert read_sample(sample_path(tmp_path / "out", "a" * 64)).dtype == np.uint8
    w.load(str(tmp_path / "ck"), "ddim", None, None)
    assert w.pipe is not first and w.pipe.unet.dtype == torch.float32 and modes == ["default", "default"]
    assert stage_sampler(SamplerSettings(dtype="bf16"), ["keyframes"])["dtype"] == "bf16"
    assert "dtype" not in stage_sampler(SamplerSettings(), ["keyframes"])
    with pytest.raises(ValueError):
        SamplerSettings(dtype="fp8")


def test_auto_schedule_pipelines_only_for_gpu_actors():
    """metrics.schedule: auto follows the actors' GPUs (flows.generation.gpus_per_actor)."""
    from flows.config import MetricSettings, RaySettings
    from flows.generation import gpus_per_actor

    assert MetricSettings().schedule == "auto"
    assert gpus_per_actor(RaySettings(), gpus=0) == 0 and gpus_per_actor(RaySettings(), gpus=4) == 1
    assert gpus_per_actor(RaySettings(num_gpus_per_actor=0.5), gpus=1) == 0.5
    assert gpus_per_actor(RaySettings(num_gpus_per_actor=0), gpus=8) == 0


@pytest.mark.slow
def test_pipelined_and_staged_schedules_give_the_same_results(env, tmp_path):
    """metrics.schedule: references computed in a thread during generation (pipelined; auto's choice on GPU
    actors) or before it (staged; auto's on CPU actors): the same FVD, interval and temporal measures; the pipelined run's thread fills the
    temporal reference cache, and the time generation did not hide is logged (time_reference_wait_s)."""
    from mlflow.tracking import MlflowClient

    rows = {}
    for schedule in ("staged", "pipelined"):
        out = tmp_path / schedule
        rows[schedule] = run(env, out, env["ckpts"][:1], metrics={"schedule": schedule, "cache_dir": str(out / "refs"),
                                                                  "temporal": {"stages": ["keyframes"]}})[0]
    a, b = rows["staged"], rows["pipelined"]
    for k in ("fvd", "fvd_ci_low", "fvd_ci_high", "temporal/pixel_change_ratio"):
        assert a[k] == b[k], k
    assert list((tmp_path / "pipelined" / "refs").glob("shapes-temporal-*.json"))
    c = MlflowClient("sqlite:///" + str(tmp_path / "pipelined" / "mlflow.db"))
    child = next(r for r in c.search_runs([c.get_experiment_by_name("magicvideo-eval").experiment_id])
                 if "mlflow.parentRunId" in r.data.tags)
    assert child.data.metrics["time_reference_wait_s"] >= 0 and child.data.metrics["time_generation_s"] > 0


@pytest.mark.slow
def test_a_reference_failure_during_generation_is_the_runs_error(env, tmp_path):
    """Pipelined: the FVD network's weights fail to load in the reference thread while the actors generate;
    the run fails with that error (generation stops at its next batch), and a rerun with good weights
    reuses every sample already written."""
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    fvd = {"extractor": "i3d_pytorch", "weights": str(bad)}
    with pytest.raises(Exception) as err:
        run(env, tmp_path, env["ckpts"][:1], metrics={"fvd": fvd, "cache_dir": str(tmp_path / "refs"),
                                                      "schedule": "pipelined"})
    assert "bad.pt: not a PyTorch state dict" in str(err.value), err.value
    written = samples(tmp_path)
    (row,) = run(env, tmp_path, env["ckpts"][:1], metrics={"cache_dir": str(tmp_path / "refs")})
    assert row["samples_skipped"] == len(written) and row["samples_generated"] == N_PROMPTS - len(written)


@pytest.mark.slow
def test_results_do_not_depend_on_actors_or_batch_size(env, tmp_path):
    """The same run with 1 or 2 actors and batches of 4 or 8 clips: byte-identical sample files and
    identical FVD, FID (with bootstrap intervals), CLIPSIM and attribute accuracy."""
    import hashlib

    from magicvideo.data import ShapesSpec, write_shapes

    n = 10  # batches of 4: 4+4+2; of 8: 8+2
    write_shapes(tmp_path / "shapes", ShapesSpec(train=0, test=n, durations=[2.0], fps=[8.0]), workers=0)
    metrics = {"fvd": {"extractor": "shapes_i3d"}, "fid": {"extractor": "clip_image"}, "bootstrap": 20}
    runs = {}
    for actors, batch in ((1, 4), (2, 4), (1, 8), (2, 8)):
        out = tmp_path / f"actors{actors}-batch{batch}"
        from flows.eval_flow import eval_flow

        (row,) = eval_flow(benchmark="shapes", checkpoints=env["ckpts"][:1], limit=n, output_root=str(out / "eval"),
                           overrides=overrides(env, out, benchmark_root=str(tmp_path / "shapes"), metrics=metrics,
                                               sampler={"num_inference_steps": 3, "guidance_scale": 7.5},
                                               ray={"num_actors": actors, "batch_size": batch},
                                               tracking={"grid_samples": 0}))
        assert row["samples_generated"] == n
        files = sorted((out / "eval" / "samples").rglob("*.npy"))
        hashes = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
        values = {k: v for k, v in row.items()
                  if (k.split("_")[0] in ("fvd", "fid", "clipsim") or k.startswith("attr_"))
                  and not k.endswith("_features_file")}  # paths: each run has its own output root
        runs[(actors, batch)] = hashes, values
    (hashes, values), *others = runs.values()
    assert len(hashes) == n and {"fvd", "fvd_ci_low", "fid", "fid_ci_high", "clipsim", "attr_acc/mean"} <= set(values)
    for key, (h, v) in zip(list(runs)[1:], others):
        assert h == hashes, f"sample files differ with {key} (actors, batch size)"
        assert v == values, f"metrics differ with {key} (actors, batch size)"
