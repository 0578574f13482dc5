"""The cascade's stages by name, and what each reads: plain Python (no torch), so that checks that
run before anything starts (``magicvideo.validate.check_stages``, the eval flow's config) can use
them. :mod:`magicvideo.pipeline` runs the stages and re-exports these names.
"""

from __future__ import annotations

from collections.abc import Sequence

#: the stages, in cascade order (DESIGN: keyframes -> interpolate -> decode -> upsample; decoding
#: is the output_type, and runs before "upsample")
STAGES = ("keyframes", "interpolate", "upsample")
#: stages a chain may leave out between two others (keyframes -> upsample upsamples the 16 key frames)
OPTIONAL_STAGES = ("interpolate",)
#: the pipeline components each stage reads (what its identity hashes); "upsample" reads the
#: decoded frames, hence the VAE
STAGE_COMPONENTS = {
    "keyframes": ("unet", "vae", "text_encoder", "tokenizer", "scheduler"),
    "interpolate": ("interpolation", "image_encoder", "vae", "scheduler"),
    "upsample": ("upsampler", "vae"),
}
#: the frame-rate and frame-count factor of the interpolate stage: 3 new frames between each pair of
#: key frames (the interpolation U-Net's 5-frame window, paper 3.2), so K key frames at nu fps become
#: ``4 (K - 1) + 1`` frames at ``4 nu``
INTERPOLATION_FACTOR = 4
#: the size factor of the upsample stage (x4, paper 3.4)
UPSAMPLE_FACTOR = 4


def resolve_stages(stages: str | Sequence[str]) -> tuple[str, ...]:
    """``"keyframes,interpolate"`` or a sequence -> a tuple of known stages, in cascade order,
    without gaps but for :data:`OPTIONAL_STAGES` (``keyframes,upsample`` is a chain)."""
    names = tuple(s.strip() for s in stages.split(",") if s.strip()) if isinstance(stages, str) else tuple(stages)
    unknown = [s for s in names if s not in STAGES]
    if unknown or not names:
        raise ValueError(f"unknown stage(s) {unknown or names}; stages are {', '.join(STAGES)} (in that order)")
    idx = [STAGES.index(s) for s in names]
    skipped = [s for i, j in zip(idx, idx[1:]) for s in STAGES[i + 1 : j]]
    if any(j <= i for i, j in zip(idx, idx[1:])) or any(s not in OPTIONAL_STAGES for s in skipped):
        raise ValueError(f"stages {names} are not consecutive in cascade order ({' -> '.join(STAGES)}; "
                         f"{', '.join(OPTIONAL_STAGES)} may be left out)")  # fmt: skip
    return names


def stage_chains(stages: str | Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Each stage of a chain -> the stages up to and including it (what its output depends on):
    ``keyframes,interpolate,upsample`` -> ``{"keyframes": ("keyframes",), "interpolate": ("keyframes",
    "interpolate"), "upsample": (all three)}``."""
    names = resolve_stages(stages)
    return {s: names[: i + 1] for i, s in enumerate(names)}


def chain_frames(keyframes: int, chain: Sequence[str]) -> int:
    """Frames of a chain's output from ``keyframes`` key frames (61 from 16 with "interpolate")."""
    return INTERPOLATION_FACTOR * (keyframes - 1) + 1 if "interpolate" in chain else keyframes


#: the optional components Magic 1-For-1's generation reads beyond the key-frame stage's
#: (:mod:`magicvideo.long_video`): the I2V model and its CLIP image encoder for sliding windows,
#: plus the text-to-image U-Net for magic141; a folder without one runs the documented fallback
I2V_COMPONENTS = ("i2v", "image_encoder")
MAGIC141_COMPONENTS = ("t2i_unet", "i2v", "image_encoder")


def mode_components(mode: str, long: bool) -> tuple[str, ...]:
    """Components a key-frame run reads beyond :data:`STAGE_COMPONENTS` ``["keyframes"]``: none for
    a 16-frame ``t2v`` clip; the I2V ones when `long` (a sliding-window clip, or image-to-video);
    magic141's always."""
    if mode == "magic141":
        return MAGIC141_COMPONENTS
    if mode != "t2v":
        raise ValueError(f"unknown mode {mode!r}; choose t2v or magic141")
    return I2V_COMPONENTS if long else ()
