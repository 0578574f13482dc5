"""``magicvideo compare``'s paired differences, on fabricated MLflow runs (no eval flow, no GPU)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mlflow")

from evaluation import FeatureStats, get_protocol  # noqa: E402
from flows import metrics as fm, tracking  # noqa: E402
from flows.store import SampleItem, sample_address  # noqa: E402

N_PROMPTS, D = 40, 6


class FakeExtractor:
    def identity(self):
        return {"name": "fake", "dims": D}


def items_for(ckpt: str, seed: int = 0) -> list[SampleItem]:
    return [SampleItem(sample_address(ckpt, f"prompt {i}", 0, seed + i, {}), f"p{i:03d}", f"prompt {i}", 0, seed + i)
            for i in range(N_PROMPTS)]


def log_run(client, exp_id, out: Path, label: str, step: int, feats: np.ndarray, ref: FeatureStats, seed: int = 0,
            clipsim_shift: float = 0.0):
    """One finished child run as the eval flow logs it, with its features saved by fm.save_features."""
    items = items_for(label, seed)
    protocol = get_protocol("fvd_videogpt")
    stats = FeatureStats.from_features(feats, keep_features=True)
    refs = {"fvd": {"stats": ref, "protocol": protocol, "extractor": FakeExtractor()}}
    results = {"fvd": fm.frechet(stats, ref, protocol, bootstrap=20, seed=0)}
    paths = fm.save_features(out, items, {"fvd": {"stats": stats}}, refs, results)
    assert results["fvd"]["features_file"] == paths["fvd"]
    run = client.create_run(exp_id, tags={"benchmark": "shapes", "checkpoint_id": f"id-{label}",
                                          "checkpoint_label": label})
    rid = run.info.run_id
    tracking.log_params(client, rid, {"checkpoint.step": str(step), "output_root": str(out)})
    tracking.log_metrics(client, rid, {"fvd": results["fvd"]["value"]}, step=step)
    tracking.log_json(client, rid, {"frechet": {m: {k: v for k, v in r.items() if k != "replicates"}
                                                for m, r in results.items()}}, "results.json")
    rng = np.random.default_rng(step)
    clipsim = 0.3 + 0.01 * (np.arange(len(items)) % 7) + clipsim_shift + 0.001 * rng.standard_normal(len(items))
    per_sample = [{**it.as_dict(), "clipsim": float(c), "attr_correct": {"shape": bool(i % 2), "color": True}}
                  for i, (it, c) in enumerate(zip(items, clipsim))]
    tracking.log_jsonl(client, rid, per_sample, "samples.jsonl")
    client.set_terminated(rid, "FINISHED")
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    uri = "sqlite:///" + str(tmp / "mlflow.db")
    client = tracking.client(uri)
    exp_id = tracking.experiment_id(client, "magicvideo-eval")
    rng = np.random.default_rng(0)
    ref = FeatureStats.from_features(rng.standard_normal((300, D)))
    z = rng.standard_normal((N_PROMPTS, D))  # what a prompt and seed make, shared by the checkpoints
    base = z + 0.3 * rng.standard_normal((N_PROMPTS, D))
    log_run(client, exp_id, tmp / "eval", "step-100", 100, base, ref)
    log_run(client, exp_id, tmp / "eval", "same", 200, base.copy(), ref)
    worse = z + 1.0 + 0.3 * rng.standard_normal((N_PROMPTS, D))
    log_run(client, exp_id, tmp / "eval", "worse", 300, worse, ref, clipsim_shift=-0.05)
    log_run(client, exp_id, tmp / "eval", "other-seeds", 400, base, ref, seed=1000)
    return uri, tmp


def test_paired_differences_against_the_first_checkpoint(runs):
    from flows.compare import paired_differences

    uri, _ = runs
    table = paired_differences(uri, num_replicates=100, num_permutations=199)["shapes"]
    assert set(table["baseline"]) == {"step-100"}
    rows = {(r["checkpoint"], r.get("metric")): r for r in table.to_dict("records")}
    same = rows[("same", "fvd")]
    assert same["diff"] == 0 and same["p_value"] == 1.0
    worse = rows[("worse", "fvd")]
    assert worse["diff"] > 0 and worse["ci_low"] > 0 and worse["p_value"] < 0.01
    assert worse["diff"] == pytest.approx(worse["value"] - worse["baseline_value"])
    clip = rows[("worse", "clipsim")]
    assert clip["diff"] == pytest.approx(-0.05, abs=0.01) and clip["ci_high"] < 0 and clip["p_value"] < 0.01
    assert rows[("same", "attr_acc/mean")]["diff"] == 0
    other = [r for r in table.to_dict("records") if r["checkpoint"] == "other-seeds"]
    assert len(other) == 1 and "same prompts and seeds" in other[0]["note"]


def test_baseline_by_label_and_cli(runs, capsys):
    from flows.cli import run_compare
    from flows.compare import paired_differences

    uri, tmp = runs
    table = paired_differences(uri, baseline="worse", num_replicates=50, num_permutations=99)["shapes"]
    row = table[(table["checkpoint"] == "step-100") & (table["metric"] == "fvd")].iloc[0]
    assert row["diff"] < 0 and row["ci_high"] < 0
    with pytest.raises(ValueError, match="not a checkpoint"):
        paired_differences(uri, baseline="nope")
    args = argparse.Namespace(tracking_uri=uri, experiment="magicvideo-eval", plots=str(tmp / "plots"), benchmark=None,
                              baseline=None, replicates=50, permutations=99, no_paired=False)
    assert run_compare(args) == 0
    text = capsys.readouterr().out
    assert "difference vs step-100" in text and "p=" in text and "same prompts and seeds" in text


def test_saved_features_round_trip_and_groups(runs):
    uri, tmp = runs
    files = sorted((tmp / "eval" / "features" / "fvd").glob("*.npz"))
    refs = [f for f in files if f.name.startswith("reference-")]
    assert len(refs) == 1 and len(files) == 5  # one reference for all four runs
    f = fm.load_features(next(p for p in files if not p.name.startswith("reference-")))
    assert f["features"].shape == (N_PROMPTS, D) and f["rows_per_clip"] == 1
    assert f["ref_cov"].shape == (D, D) and json.loads(f["extractor_identity"])["name"] == "fake"
    items = items_for("x") * 2  # two samples per prompt, 3 frame rows each
    groups = fm.sample_groups(items, len(items) * 3)
    assert groups.shape == (len(items) * 3,) and len(np.unique(groups)) == N_PROMPTS
    assert (groups[:3] == groups[0]).all() and groups[0] == groups[3 * N_PROMPTS]
    with pytest.raises(ValueError, match="evenly"):
        fm.sample_groups(items, len(items) * 3 + 1)


def test_ablation_rows_get_paired_differences_against_full(tmp_path):
    """The eval flow's ablation table: each variant minus ``full`` on the same prompts and seeds."""
    from flows.config import EvalConfig
    from flows.eval_flow import _paired_vs_baseline

    rng = np.random.default_rng(3)
    ref = FeatureStats.from_features(rng.normal(size=(200, D)), keep_features=True)
    protocol = get_protocol("fvd_videogpt")
    rows = []
    for variant, shift in (("full", 0.0), ("adaptor off", 0.05), ("temporal attention off", 1.5)):
        items = items_for(variant)
        stats = FeatureStats.from_features(rng.normal(size=(N_PROMPTS, D)) + shift, keep_features=True)
        refs = {"fvd": {"stats": ref, "protocol": protocol, "extractor": FakeExtractor()}}
        res = {"fvd": fm.frechet(stats, ref, protocol, bootstrap=20, seed=0)}
        fm.save_features(tmp_path, items, {"fvd": {"stats": stats}}, refs, res)
        rows.append({"variant": variant, "fvd": res["fvd"]["value"], "fvd_features_file": res["fvd"]["features_file"]})
    _paired_vs_baseline(rows, EvalConfig(metrics={"bootstrap": 30}))
    assert [r["paired_baseline"] for r in rows] == ["full"] * 3 and "fvd_diff" not in rows[0]
    worse = rows[2]
    assert worse["fvd_diff"] == pytest.approx(worse["fvd"] - rows[0]["fvd"])
    assert 0 < worse["fvd_diff_ci_low"] <= worse["fvd_diff_ci_high"] and worse["fvd_diff_p"] < 0.05


@pytest.mark.slow
def test_only_labelled_checkpoints_are_ablation_rows(tmp_path):
    """One checkpoint labelled as an ablation does not turn the others into ablation rows (issue 18)."""
    from mlflow.tracking import MlflowClient

    from flows.config import EvalConfig
    from flows.eval_flow import _summarise

    client = MlflowClient("sqlite:///" + str(tmp_path / "mlflow.db"))
    exp = client.create_experiment("t", artifact_location=str(tmp_path / "art"))
    pid = client.create_run(exp).info.run_id
    cfg = EvalConfig(checkpoints=[{"path": "a", "ablation": "adaptor off"}, {"path": "b"}],
                     metrics={"bootstrap": 0})
    rows = [{"checkpoint": "a", "variant": "adaptor off", "ablation": "adaptor off", "step": None, "fvd": 2.0},
            {"checkpoint": "b", "variant": "b", "ablation": None, "step": None, "fvd": 3.0}]
    _summarise(client, pid, cfg, rows)
    abl = json.loads(Path(client.download_artifacts(pid, "ablations.json", str(tmp_path / "d"))).read_text())
    assert [a["variant"] for a in abl] == ["adaptor off"]


def test_step_less_checkpoints_get_a_table_but_no_metric_vs_step_plot(tmp_path):
    """Folders with no training step (the committed shapes pipeline) are logged at step 0 with
    step_known=false: compare lists them, and draws a metric-vs-step plot only from two known steps."""
    from flows.compare import compare

    uri = "sqlite:///" + str(tmp_path / "mlflow.db")
    client = tracking.client(uri)
    exp_id = tracking.experiment_id(client, "magicvideo-eval")

    def log(label, step, fvd):
        rid = client.create_run(exp_id, tags={"benchmark": "shapes", "checkpoint_id": label, "checkpoint_label": label,
                                              "step_known": str(step is not None).lower()}).info.run_id
        tracking.log_params(client, rid, {"checkpoint.step": str(step)})
        tracking.log_metrics(client, rid, {"fvd": fvd}, step=step or 0)
        client.set_terminated(rid, "FINISHED")

    plots = tmp_path / "plots"
    log("a", None, 10.0)
    log("b", None, 12.0)
    log("c", 100, 11.0)
    table = compare(uri, plot_dir=plots)["shapes"]
    assert list(table["checkpoint"]) == ["c", "a", "b"] and table["step"].isna().sum() == 2
    assert not plots.exists()  # one known step is not a line
    log("d", 200, 9.0)
    compare(uri, plot_dir=plots)
    assert [p.name for p in plots.iterdir()] == ["shapes_fvd.png"]
