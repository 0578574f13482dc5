"""Benchmark loaders end to end on small MSR-VTT-, UCF-101-, WebVid- and DrawBench-layout folders
written from the shapes generator, including a corrupt file, a too-short video and a missing one."""

from __future__ import annotations

import argparse
import json
import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from magicvideo.configs import ConfigError
from magicvideo.data import (
    PromptRecord,
    ShapesSpec,
    VideoReadError,
    class_label,
    load_benchmark,
    read_manifest,
    render,
    sample_clip,
    write_manifest,
    write_shapes,
)
from magicvideo.video_io import write_mp4

SPEC = ShapesSpec(train=5, test=6, size=32, seed=11, fps=[8, 12], durations=[2])
PROTOCOL = "protocol: {num_frames: 16, size: 24, resize: short_side_crop, start: centre}\n"


def _break(folder, corrupt, short):
    """Turn one video into garbage and another into a 10-frame clip."""
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video" * 100)
    frames = render(sample_clip(SPEC, "test", 0), 32)[:10]
    write_mp4(short, frames, fps=8)


@pytest.fixture(scope="module")
def data_shapes_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    write_shapes(out, SPEC, workers=0)
    return out


@pytest.fixture(scope="module")
def data_msrvtt_dir(data_shapes_dir, tmp_path_factory):
    """MSR-VTT layout (videos in videos/all/): 6 annotated videos; 7012 corrupt, 7013 too short,
    7015 missing."""
    root = tmp_path_factory.mktemp("msrvtt")
    shutil.copy(data_shapes_dir / "test_videodatainfo.json", root)
    (root / "videos" / "all").mkdir(parents=True)
    for p in (data_shapes_dir / "TestVideo").glob("*.mp4"):
        if p.stem != "video7015":
            shutil.copy(p, root / "videos" / "all" / p.name)
    _break(root, root / "videos/all/video7012.mp4", root / "videos/all/video7013.mp4")
    (root / "msrvtt.yaml").write_text(f"kind: msrvtt\nname: msrvtt\nroot: {root}\n" + PROTOCOL)
    return root


def test_msrvtt_manifest_one_caption_per_video(data_msrvtt_dir):
    bench = load_benchmark(data_msrvtt_dir / "msrvtt.yaml")
    ann = json.loads((data_msrvtt_dir / "test_videodatainfo.json").read_text())
    prompts = bench.manifest()
    assert [p.video_id for p in prompts] == [f"video{7010 + i}" for i in range(6)]
    for p in prompts:
        sen_id = int(p.prompt_id.rsplit("/", 1)[1])
        (s,) = [s for s in ann["sentences"] if s["sen_id"] == sen_id]
        assert s["video_id"] == p.video_id and s["caption"] == p.prompt
        assert p.attributes and p.attributes["color"] in p.prompt
    assert prompts[0].video.endswith("videos/all/video7010.mp4") and prompts[5].video is None
    # the choice is fixed by the seed, and another seed picks other captions
    assert [p.prompt_id for p in load_benchmark(data_msrvtt_dir / "msrvtt.yaml").manifest()] == [
        p.prompt_id for p in prompts
    ]
    bench.config.caption_seed = 1
    assert [p.prompt_id for p in bench.manifest()] != [p.prompt_id for p in prompts]
    bench.config.captions = "all"
    assert len(bench.manifest()) == 24


def test_msrvtt_reference_clips_skip_bad_videos(data_msrvtt_dir):
    bench = load_benchmark(data_msrvtt_dir / "msrvtt.yaml")
    scan = bench.scan(probe=True)
    assert [r.video_id for r in scan.references] == ["video7010", "video7011", "video7014"]
    assert {s.item: s.reason for s in scan.skipped} == {
        "video7012": "unreadable",
        "video7013": "too short",
        "video7015": "missing file",
    }
    assert scan.skip_counts() == {"unreadable": 1, "too short": 1, "missing file": 1}

    skipped = []
    clips = list(bench.reference_clips(skipped=skipped))
    assert [c.video_id for c in clips] == ["video7010", "video7011", "video7014"]
    assert Counter(s.reason for s in skipped) == {"unreadable": 1, "too short": 1, "missing file": 1}
    for c in clips:
        n = sample_clip(SPEC, "test", int(c.video_id[5:]) - 7010).num_frames
        assert c.frames.shape == (16, 24, 24, 3) and c.frames.dtype == np.uint8
        assert c.indices.tolist() == list(range((n - 16) // 2, (n - 16) // 2 + 16))
    assert len(list(bench.reference_clips(limit=2))) == 2
    with pytest.raises(VideoReadError):
        list(bench.reference_clips(on_error="raise"))


def test_shapes_benchmark_reads_the_generated_folder(data_shapes_dir, tmp_path):
    bench = load_benchmark("shapes", root=data_shapes_dir)
    scan = bench.scan()
    assert len(scan.prompts) == 6 and len(scan.references) == 6 and not scan.skipped
    assert all(p.fps in (8.0, 12.0) and p.video for p in scan.prompts)
    clips = list(bench.reference_clips())
    assert [c.frames.shape for c in clips] == [(16, 64, 64, 3)] * 6  # protocol size 64 (shapes.yaml)
    assert bench.train_csv().name == "train.csv"
    out = write_manifest(tmp_path / "m.jsonl", scan.prompts)
    assert read_manifest(out) == scan.prompts


def test_root_from_environment_and_clear_errors(data_shapes_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MAGICVIDEO_SHAPES_ROOT", str(data_shapes_dir))
    assert load_benchmark("shapes").root == data_shapes_dir.resolve()
    monkeypatch.delenv("MAGICVIDEO_SHAPES_ROOT")
    with pytest.raises(FileNotFoundError, match=r"test_videodatainfo\.json.*--root.*MAGICVIDEO_MSRVTT_ROOT"):
        load_benchmark("msrvtt", root=tmp_path).manifest()
    with pytest.raises(FileNotFoundError, match="no dataset folder"):
        load_benchmark("msrvtt").manifest()
    shutil.copy(data_shapes_dir / "test_videodatainfo.json", tmp_path)
    with pytest.raises(FileNotFoundError, match="no MSR-VTT videos found"):
        load_benchmark("msrvtt", root=tmp_path).reference_videos()


def test_msrvtt_official_sizes(tmp_path):
    """The official split: 2,990 test videos x 20 captions -> 2,990 prompts (or 59,800); a
    train_val-style file with other splits keeps only `split: test`."""
    videos = [{"video_id": f"video{i}", "id": i, "split": "test" if i >= 7010 else "train", "category": 0,
               "url": "", "start time": 0.0, "end time": 10.0} for i in range(6990, 10000)]  # fmt: skip
    sentences = [{"caption": f"caption {k} of video {i}", "video_id": f"video{i}", "sen_id": 20 * i + k}
                 for i in range(6990, 10000) for k in range(20)]  # fmt: skip
    (tmp_path / "test_videodatainfo.json").write_text(json.dumps({"info": {}, "videos": videos, "sentences": sentences}))
    bench = load_benchmark("msrvtt", root=tmp_path)
    prompts = bench.manifest()
    assert len(prompts) == 2990 and prompts[0].video_id == "video7010" and prompts[-1].video_id == "video9999"
    assert len({p.prompt_id for p in prompts}) == 2990
    assert len({int(p.prompt_id.rsplit("/", 1)[1]) % 20 for p in prompts}) == 20  # not always the first caption
    bench.config.captions = "all"
    assert len(bench.manifest()) == 59800
    with pytest.raises(FileNotFoundError, match="no MSR-VTT videos found"):
        bench.reference_videos()


def test_ucf101_shipped_config_gives_10100_prompts(tmp_path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{i + 1} Class{chr(65 + i // 26)}{chr(65 + i % 26)}x\n" for i in range(101)))
    prompts = load_benchmark("ucf101", root=tmp_path).manifest()
    assert len(prompts) == 10100 and len({p.prompt_id for p in prompts}) == 10100


def test_wrong_paths_name_the_key(data_shapes_dir, tmp_path):
    cfg = tmp_path / "b.yaml"
    cfg.write_text(f"kind: shapes\nroot: {data_shapes_dir}\nannotations: nope.json\n")
    with pytest.raises(FileNotFoundError, match=r"key `annotations` = 'nope.json'"):
        load_benchmark(cfg).manifest()
    cfg.write_text(f"kind: shapes\nroot: {tmp_path / 'absent'}\n")
    with pytest.raises(FileNotFoundError, match=r"dataset folder .* not found: .*absent \(from key `root` of"):
        load_benchmark(cfg).manifest()


@pytest.mark.parametrize(
    "yaml_text, where",
    [
        ("kind: msrvtt\nprotocol: {sise: 3}\n", "protocol.sise"),
        ("kind: msrvtt\nprotocol: {size: -1}\n", "protocol.size"),
        ("kind: ucf101\nsamples_per_class: zero\n", "samples_per_class"),
        ("kind: shapes\ngenerate: {size: 1024}\n", "generate.size"),
        ("kind: imagenet\n", "kind"),
    ],
)
def test_config_errors_name_the_key(tmp_path, yaml_text, where):
    path = tmp_path / "b.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=rf"b\.yaml: {where}:"):
        load_benchmark(path)


def test_shipped_configs_load():
    from magicvideo.data import list_benchmarks

    names = list_benchmarks()
    assert {"msrvtt", "ucf101", "webvid_ablation", "drawbench", "shapes"} <= set(names)
    for n in names:
        assert load_benchmark(n).name == n


# ----------------------------------------------------------------------------------------------
# UCF-101


@pytest.fixture(scope="module")
def data_ucf101_dir(data_shapes_dir, tmp_path_factory):
    """UCF-101 layout, 3 classes, 6 test videos (as .avi names); one corrupt, one too short, one
    listed with different letter case than on disk (as UCF-101's HandstandPushups is)."""
    root = tmp_path_factory.mktemp("ucf101")
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n3 YoYo\n")
    names = [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi",
        "HandstandPushups/v_HandStandPushups_g01_c01.avi",
        "HandstandPushups/v_HandStandPushups_g02_c01.avi",
        "YoYo/v_YoYo_g01_c01.avi",
        "YoYo/v_YoYo_g01_c02.avi",
    ]
    (lists / "testlist01.txt").write_text("\n".join(names) + "\n")
    src = sorted((data_shapes_dir / "TestVideo").glob("*.mp4"))
    for name, s in zip(names, src):
        dest = root / "UCF-101" / name.replace("HandStand", "Handstand")  # case differs on disk
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(s, dest)
    _break(root, root / "UCF-101" / names[1], root / "UCF-101/YoYo/v_YoYo_g01_c02.avi")
    (root / "ucf.yaml").write_text(f"kind: ucf101\nroot: {root}\nsamples_per_class: null\n" + PROTOCOL)
    return root


def test_class_labels():
    assert class_label("ApplyEyeMakeup") == "apply eye makeup"
    assert class_label("YoYo") == "yo yo"
    assert class_label("HandstandPushups") == "handstand pushups"
    assert class_label("PlayingDaf") == "playing daf"


def test_ucf101_one_prompt_per_test_video(data_ucf101_dir):
    bench = load_benchmark(data_ucf101_dir / "ucf.yaml")
    prompts = bench.manifest()
    assert [p.prompt for p in prompts] == ["apply eye makeup"] * 2 + ["handstand pushups"] * 2 + ["yo yo"] * 2
    assert [p.label for p in prompts][2] == "HandstandPushups"
    assert all(p.video for p in prompts)  # case-insensitive match found the HandStand files
    assert prompts[0].prompt_id == "ucf101/v_ApplyEyeMakeup_g01_c01"
    scan = bench.scan()
    assert len(scan.references) == 4
    assert {s.item: s.reason for s in scan.skipped} == {
        "v_ApplyEyeMakeup_g01_c02": "unreadable",
        "v_YoYo_g01_c02": "too short",
    }
    clips = list(bench.reference_clips())
    assert len(clips) == 4 and clips[0].meta["label"] == "ApplyEyeMakeup"


def test_ucf101_samples_per_class_and_template(data_ucf101_dir):
    bench = load_benchmark(data_ucf101_dir / "ucf.yaml")
    bench.config.samples_per_class = 3
    bench.config.template = "a person doing {label} ({name})"
    prompts = bench.manifest()
    assert len(prompts) == 9 and len({p.prompt_id for p in prompts}) == 9
    assert prompts[3].prompt == "a person doing handstand pushups (HandstandPushups)"
    assert all(p.video is None for p in prompts)
    assert len(bench.scan().references) == 4  # references are still every readable test video


# ----------------------------------------------------------------------------------------------
# WebVid-style CSV, DrawBench


def test_webvid_csv_subset_and_training_dataset(data_shapes_dir, tmp_path):
    from magicvideo.data import VideoTextDataset

    cfg = tmp_path / "wv.yaml"
    cfg.write_text(f"kind: webvid\nname: wv\nroot: {data_shapes_dir}\ncsv: train.csv\nnum_clips: 3\n" + PROTOCOL)
    bench = load_benchmark(cfg)
    prompts = bench.manifest()
    assert len(prompts) == 3 and all(p.video and p.fps for p in prompts)
    assert [p.prompt_id for p in prompts] == [p.prompt_id for p in load_benchmark(cfg).manifest()]
    assert len(list(bench.reference_clips())) == 3

    ds = VideoTextDataset(data_shapes_dir / "train.csv", span=(16, 24), size=16)
    assert len(ds) == 5
    item = ds[0]
    assert item["video"].shape == (16, 3, 16, 16) and -1.0 <= float(item["video"].min()) <= float(item["video"].max()) <= 1.0
    assert item["nu"] == pytest.approx(16 / item["span"] * item["fps"])
    assert ds[0]["indices"].tolist() == item["indices"].tolist()  # same (seed, epoch, index)
    assert item["caption"] == sample_clip(SPEC, "train", 0).caption

    cached = VideoTextDataset(data_shapes_dir / "train.csv", span=(16, 24), size=16, cache=True, cache_workers=2)
    for epoch in (0, 3):  # the same items, decoded once up front instead of per item
        ds.set_epoch(epoch), cached.set_epoch(epoch)
        for i in range(len(ds)):
            a, b = ds[i], cached[i]
            assert a["indices"].tolist() == b["indices"].tolist() and a["nu"] == b["nu"]
            assert torch.equal(a["video"], b["video"])


def test_webvid_page_dir_layout_and_bad_rows(data_shapes_dir, tmp_path):
    from magicvideo.data import VideoTextDataset

    (tmp_path / "videos" / "0001").mkdir(parents=True)
    shutil.copy(data_shapes_dir / "train" / "000000.mp4", tmp_path / "videos/0001/123.mp4")
    (tmp_path / "videos/0001/456.mp4").write_bytes(b"junk")
    (tmp_path / "val.csv").write_text(
        "videoid,contentUrl,duration,page_dir,name\n456,u,PT00H00M02S,0001,a broken one\n123,u,PT00H00M02S,0001,a shape\n"
    )
    ds = VideoTextDataset(tmp_path / "val.csv", span=16)
    assert ds[0]["video_id"] == "123" and [s.item for s in ds.skipped] == ["456"]
    with pytest.raises(VideoReadError, match="unreadable"):
        VideoTextDataset(tmp_path / "val.csv", span=16, on_error="raise")[0]
    cached = VideoTextDataset(tmp_path / "val.csv", span=16, cache=True, cache_workers=2)
    assert [s.item for s in cached.skipped] == ["456"]  # found while the cache is built
    assert cached[0]["video_id"] == "123" and torch.equal(cached[0]["video"], ds[0]["video"])
    (tmp_path / "bad.csv").write_text("id,caption\n1,x\n")
    with pytest.raises(ValueError, match="missing column"):
        VideoTextDataset(tmp_path / "bad.csv")


def test_drawbench_csv_and_text(tmp_path):
    (tmp_path / "drawbench.csv").write_text(
        'Prompts,Category\n"A red colored car.",Colors\n"A stop sign on top of a tree, with a cat.",Positional\n'
    )
    (tmp_path / "prompts.txt").write_text("# DrawBench\nA red colored car.\n\nA blue bird.\n")
    bench = load_benchmark("drawbench", root=tmp_path)
    prompts = bench.manifest()
    assert [(p.prompt_id, p.prompt, p.category) for p in prompts] == [
        ("drawbench/000", "A red colored car.", "Colors"),
        ("drawbench/001", "A stop sign on top of a tree, with a cat.", "Positional"),
    ]
    assert not bench.has_references and bench.scan().references == []
    bench.config.prompts = "prompts.txt"
    assert [p.prompt for p in bench.manifest()] == ["A red colored car.", "A blue bird."]


# ----------------------------------------------------------------------------------------------
# CLI


def _run(argv):
    from magicvideo.data.cli import add_data

    parser = argparse.ArgumentParser(prog="magicvideo")
    add_data(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_shapes_and_manifest(tmp_path, data_msrvtt_dir, capsys):
    out = tmp_path / "shapes"
    assert _run(["data", "shapes", str(out), "--train", "3", "--test", "2", "--size", "32", "--seed", "5", "--workers", "0"]) == 0
    assert len(list((out / "train").glob("*.mp4"))) == 3 and len(list((out / "TestVideo").glob("*.mp4"))) == 2
    assert json.loads((out / "shapes.json").read_text())["spec"]["size"] == 32

    manifest = tmp_path / "m.jsonl"
    cfg = str(data_msrvtt_dir / "msrvtt.yaml")
    assert _run(["data", "manifest", cfg, "--out", str(manifest)]) == 0
    text = capsys.readouterr().out
    assert "prompts" in text and "too short" in text and "unreadable" in text and "missing file" in text
    records = read_manifest(manifest)
    assert len(records) == 6 and isinstance(records[0], PromptRecord)
    assert _run(["data", "manifest", cfg, "--out", str(manifest), "--limit", "2", "--no-probe"]) == 0
    assert [r.video_id for r in read_manifest(manifest)] == ["video7010", "video7011"]
    with pytest.raises(FileNotFoundError, match="MAGICVIDEO_UCF101_ROOT"):
        _run(["data", "manifest", "ucf101", "--root", str(tmp_path)])
