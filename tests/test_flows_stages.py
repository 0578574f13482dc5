"""Per-stage scoring in the eval flow (issues 13 and 14): stage references, each stage's samples under
its own address (key frames unchanged), generation of what is missing only (from stored key-frame
latents, or again from the prompt and seed), the config and CLI checks, and the flow itself: a tiny
pipeline with interpolation and upsampler scored on every stage, one MLflow child run and row per
stage, and a second run with more stages that reuses the key-frame samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from flows.config import resolve_config, stage_sampler
from flows.store import checkpoint_id, latents_path, plan_cascade, plan_samples, read_sample, sample_path
from magicvideo.data import ShapesSpec, load_benchmark, write_shapes
from magicvideo.stages import stage_chains
from magicvideo.validate import InputError, check_stages

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = ["a red circle moving left", "a blue square moving up", "a green triangle grows"]
ALL = ("keyframes", "interpolate", "upsample")


def tiny_cascade(seed: int = 0):
    """The tiny random pipeline at 32 px (16 key frames, 4x4 latents) with a random interpolation stage
    (non-zero conditioning channels) and a tiny random x4 upsampler: the whole cascade in seconds."""
    from magicvideo.build import build_pipeline, load_model_config
    from magicvideo.models import InterpolationUNet, UpsamplerUNet
    from magicvideo.pipeline import MagicVideoPipeline
    from tests.test_model_interpolation import tiny_image_encoder

    cfg = load_model_config("tiny")
    cfg = cfg.model_copy(update={"resolution": 32, "unet": cfg.unet.model_copy(update={"sample_size": 4})})
    pipe = build_pipeline(cfg, weights="random", seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        interpolation = InterpolationUNet.from_keyframe_unet(pipe.unet).eval()
        with torch.no_grad():
            interpolation.conv_in.weight[:, 4:].normal_(0, 0.1)
        upsampler = UpsamplerUNet(block_out_channels=(4, 8), norm_num_groups=4, mid_block_type=None).eval()
    pipe = MagicVideoPipeline(**{**pipe.components, "interpolation": interpolation,
                                 "image_encoder": tiny_image_encoder(32, seed), "upsampler": upsampler})
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def cascade():
    return tiny_cascade()


@pytest.fixture(scope="module")
def shapes32(tmp_path_factory):
    """A shapes test set at 32 px (clips of 2 s at 8, 12 and 24 fps) and a benchmark YAML reading it at 32 px."""
    root = tmp_path_factory.mktemp("shapes32")
    write_shapes(root / "data", ShapesSpec(train=0, test=4, size=32, durations=[2.0], fps=[8.0, 12.0, 24.0]), workers=0)
    yaml = (Path(__file__).resolve().parents[1] / "configs/benchmarks/shapes.yaml").read_text()
    (root / "bench").mkdir()
    (root / "bench" / "shapes.yaml").write_text(yaml.replace("  size: 64\n", "  size: 32\n", 1))
    return {"root": root / "data", "yaml": str(root / "bench" / "shapes.yaml")}


# --------------------------------------------------------------------------------------- references
def test_stage_references_are_the_clips_at_the_stage_rate_and_size(shapes32):
    from magicvideo.data.stage_references import stage_protocol, stage_reference_clips, stage_reference_identity
    from magicvideo.data.shapes import clip_from_annotation, render

    bench = load_benchmark(shapes32["yaml"], root=shapes32["root"])
    p = stage_protocol(bench.protocol, ("keyframes", "interpolate", "upsample"))
    assert (p.num_frames, p.fps, p.size) == (61, 32.0, 128)
    assert stage_protocol(bench.protocol, ("keyframes",)) == bench.protocol
    inter = list(stage_reference_clips(bench, ("keyframes", "interpolate")))
    up = list(stage_reference_clips(bench, ("keyframes", "upsample")))
    assert len(inter) == len(up) == 4
    videos = {v["video_id"]: v for v in bench._annotations()[0]}
    checked = 0
    for c61, c16 in zip(inter, up):
        assert c61.frames.shape == (61, 32, 32, 3) and c61.nu == 32.0 and c16.frames.shape == (16, 128, 128, 3)
        clip = clip_from_annotation(videos[c61.video_id])
        assert clip.fps in (8.0, 12.0, 24.0)
        # every 4th of the 61 frames is a key-frame time (k / 8 s): the clip drawn at its own frames there
        native = render(clip, 32)
        if clip.fps in (8.0, 24.0):  # key-frame times on the clip's own frames (at 12 fps every other one)
            np.testing.assert_array_equal(c61.frames[::4], native[:: int(clip.fps) // 8][:16])
            checked += 1
        assert len(np.unique(c61.frames.reshape(61, -1), axis=0)) > 16  # new frames, not repeated ones
    assert checked >= 2
    assert stage_reference_identity(bench, ("keyframes", "interpolate"))["source"] == "render"


def test_upsample_references_from_a_high_resolution_copy(shapes32, tmp_path):
    """``stage_references.upsample_root``: the dataset rendered at 4x, read with the stage protocol."""
    from magicvideo.data.stage_references import stage_reference_clips, stage_reference_identity

    spec = ShapesSpec(train=0, test=4, size=128, durations=[2.0], fps=[8.0, 12.0, 24.0])  # as shapes32, at 4x
    write_shapes(tmp_path / "hr", spec, workers=0)
    yaml = Path(shapes32["yaml"]).read_text().replace("upsample_root: null", f"upsample_root: {tmp_path / 'hr'}")
    (tmp_path / "shapes.yaml").write_text(yaml)
    bench = load_benchmark(tmp_path / "shapes.yaml", root=shapes32["root"])
    clips = list(stage_reference_clips(bench, ("keyframes", "upsample")))
    assert len(clips) == 4 and clips[0].frames.shape == (16, 128, 128, 3) and "hr" in clips[0].path
    assert stage_reference_identity(bench, ("keyframes", "upsample"))["source"] == "videos"


def test_fvd_windows():
    from flows.stage_metrics import windows

    clip = np.arange(61)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    w = next(windows([clip], 16))
    assert w.shape == (4, 16, 2, 2, 3) and [int(x[0, 0, 0, 0]) for x in w] == [0, 15, 30, 45]
    assert next(windows([clip[:16]], 16)).shape == (1, 16, 2, 2, 3)
    with pytest.raises(ValueError, match="shorter than the FVD window"):
        next(windows([clip[:8]], 16))


# ------------------------------------------------------------------------------------ config, addresses
def test_stages_config_and_addresses(tmp_path, cascade):
    from flows.config import config_from_params, flatten
    from flows.stages import plan

    cascade.save_pretrained(tmp_path / "ckpt")
    cfg = resolve_config("shapes", {"sampler": {"stages": "keyframes,interpolate,upsample"}})
    assert cfg.sampler.stages == list(ALL) and config_from_params(flatten(cfg.model_dump())) == cfg
    for bad, why in (("interpolate", "start at keyframes"), ("keyframes,superres", "unknown stage"),
                     ("upsample,keyframes", "not consecutive")):
        with pytest.raises(Exception, match=why):
            resolve_config("shapes", {"sampler": {"stages": bad}})
    from magicvideo.data.records import PromptRecord

    records = [PromptRecord(prompt_id=f"shapes/v{i}/0", prompt=p, benchmark="shapes") for i, p in enumerate(PROMPTS)]
    p = plan(str(tmp_path / "ckpt"), records, cfg)
    # the key frames' samples are where a key-frame-only run put them before stages existed (the sampler
    # settings of configs/eval/shapes.yaml as that run's address held them)
    before = {"scheduler": "ddim", "num_inference_steps": 25, "guidance_scale": 7.5, "fps": 8.0, "negative_prompt": "",
              "eta": 0.0}
    old = plan_samples(records, checkpoint_id(tmp_path / "ckpt"), before, 1, 0)
    assert [it.address for it in p.items["keyframes"]] == [it.address for it in old]
    assert p.ids["interpolate"] == checkpoint_id(tmp_path / "ckpt", ("keyframes", "interpolate"))
    assert [j.address for j in p.jobs] == [it.address for it in p.items["upsample"]]
    # a later stage's settings move its addresses and the ones after it, never the earlier ones
    other = resolve_config("shapes", {"sampler": {"stages": list(ALL), "interpolate": {"guidance_scale": 2.0}}})
    q = plan(str(tmp_path / "ckpt"), records, other)
    assert [i.address for i in q.items["keyframes"]] == [i.address for i in p.items["keyframes"]]
    assert all(a.address != b.address for s in ("interpolate", "upsample") for a, b in zip(q.items[s], p.items[s]))
    assert "upsample" not in stage_sampler(other.sampler, ("keyframes", "interpolate"))


def test_a_checkpoint_without_the_stage_fails_fast(tmp_path, tiny_pipeline):
    tiny_pipeline.save_pretrained(tmp_path / "plain")
    check_stages(tmp_path / "plain", "keyframes")
    with pytest.raises(InputError, match=r"no 'interpolate' stage: it needs the component\(s\) interpolation, "
                                         r"image_encoder .*train shapes' interpolation stage"):
        check_stages(tmp_path / "plain", ["keyframes", "interpolate"])
    with pytest.raises(InputError, match=r"no 'upsample' stage: it needs the component\(s\) upsampler"):
        check_stages(tmp_path / "plain", "keyframes,upsample")


def test_cli_stages_flag_fails_fast_in_one_line(shapes32, tmp_path):
    """A pipeline without an upsampler (the committed shapes pipeline's components, its upsampler
    left out): ``--stages keyframes,upsample`` is one line, exit 2, before any service starts."""
    from magicvideo.checkpoints import shapes_checkpoint

    committed, plain = shapes_checkpoint("pipeline"), tmp_path / "plain"
    plain.mkdir()
    for part in committed.iterdir():
        if part.name not in ("upsampler", "model_index.json"):
            (plain / part.name).symlink_to(part)
    index = json.loads((committed / "model_index.json").read_text())
    index["upsampler"] = [None, None]
    (plain / "model_index.json").write_text(json.dumps(index))
    exe = str(Path(sys.executable).parent / "magicvideo")
    t0 = time.perf_counter()
    r = subprocess.run([exe, "eval", "shapes", "--checkpoint", str(plain), "--stages",
                        "keyframes,upsample", "--root", str(shapes32["root"]), "--output-root", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       env={**os.environ, "MAGICVIDEO_LOG_DIR": str(tmp_path / "logs")})
    out = (r.stdout + r.stderr).strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr, out
    assert "has no 'upsample' stage" in out[-1] and "upsampler" in out[-1]
    assert time.perf_counter() - t0 < 30 and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------- generation
def _jobs(root: Path, stages=ALL, n: int = 2):
    from magicvideo.data.records import PromptRecord

    records = [PromptRecord(prompt_id=f"p{i}", prompt=p, benchmark="t") for i, p in enumerate(PROMPTS[:n])]
    chains = stage_chains(stages)
    ids = {s: f"id-{'+'.join(c)}" for s, c in chains.items()}
    cfg = resolve_config(None, {"sampler": {"stages": list(stages), "num_inference_steps": 2, "guidance_scale": 1.0,
                                            "upsample": {"num_inference_steps": 1}}})
    samplers = {s: stage_sampler(cfg.sampler, c) for s, c in chains.items()}
    by_stage, jobs = plan_cascade(records, ids, samplers, 1, 0)
    return by_stage, [j.as_dict() for j in jobs], samplers[stages[-1]]


def test_cascade_generation_writes_each_stage_and_generates_only_what_is_missing(cascade, tmp_path):
    from flows.cascade import run_cascade

    by_stage, jobs, sampler = _jobs(tmp_path)
    rec = run_cascade(cascade, jobs, sampler, tmp_path)
    assert all(r["stages_written"] == list(ALL) for r in rec.values())
    clips = {s: np.stack([read_sample(sample_path(tmp_path, it.address)) for it in by_stage[s]]) for s in ALL}
    assert [clips[s].shape for s in ALL] == [(2, 16, 32, 32, 3), (2, 61, 32, 32, 3), (2, 61, 128, 128, 3)]
    # each stage's sample is what the whole cascade gives in one call (its latent stages decoded as the
    # pipeline decodes a chain's last stage)
    seeds = [it.seed for it in by_stage["keyframes"]]
    out = cascade(PROMPTS[:2], seed=seeds, num_inference_steps=2, guidance_scale=1.0, upsample_steps=1, stages=ALL)
    np.testing.assert_array_equal(clips["upsample"], out.frames)
    for s in ("keyframes", "interpolate"):
        np.testing.assert_array_equal(clips[s], cascade.to_uint8(cascade.decode_latents(out.latents[s])))
    # nothing missing: nothing runs
    assert all(r["stages_run"] == [] for r in run_cascade(cascade, jobs, sampler, tmp_path).values())
    # later stages gone: they start from the stored key-frame latents; the key frames do not run
    mtimes = [sample_path(tmp_path, it.address).stat().st_mtime_ns for it in by_stage["keyframes"]]
    for s in ("interpolate", "upsample"):
        for it in by_stage[s]:
            sample_path(tmp_path, it.address).unlink()
    rec = run_cascade(cascade, jobs, sampler, tmp_path)
    assert all(r["stages_run"] == ["interpolate", "upsample"] for r in rec.values())
    # ... and without stored latents (a store from before they were kept) the key frames run again, unwritten
    for it in by_stage["interpolate"]:
        sample_path(tmp_path, it.address).unlink()
    for it in by_stage["keyframes"]:
        latents_path(tmp_path, it.address).unlink()
    rec = run_cascade(cascade, jobs, sampler, tmp_path)
    assert all(r["stages_run"] == ["keyframes", "interpolate"] and r["stages_written"] == ["interpolate"]
               for r in rec.values())
    assert [sample_path(tmp_path, it.address).stat().st_mtime_ns for it in by_stage["keyframes"]] == mtimes
    for s in ALL:  # the same bytes whichever way they were made
        np.testing.assert_array_equal(np.stack([read_sample(sample_path(tmp_path, it.address)) for it in by_stage[s]]),
                                      clips[s])


def test_keyframes_then_upsample_starts_from_the_stored_clip(cascade, tmp_path):
    from flows.cascade import run_cascade

    by_stage, jobs, sampler = _jobs(tmp_path, ("keyframes",), n=1)
    run_cascade(cascade, jobs, sampler, tmp_path)
    by_stage2, jobs2, sampler2 = _jobs(tmp_path, ("keyframes", "upsample"), n=1)
    assert by_stage2["keyframes"][0].address == by_stage["keyframes"][0].address
    rec = run_cascade(cascade, jobs2, sampler2, tmp_path)
    assert list(rec.values())[0]["stages_run"] == ["upsample"]
    it = by_stage2["keyframes"][0]
    want = cascade(PROMPTS[:1], seed=[it.seed], num_inference_steps=2, guidance_scale=1.0, stages="keyframes,upsample",
                   upsample_steps=1).frames[0]
    np.testing.assert_array_equal(read_sample(sample_path(tmp_path, by_stage2["upsample"][0].address)), want)


# ----------------------------------------------------------------------------------------- the flow
@pytest.fixture(scope="module")
def flow_env(tmp_path_factory, shapes32, cascade):
    """The tiny cascade saved, a Prefect harness and a local Ray (as tests/test_flows_eval.py)."""
    from tests.conftest import use_ray_token_auth

    use_ray_token_auth()
    pytest.importorskip("prefect")
    ray = pytest.importorskip("ray")
    from prefect.testing.utilities import prefect_test_harness

    root = tmp_path_factory.mktemp("stages_flow")
    saved = {k: os.environ.get(k) for k in ("PREFECT_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["PREFECT_HOME"] = str(root / "prefect_home")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    cascade.save_pretrained(root / "ckpt")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with prefect_test_harness(server_startup_timeout=120):
            yield {"root": root, "ckpt": str(root / "ckpt"), **shapes32}
    finally:
        ray.shutdown()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _eval(env, out: Path, stages, limit: int = 3):
    from flows.eval_flow import eval_flow

    o = {"benchmark_root": str(env["root"]),
         "sampler": {"num_inference_steps": 2, "guidance_scale": 1.0, "stages": list(stages),
                     "upsample": {"num_inference_steps": 1}},
         "ray": {"num_actors": 1, "batch_size": 4, "num_cpus_per_actor": 1},
         "metrics": {"device": "cpu", "batch_size": 8, "bootstrap": 10, "cache_dir": str(out / "refstats")},
         "tracking": {"uri": "sqlite:///" + str(out / "mlflow.db"), "grid_samples": 2}}
    return eval_flow(benchmark=env["yaml"], checkpoints=[env["ckpt"]], limit=limit, output_root=str(out / "eval"),
                     overrides=o)


def _keyframe_samples(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "eval" / "samples").rglob("*.npy")}


@pytest.fixture(scope="module")
def first_run(flow_env, tmp_path_factory):
    """Key frames alone."""
    out = tmp_path_factory.mktemp("two_runs")
    return {"out": out, "first": _eval(flow_env, out, ["keyframes"]), "before": _keyframe_samples(out)}


@pytest.fixture(scope="module")
def two_runs(first_run, flow_env):
    """Then the whole cascade on the same output root."""
    return {**first_run, "second": _eval(flow_env, first_run["out"], ALL)}


@pytest.mark.slow
def test_key_frames_alone_as_before(first_run, flow_env):
    (row,) = first_run["first"]
    assert row["stage"] == "keyframes" and row["samples_generated"] == 3 and np.isfinite(row["fvd"])
    assert "keyframes_recomputed" not in row and not any(k.startswith("temporal/") for k in row)
    assert len(first_run["before"]) == 3


@pytest.mark.slow
def test_eval_scores_every_stage(two_runs, flow_env):
    rows = two_runs["second"]
    assert [r["stage"] for r in rows] == list(ALL) and [r["stage"] for r in two_runs["first"]] == ["keyframes"]
    for r in rows:
        for m in ("fvd", "fvd_ci_low", "fid", "clipsim", "attr_acc/mean"):
            assert np.isfinite(r[m]), (r["stage"], m)
        assert r["fvd"] > 0 and r["fid"] > 0
    inter = rows[1]
    for m in ("temporal/pixel_change", "temporal/pixel_change_real", "temporal/pixel_change_ratio",
              "temporal/frame_change_ratio", "temporal/stability/color", "temporal/stability_real/shape"):
        assert np.isfinite(inter[m]) and inter[m] >= 0, m
    assert not any(k.startswith("temporal/") for k in rows[0]) and not any(k.startswith("temporal/") for k in rows[2])
    # the upsample stage's baseline: the interpolated clips upsampled bicubic, against the same references
    assert np.isfinite(rows[2]["fvd_bicubic"]) and np.isfinite(rows[2]["fid_bicubic"]) and rows[2]["fid_bicubic"] > 0
    assert not any(k.endswith("_bicubic") for r in rows[:2] for k in r)
    # the key-frame row is the first run's: same samples, same numbers
    assert rows[0]["fvd"] == pytest.approx(two_runs["first"][0]["fvd"])
    assert rows[0]["attr_acc/mean"] == two_runs["first"][0]["attr_acc/mean"]


@pytest.mark.slow
def test_a_later_stage_reuses_the_key_frame_samples_and_latents(two_runs):
    first, second = two_runs["first"][0], two_runs["second"]
    assert first["samples_generated"] == 3
    assert [r["samples_generated"] for r in second] == [0, 3, 3]
    assert [r.get("keyframes_recomputed") for r in second] == [None, 0, 0]  # started from the stored latents
    after = _keyframe_samples(two_runs["out"])
    assert {k: after[k] for k in two_runs["before"]} == two_runs["before"]  # key-frame samples untouched
    assert len(after) == 3 * 3 and len(list((two_runs["out"] / "eval" / "samples").rglob("*.latents.npz"))) == 3


@pytest.mark.slow
def test_each_stage_is_its_own_child_run(two_runs, flow_env, tmp_path):
    from mlflow.tracking import MlflowClient

    from flows.compare import compare

    uri = "sqlite:///" + str(two_runs["out"] / "mlflow.db")
    c = MlflowClient(uri)
    runs = c.search_runs([c.get_experiment_by_name("magicvideo-eval").experiment_id])
    parent = next(r for r in runs if r.info.run_id == two_runs["second"][0]["parent_run_id"])
    children = {r.data.tags["stage"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == set(ALL)
    chains = stage_chains(ALL)
    for stage, run in children.items():
        assert run.data.tags["checkpoint_id"] == checkpoint_id(flow_env["ckpt"], chains[stage])
        assert run.data.tags["stages"] == ",".join(chains[stage]) and run.info.status == "FINISHED"
        row = next(r for r in two_runs["second"] if r["stage"] == stage)
        assert run.data.metrics["fid"] == pytest.approx(row["fid"]) and run.info.run_id == row["run_id"]
    assert children["interpolate"].data.tags["mlflow.runName"].endswith(" / interpolate")
    assert children["keyframes"].data.tags["generation"] == "cached"
    doc = json.loads(Path(c.download_artifacts(children["interpolate"].info.run_id, "results.json", str(tmp_path)))
                     .read_text())
    assert doc["stages"] == ["keyframes", "interpolate"] and doc["temporal"]["n_generated"] == 3
    assert doc["frechet"]["fvd"]["n_fake"] == 3 * 4  # four 16-frame windows of each 61-frame clip
    tables = compare(uri, "magicvideo-eval", tmp_path / "plots")
    b = flow_env["yaml"]  # the benchmark as given: a YAML path
    assert set(tables) == {b, f"{b} [interpolate]", f"{b} [upsample]"}
    assert len(tables[b]) == 1  # both runs' key-frame rows are one checkpoint id: the newest run


@pytest.mark.slow
def test_the_flow_fails_fast_without_the_stage(flow_env, tiny_pipeline, tmp_path):
    from flows.eval_flow import eval_flow

    tiny_pipeline.save_pretrained(tmp_path / "plain")
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="has no 'interpolate' stage"):
        eval_flow(benchmark=flow_env["yaml"], checkpoints=[str(tmp_path / "plain")], limit=2,
                  output_root=str(tmp_path / "eval"),
                  overrides={"benchmark_root": str(flow_env["root"]), "sampler": {"stages": "keyframes,interpolate"},
                             "tracking": {"uri": "sqlite:///" + str(tmp_path / "mlflow.db")}})
    assert time.perf_counter() - t0 < 20 and not (tmp_path / "eval").exists()


def test_console_table_has_a_column_per_stage(capsys):
    from flows.cli import _print_rows

    rows = [{"checkpoint": "shapes", "stage": "keyframes", "fvd": 90.0},
            {"checkpoint": "shapes", "stage": "interpolate", "fvd": 120.0, "temporal/pixel_change_ratio": 1.5,
             "temporal/frame_change_ratio": 1.2}]
    _print_rows(rows)
    out = capsys.readouterr().out
    assert "shapes (interpolate)" in out and "pixel change / real" in out and "1.500" in out


def test_a_checkpoint_s_own_sampler_moves_its_addresses(tmp_path, tiny_pipeline):
    """stages.plan with a checkpoint's own sampler (a distilled student's 4 steps, guidance 1): its
    samples' addresses and the actors' settings follow it; without one, the config's."""
    from flows.stages import plan
    from magicvideo.data.records import PromptRecord

    tiny_pipeline.save_pretrained(tmp_path / "ckpt")
    cfg = resolve_config("shapes", {})
    records = [PromptRecord(prompt_id=f"shapes/v{i}/0", prompt=p, benchmark="shapes") for i, p in enumerate(PROMPTS)]
    base = plan(str(tmp_path / "ckpt"), records, cfg)
    own = cfg.sampler.model_copy(update={"num_inference_steps": 4, "guidance_scale": 1.0})
    student = plan(str(tmp_path / "ckpt"), records, cfg, own)
    assert (student.sampler["num_inference_steps"], student.sampler["guidance_scale"]) == (4, 1.0)
    assert base.sampler["num_inference_steps"] == 25
    assert all(a.address != b.address for a, b in zip(base.items["keyframes"], student.items["keyframes"]))
    assert [i.address for i in plan(str(tmp_path / "ckpt"), records, cfg, cfg.sampler).items["keyframes"]] == \
        [i.address for i in base.items["keyframes"]]  # fmt: skip
