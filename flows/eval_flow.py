"""The ``eval`` flow: manifest -> reference statistics (cached) -> generation -> features ->
metrics -> tracking, one Prefect task per stage and checkpoint (never one per prompt).

Prefect tasks run on the default thread pool (STACK.md: ``RayTaskRunner`` in embedded mode starts
a Prefect server per Ray worker); the GPU work of generation goes through long-lived Ray actors
called from inside the generation task (``flows.generation``). Only this process writes to MLflow.

With ``sampler.stages`` beyond the key frames, each checkpoint is generated once through the chain
and scored once per stage, each stage in its own child run and row (:mod:`flows.stages`,
:mod:`flows.stage_metrics`).

Also here: the ``sweep`` flow (nightly: every new checkpoint of a watched folder on the configured
benchmarks) and the ablations summary (table + Fig. 7-style bar chart) that ``eval`` produces when
its checkpoints carry ``ablation`` labels.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from evaluation.seeds import seed_summary
from flows import generation, metrics as fm, plots, run_records, stage_metrics as sm, stages, tracking
from flows.config import CheckpointSpec, EvalConfig, checkpoint_path, eval_config, flatten, resolve_config
from flows.ray_cluster import ensure_ray
from flows.store import checkpoint_id, checkpoint_step, find_checkpoints, read_sample, sample_path
from magicvideo.stages import UPSAMPLE_FACTOR

METRICS = run_records.METRICS


# ---------------------------------------------------------------------------------------- helpers
def _logger():
    try:
        return get_run_logger()
    except Exception:  # called outside a run (tests of helpers)
        import logging

        return logging.getLogger("flows")


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return flow_run.id


# ------------------------------------------------------------------------------------------ tasks
@task(name="manifest", cache_policy=NO_CACHE)
def manifest_task(cfg: EvalConfig):
    from magicvideo.data import load_benchmark

    bench = load_benchmark(cfg.benchmark, root=cfg.benchmark_root)
    records = bench.manifest()
    if cfg.limit:
        records = records[: cfg.limit]
    if not records:
        raise ValueError(f"benchmark {cfg.benchmark!r} has no prompts")
    _logger().info("benchmark %s: %d prompts x %d samples", bench.name, len(records), cfg.samples_per_prompt)
    return bench, records


@task(name="reference-stats", cache_policy=NO_CACHE)
def reference_stats_task(bench, cfg: EvalConfig, metric: str):
    settings = getattr(cfg.metrics, metric)
    t0 = time.perf_counter()
    extractor = fm.build_extractor(settings, fm.resolve_device(cfg.metrics.device))
    protocol = fm.protocol_of(settings)
    cache_dir = cfg.metrics.cache_dir or str(Path(cfg.output_root) / "reference_stats")
    stats, cached, key = fm.reference_stats(bench, extractor, protocol, cache_dir, batch_size=cfg.metrics.batch_size,
                                            max_clips=cfg.metrics.max_reference_clips)
    _logger().info("%s reference statistics: %d rows (%s)", metric, stats.n, "cached" if cached else "computed")
    return {"stats": stats, "cached": cached, "extractor": extractor, "protocol": protocol,
            "seconds": time.perf_counter() - t0}


@task(name="stage-reference-stats", cache_policy=NO_CACHE)
def stage_reference_stats_task(bench, cfg: EvalConfig, metric: str, chain: tuple, base: dict):
    """A later stage's reference statistics for ``metric``, with the key frames' extractor (``base``)."""
    from magicvideo.data.stage_references import stage_protocol

    t0 = time.perf_counter()
    protocol = base["protocol"]
    window = sm.fvd_window(protocol, bench) if protocol.metric == "fvd" else None
    cache_dir = cfg.metrics.cache_dir or str(Path(cfg.output_root) / "reference_stats")
    stats, cached, _ = sm.stage_reference_stats(bench, chain, base["extractor"], protocol, cache_dir,
                                                batch_size=cfg.metrics.batch_size,
                                                max_clips=cfg.metrics.max_reference_clips, window=window)
    _logger().info("%s reference statistics of stage %s: %d rows (%s)", metric, chain[-1], stats.n,
                   "cached" if cached else "computed")
    return {"stats": stats, "cached": cached, "extractor": base["extractor"], "protocol": protocol,
            "seconds": time.perf_counter() - t0, "stage": chain[-1], "window": window,
            "num_frames": stage_protocol(bench.protocol, chain).num_frames}


@task(name="generate", cache_policy=NO_CACHE)
def generate_task(actors, ckpt: dict, plan: stages.StagePlan, cfg: EvalConfig, check=None):
    """Generate every clip of ``plan`` (one job per clip, through the chain of stages) over the actors;
    ``check()``, called as each batch lands, may raise to stop it (the reference work failed meanwhile)."""
    log = _logger()
    sampler, items = plan.sampler, plan.jobs
    artifact_id = None
    try:
        artifact_id = create_progress_artifact(0.0, description=f"generation {ckpt['label']}")
    except Exception:  # no API (helpers called directly)
        pass
    last = [0.0]

    def progress(done: int, total: int, elapsed: float) -> None:
        if check is not None:
            check()
        now = time.perf_counter()
        if done < total and now - last[0] < 2.0:
            return  # a line and an artifact update every 2 s at most: the API is not a metrics bus
        last[0] = now
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("nan")
        log.info("generated %d/%d (%.0f%%), %.2f clips/s, ETA %.0f s", done, total, 100 * done / total, rate, eta)
        if artifact_id is not None:
            update_progress_artifact(artifact_id, 100.0 * done / total)

    report = generation.generate(
        actors, ckpt["path"], items, sampler, cfg.output_root, batch_size=cfg.ray.batch_size,
        max_in_flight_per_actor=cfg.ray.max_in_flight_per_actor, max_restarts=cfg.ray.max_restarts, progress=progress,
        restart_timeout_s=cfg.ray.restart_timeout_s)
    if artifact_id is not None:
        update_progress_artifact(artifact_id, 100.0)
    rate = f"{report.clips_per_s:.2f} clips/s" if report.generated else run_records.CACHED
    log.info("%s: %d samples, %d already done, %d generated in %.1f s (%s), %d actor deaths, %d batches redone",
             ckpt["label"], report.total, report.skipped, report.generated, report.seconds, rate,
             report.actor_deaths, report.redone_batches)
    missing = [a for it in items for _, a in it.stages if not sample_path(cfg.output_root, a).exists()]
    if missing:
        raise RuntimeError(f"{len(missing)} samples missing after generation, e.g. {missing[0]}")
    return report


@task(name="features", cache_policy=NO_CACHE)
def features_task(items, refs: dict, cfg: EvalConfig):
    out = {}
    paths = [sample_path(cfg.output_root, it.address) for it in items]
    for metric, ref in refs.items():
        t0 = time.perf_counter()
        if "stage" in ref:  # a later stage's (stage_reference_stats_task): FVD windows, the stage's frame count
            stats = sm.stage_generated_stats(paths, ref["extractor"], ref["protocol"],
                                             batch_size=cfg.metrics.batch_size, keep_features=cfg.metrics.bootstrap > 0,
                                             window=ref["window"], num_frames=ref["num_frames"])
        else:
            stats = fm.generated_stats(paths, ref["extractor"], ref["protocol"], batch_size=cfg.metrics.batch_size,
                                       keep_features=cfg.metrics.bootstrap > 0)
        out[metric] = {"stats": stats, "seconds": time.perf_counter() - t0}
    return out


@task(name="metrics", cache_policy=NO_CACHE)
def metrics_task(feats: dict, refs: dict, cfg: EvalConfig, items=(), attributes: dict | None = None,
                 clipsim=None, frame_step: int = 1):
    """Fréchet distances per metric; with ``attributes`` (classifier + requested attributes per
    prompt id) also ``"attributes"``: the attribute accuracy and each sample's predicted values (the
    clips read every ``frame_step`` frames); with ``clipsim`` (a ``CLIPSimScorer``) also ``"clipsim"``:
    its mean and each sample's value (items order)."""
    # Intervals resample prompts (all rows of a prompt's clips together: FID has one row per frame).
    groups = {m: fm.sample_groups(items, feats[m]["stats"].n) if items and cfg.metrics.bootstrap else None
              for m in feats}
    out = {m: fm.frechet(feats[m]["stats"], refs[m]["stats"], refs[m]["protocol"], bootstrap=cfg.metrics.bootstrap,
                         seed=cfg.seed, groups=groups[m]) for m in feats}
    if items:
        fm.save_features(cfg.output_root, items, feats, refs, out)  # per-sample features: `magicvideo compare`
    if attributes is not None:
        acc, predicted = fm.attribute_accuracy(
            [sample_path(cfg.output_root, it.address) for it in items],
            [attributes["requested"][it.prompt_id] for it in items], attributes["classifier"],
            batch_size=cfg.metrics.batch_size, frame_step=frame_step)
        _logger().info("attribute accuracy %s", ", ".join(f"{k} {v:.2f} (chance {acc.chance[k]:.2f})"
                                                          for k, v in acc.accuracy.items()))
        out["attributes"] = {"accuracy": acc, "predicted": predicted, "requested": attributes["requested"]}
    if clipsim is not None:
        out["clipsim"] = fm.clipsim([sample_path(cfg.output_root, it.address) for it in items],
                                    [it.prompt for it in items], clipsim, batch_size=cfg.metrics.batch_size,
                                    precision=cfg.metrics.clipsim.precision)
        _logger().info("CLIPSIM %.4f (mean of %d clips; higher is better)", out["clipsim"]["value"],
                       out["clipsim"]["n"])
    return out


@task(name="bicubic baseline", cache_policy=NO_CACHE)
def bicubic_task(before, srefs: dict, cfg: EvalConfig) -> dict:
    """The upsample stage's baseline: the previous stage's samples (``before``) upsampled bicubic,
    each Fréchet metric against the stage's references (no interval: a point of comparison)."""
    paths = [sample_path(cfg.output_root, it.address) for it in before]
    out = {}
    for metric, ref in srefs.items():
        stats = sm.bicubic_stats(paths, ref["extractor"], ref["protocol"], scale=UPSAMPLE_FACTOR,
                                 batch_size=cfg.metrics.batch_size, window=ref["window"],
                                 num_frames=ref["num_frames"])  # fmt: skip
        out[metric] = fm.frechet(stats, ref["stats"], ref["protocol"], bootstrap=0, seed=cfg.seed)
        _logger().info("upsample baseline: bicubic %s %.3f", metric.upper(), out[metric]["value"])
    return out


@task(name="temporal", cache_policy=NO_CACHE)
def temporal_task(items, bench, chain: tuple, cfg: EvalConfig, refs: dict, attributes: dict | None):
    """Temporal consistency of a stage's samples against its reference clips (:func:`flows.stage_metrics.temporal`)."""
    cache_dir = cfg.metrics.cache_dir or str(Path(cfg.output_root) / "reference_stats")
    tc = sm.temporal([sample_path(cfg.output_root, it.address) for it in items], bench, chain,
                     embed_extractor=refs["fid"]["extractor"] if "fid" in refs else None,
                     classifier=attributes["classifier"] if attributes else None, cache_dir=cache_dir,
                     batch_size=cfg.metrics.batch_size, max_clips=cfg.metrics.max_reference_clips)
    ratio = f", frame change x{tc.frame_change_ratio:.2f}" if tc.frame_change_ratio is not None else ""
    _logger().info("stage %s: pixel change x%.2f of real clips%s", chain[-1], tc.pixel_change_ratio, ratio)
    return tc


@task(name="temporal-reference", cache_policy=NO_CACHE)
def temporal_reference_task(bench, chain: tuple, cfg: EvalConfig, refs: dict, attributes: dict | None) -> None:
    """The real side of the temporal metric (:func:`flows.stage_metrics.temporal_reference`), into its cache."""
    cache_dir = cfg.metrics.cache_dir or str(Path(cfg.output_root) / "reference_stats")
    t0 = time.perf_counter()
    sm.temporal_reference(bench, chain, embed_extractor=refs["fid"]["extractor"] if "fid" in refs else None,
                          classifier=attributes["classifier"] if attributes else None, cache_dir=cache_dir,
                          batch_size=cfg.metrics.batch_size, max_clips=cfg.metrics.max_reference_clips)
    _logger().info("temporal reference of stage %s ready in %.1f s", chain[-1], time.perf_counter() - t0)


@task(name="track", cache_policy=NO_CACHE)
def track_task(client, parent_id: str, exp_id: str, ckpt: dict, cfg: EvalConfig, items, report, results: dict,
               timings: dict, refs: dict, started: float, provenance: dict, chain: tuple = ("keyframes",)) -> dict:
    """One nested MLflow run (checkpoint x benchmark [x ablation] x stage, the last of ``chain``) spanning
    the checkpoint's evaluation from ``started`` (``time.time()``); returns the summary row. The records
    are built by :mod:`flows.run_records` (and :mod:`flows.stages` for a stage); this only hands them to MLflow."""
    stage = chain[-1]
    flow_run_id = _flow_run_id()
    tags = {**provenance, **run_records.child_tags(ckpt, cfg, parent_id, flow_run_id, report),
            **stages.stage_tags(ckpt, cfg, stage, chain)}
    rid = client.create_run(exp_id, start_time=int(started * 1000), tags=tags).info.run_id
    tracking.log_params(client, rid, run_records.child_params(ckpt, cfg, items, refs, results))
    mets = {**run_records.child_metrics(report, timings, results), **stages.stage_metrics(stage, report, results)}
    tracking.log_metrics(client, rid, mets, step=ckpt["step"] or 0)
    doc = run_records.results_document(ckpt, cfg, mets, results, flow_run_id)
    doc.update(stage=stage, stages=list(chain))
    if results.get("temporal") is not None:
        doc["temporal"] = results["temporal"].as_dict()
    tracking.log_json(client, rid, doc, "results.json")
    tracking.log_jsonl(client, rid, run_records.per_sample_records(ckpt, cfg, items, report, results), "samples.jsonl")
    clips = [read_sample(sample_path(cfg.output_root, it.address)) for it in items[: cfg.tracking.grid_samples]]
    tracking.log_grid(client, rid, clips, fps=stages.clip_fps(cfg, chain))
    for m, r in run_records.frechet_results(results).items():
        if r.get("replicates"):
            tracking.log_figure(client, rid, plots.bootstrap_histogram(r["replicates"], r["value"], m),
                                f"bootstrap_{m}.png")
    client.set_terminated(rid, "FINISHED", end_time=int(time.time() * 1000))
    return {**run_records.summary_row(ckpt, cfg, rid, mets, results), "stage": stage}


# ------------------------------------------------------------------------------------------ flows
def _checkpoint_info(spec: CheckpointSpec, sampler) -> dict:
    """A checkpoint's identity, labels and its own sampler (:func:`flows.config.checkpoint_sampler`:
    a distilled student's steps and guidance)."""
    from flows.config import checkpoint_sampler

    path = checkpoint_path(spec)
    return {"path": path, "id": checkpoint_id(path), "step": checkpoint_step(path, spec.step),
            "label": spec.label or Path(path).name, "ablation": spec.ablation, "ablation_seed": spec.ablation_seed,
            "sampler": checkpoint_sampler(sampler, spec, path)}


@flow(name="eval", log_prints=True)
def eval_flow(benchmark: str = "shapes", checkpoints: list | None = None, config: str | None = None,
              samples_per_prompt: int | None = None, seed: int | None = None, sampler: dict | None = None,
              limit: int | None = None, output_root: str | None = None, ray_address: str | None = None,
              overrides: dict | None = None) -> list[dict]:
    """Evaluate checkpoints on a benchmark; returns one summary row per checkpoint.

    Args:
        benchmark: configs/benchmarks/<name>.yaml (or a YAML path).
        checkpoints: saved pipeline folders (strings, or dicts of ``CheckpointSpec``).
        config: configs/eval/<name>.yaml (default: the one named like the benchmark, if any).
        samples_per_prompt, seed, sampler, limit, output_root, ray_address: override the config.
        overrides: any other config keys (nested dict), e.g. ``{"metrics": {"bootstrap": 0}}``.
    """
    cfg = eval_config(benchmark, checkpoints, config, samples_per_prompt, seed, sampler, limit, output_root,
                      ray_address, overrides)
    first = checkpoint_path(cfg.checkpoints[0])  # a missing folder fails here, before anything starts
    from magicvideo.validate import check_stages

    for spec in cfg.checkpoints:  # so does a checkpoint without a stage's components
        check_stages(checkpoint_path(spec), cfg.sampler.stages)
    if cfg.metrics.clipsim is not None and fm.clipsim_skip_reason(cfg.benchmark) is None:
        fm.clipsim_weights(cfg.metrics.clipsim)  # so does a missing CLIP folder (metrics.clipsim.weights)
    # Ray and the actors first: their processes start and load the first checkpoint while this one
    # hashes the checkpoints, opens MLflow, reads the manifest and computes reference statistics.
    # Actors that `magicvideo eval` started before the flow (flows.services) are taken over.
    started_ray = ensure_ray(cfg.ray)
    actors = generation.take_actors(cfg.ray)
    try:
        for a in actors:
            a.load.remote(first, cfg.sampler.scheduler, cfg.sampler.quantize, cfg.sampler.dtype)  # a failed warm-up shows again on the first batch
        return _evaluate(cfg, actors)
    finally:
        import ray

        for a in actors:
            ray.kill(a)  # free their GPUs; a later flow run loads afresh
        if started_ray and cfg.ray.shutdown:
            ray.shutdown()


def _evaluate(cfg: EvalConfig, actors: list) -> list[dict]:
    ckpts = [_checkpoint_info(s, cfg.sampler) for s in cfg.checkpoints]
    client = tracking.client(tracking.tracking_uri(cfg.tracking.uri))
    exp_id = tracking.experiment_id(client, cfg.tracking.experiment)
    provenance = run_records.provenance(fm.resolve_device(cfg.metrics.device))
    parent = client.create_run(exp_id, tags={**provenance, "prefect_flow_run_id": str(_flow_run_id()),
                                             "benchmark": cfg.benchmark, "mlflow.runName": f"eval {cfg.benchmark}",
                                             "kind": "eval"})
    pid = parent.info.run_id
    tracking.log_params(client, pid, flatten(cfg.model_dump()))
    status, pool = "FAILED", None
    try:
        t0 = time.perf_counter()
        bench, records = manifest_task(cfg)
        from flows.validate import count_long_prompts  # issue 19.3: warned once, counted in MLflow

        tracking.log_metrics(client, pid, {"prompts_truncated": count_long_prompts(
            [c["path"] for c in ckpts], [r.prompt for r in records], _logger())}, step=0)
        attributes = None
        if cfg.metrics.attributes is not None:  # fail before any generation: labels, classifier weights
            attributes = {"requested": fm.requested_attributes(records, bench.name),
                          "classifier": fm.build_attribute_classifier(cfg.metrics.attributes,
                                                                      fm.resolve_device(cfg.metrics.device))}
        clipsim = None
        if cfg.metrics.clipsim is not None:  # captioned benchmarks only; the CLIP folder was checked at the start
            skip = fm.clipsim_skip_reason(cfg.benchmark)
            if skip:
                _logger().info(skip)
            else:
                clipsim = fm.build_clipsim_scorer(cfg.metrics.clipsim, fm.resolve_device(cfg.metrics.device))
        t_manifest = time.perf_counter() - t0
        chains = stages.stage_chains(cfg.sampler.stages)

        def references() -> dict:
            """Reference statistics of every metric and stage, and the temporal metric's real side (cached)."""
            refs = {m: reference_stats_task(bench, cfg, m) for m in METRICS if getattr(cfg.metrics, m) is not None}
            out = {s: refs if s == "keyframes" else {m: stage_reference_stats_task(bench, cfg, m, c, refs[m])
                                                     for m in refs} for s, c in chains.items()}
            for s, c in chains.items():
                if cfg.metrics.temporal is not None and s in cfg.metrics.temporal.stages:
                    temporal_reference_task(bench, c, cfg, out[s], attributes)
            return out

        # metrics.schedule: "pipelined" computes the references in a thread of this process while the
        # actors generate (on a GPU machine the reference clips' decoding and features use the CPUs and the
        # GPU's gaps); "staged" computes them first; "auto" pipelines when the actors hold GPUs. The same
        # statistics either way; the thread carries this flow run's context, so its tasks are this run's.
        schedule = cfg.metrics.schedule
        if schedule == "auto":
            schedule = "pipelined" if generation.gpus_per_actor(cfg.ray) > 0 else "staged"
        pool = ThreadPoolExecutor(1, thread_name_prefix="references") if schedule == "pipelined" else None
        pending = pool.submit(contextvars.copy_context().run, references) if pool else None
        stage_refs = None if pool else references()

        def check() -> None:  # a failed reference computation stops generation at its next batch
            if pending is not None and pending.done() and pending.exception() is not None:
                raise pending.exception()

        rows = []
        for ckpt in ckpts:
            started, t0 = time.time(), time.perf_counter()
            plan = stages.plan(ckpt["path"], records, cfg, ckpt.get("sampler"))
            report = generate_task(actors, ckpt, plan, cfg, check)
            t1 = time.perf_counter()
            if stage_refs is None:
                stage_refs = pending.result()
            t_wait = time.perf_counter() - t1  # generation did not hide this part of the reference work
            if "generation_device" not in provenance:  # the actors are up now
                provenance["generation_device"] = run_records.devices_tag(generation.actor_devices(actors))
                client.set_tag(pid, "generation_device", provenance["generation_device"])
            for stage, chain in chains.items():
                t2 = time.perf_counter()
                items, srefs = plan.items[stage], stage_refs[stage]
                feats = features_task(items, srefs, cfg)
                t3 = time.perf_counter()
                results = metrics_task(feats, srefs, cfg, items, attributes, clipsim, stages.attribute_step(chain))
                if stage == "upsample" and cfg.metrics.upsample_baseline:
                    results["bicubic"] = bicubic_task(plan.items[chain[-2]], srefs, cfg)
                if cfg.metrics.temporal is not None and stage in cfg.metrics.temporal.stages:
                    results["temporal"] = temporal_task(items, bench, chain, cfg, srefs, attributes)
                t4 = time.perf_counter()
                timings = {"manifest": t_manifest, "generation": t1 - t0, "reference_wait": t_wait,
                           "features": t3 - t2, "metrics": t4 - t3}
                timings.update({f"reference_{m}": r["seconds"] for m, r in srefs.items()})
                rows.append(track_task(client, pid, exp_id, stages.stage_checkpoint(ckpt, plan, stage), cfg, items,
                                       stages.stage_report(report, plan, stage), results, timings, srefs, started,
                                       provenance, chain))
        _summarise(client, pid, cfg, rows)
        status = "FINISHED"
        where = tracking.where_to_look(client, exp_id, pid, cfg.output_root)
        _logger().info(where)
        return [{**r, "parent_run_id": pid, "where": where} for r in rows]
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        client.set_terminated(pid, status)


def _summarise(client, pid: str, cfg: EvalConfig, rows: list[dict]) -> None:
    """Parent-run artifacts (results JSON, plots, ablation table) and the Prefect table artifact: a row
    per checkpoint and stage; plots and ablation tables per stage (a later stage's names end in
    ``_<stage>``)."""
    cols = (["checkpoint", "stage", "step", "steps", "guidance"] + [k for m in METRICS for k in (m, f"{m}_ci_low", f"{m}_ci_high")]
            + ["clipsim", "attr_acc/mean", "temporal/pixel_change_ratio", "temporal/frame_change_ratio", "clips_per_s"])
    table = [{c: (round(r[c], 4) if isinstance(r.get(c), float) else r.get(c)) for c in cols if c in r} for r in rows]
    tracking.log_json(client, pid, rows, "results.json")
    for stage in dict.fromkeys(r.get("stage", "keyframes") for r in rows):
        group = [r for r in rows if r.get("stage", "keyframes") == stage]
        _summarise_stage(client, pid, cfg, group, cols, "" if stage == "keyframes" else f"_{stage}",
                         "" if stage == "keyframes" else f" ({stage})")
    try:
        create_table_artifact(table, key=f"eval-{_slug(cfg.benchmark)}",
                              description=f"eval {cfg.benchmark}: MLflow parent run {pid}. FVD, FID: lower is "
                                          "better; CLIPSIM, attribute accuracy: higher is better")
    except Exception as exc:  # noqa: BLE001 - the numbers are in MLflow either way
        _logger().warning("could not create the Prefect table artifact: %s", exc)


def _by_seed(rows: list[dict]) -> dict:
    """Ablation rows grouped by their training seed (``ablation_seed``; None: a one-seed ablation)."""
    out: dict = {}
    for r in rows:
        out.setdefault(r.get("ablation_seed"), []).append(r)
    return out


def _summarise_stage(client, pid: str, cfg: EvalConfig, rows: list[dict], cols: list[str], suffix: str,
                     label: str) -> None:
    """One stage's metric-vs-step plots and ablation table and chart (``suffix`` on their file names)."""
    present = [m for m in (*METRICS, "clipsim") if any(m in r for r in rows)]
    stepped = [r for r in rows if r.get("step") is not None]
    for m in present:
        if len(stepped) > 1:
            fig = plots.metric_vs_step(stepped, m, f"{cfg.benchmark}{label}: {m.upper()} vs training step")
            tracking.log_figure(client, pid, fig, f"{m}_vs_step{suffix}.png")
    ablation_rows = [r for r in rows if r.get("ablation")]  # only checkpoints labelled as ablation variants
    if len(ablation_rows) > 1 and cfg.metrics.bootstrap:
        for seed_rows in _by_seed(ablation_rows).values():  # each seed's variants against that seed's full
            _paired_vs_baseline(seed_rows, cfg)
    # Fig. 7: each Fréchet metric with its interval, CLIPSIM, and attribute accuracy where it was measured
    bars = present + (["attr_acc/mean"] if any("attr_acc/mean" in r for r in ablation_rows) else [])
    if ablation_rows and bars:
        fig = plots.ablation_bars(ablation_rows, bars, f"Ablations on {cfg.benchmark}{label}")
        tracking.log_figure(client, pid, fig, f"ablations{suffix}.png")
        paired = sorted({k for r in ablation_rows for k in r
                         if k.endswith(("_diff", "_diff_ci_low", "_diff_ci_high", "_diff_p"))})
        tracking.log_json(client, pid, [{"seed": r.get("ablation_seed"),
                                         **{k: r.get(k) for k in ["variant"] + cols + ["paired_baseline"] + paired}}
                                        for r in ablation_rows], f"ablations{suffix}.json")  # fmt: skip
        if len(_by_seed(ablation_rows)) > 1:  # a multi-seed ablation: mean and spread over seeds
            summary = seed_summary(ablation_rows, [*present, "attr_acc/mean", *(f"{m}_diff" for m in METRICS)])
            tracking.log_json(client, pid, summary, f"ablations_seeds{suffix}.json")
            fig = plots.ablation_seed_bars(summary, [m for m in (*present, "attr_acc/mean")
                                                     if any(f"{m}/mean" in r for r in summary)],
                                           f"Ablations on {cfg.benchmark}{label}: mean and spread over seeds")  # fmt: skip
            tracking.log_figure(client, pid, fig, f"ablations_seeds{suffix}.png")


def _paired_vs_baseline(rows: list[dict], cfg: EvalConfig) -> None:
    """Each ablation row's FVD/FID minus the baseline variant's (``full`` if present, else the first), on
    the same prompts and seeds: ``<m>_diff`` with a 95% interval (prompts resampled jointly) and a sign-flip
    permutation p-value (``evaluation.paired_frechet_difference``), written into the rows."""
    from evaluation.paired import paired_frechet_difference
    from flows.compare import _frechet_rows
    from flows.metrics import load_features

    base = next((r for r in rows if r.get("variant") == "full"), rows[0])
    for r in rows:
        r["paired_baseline"] = base["variant"]
        for m in METRICS:
            fa, fb = r.get(f"{m}_features_file"), base.get(f"{m}_features_file")
            if r is base or not (fa and fb):
                continue
            f = load_features(fa)
            keys = sorted(zip(f["prompt_id"], (int(i) for i in f["sample_index"]), (int(s) for s in f["seed"])))
            got = _frechet_rows(fa, fb, keys)
            if isinstance(got, str):  # not comparable (other prompts, seeds or extractor)
                _logger().info("ablation table: no paired %s difference for %s: %s", m, r["variant"], got)
                continue
            xa, xb, groups, ref, unbiased = got
            try:
                p = paired_frechet_difference(xa, xb, ref_gaussian=ref, groups=groups, unbiased=unbiased,
                                              seed=cfg.seed, num_replicates=max(2, cfg.metrics.bootstrap),
                                              num_permutations=199)
            except ValueError as exc:  # e.g. too few prompts for an interval: the table keeps the plain values
                _logger().info("ablation table: no paired %s difference for %s: %s", m, r["variant"], exc)
                continue
            r.update({f"{m}_diff": p.diff, f"{m}_diff_ci_low": p.low, f"{m}_diff_ci_high": p.high,
                      f"{m}_diff_p": p.p_value})


def _slug(s: str) -> str:
    import re

    return re.sub(r"[^a-z0-9-]+", "-", Path(s).stem.lower())


@flow(name="sweep", log_prints=True)
def sweep_flow(watch_dir: str = "checkpoints", benchmarks: list[str] | None = None, config: str | None = None,
               overrides: dict | None = None) -> dict:
    """Evaluate every checkpoint at or under ``watch_dir`` (:func:`flows.store.find_checkpoints`)
    not yet evaluated (finished MLflow child run with the same checkpoint id and benchmark) on each
    of ``benchmarks`` (nightly deployment)."""
    found = find_checkpoints(watch_dir)
    benchmarks = benchmarks or ["shapes"]
    cfg = resolve_config(config, overrides)
    client = tracking.client(tracking.tracking_uri(cfg.tracking.uri))
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    done = {}
    for b in benchmarks:
        todo = []
        for p in found:
            cid = checkpoint_id(p)
            runs = [] if exp is None else client.search_runs(
                [exp.experiment_id], f"tags.checkpoint_id = '{cid}' and tags.benchmark = '{b}' "
                "and attributes.status = 'FINISHED'", max_results=1)
            if not runs:
                todo.append(str(p))
        _logger().info("sweep %s: %d checkpoints, %d new", b, len(found), len(todo))
        if todo:
            eval_flow(benchmark=b, checkpoints=todo, config=config, overrides=overrides)
        done[b] = todo
    return done
