"""Image files <-> arrays <-> tensors.

Arrays at this edge are OpenCV's: uint8 or uint16, HxW (grey), HxWx3 (BGR) or HxWx4 (BGRA).
Tensors inside kdsharp are (N,3,H,W) float RGB in [0,1]. Conversion happens here and in
``kdsharp.infer``, nowhere else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from kdsharp.console import warn
from kdsharp.errors import InputError, OutputError
from kdsharp.io.atomic import atomic_path
from kdsharp.io.inputs import existing_file
from kdsharp.io.meta import (
    ImageMeta,
    icc_carried,
    icc_fits,
    png_chunk,
    png_problem,
    read_meta,
    tiff_params,
    with_meta,
)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MAX_PIXELS = 16384 * 16384  # refuse images larger than this (about 268 Mpx)


def is_image_file(path: str | Path) -> bool:
    """True if ``path`` has an image extension we read."""
    return Path(path).suffix.lower() in IMAGE_EXTS


def list_images(folder: str | Path, recursive: bool = True, skipped: list[Path] | None = None) -> list[Path]:
    """Sorted image files under ``folder`` (hidden files and folders and our own temp files skipped);
    the other files are appended to ``skipped`` (for :func:`kdsharp.io.inputs.warn_skipped`)."""
    folder = Path(folder)
    it = folder.rglob("*") if recursive else folder.glob("*")
    files = [p for p in it if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    if skipped is not None:
        skipped += sorted(p for p in files if not is_image_file(p))
    return sorted(p for p in files if is_image_file(p))


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as stored: uint8/uint16, HxW, HxWx3 BGR or HxWx4 BGRA.

    EXIF orientation is applied. Raises :class:`InputError` (one line, names the file) for a
    missing, empty, corrupt, unsupported or too large file.
    """
    return read_image_meta(path)[0]


def read_image_meta(path: str | Path) -> tuple[np.ndarray, ImageMeta]:
    """:func:`read_image` and the file's EXIF and dpi (:class:`kdsharp.io.meta.ImageMeta`), which
    :func:`write_image` can carry into the output.

    Grey with alpha (PNG grey + alpha, or grey with a transparent level) is read as BGRA with equal
    colours and ``meta.grey_alpha`` set. A multi-page TIFF or an animated WebP is refused (like a GIF:
    only single images are sharpened); 32-bit float samples are read as 16-bit, with a warning.
    """
    path = existing_file(path, "image")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or e})", "check its permissions") from e
    buf = data.tobytes()
    meta = read_meta(buf)
    if meta.format == "png" and (problem := png_problem(buf)):
        raise InputError(path, f"not a readable image: PNG {problem}", "re-export or remove it")
    if meta.frames > 1:
        what = f"{meta.frames} pages" if meta.format == "tiff" else f"an animation of {meta.frames} frames"
        raise InputError(
            path,
            f"has {what}, and kdsharp sharpens single images",
            "convert an animation to MP4 (a video), or save the page or frame you want as PNG",
        )
    with _opencv_quiet():  # our one-line error says it better than OpenCV's log lines
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        fix = "re-export or remove it" if is_image_file(path) else f"use one of {', '.join(IMAGE_EXTS)}"
        raise InputError(path, "not a readable image (corrupt, truncated or unsupported format)", fix)
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise InputError(path, f"image is too large ({img.shape[1]}x{img.shape[0]})", "split it or downscale it first")
    if img.dtype not in (np.uint8, np.uint16):
        if img.dtype != np.float32:
            raise InputError(path, f"unsupported sample type {img.dtype}", "convert it to 8- or 16-bit")
        warn(f"{path}: 32-bit float samples are read as 16-bit (values clipped to 0..1); the output is 16-bit")
        img = (np.clip(img, 0, 1) * 65535 + 0.5).astype(np.uint16)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if meta.cmyk and img.ndim == 3 and img.shape[2] == 4:  # converted to BGR + an opaque channel: no alpha
        img = np.ascontiguousarray(img[:, :, :3])
    if meta.grey_key is not None and img.ndim == 2:  # grey + tRNS: a real alpha channel
        alpha = np.where(img == meta.grey_key, 0, 65535 if img.dtype == np.uint16 else 255).astype(img.dtype)
        img = np.dstack([img, img, img, alpha])
    if meta.format == "tiff":  # OpenCV's TIFF decoder turns the pixels upright itself, whatever the flags
        if meta.grey_alpha:  # but reads grey + alpha as 8-bit grey: FFmpeg's decoder keeps both
            img = _grey_alpha_tiff(path, img, meta.orientation)
        return img, meta
    orientation = meta.orientation if meta.orientation != 1 else _exif_orientation(buf)
    return _apply_orientation(img, orientation), meta


def _grey_alpha_tiff(path: Path, grey: np.ndarray, orientation: int) -> np.ndarray:
    """A grey + alpha TIFF as BGRA with equal colours (8 or 16 bits), decoded by FFmpeg and turned
    upright; OpenCV's ``grey`` (alpha dropped), with a warning, if FFmpeg cannot decode it."""
    import av

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
    except (av.error.FFmpegError, StopIteration):
        frame = None
    name = frame.format.name if frame is not None else ""
    if frame is None or name not in ("ya8", "ya16le", "ya16be"):
        warn(f"{path}: grey + alpha TIFF read as grey: alpha dropped (convert it to a grey + alpha PNG)")
        return grey
    dtype = np.dtype(np.uint8) if name == "ya8" else np.dtype(">u2" if name.endswith("be") else "<u2")
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
    ya = rows[:, : frame.width * 2 * dtype.itemsize].copy().view(dtype).reshape(frame.height, frame.width, 2)
    ya = ya.astype(np.uint8 if dtype.itemsize == 1 else np.uint16)
    y, a = ya[:, :, 0], ya[:, :, 1]
    return _apply_orientation(np.dstack([y, y, y, a]), orientation)


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    """OpenCV's log messages off for the ``with`` block."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def _apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip ``img`` as an EXIF/TIFF orientation tag (1..8) says."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    if orientation in ops:
        img = np.ascontiguousarray(ops[orientation](img))
    return img


def _exif_orientation(buf: bytes) -> int:
    """Orientation tag (1..8) from the first EXIF block in ``buf``; 1 if none."""
    idx = buf.find(b"Exif\x00\x00")
    start = idx + 6 if idx >= 0 else -1
    if start < 0:
        return 1
    tiff = buf[start : start + 65536]
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    endian = "<" if tiff[:2] == b"II" else ">"
    import struct

    try:
        (ifd,) = struct.unpack(endian + "I", tiff[4:8])
        (count,) = struct.unpack(endian + "H", tiff[ifd : ifd + 2])
        for i in range(count):
            entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
            tag, typ = struct.unpack(endian + "HH", entry[:4])
            if tag == 0x0112:
                (value,) = struct.unpack(endian + "H", entry[8:10])
                return int(value) if 1 <= value <= 8 else 1
    except struct.error:
        return 1
    return 1


def read_rgb(path: str | Path) -> np.ndarray:
    """Read any image as uint8 HxWx3 RGB (grey expanded, alpha dropped, 16-bit scaled)."""
    return to_rgb8(read_image(path))


def to_rgb8(img: np.ndarray) -> np.ndarray:
    """Any OpenCV-layout image (uint8/uint16; grey, BGR or BGRA) as uint8 HxWx3 RGB."""
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def write_image(path: str | Path, img: np.ndarray, quality: int = 95, meta: ImageMeta | None = None) -> Path:
    """Write an OpenCV-layout array (uint8/uint16, HxW / HxWx3 BGR / HxWx4 BGRA) atomically.

    The format follows the extension; JPEG/WebP use ``quality``. ``meta`` (from
    :func:`read_image_meta`) adds the input's EXIF (orientation set to 1: the pixels are upright)
    and dpi to JPEG and PNG outputs, its dpi to TIFF, and its ICC colour profile to all of them and
    WebP (BMP stores none: a warning says it was dropped). Returns ``path``.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTS:
        raise OutputError(path, f"unknown image extension '{path.suffix}'", f"use one of {', '.join(IMAGE_EXTS)}")
    if ext in (".jpg", ".jpeg", ".webp", ".bmp") and img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if ext in (".jpg", ".jpeg") and img.ndim == 3 and img.shape[2] == 4:
        if (img[:, :, 3] < np.iinfo(img.dtype).max).any():  # said once here: the pixels it hid become visible
            warn(f"{path}: JPEG stores no transparency: alpha dropped (write .png, .webp or .tif to keep it)")
        img = img[:, :, :3]
    if meta is not None and meta.grey_alpha and img.ndim == 3:  # a grey input stays grey
        grey = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY)
        img = grey if img.shape[2] == 3 else np.dstack([grey, grey, grey, img[:, :, 3]])
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif ext == ".webp":  # above 100: lossless, for a lossless input
        params = [cv2.IMWRITE_WEBP_QUALITY, 101 if meta is not None and meta.lossless else int(quality)]
    elif ext in (".tif", ".tiff"):
        params = tiff_params(meta)
    if ext == ".png" and meta is not None and meta.grey_alpha and img.ndim == 3:
        encoded = _png_grey_alpha(img[:, :, 0], img[:, :, 3])  # OpenCV writes no 2-channel PNG
    else:
        ok, buf = cv2.imencode(ext, img, params)
        if not ok:
            raise OutputError(path, "the image could not be encoded", "try another format")
        encoded = buf.tobytes()
    png_grey = ext == ".png" and encoded[25:26] in (b"\x00", b"\x04")  # IHDR colour type: grey (+ alpha)
    written_grey = ext != ".webp" and (img.ndim == 2 or img.shape[2] in (1, 2) or png_grey)  # WebP is RGB(A)
    if meta is not None and meta.icc is not None and not icc_fits(meta.icc, grey=written_grey):
        meta = dataclasses.replace(meta, icc=None)  # a profile of other channels would mis-tag the output
    data = with_meta(encoded, ext, meta)
    if meta is not None and meta.icc is not None and (not icc_carried(ext) or read_meta(data).icc != meta.icc):
        why = "BMP stores none" if not icc_carried(ext) else f"this {ext} file could not take it"
        warn(
            f"{path}: the input's ICC colour profile was dropped ({why}): colour-managed viewers may show "
            "its colours shifted (write .png, .jpg, .webp or .tif to keep it)"
        )
    with atomic_path(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as e:
            raise OutputError(path, f"cannot be written ({e.strerror or e})", "check free space and permissions") from e
    return path


def _png_grey_alpha(grey: np.ndarray, alpha: np.ndarray) -> bytes:
    """A grey + alpha PNG (colour type 4, 8 or 16 bits) of two HxW planes, rows 'Up'-filtered."""
    h, w = grey.shape
    depth = 16 if grey.dtype == np.uint16 else 8
    rows = np.dstack([grey, alpha]).astype(">u2" if depth == 16 else np.uint8).reshape(h, -1).view(np.uint8)
    up = rows - np.vstack([np.zeros_like(rows[:1]), rows[:-1]])  # uint8 wraps: the PNG 'Up' filter
    raw = np.hstack([np.full((h, 1), 2, np.uint8), up]).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, depth, 4, 0, 0, 0)
    chunks = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 6)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def to_tensor(img: np.ndarray, bgr: bool = False) -> torch.Tensor:
    """uint8/uint16 HxWx3 (RGB, or BGR with ``bgr=True``) -> (1,3,H,W) float32 RGB in [0,1]."""
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    if bgr:
        img = img[:, :, ::-1]
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(scale)
    return t.unsqueeze(0)


def from_tensor(t: torch.Tensor, dtype=np.uint8, bgr: bool = False) -> np.ndarray:
    """(1,3,H,W) or (3,H,W) float RGB in [0,1] -> HxWx3 uint8/uint16 (RGB, or BGR with ``bgr=True``)."""
    if t.dim() == 4:
        t = t[0]
    if dtype == np.uint8 and t.device.type == "cpu" and t.dtype == torch.float32:
        # the same bytes in two OpenCV/numpy passes (1080p: ~3 instead of ~10 ms of torch element-wise
        # work; video frames come through here): clamp below, x255 rounding half to even, saturate at 255
        hwc = np.maximum(t.detach().permute(1, 2, 0).numpy(), np.float32(0.0), order="C")
        a = cv2.convertScaleAbs(hwc, alpha=255.0)
        return np.ascontiguousarray(a[:, :, ::-1]) if bgr else a
    scale = 65535.0 if dtype == np.uint16 else 255.0
    a = t.detach().float().clamp(0, 1).mul(scale).round().permute(1, 2, 0).cpu().numpy().astype(dtype)
    if bgr:
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a)
