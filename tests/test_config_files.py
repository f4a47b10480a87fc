"""One YAML loader and one key check for every config file (training runs, degradations): the
same value types (``1e0`` is a float) and errors that name the file and the dotted key."""

from __future__ import annotations

import pytest

from kdsharp.data.config import load_degrade_config
from kdsharp.errors import ConfigError
from kdsharp.io.config import config_source, read_yaml_mapping, yaml_load
from kdsharp.train.config import load_config


def test_yaml_12_floats_in_every_config(tmp_path):
    assert yaml_load("a: 1e0\nb: 1e-4\nc: 2.5\nd: 3\ne: '1e0'") == {"a": 1.0, "b": 1e-4, "c": 2.5, "d": 3, "e": "1e0"}
    deg = tmp_path / "deg.yaml"
    deg.write_text("noise: {prob: 1e0, sigma: [1e0, 4e0]}\n")  # a standalone degradation file
    cfg = load_degrade_config(deg)
    assert cfg["noise"]["prob"] == 1.0 and cfg["noise"]["sigma"] == [1.0, 4.0]
    run = tmp_path / "run.yaml"
    run.write_text("optim: {lr: 1e-3}\ndata:\n  degradation: {noise: {prob: 1e0}}\n")
    assert load_config(run)["optim"]["lr"] == 1e-3
    assert load_config(run)["data"]["degradation"]["noise"]["prob"] == 1.0


def _error_of(load, path, text: str) -> str:
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load(path)
    return str(e.value)


@pytest.mark.parametrize(
    "kind,text,says",
    [
        ("run", "data:\n  batchsize: 4\n", "unknown config key 'data.batchsize'"),
        ("run", "schedule: {iters: 0}\n", "schedule.iters=0 must be a positive integer"),
        ("run", "optim: 3\n", "'optim' must be a mapping"),
        ("run", "- a\n- b\n", "must be a mapping of keys"),
        ("run", "data: [1, 2\n", "not valid YAML"),
        ("deg", "blurr: {prob: 0.5}\n", "unknown degradation config key 'blurr'"),
        ("deg", "blur: {sigmaa: [1, 2]}\n", "unknown degradation config key 'blur.sigmaa'"),
        ("deg", "noise: {prob: 2}\n", "noise.prob must be a probability"),
        ("deg", "codec: {temporal_shift: 40}\n", "codec.temporal_shift=40 must be a number of pixels"),
        ("deg", "second_order: {prob: 0.5, noise: {sigmaa: [1, 2]}}\n", "'second_order.noise.sigmaa'"),
        ("deg", "preset: nope\n", "unknown preset 'nope'"),
        ("deg", "blur: [1, 2\n", "not valid YAML"),
    ],
)
def test_config_file_errors_name_the_file_and_key(tmp_path, kind, text, says):
    load = load_config if kind == "run" else load_degrade_config
    path = tmp_path / f"{kind}.yaml"
    msg = _error_of(load, path, text)
    assert msg.startswith(f"{path}: ") and says in msg, msg
    if kind == "deg" and "YAML" not in says:  # the same mapping given inline: same message, no file
        with pytest.raises(ConfigError) as e:
            load_degrade_config(yaml_load(text))
        assert says in str(e.value) and str(path) not in str(e.value)


def test_override_errors_say_so(tmp_path):
    msg = _error_of(lambda p: load_config(p, ["schedule.iters=0"]), tmp_path / "run.yaml", "seed: 1\n")
    assert msg.startswith(f"{tmp_path / 'run.yaml'} with overrides: schedule.iters=0 "), msg


def test_shared_helpers(tmp_path):
    with pytest.raises(ConfigError, match="x.yaml: degradation config file not found"):
        read_yaml_mapping(tmp_path / "x.yaml", "degradation config")
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml_mapping(tmp_path / "empty.yaml") == {}
    with pytest.raises(ConfigError, match="^a.yaml: boom$"), config_source("a.yaml"):
        raise ConfigError("boom")
    with pytest.raises(ConfigError, match="^a.yaml: once$"), config_source("a.yaml"):
        raise ConfigError("a.yaml: once")


@pytest.mark.parametrize("kind", ["folder", "video", "paired"])
def test_a_data_source_without_its_path_says_so(kind):
    from kdsharp.data.sources import load_source

    with pytest.raises(ConfigError, match=f"data source '{kind}' needs a path"):
        load_source({"type": kind})
