"""Coverage of bootstrap intervals for a Fréchet distance, by simulation with a known true distance.

Two Gaussian populations in d dimensions: covariance spectrum ``k^-decay`` (k = 1..d, as feature
covariances decay) in a random basis; the second population's basis is turned by ``expm(angle A)``
(``A`` a random skew-symmetric matrix, so the trace-sqrt term matters), its spectrum scaled by
``exp(jitter z)`` and its mean shifted by ``shift`` standard deviations along the first's principal
axes. The true distance comes from the population parameters (``evaluation.frechet_distance``).
For each of ``--draws`` data sets (n samples per side) ``evaluation.bootstrap_frechet`` gives the
point estimate ``v``, B replicates resampling BOTH sides (or only the first, ``--fixed-reference``), B/2
replicates of half the size and the distances of complementary half-samples, from which every
candidate interval is built:

- percentile:  the ci quantiles of the replicates (Efron 1979): what ``bootstrap_frechet`` returned before
- basic:       ``[2 v - q_hi, 2 v - q_lo]`` (Davison & Hinkley 1997, eq. 5.6)
- normal-bc:   ``(v - b) -+ z sd``, ``b = mean(reps) - v`` the bootstrap bias (Efron & Tibshirani 1993, 10.2, 12.2)
- bc:          bias-corrected percentile, ``z0 = Phi^-1(#(reps < v) / B)`` (Efron 1982; BCa with a = 0;
               BCa itself needs n jackknife distances per data set: not run here)
- basic-hs:    the basic interval's quantile offsets around ``v - h``, ``h = mean(half-samples) - v``
               the half-sample bias (Richardson extrapolation in 1/n, r = 2)
- normal-hs:   ``(v - h) -+ z sqrt(sd^2 + var_MC(h))``
- halves:      ``(v - h) -+ z sd(half-samples)`` (delete-n/2 jackknife variance, Shao & Wu 1989): no bootstrap
- normal-hsr:  ``(v - h / (r - 1)) -+ z sqrt(sd^2 + var)``, ``r = b*(n/2) / b*(n)`` from the bootstrap at sizes
               n and n/2: what ``bootstrap_frechet`` returns (``evaluation.bootstrap.extrapolated_interval``;
               checked equal on every data set)

Per method: coverage of the true distance (with its Monte Carlo standard error), how often the truth
lies below / above the interval, mean width and midpoint relative to the truth; per setting: the
point estimate's relative bias and that of the bias-corrected estimates ``2 v - mean(reps)``,
``2 v - mean(half-samples)`` and ``v - h / (r - 1)`` (with the mean ``r``).

    python benchmarks/interval_coverage.py                       # d=64 n=256 (B=100), d=400 n=1024 (B=50), 200 draws
    python benchmarks/interval_coverage.py --settings 64x256 --draws 50 --json out.json
    python benchmarks/interval_coverage.py --fixed-reference     # reference side a fixed Gaussian (the flow's case)
    python benchmarks/interval_coverage.py --time-frechet        # old (eigh evd) vs new Fréchet distance timings
    python benchmarks/interval_coverage.py --bias-law 400:256,512,1024,2048   # E FD(n) - FD against 1/n

Every data set has its own seed (``--seed``, setting, draw index): results do not depend on
``--workers``. BLAS runs single-threaded per worker (``--blas-threads``): on a shared 2-core machine
OpenBLAS threads spinning against other processes cost 10-40x.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import scipy.linalg
import scipy.stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from evaluation.bootstrap import bootstrap_frechet, extrapolated_bias, normal_interval  # noqa: E402
from evaluation.frechet import frechet_distance  # noqa: E402

METHODS = ("percentile", "basic", "normal-bc", "bc", "basic-hs", "normal-hs", "halves", "normal-hsr")
CHOSEN = "normal-hsr"  # what bootstrap_frechet returns (checked on every data set)


# ------------------------------------------------------------------------------------ populations
def population(d: int, seed: int, *, decay: float, shift: float, angle: float, jitter: float):
    """``(mu_a, sigma_a, mu_b, sigma_b)`` of the two populations (see the module docstring)."""
    rng = np.random.default_rng([seed, d, 7919])
    lam = np.arange(1, d + 1, dtype=np.float64) ** -decay
    u, _ = np.linalg.qr(rng.standard_normal((d, d)))
    g = rng.standard_normal((d, d))
    v = u @ scipy.linalg.expm(angle * (g - g.T) / np.sqrt(2 * d))
    sigma_a = (u * lam) @ u.T
    sigma_b = (v * (lam * np.exp(jitter * rng.standard_normal(d)))) @ v.T
    mu_a = np.zeros(d)
    mu_b = u @ (np.sqrt(lam) * rng.standard_normal(d)) * shift
    return mu_a, (sigma_a + sigma_a.T) / 2, mu_b, (sigma_b + sigma_b.T) / 2


# -------------------------------------------------------------------------------------- intervals
def intervals(value: float, reps: np.ndarray, ci: float, halves: np.ndarray,
              reps_half: np.ndarray) -> dict[str, tuple[float, float]]:
    """Every candidate interval from the point estimate, the replicates and the half-sample distances."""
    a = (1 - ci) / 2
    q_lo, q_hi = np.quantile(reps, [a, 1 - a])
    bias, sd = reps.mean() - value, reps.std(ddof=1)
    z = scipy.stats.norm.ppf(1 - a)
    frac = np.clip(np.mean(reps < value), 0.5 / len(reps), 1 - 0.5 / len(reps))
    z0 = scipy.stats.norm.ppf(frac)
    bc = np.quantile(reps, scipy.stats.norm.cdf([2 * z0 - z, 2 * z0 + z]))
    hs = value - (halves.mean() - value)  # Richardson: E FD(n/2) - E FD(n) = c/n = the bias at n
    hsr = extrapolated_bias(value, reps, reps_half, halves)
    m = reps.mean()
    sd_hs = np.sqrt(sd**2 + halves.reshape(-1, 2).mean(1).var(ddof=1) / (len(halves) // 2))
    return {"percentile": (q_lo, q_hi), "basic": (2 * value - q_hi, 2 * value - q_lo),
            "normal-bc": (value - bias - z * sd, value - bias + z * sd), "bc": (bc[0], bc[1]),
            "basic-hs": (hs - (q_hi - m), hs - (q_lo - m)), "normal-hs": (hs - z * sd_hs, hs + z * sd_hs),
            "halves": (hs - z * halves.std(ddof=1), hs + z * halves.std(ddof=1)),
            "normal-hsr": _clip0(normal_interval(value - hsr[0], np.sqrt(sd**2 + hsr[1]), ci))}


def _clip0(interval: tuple[float, float]) -> tuple[float, float]:
    return max(interval[0], 0.0), interval[1]


def one_draw(job: dict) -> dict:
    """One data set: point estimate, replicates, every interval (runs in a worker)."""
    d, n, i = job["d"], job["n"], job["draw"]
    mu_a, sigma_a, mu_b, sigma_b = job["population"]
    rng = np.random.default_rng([job["seed"], d, n, i])
    xa = mu_a + rng.standard_normal((n, d)) @ np.linalg.cholesky(sigma_a).T
    if job["fixed_reference"]:
        r = bootstrap_frechet(xa, gaussian_b=(mu_b, sigma_b), num_replicates=job["replicates"], ci=job["ci"],
                              seed=int(rng.integers(2**32)), num_splits=job["splits"])
    else:
        xb = mu_b + rng.standard_normal((n, d)) @ np.linalg.cholesky(sigma_b).T
        r = bootstrap_frechet(xa, xb, num_replicates=job["replicates"], ci=job["ci"], seed=int(rng.integers(2**32)),
                              num_splits=job["splits"])
    iv = intervals(r.value, r.replicates, job["ci"], r.half_samples, r.replicates_half)
    assert np.allclose(iv[CHOSEN], (r.low, r.high), rtol=1e-9, atol=0), f"bootstrap_frechet's interval is not {CHOSEN}"
    return {"value": r.value, "mean_rep": float(r.replicates.mean()), "sd": r.std,
            "mean_half": float(r.half_samples.mean()), "num_halves": len(r.half_samples),
            "mean_rep_half": float(r.replicates_half.mean()),
            **dict(zip(("bias_hsr", "var_hsr", "order"), extrapolated_bias(r.value, r.replicates, r.replicates_half,
                                                                        r.half_samples))),
            "intervals": {k: [float(x) for x in v] for k, v in iv.items()}}


def _init_worker(threads: int) -> None:
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass


# -------------------------------------------------------------------------------------- summaries
def summarise(draws: list[dict], true: float) -> dict:
    """Coverage, misses, widths per method; relative bias of the estimates."""
    values = np.array([r["value"] for r in draws])
    debiased = 2 * values - np.array([r["mean_rep"] for r in draws])
    hs = 2 * values - np.array([r["mean_half"] for r in draws])
    hsr = values - np.array([r["bias_hsr"] for r in draws])
    out = {"draws": len(draws), "estimate_bias": float(values.mean() / true - 1),
           "estimate_sd": float(values.std(ddof=1) / true),
           "debiased_bias": float(debiased.mean() / true - 1), "debiased_sd": float(debiased.std(ddof=1) / true),
           "hs_bias": float(hs.mean() / true - 1), "hs_sd": float(hs.std(ddof=1) / true),
           "hsr_bias": float(hsr.mean() / true - 1), "hsr_sd": float(hsr.std(ddof=1) / true),
           "mean_order": float(np.mean([r["order"] for r in draws])),
           "methods": {}}
    for m in METHODS:
        lo = np.array([r["intervals"][m][0] for r in draws])
        hi = np.array([r["intervals"][m][1] for r in draws])
        cov = float(np.mean((lo <= true) & (true <= hi)))
        out["methods"][m] = {"coverage": cov, "coverage_se": float(np.sqrt(cov * (1 - cov) / len(draws))),
                             "truth_below": float(np.mean(true < lo)), "truth_above": float(np.mean(true > hi)),
                             "mean_width": float(np.mean(hi - lo) / true),
                             "mean_mid": float(np.mean((lo + hi) / 2) / true)}
    return out


def print_table(s: dict) -> None:
    print(f"\nd={s['d']} n={s['n']} per side{' (reference fixed: a Gaussian)' if s['fixed_reference'] else ''}, "
          f"{s['draws']} data sets x B={s['replicates']} (+ {2 * s['num_splits']} half-samples), "
          f"{100 * s['ci']:.0f}% intervals, {s['seconds']:.0f} s")
    print(f"  true distance {s['true']:.4f} (mean term {s['mean_term']:.4f}); estimate bias {s['estimate_bias']:+.1%} "
          f"(sd {s['estimate_sd']:.1%})")
    print(f"  bias-corrected: 2v - mean(reps) {s['debiased_bias']:+.1%} (sd {s['debiased_sd']:.1%}); "
          f"2v - mean(half-samples) {s['hs_bias']:+.1%} (sd {s['hs_sd']:.1%}); "
          f"extrapolated (mean r {s['mean_order']:.2f}) {s['hsr_bias']:+.1%} (sd {s['hsr_sd']:.1%})")
    print(f"  {'method':<11} {'coverage':>15} {'truth below':>12} {'truth above':>12} {'width/true':>11} "
          f"{'mid/true':>9}")
    for m, r in s["methods"].items():
        print(f"  {m:<11} {r['coverage']:>8.1%} +-{r['coverage_se']:4.1%} {r['truth_below']:>12.1%} "
              f"{r['truth_above']:>12.1%} {r['mean_width']:>11.3f} {r['mean_mid']:>9.3f}"
              f"{'   <- bootstrap_frechet' if m == CHOSEN else ''}")


def run_setting(d: int, n: int, replicates: int, args, pool) -> dict:
    pop = population(d, args.seed, decay=args.decay, shift=args.shift, angle=args.angle, jitter=args.jitter)
    true = frechet_distance(*pop)
    jobs = [{"d": d, "n": n, "draw": i, "seed": args.seed, "population": pop, "replicates": replicates,
             "splits": args.splits, "ci": args.ci, "fixed_reference": args.fixed_reference} for i in range(args.draws)]
    t0 = time.perf_counter()
    draws = []
    for i, r in enumerate(pool.map(one_draw, jobs) if pool else map(one_draw, jobs)):
        draws.append(r)
        if (i + 1) % max(1, args.draws // 20) == 0 or i + 1 == args.draws:
            el = time.perf_counter() - t0
            eta = el / (i + 1) * (args.draws - i - 1)
            print(f"  d={d} n={n}: {i + 1}/{args.draws} data sets, {el:.0f} s, ETA {eta:.0f} s",
                  file=sys.stderr, flush=True)
    s = {"d": d, "n": n, "replicates": replicates, "num_splits": draws[0]["num_halves"] // 2, "ci": args.ci,
         "fixed_reference": args.fixed_reference,
         "true": true, "mean_term": float((pop[0] - pop[2]) @ (pop[0] - pop[2])),
         "population": {k: getattr(args, k) for k in ("decay", "shift", "angle", "jitter", "seed")},
         "seconds": time.perf_counter() - t0, **summarise(draws, true)}
    s["per_draw"] = [{"value": r["value"], "mean_rep": r["mean_rep"], "mean_half": r["mean_half"], **r["intervals"]}
                     for r in draws]
    return s


# ---------------------------------------------------------------------------------------- timings
def frechet_old(mu1, sigma1, mu2, sigma2, driver="evd") -> float:
    """The previous ``evaluation.frechet`` route: ``R = S1^(1/2)`` by ``scipy.linalg.eigh(driver=...)``,
    then the eigenvalues of ``R S2 R``."""
    w, v = scipy.linalg.eigh(sigma1, driver=driver)
    r = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = r @ sigma2 @ r
    ev = scipy.linalg.eigh((m + m.T) / 2, eigvals_only=True, driver=driver)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.sqrt(np.clip(ev, 0.0, None)).sum())


def time_frechet(dims=(64, 400, 2048), seed: int = 0) -> list[dict]:
    """Old (eigh evd / eigh default driver) vs new ``frechet_distance``: min and median of interleaved calls."""
    rng = np.random.default_rng(seed)
    routes = {"old eigh evd": frechet_old, "old eigh default driver": lambda *a: frechet_old(*a, driver=None),
              "new (cholesky + eigvalsh)": frechet_distance}
    rows = []
    for d in dims:
        x = rng.standard_normal((2 * d + 100, d)) @ rng.standard_normal((d, d)) / np.sqrt(d)
        y = rng.standard_normal((2 * d + 100, d)) @ rng.standard_normal((d, d)) / np.sqrt(d) + 0.3
        args = (x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
        ref = frechet_old(*args)
        times = {k: [] for k in routes}
        for _ in range({64: 50, 400: 15}.get(d, 4)):
            for k in rng.permutation(list(routes)):
                t = time.perf_counter()
                v = routes[k](*args)
                times[k].append(time.perf_counter() - t)
                assert abs(v - ref) <= 1e-9 * abs(ref), (k, v, ref)
        for k, ts in times.items():
            rows.append({"d": d, "route": k, "min_s": min(ts), "median_s": float(np.median(ts)), "calls": len(ts)})
        new = min(times["new (cholesky + eigvalsh)"])
        for r in rows[-3:]:
            r["min_vs_new"] = r["min_s"] / new
            print(f"d={d:5d}  {r['route']:<27} min {r['min_s'] * 1e3:9.2f} ms  median {r['median_s'] * 1e3:9.2f} ms  "
                  f"x{r['min_vs_new']:.2f} of new", flush=True)
    return rows


def bias_law(spec: str, args) -> list[dict]:
    """Mean estimate over ``--draws`` data sets per n: is ``n * bias`` constant (``E FD(n) = FD + c/n``)?"""
    d, ns = spec.split(":")
    d = int(d)
    pop = population(d, args.seed, decay=args.decay, shift=args.shift, angle=args.angle, jitter=args.jitter)
    true = frechet_distance(*pop)
    la, lb = np.linalg.cholesky(pop[1]), np.linalg.cholesky(pop[3])
    rows = []
    for n in (int(v) for v in ns.split(",")):
        rng = np.random.default_rng([args.seed, d, n, 104729])
        est = []
        for _ in range(args.draws):
            xa = pop[0] + rng.standard_normal((n, d)) @ la.T
            if args.fixed_reference:
                est.append(frechet_distance(xa.mean(0), np.cov(xa, rowvar=False), pop[2], pop[3]))
                continue
            xb = pop[2] + rng.standard_normal((n, d)) @ lb.T
            est.append(frechet_distance(xa.mean(0), np.cov(xa, rowvar=False), xb.mean(0), np.cov(xb, rowvar=False)))
        bias, se = np.mean(est) / true - 1, np.std(est, ddof=1) / true / np.sqrt(len(est))
        rows.append({"d": d, "n": n, "relative_bias": float(bias), "se": float(se), "n_times_bias": float(n * bias)})
        print(f"d={d} n={n:6d}  bias {bias:+.4f} +- {se:.4f}  n * bias {n * bias:8.2f}", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", default="64x256x100,400x1024x50",
                   help="comma-separated DxN[xB]: dimension x samples per side "
                        "[x bootstrap replicates, else --replicates]")
    p.add_argument("--draws", type=int, default=200, help="data sets per setting")
    p.add_argument("--replicates", type=int, default=100, help="bootstrap replicates B per data set (default)")
    p.add_argument("--splits", type=int, default=None,
                   help="half-sample splits per data set (bootstrap_frechet's num_splits; default its own)")
    p.add_argument("--ci", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--decay", type=float, default=1.0, help="covariance spectrum k^-decay")
    p.add_argument("--shift", type=float, default=0.5, help="mean shift, in standard deviations per axis")
    p.add_argument("--angle", type=float, default=0.6, help="rotation between the two covariances' bases")
    p.add_argument("--jitter", type=float, default=0.3, help="log-normal scatter of the second spectrum")
    p.add_argument("--fixed-reference", action="store_true",
                   help="second side is the population Gaussian, held fixed (bootstrap_frechet(gaussian_b=...))")
    p.add_argument("--workers", type=int, default=2, help="processes (each draw seeded on its own)")
    p.add_argument("--blas-threads", type=int, default=1, help="BLAS threads per process")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--time-frechet", action="store_true", help="only time the old vs new Fréchet distance")
    p.add_argument("--bias-law", metavar="D:N1,N2,..", help="only the estimate's bias at each n (--draws data sets)")
    args = p.parse_args(argv)
    _init_worker(args.blas_threads)
    if args.bias_law:
        rows = bias_law(args.bias_law, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"bias_law": rows}, f, indent=2)
        return 0
    if args.time_frechet:
        rows = time_frechet()
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"blas_threads": args.blas_threads, "timings": rows}, f, indent=2)
        return 0
    settings = []
    for item in args.settings.split(","):
        v = [int(x) for x in item.lower().split("x")]
        settings.append((v[0], v[1], v[2] if len(v) > 2 else args.replicates))
    results = []
    pool = (ProcessPoolExecutor(args.workers, initializer=_init_worker, initargs=(args.blas_threads,))
            if args.workers > 1 else None)
    try:
        for d, n, b in settings:
            results.append(run_setting(d, n, b, args, pool))
            print_table(results[-1])
    finally:
        if pool:
            pool.shutdown()
    print("\ncoverage: share of data sets whose interval holds the true distance; truth below/above: it lay "
          "below/above the interval; width, mid: mean interval width and midpoint over the true distance")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"argv": sys.argv[1:], "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
