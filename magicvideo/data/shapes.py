"""The synthetic 'shapes' text-video benchmark: coloured shapes that move as their caption says.

Every clip is a pure function of ``(seed, split, index)`` and the :class:`ShapesSpec`: the same
seed gives the same attributes, parameters, captions and rendered frames, whatever the number of
worker processes. The mp4 files are not quite: x264 (through PyAV, one thread) was measured to
encode identical frames to different bytes in about 4% of clips across runs, and those decode to
pixels up to 18 levels apart. A clip shows one shape (circle, square, triangle) of one colour on a plain background,
moving one way at one of two speeds for ``duration`` seconds at ``fps`` frames per second:

===========  ==================================================================================
attribute    values (speeds are per second, so a clip's frame rate changes how far it moves
             per frame: the model's FPS conditioning has something to learn)
===========  ==================================================================================
shape        circle, square, triangle
color        red, green, blue, yellow, purple, orange
background   black, gray, white
motion       left, right, up, down (translation), grow, shrink (radius), clockwise,
             counterclockwise (rotation; never drawn for a circle, whose rotation is invisible)
speed        slow, fast: translation 0.12 / 0.24 frame sides per second; radius 0.03 / 0.06
             sides per second; rotation 60 / 150 degrees per second
fps          ``spec.fps`` (default 8, 12, 24); duration ``spec.durations`` (default 2, 3 s)
===========  ==================================================================================

Rendering is vectorised numpy: a signed distance to the shape's edge for every pixel of every
frame, turned into anti-aliased coverage (``clip(0.5 - d, 0, 1)``). Image coordinates have y
pointing down, so a positive angle turns the shape clockwise on screen.

On disk (:func:`write_shapes`)::

    OUT/shapes.json                 spec, counts, attribute vocabulary (label indices)
    OUT/test_videodatainfo.json     MSR-VTT format ('info', 'videos', 'sentences'); each video
                                    also carries 'attributes' and 'params'
    OUT/TestVideo/video7010.mp4 ... test clips (ids continue from MSR-VTT's first test id)
    OUT/train.csv                   WebVid-style: videoid,name,path,fps,num_frames,duration,
                                    shape,color,motion,speed,background (path relative to OUT)
    OUT/train/000000.mp4 ...        training clips

Test sentences are every caption phrasing of the clip (as MSR-VTT has 20 per video); a training
row has one phrasing chosen by the clip's generator. Train and test clips come from different
random streams and :func:`write_shapes` checks that no parameter set occurs in both.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from pydantic import Field, field_validator

from magicvideo.configs import StrictModel
from magicvideo.fileio import atomic_write_text

SHAPES = ("circle", "square", "triangle")
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 180, 70),
    "blue": (50, 90, 235),
    "yellow": (235, 210, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
}
BACKGROUNDS = {"black": (12, 12, 12), "gray": (128, 128, 128), "white": (242, 242, 242)}
MOTIONS = ("left", "right", "up", "down", "grow", "shrink", "clockwise", "counterclockwise")
SPEEDS = ("slow", "fast")

#: motion -> speed -> amount per second (frame sides for translation and radius, degrees for rotation)
SPEED_VALUES = {
    "translate": {"slow": 0.12, "fast": 0.24},
    "radius": {"slow": 0.03, "fast": 0.06},
    "rotate": {"slow": 60.0, "fast": 150.0},
}
FIRST_TEST_ID = 7010  # MSR-VTT's test split is video7010..video9999
SPLIT_CODES = {"train": 1, "test": 2}

# (present participle, alternative participle, third person, alternative third person)
_MOTION_WORDS = {
    "left": ("moving left", "sliding to the left", "moves left", "travels to the left"),
    "right": ("moving right", "sliding to the right", "moves right", "travels to the right"),
    "up": ("moving up", "rising", "moves up", "travels upward"),
    "down": ("moving down", "falling", "moves down", "travels downward"),
    "grow": ("growing", "getting bigger", "grows", "expands"),
    "shrink": ("shrinking", "getting smaller", "shrinks", "contracts"),
    "clockwise": ("rotating clockwise", "spinning clockwise", "rotates clockwise", "turns clockwise"),
    "counterclockwise": (
        "rotating counterclockwise",
        "spinning counterclockwise",
        "rotates counterclockwise",
        "turns counterclockwise",
    ),
}
_SPEED_WORDS = {"slow": ("slowly", "slow"), "fast": ("quickly", "fast")}


class ShapesSpec(StrictModel):
    """What :func:`write_shapes` renders (also the ``generate`` section of configs/benchmarks/shapes.yaml)."""

    train: int = Field(2000, ge=0)  # training clips (train.csv)
    test: int = Field(256, ge=0)  # evaluation clips (MSR-VTT layout)
    size: int = Field(64, ge=16, le=256)  # frame side in pixels
    seed: int = 0  # every clip derives from (seed, split, index)
    fps: list[float] = Field(default_factory=lambda: [8.0, 12.0, 24.0])  # frame rates drawn from
    durations: list[float] = Field(default_factory=lambda: [2.0, 3.0])  # clip lengths in seconds
    crf: int = Field(18, ge=0, le=51)  # H.264 quality of the written mp4s

    @field_validator("fps", "durations")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if not v or any(x <= 0 for x in v):
            raise ValueError("must be a non-empty list of positive numbers")
        return v


def vocabulary() -> dict[str, list[str]]:
    """Attribute name -> values, in label-index order."""
    return {
        "shape": list(SHAPES),
        "color": list(COLORS),
        "background": list(BACKGROUNDS),
        "motion": list(MOTIONS),
        "speed": list(SPEEDS),
    }


@dataclass(frozen=True)
class ShapeClip:
    """One clip's labels and the parameters that render it (positions in frame sides)."""

    split: str
    index: int
    shape: str
    color: str
    background: str
    motion: str
    speed: str
    fps: float
    num_frames: int
    x0: float
    y0: float
    radius: float
    angle0: float  # degrees
    color_rgb: tuple[int, int, int]
    caption_choice: int

    @property
    def video_id(self) -> str:
        return f"video{FIRST_TEST_ID + self.index}" if self.split == "test" else f"{self.index:06d}"

    @property
    def attributes(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("shape", "color", "background", "motion", "speed")}

    @property
    def params(self) -> dict:
        keys = ("fps", "num_frames", "x0", "y0", "radius", "angle0", "color_rgb")
        return {k: (list(v) if isinstance(v := getattr(self, k), tuple) else v) for k in keys}

    def captions(self) -> list[str]:
        """Every phrasing of this clip's caption (the first is the canonical one)."""
        m = _MOTION_WORDS[self.motion]
        adv, adj = _SPEED_WORDS[self.speed]
        c, s, b = self.color, self.shape, self.background
        return [
            f"a {c} {s} {m[0]} {adv} on a {b} background",
            f"a {adj} {c} {s} {m[1]} over a {b} background",
            f"{b} background, a {c} {s} {m[2]} {adv}",
            f"the {c} {s} {m[3]} {adv} against a {b} background",
        ]

    @property
    def caption(self) -> str:
        return self.captions()[self.caption_choice]


def sample_clip(spec: ShapesSpec, split: str, index: int, attributes: dict[str, str] | None = None) -> ShapeClip:
    """The attributes and parameters of clip ``index`` of ``split`` (deterministic). `attributes`
    (any of shape, color, background, motion, speed) replace the drawn ones; the draws and the
    rest of the parameters (position, size, angle, colour jitter) follow as for any clip, so the
    same labels come out at new placements (e.g. windows of one object for the drift ceiling)."""
    fixed = dict(attributes or {})
    unknown = set(fixed) - set(vocabulary())
    if unknown:
        raise ValueError(f"unknown shapes attributes {sorted(unknown)}; expected some of {list(vocabulary())}")
    for key, value in fixed.items():
        if value not in vocabulary()[key]:
            raise ValueError(f"{key} {value!r} is not one of {vocabulary()[key]}")
    rng = np.random.default_rng([spec.seed, SPLIT_CODES[split], index])
    shape = SHAPES[rng.integers(len(SHAPES))]
    motions = MOTIONS[:6] if shape == "circle" else MOTIONS
    motion = motions[rng.integers(len(motions))]
    speed = SPEEDS[rng.integers(len(SPEEDS))]
    color = list(COLORS)[rng.integers(len(COLORS))]
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    # the given labels replace the drawn ones after the draws: the random stream stays the same
    shape, motion, speed, color, background = (fixed.get(k, v) for k, v in (
        ("shape", shape), ("motion", motion), ("speed", speed), ("color", color), ("background", background)))
    if shape == "circle" and motion in ("clockwise", "counterclockwise") and "motion" not in fixed:
        motion = MOTIONS[MOTIONS.index(motion) - 6]  # a given circle takes a drawn rotation as left / right
    fps = float(spec.fps[rng.integers(len(spec.fps))])
    duration = float(spec.durations[rng.integers(len(spec.durations))])
    num_frames = max(1, int(round(fps * duration)))
    span_t = (num_frames - 1) / fps  # seconds between first and last frame
    radius = float(rng.uniform(0.09, 0.12))
    if motion in ("grow", "shrink"):
        radius = float(rng.uniform(0.06, 0.08))  # smallest radius; grows from / shrinks to it
    reach = radius + (SPEED_VALUES["radius"][speed] * span_t if motion in ("grow", "shrink") else 0.0)
    travel = SPEED_VALUES["translate"][speed] * span_t if motion in ("left", "right", "up", "down") else 0.0
    lo, hi = reach, 1.0 - reach
    x0, y0 = float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))
    if motion in ("left", "right"):
        x0 = float(rng.uniform(lo + travel, hi)) if motion == "left" else float(rng.uniform(lo, hi - travel))
    if motion in ("up", "down"):
        y0 = float(rng.uniform(lo + travel, hi)) if motion == "up" else float(rng.uniform(lo, hi - travel))
    angle0 = float(rng.uniform(0, 360))
    jitter = rng.integers(-12, 13, size=3)
    rgb = tuple(int(v) for v in np.clip(np.array(COLORS[color]) + jitter, 0, 255))
    return ShapeClip(
        split, index, shape, color, background, motion, speed, fps, num_frames,
        x0, y0, radius, angle0, rgb, int(rng.integers(4)),
    )  # fmt: skip


def trajectory(clip: ShapeClip, times: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame centre x, centre y, radius (frame sides) and angle (degrees), at the clip's frames
    (``k / fps``), or at any ``times`` in seconds within its span: the motion is a function of time,
    so the same clip can be drawn at another frame rate (the eval flow's references of later
    cascade stages)."""
    t = np.arange(clip.num_frames) / clip.fps if times is None else np.asarray(times, np.float64)
    end = (clip.num_frames - 1) / clip.fps  # a shrinking shape reaches its smallest radius at the clip's end
    x = np.full_like(t, clip.x0)
    y = np.full_like(t, clip.y0)
    r = np.full_like(t, clip.radius)
    a = np.full_like(t, clip.angle0)
    v = SPEED_VALUES
    if clip.motion in ("left", "right"):
        x = clip.x0 + (1 if clip.motion == "right" else -1) * v["translate"][clip.speed] * t
    elif clip.motion in ("up", "down"):
        y = clip.y0 + (1 if clip.motion == "down" else -1) * v["translate"][clip.speed] * t
    elif clip.motion == "grow":
        r = clip.radius + v["radius"][clip.speed] * t
    elif clip.motion == "shrink":
        r = clip.radius + v["radius"][clip.speed] * (end - t)
    elif clip.motion in ("clockwise", "counterclockwise"):
        a = clip.angle0 + (1 if clip.motion == "clockwise" else -1) * v["rotate"][clip.speed] * t
    return x, y, r, a


def render(clip: ShapeClip, size: int, times: np.ndarray | None = None) -> np.ndarray:
    """The clip's frames, uint8 ``(F, size, size, 3)``; with ``times`` (seconds) the frames at those
    times instead (:func:`trajectory`)."""
    x, y, r, a = (np.asarray(v, np.float32)[:, None, None] for v in trajectory(clip, times))
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size  # pixel centres, in frame sides
    dx = grid[None, None, :] - x
    dy = grid[None, :, None] - y
    theta = np.deg2rad(a)
    if clip.shape == "circle":
        dist = np.sqrt(dx * dx + dy * dy) - r
    elif clip.shape == "square":
        c, s = np.cos(theta), np.sin(theta)
        u, w = c * dx + s * dy, -s * dx + c * dy  # pixel in the square's own frame
        dist = np.maximum(np.abs(u), np.abs(w)) - 0.85 * r
    else:  # equilateral triangle, circumradius 1.2 r, a vertex up at angle 0
        apothem = 0.6 * r
        dist = None
        for phi in (90.0, 210.0, 330.0):  # outward edge normals at angle 0 (y down)
            ang = theta + np.deg2rad(phi)
            d = np.cos(ang) * dx + np.sin(ang) * dy - apothem
            dist = d if dist is None else np.maximum(dist, d)
    coverage = np.clip(0.5 - dist * size, 0.0, 1.0)[..., None]  # anti-aliased edge, in pixels
    bg = np.asarray(BACKGROUNDS[clip.background], np.float32)
    fg = np.asarray(clip.color_rgb, np.float32)
    frames = bg + coverage * (fg - bg)
    return np.rint(frames).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Writing the benchmark


def _write_one(job: tuple[ShapesSpec, str, int, str]) -> int:
    from magicvideo.video_io import write_mp4

    spec, split, index, path = job
    clip = sample_clip(spec, split, index)
    write_mp4(path, render(clip, spec.size), fps=clip.fps, crf=spec.crf)
    return clip.num_frames


def clip_path(out_dir: Path, clip: ShapeClip) -> Path:
    if clip.split == "test":
        return out_dir / "TestVideo" / f"{clip.video_id}.mp4"
    return out_dir / "train" / f"{clip.video_id}.mp4"


def write_shapes(
    out_dir: str | Path,
    spec: ShapesSpec | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Render and write the benchmark to ``out_dir`` (layout in the module docstring).

    Clips are written in ``workers`` processes (default: all CPUs; 0 = in this process), each
    file atomically; the annotation JSON, the CSV and ``shapes.json`` are written last, so a
    folder with ``shapes.json`` is complete. ``progress(n)`` is called as clips finish.
    Returns the summary stored in ``shapes.json``.
    """
    spec = spec or ShapesSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "shapes.json").unlink(missing_ok=True)  # incomplete until rewritten at the end
    clips = {split: [sample_clip(spec, split, i) for i in range(n)] for split, n in (("train", spec.train), ("test", spec.test))}
    train_keys = {_param_key(c) for c in clips["train"]}
    if any(_param_key(c) in train_keys for c in clips["test"]):
        raise RuntimeError("a test clip repeats a training clip's parameters; choose another seed")
    jobs = [(spec, c.split, c.index, str(clip_path(out, c))) for split in ("test", "train") for c in clips[split]]
    wanted = {Path(job[3]) for job in jobs}
    for split_dir in ("TestVideo", "train"):
        (out / split_dir).mkdir(exist_ok=True)
        for stale in (out / split_dir).glob("*.mp4"):  # clips of an earlier, larger run
            if stale not in wanted:
                stale.unlink()
    frames = 0
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    if n_workers <= 1 or len(jobs) < 32:
        for job in jobs:
            frames += _write_one(job)
            if progress:
                progress(1)
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(n_workers) as pool:
            for n in pool.imap_unordered(_write_one, jobs, chunksize=16):
                frames += n
                if progress:
                    progress(1)
    atomic_write_text(out / "test_videodatainfo.json", json.dumps(msrvtt_annotations(clips["test"]), indent=1))
    atomic_write_text(out / "train.csv", train_csv(clips["train"]))
    summary = {
        "generator": "magicvideo.data.shapes",
        "version": 1,
        "spec": spec.model_dump(),
        "counts": {"train": spec.train, "test": spec.test, "frames": frames},
        "vocabulary": vocabulary(),
        "speed_values": SPEED_VALUES,
    }
    atomic_write_text(out / "shapes.json", json.dumps(summary, indent=1))
    return summary


def _param_key(c: ShapeClip) -> tuple:
    return (c.shape, c.color, c.background, c.motion, c.speed, c.fps, c.num_frames, round(c.x0, 6), round(c.y0, 6), round(c.radius, 6), round(c.angle0, 4))


def clip_from_annotation(video: dict) -> ShapeClip:
    """The :class:`ShapeClip` of one entry of ``test_videodatainfo.json`` (its ``attributes`` and
    ``params``, :func:`msrvtt_annotations`): enough to :func:`render` it again, at any size and
    frame rate. Its index and caption choice are not recorded there (0)."""
    a, p = video["attributes"], video["params"]
    return ShapeClip("test", 0, a["shape"], a["color"], a["background"], a["motion"], a["speed"], float(p["fps"]),
                     int(p["num_frames"]), float(p["x0"]), float(p["y0"]), float(p["radius"]), float(p["angle0"]),
                     tuple(int(c) for c in p["color_rgb"]), 0)  # fmt: skip


def msrvtt_annotations(clips: Iterable[ShapeClip]) -> dict:
    """The test clips as an MSR-VTT annotation JSON (official keys, plus attributes/params)."""
    videos, sentences = [], []
    motion_index = {m: i for i, m in enumerate(MOTIONS)}
    for c in clips:
        videos.append(
            {
                "category": motion_index[c.motion],
                "url": "",
                "video_id": c.video_id,
                "start time": 0.0,
                "end time": round(c.num_frames / c.fps, 4),
                "split": "test",
                "id": FIRST_TEST_ID + c.index,
                "attributes": c.attributes,
                "params": c.params,
            }
        )
        for k, caption in enumerate(c.captions()):
            sentences.append({"caption": caption, "video_id": c.video_id, "sen_id": 4 * c.index + k})
    info = {
        "year": "2026",
        "version": "1",
        "description": "magicvideo synthetic 'shapes' benchmark, test split (MSR-VTT annotation format)",
        "contributor": "magicvideo-bench",
        "data_created": "generated",
    }
    return {"info": info, "videos": videos, "sentences": sentences}


TRAIN_COLUMNS = ("videoid", "name", "path", "fps", "num_frames", "duration", "shape", "color", "motion", "speed", "background")


def train_csv(clips: Iterable[ShapeClip]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TRAIN_COLUMNS)
    for c in clips:
        w.writerow(
            [c.video_id, c.caption, f"train/{c.video_id}.mp4", c.fps, c.num_frames, round(c.num_frames / c.fps, 4),
             c.shape, c.color, c.motion, c.speed, c.background]
        )  # fmt: skip
    return buf.getvalue()

