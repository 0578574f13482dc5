"""The multi-seed ablation table: the t interval over seeds against scipy, and
``benchmarks/ablation_seeds.py`` joining per-seed runs (old and new row formats) into the rows,
summary, chart and MLflow run the shapes README reports."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from evaluation.seeds import mean_interval, seed_summary

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("ablation_seeds", ROOT / "benchmarks" / "ablation_seeds.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mean_interval_is_students_t_over_seeds():
    rng = np.random.default_rng(0)
    for n in (2, 3, 7):
        v = rng.normal(10, 3, n)
        m, lo, hi = mean_interval(v)
        ref = stats.t.interval(0.95, n - 1, loc=v.mean(), scale=stats.sem(v))
        assert m == pytest.approx(v.mean()) and (lo, hi) == pytest.approx(ref)
    m, lo, hi = mean_interval([4.0])
    assert m == 4.0 and math.isnan(lo) and math.isnan(hi)


def test_seed_summary_groups_by_variant():
    rows = [{"variant": "full", "s": 0, "fvd": 90.0}, {"variant": "no_temporal", "s": 0, "fvd": 180.0, "fvd_diff": 90.0},
            {"variant": "full", "s": 1, "fvd": 100.0}, {"variant": "no_temporal", "s": 1, "fvd": 170.0, "fvd_diff": 70.0}]
    out = {r["variant"]: r for r in seed_summary(rows, ["fvd", "fvd_diff"], seed_key="s")}
    assert list(out) == ["full", "no_temporal"] and out["full"]["seeds"] == [0, 1] and out["full"]["n_seeds"] == 2
    assert out["full"]["fvd/mean"] == 95.0 and out["full"]["fvd/std"] == pytest.approx(math.sqrt(50))
    assert (out["no_temporal"]["fvd_diff/min"], out["no_temporal"]["fvd_diff/max"]) == (70.0, 90.0)
    assert "fvd_diff/mean" not in out["full"]  # the baseline has no paired difference


def _run(seed: int, shift: float, old_format: bool) -> list[dict]:
    """One training seed's rows as ablations_shapes.py writes them (old files: the key in
    ``variant``; newer: the label in ``variant`` and the key in ``key``), plus a pipeline scored
    beside the variants."""
    labels = {"full": "full", "no_temporal": "temporal attention off"}
    rows = []
    for key, fvd in (("full", 90.0 + shift), ("no_temporal", 180.0 + 2 * shift)):
        r = {"fvd": fvd, "fid": 6.0, "attr_acc/mean": 0.6, "temporal/pixel_change_ratio": 5.0, "seed": seed, "clips": 256,
             "sampler": {"steps": 25}}
        if key != "full":
            d = fvd - (90.0 + shift)
            r.update({"paired/fvd_diff": d, "paired/fvd_low": d - 5, "paired/fvd_high": d + 5,
                      "paired/attr_mean_diff": -0.05})
        r.update({"variant": key, "variant_label": labels[key]} if old_format else {"variant": labels[key], "key": key})
        rows.append(r)
    rows.append({"variant": "committed", "key": "committed", "fvd": 1.0, "seed": seed})
    return rows


def test_ablation_seeds_joins_runs_into_rows_summary_chart_and_mlflow(tmp_path, capsys):
    mod = _script()
    files = []
    for i, (seed, shift, old) in enumerate([(0, 0.0, True), (0, 4.0, False), (1, 8.0, False)]):
        f = tmp_path / f"run{i}.json"
        f.write_text(json.dumps(_run(seed, shift, old)))
        files.append(f"{f}=r{i}")
    uri = "sqlite:///" + str(tmp_path / "mlflow.db")
    assert mod.main([*files, "--json", str(tmp_path / "rows.json"), "--summary", str(tmp_path / "summary.json"),
                     "--plot", str(tmp_path / "chart.png"), "--mlflow", "abl", "--tracking-uri", uri]) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [(r["variant"], r["run"], r["seed"]) for r in rows] == [
        ("full", "r0", 0), ("no_temporal", "r0", 0), ("full", "r1", 0), ("no_temporal", "r1", 0),
        ("full", "r2", 1), ("no_temporal", "r2", 1)]  # fmt: skip
    assert {r["label"] for r in rows} == {"full", "temporal attention off"}
    summary = {s["variant"]: s for s in json.loads((tmp_path / "summary.json").read_text())}
    nt = summary["no_temporal"]
    assert nt["n_seeds"] == 3 and nt["paired/fvd_diff/mean"] == pytest.approx(94.0)  # diffs 90, 94, 98
    assert (nt["paired/fvd_diff/ci_low"], nt["paired/fvd_diff/ci_high"]) == pytest.approx(
        stats.t.interval(0.95, 2, loc=94.0, scale=stats.sem([90.0, 94.0, 98.0])))
    assert nt["runs_paired_fvd_above_0"] == 3 and nt["runs_paired_fvd_below_0"] == 0
    assert (tmp_path / "chart.png").stat().st_size > 10_000
    assert "| temporal attention off | 3 | 188.0 ± 8.0 |" in capsys.readouterr().out

    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    run = c.search_runs([c.get_experiment_by_name("abl").experiment_id])[0]
    assert run.data.metrics["no_temporal/paired/fvd_diff/mean"] == pytest.approx(94.0)
    assert run.data.params["runs"] == "r0,r1,r2"


def test_ablation_seeds_refuses_a_run_without_full(tmp_path):
    mod = _script()
    f = tmp_path / "run.json"
    f.write_text(json.dumps([r for r in _run(0, 0.0, False) if r.get("key") != "full"]))
    with pytest.raises(SystemExit, match="no 'full' row"):
        mod.main([str(f)])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read ablation rows"):
        mod.main([str(tmp_path / "bad.json")])
