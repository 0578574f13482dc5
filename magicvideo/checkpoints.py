"""Where the committed shapes models are (``checkpoints/shapes/``, see its README.md).

They are found relative to this package (the repository root is its parent folder), not to the
working directory, so ``magicvideo eval shapes`` finds them from anywhere in an editable install.
A non-editable install does not carry them: callers check the folder and name it in their error.
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
