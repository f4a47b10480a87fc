"""kdsharp.io.images / kdsharp.io.atomic: formats, bit depth, grey, alpha, EXIF, bad files, atomic writes."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
import torch
from conftest import make_test_image

from kdsharp.errors import InputError, OutputError
from kdsharp.io.atomic import atomic_path
from kdsharp.io.images import from_tensor, list_images, read_image, read_image_meta, read_rgb, to_tensor, write_image


def exif_jpeg(img_bgr: np.ndarray, orientation: int) -> bytes:
    """A JPEG of ``img_bgr`` with an EXIF APP1 segment holding only the orientation tag."""
    ok, buf = cv2.imencode(".jpg", img_bgr, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\x00\x00" + tiff
    data = buf.tobytes()
    return data[:2] + app1 + data[2:]


def blocks(h=24, w=40):
    """Four flat quadrants of distinct colours: orientation is easy to check even after JPEG."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (255, 0, 0)
    img[: h // 2, w // 2 :] = (0, 255, 0)
    img[h // 2 :, : w // 2] = (0, 0, 255)
    img[h // 2 :, w // 2 :] = (255, 255, 255)
    return img


@pytest.mark.parametrize(
    "orientation,expect",
    [
        (1, lambda a: a),
        (3, lambda a: np.rot90(a, 2)),
        (6, lambda a: np.rot90(a, -1)),
        (8, lambda a: np.rot90(a, 1)),
        (2, lambda a: a[:, ::-1]),
    ],
)
def test_exif_orientation_applied(tmp_path, orientation, expect):
    img = blocks()
    p = tmp_path / "o.jpg"
    p.write_bytes(exif_jpeg(img, orientation))
    got = read_image(p)
    want = expect(img)
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 6


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_roundtrip(tmp_path, ext):
    img = (np.random.default_rng(0).integers(0, 65535, (13, 17, 3))).astype(np.uint16)
    p = write_image(tmp_path / f"a{ext}", img)
    back = read_image(p)
    assert back.dtype == np.uint16 and np.array_equal(back, img)
    assert read_rgb(p).dtype == np.uint8


def test_grey_and_alpha_roundtrip(tmp_path):
    grey = make_test_image(20, 30)[:, :, 0]
    assert np.array_equal(read_image(write_image(tmp_path / "g.png", grey)), grey)
    bgra = np.dstack([make_test_image(20, 30), np.arange(600, dtype=np.uint8).reshape(20, 30)])
    back = read_image(write_image(tmp_path / "a.png", bgra))
    assert back.shape == (20, 30, 4) and np.array_equal(back, bgra)
    assert read_rgb(tmp_path / "a.png").shape == (20, 30, 3)


def test_jpeg_drops_alpha_and_16bit(tmp_path):
    img = np.dstack([make_test_image(16, 16)] * 1 + [np.full((16, 16), 9, np.uint8)])
    back = read_image(write_image(tmp_path / "a.jpg", img))
    assert back.shape == (16, 16, 3) and back.dtype == np.uint8


@pytest.mark.parametrize("content,problem", [(b"", "empty"), (b"not an image at all", "not a readable image")])
def test_bad_files_raise_input_error_naming_file(tmp_path, content, problem):
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(InputError, match=problem) as e:
        read_image(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_truncated_and_missing(tmp_path):
    ok, buf = cv2.imencode(".png", make_test_image(64, 64))
    p = tmp_path / "cut.png"
    p.write_bytes(buf.tobytes()[:60])
    with pytest.raises(InputError):
        read_image(p)
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path)


def test_write_image_unknown_extension_and_no_temp_left(tmp_path):
    with pytest.raises(OutputError, match="unknown image extension"):
        write_image(tmp_path / "a.xyz", make_test_image(8, 8))
    write_image(tmp_path / "a.png", make_test_image(8, 8))
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    assert (tmp_path / "a.png").stat().st_mode & 0o644 == 0o644  # normal permissions, not mkstemp's 0600


def test_atomic_path_removes_temp_on_error_and_keeps_target(tmp_path):
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["t.bin"]
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".bin" and tmp.parent == tmp_path
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1


def test_list_images_sorted_skips_hidden(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()  # a hidden folder's images are skipped too
    for name in ["b.png", "a.jpg", ".hidden.png", "sub/c.tif", "notes.txt", ".git/d.png"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a.jpg", "b.png", "sub/c.tif"]


def test_tensor_roundtrip_8_and_16_bit():
    img = make_test_image(9, 11)
    t = to_tensor(img, bgr=True)
    assert t.shape == (1, 3, 9, 11) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
    assert torch.allclose(t[0, 0], torch.from_numpy(img[:, :, 2]).float() / 255)
    assert np.array_equal(from_tensor(t, bgr=True), img)
    img16 = img.astype(np.uint16) * 257
    assert np.array_equal(from_tensor(to_tensor(img16), dtype=np.uint16), img16)


def test_output_folder_that_refuses_files_is_a_clear_error(tmp_path):
    # /proc accepts no new files even for root (chmod-based tests pass silently as root).
    from kdsharp.errors import OutputError
    from kdsharp.io.images import write_image

    with pytest.raises(OutputError, match="cannot be written"):
        write_image("/proc/kdsharp-test.png", np.zeros((8, 8, 3), np.uint8))


# -- orientation, grey/alpha, pages and frames, lossless WebP, damaged and special files -------
def _pil_reference(arr: np.ndarray, orientation: int) -> np.ndarray:
    """``arr`` turned upright by Pillow's ``ImageOps.exif_transpose`` for an EXIF ``orientation``."""
    pil = pytest.importorskip("PIL.Image")
    ops = pytest.importorskip("PIL.ImageOps")
    im = pil.fromarray(arr)
    im.getexif()[0x0112] = orientation
    return np.asarray(ops.exif_transpose(im))


@pytest.mark.parametrize("kind", ["rgb8", "grey8", "grey16"])
@pytest.mark.parametrize("orientation", [2, 3, 6, 8])
def test_tiff_orientation_applied_once(tmp_path, kind, orientation):
    pil = pytest.importorskip("PIL.Image")
    rgb = make_test_image(24, 40)
    arr = {"rgb8": rgb, "grey8": rgb[:, :, 1], "grey16": rgb[:, :, 1].astype(np.uint16) * 257}[kind]
    p = tmp_path / "o.tif"
    pil.fromarray(arr).save(p, tiffinfo={0x0112: orientation})
    got = read_image(p)
    want = _pil_reference(arr, orientation)
    if kind == "rgb8":
        got = got[:, :, ::-1]  # BGR
    assert got.dtype == arr.dtype and got.shape == want.shape and np.array_equal(got, want)


def test_grey_with_alpha_stays_grey_with_alpha(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    grey = make_test_image(20, 30)[:, :, 0]
    alpha = np.arange(600, dtype=np.uint8).reshape(20, 30)
    pil.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    keyed = np.maximum(grey, 8)
    keyed[:5] = 7
    pil.fromarray(keyed).save(tmp_path / "trns.png", transparency=7)
    img, meta = read_image_meta(tmp_path / "la.png")
    assert img.shape == (20, 30, 4) and meta.grey_alpha
    write_image(tmp_path / "la_out.png", img, meta=meta)
    with pil.open(tmp_path / "la_out.png") as im:
        assert im.mode == "LA" and np.array_equal(np.asarray(im), np.dstack([grey, alpha]))
    img, meta = read_image_meta(tmp_path / "trns.png")
    assert img.shape == (20, 30, 4) and (img[:5, :, 3] == 0).all() and (img[5:, :, 3] == 255).all()
    write_image(tmp_path / "trns_out.png", img, meta=meta)
    with pil.open(tmp_path / "trns_out.png") as im:
        assert im.mode == "LA" and (np.asarray(im)[:5, :, 1] == 0).all()
    write_image(tmp_path / "la_out.jpg", read_image_meta(tmp_path / "la.png")[0], meta=meta)
    assert read_image(tmp_path / "la_out.jpg").ndim == 2  # no alpha in JPEG: still grey


def test_a_grey_alpha_tiff_keeps_its_alpha(tmp_path):
    """OpenCV reads a grey + alpha TIFF as grey alone; README: alpha is kept where the format stores it."""
    pil = pytest.importorskip("PIL.Image")
    grey = make_test_image(20, 30)[:, :, 0]
    alpha = np.arange(600, dtype=np.uint8).reshape(20, 30)
    pil.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.tif")
    img, meta = read_image_meta(tmp_path / "la.tif")
    assert meta.grey_alpha and np.array_equal(img, np.dstack([grey, grey, grey, alpha]))
    out = read_image(write_image(tmp_path / "la_out.tif", img, meta=meta))
    assert out.shape == (20, 30, 4) and np.array_equal(out[:, :, 3], alpha) and np.array_equal(out[:, :, 0], grey)


def test_bmp_keeps_alpha(tmp_path):
    bgra = np.dstack([make_test_image(16, 20), np.full((16, 20), 100, np.uint8)])
    assert np.array_equal(read_image(write_image(tmp_path / "a.bmp", bgra)), bgra)


@pytest.mark.parametrize(
    "name,says",
    [("multi.tif", "2 pages"), ("anim.webp", "animation of 2 frames"), ("anim.png", "animation of 2 frames")],
)
def test_pages_and_animations_are_refused_like_gif(tmp_path, name, says):
    pil = pytest.importorskip("PIL.Image")
    frames = [pil.fromarray(make_test_image(16, 16, seed=s)) for s in range(2)]
    frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(InputError, match=says) as e:
        read_image(tmp_path / name)
    assert name in str(e.value) and "MP4" in str(e.value)


def test_lossless_webp_stays_lossless(tmp_path):
    img = make_test_image(24, 24)
    lossless = write_image(tmp_path / "in.webp", img, quality=101)  # OpenCV: above 100 is lossless
    got, meta = read_image_meta(lossless)
    assert meta.lossless and np.array_equal(got, img)
    out = write_image(tmp_path / "out.webp", got, meta=meta)
    assert out.read_bytes()[12:16] == b"VP8L" and np.array_equal(read_image(out), img)
    assert write_image(tmp_path / "lossy.webp", img).read_bytes()[12:16] == b"VP8 "  # no meta: lossy as before


def test_truncated_png_one_line_and_a_fix_for_a_damaged_file(tmp_path, capfd):
    ok, buf = cv2.imencode(".png", make_test_image(64, 64))
    data = buf.tobytes()
    (tmp_path / "cut.png").write_bytes(data[:-12])  # IEND missing: libpng would print to stderr itself
    flipped = bytearray(data)
    flipped[100] ^= 0xFF
    (tmp_path / "crc.png").write_bytes(bytes(flipped))
    for name in ("cut.png", "crc.png"):
        with pytest.raises(InputError) as e:
            read_image(tmp_path / name)
        assert name in str(e.value) and "re-export or remove it" in str(e.value) and "use one of" not in str(e.value)
    assert capfd.readouterr().err == ""  # nothing but kdsharp's own line


def test_float_tiff_is_read_16_bit_with_a_warning(tmp_path, capsys):
    f = np.linspace(0, 1, 16 * 16 * 3, dtype=np.float32).reshape(16, 16, 3)
    p = tmp_path / "f.tif"
    p.write_bytes(cv2.imencode(".tif", f)[1].tobytes())
    img = read_image(p)
    assert img.dtype == np.uint16
    assert "f.tif" in capsys.readouterr().err


def test_special_files_are_not_images(tmp_path):
    import os

    os.mkfifo(tmp_path / "f.png")
    with pytest.raises(InputError, match="not a regular file"):
        read_image(tmp_path / "f.png")


def test_transparency_dropped_by_jpeg_is_said_once(tmp_path, capsys):
    bgra = np.dstack([make_test_image(16, 16), np.full((16, 16), 255, np.uint8)])
    write_image(tmp_path / "opaque.jpg", bgra)
    assert "transparency" not in capsys.readouterr().err  # nothing was hidden: nothing to say
    bgra[:4, :, 3] = 0
    write_image(tmp_path / "a.jpg", bgra)
    err = capsys.readouterr().err
    assert err.count("a.jpg: JPEG stores no transparency") == 1 and ".png" in err
    assert read_image(tmp_path / "a.jpg").shape == (16, 16, 3)  # dropped, as before


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("src_ext,out_ext", [(".jpg", ".png"), (".png", ".jpg"), (".jpg", ".jpg"), (".webp", ".png")])
def test_icc_colour_profile_is_kept(tmp_path, src_ext, out_ext):
    """A photo tagged with a colour profile (Display P3, Adobe RGB, ...) keeps it: the model works on
    the encoded values, so the output is in the input's colour space. Checked with Pillow's reader."""
    from PIL import Image

    icc = _srgb_profile()
    src = tmp_path / f"in{src_ext}"
    Image.fromarray(blocks()).save(src, icc_profile=icc, **({"lossless": True} if src_ext == ".webp" else {}))
    img, meta = read_image_meta(src)
    assert meta.icc == icc
    out = write_image(tmp_path / f"out{out_ext}", img, meta=meta)
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == icc
    assert read_image_meta(out)[1].icc == icc


@pytest.mark.parametrize(
    "src_ext,out_ext,alpha",
    [
        (".png", ".webp", False),
        (".png", ".webp", True),
        (".webp", ".webp", True),
        (".jpg", ".tif", False),
        (".png", ".tiff", True),
        (".tif", ".tif", False),
    ],
)
def test_icc_colour_profile_is_kept_in_webp_and_tiff(tmp_path, src_ext, out_ext, alpha):
    """WebP and TIFF outputs lost the input's colour profile (OpenCV writes none): a WebP becomes an
    extended one with an ICCP chunk, a TIFF gets the ICC tag; pixels, alpha and dpi stay as written.
    Checked with Pillow's reader."""
    from PIL import Image

    icc = _srgb_profile()
    rgb = blocks()
    pixels = np.dstack([rgb, np.linspace(0, 255, rgb.shape[1], dtype=np.uint8)[None].repeat(rgb.shape[0], 0)])
    src = tmp_path / f"in{src_ext}"
    Image.fromarray(pixels if alpha else rgb).save(
        src, icc_profile=icc, dpi=(300, 300), **({"lossless": True} if src_ext == ".webp" else {})
    )
    img, meta = read_image_meta(src)
    assert meta.icc == icc
    out = write_image(tmp_path / f"out{out_ext}", img, meta=meta)
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == icc
        back = np.asarray(im.convert("RGBA" if alpha else "RGB"))
        if out_ext != ".webp":
            assert tuple(round(v) for v in im.info["dpi"]) == (300, 300)
    assert read_image_meta(out)[1].icc == icc
    again = read_image(out)  # OpenCV reads it as before, alpha included
    assert again.shape == img.shape and back.shape == img.shape
    if out_ext != ".webp" or src_ext == ".webp":  # lossless: the same pixels, by OpenCV and by Pillow
        as_rgb = img[:, :, [2, 1, 0, 3] if alpha else [2, 1, 0]]
        assert np.array_equal(again, img) and np.array_equal(back, as_rgb)
    elif alpha:  # a lossy WebP keeps its alpha too
        assert np.abs(back[:, :, 3].astype(int) - pixels[:, :, 3]).max() <= 2


def test_a_grey_tiff_keeps_its_grey_profile_and_a_webp_drops_it(tmp_path):
    """A grey profile tags a grey TIFF; WebP stores RGB, where a grey profile would mis-tag it."""
    from PIL import ImageCms

    grey_icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    grey_icc = grey_icc[:16] + b"GRAY" + grey_icc[20:]  # a profile whose header says grey (enough here)
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), blocks()[:, :, 0])
    _, meta = read_image_meta(src)
    meta.icc = grey_icc
    img = read_image(src)
    assert read_image_meta(write_image(tmp_path / "out.tif", img, meta=meta))[1].icc == grey_icc
    assert read_image_meta(write_image(tmp_path / "out.webp", img, meta=meta))[1].icc is None


def test_a_bmp_output_says_it_drops_the_colour_profile(tmp_path, capsys):
    """BMP (as OpenCV writes it) stores no profile: one warning names the file and the formats that keep it."""
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray(blocks()).save(src, icc_profile=_srgb_profile())
    img, meta = read_image_meta(src)
    write_image(tmp_path / "plain.bmp", img)  # no profile to drop: nothing to say
    assert "warning" not in capsys.readouterr().err
    out = write_image(tmp_path / "out.bmp", img, meta=meta)
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert warnings == [
        f"warning: {out}: the input's ICC colour profile was dropped (BMP stores none): colour-managed viewers "
        "may show its colours shifted (write .png, .jpg, .webp or .tif to keep it)"
    ]
    assert np.array_equal(read_image(out), img)


def test_a_large_icc_profile_spans_several_jpeg_segments(tmp_path):
    icc = bytearray(np.random.default_rng(0).integers(0, 256, 150_000, dtype=np.uint8).tobytes())
    icc[16:20] = b"RGB "
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), blocks())
    _, meta = read_image_meta(src)
    meta.icc = bytes(icc)
    out = write_image(tmp_path / "out.jpg", blocks(), meta=meta)
    assert read_image_meta(out)[1].icc == bytes(icc)  # three APP2 chunks, put back in order
    from PIL import Image

    with Image.open(out) as im:
        assert im.info.get("icc_profile") == bytes(icc)


def test_an_rgb_profile_is_not_put_on_a_grey_output(tmp_path):
    """A profile must match the written channels (libpng and viewers reject an RGB profile on grey)."""
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray(blocks()).save(src, icc_profile=_srgb_profile())
    _, meta = read_image_meta(src)
    out = write_image(tmp_path / "grey.png", np.full((8, 8), 128, np.uint8), meta=meta)
    assert read_image_meta(out)[1].icc is None
    with Image.open(out) as im:
        assert "icc_profile" not in im.info


def test_a_cmyk_tiff_is_read_as_rgb_without_an_alpha_channel(tmp_path):
    """OpenCV converts CMYK to BGRA with an opaque fourth channel; the output must not grow an alpha."""
    from PIL import Image

    rgb = blocks()
    src = tmp_path / "cmyk.tif"
    Image.fromarray(rgb).convert("CMYK").save(src)
    img, meta = read_image_meta(src)
    assert meta.cmyk and img.shape == (*rgb.shape[:2], 3)
    assert np.abs(img[:, :, ::-1].astype(int) - rgb).max() <= 2  # BGR of the same colours
    out = write_image(tmp_path / "out.tif", img, meta=meta)
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape[2] == 3
