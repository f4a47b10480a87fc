"""Degradations: kernels, noise, resize, JPEG/video codecs, configs, presets, seeding."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_test_image

import kdsharp.data.degrade as degrade_mod
from kdsharp.data import Degrader, codecs, kernels, list_presets, load_degrade_config
from kdsharp.data.config import DEFAULT_CONFIG, merge
from kdsharp.data.degrade import degrade
from kdsharp.errors import ConfigError
from kdsharp.ops.metrics import psnr

OFF = {s: {"prob": 0.0} for s in ("blur", "noise", "jpeg", "resize", "codec")}


def only(section: str, **kw) -> dict:
    """A config with every stage off except ``section`` (always on, with overrides ``kw``)."""
    return merge(OFF, {section: {"prob": 1.0, **kw}})


def lap_var(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


@pytest.fixture
def img() -> np.ndarray:
    return make_test_image(48, 64, seed=3)


# ----------------------------------------------------------------------------- kernels
@pytest.mark.parametrize(
    "make",
    [
        lambda: kernels.gaussian_kernel(11, 2.0),
        lambda: kernels.gaussian_kernel(11, 3.0, 0.7, 0.6),
        lambda: kernels.generalized_gaussian_kernel(13, 2.0, 1.0, 0.3, 0.6),
        lambda: kernels.plateau_kernel(13, 1.5, 2.5, 1.0, 1.5),
        lambda: kernels.motion_kernel(15, 9, 0.4),
        lambda: kernels.defocus_kernel(9, 3.0),
    ],
)
def test_kernels_are_normalised_odd_and_spread(make):
    k = make()
    assert k.dtype == np.float32 and k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert abs(float(k.sum()) - 1.0) < 1e-5 and k.min() >= 0
    assert k.max() < 0.5  # not a delta


def test_kernel_geometry():
    assert np.allclose(kernels.gaussian_kernel(9, 1.5), kernels.gaussian_kernel(9, 1.5).T, atol=1e-7)
    horiz = kernels.motion_kernel(15, 11, 0.0)
    assert horiz[6:9].sum() > 0.99 and horiz[7].sum() > 0.8  # a horizontal line through the centre
    aniso = kernels.gaussian_kernel(15, 3.0, 0.5, 0.0)
    assert aniso[7].sum() > aniso[:, 7].sum() * 3  # wide along x, thin along y
    disk = kernels.defocus_kernel(11, 4.0)
    assert disk[5, 5] == pytest.approx(disk[5, 7], rel=1e-3) and disk[0, 0] == 0
    with pytest.raises(ValueError):
        kernels.gaussian_kernel(8, 1.0)


@pytest.mark.parametrize("kind", kernels.KERNEL_KINDS)
def test_each_blur_kind_lowers_high_frequencies(img, kind):
    cfg = only("blur", kinds={kind: 1.0}, sigma=[1.5, 2.0], motion_length=[7, 9], defocus_radius=[2, 3])
    plan = Degrader(cfg).sample(0)
    assert plan[0]["blur"]["kind"] == kind and plan[0]["blur"]["size"] % 2 == 1
    out = Degrader(cfg)(img, 0)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert lap_var(out) < 0.5 * lap_var(img)


# ----------------------------------------------------------------------------- resize and noise
def test_down_up_keeps_size_and_changes_detail(img):
    out = Degrader(only("resize", scale=[2.0, 3.0]))(img, 1)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert lap_var(out) < 0.7 * lap_var(img) and not np.array_equal(out, img)


@pytest.mark.parametrize("odd", [(33, 47), (5, 7)])
def test_resize_handles_odd_and_tiny_sizes(odd):
    img = make_test_image(*odd)
    assert Degrader(only("resize", scale=[3.9, 4.0]))(img, 0).shape == img.shape


@pytest.mark.parametrize("gray", [0.0, 1.0])
@pytest.mark.parametrize("gaussian", [0.0, 1.0])
def test_noise_raises_variance_of_a_flat_image(gray, gaussian):
    flat = np.full((40, 40, 3), 128, np.uint8)
    cfg = only("noise", gray_prob=gray, gaussian_prob=gaussian, sigma=[8, 10], poisson_peak=[100, 200])
    out = Degrader(cfg)(flat, 5)
    assert out.std() > 3 and abs(float(out.mean()) - 128) < 3
    chan_diff = np.abs(out[..., 0].astype(int) - out[..., 1]).max()
    assert (chan_diff <= 1) if gray else (chan_diff > 5)  # grey noise is one field for all channels


def test_noise_is_redrawn_per_frame_but_parameters_are_shared():
    flat = [np.full((16, 16, 3), 100, np.uint8)] * 3
    d = Degrader(only("noise", gaussian_prob=1.0, sigma=[5, 5]))
    out = d.clip(flat, 2)
    assert not np.array_equal(out[0], out[1])
    assert abs(out[0].std() - out[2].std()) < 1.5


# ----------------------------------------------------------------------------- compression
@pytest.mark.parametrize("shape", [(48, 64), (37, 51)])
def test_jpeg_roundtrip_same_size_and_lossy(shape):
    img = make_test_image(*shape)
    out = codecs.jpeg_roundtrip(img, 20)
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)
    assert psnr(out, img) > 18
    assert psnr(codecs.jpeg_roundtrip(img, 95), img) > psnr(out, img)


def test_video_codecs_available_include_the_required_ones():
    avail = codecs.available_video_codecs()
    for name in ("libx264", "libvpx", "libvpx-vp9", "mpeg4"):
        assert name in avail
    assert not codecs.has_encoder("no-such-codec")


@pytest.mark.parametrize("codec", codecs.available_video_codecs())
@pytest.mark.parametrize("n, shape", [(1, (37, 51)), (3, (48, 64))])
def test_every_available_codec_roundtrips(codec, n, shape):
    frames = [make_test_image(*shape, seed=s) for s in range(n)]
    out = codecs.video_roundtrip(frames, codec, crf=34, preset="ultrafast", profile="main")
    assert len(out) == n
    for o, f in zip(out, frames, strict=True):
        assert o.shape == f.shape and o.dtype == np.uint8
        assert not np.array_equal(o, f) and psnr(o, f) > 15


def test_higher_crf_compresses_more(img):
    grey = np.repeat(img.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)  # no 4:2:0 chroma loss
    mild = codecs.video_roundtrip([grey], "libx264", crf=18, preset="veryfast")[0]
    strong = codecs.video_roundtrip([grey], "libx264", crf=40, preset="veryfast")[0]
    assert psnr(mild, grey) > psnr(strong, grey) + 2
    with pytest.raises(ValueError):
        codecs.codec_options("no-such-codec", 30)


def test_codec_stage_on_clip_and_pseudo_clip(img):
    cfg = only("codec", codecs={"libx264": 1.0}, crf=[30, 30], temporal_frames=[3, 3])
    d = Degrader(cfg)
    assert len(d.sample(0)[0]["codec"]["shifts"]) == 2
    single = d(img, 0)
    assert single.shape == img.shape and not np.array_equal(single, img)
    clip = d.clip([img, np.roll(img, 2, axis=1), img], 0)
    assert len(clip) == 3 and all(c.shape == img.shape for c in clip)


def test_missing_codec_is_skipped_with_a_warning(img, monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(degrade_mod, "has_encoder", lambda name: name != "libvpx")
    monkeypatch.setattr(degrade_mod, "warn", seen.append)
    monkeypatch.setattr(degrade_mod, "_warned_codecs", set())
    d = Degrader(only("codec", codecs={"libvpx": 0.9, "mpeg4": 0.1}))
    for seed in range(4):
        assert d.sample(seed)[0]["codec"]["codec"] == "mpeg4"
    assert len(seen) == 1 and "libvpx" in seen[0]


# ----------------------------------------------------------------------------- pipeline, seeds, configs
@pytest.mark.parametrize("preset", ["mixed", "lowbw"])
def test_same_seed_same_output_different_seed_different(img, preset):
    d = Degrader(preset)
    a, b = d(img, 11), d(img, 11)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, d(img, 12))
    assert np.array_equal(a, d(img, np.random.default_rng(11)))


def test_every_preset_loads_and_degrades(img):
    assert {"lowbw", "defocus", "h264", "mixed", "light"} <= set(list_presets())
    for name in list_presets():
        out = degrade(img, preset=name, seed=3)
        assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)


def test_preset_character():
    lowbw, defocus, h264 = (load_degrade_config(n) for n in ("lowbw", "defocus", "h264"))
    assert lowbw["resize"]["prob"] == 1 and lowbw["codec"]["codecs"] == {"libx264": 1.0}
    assert defocus["codec"]["prob"] == 0 and defocus["jpeg"]["prob"] == 1 and "defocus" in defocus["blur"]["kinds"]
    assert h264["resize"]["prob"] == 0 and h264["codec"]["prob"] == 1 and h264["codec"]["crf"][0] >= 28
    assert load_degrade_config("mixed")["second_order"]["prob"] > 0


def test_first_pass_is_never_empty():
    d = Degrader(merge(OFF, {"noise": {"prob": 0.05}}))
    assert all("noise" in d.sample(s)[0] for s in range(20))
    assert Degrader(OFF).sample(0) == [{}]  # everything off: identity, no endless redraw


def test_second_order_pass(img):
    cfg = merge(only("blur"), {"second_order": {"prob": 1.0, "noise": {"prob": 1.0}}})
    plan = Degrader(cfg).sample(0)
    assert len(plan) == 2 and "blur" in plan[1] and "noise" in plan[1] and "noise" not in plan[0]
    assert len(Degrader(only("blur")).sample(0)) == 1


def test_yaml_config_and_errors(tmp_path, img):
    y = tmp_path / "deg.yaml"
    y.write_text("preset: h264\nblur: {prob: 0}\ncodec: {crf: [20, 22]}\n")
    cfg = load_degrade_config(y)
    assert cfg["blur"]["prob"] == 0 and cfg["codec"]["crf"] == [20, 22] and cfg["codec"]["prob"] == 1.0
    assert Degrader(str(y))(img, 0).shape == img.shape
    nested = tmp_path / "nested.yaml"
    nested.write_text("degradation:\n  noise: {prob: 1.0}\n")
    assert load_degrade_config(nested)["noise"]["prob"] == 1.0
    bad = (
        {"blurr": {}},
        {"blur": {"sigmaa": [1, 2]}},
        {"noise": {"prob": 2}},
        {"blur": {"kinds": {"zigzag": 1}}},
        {"jpeg": {"quality": [90, 10]}},
        {"codec": {"codecs": {"h263x": 1}}},
        {"preset": "nope"},
    )
    for b in bad:
        with pytest.raises(ConfigError):
            load_degrade_config(b)
    with pytest.raises(ConfigError, match="unknown degradation preset"):
        load_degrade_config("no-such-preset")
    broken = tmp_path / "broken.yaml"
    broken.write_text("blur: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_degrade_config(broken)


def test_repo_example_configs_load():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "configs" / "degrade"
    files = sorted(folder.glob("*.yaml"))
    assert files
    for f in files:
        load_degrade_config(f)
    assert load_degrade_config(folder / "full_schema.yaml") == load_degrade_config("mixed")
    assert set(DEFAULT_CONFIG) == set(load_degrade_config("light"))


def test_clip_rejects_mixed_sizes(img):
    with pytest.raises(ValueError):
        Degrader("light").clip([img, img[:-2]], 0)
    assert Degrader("light").clip([], 0) == []


def test_shipped_degradation_configs_resolve_by_name_outside_the_clone(tmp_path, monkeypatch):
    """`kdsharp train --list-configs` lists degrade/calls_soft etc. for --preset and data.degradation,
    and the docs pass configs/degrade/calls_soft.yaml: by name or by that path they were 'unknown'
    outside the repository's root."""
    monkeypatch.chdir(tmp_path)
    shipped = load_degrade_config(Path(__file__).resolve().parents[1] / "configs" / "degrade" / "calls_soft.yaml")
    for name in ("calls_soft", "calls_soft.yaml", "degrade/calls_soft.yaml", "configs/degrade/calls_soft.yaml"):
        assert load_degrade_config(name) == shipped
    with pytest.raises(ConfigError, match="shipped configs: calls_balanced"):
        load_degrade_config("elsewhere/calls_soft.yaml")
