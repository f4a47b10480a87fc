"""Issue 13, a new user's first hour: each rough edge, as a user meets it."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from conftest import make_test_image
from test_infer_helpers import tiny_model
from test_io_images import exif_jpeg

import kdsharp.infer.backends as backends
from kdsharp.cli import main

ROOT = Path(__file__).resolve().parents[1]
_real_resolve = backends.resolve_model


@pytest.fixture(autouse=True)
def tiny(monkeypatch):
    """``--model tiny`` is a small untrained conv net; other names go to the real registry."""
    monkeypatch.setattr(
        backends,
        "resolve_model",
        lambda m, device="cpu": tiny_model() if str(m) == "tiny" else _real_resolve(m, device),
    )


def sharpen(capsys, *args) -> tuple[int, str]:
    code = main(["sharpen", *map(str, args), "--model", "tiny"])
    return code, capsys.readouterr().err


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def png(path: Path, h: int = 16, w: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), make_test_image(h, w))
    return path


# -- 3: several inputs and an output named like a file -------------------------------------
@pytest.mark.parametrize("out", ["out2.png", "out2.mp4"])
def test_several_inputs_with_a_file_name_output_is_one_line_exit_2(tmp_path, capsys, out):
    a, b = png(tmp_path / "normal.png"), png(tmp_path / "grey.png")
    code, err = sharpen(capsys, a, b, "-o", tmp_path / out)
    assert code == 2 and not (tmp_path / out).exists()  # no folder named out2.png
    (line,) = errors(err)
    assert out in line and "2 inputs need an output folder" in line and "--output " in line and "out2" + "/" in line


def test_a_folder_with_a_file_name_output_is_refused_too(tmp_path, capsys):
    png(tmp_path / "shots" / "a.png")
    code, err = sharpen(capsys, tmp_path / "shots", "-o", tmp_path / "s.png")
    assert code == 2 and not (tmp_path / "s.png").exists()
    assert "needs an output folder" in errors(err)[0]


def test_an_existing_folder_with_an_extension_is_still_a_folder(tmp_path, capsys):
    a, b = png(tmp_path / "a.png"), png(tmp_path / "b.png")
    (tmp_path / "odd.png").mkdir()
    code, err = sharpen(capsys, a, b, "-o", tmp_path / "odd.png")
    assert code == 0, err and (tmp_path / "odd.png" / "a.png").is_file()


# -- 6: boolean flags take no value ---------------------------------------------------------
def _all_commands():
    import typer.main

    from kdsharp.cli import app

    todo = [("kdsharp", typer.main.get_command(app))]
    while todo:
        name, cmd = todo.pop()
        yield name, cmd
        todo += [(f"{name} {k}", c) for k, c in getattr(cmd, "commands", {}).items()]


def test_no_help_shows_a_bool_placeholder(capsys):
    names = []
    for name, _ in _all_commands():
        assert main([*name.split()[1:], "--help"]) == 0
        out = capsys.readouterr().out
        assert "<bool>" not in out, f"{name} --help shows <bool>"
        names.append(name)
    assert "kdsharp sharpen" in names and "kdsharp train teacher" in names


def test_help_still_lists_the_flags(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    assert main(["sharpen", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--overwrite" in out and "--half" in out


def test_a_value_after_a_flag_gets_a_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    png(tmp_path / "a.png")
    code, err = sharpen(capsys, "a.png", "--overwrite", "true", "-o", "x/")
    assert code == 2
    (line,) = errors(err)
    assert line.startswith("error: true:") and "take no value" in line


# -- 7: GIFs and other unsupported files ----------------------------------------------------
def test_gif_given_by_name_fails_like_a_corrupt_file(tmp_path, capsys):
    gif = tmp_path / "anim.gif"
    gif.write_bytes(b"GIF89a" + bytes(40))
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"not a png" * 10)
    codes = []
    for src in (gif, bad):
        code, err = sharpen(capsys, src, "-o", tmp_path / "out.png")
        (line,) = errors(err)
        assert src.name in line and "Traceback" not in err
        codes.append(code)
    assert "GIF is not supported" in errors(sharpen(capsys, gif, "-o", tmp_path / "o.png")[1])[0]
    assert codes == [1, 1]  # the same exit code for every file that cannot be sharpened
    code, err = sharpen(capsys, gif, "-o", tmp_path / "out.png")
    assert "convert it to PNG" in errors(err)[0] and "nothing written" in err and "-> " not in err
    assert not (tmp_path / "out.png").exists()


def test_gif_among_several_inputs_is_reported_and_the_others_written(tmp_path, capsys):
    a = png(tmp_path / "a.png")
    gif = tmp_path / "anim.gif"
    gif.write_bytes(b"GIF89a" + bytes(40))
    code, err = sharpen(capsys, a, gif, "-o", tmp_path / "out")
    assert code == 1 and (tmp_path / "out" / "a.png").is_file()
    assert len(errors(err)) == 1 and "anim.gif" in errors(err)[0] and "1 done, 1 failed" in err


def test_folder_lists_its_unsupported_files_in_one_warning(tmp_path, capsys):
    src = tmp_path / "shots"
    png(src / "a.png")
    (src / "b.gif").write_bytes(b"GIF89a" + bytes(40))
    (src / "notes.txt").write_text("x")
    (src / ".hidden.txt").write_text("x")  # hidden files stay silent
    code, err = sharpen(capsys, src, "-o", tmp_path / "out")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "skipped 2 unsupported files" in warnings[0] and "b.gif" in warnings[0] and "notes.txt" in warnings[0]
    assert ".hidden" not in warnings[0] and "convert GIFs" in warnings[0]


def test_python_api_reports_unsupported_files_as_failed(tmp_path):
    from kdsharp.infer.sharpener import Sharpener

    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    result = Sharpener(tiny_model(), device="cpu").paths([png(tmp_path / "a.png"), tmp_path / "x.gif"], tmp_path / "o")
    assert len(result.done) == 1 and result.failed[0][0].name == "x.gif"


# -- 10: messages ---------------------------------------------------------------------------
def test_failed_single_file_summary_names_no_output(tmp_path, capsys):
    (tmp_path / "empty_s.png").write_bytes(b"")
    code, err = sharpen(capsys, tmp_path / "empty_s.png", "-o", tmp_path / "out" / "empty_s.png")
    assert code == 1
    summary = err.strip().splitlines()[-1]
    assert "0 done, 1 failed" in summary and "nothing written" in summary and "->" not in summary


def test_output_extension_message_grammar(tmp_path, capsys):
    code, err = sharpen(capsys, png(tmp_path / "a.png"), "-o", tmp_path / "o.mp4")
    assert code == 2 and "for an image" in errors(err)[0]


def test_model_descriptions_are_whole():
    from kdsharp.registry import model_info

    d = model_info("teacher")["description"]
    assert "teacher.safetensors" in d and d.endswith(".") and "\n" not in d


# -- 5: parameters, training vs deployed ----------------------------------------------------
def test_models_says_which_parameter_count_is_which(capsys, monkeypatch):
    from kdsharp.registry import model_info

    info = model_info("fast")
    assert info["params"] == 42_064 and info["params_deployed"] == 11_664
    assert model_info("student")["params_deployed"] == model_info("student")["params"]
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["models"]) == 0
    err = capsys.readouterr().err
    assert "42.1k/11.7k" in err and "training/deployed" in err and "kdsharp bench" in err


def test_bench_reports_both_counts(capsys):
    from kdsharp.evaluate import benchmark

    r = benchmark("fast", size=(32, 32), iters=1, warmup=0)
    assert r["params"] == 11_664 and r["params_train"] == 42_064
    assert main(["bench", "--model", "fast", "--size", "32x32", "--iters", "1", "--warmup", "0"]) == 0
    assert "42.1k train / 11.7k deployed" in capsys.readouterr().err


# -- 11: load_model returns a model in inference mode -----------------------------------------
def test_load_model_is_in_inference_mode(recwarn):
    from kdsharp.registry import load_model

    for deploy in (True, False):
        model = load_model("fast", deploy=deploy)
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    y = model(torch.rand(1, 3, 16, 16))
    assert not y.requires_grad and y.grad_fn is None
    model.train().requires_grad_(True)  # fine-tuning stays one call away
    assert all(p.requires_grad for p in model.parameters())


def test_init_weights_from_load_model_still_trains():
    from kdsharp.registry import create_model
    from kdsharp.train.builders import init_weights

    model = create_model("fast")
    init_weights(model, "fast")
    assert all(p.requires_grad for p in model.parameters()) and model.training
    model(torch.rand(1, 3, 16, 16)).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


# -- 4: configs ship with the package -------------------------------------------------------
def test_shipped_configs_resolve_by_name_from_anywhere(tmp_path, monkeypatch):
    from kdsharp.configs import format_configs, list_configs, resolve_config_path
    from kdsharp.errors import ConfigError

    monkeypatch.chdir(tmp_path)  # outside the clone: configs/... is not a relative path here
    for name in ("teacher_cpu", "teacher_cpu.yaml", "configs/teacher_quick.yaml", "degrade/screen_share"):
        assert resolve_config_path(name).is_file(), name
    assert resolve_config_path("teacher_cpu").stem == "teacher_cpu"
    own = tmp_path / "mine.yaml"
    own.write_text("name: mine\n")
    assert resolve_config_path(own) == own and resolve_config_path("mine.yaml") == Path("mine.yaml")
    with pytest.raises(ConfigError, match="teacher_quick"):
        resolve_config_path("teacher_quik")
    assert {"teacher_quick", "teacher_cpu", "student_cpu", "fast_cpu"} <= set(list_configs())
    text = format_configs()
    assert "teacher_quick" in text and "Quick teacher" in text and "screen_share" in text


def test_shipped_config_loads_as_a_training_config():
    from kdsharp.configs import resolve_config_path
    from kdsharp.train.config import load_config

    cfg = load_config(resolve_config_path("teacher_quick"))
    assert cfg["name"] == "teacher_quick"


def test_wheel_carries_the_configs(tmp_path):
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    src = tmp_path / "src"
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes((ROOT / name).read_bytes())
    ignore = __import__("shutil").ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in ("kdsharp", "configs"):
        __import__("shutil").copytree(ROOT / folder, src / folder, ignore=ignore)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    import zipfile

    (whl,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        assert "kdsharp/configs/teacher_quick.yaml" in names and "kdsharp/configs/degrade/full_schema.yaml" in names
        z.extractall(tmp_path / "site")
    code = (
        "from kdsharp.configs import resolve_config_path as r; p = r('teacher_cpu'); "
        "print(p); assert 'site' in str(p) and p.is_file()"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": ""},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]


# -- 8: 10-bit video, image metadata ------------------------------------------------------------
def ten_bit_video(path: Path, frames: int = 3) -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p10le"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(make_test_image(48, 64, seed=i), format="rgb24").reformat(format=s.pix_fmt)
            f.pts, f.time_base = i, Fraction(1, 10)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def test_ten_bit_video_is_written_8_bit_with_one_warning(tmp_path, capsys):
    from kdsharp.io.video import probe_video

    src = ten_bit_video(tmp_path / "hdr.mkv")
    assert probe_video(src).bit_depth == 10
    code, err = sharpen(capsys, src, "-o", tmp_path / "out.mkv")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "10-bit" in warnings[0] and "8-bit" in warnings[0] and "hdr.mkv" in warnings[0]
    info = probe_video(tmp_path / "out.mkv")
    assert info.bit_depth == 8 and info.frames == 3


def _jfif_dpi(data: bytes, dpi: int) -> bytes:
    """``data`` (a JPEG from OpenCV) with its JFIF density set to ``dpi`` dots per inch."""
    i = data.index(b"JFIF\x00")
    return data[: i + 7] + struct.pack(">BHH", 1, dpi, dpi) + data[i + 12 :]


def _exif(orientation: int, make: bytes = b"Camera\x00") -> bytes:
    """A little-endian EXIF block: Orientation and Make."""
    off = 8 + 2 + 2 * 12 + 4
    ifd = (
        struct.pack("<H", 2)
        + struct.pack("<HHII", 0x010F, 2, len(make), off)
        + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
        + struct.pack("<I", 0)
    )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + make


def _png_with(img: np.ndarray, chunks: list[tuple[bytes, bytes]]) -> bytes:
    data = cv2.imencode(".png", img)[1].tobytes()
    end = 8 + 8 + 13 + 4  # after IHDR
    extra = b"".join(struct.pack(">I", len(p)) + k + p + struct.pack(">I", zlib.crc32(k + p)) for k, p in chunks)
    return data[:end] + extra + data[end:]


def test_jpeg_keeps_exif_and_dpi_and_is_upright_once(tmp_path, capsys):
    from kdsharp.io.meta import read_meta

    img = make_test_image(20, 40)
    src = tmp_path / "photo.jpg"
    jpeg = _jfif_dpi(cv2.imencode(".jpg", img)[1].tobytes(), 300)
    app1 = b"Exif\x00\x00" + _exif(6)
    src.write_bytes(jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:])
    for out in ("out.jpg", "out.png", "out.tif", "out.webp"):
        code, err = sharpen(capsys, src, "-o", tmp_path / out)
        assert code == 0, err
        data = (tmp_path / out).read_bytes()
        meta = read_meta(data)
        if out != "out.webp":  # (WebP stores no resolution)
            assert meta.dpi == pytest.approx((300, 300), abs=0.01), out
        raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
        assert raw.shape[:2] == (40, 20)  # pixels upright ...
        if out != "out.tif":
            assert meta.exif is not None and b"Camera" in meta.exif
            assert meta.orientation == 1  # ... and not rotated a second time by viewers
    pil = pytest.importorskip("PIL.Image")
    with pil.open(tmp_path / "out.jpg") as im:
        assert im.info["dpi"] == (300, 300) and im.getexif()[0x010F].startswith("Camera")
        assert im.getexif()[0x0112] == 1
    with pil.open(tmp_path / "out.webp") as im:  # a valid extended WebP with its EXIF chunk
        assert im.size == (20, 40) and im.getexif()[0x010F].startswith("Camera") and im.getexif()[0x0112] == 1


def test_png_keeps_exif_and_dpi(tmp_path, capsys):
    from kdsharp.io.images import read_image
    from kdsharp.io.meta import read_meta

    ppm = round(150 / 0.0254)
    src = tmp_path / "scan.png"
    src.write_bytes(
        _png_with(make_test_image(20, 40), [(b"pHYs", struct.pack(">IIB", ppm, ppm, 1)), (b"eXIf", _exif(8))])
    )
    assert read_image(src).shape[:2] == (40, 20)  # PNG eXIf orientation is applied like JPEG's
    code, err = sharpen(capsys, src, "-o", tmp_path / "out.png")
    assert code == 0, err
    meta = read_meta((tmp_path / "out.png").read_bytes())
    assert meta.dpi == pytest.approx((150, 150), abs=0.01) and meta.orientation == 1 and b"Camera" in meta.exif


def test_write_image_without_meta_is_unchanged(tmp_path):
    from kdsharp.io.images import write_image
    from kdsharp.io.meta import ImageMeta

    img = make_test_image(16, 16)
    for ext in (".jpg", ".png", ".tif", ".webp"):
        a = write_image(tmp_path / f"a{ext}", img).read_bytes()
        b = write_image(tmp_path / f"b{ext}", img, meta=ImageMeta()).read_bytes()
        assert (
            a
            == b
            == cv2.imencode(
                ext,
                img,
                [cv2.IMWRITE_JPEG_QUALITY, 95]
                if ext == ".jpg"
                else [cv2.IMWRITE_WEBP_QUALITY, 95]
                if ext == ".webp"
                else [],
            )[1].tobytes()
        )


def test_orientation_from_the_old_jpeg_fixture_still_applies(tmp_path):
    from kdsharp.io.images import read_image_meta

    p = tmp_path / "o.jpg"
    p.write_bytes(exif_jpeg(make_test_image(20, 40), 6))
    img, meta = read_image_meta(p)
    assert img.shape[:2] == (40, 20) and meta.orientation == 6


# -- 9: the comparison picture shows detail ----------------------------------------------------
def _sample(name: str, seed: int) -> dict:
    """Left half flat (where the reference gains most), right half textured."""
    rng = np.random.default_rng(seed)
    gt = np.full((96, 192, 3), 180, np.uint8)
    gt[:, 96:] = rng.integers(0, 255, (96, 96, 3))
    inp = gt.copy()
    inp[:, :96] = 120  # a large error on the flat half that the reference fixes
    ref = gt.copy()
    ref[:, 96:] = gt[:, 96:] // 2 + inp[:, 96:] // 2
    return {"name": name, "gt": gt, "images": {"input": inp, "teacher": ref}}


def test_crops_go_to_detail_not_flat_areas():
    from kdsharp.evaluate.compare import pick_crops

    samples = [_sample(n, i) for i, n in enumerate("abc")]
    crops = pick_crops(samples, "teacher", n=3, crop=32)
    assert len(crops) == 3 and len({c["image"] for c in crops}) == 3
    assert all(c["x"] >= 96 - 8 for c in crops), crops  # on the textured half


def test_face_and_text_hints_come_first():
    from kdsharp.evaluate.compare import pick_crops, render_comparison

    samples = [_sample(n, i) for i, n in enumerate("abcd")]
    samples[2]["tags"] = {"text"}
    samples[1]["tags"], samples[1]["boxes"] = {"people-face"}, {"people-face": (4, 8, 20, 20)}  # corpus tag
    crops = pick_crops(samples, "teacher", n=3, crop=32, hints=[{"image": "d", "tag": "other"}])
    assert [c["tag"] for c in crops[:2]] == ["face", "text"]
    assert crops[0]["image"] == 1 and crops[0]["x"] == 0 and crops[0]["y"] == 2  # centred on the box
    assert crops[1]["image"] == 2 and crops[1]["x"] >= 88
    pic = render_comparison(samples, ["input", "teacher", "gt"], crops)
    assert pic.ndim == 3 and pic.shape[2] == 3
    by_hint = pick_crops(samples[:1] + samples[3:], None, n=2, crop=32, hints=[{"image": "d", "tag": "text"}])
    assert by_hint[0]["tag"] == "text" and by_hint[0]["name"] == "d"
