"""Plots (matplotlib, Agg): metric against training step, Fig. 7-style ablation bars."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def metric_vs_step(rows: list[dict], metric: str, title: str = ""):
    """One line per label group; ``rows`` have ``step``, ``metric`` and optional ``<metric>_ci_low/high``."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    pts = sorted((r["step"], r[metric], r.get(f"{metric}_ci_low"), r.get(f"{metric}_ci_high"))
                 for r in rows if r.get(metric) is not None and r.get("step") is not None)
    if pts:
        xs, ys, lo, hi = zip(*pts)
        if all(v is not None for v in lo + hi):
            ax.fill_between(xs, lo, hi, alpha=0.25, label="95% CI")
        ax.plot(xs, ys, "o-", label=metric.upper())
    ax.set_xlabel("training step")
    ax.set_ylabel(metric.upper())
    ax.set_title(title or f"{metric.upper()} vs training step")
    ax.legend()
    return fig


def bootstrap_histogram(replicates, value: float, metric: str):
    """The bootstrap replicates of a metric, the point estimate as a vertical line."""
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.hist(replicates, bins=20)
    ax.axvline(value, color="k")
    ax.set_xlabel(f"{metric.upper()} bootstrap replicates")
    return fig


def ablation_bars(rows: list[dict], metrics: list[str], title: str = "Ablations"):
    """Grouped bars: one group per metric, one bar per variant, CI whiskers (paper Fig. 7 style)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        names = [r["variant"] + (f" (seed {r['ablation_seed']})" if r.get("ablation_seed") is not None else "")
                 for r in rows]  # fmt: skip
        vals = [r.get(m) or 0.0 for r in rows]
        err = None
        if all(r.get(f"{m}_ci_low") is not None for r in rows):
            # a bootstrap interval of a biased statistic (FVD) can lie wholly above the point estimate:
            # whiskers from the estimate to the interval's ends, none where an end is on the other side
            err = [[max(0.0, v - r[f"{m}_ci_low"]) for v, r in zip(vals, rows)],
                   [max(0.0, r[f"{m}_ci_high"] - v) for v, r in zip(vals, rows)]]
        ax.bar(range(len(vals)), vals, yerr=err, color=[f"C{i}" for i in range(len(vals))], capsize=3)
        ax.set_xticks(range(len(vals)), names, rotation=30, ha="right")
        higher = m.startswith("attr_acc") or m == "clipsim"  # accuracies and similarities: higher is better
        ax.set_ylabel(m.upper() if not higher else m)
        ax.set_title(f"{m.upper() if not higher else m} ({'higher' if higher else 'lower'} is better)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def ablation_seed_bars(summary: list[dict], metrics: list[str], title: str = "Ablations over seeds"):
    """One group per metric, one bar per variant at its mean over seeds, whiskers +-1 standard
    deviation over seeds and the lowest and highest seed as dots (``evaluation.seeds.seed_summary`` rows)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        rows = [r for r in summary if f"{m}/mean" in r]
        x = range(len(rows))
        means = [r[f"{m}/mean"] for r in rows]
        std = [0.0 if r[f"{m}/std"] != r[f"{m}/std"] else r[f"{m}/std"] for r in rows]  # nan (one seed): no whisker
        ax.bar(x, means, yerr=std, color=[f"C{summary.index(r)}" for r in rows], capsize=3)  # a variant's colour in every panel
        ax.scatter([i for i in x for _ in (0, 1)], [r[f"{m}/{k}"] for r in rows for k in ("min", "max")],
                   color="black", s=8, zorder=3)  # fmt: skip
        ax.set_xticks(list(x), [f"{r['variant']} (n={r['n_seeds']})" for r in rows], rotation=30, ha="right")
        higher = m.startswith("attr_acc") or m == "clipsim"
        if m.startswith("paired/"):  # a paired difference against the same seed's full
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_title(f"{m.split('/')[1].removesuffix('_diff').upper()} - full, paired")
        else:
            ax.set_title(f"{m.upper() if not higher else m} ({'higher' if higher else 'lower'} is better)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
