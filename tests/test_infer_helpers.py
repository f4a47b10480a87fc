"""Helpers shared by the inference tests (tiny models, tiny videos) and unit tests of the small parts."""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from conftest import make_test_image
from torch import nn

from kdsharp.infer.live import LatestFrame
from kdsharp.infer.tiling import edge_profile, tile_starts


class TinyNet(nn.Module):
    """x + 0.2 * conv(relu(conv(x))): receptive-field radius 2, deterministic, visibly changes images."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 3, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        return x + 0.2 * self.b(torch.relu(self.a(x)))


class SlowNet(nn.Module):
    """Identity that takes ``delay`` seconds per call: a model slower than real time."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay

    def forward(self, x):
        time.sleep(self.delay)
        return x


def tiny_model() -> nn.Module:
    return TinyNet().eval()


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def encode_rgb_frames(
    out, codec: str, frames, rate: int = 15, pix_fmt: str = "yuv420p", skip: tuple[int, ...] = (), extra=None
) -> None:
    """Encode RGB uint8 frames (HxWx3) into a new ``codec`` stream of the open container ``out`` (frame i
    at pts i in 1/rate; indices in ``skip`` are left out, as a capture drops frames), flush and close it.
    ``extra(out)`` is called after the video stream is added (to add, say, a subtitle stream)."""
    frames = list(frames)
    vs = out.add_stream(codec, rate=rate)
    vs.height, vs.width = frames[0].shape[:2]
    vs.pix_fmt = pix_fmt
    if extra is not None:
        extra(out)
    for i, img in enumerate(frames):
        if i in skip:
            continue
        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        f.pts, f.time_base = i, Fraction(1, rate)
        for p in vs.encode(f):
            out.mux(p)
    for p in vs.encode():
        out.mux(p)
    out.close()


def make_video(
    path: Path,
    frames: int = 10,
    size: tuple[int, int] = (64, 48),
    fps: int = 15,
    audio: bool = True,
    rotation: int | None = None,
    codec: str = "libx264",
    video: bool = True,
    display_matrix: tuple[int, ...] | None = None,
) -> Path:
    """A small test video made with PyAV directly (not with kdsharp), optionally with an AAC tone."""
    w, h = size
    out = av.open(str(path), "w")
    vs = None
    if video:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height = w, h
        vs.pix_fmt = "yuv444p" if (w % 2 or h % 2) else "yuv420p"
        if rotation is not None:
            vs.set_display_rotation(rotation)
        if display_matrix is not None:  # e.g. a mirrored front camera
            vs.set_display_matrix(list(display_matrix))
    a = out.add_stream("aac", rate=44100) if audio else None
    if a is not None:
        a.layout = "mono"
    base = cv2.GaussianBlur(make_test_image(h, w, seed=1), (0, 0), 1.5)  # camera-like: soft, muted colours
    grey = cv2.cvtColor(cv2.cvtColor(base, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    base = cv2.addWeighted(base, 0.4, grey, 0.6, 0)
    for i in range(frames if video else 0):
        img = np.roll(base, i, axis=1)
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts = i
        f.time_base = Fraction(1, fps)
        for p in vs.encode(f):
            out.mux(p)
    if vs is not None:
        for p in vs.encode():
            out.mux(p)
    if a is not None:
        n = int(44100 * frames / fps)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100)).astype(np.float32)[None]
        for i in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, i : i + 1024]), format="flt", layout="mono")
            af.sample_rate, af.pts, af.time_base = 44100, i, Fraction(1, 44100)
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    out.close()
    return path


def timed_video(path: Path, ticks: list[int], time_base: Fraction, size: tuple[int, int] = (64, 48)) -> Path:
    """An H.264 video whose frames come at ``ticks`` of ``time_base`` (a phone's variable frame rate, or its
    1/90000 clock); no B-frames, so its own duration and average rate follow its frame times."""
    w, h = size
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=15)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.codec_context.time_base = time_base
        v.options = {"preset": "ultrafast"}
        for i, t in enumerate(ticks):
            f = av.VideoFrame.from_ndarray(np.roll(make_test_image(h, w, seed=1), 2 * i, axis=1), format="rgb24")
            f.pts, f.time_base = t, time_base
            out.mux(v.encode(f))
        out.mux(v.encode())
    return path


def video_facts(path: Path) -> dict:
    """Frame count, size, frame times (s), rotation, and the audio packets' bytes of ``path``."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        times, rotation, size = [], None, None
        for f in c.decode(vs):
            times.append(float(f.pts * f.time_base))
            rotation = f.rotation if rotation is None else rotation
            size = (f.width, f.height)
        rate = vs.average_rate
    with av.open(str(path)) as c:
        audio = [bytes(p) for p in c.demux(*c.streams.audio) if p.size] if c.streams.audio else []
        codecs = [s.codec_context.name for s in c.streams.audio]
    return {
        "frames": len(times),
        "times": times,
        "size": size,
        "rotation": rotation,
        "rate": rate,
        "audio": audio,
        "audio_codecs": codecs,
    }


# -- unit tests of the small parts --------------------------------------------------------------
@pytest.mark.parametrize("size,tile,overlap", [(100, 40, 8), (40, 40, 8), (30, 40, 8), (129, 64, 16)])
def test_tile_starts_cover_with_overlap(size, tile, overlap):
    starts = tile_starts(size, min(tile, size), overlap)
    t = min(tile, size)
    assert starts[0] == 0 and starts[-1] + t == size
    for a, b in itertools.pairwise(starts):
        assert a + t - b >= overlap  # neighbours share at least `overlap` pixels


def test_edge_profile_ramps_sum_to_one():
    overlap = 16
    lead = edge_profile(48, overlap, lead=True, trail=False)
    trail = edge_profile(48, overlap, lead=False, trail=True)
    assert torch.all(lead[: overlap // 4] == 0) and torch.all(lead[overlap:] == 1)
    # trailing ramp of one tile + leading ramp of the next (exact overlap) sum to 1
    total = trail[48 - overlap :] + lead[:overlap]
    assert torch.allclose(total, torch.ones(overlap), atol=1e-6)
    assert torch.all(edge_profile(10, 0, True, True) == 1)


def test_latest_frame_keeps_newest_and_counts_drops():
    slot = LatestFrame()
    for i in range(5):
        slot.put(i)
    assert slot.get(timeout=1) == 4 and slot.dropped == 4
    threading.Timer(0.05, slot.close).start()
    assert slot.get(timeout=2) is None
    with pytest.raises(TimeoutError):
        LatestFrame().get(timeout=0.01)
