"""Atomic file writes: a file under its final name is complete, or not there at all.

Every writer of results, samples, caches and datasets goes through :func:`atomic_path` (or
:func:`atomic_open` / :func:`atomic_write_text`): the content goes to a temporary file in the
destination's folder (same filesystem, so the rename is atomic), which is renamed over the
destination with ``os.replace`` when the write succeeded and removed when it failed or was
interrupted. The file gets the mode a plain ``open()`` would give it (0666 minus the user's umask),
not ``mkstemp``'s 0600, so that shared result folders stay readable (issue 19.5).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from magicvideo.permissions import current_umask


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` (``.<name>.<random><suffix>``, created empty) to write to;
    renamed to ``path`` when the block exits normally, removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, fsync: bool = False, suffix: str = "",
                **open_kwargs) -> Iterator[IO]:
    """``open(path, mode)`` through :func:`atomic_path`; ``fsync`` flushes the data to disk before
    the rename (sample files, which a resumed run trusts by their name alone)."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes a new file: mode must start with 'w', got {mode!r}")
    with atomic_path(path, suffix) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)
