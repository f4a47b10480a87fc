"""``kdsharp demo``: a degraded video-call clip in, a sharpened clip out, with numbers and pictures.

The clip is a slow pan/zoom over the built-in astronaut portrait, degraded like a low-bandwidth
call (down/up-scaling, noise, real H.264) with a 440 Hz tone as its audio track. The default
student sharpens it through the same video path as ``kdsharp sharpen`` (audio kept), and the
gain in PSNR/SSIM over the clean frames is measured on the files as written.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from kdsharp.errors import KdsharpError
from kdsharp.io.atomic import atomic_path, ensure_writable_dir
from kdsharp.io.images import read_rgb, write_image
from kdsharp.io.video import read_frames, sine_tone, write_video

DEMO_FILES = ("degraded.mp4", "sharpened.mp4", "side_by_side.mp4", "before_after.png", "report.json")


class _Summarized(Protocol):
    def summary(self) -> str: ...


@dataclass
class DemoResult:
    """Where the demo wrote its files and what it measured (means over frames vs the clean clip)."""

    folder: Path
    degraded: Path
    sharpened: Path
    side_by_side: Path
    before_after: Path
    psnr_in: float
    psnr_out: float
    ssim_in: float
    ssim_out: float
    stats: _Summarized  # kdsharp.infer.video.VideoStats

    def summary(self) -> str:
        return "\n".join(
            [
                f"degraded input : {self.degraded}",
                f"sharpened      : {self.sharpened}",
                f"side by side   : {self.side_by_side}",
                f"before/after   : {self.before_after}",
                f"PSNR {self.psnr_in:.2f} -> {self.psnr_out:.2f} dB ({self.psnr_out - self.psnr_in:+.2f} dB), "
                f"SSIM {self.ssim_in:.4f} -> {self.ssim_out:.4f} ({self.ssim_out - self.ssim_in:+.4f}) "
                "(means over the frames, against the clean clip)",
                self.stats.summary(),
            ]
        )


def pan_zoom_frame(image: np.ndarray, i: int, frames: int, size: tuple[int, int] = (480, 360)) -> np.ndarray:
    """Frame ``i`` of ``frames`` of a slow pan and zoom-in over uint8 HxWx3 ``image`` (RGB, ``size`` (w, h))."""
    h, w = image.shape[:2]
    out_w, out_h = size
    aspect = out_h / out_w
    s = i / max(frames - 1, 1)
    s = 0.5 - 0.5 * np.cos(np.pi * s)  # ease in and out
    cw = min(w, h / aspect) * (0.92 - 0.12 * s)  # crop width: zoom in from 92% to 80%
    cx = w * (0.45 + 0.10 * s)
    cy = h * (0.42 + 0.04 * s)
    cx = float(np.clip(cx, cw / 2, w - cw / 2))
    cy = float(np.clip(cy, cw * aspect / 2, h - cw * aspect / 2))
    k = out_w / cw
    m = np.array([[k, 0, out_w / 2 - k * cx], [0, k, out_h / 2 - k * cy]], np.float64)
    return cv2.warpAffine(image, m, (out_w, out_h), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT101)


def pan_zoom_clip(image: np.ndarray, frames: int, size: tuple[int, int] = (480, 360)) -> list[np.ndarray]:
    """A slow pan and zoom-in over uint8 HxWx3 ``image``: ``frames`` RGB frames of ``size`` (w, h)."""
    return [pan_zoom_frame(image, i, frames, size) for i in range(frames)]


def _labelled(img: np.ndarray, text: str) -> np.ndarray:
    img = np.ascontiguousarray(img).copy()
    scale = max(0.45, img.shape[1] / 900)
    for color, thick in (((0, 0, 0), 4), ((255, 255, 255), 1)):
        cv2.putText(img, text, (10, int(28 * scale / 0.6)), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)
    return img


def _fresh_folder(out_dir: Path, overwrite: bool) -> Path:
    """``out_dir``, or ``out_dir/run-N`` (first free N) if it already holds demo files: nothing is lost.
    Not created here."""
    if overwrite or not any((out_dir / f).exists() for f in DEMO_FILES):
        return out_dir
    n = 2
    while any((out_dir / f"run-{n}" / f).exists() for f in DEMO_FILES):
        n += 1
    return out_dir / f"run-{n}"


def run_demo(
    out_dir: str | Path = "kdsharp-demo",
    model="student",
    overwrite: bool = False,
    device: str = "auto",
    seconds: float = 2.0,
    fps: int = 15,
    size: tuple[int, int] = (480, 360),
    preset: str = "lowbw",
    seed: int = 0,
    threads: int | None = None,
) -> DemoResult:
    """Build the degraded clip, sharpen it with ``model``, write the demo files, measure the gain.

    A run that fails or is interrupted (Ctrl-C) removes the files it wrote and the folders it made:
    a folder never holds half a demo.
    """
    from kdsharp.infer.sharpener import Sharpener

    if not str(out_dir).strip():  # Path("") would be the current folder
        raise KdsharpError("the output folder is empty (pass a folder as out_dir=PATH)", params=["out_dir"])
    sharpener = Sharpener(model, device=device, threads=threads)  # a bad model or device: no folder made
    folder = _fresh_folder(Path(out_dir), overwrite)
    made = [d for d in (folder, *folder.parents) if not d.exists()]  # deepest first
    ensure_writable_dir(folder)
    paths = {name: folder / name for name in DEMO_FILES}
    written: list[Path] = []
    try:
        return _write_demo(sharpener, model, paths, written, seconds, fps, size, preset, seed)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for d in made:
            with contextlib.suppress(OSError):  # not empty: someone else's files
                d.rmdir()
        raise


def _write_demo(
    sharpener,
    model,
    paths: dict[str, Path],
    written: list[Path],
    seconds: float,
    fps: int,
    size: tuple[int, int],
    preset: str,
    seed: int,
) -> DemoResult:
    """The demo files into ``paths`` (each appended to ``written`` once it is there)."""
    from kdsharp.data import Degrader, sample_paths
    from kdsharp.metrics import psnr, ssim

    samples = sample_paths()
    portrait = next((p for p in samples if "astronaut" in p.name), samples[0])
    clean = pan_zoom_clip(read_rgb(portrait), max(2, int(round(seconds * fps))), size)
    degraded = Degrader(preset).clip(clean, np.random.default_rng(seed))

    write_video(paths["degraded.mp4"], degraded, fps, crf=10, audio_tone=sine_tone(len(clean) / fps))
    written.append(paths["degraded.mp4"])
    stats = sharpener.video(paths["degraded.mp4"], paths["sharpened.mp4"], overwrite=True)
    written.append(paths["sharpened.mp4"])

    seen = [f for f, _ in read_frames(paths["degraded.mp4"])]  # measure what the files hold
    out = [f for f, _ in read_frames(paths["sharpened.mp4"])]
    psnr_in = float(np.mean([psnr(a, c) for a, c in zip(seen, clean, strict=False)]))
    psnr_out = float(np.mean([psnr(b, c) for b, c in zip(out, clean, strict=False)]))
    ssim_in = float(np.mean([ssim(a, b) for a, b in zip(seen, clean, strict=False)]))
    ssim_out = float(np.mean([ssim(a, b) for a, b in zip(out, clean, strict=False)]))

    pairs = [
        np.hstack([_labelled(a, "input (degraded)"), _labelled(b, "kdsharp")]) for a, b in zip(seen, out, strict=False)
    ]
    write_video(paths["side_by_side.mp4"], pairs, fps, crf=16, audio_from=paths["degraded.mp4"])
    written.append(paths["side_by_side.mp4"])
    mid = len(clean) // 2
    still = np.hstack(
        [_labelled(seen[mid], "input"), _labelled(out[mid], "kdsharp"), _labelled(clean[mid], "ground truth")]
    )
    write_image(paths["before_after.png"], cv2.cvtColor(still, cv2.COLOR_RGB2BGR))
    written.append(paths["before_after.png"])
    report = {
        "model": model if isinstance(model, str) else type(model).__name__,
        "preset": preset,
        "size": list(size),
        "frames": len(clean),
        "fps": fps,
        "seed": seed,
        "psnr_in": round(psnr_in, 3),
        "psnr_out": round(psnr_out, 3),
        "ssim_in": round(ssim_in, 4),
        "ssim_out": round(ssim_out, 4),
    }
    with atomic_path(paths["report.json"]) as tmp:  # what `kdsharp demo` measured, for the README
        tmp.write_text(json.dumps(report, indent=1) + "\n")
    written.append(paths["report.json"])
    return DemoResult(
        paths["report.json"].parent,
        paths["degraded.mp4"],
        paths["sharpened.mp4"],
        paths["side_by_side.mp4"],
        paths["before_after.png"],
        psnr_in,
        psnr_out,
        ssim_in,
        ssim_out,
        stats,
    )
