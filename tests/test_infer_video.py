"""Video path: frame count, timing, resolution, rotation and audio preserved; atomic on failure."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch
from test_infer_helpers import encode_rgb_frames, make_video, sha, timed_video, tiny_model, video_facts

from kdsharp.errors import InputError, OutputError
from kdsharp.infer.sharpener import Sharpener
from kdsharp.infer.video import VideoStats
from kdsharp.io.video import VideoWriter, encoder_settings, mpeg4_q, probe_video, read_frames


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
    diff_same = np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(orig, same, strict=True)])
    diff_sharp = np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(orig, sharp, strict=True)])
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


def test_read_frames_of_a_folder_says_what_to_pass(tmp_path):
    """A folder given where one video is read said "is a folder, not a video" and no more: the
    one line says to pass a video file, and which commands take a folder."""
    folder = tmp_path / "clips"
    folder.mkdir()
    make_video(folder / "in.mp4", frames=2, audio=False)
    for read in (lambda p: next(read_frames(p)), probe_video):
        with pytest.raises(InputError) as e:
            read(folder)
        msg = str(e.value)
        assert msg.startswith(f"{folder}: is a folder, not a video (pass one video file;"), msg
        assert "kdsharp sharpen" in msg and "\n" not in msg


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


# -- sources and containers a demanding user has (found by trying them) -----------------------------
def _rgb_video(path, size=(48, 32), frames=6):
    """A lossless RGB (libx264rgb, gbrp) video, as screen recorders write: colour matrix 'RGB'."""
    import av

    rng = np.random.default_rng(3)
    base = rng.integers(40, 220, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    base = np.pad(base, ((0, size[1] - base.shape[0]), (0, size[0] - base.shape[1]), (0, 0)), mode="edge")
    encode_rgb_frames(
        av.open(str(path), "w"), "libx264rgb", [np.roll(base, i, axis=1) for i in range(frames)], pix_fmt="rgb24"
    )
    return path


@pytest.mark.parametrize("size", [(48, 32), (47, 33)])
def test_rgb_source_keeps_its_colours(tmp_path, size):
    """An RGB source's 'RGB' colour tag must not be written onto the YUV output (players then show
    YUV as GBR: wildly wrong colours); the output is tagged with the matrix it was converted with."""
    src = _rgb_video(tmp_path / "screen.mkv", size)
    Sharpener(torch.nn.Identity(), device="cpu").video(src, tmp_path / "out.mkv")
    info = probe_video(tmp_path / "out.mkv")
    assert info.colorspace not in (0, 2)
    orig = np.stack([f for f, _ in read_frames(src)]).astype(float)
    out = np.stack([f for f, _ in read_frames(tmp_path / "out.mkv")]).astype(float)
    assert np.abs(orig.mean((0, 1, 2)) - out.mean((0, 1, 2))).max() < 3  # was ~50 levels off
    assert 10 * np.log10(255**2 / ((orig - out) ** 2).mean()) > 20  # was ~13 dB (4:2:0 chroma keeps it < 30)


def test_avi_output_keeps_rate_order_and_says_it_loses_rotation(tmp_path, sharpener, capsys):
    src = make_video(tmp_path / "in.mp4", frames=12, fps=15, audio=False)
    sharpener.video(src, tmp_path / "out.avi")
    b = video_facts(tmp_path / "out.avi")
    assert b["frames"] == 12 and b["rate"] == 15  # was 600 fps with 20x the frames in its header
    assert b["times"] == sorted(b["times"]) and np.allclose(np.diff(b["times"]), 1 / 15, atol=1e-6)
    assert probe_video(tmp_path / "out.avi").frames == 12
    assert "warning" not in capsys.readouterr().err
    rot = make_video(tmp_path / "rot.mp4", frames=3, audio=False, rotation=90)
    sharpener.video(rot, tmp_path / "rot.avi")
    err = capsys.readouterr().err
    assert "rot.avi: AVI cannot store the source's rotation (90 degrees)" in err and "turned" in err
    flip = make_video(tmp_path / "flip.mp4", frames=3, audio=False, display_matrix=_display_matrix(0, True))
    sharpener.video(flip, tmp_path / "flip.avi")
    err = capsys.readouterr().err
    assert "flip.avi: AVI cannot store the source's left-right flip" in err and "degrees" not in err


def _avi_with_gap(path, frames=12, missing=5):
    """An MPEG-4 AVI whose index lists an empty chunk where a capture dropped a frame."""
    import av

    encode_rgb_frames(
        av.open(str(path), "w"),
        "mpeg4",
        [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(frames)],
        skip=(missing,),
    )
    return path


def test_complete_avi_with_a_dropped_frame_chunk_is_not_called_truncated(tmp_path, sharpener, capsys):
    src = _avi_with_gap(tmp_path / "gap.avi")
    assert probe_video(src).frames == 12  # the index counts the empty chunk
    stats = sharpener.video(src, tmp_path / "out.mp4")
    assert stats.frames == 11 and stats.partial is None and "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("ext", [".mkv", ".webm"])
def test_truncated_matroska_is_reported_not_silently_shortened(tmp_path, sharpener, capsys, ext):
    """Matroska/WebM have no frame count: a cut file is told by its header's duration."""
    full = tmp_path / f"full{ext}"
    make_video(tmp_path / "in.mp4", frames=45, fps=15, audio=False)
    sharpener.video(tmp_path / "in.mp4", full)
    assert sharpener.video(full, tmp_path / f"copy{ext}").partial is None
    data = full.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: len(data) * 6 // 10])
    stats = sharpener.video(cut, tmp_path / f"out{ext}")
    err = capsys.readouterr().err
    assert 0 < stats.frames < 45 and stats.partial and "its header gives (truncated?)" in stats.partial
    assert "cut" in err and video_facts(tmp_path / f"out{ext}")["frames"] == stats.frames


def test_audio_longer_than_video_in_matroska_is_complete(tmp_path, sharpener, capsys):
    """A stream's own DURATION tag, not the file's (audio) duration, says where the video ends."""
    import av

    src = make_video(tmp_path / "in.mp4", frames=15, fps=15, audio=True)
    with av.open(str(src)) as c, av.open(str(tmp_path / "long_audio.mkv"), "w") as out:
        v = out.add_stream_from_template(c.streams.video[0])
        a = out.add_stream_from_template(c.streams.audio[0])
        for p in c.demux():
            if p.dts is None:
                continue
            if p.stream.type == "video" and float(p.pts * p.time_base) >= 0.4:
                continue  # the video stops at 0.4 s, the audio goes on to 1 s
            p.stream = v if p.stream.type == "video" else a
            out.mux(p)
    stats = sharpener.video(tmp_path / "long_audio.mkv", tmp_path / "out.mkv")
    assert stats.partial is None and "warning" not in capsys.readouterr().err


def test_streams_that_are_not_copied_are_named_once(tmp_path, sharpener, capsys):
    import av

    encode_rgb_frames(
        av.open(str(tmp_path / "talk.mkv"), "w"),
        "libx264",
        [np.full((48, 64, 3), 30 * i, np.uint8) for i in range(4)],
        extra=lambda out: out.add_stream("ass"),
    )  # a subtitle track (empty)
    sharpener.video(tmp_path / "talk.mkv", tmp_path / "out.mkv")
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "talk.mkv: its 1 subtitle stream(s) are not copied" in warnings[0]
    assert video_facts(tmp_path / "out.mkv")["frames"] == 4


def _avi_slots(path):
    """The frame slots (dts) of an AVI's video chunks as stored, without PyAV's generated pts."""
    import av

    with av.open(str(path)) as c:
        c.flags &= ~av.container.Flags.gen_pts.value
        return [(p.dts, p.size > 0) for p in c.demux(c.streams.video[0]) if p.dts is not None]


def test_avi_output_starts_with_the_input_and_reads_back_at_the_same_times(tmp_path, sharpener):
    """H.264 in AVI: the first frame is slot 0 with no empty slot after it (the AAC source's negative
    start made the muxer shift the video), and an AVI input is read at its slots, not one late."""
    src = make_video(tmp_path / "in.mp4", frames=12, fps=15, audio=True)
    sharpener.video(src, tmp_path / "out.avi")
    assert _avi_slots(tmp_path / "out.avi") == [(i, True) for i in range(12)]  # was 0, 2, 3, ... 12
    times = [pts for _, pts in read_frames(tmp_path / "out.avi")]
    assert times == list(range(12))  # was 1..12 (2..13 with the empty slot)
    sharpener.video(tmp_path / "out.avi", tmp_path / "back.mp4")
    a, b = video_facts(src), video_facts(tmp_path / "back.mp4")
    assert np.allclose(b["times"], a["times"], atol=1e-3)  # was one frame late
    import av

    late = tmp_path / "late.mkv"  # its first frame is at 0.2 s (a cut recording)
    encode_rgb_frames(
        av.open(str(late), "w"), "libx264", [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(9)], skip=(0, 1, 2)
    )
    sharpener.video(late, tmp_path / "late.avi")
    assert _avi_slots(tmp_path / "late.avi") == [(i, True) for i in range(6)]  # was 0, then 4..8


def test_avi_input_with_b_frames_keeps_its_frame_times(tmp_path, sharpener):
    """An H.264 AVI with B-frames (older recorders): no timestamps, frames decoded out of order; PyAV's
    generated pts were shuffled (1, 4, 3, 5, 2, ...), so the output's timing was wrong."""
    import av

    src = tmp_path / "old.avi"
    encode_rgb_frames(av.open(str(src), "w"), "libx264", [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(10)])
    assert [pts for _, pts in read_frames(src)] == list(range(10))
    sharpener.video(src, tmp_path / "out.mp4")
    facts = video_facts(tmp_path / "out.mp4")
    assert facts["frames"] == 10 and np.allclose(facts["times"], np.arange(10) / 15, atol=1e-3)


def test_audio_a_container_refuses_at_start_is_named(tmp_path, sharpener):
    """Opus into .mov: the muxer refuses it only when writing starts; the error names the audio, not
    just 'Invalid argument' with 'check the extension and the codec'."""
    import av

    src = tmp_path / "talk.mkv"
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=15)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream("libopus", rate=48000)
        a.layout = "mono"
        for i in range(6):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * i, np.uint8), format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode())
        for i in range(0, 19200, 960):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt", layout="mono")
            af.sample_rate, af.pts = 48000, i
            out.mux(a.encode(af))
        out.mux(a.encode())
    with pytest.raises(OutputError, match=r"out.mov: its opus audio \(from .*talk.mkv\) cannot be copied into a \.mov"):
        sharpener.video(src, tmp_path / "out.mov")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.mkv"]
    assert video_facts(sharpener.video(src, tmp_path / "out.mkv").dst)["audio_codecs"] == ["opus"]


def test_a_second_video_stream_is_named_as_not_copied(tmp_path, sharpener, capsys):
    """Two video streams (a camera + a screen track): only the first is sharpened; the second was dropped
    without a word."""
    import av

    with av.open(str(tmp_path / "two.mkv"), "w") as out:
        streams = [out.add_stream("libx264", rate=15) for _ in range(2)]
        for v in streams:
            v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for i in range(4):
            for v in streams:
                f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * i, np.uint8), format="rgb24")
                f.pts = i
                out.mux(v.encode(f))
        for v in streams:
            out.mux(v.encode())
    sharpener.video(tmp_path / "two.mkv", tmp_path / "out.mkv")
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "two.mkv: its 1 video stream(s) are not copied" in warnings[0]
    assert "sharpens the first video stream" in warnings[0]


def test_reuse_on_the_rgb_path_keeps_the_frame_workers(tmp_path):
    """--reuse cannot apply to an RGB model: it must not cost that model its parallel frame workers."""
    from kdsharp.infer.video import sharpen_video

    src = make_video(tmp_path / "in.mp4", frames=4, audio=False)
    sharpener = Sharpener(tiny_model(), device="cpu")
    stats = sharpen_video(sharpener, src, tmp_path / "out.mp4", threads=2, reuse=True)
    assert stats.workers == 2 and stats.reused is None


def test_mpeg4_writes_a_source_timed_in_90khz(tmp_path, sharpener):
    """codec=mpeg4 (offered by --codec) failed on a phone MP4 timed in 1/90000 s with 'cannot start writing
    (Invalid argument)': MPEG-4 Part 2 stores no time base over 16 bits."""
    src = timed_video(tmp_path / "phone.mp4", [6000 * i for i in range(6)], Fraction(1, 90000))
    sharpener.video(src, tmp_path / "out.mp4", codec="mpeg4")
    facts = video_facts(tmp_path / "out.mp4")
    assert facts["frames"] == 6 and np.allclose(facts["times"], np.arange(6) / 15, atol=1e-4)


@pytest.mark.parametrize("codec,top", [("libx264", 51), ("libx265", 51)])
def test_a_crf_above_the_encoders_range_is_one_clear_line(tmp_path, sharpener, codec, top):
    """crf=60: x264 took it silently as 51; x265 refused it at start, and the error blamed the audio ('its aac
    audio may not fit a .mp4 file')."""
    src = make_video(tmp_path / "in.mp4", frames=6, audio=True)
    with pytest.raises(OutputError, match=rf"out.mp4: crf=60 is out of range for {codec} \(use 0 to {top}, "):
        sharpener.video(src, tmp_path / "out.mp4", codec=codec, crf=60)
    sharpener.video(src, tmp_path / "out.mp4", codec=codec, crf=top)


def test_a_one_frame_video_encodes_with_libx265_every_time(tmp_path):
    """libx265 leaves the decoding time of a 1-frame video unset (garbage): about one write in four failed
    with 'Not yet implemented in FFmpeg, patches welcome'."""
    frame = np.zeros((48, 64, 3), np.uint8)
    for i in range(16):
        with VideoWriter(tmp_path / f"one{i}.mp4", 64, 48, 15, codec="libx265") as w:
            w.write(frame)
        assert video_facts(tmp_path / f"one{i}.mp4")["frames"] == 1


class _GarbageDts:
    """A video stream whose packets come out with decoding time ``dts`` (what libx265 leaves unset)."""

    def __init__(self, stream, dts: int):
        self._stream, self._dts = stream, dts

    def encode(self, frame=None):
        packets = self._stream.encode(frame)
        for p in packets:
            p.dts = self._dts
        return packets

    def __getattr__(self, name):
        return getattr(self._stream, name)


@pytest.mark.parametrize("dts", [-(1 << 24), -(1 << 31) + 1, 1 << 40])
def test_a_garbage_decoding_time_is_replaced_before_muxing(tmp_path, dts):
    """The libx265 garbage dts is random: one some 16 M ticks before its pts still failed the MP4 muxer
    ('patches welcome'; 1 run in ~150 of the test above), as did one after it. Any dts more than 64 frames
    before its pts, or after it, is taken as the pts (a B-frame delay is a few frames)."""
    frames = [np.full((48, 64, 3), v, np.uint8) for v in (0, 128)]
    with VideoWriter(tmp_path / "g.mp4", 64, 48, 15, codec="libx264") as w:
        w._video = _GarbageDts(w._video, dts)
        for f in frames:
            w.write(f)
    facts = video_facts(tmp_path / "g.mp4")
    assert facts["frames"] == 2 and facts["rate"] == 15


def test_b_frame_decoding_times_across_long_gaps_are_kept(tmp_path):
    """A variable-rate source with long still stretches (a screen recording): x264's B-frame delay then
    puts a dts many nominal frame periods before its pts, which is real, not garbage (a bound of 64
    periods replaced it, and the muxer refused the out-of-order dts)."""
    scene = cv2.resize(np.random.default_rng(0).integers(0, 256, (12, 40, 3), dtype=np.uint8), (320, 96))
    with VideoWriter(tmp_path / "gaps.mp4", 64, 48, 30, preset="veryfast") as w:
        for i in range(12):  # a slow pan (x264 picks B-frames for it), frames 17 s apart at 30 fps
            w.write(np.ascontiguousarray(scene[24:72, 2 * i : 2 * i + 64]), pts=i * 512)
    facts = video_facts(tmp_path / "gaps.mp4")
    assert facts["frames"] == 12 and np.allclose(np.diff(facts["times"]), 512 / 30)


def test_mpeg4_takes_the_crf_as_its_fixed_quantiser(tmp_path):
    """codec=mpeg4 (--codec mpeg4, or the default where libx264 is missing) wrote every crf at the same bit
    rate, silently: the crf now sets its fixed quantiser (MPEG4_Q, crf 18 -> q 2), so quality and size follow it."""
    src = make_video(tmp_path / "in.mp4", frames=6, size=(96, 64), audio=False)
    frames = [f for f, _ in read_frames(src)]
    size, psnr = {}, {}
    for crf in (0, 18, 51):
        out = tmp_path / f"crf{crf}.avi"
        with VideoWriter(out, 96, 64, 15, codec="mpeg4", crf=crf) as w:
            for f in frames:
                w.write(f)
        back = np.stack([f for f, _ in read_frames(out)]).astype(np.float64)
        size[crf] = out.stat().st_size
        psnr[crf] = 10 * np.log10(255**2 / np.mean((back - np.stack(frames)) ** 2))
    assert size[0] > size[18] > size[51] and psnr[0] > psnr[18] > psnr[51] + 5, (size, psnr)
    assert [mpeg4_q(c) for c in (0, 18, 23, 30, 51)] == [1, 2, 3, 9, 31]
    assert encoder_settings(96, 64, "mpeg4", crf=23).describe() == "mpeg4 q 3 (crf 23)"
    assert encoder_settings(96, 64, "mpeg4").describe() == "mpeg4"  # no crf: a bit rate
    with pytest.raises(OutputError, match=r"crf=52 is out of range for mpeg4 \(use 0 to 51"):
        encoder_settings(96, 64, "mpeg4", crf=52)


def test_a_preset_the_encoder_ignores_is_said_once_for_the_whole_run(tmp_path, sharpener, capsys):
    """--encoder-preset with mpeg4 (or VP9) was dropped silently: one warning for the run names it."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_video(folder / name, frames=3, audio=False)
    result = sharpener.paths([folder], tmp_path / "out", codec="mpeg4", preset="slow", crf=23)
    assert result.ok and len(result.done) == 2
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert warnings == [
        f"warning: {tmp_path / 'out' / 'a.mp4'} (and 1 more video): mpeg4 takes no preset=slow: ignored "
        "(presets are libx264's and libx265's)"
    ], warnings
    sharpener.paths([folder], tmp_path / "out2", codec="libvpx-vp9", preset="slow")  # VP9 has no presets either
    assert "libvpx-vp9 takes no preset=slow" in capsys.readouterr().err
    sharpener.paths([folder], tmp_path / "out3", codec="libx264", preset="slow", crf=23)  # all of them apply
    assert "warning" not in capsys.readouterr().err
    sharpener.video(folder / "a.mp4", tmp_path / "one.mp4", codec="mpeg4", preset="slow")  # a direct call too
    assert capsys.readouterr().err.count("mpeg4 takes no preset=slow: ignored") == 1


# (display matrix as av_display_rotation_set(angle) then av_display_matrix_flip(hflip) make it) -> the
# filters ffmpeg's and ffplay's autorotation insert for it (fftools: transpose / hflip / vflip by theta)
AUTOROTATE = {
    (0, False): [],
    (0, True): [("hflip", None)],
    (90, False): [("transpose", "clock")],
    (90, True): [("transpose", "cclock_flip")],
    (180, False): [("hflip", None), ("vflip", None)],
    (180, True): [("vflip", None)],
    (270, False): [("transpose", "cclock")],
    (270, True): [("transpose", "clock_flip")],
}


def _display_matrix(angle: int, hflip: bool) -> tuple[int, ...]:
    r = -np.radians(angle)
    c, s = round(np.cos(r) * 65536), round(np.sin(r) * 65536)
    m = [c, -s, 0, s, c, 0, 0, 0, 1 << 30]
    if hflip:
        m[0], m[3], m[6] = -m[0], -m[3], -m[6]
    return tuple(m)


def _filtered(img: np.ndarray, filters) -> np.ndarray:
    import av

    graph = av.filter.Graph()
    last = graph.add_buffer(width=img.shape[1], height=img.shape[0], format="rgb24", time_base=Fraction(1, 30))
    for name, arg in filters:
        node = graph.add(name, arg) if arg else graph.add(name)
        last.link_to(node)
        last = node
    sink = graph.add("buffersink")
    last.link_to(sink)
    graph.configure()
    graph.push(av.VideoFrame.from_ndarray(img, format="rgb24"))
    return graph.pull().to_ndarray(format="rgb24")


@pytest.mark.parametrize("angle,hflip", list(AUTOROTATE))
def test_display_orientation_shows_what_ffmpeg_autorotation_shows(angle, hflip):
    """A mirrored front-camera matrix was read as a half turn (upside down in live's side by side)."""
    from kdsharp.io.video import display_orientation
    from kdsharp.ops.geometry import flip_rotate

    img = (np.arange(4 * 6 * 3).reshape(4, 6, 3) * 3).astype(np.uint8)
    mirror, quarter = display_orientation(_display_matrix(angle, hflip))
    assert np.array_equal(
        flip_rotate(img, mirror, False, quarter, axes=(0, 1)), _filtered(img, AUTOROTATE[angle, hflip])
    )
