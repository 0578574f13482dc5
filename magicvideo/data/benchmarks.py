"""Benchmarks by name: configs/benchmarks/<name>.yaml -> prompts, reference videos and clips.

Each YAML has a ``kind`` (msrvtt, ucf101, webvid, drawbench, shapes) that picks its config model
below; unknown keys and bad values fail at load with the key's path. The dataset folder
(``root``) comes from, in order: the ``root=`` argument (``--root``), the environment variable
named by ``root_env``, the ``root`` key of the YAML (relative paths are relative to the working
directory). A missing file fails with one message naming the file, where it usually comes from,
and these three ways to point at it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Callable, Iterator, Literal

import yaml
from pydantic import Field, model_serializer

from magicvideo.configs import ConfigError, StrictModel, resolve_config_path, validate_config
from magicvideo.data.records import PromptRecord, Scan, VideoRef
from magicvideo.data.shapes import ShapesSpec
from magicvideo.validate import read_text
from magicvideo.data.video import (
    Clip,
    OnError,
    Skip,
    VideoReadError,
    probe_video,
    read_clip_safe,
    read_eval_clip,
    resampled_offsets,
    skip_reason,
    stable_rng,
)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")

# ----------------------------------------------------------------------------------------------
# Config models


class Protocol(StrictModel):
    """How reference clips are cut from reference videos (evaluation)."""

    num_frames: int = Field(16, ge=1)  # frames per clip
    size: int | None = Field(256, ge=8)  # output side in pixels; null keeps the native size
    resize: Literal["squash", "short_side_crop"] = "short_side_crop"  # see magicvideo.data.video
    start: Literal["first", "centre", "random"] = "centre"  # where the clip starts in the video
    seed: int = 0  # for start: random (derived per video id)
    fps: float | None = Field(None, gt=0)  # null: consecutive frames; else frames at times k / fps (resampled)

    @model_serializer(mode="wrap")
    def _omit_unset_fps(self, handler):
        # fps: null is left out of the dump, so protocols without it keep the reference-statistics
        # cache keys (flows/metrics.py hashes this dump) they had before the key existed
        out = handler(self)
        if isinstance(out, dict) and self.fps is None:
            out.pop("fps", None)
        return out

    def frames_needed(self, native_fps: float | None) -> int:
        """Source frames one clip covers at a video's ``native_fps`` (``num_frames`` when consecutive)."""
        if self.fps is None or not native_fps:
            return self.num_frames
        return int(resampled_offsets(self.num_frames, native_fps / self.fps)[-1]) + 1


class StageReferences(StrictModel):
    """Where the reference clips of the cascade's later stages come from (the eval flow's
    ``sampler.stages``; :mod:`magicvideo.data.stage_references`). Their protocol is derived from
    ``protocol``: with ``interpolate`` 4 (F - 1) + 1 frames at 4x ``fps``, with ``upsample`` 4x ``size``."""

    upsample_root: str | None = None  # the dataset again at the upsampled size (same layout and video ids, e.g.
    # `magicvideo data shapes OUT --size 256`); relative to the working directory; null: the benchmark's own videos,
    # resized to the stage's size


class ShapesStageReferences(StageReferences):
    render: bool = True  # draw each test clip again from its recorded parameters at the stage's frame rate and
    # size (no codec), instead of reading its video (whose 8-24 fps would be resampled to 32 fps by repeating frames)


class _Base(StrictModel):
    name: str  # the benchmark's name in prompt ids and reports
    root: str | None = None  # dataset folder (see the module docstring for overrides)
    root_env: str  # environment variable that overrides `root`
    limit: int | None = Field(None, ge=1)  # keep only the first N prompts (smoke runs)
    protocol: Protocol = Protocol()
    stage_references: StageReferences = StageReferences()


class MSRVTTConfig(_Base):
    kind: Literal["msrvtt"]
    name: str = "msrvtt"
    root_env: str = "MAGICVIDEO_MSRVTT_ROOT"
    annotations: str = "test_videodatainfo.json"  # official annotation JSON, relative to root
    split: str = "test"  # videos whose 'split' is this
    video_dirs: list[str] = ["TestVideo", "videos/all"]  # searched in order for <video_id>.<ext>
    captions: Literal["one_per_video", "all"] = "one_per_video"  # one caption chosen per video, or all
    caption_seed: int = 0  # which caption: seeded per video id, independent of order


class ShapesConfig(MSRVTTConfig):
    kind: Literal["shapes"]  # type: ignore[assignment]
    name: str = "shapes"
    root: str | None = "data/shapes"
    root_env: str = "MAGICVIDEO_SHAPES_ROOT"
    video_dirs: list[str] = ["TestVideo"]
    train_csv: str = "train.csv"  # WebVid-style training CSV written by `magicvideo data shapes`
    generate: ShapesSpec = ShapesSpec()  # defaults of `magicvideo data shapes`
    stage_references: ShapesStageReferences = ShapesStageReferences()  # type: ignore[assignment]


class UCF101Config(_Base):
    kind: Literal["ucf101"]
    name: str = "ucf101"
    root_env: str = "MAGICVIDEO_UCF101_ROOT"
    class_index: str = "ucfTrainTestlist/classInd.txt"  # "1 ApplyEyeMakeup" per line
    test_list: str = "ucfTrainTestlist/testlist01.txt"  # "ApplyEyeMakeup/v_..._g01_c01.avi" per line
    video_dir: str = "UCF-101"  # holds <Class>/<file>.avi
    template: str = "{label}"  # prompt from the class label; {label} = "apply eye makeup", {name} = "ApplyEyeMakeup"
    samples_per_class: int | None = Field(None, ge=1)  # null: one prompt per test video; N: N per class


class WebVidConfig(_Base):
    kind: Literal["webvid"]
    name: str = "webvid"
    root_env: str = "MAGICVIDEO_WEBVID_ROOT"
    csv: str = "results_10M_val.csv"  # columns videoid,name[,path][,page_dir][,fps]
    video_dir: str = "videos"  # used when the CSV has no `path`: <video_dir>/[<page_dir>/]<videoid>.mp4
    num_clips: int | None = Field(1000, ge=1)  # random subset of rows (paper 4.1: 1,000); null = all
    subset_seed: int = 0  # which rows


class DrawBenchConfig(_Base):
    kind: Literal["drawbench"]
    name: str = "drawbench"
    root_env: str = "MAGICVIDEO_DRAWBENCH_ROOT"
    prompts: str = "drawbench.csv"  # CSV with a `Prompts` (and `Category`) column, or text, one per line


CONFIGS: dict[str, type[_Base]] = {
    "msrvtt": MSRVTTConfig,
    "shapes": ShapesConfig,
    "ucf101": UCF101Config,
    "webvid": WebVidConfig,
    "drawbench": DrawBenchConfig,
}


def load_benchmark_config(name_or_path: str | Path) -> _Base:
    """Validate ``configs/benchmarks/<name>.yaml`` (or a path) against the model of its ``kind``."""
    path = resolve_config_path(name_or_path, "benchmarks")
    try:
        data = yaml.safe_load(read_text(path)) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: <root>: must be a mapping")
    kind = data.get("kind")
    if kind not in CONFIGS:
        raise ConfigError(f"{path}: kind: must be one of {', '.join(CONFIGS)} (got {kind!r})")
    return validate_config(data, CONFIGS[kind], source=str(path))


# ----------------------------------------------------------------------------------------------
# Benchmarks


class Benchmark:
    """A benchmark: prompts (:meth:`manifest`), reference videos, reference clips.

    Subclasses implement :meth:`manifest` and :meth:`reference_videos`; :attr:`has_references` is
    False for prompt-only benchmarks (DrawBench).
    """

    source = ""  # where the dataset usually comes from, for error messages
    has_references = True

    def __init__(self, config: _Base, root: str | Path | None = None, config_path: str = ""):
        self.config = config
        self.name = config.name
        self.protocol = config.protocol
        self.config_path = config_path
        if root is not None:
            given, self._root_origin = root, "the root argument"
        elif os.environ.get(config.root_env):
            given, self._root_origin = os.environ[config.root_env], f"${config.root_env}"
        else:
            given, self._root_origin = config.root, f"key `root` of {config_path or 'the config'}"
        self.root = Path(given).expanduser().resolve() if given else None

    # -- to implement
    def manifest(self) -> list[PromptRecord]:
        raise NotImplementedError

    def reference_videos(self) -> tuple[list[VideoRef], list[Skip]]:
        """Reference videos whose files exist, and those skipped (missing) with the reason."""
        return [], []

    # -- shared
    def path(self, rel: str, what: str, key: str) -> Path:
        """``root / rel``, or FileNotFoundError naming the file, the config key, the dataset's
        usual source and the ways to point at it."""
        if self.root is None:
            raise FileNotFoundError(f"benchmark {self.name!r} has no dataset folder: {self._how_to_point()}")
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder of benchmark {self.name!r} not found: {self.root} "
                                    f"(from {self._root_origin}); {self._how_to_point()}")
        p = self.root / rel
        if not p.exists():
            raise FileNotFoundError(
                f"{what} not found: {p} (key `{key}` = {rel!r}, under root {self.root}; {self.source}); "
                f"{self._how_to_point()}"
            )
        return p

    def _how_to_point(self) -> str:
        where = self.config_path or f"configs/benchmarks/{self.name}.yaml"
        return f"set --root, the `root` key of {where}, or ${self.config.root_env}"

    def _limit(self, records: list[PromptRecord]) -> list[PromptRecord]:
        return records[: self.config.limit] if self.config.limit else records

    def scan(self, probe: bool = True, progress: Callable[[int, int], None] | None = None) -> Scan:
        """Prompts and reference videos; with ``probe`` every video is opened (:meth:`probe`)."""
        prompts = self.manifest()
        refs, skipped = self.reference_videos()
        if probe:
            refs = self.probe(refs, skipped, progress)
        return Scan(self.name, prompts, refs, skipped)

    def probe(
        self, refs: list[VideoRef], skipped: list[Skip], progress: Callable[[int, int], None] | None = None
    ) -> list[VideoRef]:
        """The videos decord can open that have the frames one protocol clip needs; the others
        are appended to ``skipped`` with the reason. ``progress(done, total)`` is called per video."""
        good = []
        for i, ref in enumerate(refs):
            try:
                n, native = probe_video(ref.path)
                need = self.protocol.frames_needed(ref.fps or native)
                if n < need:
                    raise VideoReadError(ref.path, f"too short ({n} frames, need {need})")
                good.append(ref)
            except VideoReadError as exc:
                skipped.append(Skip(ref.video_id, skip_reason(exc.reason), ref.path, exc.reason))
            if progress:
                progress(i + 1, len(refs))
        return good

    def reference_clips(
        self, limit: int | None = None, on_error: OnError = "skip", skipped: list[Skip] | None = None,
        protocol: Protocol | None = None,
    ) -> Iterator[Clip]:
        """Decoded reference clips (:class:`~magicvideo.data.video.Clip`, uint8) cut by the protocol
        (the benchmark's, or ``protocol``: a later cascade stage's, :mod:`magicvideo.data.stage_references`).

        Bad videos are appended to ``skipped`` (missing files too) and left out, or raise with
        ``on_error="raise"``. ``limit`` stops after that many good clips.
        """
        refs, missing = self.reference_videos()
        if skipped is not None:
            skipped.extend(missing)
        if missing and on_error == "raise":
            raise VideoReadError(missing[0].path or missing[0].item, missing[0].detail or missing[0].reason)
        p = protocol or self.protocol
        sink = skipped if skipped is not None else []
        count = 0
        for ref in refs:
            if limit is not None and count >= limit:
                return
            clip = read_clip_safe(
                read_eval_clip, ref.path, num=p.num_frames, start=p.start, size=p.size, resize=p.resize,
                seed=p.seed, key=ref.video_id, fps=p.fps, source_fps=ref.fps, skipped=sink, item=ref.video_id,
                on_error=on_error,
            )  # fmt: skip
            if clip is not None:
                clip.meta["label"] = ref.label
                count += 1
                yield clip


def _find_video(dirs: list[Path], stem: str) -> Path | None:
    for d in dirs:
        for ext in VIDEO_EXTENSIONS:
            p = d / f"{stem}{ext}"
            if p.is_file():
                return p
    return None


class MSRVTTBenchmark(Benchmark):
    """MSR-VTT test split from the official annotation JSON (``info``, ``videos``, ``sentences``)."""

    source = "MSR-VTT 10K release: test_videodatainfo.json and TestVideo/ (or videos/all/)"
    config: MSRVTTConfig

    def _annotations(self) -> tuple[list[dict], dict[str, list[dict]]]:
        if getattr(self, "_ann", None) is None:
            import json

            path = self.path(self.config.annotations, "MSR-VTT annotation file", "annotations")
            text = read_text(path)  # a non-UTF-8 file fails naming it and the byte offset
            try:
                data = json.loads(text)
                videos = [v for v in data["videos"] if v.get("split", self.config.split) == self.config.split]
                sentences: dict[str, list[dict]] = {}
                for s in data["sentences"]:
                    sentences.setdefault(s["video_id"], []).append(s)
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}: not an MSR-VTT annotation file ({type(exc).__name__}: {exc})") from None
            videos.sort(key=lambda v: (int(v["id"]) if "id" in v else 0, v["video_id"]))
            for caps in sentences.values():
                caps.sort(key=lambda s: s.get("sen_id", 0))
            self._ann = videos, sentences
        return self._ann

    def manifest(self) -> list[PromptRecord]:
        videos, sentences = self._annotations()
        found = self._video_paths()
        out = []
        for v in videos:
            vid = v["video_id"]
            caps = sentences.get(vid, [])
            if not caps:
                continue
            if self.config.captions == "one_per_video":
                caps = [caps[int(stable_rng(self.config.caption_seed, vid).integers(len(caps)))]]
            for s in caps:
                out.append(
                    PromptRecord(
                        prompt_id=f"{self.name}/{vid}/{s.get('sen_id', caps.index(s))}",
                        prompt=s["caption"].strip(),
                        benchmark=self.name,
                        video_id=vid,
                        video=str(found[vid]) if vid in found else None,
                        attributes=v.get("attributes"),
                        fps=(v.get("params") or {}).get("fps"),
                    )
                )
        return self._limit(out)

    def _video_paths(self) -> dict[str, Path]:
        videos, _ = self._annotations()
        dirs = [self.root / d for d in self.config.video_dirs if (self.root / d).is_dir()]
        out = {}
        for v in videos:
            p = _find_video(dirs, v["video_id"])
            if p is not None:
                out[v["video_id"]] = p
        return out

    def reference_videos(self) -> tuple[list[VideoRef], list[Skip]]:
        videos, sentences = self._annotations()
        if self.config.limit:  # the reference set follows the limited prompt set
            keep = {r.video_id for r in self.manifest()}
            videos = [v for v in videos if v["video_id"] in keep]
        found = self._video_paths()
        if not found and videos:
            dirs = ", ".join(str(self.root / d) for d in self.config.video_dirs)
            raise FileNotFoundError(f"no MSR-VTT videos found in {dirs} ({self.source}); {self._how_to_point()}")
        refs, skipped = [], []
        for v in videos:
            vid = v["video_id"]
            if vid in found:
                caps = sentences.get(vid) or [{"caption": None}]
                refs.append(VideoRef(vid, str(found[vid]), caps[0]["caption"], (v.get("params") or {}).get("fps")))
            else:
                skipped.append(Skip(vid, "missing file", None, f"no {vid}.* in {', '.join(self.config.video_dirs)}"))
        return refs, skipped


class ShapesBenchmark(MSRVTTBenchmark):
    """The synthetic benchmark written by ``magicvideo data shapes`` (MSR-VTT layout + train CSV)."""

    source = "generated by `magicvideo data shapes OUT_DIR`"
    config: ShapesConfig

    def train_csv(self) -> Path:
        return self.path(self.config.train_csv, "shapes training CSV", "train_csv")


_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def class_label(name: str) -> str:
    """UCF-101 class name to words: 'ApplyEyeMakeup' -> 'apply eye makeup', 'YoYo' -> 'yo yo'."""
    return " ".join(w.lower() for w in _CAMEL.findall(name))


class UCF101Benchmark(Benchmark):
    """UCF-101: classInd.txt, a test list (split 1 by default) and the videos."""

    source = "UCF-101: UCF101.rar (videos, UCF-101/<Class>/) and UCF101TrainTestSplits-RecognitionTask.zip (ucfTrainTestlist/)"
    config: UCF101Config

    def classes(self) -> list[str]:
        path = self.path(self.config.class_index, "UCF-101 class index", "class_index")
        names = []
        for n, line in enumerate(read_text(path).splitlines(), 1):
            if line.strip():
                parts = line.split()
                if len(parts) != 2 or not parts[0].isdigit():
                    raise ValueError(f"{path}:{n}: expected '<index> <ClassName>', got {line!r}")
                names.append(parts[1])
        return names

    def test_entries(self) -> list[tuple[str, str]]:
        """(class name as in classInd, relative video path) per test-list line."""
        path = self.path(self.config.test_list, "UCF-101 test list", "test_list")
        by_lower = {c.lower(): c for c in self.classes()}
        out = []
        for n, line in enumerate(read_text(path).splitlines(), 1):
            rel = line.strip().split(" ")[0]
            if not rel:
                continue
            cls = by_lower.get(rel.split("/")[0].lower())
            if cls is None:
                raise ValueError(f"{path}:{n}: class of {rel!r} is not in {self.config.class_index}")
            out.append((cls, rel))
        return out

    def prompt(self, cls: str) -> str:
        return self.config.template.format(label=class_label(cls), name=cls)

    def manifest(self) -> list[PromptRecord]:
        out = []
        if self.config.samples_per_class is None:
            found = self._video_paths()
            for cls, rel in self.test_entries():
                vid = Path(rel).stem
                p = found.get(rel.lower())
                out.append(
                    PromptRecord(
                        prompt_id=f"{self.name}/{vid}", prompt=self.prompt(cls), benchmark=self.name,
                        video_id=vid, video=str(p) if p else None, label=cls,
                    )  # fmt: skip
                )
        else:
            for cls in self.classes():
                for k in range(self.config.samples_per_class):
                    out.append(
                        PromptRecord(prompt_id=f"{self.name}/{cls}/{k:04d}", prompt=self.prompt(cls), benchmark=self.name, label=cls)
                    )
        return self._limit(out)

    def _video_paths(self) -> dict[str, Path]:
        """Relative path (lower case) -> file; case-insensitive, as UCF-101's names vary in case."""
        vdir = self.path(self.config.video_dir, "UCF-101 video folder", "video_dir")
        out = {}
        for dirpath, _, files in os.walk(vdir):
            for f in files:
                p = Path(dirpath) / f
                out[p.relative_to(vdir).as_posix().lower()] = p
        return out

    def reference_videos(self) -> tuple[list[VideoRef], list[Skip]]:
        found = self._video_paths()
        entries = self.test_entries()
        if self.config.limit and self.config.samples_per_class is None:
            entries = entries[: self.config.limit]
        refs, skipped = [], []
        for cls, rel in entries:
            p = found.get(rel.lower())
            if p is None:
                skipped.append(Skip(Path(rel).stem, "missing file", None, f"{rel} not in {self.config.video_dir}"))
            else:
                refs.append(VideoRef(Path(rel).stem, str(p), cls))
        return refs, skipped


class WebVidBenchmark(Benchmark):
    """WebVid-style CSV: ``videoid`` and ``name`` (the caption) required; the video path is the
    ``path`` column (relative to root) if present, else ``<video_dir>/<page_dir>/<videoid>.mp4``
    if there is a ``page_dir`` column (WebVid's own CSVs), else ``<video_dir>/<videoid>.mp4``; an
    optional ``fps`` column overrides the files' metadata."""

    source = "a WebVid-style CSV (videoid,name[,path|page_dir][,fps]) and its videos"
    config: WebVidConfig

    def rows(self) -> list[dict]:
        return read_video_csv(self.path(self.config.csv, "WebVid CSV", "csv"), self.root, self.config.video_dir)

    def _subset(self) -> list[dict]:
        rows = self.rows()
        n = self.config.num_clips
        if n is not None and n < len(rows):
            order = stable_rng(self.config.subset_seed, "webvid-subset").permutation(len(rows))
            rows = [rows[i] for i in sorted(order[:n])]
        return rows[: self.config.limit] if self.config.limit else rows

    def manifest(self) -> list[PromptRecord]:
        return [
            PromptRecord(
                prompt_id=f"{self.name}/{r['videoid']}", prompt=r["name"], benchmark=self.name, video_id=r["videoid"],
                video=str(r["path"]) if r["path"].is_file() else None, fps=r["fps"],
            )  # fmt: skip
            for r in self._subset()
        ]

    def reference_videos(self) -> tuple[list[VideoRef], list[Skip]]:
        refs, skipped = [], []
        for r in self._subset():
            if r["path"].is_file():
                refs.append(VideoRef(r["videoid"], str(r["path"]), r["name"], r["fps"]))
            else:
                skipped.append(Skip(r["videoid"], "missing file", str(r["path"])))
        return refs, skipped


def read_video_csv(path: Path, root: Path, video_dir: str = "videos") -> list[dict]:
    """Rows of a WebVid-style CSV as dicts with ``videoid``, ``name``, ``path`` (Path), ``fps``."""
    with io.StringIO(read_text(path), newline="") as f:  # a non-UTF-8 file: one error naming it and the offset
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        missing = {"videoid", "name"} - cols
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))} (have {', '.join(sorted(cols))})")
        rows = []
        for r in reader:
            vid = r["videoid"].strip()
            if r.get("path"):
                p = root / r["path"]
            elif r.get("page_dir"):
                p = root / video_dir / r["page_dir"] / f"{vid}.mp4"
            else:
                p = root / video_dir / f"{vid}.mp4"
            fps = float(r["fps"]) if r.get("fps") else None
            rows.append({**r, "videoid": vid, "name": r["name"].strip(), "path": p, "fps": fps})
    return rows


class DrawBenchBenchmark(Benchmark):
    """DrawBench prompts (Saharia et al. 2022): the CSV of the release (``Prompts``, ``Category``
    columns) or a text file with one prompt per line (``#`` comments and blank lines ignored)."""

    source = "DrawBench prompts (the Imagen paper's CSV, columns Prompts,Category, or a text file)"
    has_references = False
    config: DrawBenchConfig

    def manifest(self) -> list[PromptRecord]:
        path = self.path(self.config.prompts, "DrawBench prompts file", "prompts")
        items: list[tuple[str, str | None]] = []
        if path.suffix.lower() == ".csv":
            with io.StringIO(read_text(path), newline="") as f:
                reader = csv.DictReader(f)
                cols = {c.lower(): c for c in reader.fieldnames or []}
                col = cols.get("prompts") or cols.get("prompt")
                if col is None:
                    raise ValueError(f"{path}: no 'Prompts' column (have {', '.join(cols.values())})")
                items = [(r[col].strip(), (r.get(cols.get("category", "")) or None)) for r in reader if r[col].strip()]
        else:
            lines = (ln.strip() for ln in read_text(path).splitlines())
            items = [(ln, None) for ln in lines if ln and not ln.startswith("#")]
        out = [
            PromptRecord(prompt_id=f"{self.name}/{i:03d}", prompt=p, benchmark=self.name, category=c)
            for i, (p, c) in enumerate(items)
        ]
        return self._limit(out)


BENCHMARKS: dict[str, type[Benchmark]] = {
    "msrvtt": MSRVTTBenchmark,
    "shapes": ShapesBenchmark,
    "ucf101": UCF101Benchmark,
    "webvid": WebVidBenchmark,
    "drawbench": DrawBenchBenchmark,
}


def load_benchmark(name_or_path: str | Path, root: str | Path | None = None) -> Benchmark:
    """The benchmark named ``configs/benchmarks/<name>.yaml`` (or a YAML path), on ``root``."""
    config = load_benchmark_config(name_or_path)
    path = str(resolve_config_path(name_or_path, "benchmarks"))
    return BENCHMARKS[config.kind](config, root=root, config_path=path)  # type: ignore[attr-defined]


def list_benchmarks() -> list[str]:
    from magicvideo.configs import CONFIG_ROOT

    return sorted(p.stem for p in (CONFIG_ROOT / "benchmarks").glob("*.yaml"))
