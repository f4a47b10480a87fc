"""What the web app does to uploads, as plain functions: read and check, sharpen, degrade, measure, video.

No gradio here (the page is :mod:`kdsharp.app.ui`): every function takes paths and arrays and
raises :class:`kdsharp.errors.KdsharpError` subclasses with a one-line message the page shows.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from kdsharp.errors import InputError, KdsharpError, OutputError
from kdsharp.io.images import IMAGE_EXTS, is_image_file, read_image_meta, to_rgb8, write_image
from kdsharp.io.meta import ImageMeta
from kdsharp.io.video import VIDEO_EXTS, AudioNotCopiedError, is_video_file

if TYPE_CHECKING:  # the heavy inference modules load with the first model
    from kdsharp.infer.video import VideoStats

MODELS = ("fast", "student", "student@x8", "teacher")
#: Speed of each model, as measured for the README (``kdsharp bench`` / ``kdsharp eval``, 2 CPU threads;
#: a self-ensemble ``NAME@xN`` runs its model N times).
SPEED = {
    "fast": "about 22 frames/s on a 1080p photo on 2 CPU cores; real time on video, which runs on the Y plane "
    "(~30 frames/s end to end at 1080p on a recent 2-core CPU, ~15 on an older AVX2-only AMD EPYC)",
    "student": "about 6 frames/s on a 1080p photo on 2 AMD EPYC (Zen 4) cores in float32, ~9 in bf16 (its "
    "default on CPUs with bfloat16 instructions such as that one), ~11 on video (about 3 on an older AVX2-only "
    "AMD EPYC)",
    "student@x8": "the student averaged over 8 flips/turns, for photos: about 0.8 frames/s at 1080p on 2 CPU cores",
    "teacher": "best quality, slow: about 26 s per 1080p image on 2 CPU cores",
}
PREVIEW_SIDE = 2048  # long side of the images shown on the page (downloads stay full size)


@dataclass
class Limits:
    """What the app accepts. ``tile_above``: images with more pixels run in ``tile`` px tiles."""

    max_upload_mb: float = 200.0
    max_pixels: int = 50_000_000
    tile_above: int = 1 << 20
    tile: int = 512


class Cancelled(KdsharpError):
    """A job stopped by its visitor."""


def model_choices() -> list[tuple[str, str]]:
    """``(label, name)`` pairs for the model picker: each model with its speed."""
    return [(f"{m} — {SPEED[m]}", m) for m in MODELS]


class Models:
    """Sharpeners loaded on first use and shared by every visitor (one per model and tile size)."""

    def __init__(self, device: str = "auto"):
        self.device = device
        self._cache: dict[tuple[str, int | None], object] = {}
        self._lock = threading.Lock()

    def get(self, name: str, tile: int | None = None):
        """The :class:`kdsharp.Sharpener` for ``name`` (one of :data:`MODELS`)."""
        if name not in MODELS:
            raise KdsharpError(f"unknown model '{name}' (the app offers {', '.join(MODELS)})")
        with self._lock:
            key = (name, tile)
            if key not in self._cache:
                from kdsharp.infer.sharpener import Sharpener

                # half=None: as the CLI, bf16 where it is free (an RGB U-Net on a CPU with bfloat16)
                self._cache[key] = Sharpener(name, device=self.device, tile=tile, half=None)
            return self._cache[key]


def _newest_mtime(folder: Path) -> float:
    """The latest modification time of ``folder`` and everything in it (0 when it is gone)."""
    newest = 0.0
    for p in (folder, *folder.rglob("*")):
        try:
            newest = max(newest, p.stat().st_mtime)
        except OSError:  # removed meanwhile
            pass
    return newest


class Workspace:
    """A private temporary folder for one server: a sub-folder per job, pruned after ``max_age_s``,
    everything removed by :meth:`close` (also the uploads when gradio keeps them here)."""

    def __init__(self, max_age_s: float = 3600.0, parent: str | Path | None = None):
        self.path = Path(tempfile.mkdtemp(prefix="kdsharp-app-", dir=parent))
        self.max_age_s = float(max_age_s)

    def job(self) -> Path:
        """A new, empty folder for one request's files (older job folders are pruned first)."""
        self.prune()
        d = self.path / "jobs" / uuid.uuid4().hex[:12]
        d.mkdir(parents=True)
        return d

    def prune(self, now: float | None = None) -> int:
        """Remove job folders untouched for ``max_age_s`` (their newest file counts: a long video job
        still writing its output is kept); returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for d in (self.path / "jobs").glob("*") if (self.path / "jobs").is_dir() else ():
            if now - _newest_mtime(d) > self.max_age_s:
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed

    def close(self) -> None:
        """Remove the whole folder."""
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------- uploads
def upload_path(payload) -> Path | None:
    """The file behind a component value: a path, or gradio's ``{'path': ...}`` / ``{'video': {...}}``."""
    if payload is None or payload == "":
        return None
    if isinstance(payload, dict):
        if isinstance(payload.get("video"), dict):
            payload = payload["video"]
        path = payload.get("path")
        return Path(path) if path else None
    return Path(payload)


def upload_name(payload, default: str = "upload") -> str:
    """The visitor's own name of an uploaded file (gradio's ``orig_name``), else the stored one."""
    if isinstance(payload, dict):
        if isinstance(payload.get("video"), dict):
            payload = payload["video"]
        if payload.get("orig_name"):
            return Path(str(payload["orig_name"])).name
    path = upload_path(payload)
    return path.name if path is not None else default


def _renamed(e: InputError | OutputError, name: str) -> InputError | OutputError:
    """``e`` (same type) with the server's temporary path replaced by the visitor's file name."""
    out = type(e)(name, "x")
    out.args = (str(e).replace(str(e.path), name),)
    return out


def _video_into(sharpener, src: Path, dst: Path, progress) -> tuple[Path, VideoStats]:
    """``(dst, stats)`` of ``sharpener.video``; a clip whose audio ``dst``'s container cannot carry
    (an MP4's AAC uploaded as .webm) goes into Matroska, which carries any, as ``dst`` .mkv."""
    try:
        return dst, sharpener.video(src, dst, progress=progress)
    except AudioNotCopiedError:
        if dst.suffix == ".mkv":
            raise
    dst = dst.with_suffix(".mkv")
    return dst, sharpener.video(src, dst, progress=progress)


def check_upload(path: Path, name: str, limits: Limits, what: str) -> None:
    """Refuse a missing, empty or over-size upload with a one-line :class:`InputError`."""
    if not path.is_file():
        raise InputError(name, "the upload did not arrive", "upload it again")
    size = path.stat().st_size
    if size == 0:
        raise InputError(name, "file is empty", f"upload {what}")
    if size > limits.max_upload_mb * 2**20:  # MB as gradio counts them (MiB)
        raise InputError(
            name,
            f"file is too large ({size / 2**20:.0f} MB; this app takes up to {limits.max_upload_mb:g} MB)",
            "upload a smaller file, or use `kdsharp sharpen` on it",
        )


def read_upload_image(path: Path, name: str, limits: Limits) -> tuple[np.ndarray, ImageMeta]:
    """An uploaded image as stored (uint8/uint16, grey/BGR/BGRA, EXIF orientation applied) and its metadata."""
    check_upload(path, name, limits, "an image")
    if path.suffix and path.suffix.lower() not in IMAGE_EXTS and not is_image_file(name):
        raise InputError(name, "is not an image this app reads", f"use one of {', '.join(IMAGE_EXTS)}")
    header = header_pixels(path)
    if header is not None:
        _check_pixels(*header, name, limits)  # before decoding: a huge image is refused without filling memory
    try:
        img, meta = read_image_meta(path)
    except InputError as e:
        raise _renamed(e, name) from None
    _check_pixels(f"{img.shape[1]}x{img.shape[0]}", img.shape[0] * img.shape[1], name, limits)
    return img, meta


def _check_pixels(dims: str, pixels: int, name: str, limits: Limits) -> None:
    if pixels > limits.max_pixels:
        raise InputError(
            name,
            f"image is too large ({dims + ', ' if dims else ''}{pixels / 1e6:.0f} Mpx; this app "
            f"takes up to {limits.max_pixels / 1e6:g} Mpx)",
            "downscale it, or use `kdsharp sharpen --tile 512`",
        )


def header_pixels(path: Path) -> tuple[str, int] | None:
    """``('WxH', pixels)`` read from the file's header without decoding it (Pillow, which gradio
    brings); None when Pillow is missing or does not read the format (OpenCV then decodes it)."""
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: the size is checked by the caller
            with Image.open(path) as im:
                w, h = im.size
                return f"{w}x{h}", int(w) * int(h)
    except Image.DecompressionBombError as e:  # over twice Pillow's own limit: its message has the count
        found = re.search(r"\((\d+) pixels\)", str(e))
        return ("", int(found.group(1))) if found else None
    except Exception:  # noqa: BLE001 - an unknown or broken header: OpenCV decides
        return None


def preview(rgb: np.ndarray, max_side: int = PREVIEW_SIDE) -> np.ndarray:
    """``rgb`` shrunk (area filter) so that its long side is at most ``max_side``."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    s = max_side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def output_name(name: str, suffix: str = "_sharp") -> str:
    """``photo.tif`` -> ``photo_sharp.tif``; a name without an image extension gets ``.png``."""
    p = Path(name)
    ext = p.suffix.lower() if is_image_file(p) else ".png"
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in p.stem).lstrip(".") or "image"  # no hidden file
    return f"{stem}{suffix}{ext}"


# ----------------------------------------------------------------------------- images
@dataclass
class ImageResult:
    """A sharpened image: the file to download (full size, original bit depth) and what the page shows."""

    path: Path
    before: np.ndarray  # uint8 RGB previews
    after: np.ndarray
    width: int
    height: int
    dtype: str
    model: str
    seconds: float
    tiled: int | None
    metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: model, size, bit depth, time (and tiling)."""
        bits = "16-bit" if self.dtype == "uint16" else "8-bit"
        tiles = f", in {self.tiled} px tiles" if self.tiled else ""
        return f"{self.model}: {self.width}x{self.height} {bits} in {self.seconds:.2f} s{tiles}"


def sharpen_array(img: np.ndarray, model: str, models: Models, limits: Limits) -> tuple[np.ndarray, float, int | None]:
    """``(sharpened, seconds, tile)``: the same layout and dtype; tiled above ``limits.tile_above`` pixels."""
    h, w = img.shape[:2]
    tile = limits.tile if h * w > limits.tile_above else None
    sharpener = models.get(model, tile)
    t0 = time.perf_counter()
    out = sharpener.image(img)
    return out, time.perf_counter() - t0, tile


def check_reference(image: np.ndarray, reference: np.ndarray, name: str = "reference") -> None:
    """A one-line :class:`InputError` (naming ``name``) unless ``reference`` can score ``image``."""
    if reference.shape[:2] != image.shape[:2]:
        raise InputError(
            name,
            f"is {reference.shape[1]}x{reference.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}",
            "use the clean original of the same size",
        )
    if min(reference.shape[:2]) < 11:
        raise InputError(name, "is smaller than 11 px", "SSIM needs a larger image")


def quality(before: np.ndarray, after: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM of ``before`` and ``after`` against ``reference`` (uint8 RGB, same size)."""
    from kdsharp.metrics import psnr, ssim

    check_reference(before, reference)
    return {
        "psnr_before": psnr(before, reference),
        "ssim_before": ssim(before, reference),
        "psnr_after": psnr(after, reference),
        "ssim_after": ssim(after, reference),
    }


def metrics_markdown(m: dict[str, float]) -> str:
    """A small markdown table of :func:`quality`'s result."""
    if not m:
        return ""

    def db(v: float) -> str:
        return "∞" if v == float("inf") else f"{v:.2f}"

    def gain_db(after: float, before: float) -> str:  # an identical image scores ∞ dB: no inf - inf = nan
        if after == before:
            return "+0.00"
        if float("inf") in (after, before):
            return "+∞" if after == float("inf") else "−∞"
        return f"{after - before:+.2f}"

    return (
        "| vs reference | PSNR (dB) | SSIM |\n|---|---:|---:|\n"
        f"| input | {db(m['psnr_before'])} | {m['ssim_before']:.4f} |\n"
        f"| sharpened | {db(m['psnr_after'])} | {m['ssim_after']:.4f} |\n"
        f"| gain | {gain_db(m['psnr_after'], m['psnr_before'])} | {m['ssim_after'] - m['ssim_before']:+.4f} |\n"
    )


def sharpen_image_file(
    path: Path,
    name: str,
    model: str,
    models: Models,
    workspace: Workspace,
    limits: Limits,
    reference: Path | None = None,
    reference_name: str = "reference",
) -> ImageResult:
    """Sharpen an uploaded image into a new job folder: the upload's format (PNG for a pasted image),
    size and bit depth, with its EXIF and dpi; PSNR/SSIM against ``reference`` when given."""
    img, meta = read_upload_image(path, name, limits)
    ref = None
    if reference is not None:
        ref = to_rgb8(read_upload_image(reference, reference_name, limits)[0])
        check_reference(img, ref, reference_name)  # before the model runs: a wrong file costs no wait
    out, seconds, tile = sharpen_array(img, model, models, limits)
    dst = workspace.job() / output_name(name)
    write_image(dst, out, meta=meta)
    before, after = to_rgb8(img), to_rgb8(out)
    metrics = quality(before, after, ref) if ref is not None else {}
    return ImageResult(
        dst, preview(before), preview(after), img.shape[1], img.shape[0], str(img.dtype), model, seconds, tile, metrics
    )


def degrade_rgb(rgb: np.ndarray, preset: str, seed: int) -> np.ndarray:
    """A call-like degraded copy of uint8 RGB ``rgb`` (a :mod:`kdsharp.data.degrade` preset, seeded)."""
    from kdsharp.data.config import list_presets
    from kdsharp.data.degrade import degrade

    if preset not in list_presets():
        raise KdsharpError(f"unknown preset '{preset}' (use one of {', '.join(list_presets())})")
    return degrade(np.ascontiguousarray(rgb), preset=preset, seed=int(seed))


@dataclass
class DegradeResult:
    """A clean image, its degraded copy and the sharpened copy (uint8 RGB), with quality against the clean one."""

    clean: np.ndarray
    degraded: np.ndarray
    sharpened: np.ndarray
    degraded_path: Path
    sharpened_path: Path
    seconds: float
    metrics: dict[str, float]


def degrade_and_sharpen(
    rgb: np.ndarray, name: str, preset: str, seed: int, model: str, models: Models, workspace: Workspace, limits: Limits
) -> DegradeResult:
    """Degrade ``rgb`` with ``preset``, sharpen the copy with ``model``; both written as PNG for download."""
    if rgb.shape[0] * rgb.shape[1] > limits.max_pixels:
        raise InputError(name, f"image is too large ({rgb.shape[1]}x{rgb.shape[0]})", "downscale it first")
    lq = degrade_rgb(rgb, preset, seed)
    out, seconds, _ = sharpen_array(cv2.cvtColor(lq, cv2.COLOR_RGB2BGR), model, models, limits)
    sharp = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    job = workspace.job()
    stem = Path(output_name(name, "")).stem
    dpath = write_image(job / f"{stem}_{preset}.png", cv2.cvtColor(lq, cv2.COLOR_RGB2BGR))
    spath = write_image(job / f"{stem}_{preset}_{model}.png", out)
    return DegradeResult(rgb, lq, sharp, dpath, spath, seconds, quality(lq, sharp, rgb))


def webcam_frame(rgb: np.ndarray | None, models: Models, max_side: int = 1280) -> np.ndarray | None:
    """One browser-camera frame (uint8 RGB) sharpened by ``fast`` (shrunk to ``max_side`` first)."""
    if rgb is None:
        return None
    rgb = preview(np.ascontiguousarray(rgb[:, :, :3]), max_side)
    out = models.get("fast").image(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


# ----------------------------------------------------------------------------- video
class CancelFlags:
    """One cancel flag per visitor (gradio's session): the video job polls it, the Cancel button sets it."""

    def __init__(self):
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, key: str) -> threading.Event:
        """A fresh, unset flag for ``key``'s new job."""
        with self._lock:
            self._flags[key] = threading.Event()
            return self._flags[key]

    def cancel(self, key: str) -> bool:
        """Set ``key``'s flag; False if it has no running job."""
        with self._lock:
            flag = self._flags.get(key)
        if flag is None:
            return False
        flag.set()
        return True

    def finish(self, key: str) -> None:
        with self._lock:
            self._flags.pop(key, None)


Report = Callable[[int, int | None, str], None]  # (frames done, total or None, stage)


class ProgressBridge:
    """The progress object :meth:`kdsharp.Sharpener.video` reports to, forwarded to ``report(done, total, stage)``;
    raises :class:`Cancelled` inside the video job once ``cancel`` is set (no output file is left)."""

    def __init__(self, report: Report | None = None, cancel: threading.Event | None = None, stage: str = "sharpening"):
        self.report = report
        self.cancel = cancel
        self.stage = stage
        self.done = 0
        self.total: int | None = None

    def _check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("cancelled: the video was not finished and nothing was kept")

    def add_task(self, description: str, total: float | None = None, **fields) -> int:
        self._check()
        self.total = int(total) if total else None
        if self.report is not None:
            self.report(0, self.total, self.stage)
        return 0

    def update(self, task: int, total: float | None = None, advance: float = 0, **fields) -> None:
        if total:
            self.total = int(total)
        self.advance(task, advance)

    def advance(self, task: int, advance: float = 1) -> None:
        self._check()
        self.done += int(advance)
        if self.report is not None:
            self.report(self.done, self.total, self.stage)

    def remove_task(self, task: int) -> None:
        pass


@dataclass
class VideoResult:
    """A sharpened clip (download), the side-by-side preview and the run's numbers."""

    path: Path
    side_by_side: Path
    frames: int
    seconds: float
    summary: str


def check_video(path: Path, name: str, limits: Limits):
    """:func:`kdsharp.io.video.probe_video` of an upload, with the visitor's file name in errors."""
    from kdsharp.io.video import probe_video

    check_upload(path, name, limits, "a video")
    if not (is_video_file(name) or is_video_file(path)):
        raise InputError(name, "is not a video this app reads", f"use one of {', '.join(VIDEO_EXTS)}")
    try:
        return probe_video(path)
    except InputError as e:
        raise _renamed(e, name) from None


def side_by_side(
    left: Path,
    right: Path,
    dst: Path,
    max_width: int = 1280,
    cancel: threading.Event | None = None,
    report: Report | None = None,
) -> Path:
    """An H.264 MP4 of ``left`` | ``right`` (same frame count), even-sized, at most ``max_width`` wide,
    for playback in the browser; audio of ``left`` when MP4 can carry it. A rotated clip (a phone's
    portrait video, a mirrored front camera) is shown as players show it first, so the two sit side
    by side as the page says."""
    from kdsharp.io.video import VideoWriter, as_displayed, probe_video, read_frames

    info = probe_video(left)
    bridge = ProgressBridge(report, cancel, "side-by-side preview")
    orientation = info.orientation  # what shows it as players do (a phone's portrait or mirrored video)
    mirror, quarter = orientation
    width, height = (info.height, info.width) if quarter % 2 else (info.width, info.height)
    scale = min(1.0, max_width / (2 * width))
    w = max(2, int(width * scale) // 2 * 2)
    h = max(2, int(height * scale) // 2 * 2)

    def write(audio: Path | None) -> None:
        task = bridge.add_task(left.name, total=info.frames or None)
        with VideoWriter(
            dst,
            2 * w,
            h,
            info.fps,
            info.time_base,
            codec="libx264",
            display_matrix=None if mirror or quarter else info.display_matrix,  # turned upright already
            audio_from=audio,
        ) as out:
            for (a, pts), (b, _) in zip(read_frames(left), read_frames(right), strict=False):
                bridge.advance(task)  # raises Cancelled once the visitor cancels
                pair = [as_displayed(x, orientation) for x in (a, b)]
                pair = [
                    cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA) if x.shape[:2] != (h, w) else x for x in pair
                ]
                out.write(np.hstack(pair), pts)

    try:
        write(left if info.audio_streams else None)
    except OutputError:  # its audio cannot go into an MP4: the preview plays without it
        write(None)
    return dst


def _held_upload(path: Path, job: Path) -> Path:
    """A hard link to the upload ``path`` inside ``job`` (its reads outlive gradio's cache cleaning,
    which deletes uploads after an hour while a long clip may still be sharpening or previewing);
    ``path`` itself where no link can be made (another file system)."""
    link = job / f"source{path.suffix.lower()}"
    try:
        os.link(path, link)
    except OSError:
        return path
    return link


def sharpen_video_file(
    path: Path,
    name: str,
    model: str,
    models: Models,
    workspace: Workspace,
    limits: Limits,
    report: Report | None = None,
    cancel: threading.Event | None = None,
) -> VideoResult:
    """Sharpen an uploaded clip (same container, frames, rate, audio) and build the side-by-side preview."""
    check_video(path, name, limits)
    job = workspace.job()
    p = Path(name)
    ext = p.suffix.lower() if is_video_file(p) else ".mp4"
    stem = Path(output_name(p.stem + ".png", "")).stem
    dst = job / f"{stem}_sharp{ext}"
    t0 = time.perf_counter()
    sharpener = models.get(model)
    src = _held_upload(path, job)
    try:
        try:
            dst, stats = _video_into(sharpener, src, dst, ProgressBridge(report, cancel))
        except (InputError, OutputError) as e:  # the visitor's names, not the server's temporary folder
            raise _renamed(e, name if isinstance(e, InputError) else e.path.name) from None
        sbs = side_by_side(src, dst, job / f"{stem}_side_by_side.mp4", cancel=cancel, report=report)
    except BaseException:  # cancelled (also in the preview) or failed: nothing of this job is kept
        shutil.rmtree(job, ignore_errors=True)
        raise
    finally:
        if src != path:
            src.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    return VideoResult(
        dst,
        sbs,
        stats.frames,
        seconds,
        f"{model}: {stats.frames} frames {stats.width}x{stats.height} in {seconds:.1f} s "
        f"({stats.frames / max(seconds, 1e-9):.1f} frames/s with the preview)",
    )


__all__ = [
    "MODELS",
    "SPEED",
    "Limits",
    "Models",
    "Workspace",
    "Cancelled",
    "CancelFlags",
    "ProgressBridge",
    "ImageResult",
    "DegradeResult",
    "VideoResult",
    "model_choices",
    "upload_path",
    "upload_name",
    "check_upload",
    "read_upload_image",
    "header_pixels",
    "to_rgb8",
    "preview",
    "output_name",
    "sharpen_array",
    "quality",
    "metrics_markdown",
    "sharpen_image_file",
    "degrade_rgb",
    "degrade_and_sharpen",
    "webcam_frame",
    "check_video",
    "side_by_side",
    "sharpen_video_file",
]
