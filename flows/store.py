"""Content-addressed samples and checkpoint identity.

A sample's address is ``sha256(canonical JSON of {checkpoint id, prompt, sample index, seed,
sampler settings})``; its frames live at ``<output_root>/samples/<aa>/<address>.npy`` (uint8
``(F, H, W, 3)``, lossless: the metrics see exactly what the pipeline returned), written to a
temporary name and renamed, so a file under its final name is always complete. A rerun skips
every address whose file exists.

A checkpoint is a saved ``MagicVideoPipeline`` folder. Its id is the SHA-256 over its files'
relative paths and contents (so a retrained folder under the same name is a new checkpoint).
Its training step, in order: ``CheckpointSpec.step``; ``magicvideo_checkpoint.json``
(``{"step": N}``) inside the folder; a trailing number in the folder name (``step-1200``,
``checkpoint_1200``); else unknown (MLflow gets step 0 and the tag ``step_known=false``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CHECKPOINT_META = "magicvideo_checkpoint.json"
_STEP_RE = re.compile(r"(?:^|[-_])(?:step|checkpoint|ckpt|iter)?[-_]?(\d+)$")


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def checkpoint_id(path: str | Path) -> str:
    """SHA-256 over the folder's files (relative path + content), ignoring our metadata file."""
    root = Path(path)
    if not (root / "model_index.json").is_file():
        raise FileNotFoundError(f"{root} is not a saved MagicVideoPipeline folder (no model_index.json)")
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.name != CHECKPOINT_META):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def checkpoint_step(path: str | Path, explicit: int | None = None) -> int | None:
    """The training step of a checkpoint folder (see the module docstring), or None."""
    if explicit is not None:
        return explicit
    meta = Path(path) / CHECKPOINT_META
    if meta.is_file():
        step = json.loads(meta.read_text()).get("step")
        if step is not None:
            return int(step)
    m = _STEP_RE.search(Path(path).name)
    return int(m.group(1)) if m else None


def is_checkpoint(path: Path) -> bool:
    return (path / "model_index.json").is_file()


def find_checkpoints(root: str | Path, max_depth: int = 4) -> list[Path]:
    """Every pipeline folder at or under `root`, at most `max_depth` folders down (e.g.
    ``checkpoints/shapes/pipeline``, ``runs/<name>/step-1000``); a checkpoint's own subfolders and
    hidden folders are not searched."""
    root, found = Path(root), []

    def walk(d: Path, depth: int) -> None:
        if is_checkpoint(d):
            found.append(d)
            return
        if depth < max_depth:
            for sub in sorted(q for q in d.iterdir() if q.is_dir() and not q.name.startswith(".")):
                walk(sub, depth + 1)

    if root.is_dir():
        walk(root, 0)
    return found


def sample_seed(run_seed: int, prompt_id: str, sample_index: int) -> int:
    """A sample's own seed: from the run seed and the sample id, never from batch position."""
    return int(hashlib.sha256(f"{run_seed}:{prompt_id}:{sample_index}".encode()).hexdigest()[:8], 16)


@dataclass(frozen=True)
class SampleItem:
    """One clip to generate."""

    address: str
    prompt_id: str
    prompt: str
    sample_index: int
    seed: int

    def as_dict(self) -> dict:
        return asdict(self)


def sample_address(ckpt_id: str, prompt: str, sample_index: int, seed: int, sampler: dict) -> str:
    key = {"checkpoint": ckpt_id, "prompt": prompt, "sample_index": sample_index, "seed": seed, "sampler": sampler}
    return hashlib.sha256(canonical(key).encode()).hexdigest()


def plan_samples(records, ckpt_id: str, sampler: dict, samples_per_prompt: int, run_seed: int) -> list[SampleItem]:
    """Every (prompt, sample index) of a manifest as a ``SampleItem`` with its address."""
    items = []
    for r in records:
        for k in range(samples_per_prompt):
            seed = sample_seed(run_seed, r.prompt_id, k)
            items.append(SampleItem(sample_address(ckpt_id, r.prompt, k, seed, sampler), r.prompt_id, r.prompt, k, seed))
    return items


def sample_path(root: str | Path, address: str) -> Path:
    return Path(root) / "samples" / address[:2] / f"{address}.npy"


def write_sample(path: Path, frames: np.ndarray) -> None:
    """Write uint8 frames atomically (temporary file in the same folder, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:16]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, np.ascontiguousarray(frames, dtype=np.uint8))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_sample(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)
