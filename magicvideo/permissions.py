"""File modes that follow the user's umask.

``tempfile.mkstemp`` creates its file with mode 0600 whatever the umask, and an atomic write
(temporary file, ``os.replace``) keeps that mode under the final name: samples and statistics in a
shared results folder were then unreadable to the group (issue 19.5). :func:`chmod_like_open` gives
the temporary file the mode ``open()`` would have given a new file (0666 minus the umask).
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux reports it (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _lock:  # elsewhere: set and restore (process-wide, hence the lock)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def chmod_like_open(fd: int, mode: int = 0o666) -> None:
    """Give the open file ``fd`` the mode a plain ``open()`` would have created it with."""
    os.fchmod(fd, mode & ~current_umask())
