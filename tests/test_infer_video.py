"""Video path: frame count, timing, resolution, rotation and audio preserved; atomic on failure."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kdsharp.errors import InputError, OutputError
from kdsharp.infer.sharpener import Sharpener
from kdsharp.infer.video import VideoStats
from kdsharp.io.video import VideoWriter, probe_video, read_frames
from test_infer_helpers import make_video, sha, tiny_model, video_facts


@pytest.fixture(scope="module")
def sharpener():
    return Sharpener(tiny_model(), device="cpu", batch=3)


def test_video_preserves_frames_timing_size_audio(tmp_path, sharpener):
    src = make_video(tmp_path / "in.mp4", frames=10, size=(64, 48), fps=15, audio=True)
    before = sha(src)
    stats = sharpener.video(src, tmp_path / "out.mp4")
    a, b = video_facts(src), video_facts(tmp_path / "out.mp4")
    assert b["frames"] == a["frames"] == 10
    assert b["size"] == a["size"] == (64, 48)
    assert np.allclose(b["times"], a["times"], atol=1e-4) and b["rate"] == a["rate"]
    assert b["audio_codecs"] == ["aac"] and b["audio"] == a["audio"]  # packets copied byte for byte
    assert sha(src) == before
    assert isinstance(stats, VideoStats) and stats.frames == 10 and stats.audio_streams == 1
    assert stats.decode_s > 0 and stats.model_s > 0 and stats.encode_s > 0 and stats.wall_s > 0
    assert "frames/s" in stats.summary() and np.isfinite(stats.model_fps)


def test_video_frames_are_the_model_output(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=4, audio=False)
    Sharpener(torch.nn.Identity(), device="cpu").video(src, tmp_path / "same.mp4")
    Sharpener(tiny_model(), device="cpu").video(src, tmp_path / "sharp.mp4")
    orig = [f for f, _ in read_frames(src)]
    same = [f for f, _ in read_frames(tmp_path / "same.mp4")]
    sharp = [f for f, _ in read_frames(tmp_path / "sharp.mp4")]
    diff_same = np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(orig, same)])
    diff_sharp = np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(orig, sharp)])
    assert diff_same < 3 < diff_sharp  # identity round trip is (visually) lossless; the model changes frames


def test_rotation_and_odd_size_kept(tmp_path, sharpener):
    src = make_video(tmp_path / "rot.mp4", frames=5, size=(63, 47), audio=False, rotation=90)
    sharpener.video(src, tmp_path / "out.mp4")
    info = probe_video(tmp_path / "out.mp4")
    assert (info.width, info.height) == (63, 47) and info.rotation == 90
    assert info.display_matrix == probe_video(src).display_matrix


@pytest.mark.parametrize("ext,codec", [(".mkv", "mpeg4"), (".webm", None)])
def test_other_containers_and_codecs(tmp_path, sharpener, ext, codec):
    src = make_video(tmp_path / "in.mp4", frames=4, audio=False)
    sharpener.video(src, tmp_path / f"out{ext}", codec=codec, crf=30)
    facts = video_facts(tmp_path / f"out{ext}")
    assert facts["frames"] == 4 and facts["size"] == (64, 48)


def test_failure_mid_video_leaves_no_file(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=8)

    class Breaks(torch.nn.Module):
        calls = 0

        def forward(self, x):
            Breaks.calls += 1
            if Breaks.calls > 3:
                raise RuntimeError("model crashed")
            return x

    with pytest.raises(RuntimeError, match="model crashed"):
        Sharpener(Breaks(), device="cpu").video(src, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_writer_failure_at_flush_leaves_no_file(tmp_path):
    class Fails(VideoWriter):
        def _flush(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        with Fails(tmp_path / "v.mp4", 32, 32, 10) as w:
            w.write(np.zeros((32, 32, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_bad_videos(tmp_path, sharpener):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01 not a video " * 50)
    with pytest.raises(InputError, match="garbage.mp4"):
        sharpener.video(garbage, tmp_path / "o1.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        sharpener.video(empty, tmp_path / "o2.mp4")
    audio_only = make_video(tmp_path / "audio.mp4", video=False, audio=True)
    with pytest.raises(InputError, match="no video stream"):
        sharpener.video(audio_only, tmp_path / "o3.mp4")
    src = make_video(tmp_path / "in.mp4", frames=3, audio=False)
    with pytest.raises(OutputError, match="extension"):
        sharpener.video(src, tmp_path / "o4.gif")
    with pytest.raises(OutputError, match="is the input itself"):
        sharpener.video(src, src)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("o")]


def test_audio_that_cannot_be_copied_is_a_clear_error(tmp_path, sharpener):
    src = make_video(tmp_path / "in.mp4", frames=3, audio=True)
    with pytest.raises(OutputError, match="aac audio cannot be copied"):
        sharpener.video(src, tmp_path / "out.webm")
    assert not (tmp_path / "out.webm").exists()


def test_writer_with_tone_and_default_timestamps(tmp_path):
    frames = [np.full((32, 48, 3), i * 20, np.uint8) for i in range(6)]
    tone = (np.sin(np.arange(24000) / 10).astype(np.float32) * 0.1, 48000)
    with VideoWriter(tmp_path / "t.mp4", 48, 32, 12, audio_tone=tone) as w:
        for f in frames:
            w.write(f)
    facts = video_facts(tmp_path / "t.mp4")
    assert facts["frames"] == 6 and np.allclose(np.diff(facts["times"]), 1 / 12, atol=1e-3)
    assert facts["audio_codecs"] == ["aac"] and len(facts["audio"]) > 10
