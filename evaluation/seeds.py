"""Results over training seeds: per variant, the mean, spread and a 95% interval of the mean of each
metric over the seeds it was trained with (the ablation tables of ``magicvideo train-ablations
--seeds`` and ``benchmarks/ablation_seeds.py``).

The interval is Student's t over seeds (``mean +- t(0.975, n-1) * sd / sqrt(n)``): with few seeds it
is wide, and it should be, since seed-to-seed variation of a training run is what it measures. Each
seed's own paired interval (prompts resampled, :mod:`evaluation.paired`) says how sure one run is;
this one says how much a rerun would move it. scipy gives the interval (``stats.t.interval``); this
module groups result rows by variant.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: Student's t interval of the mean of `values` (nan bounds for one value)."""
    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    lo, hi = stats.t.interval(level, len(v) - 1, loc=m, scale=stats.sem(v))
    return m, float(lo), float(hi)


def seed_summary(rows: list[dict], metrics: list[str], seed_key: str = "ablation_seed") -> list[dict]:
    """Per variant (rows' ``variant``, in first-seen order), over its seeds: ``<metric>/mean``,
    ``/std`` (sample, ddof 1), ``/min``, ``/max``, ``/ci_low`` and ``/ci_high`` (95% t interval of the
    mean), and ``n_seeds`` and ``seeds`` (the rows' `seed_key`), for each of `metrics` the rows carry
    (a paired ``<m>_diff`` against the same seed's ``full`` included: its spread over seeds is the
    ablation's seed-to-seed variation)."""
    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        row: dict = {"variant": variant, "n_seeds": len(mine), "seeds": [r.get(seed_key) for r in mine]}
        for m in metrics:
            vals = np.array([r[m] for r in mine if isinstance(r.get(m), (int, float))], dtype=float)
            if len(vals):
                mean, lo, hi = mean_interval(vals)
                row.update({f"{m}/mean": mean, f"{m}/std": float(vals.std(ddof=1)) if len(vals) > 1 else float("nan"),
                            f"{m}/min": float(vals.min()), f"{m}/max": float(vals.max()),
                            f"{m}/ci_low": lo, f"{m}/ci_high": hi})  # fmt: skip
        out.append(row)
    return out
