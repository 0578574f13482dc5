"""Where the committed shapes models are (``checkpoints/shapes/``, see its README.md).

They are found relative to this package (the repository root is its parent folder), not to the
working directory, so ``magicvideo eval shapes`` finds them from anywhere in an editable install.
A non-editable install does not carry them: callers check the folder and name it in their error.
:func:`sample_with` reads how a saved pipeline folder asks to be sampled (a distilled student).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHAPES_CHECKPOINTS = REPO_ROOT / "checkpoints" / "shapes"
SHAPES_PARTS = ("pipeline", "classifier", "clip")


def shapes_checkpoint(part: str) -> Path:
    """The committed shapes model folder ``part`` (``pipeline``, ``classifier`` or ``clip``); not checked."""
    if part not in SHAPES_PARTS:
        raise ValueError(f"unknown shapes model {part!r} (known: {', '.join(SHAPES_PARTS)})")
    return SHAPES_CHECKPOINTS / part


#: the sampler keys a distilled student's ``distillation.json`` may set (``sample_with``)
SAMPLE_WITH_KEYS = ("num_inference_steps", "guidance_scale")


def sample_with(folder: str | Path) -> dict:
    """The sampler settings a pipeline folder records for itself: a distilled student's
    ``distillation.json`` ``sample_with`` (written by ``scripts/train_student.py``: e.g. 4 steps,
    guidance 1), restricted to :data:`SAMPLE_WITH_KEYS`; ``{}`` for any other folder."""
    import json

    record = Path(folder) / "distillation.json"
    if not record.is_file():
        return {}
    try:
        own = dict(json.loads(record.read_text()).get("sample_with") or {})
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"{record}: not a distillation record ({exc})") from exc
    return {k: v for k, v in own.items() if k in SAMPLE_WITH_KEYS}
