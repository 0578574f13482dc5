"""Reference statistics cache: mean/scatter of a dataset's features, keyed by what determines them.

A cache entry is two files in one folder, written atomically (temporary name, then rename):
``<dataset>-<extractor>-<digest>.npz`` (``FeatureStats.save``: n, mean, scatter) and the same name
``.json`` with the key and a summary. The digest is the SHA-256 of the canonical JSON of
``{dataset, protocol, extractor identity}``; the extractor identity holds the weights' SHA-256 and
its preprocessing, so other weights or another resize never reuse stale statistics.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Callable

from magicvideo.fileio import atomic_path, atomic_write_text

from .stats import FeatureStats

CACHE_VERSION = 1


def cache_key(dataset: str, protocol: dict | str, extractor_identity: dict) -> dict:
    """The JSON-able key of a reference-statistics entry."""
    return {"version": CACHE_VERSION, "dataset": dataset, "protocol": protocol, "extractor": extractor_identity}


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)[:60]


class ReferenceStatsCache:
    """Folder of cached reference statistics.

    Args:
        root: the folder (created on first save).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def paths(self, key: dict) -> tuple[Path, Path]:
        stem = f"{_slug(key['dataset'])}-{_slug(key['extractor'].get('extractor', 'features'))}-{key_digest(key)[:16]}"
        return self.root / f"{stem}.npz", self.root / f"{stem}.json"

    def load(self, key: dict) -> FeatureStats | None:
        """The cached stats for ``key``, or ``None`` if absent (or written for another key)."""
        npz, meta = self.paths(key)
        if not (npz.is_file() and meta.is_file()):
            return None
        if json.loads(meta.read_text()).get("key") != json.loads(json.dumps(key)):
            return None
        return FeatureStats.load(npz)

    def save(self, key: dict, stats: FeatureStats) -> Path:
        """Write ``stats`` under ``key``; returns the ``.npz`` path."""
        npz, meta = self.paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        summary = {"key": key, "digest": key_digest(key), "num_samples": stats.n,
                   "num_features": stats.num_features, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with atomic_path(npz) as tmp:
            stats.save(tmp)
        atomic_write_text(meta, json.dumps(summary, indent=2))
        return npz

    def get_or_compute(self, key: dict, compute: Callable[[], FeatureStats]) -> tuple[FeatureStats, bool]:
        """``(stats, was_cached)``: load the entry, or compute it, save it and return it."""
        hit = self.load(key)
        if hit is not None:
            return hit, True
        stats = compute()
        self.save(key, stats)
        return stats, False
