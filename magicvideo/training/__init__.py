"""Training (arXiv 2211.11018, sections 3.1.3 and 3.3): plain library code, no orchestration.

- :func:`load_train_config` / :class:`TrainConfig`: ``configs/train/*.yaml``.
- Key-frame model (:mod:`.keyframe`): :func:`build_keyframe_trainer`, :class:`KeyframeTrainer`,
  :func:`diffusion_loss` (eq. 6), :func:`drop_condition` (classifier-free guidance dropout).
  ``conditioning: image`` is the unsupervised pre-training on CLIP image embeddings of the
  clip's frames; fine-tune with ``conditioning: text`` and ``init_unet``.
- VideoVAE decoder (:mod:`.videovae`): :func:`build_videovae_trainer`, :class:`VideoVAETrainer`,
  :func:`reconstruction_loss`; only ``vae.temporal`` trains.
- The loop (:mod:`.trainer`): AdamW, gradient accumulation, EMA, bf16 autocast on CUDA,
  safetensors checkpoints + ``training_state.pt`` (weights_only) that resume bit-exactly,
  rich progress, ``train_log.jsonl`` (:func:`read_log`).

- Super-resolution (:mod:`.upsampler`, 3.4): :func:`build_upsampler_trainer`,
  :class:`UpsamplerTrainer`, :func:`upsampler_loss`; images only, random crops, noise-conditioning
  augmentation (``upsampler.noise_augmentation``).

- Few-step distillation (:mod:`.distill`): :class:`DistillTrainer` (DMD2, CFG folded in), a student
  pipeline folder sampled at 4 steps and guidance 1 (``scripts/train_student.py``).

- The shapes models (:mod:`.shapes`, issue 6): :func:`train_shapes` runs data -> image VAE
  (:mod:`.vae`) -> CLIP pair (:mod:`.clip`) -> text-to-image U-Net (:mod:`.t2i`) -> VideoVAE ->
  image-embedding pre-training -> text fine-tuning -> I3D attribute classifier (:mod:`.classifier`)
  from one recipe (``configs/train/shapes/default.yaml``) and seed.

CLI: ``magicvideo train keyframe --config NAME|PATH``, ``magicvideo train videovae ...`` and
``magicvideo train shapes OUT [--seed K] [--steps-scale X]``.

    from magicvideo.training import load_train_config, build_keyframe_trainer
    cfg = load_train_config("keyframe_tiny", {"steps": 100, "data.csv": "shapes/train.csv"})
    build_keyframe_trainer(cfg).train()
"""

# Lazy (PEP 562): `magicvideo --help` and every other subcommand import this package's CLI module,
# and the names below pull in torch, transformers and diffusers (~3 s on a 2-core CPU).
_EXPORTS = {
    "config": ["TrainConfig", "load_train_config", "parse_override", "validate_train_config"],
    "keyframe": ["KeyframeTrainer", "build_keyframe_trainer", "diffusion_loss", "drop_condition"],
    "trainer": ["Trainer", "list_checkpoints", "load_weights", "read_log"],
    "videovae": ["VideoVAETrainer", "build_videovae_trainer", "reconstruction_loss"],
    "shapes": ["ShapesRecipe", "load_shapes_recipe", "train_shapes"],
    "upsampler": ["UpsamplerTrainer", "build_upsampler_trainer", "upsampler_loss"],
    "distill": ["DistillConfig", "DistillTrainer"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value
