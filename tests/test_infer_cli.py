"""`kdsharp sharpen` in-process: every input kind, and a clear one-line answer to every bad input."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import make_test_image
from test_infer_helpers import make_video, sha, tiny_model, tree_hashes, video_facts
from test_io_images import exif_jpeg

import kdsharp.infer.backends as backends
from kdsharp.cli import main
from kdsharp.errors import OutputError

_real_resolve = backends.resolve_model


@pytest.fixture(autouse=True)
def tiny(monkeypatch):
    """``--model tiny`` is a small untrained conv net; other names go to the real registry."""
    monkeypatch.setattr(
        backends,
        "resolve_model",
        lambda m, device="cpu": tiny_model() if str(m) == "tiny" else _real_resolve(m, device),
    )


def run(capsys, *args) -> tuple[int, str]:
    code = main(["sharpen", *map(str, args)])
    err = capsys.readouterr().err
    return code, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, img)
    path.write_bytes(buf.tobytes())
    return path


def test_image_to_image_keeps_format_size_depth(tmp_path, capsys):
    rgb = write(tmp_path / "a.png", make_test_image(33, 45))
    img16 = write(tmp_path / "b.tif", make_test_image(20, 22).astype(np.uint16) * 257)
    grey = write(tmp_path / "c.jpg", make_test_image(21, 23)[:, :, 0])
    bgra = write(tmp_path / "d.png", np.dstack([make_test_image(17, 19), np.full((17, 19), 77, np.uint8)]))
    for src in (rgb, img16, grey, bgra):
        code, err = run(capsys, src, "-o", tmp_path / "out" / src.name, "--model", "tiny")
        assert code == 0, err
        a = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(tmp_path / "out" / src.name), cv2.IMREAD_UNCHANGED)
        assert a.shape == b.shape and a.dtype == b.dtype
    assert np.all(cv2.imread(str(tmp_path / "out" / "d.png"), cv2.IMREAD_UNCHANGED)[:, :, 3] == 77)


def test_exif_orientation_written_upright(tmp_path, capsys):
    src = tmp_path / "rot.jpg"
    src.write_bytes(exif_jpeg(make_test_image(20, 40), 6))
    code, err = run(capsys, src, "-o", tmp_path / "up.jpg", "--model", "tiny")
    assert code == 0, err
    assert cv2.imread(str(tmp_path / "up.jpg"), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION).shape == (
        40,
        20,
        3,
    )


def test_folder_tree_mirrored_with_videos(tmp_path, capsys):
    src = tmp_path / "in"
    write(src / "a.png", make_test_image(16, 16))
    write(src / "sub" / "b.jpg", make_test_image(18, 14))
    write(src / "sub" / "deeper" / "c.png", make_test_image(12, 12))
    make_video(src / "sub" / "clip.mp4", frames=4)
    (src / "notes.txt").write_text("not media, skipped")
    write(src / ".hidden" / "x.png", make_test_image(8, 8))
    before = tree_hashes(src)
    code, err = run(capsys, src, "-o", tmp_path / "out", "--model", "tiny", "--tile", "64", "--batch", "2")
    assert code == 0, err
    out = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert out == ["a.png", "sub/b.jpg", "sub/clip.mp4", "sub/deeper/c.png"]
    assert video_facts(tmp_path / "out" / "sub" / "clip.mp4")["frames"] == 4
    assert tree_hashes(src) == before  # inputs never modified
    assert "4 done, 0 failed" in err


def test_several_inputs_into_folder(tmp_path, capsys):
    a = write(tmp_path / "a.png", make_test_image(16, 16))
    d = tmp_path / "dir"
    write(d / "b.png", make_test_image(16, 16))
    code, err = run(capsys, a, d, "-o", tmp_path / "out", "--model", "tiny")
    assert code == 0, err
    assert (tmp_path / "out" / "a.png").is_file() and (tmp_path / "out" / "dir" / "b.png").is_file()


def test_batch_with_bad_files_goes_on_and_exits_1(tmp_path, capsys):
    src = tmp_path / "in"
    write(src / "good1.png", make_test_image(16, 16))
    write(src / "good2.jpg", make_test_image(16, 16))
    (src / "empty.png").write_bytes(b"")
    (src / "corrupt.jpg").write_bytes(b"this is not a jpeg" * 10)
    ok, buf = cv2.imencode(".png", make_test_image(64, 64))
    (src / "truncated.png").write_bytes(buf.tobytes()[:80])
    (src / "broken.mp4").write_bytes(b"\x00" * 500)
    before = tree_hashes(src)
    code, err = run(capsys, src, "-o", tmp_path / "out", "--model", "tiny")
    assert code == 1
    lines = error_lines(err)
    for name in ("empty.png", "corrupt.jpg", "truncated.png", "broken.mp4"):
        assert sum(name in line for line in lines) == 1, err
    assert len(lines) == 4 and "Traceback" not in err
    assert "2 done, 4 failed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good1.png", "good2.jpg"]  # no partial files
    assert tree_hashes(src) == before


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "unsupported",
        "no_video_stream",
        "unknown_model",
        "unwritable",
        "same_as_input",
        "exists",
        "bad_output_ext",
        "bad_device",
        "bad_backend",
    ],
)
def test_bad_input_one_clear_line(tmp_path, capsys, case):
    img = write(tmp_path / "a.png", make_test_image(16, 16))
    model = ["--model", "tiny"]
    if case == "missing":
        args, name = [tmp_path / "nope.png", "-o", tmp_path / "o.png", *model], "nope.png"
    elif case == "unsupported":
        (tmp_path / "notes.txt").write_text("hello")
        args, name = [tmp_path / "notes.txt", "-o", tmp_path / "o.png", *model], "notes.txt"
    elif case == "no_video_stream":
        make_video(tmp_path / "voice.mp4", video=False)
        args, name = [tmp_path / "voice.mp4", "-o", tmp_path / "o.mp4", *model], "voice.mp4"
    elif case == "unknown_model":
        args, name = [img, "-o", tmp_path / "o.png", "--model", "nosuchmodel"], "nosuchmodel"
    elif case == "unwritable":
        (tmp_path / "file.txt").write_text("a file, not a folder")
        args, name = [img, "-o", tmp_path / "file.txt" / "o.png", *model], "file.txt"
    elif case == "same_as_input":
        args, name = [img, "-o", img, *model], "a.png"
    elif case == "exists":
        write(tmp_path / "o.png", make_test_image(8, 8))
        args, name = [img, "-o", tmp_path / "o.png", *model], "o.png"
    elif case == "bad_output_ext":
        args, name = [img, "-o", tmp_path / "o.mp4", *model], "o.mp4"
    elif case == "bad_device":
        args, name = [img, "-o", tmp_path / "o.png", *model, "--device", "toaster"], "toaster"
    else:
        args, name = [img, "-o", tmp_path / "o.png", *model, "--backend", "tensorrt"], "tensorrt"
    before = sha(img)
    code, err = run(capsys, *args)
    assert code != 0
    lines = error_lines(err)
    assert len(lines) == 1 and name in lines[0], err
    assert "Traceback" not in err
    assert sha(img) == before
    if case == "unknown_model":
        assert "student" in lines[0]  # lists the known names
    if case in ("missing", "unsupported", "unknown_model", "same_as_input", "exists", "bad_output_ext"):
        assert not (tmp_path / "o.png").exists() or case == "exists"


def test_debug_shows_traceback(tmp_path, capsys, monkeypatch):
    import kdsharp.cli

    monkeypatch.setattr(kdsharp.cli.state, "DEBUG", False)  # main() leaves --debug switched on for the process
    code, err = run(capsys, "--debug", tmp_path / "nope.png", "-o", tmp_path / "o.png")
    assert code != 0 and "Traceback" in err


def test_overwrite_replaces_input_atomically(tmp_path, capsys):
    img = write(tmp_path / "a.png", make_test_image(24, 24))
    before = sha(img)
    code, err = run(capsys, img, "-o", img, "--model", "tiny", "--overwrite")
    assert code == 0, err
    assert sha(img) != before and [p.name for p in tmp_path.iterdir()] == ["a.png"]
    assert cv2.imread(str(img)).shape == (24, 24, 3)


def test_video_cli_prints_stage_timings(tmp_path, capsys):
    src = make_video(tmp_path / "in.mp4", frames=6, audio=True)
    code, err = run(capsys, src, "-o", tmp_path / "out.mp4", "--model", "tiny", "--crf", "20", "--batch", "4")
    assert code == 0, err
    assert "decode" in err and "model" in err and "encode" in err
    facts = video_facts(tmp_path / "out.mp4")
    assert facts["frames"] == 6 and facts["audio"] == video_facts(src)["audio"]


def test_reuse_that_cannot_apply_is_said(tmp_path, capsys):
    """--reuse needs the Y-plane path (luma models): an RGB model runs without it, and says so."""
    src = make_video(tmp_path / "in.mp4", frames=3, audio=False)
    code, err = run(capsys, src, "-o", tmp_path / "out.mp4", "--model", "tiny", "--reuse")
    assert code == 0, err
    assert "warning: --reuse had no effect on 1 video (in.mp4)" in err
    code, err = run(capsys, src, "-o", tmp_path / "out2.mp4", "--model", "tiny")
    assert code == 0 and "--reuse" not in err


def test_help_texts():
    for cmd in ("sharpen", "live", "demo"):
        assert main([cmd, "--help"]) == 0


@pytest.mark.parametrize(
    "argv, says",
    [
        (["export", "-o", "x.onnx"], "Missing option '--model'"),
        (["sharpen", "--bogus"], "No such option: --bogus"),
        (["sharpen"], "Usage:"),
    ],
)
def test_usage_errors_are_click_messages_with_exit_2(argv, says, capsys):
    assert main(argv) == 2
    cap = capsys.readouterr()
    text = cap.out + cap.err
    assert says in text and "Traceback" not in text and "kdsharp" in text


def test_output_folder_inside_input_folder_is_not_reprocessed(tmp_path, capsys):
    src = tmp_path / "photos"
    write(src / "a.png", make_test_image(16, 16))
    for _ in range(2):  # the second run must not pick up the first run's outputs as inputs
        code, err = run(capsys, src, "-o", src / "sharp", "--model", "tiny", "--overwrite")
        assert code == 0, err
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png")) == ["a.png", "sharp/a.png"]


def test_python_api_paths_and_file(tmp_path):
    from kdsharp import Sharpener

    a = write(tmp_path / "in" / "a.png", make_test_image(16, 16))
    make_video(tmp_path / "in" / "v.mp4", frames=3, audio=False)
    s = Sharpener(tiny_model(), device="cpu")
    result = s.paths([tmp_path / "in"], tmp_path / "out")
    assert result.ok and len(result.done) == 2 and len(result.videos) == 1 and result.videos[0].frames == 3
    assert s.file(a, tmp_path / "b.webp") == tmp_path / "b.webp" and (tmp_path / "b.webp").is_file()
    with pytest.raises(OutputError, match="already exists"):
        s.file(a, tmp_path / "b.webp")


def test_folder_into_itself_refused_then_in_place_with_overwrite_and_into_its_parent(tmp_path, capsys):
    raw = tmp_path / "t" / "raw"
    write(raw / "a.png", make_test_image(16, 16))
    write(raw / "sub" / "b.jpg", make_test_image(16, 16))
    before = tree_hashes(raw)
    code, err = run(capsys, raw, "-o", raw, "--model", "tiny")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and "is the input folder itself" in lines[0] and "--overwrite" in lines[0]
    assert tree_hashes(raw) == before
    code, err = run(capsys, raw, "-o", tmp_path / "t", "--model", "tiny")  # into its parent: t/a.png, t/sub/b.jpg
    assert code == 0 and "2 done" in err, err
    assert (tmp_path / "t" / "a.png").is_file() and (tmp_path / "t" / "sub" / "b.jpg").is_file()
    assert tree_hashes(raw) == before
    code, err = run(capsys, raw, "-o", raw, "--model", "tiny", "--overwrite")
    assert code == 0 and "2 done" in err, err
    assert sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*") if p.is_file()) == ["a.png", "sub/b.jpg"]
    assert tree_hashes(raw) != before


def test_an_output_over_another_input_is_refused_even_with_overwrite(tmp_path, capsys):
    raw = tmp_path / "raw"
    write(raw / "a.png", make_test_image(16, 16))
    write(raw / "raw" / "a.png", make_test_image(16, 16, seed=1))  # -o tmp_path: raw/raw/a.png -> raw/a.png, an input
    before = tree_hashes(raw)
    code, err = run(capsys, raw, "-o", tmp_path, "--model", "tiny", "--overwrite")
    assert code == 2 and "is an input" in err, err
    assert tree_hashes(raw) == before


@pytest.mark.parametrize("what", ["empty_output", "dev_null", "fifo", "output_a_device"])
def test_empty_output_and_special_files_are_one_line_errors(tmp_path, capsys, monkeypatch, what):
    import os

    monkeypatch.chdir(tmp_path)
    img = write(tmp_path / "a.png", make_test_image(16, 16))
    if what == "empty_output":
        args, says = [img, "-o", ""], "output is empty"
    elif what == "dev_null":
        args, says = ["/dev/null", "-o", tmp_path / "x.png"], "/dev/null: is not a regular file"
    elif what == "output_a_device":  # no extension: taken as a folder, and mkdir said only 'File exists'
        args, says = [img, "-o", "/dev/full"], "/dev/full: exists and is not a folder (choose another output path)"
    else:
        os.mkfifo(tmp_path / "f.png")
        args, says = [tmp_path / "f.png", "-o", tmp_path / "x.png"], "f.png: is not a regular file"
    code, err = run(capsys, *args, "--model", "tiny")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and says in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"] + (["f.png"] if what == "fifo" else [])


def test_grey_alpha_bmp_alpha_and_tiff_orientation_kept_by_sharpen(tmp_path, capsys):
    pil = pytest.importorskip("PIL.Image")
    rgb = make_test_image(24, 40)
    pil.fromarray(rgb).convert("LA").save(tmp_path / "la.png")
    pil.fromarray(rgb).save(tmp_path / "o6.tif", tiffinfo={0x0112: 6})
    write(tmp_path / "bgra.bmp", np.dstack([rgb, np.full((24, 40), 100, np.uint8)]))
    code, err = run(
        capsys,
        tmp_path / "la.png",
        tmp_path / "o6.tif",
        tmp_path / "bgra.bmp",
        "-o",
        tmp_path / "out",
        "--model",
        "tiny",
    )
    assert code == 0, err
    with pil.open(tmp_path / "out" / "la.png") as im:
        assert im.mode == "LA" and im.size == (40, 24)
    with pil.open(tmp_path / "out" / "o6.tif") as im:
        assert im.size == (24, 40)  # upright: turned once
    assert np.all(cv2.imread(str(tmp_path / "out" / "bgra.bmp"), cv2.IMREAD_UNCHANGED)[:, :, 3] == 100)


@pytest.mark.parametrize("output", ["/proc/kdsharp-test.png", "/proc/sys"])
def test_an_output_folder_that_takes_no_files_exits_2_before_any_work(tmp_path, capsys, output):
    # /proc accepts no new files even for root, whom permission bits do not stop
    img = write(tmp_path / "a.png", make_test_image(16, 16))
    inputs = [img] if output.endswith(".png") else [img, write(tmp_path / "b.png", make_test_image(16, 16))]
    code, err = run(capsys, *inputs, "-o", output, "--model", "tiny")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err  # an unusable output: nothing was started (README's exit codes)
    assert "cannot be written" in lines[0] and "writable" in lines[0] and "sharpening" not in err
    assert lines[0].startswith(f"error: {output}")


@pytest.mark.parametrize("command", ["sharpen", "live"])
def test_audio_the_output_container_cannot_carry_exits_2_before_any_work(tmp_path, capsys, monkeypatch, command):
    """AAC into .webm: `sharpen` found out only when writing began, after loading the model (exit 1), while
    `live` exited 2; both now refuse it in one line before any work, as other unusable outputs."""
    src = make_video(tmp_path / "call.mp4", frames=3, audio=True)
    out = tmp_path / "out.webm"
    monkeypatch.setattr(backends, "resolve_model", lambda *a, **k: pytest.fail("the model was loaded"))
    argv = ["-o", str(out)] if command == "sharpen" else ["--sink", str(out)]
    code = main([command, str(src) if command == "sharpen" else f"--source={src}", *argv, "--model", "tiny"])
    err = capsys.readouterr().err
    assert code == 2 and error_lines(err) == [
        f"error: {out}: its aac audio (from {src}) cannot be copied into a .webm file (use .mkv or the input's "
        "extension)"
    ], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.mp4"]


_FULL_DISK = """import resource, signal, sys
from kdsharp.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, resource.RLIM_INFINITY))
sys.exit(main(sys.argv[1:]))"""


@pytest.mark.parametrize("command", ["sharpen", "live"])
def test_a_video_whose_output_cannot_be_written_part_way_is_one_line_naming_the_output(tmp_path, command):
    """A full disk while encoding: `sharpen` printed 'in.mp4: failed (OSError: [Errno 28] ... .v.x1y2.part.mp4)
    (run with --debug ...)', naming the input and the temporary file; now one line names the output, exit 1."""
    src = make_video(tmp_path / "in.mp4", frames=30, size=(256, 192), audio=False)
    out = tmp_path / "out.mp4"
    argv = [str(src), "-o", str(out), "--crf", "0"] if command == "sharpen" else [f"--source={src}", "--sink", str(out)]
    r = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, command, *argv, "--model", "fast"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1 and error_lines(r.stderr) == [
        f"error: {out}: cannot be written (File too large) (check free space)"
    ], r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_a_crf_out_of_range_for_a_video_output_exits_2_before_any_work(tmp_path, capsys, monkeypatch):
    src = make_video(tmp_path / "in.mp4", frames=2, audio=False)
    monkeypatch.setattr(backends, "resolve_model", lambda *a, **k: pytest.fail("the model was loaded"))
    code, err = run(capsys, src, "-o", tmp_path / "out.mp4", "--crf", "60", "--model", "tiny")
    assert code == 2 and error_lines(err) == [
        f"error: {tmp_path / 'out.mp4'}: --crf 60 is out of range for libx264 (use 0 to 51, lower is better)"
    ], err


def test_a_crf_out_of_range_for_a_folders_videos_exits_2_before_any_work(tmp_path, capsys, monkeypatch):
    """A folder into an output folder checked --crf per video, after loading the model: each video failed
    in turn (exit 1, the images written). Now checked once, up front, as for one video output (exit 2)."""
    folder = tmp_path / "in"
    folder.mkdir()
    make_video(folder / "clip.mp4", frames=2, audio=False)
    write(folder / "photo.png", make_test_image(32, 32))
    code, err = run(capsys, folder, "-o", tmp_path / "vp9", "--crf", "60", "--codec", "libvpx-vp9", "--model", "tiny")
    assert code == 0 and not error_lines(err), err  # in VP9's range (0 to 63): checked by each output's encoder
    monkeypatch.setattr(backends, "resolve_model", lambda *a, **k: pytest.fail("the model was loaded"))
    code, err = run(capsys, folder, "-o", tmp_path / "out", "--crf", "60", "--model", "tiny")
    assert code == 2 and error_lines(err) == [
        f"error: {tmp_path / 'out' / 'clip.mp4'}: --crf 60 is out of range for libx264 (use 0 to 51, lower is better)"
    ], err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))
