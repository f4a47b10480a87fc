"""YUV-native luma path, temporal tile reuse, thread policy, encoder settings and the video/live pipeline's
new behaviour (partial output on corrupt input, progress in frames, Ctrl-C in live, bench --video)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import make_test_image
from test_infer_helpers import encode_rgb_frames, make_video, timed_video, tiny_model, video_facts

import kdsharp.infer.backends as backends
from kdsharp.cli import main
from kdsharp.errors import KdsharpError, OutputError
from kdsharp.infer.frames import (
    LumaFrames,
    LumaNet,
    RgbFrames,
    TileReuse,
    luma_model,
    make_processor,
    plane_view,
    reach,
)
from kdsharp.infer.sharpener import Sharpener
from kdsharp.infer.threads import default_threads, passive_waiting
from kdsharp.infer.video import plan_workers
from kdsharp.io.video import TO_YUV_FLAGS, encoder_settings, read_frames
from kdsharp.models.fast import FastNet
from kdsharp.models.unet import ResUNetLite


def luma_net(seed: int = 0, channels: int = 8, blocks: int = 1, detail: int = 0) -> FastNet:
    """A deployed luma FastNet with random weights (the tail too, so it visibly changes frames)."""
    g = torch.Generator().manual_seed(seed)
    m = FastNet(channels=channels, num_blocks=blocks, scale=4, luma=True, act="prelu", detail=detail)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.01)
    return m.reparameterize().eval().requires_grad_(False)


def camera_like(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A soft, muted RGB test picture (as a camera gives; saturated colours would clip in RGB)."""
    import cv2

    base = cv2.GaussianBlur(make_test_image(h, w, seed=seed), (0, 0), 1.0)
    grey = cv2.cvtColor(cv2.cvtColor(base, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(base, 0.5, grey, 0.5, 0)


def yuv_frame(rgb: np.ndarray, fmt: str = "yuv420p") -> av.VideoFrame:
    f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=fmt, interpolation=TO_YUV_FLAGS)
    f.pts, f.time_base = 0, Fraction(1, 30)
    return f


def rgb_path(sharpener, frame: av.VideoFrame) -> av.VideoFrame:
    return RgbFrames(sharpener)([frame])[0].reformat(
        format=frame.format.name.replace("yuvj", "yuv"),
        interpolation=TO_YUV_FLAGS,
        dst_color_range=2 if "yuvj" in frame.format.name else None,
    )


@pytest.fixture(scope="module")
def fast_sharpener():
    return Sharpener(luma_net(), device="cpu")


# -- YUV-native path ------------------------------------------------------------------------------
@pytest.mark.parametrize("size,fmt", [((96, 64), "yuv420p"), ((66, 50), "yuv420p"), ((96, 64), "yuv444p")])
def test_luma_path_equals_rgb_path_within_rounding(fast_sharpener, size, fmt):
    frame = yuv_frame(camera_like(size[1], size[0], seed=3), fmt)
    proc = make_processor(fast_sharpener, frame)
    assert isinstance(proc, LumaFrames) and proc.path == "yuv"
    a = proc([frame])[0]
    b = rgb_path(fast_sharpener, frame)
    ya, yb, y0 = (plane_view(f, 0).astype(int) for f in (a, b, frame))
    assert np.abs(ya - y0).mean() > 1  # the model does change the picture
    d = np.abs(ya - yb)
    assert d.max() <= 2 and (d > 1).mean() < 0.01, (d.max(), d.mean())  # RGB rounding and clipping only
    for i in (1, 2):  # chroma passes through untouched (the RGB path resamples it)
        assert np.array_equal(plane_view(a, i), plane_view(frame, i))
    assert (a.width, a.height, a.format.name, a.pts) == (frame.width, frame.height, frame.format.name, frame.pts)


def test_chroma_branch_runs_on_the_420_chroma_planes():
    """A model with a chroma branch changes the 4:2:0 chroma planes in the YUV path as its RGB path
    does: a branch that shifts Cb by +10/255 and Cr by -6/255 (luma untouched) moves the limited-range
    planes by +8.8 and -5.3 levels in both paths (catches a swapped plane, a wrong span or sign). Reuse
    stays off, and other layouts (4:4:4) go through RGB."""
    m = FastNet(channels=8, num_blocks=1, scale=4, luma=True, act="prelu", chroma=4).reparameterize().eval()
    with torch.no_grad():
        tail = m.chroma_tail.deployed
        tail.weight.zero_()
        tail.bias.copy_(torch.tensor([10.0] * 4 + [-6.0] * 4) / 255)  # Cb cells, then Cr cells
    s = Sharpener(m.requires_grad_(False), device="cpu")
    frame = yuv_frame(camera_like(50, 66, seed=6))  # odd chroma sizes: 25 x 33
    proc = make_processor(s, frame, reuse=True)
    assert isinstance(proc, LumaFrames) and proc.reuse is None
    a, b = proc([frame])[0], rgb_path(s, frame)
    assert np.array_equal(plane_view(a, 0), plane_view(frame, 0))  # the luma tail is zero
    for i, shift in ((1, 10 * 224 / 255), (2, -6 * 224 / 255)):
        ca, cb, c0 = (plane_view(f, i).astype(int) for f in (a, b, frame))
        assert ca.shape == c0.shape == (25, 33)
        assert np.abs(ca - c0 - shift).max() <= 0.5  # the YUV path: exactly the shift, rounded
        assert abs((cb - c0).mean() - shift) < 0.5, (cb - c0).mean()  # the RGB path: the same on average
    assert make_processor(s, yuv_frame(camera_like(50, 66, seed=6), "yuv444p")).path == "rgb"


@pytest.mark.parametrize("detail", [0, 4])
def test_luma_unet_runs_the_yuv_path_without_reuse(detail):
    """A luma U-Net (not a FastNet) takes the YUV path through ``forward_cells``, padded to its own
    multiple (66 x 50 is not a multiple of its 16), and gives its ``forward`` output, with its
    full-resolution ``detail`` stage too; temporal reuse stays off (its reach is the whole frame)."""
    g = torch.Generator().manual_seed(1)
    unet = ResUNetLite(
        channels=[8, 8, 8], enc_blocks=[1, 1, 1], dec_blocks=[1, 1], luma=True, head_kernel=3, detail=detail
    )
    with torch.no_grad():
        for p in unet.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    unet = unet.eval().requires_grad_(False)
    proc = make_processor(Sharpener(unet, device="cpu"), yuv_frame(camera_like(50, 66, seed=5)), reuse=True)
    assert isinstance(proc, LumaFrames) and proc.reuse is None
    y = make_test_image(50, 66, seed=5)[:, :, 1]  # grey RGB: Y = R = G = B, so forward's output is Y + dY
    x = torch.from_numpy(y).float().div(255)[None, None].expand(1, 3, 50, 66).contiguous()
    ref = unet(x)[0, 0].mul(255).round().clamp(0, 255).numpy().astype(int)
    out = LumaNet(unet)(y, full_range=True).astype(int)
    assert np.abs(ref - y).mean() > 1  # the model does change the picture
    assert np.abs(out - ref).max() <= 1


def test_luma_path_full_range(fast_sharpener):
    frame = yuv_frame(camera_like(64, 96, seed=4), "yuvj420p")
    a = LumaFrames(luma_model(fast_sharpener))([frame])[0]
    b = rgb_path(fast_sharpener, frame)
    assert a.format.name == "yuv420p" and int(a.color_range) == 2  # same samples, tagged full range
    d = np.abs(plane_view(a, 0).astype(int) - plane_view(b, 0).astype(int))
    assert d.max() <= 2 and (d > 1).mean() < 0.01


def test_luma_net_matches_fastnet_forward_on_grey():
    """Grey RGB has Y = R = G = B, so FastNet.forward's output is exactly Y + dY: compare as floats."""
    m = luma_net(1)
    y = make_test_image(48, 64, seed=5)[:, :, 1]
    x = torch.from_numpy(y).float().div(255)[None, None].expand(1, 3, 48, 64).contiguous()
    ref = m(x)[0, 0].mul(255).round().clamp(0, 255).numpy().astype(np.uint8)
    out = LumaNet(m)(y, full_range=True)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.parametrize("full_range", [False, True])
@pytest.mark.parametrize("blocks,fused", [(0, True), (1, True), (1, False)])
def test_folded_plain_net_equals_the_general_path(full_range, blocks, fused):
    """The range-folded path of a plain deployed FastNet gives the general path's Y within rounding,
    borders included (the cells are Y - black, so zero padding is black), with the tail added by
    oneDNN or (``fused`` False: a torch build without that op) in a second pass."""
    m = luma_net(7, channels=8, blocks=blocks)
    with torch.no_grad():  # a visible change, so that the comparison means something
        m.tail.deployed.weight.mul_(20)
    folded, general = LumaNet(m), LumaNet(m)
    general._plain = False
    assert folded._plain
    y = make_test_image(50, 66, seed=8)[:, :, 1]
    y[:3], y[-3:] = 0, 255  # black and white borders: the clamp and the padding both matter there
    if not fused:
        folded(y, full_range)
        folded._folded[full_range]._fused = False
    a, b = folded(y, full_range).astype(int), general(y, full_range).astype(int)
    assert np.abs(b - y).mean() > 1
    assert np.abs(a - b).max() <= 1 and (a != b).mean() < 0.01
    assert np.array_equal(folded(y, full_range), a)  # its kept buffer gives the same result again


def test_folded_path_only_for_plain_deployed_float_nets():
    from kdsharp.infer.frames import FoldedPlainNet

    cpu = torch.device("cpu")
    assert FoldedPlainNet.applies(luma_net(), cpu, torch.float32)
    assert not FoldedPlainNet.applies(luma_net(), cpu, torch.bfloat16)
    assert not FoldedPlainNet.applies(luma_net(detail=4), cpu, torch.float32)  # a full-resolution stage
    assert not FoldedPlainNet.applies(FastNet(channels=8, num_blocks=1).eval(), cpu, torch.float32)  # training form
    with_chroma = FastNet(channels=8, num_blocks=1, chroma=4).reparameterize().eval()
    assert not FoldedPlainNet.applies(with_chroma, cpu, torch.float32)


def test_processor_choice():
    frame = yuv_frame(make_test_image(32, 32))
    assert make_processor(Sharpener(luma_net(), device="cpu"), frame).path == "yuv"
    assert make_processor(Sharpener(luma_net(), device="cpu"), frame, path="rgb").path == "rgb"
    assert make_processor(Sharpener(tiny_model(), device="cpu"), frame).path == "rgb"  # an RGB model
    assert make_processor(Sharpener(luma_net(), device="cpu", tile=64), frame).path == "rgb"  # tiled: RGB path
    rgb_in = av.VideoFrame.from_ndarray(make_test_image(32, 32), format="rgb24")
    assert make_processor(Sharpener(luma_net(), device="cpu"), rgb_in).path == "rgb"
    rgb_model = FastNet(channels=8, num_blocks=1, luma=False).eval()
    assert luma_model(Sharpener(rgb_model, device="cpu")) is None
    with_chroma = FastNet(channels=8, num_blocks=1, luma=True, chroma=4).eval()  # 4:2:0 only (its own test)
    assert make_processor(Sharpener(with_chroma, device="cpu"), frame).path == "yuv"


# -- temporal reuse ---------------------------------------------------------------------------------
def test_fast_with_detail_stage_yuv_path_equals_forward():
    """A FastNet with a full-resolution ``detail`` stage gives its ``forward`` output on the Y plane."""
    m = luma_net(4, detail=4)
    y = make_test_image(50, 66, seed=4)[:, :, 1]
    x = torch.from_numpy(y).float().div(255)[None, None].expand(1, 3, 50, 66).contiguous()
    ref = m(x)[0, 0].mul(255).round().clamp(0, 255).numpy().astype(int)
    out = LumaNet(m)(y, full_range=True).astype(int)
    assert np.abs(ref - y).mean() > 1 and np.abs(out - ref).max() <= 1


@pytest.mark.parametrize("detail", [0, 4])
def test_reuse_gives_exactly_the_full_output_and_skips_unchanged_tiles(detail):
    m = luma_net(2, channels=8, blocks=2, detail=detail)
    assert reach(m) == 4 * (4 + 1) - 1 + 2 * bool(detail)  # head + 2 body + tail 3x3 convs at 1/4 res (+ 2 px)
    net = LumaNet(m)
    reuse = TileReuse(net, m, tile=24)
    base = make_test_image(240, 320, seed=6)[:, :, 0]  # large enough that crops cost less than a whole frame
    rng = np.random.default_rng(0)
    frames = [base]
    for i in range(6):  # a small moving patch on a static background
        f = base.copy()
        f[40 + i : 60 + i, 50 + 2 * i : 80 + 2 * i] = rng.integers(0, 255, (20, 30))
        frames.append(f)
    frames.append(frames[-1].copy())  # an identical frame: nothing to compute
    for f in frames:
        assert np.array_equal(reuse(f, False), net(f, False))
    assert reuse.stats.frames_skipped == 1
    assert 0.3 < reuse.stats.skipped_fraction < 1
    # a change far from a tile leaves that tile's output bit-identical
    g = frames[-1].copy()
    g[0:4, 0:4] = 255 - g[0:4, 0:4]
    before, after = net(frames[-1], False), reuse(g, False)
    assert np.array_equal(before[60:, 60:], after[60:, 60:])


def noisy_frames(base: np.ndarray, n: int, sigma: float, seed: int = 0) -> list[np.ndarray]:
    """``n`` uint8 copies of ``base`` with fresh Gaussian noise each (a camera on a static scene)."""
    rng = np.random.default_rng(seed)
    return [np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def test_reuse_with_a_tolerance_skips_sensor_noise_but_not_motion():
    """A camera's noise changes every pixel of every frame: exact reuse skips nothing, a tolerance of
    3 levels on the 4x4 cells' means skips nearly all of a static scene at no cost in PSNR against the
    clean picture; a moving patch is recomputed exactly as a whole-frame pass gives it."""
    m = luma_net(2, channels=8, blocks=2)
    net = LumaNet(m)
    clean = camera_like(96, 144, seed=3)[:, :, 1]
    frames = noisy_frames(clean, 8, sigma=2.0)
    exact, tolerant = TileReuse(net, m), TileReuse(net, m, tolerance=3, refresh=1000)
    full = [net(f, False) for f in frames]
    outs = [tolerant(f, False) for f in frames]
    for f in frames:
        exact(f, False)
    assert exact.stats.skipped_fraction == 0.0 and tolerant.stats.skipped_fraction > 0.7  # the first frame: all

    def psnr(outputs):
        mse = np.mean([np.mean((o.astype(float) - clean) ** 2) for o in outputs])
        return 10 * np.log10(255**2 / mse)

    assert abs(psnr(outs) - psnr(full)) < 0.05
    moved = frames[-1].copy()
    moved[30:50, 60:90] = 255 - moved[30:50, 60:90]  # something moves: far beyond the tolerance
    out = tolerant(moved, False)
    assert np.array_equal(out[24:56, 48:96], net(moved, False)[24:56, 48:96])  # its tiles: recomputed exactly


def test_reuse_with_a_tolerance_recomputes_a_texture_shifted_by_one_pixel():
    """Fine stripes moved by one pixel keep every 4x4 cell's mean, but not its pixels: recomputed."""
    m = luma_net(2, channels=8, blocks=2)
    net = LumaNet(m)
    base = camera_like(96, 144, seed=5)[:, :, 1].copy()
    stripes = np.where(np.arange(48) % 2 == 0, 90, 150).astype(np.uint8)  # period 2: cell means 120
    f0, f1 = base.copy(), base.copy()
    f0[24:72, 48:96], f1[24:72, 48:96] = stripes[None, :], np.roll(stripes, 1)[None, :]
    reuse = TileReuse(net, m, tolerance=3, refresh=1000)
    reuse(f0, False)
    assert np.array_equal(reuse(f1, False)[24:72, 48:96], net(f1, False)[24:72, 48:96])


def test_reuse_with_a_tolerance_follows_brightness_and_refreshes_every_tile():
    """A slow brightness change below the tolerance still reaches the output (each tile's mean
    change is added); every tile is recomputed within ``refresh`` frames."""
    m = luma_net(2, channels=8, blocks=2)
    net = LumaNet(m)
    base = camera_like(96, 144, seed=4)[:, :, 1].astype(np.int16)
    reuse = TileReuse(net, m, tolerance=3, refresh=4)
    reuse(base.astype(np.uint8), False)
    brighter = np.clip(base + 2, 0, 255).astype(np.uint8)  # 2 levels: within the tolerance
    computed = reuse.stats.computed
    out = reuse(brighter, False)
    full = net(brighter, False)
    assert abs(out.astype(float).mean() - full.astype(float).mean()) < 0.3
    for _ in range(3):
        reuse(brighter, False)
    assert reuse.stats.computed - computed >= 4 * 6  # 4 tile rows of 6 tiles, one row per frame
    assert np.array_equal(reuse(brighter, False), full)  # all refreshed from this very input


def test_reuse_in_the_video_pipeline_is_exact(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=8, size=(96, 64), audio=False)
    s = Sharpener(luma_net(), device="cpu")
    a = s.video(src, tmp_path / "a.mp4", crf=0)
    b = s.video(src, tmp_path / "b.mp4", crf=0, reuse=True, reuse_tolerance=0)
    assert a.path == b.path == "yuv" and b.reused is not None and a.reused is None
    fa = [f for f, _ in read_frames(tmp_path / "a.mp4")]
    fb = [f for f, _ in read_frames(tmp_path / "b.mp4")]
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True)) and len(fa) == 8


def test_sharpen_reuse_tolerance_skips_a_noisy_recording(tmp_path, capsys):
    """A webcam recording (fresh noise in every frame, lossless here): exact reuse skips nothing, the
    default tolerance (3 levels) skips most of the static room; ``--reuse-tolerance`` implies --reuse."""
    from kdsharp.infer.clips import write_call_clip

    src = write_call_clip(tmp_path / "cam.mp4", size=(384, 216), seconds=0.5, kind="talking", noise=2.0, crf=0)
    s = Sharpener(luma_net(), device="cpu", threads=1)
    exact = s.video(src, tmp_path / "exact.mp4", reuse=True, reuse_tolerance=0)
    tolerant = s.video(src, tmp_path / "tolerant.mp4", reuse=True)  # the default: 3 levels
    assert exact.reused is not None and exact.reused < 0.05
    assert tolerant.reused is not None and tolerant.reused > 0.4 and tolerant.reuse_tolerance == 3
    code = main(
        [
            "sharpen",
            str(src),
            "-o",
            str(tmp_path / "cli.mp4"),
            "--model",
            "fast",
            "--threads",
            "1",
            "--reuse-tolerance",
            "3",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0 and "tiles reused within 3 levels" in err, err


def test_reuse_on_two_workers_skips_static_tiles_and_stays_exact(tmp_path):
    """Each worker compares with the last frame it took itself (two frames back): still the full output."""
    import av

    room = camera_like(96, 160, seed=8)
    frames = []
    for i in range(10):  # a static room, a square moving in the centre (a talking head, roughly)
        f = room.copy()
        f[32:64, 40 + 4 * i : 72 + 4 * i] = 200
        frames.append(f)
    with av.open(str(tmp_path / "talk.mkv"), "w") as out:
        encode_rgb_frames(out, "ffv1", frames, pix_fmt="yuv420p")  # lossless: the room stays bit-identical
    s = Sharpener(luma_net(), device="cpu", threads=2)
    a = s.video(tmp_path / "talk.mkv", tmp_path / "a.mkv", codec="ffv1")
    b = s.video(tmp_path / "talk.mkv", tmp_path / "b.mkv", codec="ffv1", reuse=True, reuse_tolerance=0)
    assert a.reused is None and b.workers == 2 and b.threads == 1 and b.reused is not None and b.reused > 0.15
    fa = [f for f, _ in read_frames(tmp_path / "a.mkv")]
    fb = [f for f, _ in read_frames(tmp_path / "b.mkv")]
    assert len(fa) == 10 and all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))


# -- the pipeline ---------------------------------------------------------------------------------
def test_yuv_pipeline_keeps_frames_timing_audio_and_matches_rgb_path(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=9, size=(96, 64), fps=15, audio=True)
    s = Sharpener(luma_net(), device="cpu", batch=2)
    yuv = s.video(src, tmp_path / "yuv.mp4", crf=0)
    rgb = s.video(src, tmp_path / "rgb.mp4", crf=0, path="rgb")
    assert (yuv.path, rgb.path) == ("yuv", "rgb") and yuv.frames == rgb.frames == 9
    a, b = video_facts(src), video_facts(tmp_path / "yuv.mp4")
    assert b["frames"] == 9 and b["size"] == (96, 64) and b["rate"] == a["rate"]
    assert np.allclose(b["times"], a["times"], atol=1e-4) and b["audio"] == a["audio"]
    ys = [plane(f) for f in _decode(tmp_path / "yuv.mp4")]
    rs = [plane(f) for f in _decode(tmp_path / "rgb.mp4")]
    diffs = [np.abs(x.astype(int) - y.astype(int)) for x, y in zip(ys, rs, strict=True)]
    # rounding (the RGB path quantises RGB to 8 bits) and a few RGB-gamut clips
    assert np.mean([(d > 1).mean() for d in diffs]) < 0.01 and np.mean([d.mean() for d in diffs]) < 0.4
    assert "bottleneck" in yuv.summary() and set(yuv.stage_ms) == {"decode", "model", "encode"}
    assert yuv.cpu_s > 0 and yuv.as_dict()["cpu_ms"]["total"] > 0


def plane(frame: av.VideoFrame) -> np.ndarray:
    return plane_view(frame, 0).copy()


def _decode(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def test_pipeline_with_several_workers_keeps_order(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=12, size=(64, 48), audio=False)
    one = Sharpener(luma_net(), device="cpu", threads=1).video(src, tmp_path / "one.mp4", crf=0)
    three = Sharpener(luma_net(), device="cpu", threads=3).video(src, tmp_path / "three.mp4", crf=0)
    assert (one.workers, three.workers) == (1, 3)
    fa = [f for f, _ in read_frames(tmp_path / "one.mp4")]
    fb = [f for f, _ in read_frames(tmp_path / "three.mp4")]
    assert len(fa) == len(fb) == 12 and all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))


def test_max_frames_and_bad_path_option(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=10, audio=False)
    s = Sharpener(luma_net(), device="cpu")
    assert s.video(src, tmp_path / "o.mp4", max_frames=4).frames == 4
    with pytest.raises(KdsharpError, match="video path"):
        s.video(src, tmp_path / "o2.mp4", path="gpu")
    with pytest.raises(KdsharpError, match="luma model"):
        Sharpener(tiny_model(), device="cpu").video(src, tmp_path / "o3.mp4", path="yuv")


def _streamable(path: Path, frames: int = 30) -> Path:
    """An H.264 MP4 with its index first (faststart), so a cut copy still opens and lists every frame."""
    rng = np.random.default_rng(7)  # noise: every frame costs about as many bytes, so a cut lands part way
    encode_rgb_frames(
        av.open(str(path), "w", options={"movflags": "faststart"}),
        "libx264",
        [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(frames)],
    )
    return path


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_video_corrupt_part_way_keeps_frames_before_with_one_warning(tmp_path, capsys, damage):
    good = _streamable(tmp_path / "good.mp4").read_bytes()
    if damage == "truncate":
        bad = good[: len(good) * 6 // 10]
    else:
        bad = bytearray(good)
        bad[len(bad) // 2 : len(bad) // 2 + 2000] = b"\xff" * 2000
    src = tmp_path / "bad.mp4"
    src.write_bytes(bytes(bad))
    stats = Sharpener(luma_net(), device="cpu").video(src, tmp_path / "out.mp4")
    err = capsys.readouterr().err
    assert 0 < stats.frames < 30 and stats.partial and f"frame {stats.frames + 1}" in stats.partial
    assert video_facts(tmp_path / "out.mp4")["frames"] == stats.frames  # a valid file of the frames kept
    warnings = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "bad.mp4" in warnings[0] and "Traceback" not in err


def test_cli_partial_video_exits_1_and_says_partial(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(backends, "resolve_model", lambda m, device="cpu": luma_net())
    good = _streamable(tmp_path / "good.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(good[: len(good) // 2])
    code = main(["sharpen", str(tmp_path / "cut.mp4"), "-o", str(tmp_path / "out.mp4"), "--model", "x"])
    err = capsys.readouterr().err
    assert code == 1 and "partial" in err and "corrupt or truncated at frame" in err and "Traceback" not in err
    assert (tmp_path / "out.mp4").is_file()


# -- encoder settings ------------------------------------------------------------------------------
def test_encoder_defaults_by_resolution_and_overrides(tmp_path):
    assert encoder_settings(1280, 720).describe() == "libx264 veryfast crf 18"
    assert encoder_settings(1920, 1080).describe() == "libx264 ultrafast crf 18"
    assert encoder_settings(3840, 2160).preset == "ultrafast"
    assert encoder_settings(1920, 1080, preset="medium", crf=23).describe() == "libx264 medium crf 23"
    assert encoder_settings(640, 360, path="x.webm").describe() == "libvpx-vp9 crf 24"
    with pytest.raises(OutputError, match="preset=warp"):
        encoder_settings(640, 360, preset="warp")
    src = make_video(tmp_path / "in.mp4", frames=3, audio=False)
    st = Sharpener(luma_net(), device="cpu").video(src, tmp_path / "o.mp4", preset="ultrafast", crf=30)
    assert st.encoder == "libx264 ultrafast crf 30"


def test_cli_encoder_preset_and_threads(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(backends, "resolve_model", lambda m, device="cpu": luma_net())
    src = make_video(tmp_path / "in.mp4", frames=4, audio=True)
    code = main(
        [
            "sharpen",
            str(src),
            "-o",
            str(tmp_path / "o.mp4"),
            "--model",
            "x",
            "--encoder-preset",
            "ultrafast",
            "--crf",
            "28",
            "--threads",
            "1",
            "--reuse",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "ultrafast crf 28" in err and "yuv path" in err and "tiles reused" in err
    code = main(["sharpen", str(src), "-o", str(tmp_path / "o2.mp4"), "--encoder-preset", "warp"])
    err = capsys.readouterr().err
    assert (
        code == 2
        and "--encoder-preset warp is not an x264 preset" in err
        and len(err.strip().splitlines()) == 1
        and not (tmp_path / "o2.mp4").exists()
    )


# -- thread policy ---------------------------------------------------------------------------------
def test_thread_policy(monkeypatch):
    s = Sharpener(luma_net(), device="cpu")
    assert plan_workers(s, 2) == (2, 1)  # frames in parallel, one thread each (temporal reuse too)
    monkeypatch.setenv("KDSHARP_THREADS", "3")
    assert default_threads() == 3 and plan_workers(s, None) == (3, 1)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    passive_waiting()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    passive_waiting()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"  # the user's choice wins
    with pytest.raises(KdsharpError, match="threads"):
        Sharpener(luma_net(), device="cpu", threads=0)


@pytest.mark.parametrize("command", ["sharpen", "live", "demo", "eval"])
def test_threads_option_everywhere(capsys, command):
    assert main([command, "--help"]) == 0
    assert "--threads" in capsys.readouterr().out


def test_onnx_session_does_not_spin():
    b = backends.OnnxBackend(tiny_model(), device="cpu", threads=1)
    assert b(np.zeros((1, 3, 16, 16), np.float32)).shape == (1, 3, 16, 16)
    s = Sharpener(tiny_model(), device="cpu", backend="onnx", threads=2)
    assert plan_workers(s, 2) == (1, 2)


# -- progress in frames ---------------------------------------------------------------------------
def test_single_video_progress_in_frames_when_piped(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(backends, "resolve_model", lambda m, device="cpu": luma_net())
    monkeypatch.setenv("KDSHARP_QUIET", "0")
    monkeypatch.setenv("KDSHARP_PROGRESS_INTERVAL", "0")
    src = make_video(tmp_path / "in.mp4", frames=6, audio=False)
    assert main(["sharpen", str(src), "-o", str(tmp_path / "o.mp4"), "--model", "x"]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("in.mp4:")]
    assert lines and "/6 frames" in lines[0] and "frames/s" in lines[0] and "ETA" in lines[0], err
    assert "files/s" not in err


# -- live ------------------------------------------------------------------------------------------
def test_live_yuv_path_with_reuse_keeps_rate_and_audio(tmp_path):
    from kdsharp.infer.live import run_live

    src = make_video(tmp_path / "call.mp4", frames=15, fps=30, audio=True)
    stats = run_live(str(src), str(tmp_path / "out.mp4"), sharpener=Sharpener(luma_net(), device="cpu"), progress=False)
    facts = video_facts(tmp_path / "out.mp4")
    assert stats.path == "yuv" and stats.reused is not None
    assert facts["frames"] == stats.processed and stats.processed + stats.dropped == 15
    assert facts["audio_codecs"] == ["aac"] and f"{stats.dropped_pct:.1f}%" in stats.summary()
    source_times = video_facts(src)["times"]  # every frame written sits at its source time
    assert all(min(abs(t - u) for u in source_times) < 1e-3 for t in np.array(facts["times"]) + source_times[0])
    if stats.dropped == 0:
        assert facts["rate"] == 30


def _frames_counted(counter: Path) -> int:
    return counter.stat().st_size if counter.exists() else 0


def _start(workdir: Path, args: list[str], model: str, counter: Path, entry: str = "run") -> subprocess.Popen:
    """Run the CLI (``kdsharp.cli.run``, the console script's entry, or ``main``) in a new process in
    ``workdir``, with ``model`` (an expression) for every model name; each frame it hands to its video
    encoder adds a byte to ``counter`` (outside ``workdir``), which the test waits on instead of sleeping."""
    code = textwrap.dedent(f"""
        import sys, kdsharp.infer.backends as b, kdsharp.io.video as v, test_infer_frames as t, test_infer_helpers as h
        b.resolve_model = lambda m, device='cpu': {model}
        write_frame = v.VideoWriter.write_frame
        def counted(self, *a, **k):
            write_frame(self, *a, **k)
            with open({str(counter)!r}, 'ab') as f:
                f.write(b'.')
        v.VideoWriter.write_frame = counted
        from kdsharp.cli import main, run
        sys.argv = ['kdsharp', *{args!r}]
        sys.exit(main()) if {entry == "main"!r} else run()
    """)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
        "KDSHARP_QUIET": "1",
    }
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=env, cwd=workdir)


def _signal_after(proc: subprocess.Popen, counter: Path, frames: int, sig: int) -> tuple[str, float, int, int]:
    """Send ``sig`` once ``proc`` has encoded ``frames`` frames (a deadline of minutes: a loaded machine is
    slow, not wrong); returns its stderr, the seconds it took to end after the signal, and the frames
    encoded when the signal was sent and in all."""
    deadline = time.monotonic() + 180
    try:
        while (sent := _frames_counted(counter)) < frames:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"{sent} frames encoded (exit code {proc.poll()}), waited for {frames}: "
                    f"{proc.communicate(timeout=60)[1] if proc.poll() is not None else 'still running'}"
                )
            time.sleep(0.02)
        t0 = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=180)
        return err, time.monotonic() - t0, sent, _frames_counted(counter)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_live_ctrl_c_finishes_the_file_and_prints_the_summary(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    make_video(work / "call.mp4", frames=300, fps=30, size=(64, 48), audio=True)
    proc = _start(
        work,
        ["live", "--source", "call.mp4", "--sink", "out.mp4", "--model", "x"],
        "t.luma_net()",
        tmp_path / "frames",
        entry="main",
    )
    err, _, sent, _ = _signal_after(proc, tmp_path / "frames", 10, signal.SIGINT)
    assert proc.returncode == 0, err
    assert "stopped (Ctrl-C)" in err and "frames processed" in err and "Traceback" not in err
    facts = video_facts(work / "out.mp4")
    processed = int(err.split("stopped (Ctrl-C): ")[1].split()[0])
    assert sent <= facts["frames"] == processed < 300
    assert facts["audio_codecs"] == ["aac"] and facts["audio"]


@pytest.mark.parametrize(
    "sig,code,says", [(signal.SIGINT, 130, "error: interrupted"), (signal.SIGTERM, 143, "error: terminated (SIGTERM)")]
)
def test_sharpen_stops_at_once_on_ctrl_c_or_sigterm_and_leaves_no_file(tmp_path, sig, code, says):
    """Ctrl-C used to let every stage run to the end of the video (the stages only looked at the stop
    flag while waiting) and then delete the output silently; SIGTERM (kill, timeout) left the
    temporary file behind. Both now stop within a moment, say so in one line and leave nothing.

    Measured against the run's own rest (two workers, 0.1 s a frame: 300 frames take 15 s however
    fast the machine): it ends in less than half of what remained, and encodes less than half of the
    frames that remained; on a loaded machine the signal takes longer to act, not that much longer."""
    work = tmp_path / "work"
    work.mkdir()
    make_video(work / "call.mp4", frames=300, fps=30, size=(64, 48), audio=True)
    proc = _start(
        work,
        ["sharpen", "call.mp4", "-o", "out.mp4", "--model", "x", "--threads", "2"],
        "h.SlowNet(0.1)",
        tmp_path / "frames",
    )
    err, took, sent, encoded = _signal_after(proc, tmp_path / "frames", 5, sig)
    assert proc.returncode == code, err
    assert says in err and "Traceback" not in err and "terminate called" not in err
    left = 300 - sent
    assert took < left * 0.1 / 2 / 2 and encoded - sent < left / 2, (took, sent, encoded)
    assert sorted(p.name for p in work.iterdir()) == ["call.mp4"]


def test_live_sigterm_finishes_the_recording_like_ctrl_c(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    make_video(work / "call.mp4", frames=300, fps=30, size=(64, 48), audio=True)
    proc = _start(
        work, ["live", "--source", "call.mp4", "--sink", "out.mp4", "--model", "x"], "t.luma_net()", tmp_path / "frames"
    )
    err, _, sent, _ = _signal_after(proc, tmp_path / "frames", 10, signal.SIGTERM)
    assert proc.returncode == 0, err
    assert "stopped (SIGTERM)" in err and "Traceback" not in err
    processed = int(err.split("stopped (SIGTERM): ")[1].split()[0])
    assert sent <= video_facts(work / "out.mp4")["frames"] == processed < 300
    assert sorted(p.name for p in work.iterdir()) == ["call.mp4", "out.mp4"]


# -- bench --video --------------------------------------------------------------------------------
def test_bench_video_json(tmp_path, capsys, monkeypatch):
    import json

    monkeypatch.setattr(backends, "resolve_model", lambda m, device="cpu": luma_net())
    src = make_video(tmp_path / "in.mp4", frames=6, audio=True)
    assert main(["bench", "--video", str(src), "--model", "x", "--json", "--frames", "5"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["frames"] == 5 and r["path"] == "yuv" and r["bottleneck"] in ("decode", "model", "encode")
    assert {"decode_ms", "model_ms", "encode_ms", "e2e_fps", "cpu_ms", "cpu", "load_avg"} <= set(r)
    assert main(["bench", "--video", str(src), "--model", "x"]) == 0
    err = capsys.readouterr().err
    assert "bottleneck" in err and "frames/s" in err and "CPU ms/frame" in err
    assert main(["bench", "--video", str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4" in capsys.readouterr().err


# -- chroma format of the output --------------------------------------------------------------------
def _chroma_video(path: Path, pix_fmt: str, frames: int = 4, size: tuple[int, int] = (64, 48)) -> Path:
    """A video with colour detail finer than 4:2:0 keeps: 1-pixel red/blue rows on grey."""
    w, h = size
    img = np.full((h, w, 3), 128, np.uint8)
    img[::2, :, 0], img[1::2, :, 2] = 200, 200
    img[:, ::8] = 60  # something that moves
    encode_rgb_frames(
        av.open(str(path), "w"), "libx264", [np.roll(img, i, axis=1) for i in range(frames)], pix_fmt=pix_fmt
    )
    return path


def _pix_fmt(path: Path) -> str:
    with av.open(str(path)) as c:
        return next(iter(c.decode(video=0))).format.name


@pytest.mark.parametrize("model", ["luma", "rgb"])
@pytest.mark.parametrize("src_fmt", ["yuv444p", "yuv422p"])
def test_source_chroma_format_is_kept(tmp_path, fast_sharpener, capsys, model, src_fmt):
    """A 4:4:4 or 4:2:2 source keeps its chroma (was silently written 4:2:0, halving colour detail),
    on both the Y-plane and the RGB path; 4:2:0 stays 4:2:0 (the real-time path)."""
    src = _chroma_video(tmp_path / "in.mkv", src_fmt)
    sharpener = fast_sharpener if model == "luma" else Sharpener(torch.nn.Identity(), device="cpu")
    stats = sharpener.video(src, tmp_path / "out.mp4")
    assert stats.path == ("yuv" if model == "luma" else "rgb")
    assert _pix_fmt(tmp_path / "out.mp4") == src_fmt
    orig = np.stack([f for f, _ in read_frames(src)]).astype(float)
    out = np.stack([f for f, _ in read_frames(tmp_path / "out.mp4")]).astype(float)
    assert np.abs(orig[..., 0] - orig[..., 2]).mean() > 50  # the rows alternate red/blue ...
    assert np.abs(out[..., 0] - out[..., 2]).mean() > 40  # ... and still do (4:2:0 greys them: ~10)
    assert "warning" not in capsys.readouterr().err
    plain = make_video(tmp_path / "plain.mp4", frames=3, audio=False)
    sharpener.video(plain, tmp_path / "plain_out.mp4")
    assert _pix_fmt(tmp_path / "plain_out.mp4") == "yuv420p"


def test_chroma_an_encoder_cannot_keep_is_warned_once(tmp_path, fast_sharpener, capsys):
    src = _chroma_video(tmp_path / "in.mkv", "yuv444p")
    fast_sharpener.video(src, tmp_path / "out.mkv", codec="mpeg4")
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "out.mkv: mpeg4 cannot store the source's yuv444p chroma" in warnings[0]
    assert _pix_fmt(tmp_path / "out.mkv") == "yuv420p"


@pytest.mark.parametrize("how", ["rgb", "yuv", "live"])
def test_variable_frame_rate_keeps_frame_times_duration_and_average_rate(tmp_path, fast_sharpener, how):
    """The frame times were kept, but an MP4 output's duration came from x264's decoding times, which trail
    the frames by the B-frame delay: a 14.1 frames/s source became 1.07 s -> 0.90 s at 16.6 frames/s."""
    from kdsharp.infer.live import run_live

    times_ms = [0, 33, 66, 150, 183, 300, 333, 366, 500, 533, 700, 733, 766, 800, 1000]
    src = timed_video(tmp_path / "vfr.mp4", times_ms, Fraction(1, 1000))
    out = tmp_path / "out.mp4"
    dropped = 0
    if how == "live":
        dropped = run_live(str(src), str(out), sharpener=fast_sharpener).dropped
    else:
        (fast_sharpener if how == "yuv" else Sharpener(tiny_model(), device="cpu")).video(src, out, path=how)
    times = np.array(video_facts(out)["times"])
    if dropped:  # live keeps up by dropping frames on a busy machine: the kept ones keep their times
        assert len(times) == len(times_ms) - dropped
        assert all(np.abs(np.array(times_ms) / 1000 - t).min() < 1e-3 for t in times)
        return
    assert np.allclose(times, np.array(times_ms) / 1000, atol=1e-3)
    tol = 5e-3 if how == "live" else 1e-3  # live re-times its frames: the last lasts one average period
    with av.open(str(src)) as a, av.open(str(out)) as b:
        va, vb = a.streams.video[0], b.streams.video[0]
        assert float(vb.duration * vb.time_base) == pytest.approx(float(va.duration * va.time_base), abs=tol)
        assert float(vb.average_rate) == pytest.approx(float(va.average_rate), rel=tol)


def tiny_unet(seed: int = 0):
    """A small RGB ResUNet (stem 2, two levels) with random weights: a reach of a few tens of pixels."""
    from kdsharp.models.resunet import ResUNet

    g = torch.Generator().manual_seed(seed)
    m = ResUNet(channels=[4, 8], enc_blocks=[1, 1], dec_blocks=[1], stem=2)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.15)
    return m.eval().requires_grad_(False)


def test_rgb_reuse_serves_convolutional_unets_only():
    from kdsharp.infer.frames import rgb_reuse_multiple

    assert rgb_reuse_multiple(Sharpener(tiny_unet(), device="cpu")) == 4  # stem 2 x 2 levels
    assert rgb_reuse_multiple(Sharpener(tiny_model(), device="cpu")) is None  # not a U-Net
    assert rgb_reuse_multiple(Sharpener(tiny_unet(), device="cpu", tile=64)) is None  # tiled: its own crops
    compiled = Sharpener(tiny_unet(), device="cpu")
    compiled.backend._compiled = True  # as --compile leaves it: crops of new sizes would compile again
    assert rgb_reuse_multiple(compiled) is None


def test_rgb_reuse_keeps_unchanged_tiles_and_matches_a_full_pass():
    """An RGB U-Net frame by frame through TileReuse: tiles away from a change keep their output
    bit for bit, an identical frame computes nothing, and recomputed tiles (with RGB_MARGIN pixels
    of context, beyond this net's reach) equal a whole-frame pass within float rounding."""
    from kdsharp.infer.frames import RGB_MARGIN, RgbNet

    sharpener = Sharpener(tiny_unet(1), device="cpu", threads=1)
    net = RgbNet(sharpener, 4)
    reuse = TileReuse(net, tile=32, margin=RGB_MARGIN)
    base = camera_like(240, 400, seed=7)  # large enough that crops cost less than a whole frame
    rng = np.random.default_rng(0)
    frames = [base]
    for i in range(5):  # a small moving patch on a static background
        f = base.copy()
        f[30 + i : 50 + i, 120 + 3 * i : 150 + 3 * i] = rng.integers(0, 255, (20, 30, 3))
        frames.append(f)
    frames.append(frames[-1].copy())
    for f in frames:
        full = net.run(net.pad(f))[:240, :400]
        out = reuse(f, True)
        assert out.shape == f.shape and np.abs(out.astype(int) - full).max() <= 1
    assert np.abs(full.astype(int) - frames[-1]).mean() > 1  # the net changes the picture
    assert reuse.stats.frames_skipped == 1 and 0.4 < reuse.stats.skipped_fraction < 1
    g = frames[-1].copy()
    g[230:, 390:] = 255 - g[230:, 390:]  # a change in a corner: the far side stays as it was
    before, after = reuse(frames[-1], True), reuse(g, True)
    assert np.array_equal(before[:, :64], after[:, :64])


def test_rgb_reuse_with_a_tolerance_skips_camera_noise_but_sees_a_colour_change():
    """Fresh RGB noise in every frame (a camera): most tiles are kept; a patch that changes colour at
    the same luma (which the luma cells cannot see) is recomputed."""
    from kdsharp.infer.frames import RGB_MARGIN, RgbNet

    sharpener = Sharpener(tiny_unet(2), device="cpu", threads=1)
    net = RgbNet(sharpener, 4)
    clean = camera_like(96, 160, seed=3)
    reuse = TileReuse(net, tile=32, tolerance=3, refresh=1000, margin=RGB_MARGIN)
    for f in noisy_frames(clean, 6, sigma=2.0):
        reuse(f, True)
    assert reuse.stats.skipped_fraction > 0.7
    before = clean.copy()
    before[32:64, 64:96] = (200, 100, 50)  # luma 124.2
    after = before.copy()
    after[32:64, 64:96] = (50, 170, 104)  # luma 126.6: within the tolerance, another colour
    reuse(before, True)
    out = reuse(after, True)
    full = net.run(net.pad(after))
    assert np.abs(out[32:64, 64:96].astype(int) - full[32:64, 64:96]).max() <= 1


def test_video_reuse_runs_an_rgb_unet_and_stays_close_to_the_full_pass(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=6, size=(96, 64), audio=False)
    s = Sharpener(tiny_unet(3), device="cpu")
    a = s.video(src, tmp_path / "a.mp4", crf=0)
    b = s.video(src, tmp_path / "b.mp4", crf=0, reuse=True, reuse_tolerance=0)
    assert a.path == b.path == "rgb" and b.reused is not None and a.reused is None
    fa = [f.astype(int) for f, _ in read_frames(tmp_path / "a.mp4")]
    fb = [f.astype(int) for f, _ in read_frames(tmp_path / "b.mp4")]
    assert len(fa) == len(fb) == 6
    assert max(np.abs(x - y).max() for x, y in zip(fa, fb, strict=True)) <= 2


def test_reuse_runs_the_whole_frame_when_its_crops_would_cost_as_much():
    """Changes spread over the frame: the crops with their margins would cover most of it, so the
    frame is run whole (one call, exact) instead of as many overlapping crops."""
    m = luma_net(2, channels=8, blocks=2)
    net = LumaNet(m)
    calls: list[tuple[int, ...]] = []
    run = net.run
    net.run = lambda yp, full_range: calls.append(yp.shape) or run(yp, full_range)  # type: ignore[method-assign]
    reuse = TileReuse(net, m, tile=24)
    base = make_test_image(240, 320, seed=8)[:, :, 0]
    reuse(base, False)
    spotted = base.copy()
    spotted[:150:48, ::48] = 255 - spotted[:150:48, ::48]  # a changed pixel in every other tile of the top 5/8
    calls.clear()
    out = reuse(spotted, False)
    assert calls == [(240, 320)]  # one whole-frame run
    assert np.array_equal(out, net(spotted, False))
    reuse(base, False)  # all back as it was (whole again), then one small change
    one = base.copy()
    one[100:104, 150:154] = 255 - one[100:104, 150:154]
    calls.clear()
    reuse(one, False)
    assert len(calls) == 1 and calls[0][0] * calls[0][1] < 240 * 320 / 4  # a small change: one small crop
