"""Content-addressed samples and checkpoint identity.

A sample's address is ``sha256(canonical JSON of {checkpoint id, prompt, sample index, seed,
sampler settings})``; its frames live at ``<output_root>/samples/<aa>/<address>.npy`` (uint8
``(F, H, W, 3)``, lossless: the metrics see exactly what the pipeline returned), written to a
temporary name and renamed, so a file under its final name is always complete. A rerun skips
every address whose file exists. A key-frame sample's latents are kept beside it
(``<address>.latents.npz``, :func:`latents_path`), so a later cascade stage starts from them. A clip
generated through several stages (:class:`CascadeItem`) has one address per stage, each keyed on the
identity of the stages up to it (:func:`checkpoint_id` with those stages). While a process
generates a sample it holds a claim on its address (an exclusive ``flock`` on ``<address>.claim``,
:func:`claimed_batches`; a clip of several stages: its last stage's address): a concurrent run on the same
output root waits for that sample instead of computing it again, and takes it over if the holder dies.

A checkpoint is a saved ``MagicVideoPipeline`` folder. Its id is the SHA-256 over its files'
relative paths and contents (so a retrained folder under the same name is a new checkpoint).
Its training step, in order: ``CheckpointSpec.step``; ``magicvideo_checkpoint.json``
(``{"step": N}``) inside the folder; a trailing number in the folder name (``step-1200``,
``checkpoint_1200``); else unknown (MLflow gets step 0 and the tag ``step_known=false``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from magicvideo.fileio import atomic_open

CHECKPOINT_META = "magicvideo_checkpoint.json"
_STEP_RE = re.compile(r"(?:^|[-_])(?:step|checkpoint|ckpt|iter)?[-_]?(\d+)$")


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def checkpoint_id(path: str | Path, stages: tuple[str, ...] = ("keyframes",)) -> str:
    """The identity of what a checkpoint folder's `stages` read: SHA-256 over the stage names and
    the files of the components they use (``magicvideo.pipeline.cascade_identity``). Adding an
    ``interpolation/`` model to a pipeline folder leaves its key-frame samples' addresses as they
    were; changing any file the key frames depend on gives new ones."""
    from magicvideo.pipeline import cascade_identity

    return cascade_identity(path, stages)


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


@dataclass(frozen=True)
class CascadeItem(SampleItem):
    """One clip to generate through a chain of cascade stages: ``stages`` holds each stage's sample
    address, in chain order; ``address`` is the last stage's, which the run claims while it works on
    the clip (the stages are written in order, so a clip whose last stage is on disk is done)."""

    stages: tuple[tuple[str, str], ...] = ()


def plan_cascade(records, stage_ids: dict[str, str], stage_samplers: dict[str, dict], samples_per_prompt: int,
                 run_seed: int) -> tuple[dict[str, list[SampleItem]], list[CascadeItem]]:
    """The samples of every stage of a chain (``stage_ids``: stage -> the checkpoint identity of the
    stages up to it, in chain order; ``stage_samplers``: stage -> its address's sampler settings), as
    ``({stage: [SampleItem, ...]}, [CascadeItem, ...])``, every list in manifest order. A stage's
    address depends only on the stages up to it: the key frames' samples are the same files whatever
    stages follow them."""
    by_stage = {s: plan_samples(records, stage_ids[s], stage_samplers[s], samples_per_prompt, run_seed)
                for s in stage_ids}
    last = list(stage_ids)[-1]
    jobs = [CascadeItem(**it.as_dict(), stages=tuple((s, by_stage[s][i].address) for s in stage_ids))
            for i, it in enumerate(by_stage[last])]
    return by_stage, jobs


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
    """Write uint8 frames atomically (temporary file in the same folder, fsync, rename), with the
    mode of the user's umask."""
    with atomic_open(path, "wb", fsync=True, suffix=".tmp") as fh:
        np.save(fh, np.ascontiguousarray(frames, dtype=np.uint8))


def read_sample(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def latents_path(root: str | Path, address: str) -> Path:
    """Where a key-frame sample's latents are kept, beside its frames (``.npz``, so a glob of the
    samples' ``*.npy`` does not see them): a later stage starts from them instead of running the key
    frames again."""
    return sample_path(root, address).with_suffix(".latents.npz")


def write_latents(path: Path, latents) -> None:
    """Scaled latents ``(C, F, h, w)`` (a torch tensor), atomically, in their own dtype (bfloat16, which
    numpy lacks, as float32, exact); :func:`read_latents` gives them back bit for bit."""
    import torch

    dtype = str(latents.dtype).removeprefix("torch.")
    x = latents.detach().cpu()
    x = x.float() if x.dtype == torch.bfloat16 else x
    with atomic_open(path, "wb", fsync=True, suffix=".tmp") as fh:
        np.savez(fh, latents=x.numpy(), dtype=np.array(dtype))


def read_latents(path: Path):
    """The tensor :func:`write_latents` wrote, or None when the file is missing."""
    import torch

    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return torch.from_numpy(z["latents"]).to(getattr(torch, str(z["dtype"])))


# ------------------------------------------------------------------------------------------ claims
#: Seconds a run waits for a sample that another live run is generating before it gives up.
CLAIM_WAIT_S = float(os.environ.get("MAGICVIDEO_CLAIM_WAIT_S", "3600"))


def claim_path(root: str | Path, address: str) -> Path:
    return sample_path(root, address).with_suffix(".claim")


def try_claim(root: str | Path, address: str) -> int | None:
    """Claim ``address`` for this process: an exclusive ``flock`` on ``<address>.claim`` beside its
    sample, held until :func:`release`. The kernel drops the lock when its process dies, however it
    dies, so a claim is never stale. Returns the lock's file descriptor, or None when another process
    holds the claim."""
    import fcntl

    path = claim_path(root, address)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:  # the holder before us may have released (unlinked) the file we opened: then again
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def release(root: str | Path, address: str, fd: int) -> None:
    """Give up a claim (its sample written, or not): the file goes, then the lock."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(claim_path(root, address))
    os.close(fd)


def claimed_batches(root: str | Path, addresses: list[str], poll_s: float = 0.5, wait_s: float | None = None):
    """The addresses that this process should generate, in batches, each claimed while the caller
    works on it (``for todo in claimed_batches(...)``; released when the next batch is asked for).

    First every address with no sample yet whose claim is free; then, once another run that held
    a claim lets go of it, those whose sample that run did not write (it died or failed). Samples
    written meanwhile by another run are skipped: two runs on one output root never generate the
    same clip twice (issue 19.6). A claim held longer than ``wait_s`` (default
    ``$MAGICVIDEO_CLAIM_WAIT_S``, 1 h) raises ``TimeoutError`` naming the sample."""
    wait_s = CLAIM_WAIT_S if wait_s is None else wait_s
    pending = [a for a in addresses if not sample_path(root, a).exists()]
    deadline = time.monotonic() + wait_s
    while pending:
        mine, held = {}, []
        try:
            for a in pending:
                fd = try_claim(root, a)
                if fd is None:
                    held.append(a)
                elif sample_path(root, a).exists():  # written by the holder before us
                    release(root, a, fd)
                else:
                    mine[a] = fd
            if mine:
                yield list(mine)
        finally:
            for a, fd in mine.items():
                release(root, a, fd)
        pending = [a for a in held if not sample_path(root, a).exists()]
        if pending and not mine:
            if time.monotonic() > deadline:
                raise TimeoutError(f"sample {sample_path(root, pending[0])} has been claimed by another run for more "
                                   f"than {wait_s:.0f} s ({claim_path(root, pending[0])}); is that run stuck?")
            time.sleep(poll_s)
