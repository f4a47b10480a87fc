"""`kdsharp live` with a file source and a file sink (real-time emulation, drops), and `kdsharp demo`."""

from __future__ import annotations

import importlib.util
import json
import re
import time

import av
import cv2
import numpy as np
import pytest
from conftest import make_test_image
from test_infer_helpers import SlowNet, make_video, sha, tiny_model, video_facts

import kdsharp.infer.backends as backends
import kdsharp.infer.live as live_module
from kdsharp.cli import main
from kdsharp.errors import KdsharpError
from kdsharp.infer.demo import DEMO_FILES, pan_zoom_clip, run_demo
from kdsharp.infer.live import LiveStats, run_live
from kdsharp.infer.sharpener import Sharpener
from kdsharp.io.video import probe_video


def test_live_file_to_file_keeps_up(tmp_path):
    src = make_video(tmp_path / "call.mp4", frames=12, fps=15, audio=False)
    stats = run_live(
        str(src), str(tmp_path / "out.mp4"), sharpener=Sharpener(tiny_model(), device="cpu"), side_by_side=True
    )
    facts = video_facts(tmp_path / "out.mp4")
    assert stats.processed + stats.dropped == 12 and stats.processed == facts["frames"]
    assert facts["size"] == (128, 48)  # input | output
    assert stats.mean_latency_ms > 0 and "dropped" in stats.summary()


def test_live_summary_counts_in_words():
    one = LiveStats(processed=1, wall_s=1.0, sink="out.mp4").summary()
    assert one.startswith("1 frame processed, 0 dropped") and "1 frames" not in one
    assert LiveStats(processed=2, dropped=1, wall_s=1.0).summary().startswith("2 frames processed, 1 dropped")
    said = LiveStats(processed=2, wall_s=1.0, path="rgb", precision="bf16", workers=2).summary()
    assert "(rgb path, bf16, 2 workers)" in said  # what ran, the precision the default chose included


def test_live_drops_frames_when_model_is_slower_than_real_time(tmp_path):
    src = make_video(tmp_path / "call.mp4", frames=15, fps=30, audio=False)
    before = sha(src)
    stats = run_live(str(src), str(tmp_path / "out.mp4"), sharpener=Sharpener(SlowNet(0.1), device="cpu"))
    assert stats.dropped > 0 and stats.processed < 15
    assert stats.processed + stats.dropped <= 15
    facts = video_facts(tmp_path / "out.mp4")
    assert facts["frames"] == stats.processed
    assert facts["times"] == sorted(facts["times"]) and facts["times"][-1] > 0.25  # real timing kept across drops
    assert sha(src) == before


class JitterNet(SlowNet):
    """Identity whose calls take 0.15, 0.03, 0.08, 0.15, ... s: results finish out of order."""

    def forward(self, x):
        self.calls = getattr(self, "calls", 0) + 1
        self.delay = (0.15, 0.03, 0.08)[self.calls % 3]
        return super().forward(x)


def test_live_workers_keep_up_and_write_in_capture_order(tmp_path):
    src = make_video(tmp_path / "call.mp4", frames=30, fps=30, audio=False)
    one = run_live(str(src), str(tmp_path / "one.mp4"), sharpener=Sharpener(JitterNet(0), device="cpu"), workers=1)
    three = run_live(str(src), str(tmp_path / "three.mp4"), sharpener=Sharpener(JitterNet(0), device="cpu"), workers=3)
    assert three.workers == 3 and "3 workers" in three.summary()
    assert three.processed > one.processed  # three frames in flight at once: fewer dropped
    facts = video_facts(tmp_path / "three.mp4")
    assert facts["frames"] == three.processed and three.processed + three.dropped == 30
    assert facts["times"] == sorted(facts["times"])
    with av.open(str(src)) as c:  # each frame written at its own capture time: the right picture there
        given = {round(f.time * 30): f.to_ndarray(format="rgb24").astype(float) for f in c.decode(video=0)}
    with av.open(str(tmp_path / "three.mp4")) as c:
        for f in c.decode(video=0):
            i = round(f.time * 30)
            err = {j: np.abs(f.to_ndarray(format="rgb24") - given[j]).mean() for j in given}
            assert min(err, key=err.get) == i


def test_live_max_frames_and_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(backends, "resolve_model", lambda m, device="cpu": tiny_model())
    src = make_video(tmp_path / "call.mp4", frames=10, fps=30, audio=False)
    code = main(
        [
            "live",
            "--source",
            str(src),
            "--sink",
            str(tmp_path / "o.mp4"),
            "--max-frames",
            "3",
            "--model",
            "tiny",
            "--fps",
            "60",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert re.search(r"\b[1-3] frames? processed", err) and video_facts(tmp_path / "o.mp4")["frames"] <= 3
    code = main(["live", "--source", str(src), "--sink", str(tmp_path / "o.mp4"), "--model", "tiny"])
    err = capsys.readouterr().err
    assert code != 0 and "already exists" in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    "source,sink,match",
    [
        ("missing.mp4", "o.mp4", "no such file"),
        ("call.mp4", "o.gif", "unsupported sink"),
        ("call.mp4", "virtualcam", "pyvirtualcam"),
        ("call.mp4", "window", "window"),
        ("call.mp4", "call.mp4", "is the input itself"),
        ("call.txt", "o.mp4", "is not a video kdsharp reads"),
    ],
)
def test_live_bad_sources_and_sinks(tmp_path, monkeypatch, source, sink, match):
    if sink == "virtualcam" and importlib.util.find_spec("pyvirtualcam") is not None:
        pytest.skip("pyvirtualcam is installed: the missing-extra message cannot be checked")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    make_video(tmp_path / "call.mp4", frames=2, audio=False)
    (tmp_path / "call.txt").write_bytes((tmp_path / "call.mp4").read_bytes())  # a video misnamed: as sharpen does
    before = sha(tmp_path / "call.mp4")
    sink_arg = sink if sink in ("window", "virtualcam") else str(tmp_path / sink)
    with pytest.raises(KdsharpError, match=match):
        run_live(str(tmp_path / source), sink_arg, sharpener=Sharpener(tiny_model(), device="cpu"))
    assert not (tmp_path / "o.mp4").exists() and sha(tmp_path / "call.mp4") == before


class FakeCamera:
    """cv2.VideoCapture stand-in: ``n`` BGR frames (each a shifted picture) at 30 fps, then the end."""

    def __init__(self, index, n=12):
        self.frames = [np.roll(make_test_image(48, 64, seed=2), 3 * i, axis=1) for i in range(n)]

    def isOpened(self):
        return True

    def set(self, prop, value):
        return True

    def get(self, prop):
        return 30.0

    def read(self):
        if not self.frames:
            return False, None
        time.sleep(1 / 30)  # a camera delivers in real time
        return True, self.frames.pop(0)

    def release(self):
        self.frames = []


def test_live_camera_frames_through_two_workers_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(live_module.cv2, "VideoCapture", FakeCamera)
    stats = run_live(0, str(tmp_path / "cam.mp4"), sharpener=Sharpener(JitterNet(0), device="cpu"), workers=2)
    facts = video_facts(tmp_path / "cam.mp4")
    assert stats.processed + stats.dropped == 12 and stats.processed == facts["frames"] >= 4
    assert stats.path == "rgb" and facts["times"] == sorted(facts["times"]) and facts["size"] == (64, 48)
    shown = [np.roll(make_test_image(48, 64, seed=2), 3 * i, axis=1).astype(float) for i in range(12)]  # BGR
    with av.open(str(tmp_path / "cam.mp4")) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    as_rgb = min(np.abs(first - b[:, :, ::-1]).mean() for b in shown)
    assert as_rgb < 0.5 * min(np.abs(first - b).mean() for b in shown)  # colours kept, not swapped


class NoisyCamera(FakeCamera):
    """A camera on a static scene: the same BGR picture with fresh sensor noise (sigma 2) in each frame."""

    def __init__(self, index, n=12):
        rng = np.random.default_rng(1)
        base = cv2.GaussianBlur(make_test_image(96, 144, seed=5), (0, 0), 2).astype(float)
        self.frames = [np.clip(base + rng.normal(0, 2.0, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def test_live_camera_runs_a_luma_model_on_the_y_plane_with_noise_tolerant_reuse(tmp_path, monkeypatch):
    """Camera frames (BGR) reach a luma model as YUV frames: the Y-plane path, and temporal reuse with
    the camera's tolerance skips the static scene's tiles despite the noise; colours are kept.
    ``--reuse-tolerance 0`` (exact) skips nothing there; a tolerance beyond 0-255 is refused."""
    from test_infer_frames import luma_net

    monkeypatch.setattr(live_module.cv2, "VideoCapture", NoisyCamera)
    s = Sharpener(luma_net(2, channels=8, blocks=1), device="cpu")
    stats = run_live(0, str(tmp_path / "cam.mp4"), sharpener=s, workers=1)
    assert stats.path == "yuv" and stats.reused is not None and stats.reused > 0.5
    exact = run_live(0, str(tmp_path / "exact.mp4"), sharpener=s, workers=1, reuse_tolerance=0)
    assert exact.reused == 0.0
    shown = NoisyCamera(0).frames[0].astype(float)  # BGR
    with av.open(str(tmp_path / "cam.mp4")) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    assert np.abs(first - shown[:, :, ::-1]).mean() < 0.5 * np.abs(first - shown).mean()  # not swapped
    with pytest.raises(KdsharpError, match="0-255"):
        run_live(0, str(tmp_path / "bad.mp4"), sharpener=s, reuse_tolerance=300)
    assert not (tmp_path / "bad.mp4").exists()


def test_live_camera_runs_an_rgb_unet_with_noise_tolerant_reuse(tmp_path, monkeypatch):
    """Camera frames reach an RGB U-Net (the student's kind) as RGB, through temporal reuse: the
    static scene's tiles are kept despite the sensor noise; ``--no-reuse`` computes every frame."""
    from test_infer_frames import tiny_unet

    monkeypatch.setattr(live_module.cv2, "VideoCapture", NoisyCamera)
    s = Sharpener(tiny_unet(4), device="cpu")
    stats = run_live(0, str(tmp_path / "cam.mp4"), sharpener=s, workers=1)
    assert stats.path == "rgb" and stats.reused is not None and stats.reused > 0.5
    off = run_live(0, str(tmp_path / "off.mp4"), sharpener=s, workers=1, reuse=False)
    assert off.reused is None and off.processed == stats.processed


def test_live_half_reaches_the_backend(tmp_path, monkeypatch):
    """``kdsharp live --half``: the model's backend is built with half precision (bf16 on such a CPU)."""
    import kdsharp.infer.backends as backends_module

    built = []
    real = backends_module.TorchBackend.__init__

    def spy(self, *a, **k):
        built.append(k.get("half"))
        real(self, *a, **k)

    monkeypatch.setattr(backends_module.TorchBackend, "__init__", spy)
    src = make_video(tmp_path / "call.mp4", frames=3, audio=False)
    code = main(["live", "--source", str(src), "--sink", str(tmp_path / "o.mp4"), "--model", "student", "--half"])
    assert code == 0 and built == [True] and (tmp_path / "o.mp4").exists()


def test_live_file_sink_encodes_ultrafast_unless_told(tmp_path, capsys):
    """A live recording leaves the cores to the model (x264 ultrafast: no CABAC); --encoder-preset and
    --crf choose otherwise (x264 writes its settings into the stream); a bad preset is refused first."""
    src = make_video(tmp_path / "call.mp4", frames=4, audio=False)
    net = Sharpener(tiny_model(), device="cpu")
    run_live(str(src), str(tmp_path / "default.mp4"), sharpener=net)
    run_live(str(src), str(tmp_path / "small.mp4"), sharpener=net, encoder_preset="veryfast", crf=30)
    default, small = (tmp_path / "default.mp4").read_bytes(), (tmp_path / "small.mp4").read_bytes()
    assert b"cabac=0" in default and b"crf=18.0" in default
    assert b"cabac=1" in small and b"crf=30.0" in small
    with pytest.raises(KdsharpError, match="fastest"):
        run_live(str(src), str(tmp_path / "bad.mp4"), sharpener=net, encoder_preset="fastest")
    assert not (tmp_path / "bad.mp4").exists()
    code = main(["live", "--source", str(src), "--sink", str(tmp_path / "cli.mp4"), "--encoder-preset", "slow"])
    assert code == 0 and b"subme=8" in (tmp_path / "cli.mp4").read_bytes()  # x264 slow: subme 8


def test_pan_zoom_clip_moves():
    img = np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)
    clip = pan_zoom_clip(img, 5, (64, 48))
    assert len(clip) == 5 and clip[0].shape == (48, 64, 3) and not np.array_equal(clip[0], clip[-1])


def test_demo_writes_everything_and_never_overwrites(tmp_path):
    r = run_demo(tmp_path / "demo", model=tiny_model(), device="cpu", seconds=1.0, fps=8, size=(160, 120))
    for name in DEMO_FILES:
        assert (r.folder / name).is_file()
    deg, out = video_facts(r.degraded), video_facts(r.sharpened)
    assert deg["frames"] == out["frames"] == 8 and out["size"] == (160, 120)
    assert deg["audio_codecs"] == ["aac"] and out["audio"] == deg["audio"]  # the tone is kept
    assert video_facts(r.side_by_side)["size"] == (320, 120)
    assert np.isfinite([r.psnr_in, r.psnr_out, r.ssim_in, r.ssim_out]).all() and "PSNR" in r.summary()
    report = json.loads((r.folder / "report.json").read_text())
    assert report["frames"] == 8 and report["psnr_out"] == round(r.psnr_out, 3) and report["preset"] == "lowbw"
    first = {n: sha(r.folder / n) for n in DEMO_FILES}
    r2 = run_demo(tmp_path / "demo", model=tiny_model(), device="cpu", seconds=0.5, fps=8, size=(160, 120))
    assert r2.folder == tmp_path / "demo" / "run-2"
    assert {n: sha(r.folder / n) for n in DEMO_FILES} == first  # earlier results untouched


def test_demo_cli_uses_the_shipped_student(tmp_path, capsys, monkeypatch):
    asked = []

    def fake(m, device="cpu"):
        asked.append(str(m))
        return tiny_model()

    monkeypatch.setattr(backends, "resolve_model", fake)
    code = main(["demo", "-o", str(tmp_path / "d"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert asked == ["student"]
    assert "PSNR" in err and str(tmp_path / "d") in err
    assert all((tmp_path / "d" / n).is_file() for n in DEMO_FILES)


# -- a file source as a user has it (found by trying them) -------------------------------------------
def test_live_keeps_the_source_rotation_and_copies_all_its_audio(tmp_path):
    src = make_video(tmp_path / "phone.mp4", frames=12, fps=30, audio=True, rotation=90)
    run_live(str(src), str(tmp_path / "out.mp4"), sharpener=Sharpener(tiny_model(), device="cpu"))
    a, b = video_facts(src), video_facts(tmp_path / "out.mp4")
    assert b["rotation"] == a["rotation"] == 90  # a portrait phone video stays upright
    assert b["audio"] == a["audio"]  # played to its end: every audio packet, not cut at the last frame


def test_live_fps_below_the_source_takes_frames_at_their_own_time(tmp_path):
    """--fps 15 on a 30 fps file keeps every other frame at its media time: the file is neither slowed
    down nor sped up, so its audio stays in sync (it used to be re-timed to 15 fps: twice as long)."""
    src = make_video(tmp_path / "call.mp4", frames=30, fps=30, audio=True)
    stats = run_live(str(src), str(tmp_path / "out.mp4"), sharpener=Sharpener(tiny_model(), device="cpu"), fps=15)
    b = video_facts(tmp_path / "out.mp4")
    assert stats.processed + stats.dropped == 15 and b["frames"] == stats.processed
    assert b["times"][-1] - b["times"][0] == pytest.approx(28 / 30, abs=0.04) and b["rate"] == 15


def test_live_on_a_file_that_turns_corrupt_keeps_the_frames_before(tmp_path, capsys, monkeypatch):
    from test_infer_frames import _streamable

    good = _streamable(tmp_path / "good.mp4").read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2 : len(bad) // 2 + 2000] = b"\xff" * 2000
    (tmp_path / "bad.mp4").write_bytes(bytes(bad))
    monkeypatch.setattr(backends, "resolve_model", lambda m, device="cpu": tiny_model())
    code = main(["live", "--source", str(tmp_path / "bad.mp4"), "--sink", str(tmp_path / "out.mp4"), "--model", "x"])
    err = capsys.readouterr().err
    assert code == 1 and "bad.mp4: video is corrupt or truncated at frame" in err and "Traceback" not in err
    frames = video_facts(tmp_path / "out.mp4")["frames"]  # a valid file of the frames before the damage
    decoded = int(re.search(r"stopped after the (\d+) frames decoded before it", err)[1])
    dropped = int(re.search(r"(\d+) dropped", err)[1])  # live drops frames on a busy machine
    assert 0 < frames <= decoded < 30 and frames + dropped >= decoded


def test_live_file_sink_warns_like_sharpen_about_what_it_does_not_keep(tmp_path, capsys):
    """A 10-bit source with a subtitle track: sharpen warned (8-bit output, stream not copied), live
    wrote the same file silently."""
    import av
    from test_infer_helpers import encode_rgb_frames

    src = tmp_path / "hdr.mkv"
    encode_rgb_frames(
        av.open(str(src), "w"),
        "libx264",
        [np.full((48, 64, 3), 30 * i, np.uint8) for i in range(4)],
        pix_fmt="yuv420p10le",
        extra=lambda out: out.add_stream("ass"),
    )
    stats = run_live(
        str(src), str(tmp_path / "out.mkv"), sharpener=Sharpener(tiny_model(), device="cpu"), progress=False
    )
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
    assert len(warnings) == 2 and stats.processed > 0
    assert "hdr.mkv: 10-bit video (yuv420p10le) is written as 8-bit" in warnings[0]
    assert "hdr.mkv: its 1 subtitle stream(s) are not copied" in warnings[1]


def test_live_file_sink_keeps_an_ntsc_rate_exactly(tmp_path):
    """29.97 fps is 30000/1001: the sink wrote 19001/634 (the float rate cut to denominators up to 1000)."""
    from fractions import Fraction

    import av

    src = tmp_path / "ntsc.mp4"
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=Fraction(30000, 1001))
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = i, Fraction(1001, 30000)
            out.mux(v.encode(f))
        out.mux(v.encode())
    run_live(str(src), str(tmp_path / "out.avi"), sharpener=Sharpener(tiny_model(), device="cpu"), progress=False)
    with av.open(str(tmp_path / "out.avi")) as c:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001)


def test_live_reports_a_file_that_ends_before_its_header_says(tmp_path, capsys, monkeypatch):
    """As `sharpen` does: a Matroska file cut short decodes cleanly, but its header's duration tells."""
    sharpener = Sharpener(tiny_model(), device="cpu")
    make_video(tmp_path / "in.mp4", frames=45, fps=15, audio=False)
    sharpener.video(tmp_path / "in.mp4", tmp_path / "full.mkv")
    data = (tmp_path / "full.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) * 6 // 10])
    full = run_live(str(tmp_path / "full.mkv"), str(tmp_path / "whole.mkv"), sharpener=sharpener)
    assert full.partial is None
    monkeypatch.setattr(backends, "resolve_model", lambda m, device="cpu": tiny_model())
    code = main(["live", "--source", str(tmp_path / "cut.mkv"), "--sink", str(tmp_path / "out.mkv"), "--model", "x"])
    err = capsys.readouterr().err
    assert code == 1 and "cut.mkv: video ends at" in err and "its header gives (truncated?)" in err, err
    assert 0 < video_facts(tmp_path / "out.mkv")["frames"] < 45


def test_live_side_by_side_of_a_rotated_source_is_upright_and_side_by_side(tmp_path):
    """A phone's portrait video (stored turned, with a rotation tag): the pair was stacked on the stored
    frames, so players showed input and output one above the other, labels sideways."""
    from kdsharp.io.video import read_frames

    src = make_video(tmp_path / "phone.mp4", frames=3, size=(160, 120), fps=15, audio=False, rotation=90)
    run_live(
        str(src),
        str(tmp_path / "out.mp4"),
        sharpener=Sharpener(tiny_model(), device="cpu"),
        side_by_side=True,
        progress=False,
    )
    facts = video_facts(tmp_path / "out.mp4")
    assert facts["rotation"] == 90 and facts["size"] == (160, 240)  # shown upright: 240 wide, 160 high
    shown = np.rot90(next(read_frames(tmp_path / "out.mp4"))[0], 1).astype(int)  # as a player turns it
    upright = np.rot90(next(read_frames(src))[0], 1).astype(int)
    assert shown.shape == (160, 240, 3)
    assert np.abs(shown[80:, :120] - upright[80:]).mean() < 8  # the input on the left, below its label
    assert np.abs(shown[80:, :120] - np.rot90(upright, 2)[80:]).mean() > 20


def test_live_side_by_side_of_a_mirrored_source_is_shown_mirrored_not_upside_down(tmp_path):
    """A front camera's left-right flip tag was read as a half turn: the pair came out upside down."""
    from kdsharp.io.video import read_frames

    mirror = (-65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)
    src = make_video(tmp_path / "selfie.mp4", frames=3, size=(160, 120), audio=False, display_matrix=mirror)
    run_live(str(src), str(tmp_path / "out.mp4"), sharpener=Sharpener(tiny_model(), device="cpu"), side_by_side=True)
    assert probe_video(tmp_path / "out.mp4").display_matrix == mirror  # the file keeps the tag
    shown = next(read_frames(tmp_path / "out.mp4"))[0][:, ::-1].astype(int)  # as a player shows it
    seen = next(read_frames(src))[0][:, ::-1].astype(int)
    assert shown.shape == (120, 320, 3)
    assert np.abs(shown[60:, :160] - seen[60:]).mean() < 8  # the input on the left, upright, below its label
    label = np.abs(shown[:, :70] - seen[:, :70]).mean(axis=(1, 2))  # where the label changed the picture, by row
    assert label[5:30].mean() > 10 and label[90:].mean() < 4  # at the top, where it reads (not at the bottom)


def test_live_never_replaces_its_source_even_with_overwrite(tmp_path):
    """--overwrite let a live recording (frames dropped, cut at Ctrl-C) replace the file it played."""
    src = make_video(tmp_path / "call.mp4", frames=4, audio=False)
    before = sha(src)
    for sink in (src, tmp_path / "." / "call.mp4"):
        with pytest.raises(KdsharpError, match="call.mp4: is the input itself .*choose another sink"):
            run_live(str(src), str(sink), overwrite=True, sharpener=Sharpener(tiny_model(), device="cpu"))
    assert sha(src) == before and sorted(p.name for p in tmp_path.iterdir()) == ["call.mp4"]


def test_live_reads_a_file_behind_a_url_at_its_frame_rate(tmp_path):
    """A URL source was read as fast as it decoded: a file served over http or file:// lost all but a
    frame or two to 'dropped to keep up'."""
    src = make_video(tmp_path / "call.mp4", frames=15, fps=15, audio=False)
    stats = run_live(
        src.resolve().as_uri(),
        str(tmp_path / "out.mp4"),
        sharpener=Sharpener(tiny_model(), device="cpu"),
        progress=False,
    )
    assert stats.processed + stats.dropped == 15 and stats.processed >= 12, stats.summary()
    assert stats.wall_s > 0.8  # one second of video, in about one second


def test_live_refuses_a_folder_as_sink_before_recording(tmp_path):
    """`--sink rec.mp4 --overwrite` with rec.mp4 a folder recorded the whole source, then failed to
    rename the file onto the folder ('check free space'): the recording was lost."""
    src = make_video(tmp_path / "call.mp4", frames=4, audio=False)
    (tmp_path / "rec.mp4").mkdir()
    for overwrite in (False, True):
        with pytest.raises(KdsharpError, match=r"rec.mp4: is a folder \(pass a video file name, such as .*live.mp4"):
            run_live(
                str(src),
                str(tmp_path / "rec.mp4"),
                overwrite=overwrite,
                sharpener=Sharpener(tiny_model(), device="cpu"),
            )
    assert list((tmp_path / "rec.mp4").iterdir()) == []


def _yuv_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]


def test_live_file_sink_runs_an_rgb_models_chroma_step_on_the_encoders_planes(tmp_path, monkeypatch):
    """An RGB model whose chroma step refits its own output (the student's ChromaFromLuma): with a
    file sink, live leaves the step to the sink's encoder thread, which runs it on the 4:2:0 planes
    the encoder takes -- exactly what ``sharpen`` writes (both encoded losslessly here) and not what
    the RGB form of the step gives (the run with the deferral turned off)."""
    import kdsharp.infer.sinks as sinks
    from kdsharp.models.wrappers import ChromaFromLuma

    src = make_video(tmp_path / "call.mp4", frames=6, size=(64, 48), fps=5, audio=False)
    sharpener = Sharpener(ChromaFromLuma(tiny_model()), device="cpu")
    owed = []
    real = sinks.FileSink.write

    def spy(self, frame, t, finish=None):
        owed.append(finish is not None)
        return real(self, frame, t, finish=finish)

    monkeypatch.setattr(sinks.FileSink, "write", spy)
    kw = dict(sharpener=sharpener, crf=0, encoder_preset="ultrafast", workers=1, reuse=False, progress=False)
    stats = run_live(str(src), str(tmp_path / "live.mkv"), **kw)
    assert stats.processed == 6 and stats.dropped == 0 and owed == [True] * 6 and stats.precision == "fp32"
    sharpener.video(src, tmp_path / "sharp.mkv", crf=0, preset="ultrafast")
    live, sharp = _yuv_frames(tmp_path / "live.mkv"), _yuv_frames(tmp_path / "sharp.mkv")
    assert len(live) == len(sharp) == 6 and all(np.array_equal(a, b) for a, b in zip(live, sharp, strict=True))
    monkeypatch.setattr(sinks.FileSink, "takes_planar_yuv", False)  # the step on the RGB frame instead
    owed.clear()
    run_live(str(src), str(tmp_path / "rgb.mkv"), **kw)
    rgb = _yuv_frames(tmp_path / "rgb.mkv")
    assert owed == [False] * 6 and not all(np.array_equal(a, b) for a, b in zip(live, rgb, strict=True))
    assert np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(live, rgb, strict=True)]) < 0.5  # same step
