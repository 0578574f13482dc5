"""Typed records that benchmarks produce: prompts (the JSONL manifest) and reference videos."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from pydantic import BaseModel, ConfigDict

from magicvideo.data.video import Skip
from magicvideo.fileio import atomic_open


class PromptRecord(BaseModel):
    """One line of a prompt manifest (JSONL).

    ``prompt_id`` is stable across runs, machines and seeds of everything except the benchmark
    definition itself: ``<benchmark>/<video id or class>/<caption id or sample number>``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_id: str
    prompt: str
    benchmark: str
    video_id: str | None = None  # the reference video this prompt describes, when paired
    video: str | None = None  # its path (absolute) when the file was found, else None
    label: str | None = None  # class name (UCF-101)
    category: str | None = None  # DrawBench category
    attributes: dict[str, str] | None = None  # shapes: shape/color/background/motion/speed
    fps: float | None = None  # source frame rate, when the annotations state it


@dataclass(frozen=True)
class VideoRef:
    """A reference video of a benchmark: an id, where it is, and what it shows."""

    video_id: str
    path: str
    label: str | None = None  # caption or class name
    fps: float | None = None  # from the annotations/CSV, overriding the file's metadata if set


@dataclass
class Scan:
    """What :meth:`Benchmark.scan` found: prompts, usable reference videos, and what was skipped."""

    benchmark: str
    prompts: list[PromptRecord]
    references: list[VideoRef]
    skipped: list[Skip] = field(default_factory=list)

    def skip_counts(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skipped).most_common())


def write_manifest(path: str | Path, records: Iterable[PromptRecord]) -> Path:
    """Write records as JSONL, atomically (temporary file renamed into place)."""
    path = Path(path)
    with atomic_open(path, "w") as f:
        for r in records:
            f.write(r.model_dump_json(exclude_none=True) + "\n")
    return path


def read_manifest(path: str | Path) -> list[PromptRecord]:
    """Read a JSONL manifest; a bad line fails with its line number."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(PromptRecord.model_validate(json.loads(line)))
                except ValueError as exc:
                    raise ValueError(f"{path}:{n}: not a prompt record: {exc}") from None
    return out
