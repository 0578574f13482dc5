"""What ``magicvideo eval`` checks before it starts any service (Prefect's server, Ray, MLflow):
the benchmark and eval config names and keys, the dataset folder and its prompt files, and each
checkpoint folder down to its safetensors headers and to the components of the stages to score
(``sampler.stages``, ``--stages``). Each mistake is one :class:`InputError` line,
found in well under a second (``tests/test_cli_validation.py`` times it), where the same mistake
found inside the flow cost 30-100 s of start-up and a page of tracebacks (issue 19).

Imports no torch, Prefect, Ray or MLflow.
"""

from __future__ import annotations

from pathlib import Path

from flows.config import EvalConfig, checkpoint_path, eval_config
from magicvideo.configs import ConfigError
from magicvideo.validate import InputError, check_pipeline_folder, check_stages


def validate_eval(params: dict) -> EvalConfig:
    """The resolved ``EvalConfig`` of ``eval_flow(**params)``, once everything that can be checked
    without services holds; else :class:`InputError` (or ``ConfigError``) with one line."""
    from magicvideo.data.benchmarks import load_benchmark, load_benchmark_config

    load_benchmark_config(params.get("benchmark") or "shapes")  # an unknown name lists the known ones
    cfg = eval_config(**params)
    bench = load_benchmark(cfg.benchmark, root=cfg.benchmark_root)
    try:
        records = bench.manifest()
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from None
    if cfg.limit:
        records = records[: cfg.limit]
    if not records:
        raise InputError(f"benchmark {cfg.benchmark!r} has no prompts (dataset folder {bench.root})")
    if bench.has_references and (cfg.metrics.fvd is not None or cfg.metrics.fid is not None):
        try:
            refs, _ = bench.reference_videos()
        except FileNotFoundError as exc:
            raise InputError(str(exc)) from None
        if not refs:
            raise InputError(f"benchmark {cfg.benchmark!r}: no reference videos found under {bench.root}, which FVD "
                             "and FID need (turn them off with --set metrics.fvd=null --set metrics.fid=null)")
    for spec in cfg.checkpoints:
        try:
            check_pipeline_folder(checkpoint_path(spec))
        except FileNotFoundError as exc:
            raise InputError(str(exc)) from None
        check_stages(checkpoint_path(spec), cfg.sampler.stages)  # e.g. --stages keyframes,upsample without upsampler/
    hr_root = bench.config.stage_references.upsample_root
    if "upsample" in cfg.sampler.stages and hr_root and not Path(hr_root).expanduser().is_dir():
        raise InputError(f"benchmark {cfg.benchmark!r}: stage_references.upsample_root {hr_root} (the upsample "
                         "stage's high-resolution references) is not a folder")
    return cfg


__all__ = ["ConfigError", "InputError", "validate_eval"]


def count_long_prompts(checkpoints: list[str], prompts: list[str], log) -> int:
    """How many of ``prompts`` the text encoder truncates (longer than its tokenizer's limit), by each
    checkpoint's own tokenizer; one warning for the run (not one per batch or clip), naming the
    count and an example. Returns the largest count over the checkpoints (MLflow: ``prompts_truncated``)."""
    from transformers import CLIPTokenizer

    from magicvideo.conditioning import long_prompts

    worst, limit, example = 0, None, None
    for path in dict.fromkeys(checkpoints):
        tok = CLIPTokenizer.from_pretrained(f"{path}/tokenizer")
        idx = long_prompts(tok, prompts)
        if len(idx) > worst:
            worst, limit, example = len(idx), tok.model_max_length, prompts[idx[0]]
    if worst:
        log.warning("%d of %d prompts are longer than the text encoder's %d tokens and are truncated to them "
                    "(e.g. %r); logged to MLflow as prompts_truncated", worst, len(prompts), limit,
                    example if len(example) <= 60 else example[:57] + "...")
    return worst
