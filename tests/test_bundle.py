"""Training bundles and the time-budgeted GPU pipeline, run on the CPU with tiny bundles; image codecs
in the degradation pipeline; the colour-neutral video round trip."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from kdsharp.data.bundle import load_bundle, read_meta
from kdsharp.data.codecs import IMAGE_CODECS, has_encoder, image_roundtrip, video_roundtrip
from kdsharp.data.degrade import Degrader
from kdsharp.data.pack import pack_bundle
from kdsharp.data.sources import load_source
from kdsharp.errors import ConfigError, InputError, OutputError
from kdsharp.ops.metrics import psnr
from tests.conftest import make_test_image

SOURCES = [{"type": "synthetic", "count": 4, "size": 96, "seed": 0}]
VAL = [{"type": "synthetic", "count": 2, "size": 80, "seed": 5}]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "b.zip"
    pack_bundle(SOURCES, out, val_sources=VAL, crop=48, clean=6, pairs=4, val=3, val_size=64, seed=1)
    return out


# ----------------------------------------------------------------------------- codecs
@pytest.mark.parametrize("codec", IMAGE_CODECS)
def test_image_codecs_get_worse_with_crf(codec):
    img = make_test_image(64, 64)
    assert has_encoder(codec)
    good, bad = image_roundtrip(img, codec, 20), image_roundtrip(img, codec, 45)
    assert good.shape == img.shape and good.dtype == np.uint8
    assert psnr(good, img) > psnr(bad, img) + 2


def test_image_codec_rejects_video_names():
    with pytest.raises(ValueError):
        image_roundtrip(make_test_image(16, 16), "libx264", 30)


@pytest.mark.skipif(not has_encoder("libx264"), reason="this PyAV build has no libx264")
def test_video_roundtrip_keeps_the_mean_level():
    """A near-lossless round trip must not darken the frame (the old fast swscale path lost ~1 level)."""
    ramp = np.zeros((64, 256, 3), np.uint8)
    ramp[..., 0] = np.arange(256)
    ramp[..., 1] = np.arange(256)[::-1]
    ramp[..., 2] = 128
    out = video_roundtrip([ramp], "libx264", crf=0)[0].astype(np.float64)
    assert abs(out.mean() - ramp.mean()) < 0.3


def test_wide_preset_without_video_codecs(monkeypatch):
    """With no FFmpeg encoder (a GPU machine without PyAV) the codec stage falls back to JPEG/WebP."""
    import kdsharp.data.degrade as degrade

    monkeypatch.setattr(degrade, "has_encoder", lambda name: name in IMAGE_CODECS)
    monkeypatch.setattr(degrade, "_warned_codecs", set())
    d = Degrader({"preset": "wide", "codec": {"prob": 1.0}, "second_order": {"prob": 0.0}})
    assert degrade._warned_codecs  # warned once, up front
    img = make_test_image(64, 64)
    plans = [d.sample(i) for i in range(20)]
    assert all(p[0]["codec"]["codec"] in IMAGE_CODECS for p in plans)
    out = d.apply([img], plans[0])[0]
    assert out.shape == img.shape and not np.array_equal(out, img)


def test_lanczos_resize_is_a_known_interpolation():
    d = Degrader(
        {
            "resize": {"prob": 1.0, "down": ["lanczos"], "up": ["lanczos"]},
            "codec": {"prob": 0},
            "blur": {"prob": 0},
            "noise": {"prob": 0},
            "jpeg": {"prob": 0},
        }
    )
    img = make_test_image(64, 64)
    assert d(img, 0).shape == img.shape


# ----------------------------------------------------------------------------- bundles
def test_pack_and_load(bundle):
    meta = read_meta(bundle)
    assert meta["counts"] == {"clean": 6, "pairs": 4, "val": 3}
    clean, pairs = load_bundle(bundle, "train")
    assert len(clean) == 6 and all(c.shape == (48, 48, 3) and c.dtype == np.uint8 for c in clean)
    assert len(pairs) == 4 and all(lq.shape == gt.shape == (48, 48, 3) for lq, gt in pairs)
    assert any(not np.array_equal(lq, gt) for lq, gt in pairs)
    _, val = load_bundle(bundle, "val")
    assert len(val) == 3 and val[0][0].shape == (64, 64, 3)
    assert sorted(set(meta["val"].values())) == ["defocus", "h264", "lowbw"]
    with zipfile.ZipFile(bundle) as zf:  # lossless: what is stored is what was cut
        assert all(n.endswith((".webp", ".json")) for n in zf.namelist())


def test_pack_is_reproducible(bundle, tmp_path):
    again = tmp_path / "again.zip"
    pack_bundle(SOURCES, again, val_sources=VAL, crop=48, clean=6, pairs=4, val=3, val_size=64, seed=1)
    a, b = load_bundle(bundle), load_bundle(again)
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0], strict=True))
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a[1], b[1], strict=True))


@pytest.mark.parametrize("max_mb, pairs", [(0.05, 0), (0.08, 40), (0.13, 40)])
def test_pack_stops_at_the_size_limit(tmp_path, max_mb, pairs):
    """max_mb is a hard limit: the zip (headers and meta.json counted) never passes it (it went one
    crop past it), and it stops only when the next crop would not fit."""
    out = tmp_path / "small.zip"
    res = pack_bundle(
        SOURCES, out, val_sources=VAL, val=2, val_size=48, crop=48, clean=200, pairs=pairs, max_mb=max_mb, seed=0
    )
    assert 0 < res.clean < 200 and (res.pairs > 0) == (pairs > 0)
    assert res.bytes == out.stat().st_size <= max_mb * 1024 * 1024
    assert out.stat().st_size > max_mb * 1024 * 1024 - 2 * 40_000  # not stopped far from it


def test_bundle_errors(tmp_path, bundle):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a kdsharp training bundle"):
        load_bundle(bad)
    with pytest.raises(InputError, match="no such bundle"):
        load_bundle(tmp_path / "missing.zip")
    with pytest.raises(ConfigError):
        load_bundle(bundle, "test")
    with pytest.raises(ConfigError):
        pack_bundle(SOURCES, tmp_path / "b.tar")
    (tmp_path / "dir.zip").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        pack_bundle(SOURCES, tmp_path / "dir.zip", crop=48, clean=2, pairs=1)
    with pytest.raises(ConfigError, match="content"):
        load_source({"type": "bundle", "path": str(bundle), "content": "everything"})


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"crop": 500}, "crop 500 px is larger than every training image"),
        ({"val_sources": VAL, "val": 2, "val_size": 500}, "val_size 500 px is larger than every validation image"),
        ({"clean": "abc"}, "clean: 'abc'"),
        ({"crop": 0}, "crop: 0"),
        ({"seed": -1}, "seed: -1"),
        ({"max_mb": 0}, "max_mb: 0"),
        ({"clean": 0, "pairs": 0}, "no training crop"),
    ],
)
def test_pack_settings_out_of_range_are_config_errors(tmp_path, settings, match):
    """Bad bundle settings are one-line errors naming the setting (not a ValueError from zip(),
    nor a bundle without training crops or validation pairs), and no zip is left behind."""
    out = tmp_path / "b.zip"
    kwargs = {"crop": 48, "clean": 2, "pairs": 1, "val": 0, **settings}
    with pytest.raises(ConfigError, match=match):
        pack_bundle(SOURCES, out, **kwargs)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bundle_source_feeds_training_crops(bundle):
    from kdsharp.data.datasets import TrainDataset

    clean = load_source({"type": "bundle", "path": str(bundle), "content": "clean"})
    pairs = load_source({"type": "bundle", "path": str(bundle), "content": "pairs"})
    assert len(clean.images) == 6 and not clean.pairs and len(pairs.pairs) == 4 and not pairs.images
    ds = TrainDataset([clean, pairs], "defocus", crop=32, seed=0, length=10)
    item = ds[3]
    assert item["lq"].shape == item["gt"].shape == (3, 32, 32)


# ----------------------------------------------------------------------------- time budget + pipeline
def test_time_budget_stops_and_publishes(tmp_path, monkeypatch, capfd):
    from kdsharp.train.trainer import train
    from tests.test_train import tiny_config

    monkeypatch.setenv("KDSHARP_QUIET", "0")
    monkeypatch.setenv("KDSHARP_PROGRESS_INTERVAL", "0")  # a progress line per step
    cfg = tiny_config(
        tmp_path,
        schedule={"iters": 100000, "warmup": 1, "max_minutes": 0.02},
        publish={"dir": str(tmp_path / "pub"), "every_s": 0.2},
    )
    result = train(cfg)
    assert 0 < result.step < 100000
    lines = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("tiny")]
    assert lines and not any("ETA" in ln or "/100000" in ln for ln in lines)  # no ETA of the unused iters
    assert result.export == tmp_path / "pub" / "tiny.safetensors" and result.export.is_file()
    from kdsharp.io.weights import load_state_dict_file

    _, meta = load_state_dict_file(result.export)
    assert meta["iters"] == str(result.step) and meta["device"].startswith("cpu")


def test_publish_dir_that_cannot_be_written_fails_before_training(tmp_path, monkeypatch):
    from kdsharp.train.trainer import Trainer, train
    from tests.test_train import tiny_config

    (tmp_path / "afile").write_text("x")
    cfg = tiny_config(tmp_path, publish={"dir": str(tmp_path / "afile"), "every_s": 1})
    monkeypatch.setattr(Trainer, "fit", lambda self: pytest.fail("trained before checking publish.dir"))
    with pytest.raises(OutputError, match="afile"):
        train(cfg)


def test_pipeline_runs_stages_and_survives_a_failing_one(bundle, tmp_path, capfd):
    from kdsharp.train.pipeline import run_pipeline

    small = [
        "data.batch=2",
        "data.crop=32",
        "data.workers=0",
        "val.count=2",
        "val.max_images=2",
        "val.size=48",
        "val.every=0",
        "threads=1",
    ]
    res = run_pipeline(
        bundle,
        0.6,
        tmp_path / "runs",
        tmp_path / "pub",
        stages=("student", "fast"),
        publish_every_s=0,
        overrides={"student": small + ["model.kwargs.bogus=1"], "fast": small},
    )
    assert [r.name for r in res] == ["student", "fast"]
    assert res[0].error and "bogus" in res[0].error and res[0].weights is None
    assert "Traceback" not in capfd.readouterr().err  # a bad setting is one line, not a traceback
    assert res[1].error is None and res[1].step > 0 and Path(res[1].weights).is_file()
    assert res[1].baselines["teacher"]["psnr"] > 0  # distilled from the shipped teacher
    presets = read_meta(bundle)["val"]
    first_two = {presets[k] for k in sorted(presets)[:2]}  # val.max_images=2
    assert {k for k in res[1].val if k.startswith("psnr_")} == {f"psnr_{p}" for p in first_two}
    summary = json.loads((tmp_path / "pub" / "pipeline.json").read_text())
    assert [s["name"] for s in summary] == ["student", "fast"]
    from kdsharp.registry import load_model

    model = load_model(res[1].weights)
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_pipeline_rejects_unknown_stages(bundle, tmp_path):
    from kdsharp.train.pipeline import run_pipeline

    with pytest.raises(ConfigError, match="unknown pipeline stage"):
        run_pipeline(bundle, 0.1, tmp_path, stages=("teacher", "tutor"))
    with pytest.raises(ConfigError, match="time shares"):
        run_pipeline(bundle, 0.1, tmp_path, stages=("teacher", "student"), shares={"student": 0.0})
    # a stage given twice: its second run failed on the first one's folder, after the budget was spent
    with pytest.raises(ConfigError, match="teacher given twice"):
        run_pipeline(bundle, 0.1, tmp_path, stages=("teacher", "student", "teacher"))
    assert not list(tmp_path.iterdir())


def test_pipeline_checks_its_inputs_before_the_first_stage(bundle, tmp_path, monkeypatch):
    """A bad budget, a typo in any stage's overrides, a stage name that does not exist, a file that is
    not a bundle or a run folder already used are errors before any stage spends the lease."""
    import kdsharp.train.trainer as trainer
    from kdsharp.train.pipeline import run_pipeline

    monkeypatch.setattr(trainer, "train", lambda cfg: pytest.fail("a stage ran"))
    stages = ("teacher", "student")
    for minutes in (0, -1, float("nan")):
        with pytest.raises(ConfigError, match="minutes"):
            run_pipeline(bundle, minutes, tmp_path, stages=stages)
    with pytest.raises(ConfigError, match="studnet"):
        run_pipeline(bundle, 1, tmp_path, stages=stages, overrides={"studnet": ["optim.lr=1e-4"]})
    with pytest.raises(ConfigError, match="overrides for stage.s. fast that do not run"):  # was silently unused
        run_pipeline(bundle, 1, tmp_path, stages=stages, overrides={"fast": ["optim.lr=1e-4"]})
    with pytest.raises(ConfigError, match="pipeline stage student: unknown config key 'optim.lrr'"):
        run_pipeline(bundle, 1, tmp_path, stages=stages, overrides={"student": ["optim.lrr=1"]})
    not_a_bundle = tmp_path / "x.zip"
    not_a_bundle.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a kdsharp training bundle"):
        run_pipeline(not_a_bundle, 1, tmp_path, stages=stages)
    with pytest.raises(OutputError, match="x.zip"):  # --publish is a file
        run_pipeline(bundle, 1, tmp_path, not_a_bundle, stages=stages)
    (tmp_path / "runs" / "student").mkdir(parents=True)
    (tmp_path / "runs" / "student" / "last.pth").write_bytes(b"")
    with pytest.raises(ConfigError, match="already holds a run"):
        run_pipeline(bundle, 1, tmp_path / "runs", stages=stages)


def test_a_bundle_without_val_pairs_is_said_when_packed_and_refused_by_the_pipeline(tmp_path, monkeypatch, capsys):
    """A bundle packed without val_sources (val: 48 asked) packed without a word; on the GPU machine
    every pipeline stage then failed ('holds no all crops in part val'): said when packing, and
    refused before the first stage."""
    import kdsharp.train.trainer as trainer
    from kdsharp.train.pipeline import run_pipeline

    out = tmp_path / "noval.zip"
    pack_bundle(SOURCES, out, crop=48, clean=2, pairs=1, val=3)
    assert "val: 3 but no val_sources" in capsys.readouterr().err
    monkeypatch.setattr(trainer, "train", lambda cfg: pytest.fail("a stage ran"))
    with pytest.raises(ConfigError, match="noval.zip: the bundle holds no validation pairs.*val_sources"):
        run_pipeline(out, 1, tmp_path / "runs", stages=("student",))
    with pytest.raises(InputError, match="holds no crops in part 'val'"):
        load_source({"type": "bundle", "path": str(out), "part": "val"})


def test_pack_says_which_images_are_too_small_to_be_cropped(tmp_path, capsys):
    """Images smaller than crop (or val_size) were left out of the bundle without a word."""
    small = [{"type": "synthetic", "count": 2, "size": 32, "seed": 3}]
    pack_bundle(
        SOURCES + small, tmp_path / "b.zip", val_sources=VAL + small, crop=48, clean=2, pairs=0, val=1, val_size=64
    )
    err = capsys.readouterr().err
    assert "crop=48: 2 of 6 images are smaller and are left out" in err and "lower crop to 32 or less" in err, err
    assert "val_size=64: 2 of 4 images are smaller" in err, err


def test_pipeline_time_shares_split_the_budget(bundle, tmp_path, monkeypatch):
    import types

    import kdsharp.train.trainer as trainer
    from kdsharp.train.pipeline import STARTUP_S, run_pipeline

    budgets = {}

    def fake_train(cfg):  # records each stage's budget instead of training
        budgets[cfg["name"]] = cfg["schedule"]["max_minutes"]
        return types.SimpleNamespace(export=None, best_export=None, step=1, val={}, best={}, baselines={})

    monkeypatch.setattr(trainer, "train", fake_train)
    run_pipeline(bundle, 10.0, tmp_path / "a", stages=("teacher", "student"))
    assert budgets["teacher"] == pytest.approx((600 * 0.56 / 0.78 - STARTUP_S) / 60, abs=0.02)
    run_pipeline(bundle, 10.0, tmp_path / "b", stages=("teacher", "student"), shares={"teacher": 1, "student": 1})
    assert budgets["teacher"] == pytest.approx((300 - STARTUP_S) / 60, abs=0.02)
    assert budgets["student"] == pytest.approx((600 - STARTUP_S) / 60, abs=0.05)  # the fake teacher took no time


# ----------------------------------------------------------------------------- small helpers used by the pipeline
def test_grow_kernels_keeps_the_function():
    """model.init from a 1x1-head checkpoint into a 3x3-head model: centre taps, same output."""
    from kdsharp.registry import create_model
    from kdsharp.train.builders import grow_kernels

    small, big = create_model("resunet_lite"), create_model("resunet_lite", head_kernel=3)
    torch.manual_seed(0)
    for p in small.parameters():
        p.data.normal_(0, 0.05)
    big.load_state_dict(grow_kernels(small.state_dict(), big.state_dict()))
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.allclose(small.eval()(x), big.eval()(x), atol=1e-5)


def test_eval_subsets_pool_presets_by_tag():
    from kdsharp.evaluate.report import add_subsets

    def img(inp, model):
        return {"input": {"psnr": inp, "ssim": 0.5}, "m": {"psnr": model, "ssim": 0.6}}

    report = {
        "rows": ["input", "m"],
        "presets": {
            "a": {"images": {"face1": img(20, 22), "room": img(30, 30)}},
            "b": {"images": {"face1": img(24, 25), "room": img(28, 29)}},
        },
    }
    subsets = add_subsets(report, {"face1": "people-face", "room": "indoor"})["subsets"]
    assert subsets["people-face"]["n_images"] == 1 and subsets["people-face"]["n_items"] == 2
    assert subsets["people-face"]["rows"]["m"]["delta_psnr"] == pytest.approx(1.5)
    assert subsets["indoor"]["rows"]["m"]["delta_psnr"] == pytest.approx(0.5)
    assert "text" not in subsets


def test_interrupted_pipeline_still_writes_its_summary(bundle, tmp_path, monkeypatch):
    import kdsharp.train.trainer as trainer
    from kdsharp.train.pipeline import run_pipeline

    def interrupted(cfg, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(bundle, 0.2, tmp_path / "runs", stages=("fast",))
    summary = json.loads((tmp_path / "runs" / "pipeline.json").read_text())
    assert [s["name"] for s in summary] == ["fast"] and "interrupted" in summary[0]["error"]

    def stopped(cfg, **kwargs):  # Ctrl-C in the trainer: what the run reached comes with it
        reached = trainer.TrainResult(tmp_path, 42, {"psnr": 30.0}, {"psnr": 31.0, "step": 40}, {}, tmp_path / "w.st")
        raise trainer.TrainingStopped(reached)

    monkeypatch.setattr(trainer, "train", stopped)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(bundle, 0.2, tmp_path / "runs2", stages=("fast",))
    (s,) = json.loads((tmp_path / "runs2" / "pipeline.json").read_text())
    assert s["step"] == 42 and s["best"]["step"] == 40 and s["weights"].endswith("w.st") and "interrupted" in s["error"]


def test_val_scores_per_preset_of_the_bundle_pairs(bundle):
    from kdsharp.train.builders import build_val_items, score, val_groups
    from kdsharp.train.config import load_config

    cfg = load_config()
    cfg["val"].update(sources=[{"type": "bundle", "path": str(bundle), "part": "val"}], count=3, max_images=3)
    items = build_val_items(cfg)
    groups = val_groups(cfg, len(items))
    presets = read_meta(bundle)["val"]
    assert groups == [presets[k] for k in sorted(presets)]
    s = score(lambda x: x, items, torch.device("cpu"), groups=groups)
    for g in set(groups):  # each preset's mean is over its own pairs
        own = [it for it, x in zip(items, groups, strict=True) if x == g]
        assert abs(s[f"psnr_{g}"] - score(lambda x: x, own, torch.device("cpu"))["psnr"]) < 1e-4
    cfg["val"]["sources"] = [{"type": "synthetic", "count": 2, "size": 64, "seed": 0}]
    assert val_groups(cfg, 2) is None  # crops degraded on the fly carry no preset


def test_validation_crops_are_taken_as_the_photos_come():
    """Training crops prefer texture and random scales; validation crops (``min_texture=0``,
    ``min_scale=1``) are unscaled windows of the photo, flat ones as likely as textured ones -- as
    `kdsharp eval` sees whole photos, so that the best validated step is not biased to sharpening."""
    from kdsharp.data.pack import sample_crops

    yy, xx = np.mgrid[0:200, 0:200]
    coords = np.dstack([yy, xx, np.zeros_like(yy)]).astype(np.uint8)  # each pixel holds its (y, x)
    coords[..., 2] = (np.random.default_rng(0).random((200, 200)) * 255).astype(np.uint8)  # textured
    flat = np.full((200, 200, 3), 128, np.uint8)
    val = sample_crops([coords, flat], [1.0, 1.0], 60, 64, np.random.default_rng(1), min_texture=0.0, min_scale=1.0)
    train = sample_crops([coords, flat], [1.0, 1.0], 60, 64, np.random.default_rng(1))
    flat_share = lambda crops: np.mean([idx == 1 for idx, _ in crops])  # noqa: E731
    assert len(val) == 60 and 0.35 < flat_share(val) < 0.65
    assert flat_share(train) < 0.3
    for idx, c in val:
        if idx == 0:  # an exact window: (y, x) steps by one pixel per row / column
            y0, x0 = int(c[0, 0, 0]), int(c[0, 0, 1])
            assert np.array_equal(c[..., 0], (yy[:64, :64] + y0).astype(np.uint8))
            assert np.array_equal(c[..., 1], (xx[:64, :64] + x0).astype(np.uint8))


@pytest.mark.parametrize("key", ["sources", "val_sources"])
def test_pack_refuses_to_write_over_its_own_input_bundle(bundle, tmp_path, key):
    """Inputs are never modified: a bundle packed from (or validated on) the bundle at -o replaced it."""
    out = tmp_path / "in.zip"
    out.write_bytes(bundle.read_bytes())
    before = out.read_bytes()
    src = [{"type": "bundle", "path": str(tmp_path / "." / "in.zip")}]
    kwargs = {"sources": src} if key == "sources" else {"sources": SOURCES, "val_sources": src, "val": 1}
    with pytest.raises(OutputError, match=rf"is an input of the bundle \({key}\[0\]\)"):
        pack_bundle(out=out, crop=32, clean=2, pairs=1, val_size=32, **kwargs)
    assert out.read_bytes() == before


def test_pack_cli_errors_name_the_bundle_yaml_or_the_option(tmp_path, capsys):
    """A bad bundle setting or source named neither the bundle YAML nor anything else ('no data
    sources given'); a wrong -o names --out, not the YAML."""
    from kdsharp.cli import main

    cases = {
        "nosrc.yaml": ("crop: 32\n", "no data sources given"),
        "badtype.yaml": ("sources: [{type: foo}]\n", "unknown data source type 'foo'"),
        "badcrop.yaml": ("sources: [{type: synthetic}]\ncrop: abc\n", "crop: 'abc'"),
    }
    for name, (text, words) in cases.items():
        (tmp_path / name).write_text(text)
        assert main(["train", "pack", "-c", str(tmp_path / name), "-o", str(tmp_path / "b.zip")]) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path / name}: " in err and words in err and len(err.strip().splitlines()) == 1, err
    assert main(["train", "pack", "-c", str(tmp_path / "nosrc.yaml"), "-o", str(tmp_path / "b.tar")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and ".zip" in err and "nosrc.yaml" not in err, err
    assert not list(tmp_path.glob("*.zip")) and not list(tmp_path.glob("*.tar"))


def test_pack_keeps_an_existing_bundle_unless_overwrite(tmp_path, capsys):
    """`kdsharp train pack -o EXISTING` replaced the bundle there without a word: it is refused, in
    one line naming the file and --overwrite, before anything is read; --overwrite replaces it."""
    from kdsharp.cli import main

    out, spec = tmp_path / "b.zip", tmp_path / "bundle.yaml"
    out.write_bytes(b"an earlier bundle")
    spec.write_text("sources: [{type: synthetic, count: 4, size: 96, seed: 0}]\ncrop: 48\nclean: 2\npairs: 1\nval: 0\n")
    with pytest.raises(OutputError, match=r"b\.zip: already exists \(pass overwrite=True"):
        pack_bundle(SOURCES, out, crop=48, clean=2, pairs=1, val=0)
    assert main(["train", "pack", "-c", str(spec), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and "already exists" in err and "--overwrite" in err, err
    assert out.read_bytes() == b"an earlier bundle"
    assert main(["train", "pack", "-c", str(spec), "-o", str(out), "--overwrite"]) == 0
    assert read_meta(out)["counts"] == {"clean": 2, "pairs": 1, "val": 0}
