"""Issue 19, points 1, 3 and 5: mistakes are found before anything starts, in one line; no silent
wrong behaviour (invalid numbers, non-UTF-8 input, long prompts); help that says the defaults."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from magicvideo.checkpoints import shapes_checkpoint
from magicvideo.validate import InputError, check_pipeline_folder, read_text

REPO = Path(__file__).resolve().parents[1]
MAGICVIDEO = str(Path(sys.executable).parent / "magicvideo")


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    from magicvideo.data import ShapesSpec, write_shapes

    root = tmp_path_factory.mktemp("shapes")
    write_shapes(root, ShapesSpec(train=0, test=2, durations=[2.0], fps=[8.0]), workers=0)
    return root


@pytest.fixture(scope="module")
def bad_checkpoint(tmp_path_factory):
    """The committed shapes pipeline with its U-Net weights cut to half (a truncated copy)."""
    bad = tmp_path_factory.mktemp("ckpt") / "bad"
    shutil.copytree(shapes_checkpoint("pipeline"), bad)
    weights = bad / "unet" / "diffusion_pytorch_model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    return bad


def _cli(*args, cwd=REPO, env=None):
    t0 = time.perf_counter()
    r = subprocess.run([MAGICVIDEO, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                       env={**os.environ, **(env or {})})
    return r, time.perf_counter() - t0


def _one_error_line(r) -> str:
    out = (r.stdout + r.stderr).strip().splitlines()
    assert "Traceback" not in r.stdout + r.stderr
    assert len(out) <= 8, out
    return out[-1]


# ------------------------------------------------------------------ the acceptance checks (subprocess)
def test_eval_with_a_truncated_checkpoint_fails_in_one_line_before_anything_starts(bad_checkpoint, shapes_root,
                                                                                   tmp_path):
    r, seconds = _cli("eval", "shapes", "--checkpoint", str(bad_checkpoint), "--limit", "2", "--root",
                      str(shapes_root), "--output-root", str(tmp_path / "out"),
                      env={"MAGICVIDEO_LOG_DIR": str(tmp_path / "logs")})
    line = _one_error_line(r)
    assert r.returncode == 2 and seconds < 10, (r.returncode, seconds)
    assert "diffusion_pytorch_model.safetensors" in line and "truncated" in line
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_eval_of_an_unknown_benchmark_names_it_and_lists_the_known_ones(tmp_path):
    r, seconds = _cli("eval", "nosuchbench", env={"MAGICVIDEO_LOG_DIR": str(tmp_path / "logs")})
    line = _one_error_line(r)
    assert r.returncode == 2 and seconds < 10
    assert "nosuchbench" in line and "shapes" in line and "no checkpoints" not in line


def test_generate_rejects_zero_steps_without_loading_anything():
    r, _ = _cli("generate", "--prompt", "a red circle", "--steps", "0")
    assert r.returncode == 2 and "--steps" in _one_error_line(r)


# --------------------------------------------------------------------- validation before services
def _params(**kw):
    base = dict(benchmark="shapes", checkpoints=None, config=None, samples_per_prompt=None, seed=None, limit=2,
                output_root=None, ray_address=None, overrides={})
    base.update(kw)
    return base


def _fails_fast(params, *match):
    from flows.validate import validate_eval

    t0 = time.perf_counter()
    with pytest.raises(ValueError) as info:
        validate_eval(params)
    seconds = time.perf_counter() - t0
    msg = str(info.value)
    assert "\n" not in msg and seconds < 2.0, (msg, seconds)
    for m in match:
        assert m in msg, msg
    return msg


def test_validate_eval_accepts_a_good_run_quickly(shapes_root):
    from flows.validate import validate_eval

    t0 = time.perf_counter()
    cfg = validate_eval(_params(overrides={"benchmark_root": str(shapes_root)}))
    assert time.perf_counter() - t0 < 2.0
    assert cfg.checkpoints[0].path.endswith("pipeline")


def test_validate_eval_names_each_mistake(shapes_root, bad_checkpoint, tmp_path):
    root = {"benchmark_root": str(shapes_root)}
    _fails_fast(_params(benchmark="nosuchbench"), "nosuchbench", "available")
    _fails_fast(_params(config="nosuchconfig", overrides=root), "nosuchconfig")
    _fails_fast(_params(overrides={"benchmark_root": str(tmp_path / "missing")}), "dataset folder", "missing")
    _fails_fast(_params(checkpoints=[str(bad_checkpoint)], overrides=root), "truncated")
    _fails_fast(_params(checkpoints=[str(tmp_path)], overrides=root), "model_index.json")
    # a drawbench prompt file: empty, and not UTF-8 (the file and the byte offset are named)
    draw = _params(benchmark="drawbench", checkpoints=[str(shapes_checkpoint("pipeline"))],
                   overrides={"benchmark_root": str(tmp_path)})
    (tmp_path / "drawbench.csv").write_text("Prompts,Category\n")
    _fails_fast(draw, "no prompts")
    (tmp_path / "drawbench.csv").write_bytes(b"Prompts,Category\na caf\xe9 at night,Misc\n")
    _fails_fast(draw,
                str(tmp_path / "drawbench.csv"), "byte offset 22")


def test_check_pipeline_folder_finds_missing_parts(tmp_path):
    good = tmp_path / "good"
    shutil.copytree(shapes_checkpoint("pipeline"), good)
    assert set(check_pipeline_folder(good)) == {"unet", "vae", "text_encoder", "interpolation", "image_encoder",
                                                "upsampler", "i2v"}
    (good / "vae" / "config.json").unlink()
    with pytest.raises(InputError, match=r"component vae .*missing config.json"):
        check_pipeline_folder(good)
    shutil.rmtree(good / "vae")
    with pytest.raises(InputError, match=r"component vae .*subfolder missing"):
        check_pipeline_folder(good)
    (good / "model_index.json").write_text("{not json")
    with pytest.raises(InputError, match=r"not valid JSON"):
        check_pipeline_folder(good)


def test_read_text_names_the_file_and_byte_offset(tmp_path):
    p = tmp_path / "prompts.txt"
    p.write_bytes("naïve\n".encode() + b"bad \xff byte\n")
    with pytest.raises(InputError, match=rf"{p}: not UTF-8 text: byte offset 11 \(0xff"):
        read_text(p)
    p.write_bytes(b"\xef\xbb\xbfwith a BOM")
    assert read_text(p) == "with a BOM"


# ------------------------------------------------------------------------- invalid numbers, text
@pytest.mark.parametrize("argv, option", [
    (["generate", "--prompt", "x", "--steps", "0"], "--steps"),
    (["generate", "--prompt", "x", "--steps", "-3"], "--steps"),
    (["generate", "--prompt", "x", "--guidance", "nan"], "--guidance"),
    (["generate", "--prompt", "x", "--guidance", "-1"], "--guidance"),
    (["generate", "--prompt", "x", "--fps", "0"], "--fps"),
    (["eval", "shapes", "--steps", "0"], "--steps"),
    (["eval", "shapes", "--limit", "0"], "--limit"),
    (["eval", "shapes", "--samples-per-prompt", "0"], "--samples-per-prompt"),
    (["eval", "shapes", "--guidance-scale", "inf"], "--guidance-scale"),
    (["flops", "--batch", "0"], "--batch"),
    (["compare", "--replicates", "0"], "--replicates"),
])
def test_invalid_numbers_are_rejected_on_every_command(argv, option, capsys):
    from magicvideo.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and option in err[0], err


def test_a_non_utf8_prompt_argument_names_the_byte_offset(capsys):
    from magicvideo.cli import main

    bad = b"caf\xff".decode("utf-8", "surrogateescape")  # what Python makes of such an argv byte
    with pytest.raises(SystemExit):
        main(["generate", "--prompt", bad])
    assert "not UTF-8 text: byte offset 3 (0xff)" in capsys.readouterr().err


def test_eval_help_shows_defaults_and_the_benchmarks(capsys):
    from magicvideo.cli import main

    for argv in (["eval", "--help"], ["compare", "--help"], ["flops", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
    out = " ".join(capsys.readouterr().out.split())
    assert "available: drawbench, msrvtt, shapes, shapes_scale, ucf101" in out
    assert "(default: 200)" in out  # compare --replicates
    assert "(default: sd15)" in out and "--verbose" in out


# ------------------------------------------------------------------------------ later errors
def test_a_later_error_is_one_line_plus_the_log_with_its_traceback(tmp_path, monkeypatch, capsys):
    from magicvideo import cli, commands

    def broken(args):
        raise RuntimeError("something deep\nwent wrong")

    monkeypatch.setattr(commands, "run_generate", broken)
    monkeypatch.setenv("MAGICVIDEO_LOG_DIR", str(tmp_path))
    handlers = list(logging.getLogger().handlers)
    assert cli.main(["generate", "--prompt", "x"]) == 1
    assert logging.getLogger().handlers == handlers  # main() leaves the process's logging as it found it
    (err,) = capsys.readouterr().err.strip().splitlines()
    (log,) = tmp_path.glob("generate-*.log")
    assert err == f"magicvideo generate: error: RuntimeError: something deep went wrong (traceback in {log})"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "raise RuntimeError" in text


# ------------------------------------------------------------------------------- long prompts
def test_long_prompts_are_counted_and_warned_once(caplog):
    from flows.validate import count_long_prompts

    ckpt = str(shapes_checkpoint("pipeline"))
    prompts = ["a red circle moves left", "word " * 2000, "a blue square", "x " * 100]
    with caplog.at_level(logging.WARNING):
        n = count_long_prompts([ckpt, ckpt], prompts, logging.getLogger("flows.test"))
    assert n == 2
    (rec,) = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert "2 of 4 prompts" in rec.getMessage()
    assert count_long_prompts([ckpt], prompts[:1], logging.getLogger("flows.test")) == 0


def test_commands_found_from_a_source_tree_that_is_not_installed(monkeypatch):
    """`python -m magicvideo.cli` with the repository on PYTHONPATH and no installed metadata (a GPU
    machine given the working tree): the commands come from pyproject.toml's entry-point table."""
    import tomllib

    import magicvideo.cli as cli

    table = tomllib.loads((Path(cli.__file__).resolve().parents[1] / "pyproject.toml").read_text())
    expected = set(table["project"]["entry-points"]["magicvideo.commands"])
    monkeypatch.setattr(cli, "entry_points", lambda group: [])
    assert {e.name for e in cli._command_entry_points()} == expected
    parser = cli.build_parser("data")
    assert "data" in parser._subparsers._group_actions[0].choices
