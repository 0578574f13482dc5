"""Training configs (errors name the key path, overrides, named configs) and `magicvideo train`
end to end on a tiny shapes benchmark."""

from __future__ import annotations


import pytest
import yaml

from magicvideo.cli import main
from magicvideo.configs import CONFIG_ROOT, ConfigError
from magicvideo.training import load_train_config, parse_override, read_log


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIG_ROOT / "train").glob("*.yaml")))
def test_named_configs_load(name):
    cfg = load_train_config(name)
    assert cfg.resolved_model().name == "tiny"


def test_config_errors_name_the_key_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"optim": {"lr": -1.0}, "ema": {"decayy": 0.9}, "data": {"span": "x"}}))
    with pytest.raises(ConfigError) as err:
        load_train_config(bad)
    msg = str(err.value)
    assert str(bad) in msg and "optim.lr" in msg and "ema.decayy" in msg and "data.span" in msg
    with pytest.raises(ConfigError, match=r"model\.unet\.block_out_channels"):
        load_train_config("keyframe_tiny", {"model": {"name": "x", "unet": {"block_out_channels": "wide"}}})
    with pytest.raises(ConfigError, match="no train config named 'nope'"):
        load_train_config("nope")


def test_overrides_are_dotted_and_validated():
    cfg = load_train_config("keyframe_tiny", dict([parse_override("optim.lr=3e-3"), parse_override("data.span=[4, 8]")]))
    assert cfg.optim.lr == 3e-3 and cfg.data.span == (4, 8)
    with pytest.raises(ConfigError, match="optim.lr"):
        load_train_config("keyframe_tiny", {"optim.lr": "fast"})
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("optim.lr")


def test_cli_trains_keyframe_and_videovae_on_shapes(tmp_path, capsys):
    from magicvideo.build import load_model_config
    from magicvideo.data.shapes import ShapesSpec, write_shapes

    write_shapes(tmp_path / "shapes", ShapesSpec(train=2, test=0, size=32), workers=1)
    mc = load_model_config("tiny")
    mc.num_frames, mc.resolution, mc.unet.sample_size = 4, 32, 4
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(mc.model_dump(mode="json")))
    common = ["--set", f"model={tmp_path / 'small.yaml'}", "--set", "data.span=[4, 12]", "--steps", "2",
              "--csv", str(tmp_path / "shapes" / "train.csv"), "--device", "cpu", "--no-progress"]  # fmt: skip

    assert main(["train", "keyframe", "--config", "keyframe_tiny", "--out-dir", str(tmp_path / "k"), *common]) == 0
    log = read_log(tmp_path / "k" / "train_log.jsonl")
    assert [r["step"] for r in log] == [1, 2] and all(r["loss"] > 0 for r in log)
    assert (tmp_path / "k" / "final" / "pipeline" / "model_index.json").is_file()
    saved = yaml.safe_load((tmp_path / "k" / "config.yaml").read_text())
    assert saved["steps"] == 2 and saved["data"]["csv"].endswith("train.csv")

    assert main(["train", "videovae", "--config", "videovae_tiny", "--out-dir", str(tmp_path / "v"), *common]) == 0
    assert (tmp_path / "v" / "final" / "vae_ema" / "diffusion_pytorch_model.safetensors").is_file()

    assert main(["train", "keyframe", "--config", "videovae_tiny", *common]) == 2
    assert main(["train", "keyframe", "--config", "keyframe_tiny", "--set", "optim.betas=1"]) == 2
    err = capsys.readouterr().err
    assert "use `magicvideo train videovae`" in err and "optim.betas" in err
