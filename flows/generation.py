"""Generation on Ray: long-lived actors, each holding one loaded pipeline, fed bounded batches.

Why neither ``ray.util.ActorPool`` nor Ray Data: ActorPool gives bounded in-flight work but,
when an actor dies, ``get_next_unordered`` raises without saying which batch was lost and puts the
dead actor back into the pool; Ray Data's ``map_batches`` with a callable class retries lost
blocks, but streams whole datasets through its executor and cannot skip finished samples by
address or report them as they land. The loop in :func:`generate` is ActorPool's pattern
(``ray.wait`` over at most ``max_in_flight_per_actor`` calls per actor) plus the two things we
need: a batch whose actor died goes back to the front of the queue and is redone by a live actor
(the dead one is restarted by Ray up to ``max_restarts`` times, reloading its pipeline, or
dropped), and each finished batch updates progress (count, clips/s, ETA).

Actors write their samples themselves (atomically, under the content address: see
``flows.store``) and return small records; they never talk to MLflow or Prefect.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import ray

from flows.store import SampleItem, claimed_batches, sample_path, write_sample

class GenerationWorker:
    """Holds one loaded ``MagicVideoPipeline``; generates batches of ``SampleItem``s.

    Used as a Ray actor (``ray.remote(GenerationWorker)``); plain Python otherwise (the bare-loop
    benchmark uses it directly).
    """

    def __init__(self, device: str | None = None, tf32: bool = False, compile: str | None = None):
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tf32 = tf32  # ray.tf32: see _numerics
        self.compile = compile  # ray.compile: MagicVideoPipeline.enable_fast_inference's mode
        self.checkpoint: str | None = None
        self.quantize: str | None = None
        self.dtype: str | None = None
        self.scheduler: str | None = None
        self.pipe = None
        self.batches_done = 0

    def info(self) -> dict:
        return {"pid": os.getpid(), "node": _node_id(), "device": self.device, "checkpoint": self.checkpoint}

    def ready(self) -> bool:
        return True

    def device_name(self) -> str:
        from flows.run_records import device_name

        return device_name(self.device)

    def load(self, checkpoint: str, scheduler: str, quantize: str | None = None, dtype: str | None = None) -> dict:
        """Load ``checkpoint`` (in ``dtype``, bf16 / fp16, else fp32; its U-Net quantized when `quantize`
        names a mode of :mod:`magicvideo.quantize`; compiled when the worker was made with ``compile``)
        unless it is the one already held."""
        if (self.checkpoint, self.quantize, self.dtype) != (checkpoint, quantize, dtype) or self.pipe is None:
            import torch

            from magicvideo.pipeline import MagicVideoPipeline
            from magicvideo.quantize import quantize_pipeline

            self.pipe = None  # the old one's memory goes before the new one loads
            torch_dtype = {None: torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
            pipe = MagicVideoPipeline.from_pretrained(checkpoint).to(self.device, torch_dtype)
            pipe.set_progress_bar_config(disable=True)
            quantize_pipeline(pipe, quantize)
            if self.compile:
                pipe.enable_fast_inference(self.compile)
            self.pipe = pipe
            self.checkpoint, self.quantize, self.dtype, self.scheduler = checkpoint, quantize, dtype, None
        if self.scheduler != scheduler:
            self.pipe.set_scheduler(scheduler)
            self.scheduler = scheduler
        return self.info()

    def generate(self, checkpoint: str, items: list[dict], sampler: dict, output_root: str) -> list[dict]:
        """Generate every item of one batch whose sample file does not exist yet; write each atomically.

        Items of a chain of stages (``CascadeItem.as_dict()``, with ``stages``) go through
        :func:`flows.cascade.run_cascade`: each stage's sample under its own address, only what is
        missing computed; their records add ``stages_written``, ``stages_run`` and ``stage_seconds``."""
        self.load(checkpoint, sampler["scheduler"], sampler.get("quantize"), sampler.get("dtype"))
        out, done, by_address = [], set(), {it["address"]: it for it in items}
        # each sample claimed while it is generated: a concurrent run on this output root waits for it
        # instead of computing it twice, and takes it over if this process dies (flows.store.claimed_batches)
        for claimed in claimed_batches(output_root, list(by_address)):
            todo = [by_address[a] for a in claimed]
            t0 = time.perf_counter()
            with _numerics(self.tf32):
                if todo[0].get("stages"):
                    from flows.cascade import run_cascade

                    extra = run_cascade(self.pipe, todo, sampler, output_root)
                else:
                    frames = self.pipe(
                        [it["prompt"] for it in todo], seed=[it["seed"] for it in todo],
                        negative_prompt=[sampler["negative_prompt"]] * len(todo),
                        num_inference_steps=sampler["num_inference_steps"], guidance_scale=sampler["guidance_scale"],
                        fps=sampler["fps"], eta=sampler["eta"], noise_prior=sampler.get("noise_prior"), output_type="uint8",
                    ).frames
                    for it, clip in zip(todo, frames):
                        write_sample(sample_path(output_root, it["address"]), clip)
                    extra = {}
            seconds = (time.perf_counter() - t0) / len(todo)
            for it in todo:
                out.append({"address": it["address"], "generated": True, "seconds": seconds, "pid": os.getpid(),
                            "node": _node_id(), **extra.get(it["address"], {})})
            done.update(claimed)
        out += [{"address": it["address"], "generated": False, "seconds": 0.0, "pid": os.getpid(), "node": _node_id()}
                for it in items if it["address"] not in done]
        self.batches_done += 1
        return out


def _node_id() -> str | None:
    """The Ray node this process runs on (None outside Ray)."""
    try:
        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # a plain process, no worker context
        return None


@contextlib.contextmanager
def _numerics(tf32: bool):
    """TF32 in cuBLAS and cuDNN on or off for one pipeline call (restored after). PyTorch leaves cuDNN's
    TF32 on: on a GPU an fp32 pipeline then gives a sample that depends on its batch (size, neighbours),
    since cuDNN picks its convolution algorithms by shape. Measured on an H200 (committed shapes pipeline,
    20 DDIM steps, guidance 7.5, 8 clips): batches of 1 against 8 differed in 8-10% of the uint8 values, by
    up to 223 levels, with cuDNN's TF32 on; in 0.02%, by 1 level, with TF32 off (one U-Net step: 2.5e-3
    against 2.6e-6). The price, for an fp32 sd15 U-Net (random weights, batch 4, 10 steps): 2.37 s a clip
    with TF32 off, 1.05 with PyTorch's defaults (cuDNN TF32 on), 0.64 with TF32 on in both. bf16 / fp16
    pipelines are unaffected by the switch. On the CPU TF32 does not apply and samples are byte-identical
    across batch sizes and thread counts."""
    import torch

    prev = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev


@dataclass
class GenerationReport:
    total: int                            # samples planned
    skipped: int                          # already on disk before this run
    generated: int                        # written by this run
    seconds: float                        # wall time of the generation stage
    batches: int
    redone_batches: int                   # batches resubmitted after their actor died
    actor_deaths: int
    first_batch_s: float = 0.0            # until the first batch returned (actor start + pipeline load)
    steady_clips_per_s: float = 0.0       # after the first batch
    records: dict[str, dict] = field(default_factory=dict)  # address -> actor record
    keyframes_recomputed: int = 0         # a later stage's report: clips whose key frames ran again (no stored
                                          # latents) without being written (flows.stages.stage_report)

    @property
    def clips_per_s(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0


def actor_devices(actors: list, timeout_s: float = 30.0) -> list[str]:
    """The device name of each actor that answers within ``timeout_s`` (provenance in MLflow)."""
    names = []
    for a in actors:
        try:
            names.append(ray.get(a.device_name.remote(), timeout=timeout_s))
        except Exception:  # noqa: BLE001 - a dead or stuck actor: its device is not recorded
            continue
    return names


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0))


def gpus_per_actor(settings, gpus: float | None = None) -> float:
    """``ray.num_gpus_per_actor``, else 1 when the cluster has GPUs and 0 when it has none."""
    gpus = cluster_gpus() if gpus is None else gpus
    return settings.num_gpus_per_actor if settings.num_gpus_per_actor is not None else (1 if gpus else 0)


def start_actors(settings, gpus: float | None = None) -> list:
    """Create the actors (not yet loaded): ``num_gpus=1`` each when the cluster has GPUs."""
    gpus = cluster_gpus() if gpus is None else gpus
    per_gpu = gpus_per_actor(settings, gpus)
    n = settings.num_actors or (max(1, int(gpus // per_gpu)) if per_gpu else 1)
    options = dict(
        num_gpus=per_gpu, num_cpus=settings.num_cpus_per_actor,
        max_restarts=settings.max_restarts,      # Ray's default for actors is 0 (STACK.md)
        max_task_retries=0,                      # we resubmit a lost batch ourselves (to any live actor)
        # SPREAD: one actor per node before a second on any (Ray's default packs the first node), so a
        # cluster's nodes all work and a lost node takes few actors with it
        scheduling_strategy=settings.scheduling,
    )
    # GenerationWorker is looked up when called: the tests' fault injection replaces it (tests/conftest.py)
    cls = ray.remote(GenerationWorker).options(**options)
    return [cls.remote(tf32=settings.tf32, compile=settings.compile) for _ in range(n)]


#: Actors started ahead of a flow run (``magicvideo eval`` starts them beside Prefect's server),
#: by the settings they were started with; :func:`take_actors` hands them to the flow.
_prestarted: dict[tuple, list] = {}


def _actor_key(settings) -> tuple:
    # the Ray job too: handles from a Ray session that was shut down since are void; and the worker
    # class, which the tests' fault injection replaces
    return (ray.get_runtime_context().get_job_id(), settings.address, settings.num_actors,
            settings.num_gpus_per_actor, settings.num_cpus_per_actor, settings.max_restarts, settings.tf32,
            settings.compile, GenerationWorker)


def prestart_actors(settings, checkpoint: str, scheduler: str, quantize: str | None = None,
                    dtype: str | None = None) -> list:
    """Start the actors now and have them load ``checkpoint``, without waiting for either; the next
    :func:`take_actors` with the same settings gets them (Ray must be initialised). Idempotent:
    actors already pre-started with these settings are returned as they are."""
    key = _actor_key(settings)
    if key in _prestarted:
        return _prestarted[key]
    actors = start_actors(settings)
    for a in actors:
        a.load.remote(checkpoint, scheduler, quantize, dtype)
    _prestarted[key] = actors
    return actors


def take_actors(settings) -> list:
    """The actors :func:`prestart_actors` started with these settings, else new ones. Pre-started
    actors of other settings are killed: they would hold GPUs the new ones wait for."""
    key = _actor_key(settings)
    mine = _prestarted.pop(key, None)
    for other_key, others in _prestarted.items():
        for a in others if other_key[0] == key[0] else ():
            ray.kill(a)
    _prestarted.clear()
    return mine if mine is not None else start_actors(settings)


def generate(actors: list, checkpoint: str, items: list[SampleItem], sampler: dict, output_root: str, *,
             batch_size: int, max_in_flight_per_actor: int, max_restarts: int,
             progress: Callable[[int, int, float], None] | None = None,
             restart_timeout_s: float = 600.0) -> GenerationReport:
    """Generate every item not yet on disk over ``actors``; resubmit batches lost with a dead actor.

    A dead actor gets no new batch until it answers a ``ready()`` probe: Ray may be restarting it
    (on another node when its node was lost), or be unable to place it at all (no free capacity).
    Work sent to it before that would wait with it; the live actors take the queue instead. When
    no actor is live, the queue waits up to ``restart_timeout_s`` for a restart, then fails (a
    rerun resumes)."""
    t0 = time.perf_counter()
    todo = [it for it in items if not sample_path(output_root, it.address).exists()]
    report = GenerationReport(total=len(items), skipped=len(items) - len(todo), generated=0, seconds=0.0,
                              batches=0, redone_batches=0, actor_deaths=0)
    queue = collections.deque([it.as_dict() for it in todo[i : i + batch_size]] for i in range(0, len(todo), batch_size))
    report.batches = len(queue)
    live = {i: a for i, a in enumerate(actors)}
    restarting: dict = {}                 # ObjectRef of a ready() probe -> index of a dead actor
    deaths = collections.Counter()        # distinct deaths per actor
    epoch = collections.Counter()         # bumps at each death: calls queued on the dead process fail too
    in_flight: dict = {}                  # ObjectRef -> (actor index, epoch at submission, batch)
    load_of = collections.Counter()
    done = 0

    def died(idx: int, exc: Exception) -> None:
        epoch[idx] += 1
        deaths[idx] += 1
        report.actor_deaths += 1
        _log_death(idx, exc)
        live.pop(idx, None)
        if deaths[idx] <= max_restarts:   # Ray restarts it: probe before sending work
            restarting[actors[idx].ready.remote()] = idx

    while queue or in_flight:
        if not live and not restarting:
            raise RuntimeError(f"every generation actor died ({report.actor_deaths} deaths); "
                               f"{done} of {len(todo)} samples written this run (a rerun resumes)")
        for idx in list(live):            # fill each live actor up to the in-flight bound
            while queue and load_of[idx] < max_in_flight_per_actor:
                batch = queue.popleft()
                ref = live[idx].generate.remote(checkpoint, batch, sampler, output_root)
                in_flight[ref] = (idx, epoch[idx], batch)
                load_of[idx] += 1
        only_restarts = not in_flight
        ready, _ = ray.wait(list(in_flight) + list(restarting), num_returns=1,
                            timeout=restart_timeout_s if only_restarts else None)
        if not ready:
            raise RuntimeError(f"no generation actor is live, and none of the {len(restarting)} dead ones "
                               f"restarted within {restart_timeout_s:.0f} s (is there room for it in the "
                               f"cluster?); {done} of {len(todo)} samples written this run (a rerun resumes)")
        for ref in ready:
            if ref in restarting:
                idx = restarting.pop(ref)
                try:
                    ray.get(ref)
                    live[idx] = actors[idx]
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                    died(idx, exc)
                continue
            idx, ep, batch = in_flight.pop(ref)
            load_of[idx] -= 1
            try:
                records = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                queue.appendleft(batch)   # redo it first, on whichever actor is live
                report.redone_batches += 1
                if ep == epoch[idx]:      # a new death, not another call lost with the same one
                    died(idx, exc)
                continue
            if not report.first_batch_s:
                report.first_batch_s = time.perf_counter() - t0
                first_n = len(batch)
            for r in records:
                report.records[r["address"]] = r
            n_new = sum(r["generated"] for r in records)
            report.generated += n_new
            done += len(batch)
            if progress is not None:
                progress(done, len(todo), time.perf_counter() - t0)
    report.seconds = time.perf_counter() - t0
    if report.first_batch_s and done > first_n:
        report.steady_clips_per_s = (done - first_n) / (report.seconds - report.first_batch_s)
    return report


def _log_death(idx: int, exc: Exception) -> None:
    import logging

    logging.getLogger("flows.generation").warning(
        "generation actor %d died (%s); its batch goes back to the queue", idx, type(exc).__name__)
