"""Where live frames go: a video file (atomic), a preview window, or a virtual camera.

Every sink has ``write(rgb, t) -> None | 'quit' | 'toggle'`` (uint8 HxWx3 RGB frame, its time in
seconds), ``close(exc)`` and ``overlay`` (whether an FPS/latency readout belongs on the picture).
"""
from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from kdsharp.errors import KdsharpError, OutputError
from kdsharp.io.atomic import ensure_writable_dir
from kdsharp.io.video import VIDEO_EXTS, VideoWriter, is_video_file


class FileSink:
    """Write frames to a video file (atomic) at their capture times, so drops keep real timing."""

    overlay = False

    def __init__(self, path: str | Path, fps: float, overwrite: bool = False):
        self.path, self.fps = Path(path), fps
        if not is_video_file(self.path):
            raise OutputError(self.path, f"unsupported sink '{path}'",
                              "use window, virtualcam or a video file (" + ", ".join(VIDEO_EXTS) + ")")
        if self.path.exists() and not overwrite:
            raise OutputError(self.path, "already exists", "pass --overwrite to replace it, or choose another file")
        ensure_writable_dir(self.path.parent)
        self._writer = None
        self._t0 = 0.0
        self._last = -1

    def write(self, rgb: np.ndarray, t: float) -> str | None:
        if self._writer is None:
            h, w = rgb.shape[:2]
            self._writer = VideoWriter(self.path, w, h, Fraction(self.fps).limit_denominator(1000),
                                       Fraction(1, 1000), preset="veryfast").__enter__()
            self._t0 = t  # the file starts at its first frame (a camera's clock starts earlier)
        pts = max(self._last + 1, int(round((t - self._t0) * 1000)))
        self._last = pts
        self._writer.write(rgb, pts)
        return None

    def close(self, exc: BaseException | None) -> None:
        if self._writer is not None:
            self._writer.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)


class WindowSink:
    """An OpenCV preview window; keys: ``s`` toggles side by side, ``q``/Esc quits."""

    overlay = True
    title = "kdsharp live (s: side by side, q: quit)"

    def __init__(self):
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise KdsharpError("--sink window: no display ($DISPLAY is not set); use --sink FILE.mp4 or virtualcam")
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise KdsharpError("--sink window: this OpenCV has no GUI support (opencv-python-headless); "
                               "pip install opencv-python, or use --sink FILE.mp4 or virtualcam") from e

    def write(self, rgb: np.ndarray, t: float) -> str | None:
        cv2.imshow(self.title, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            return "quit"
        return "toggle" if key == ord("s") else None

    def close(self, exc) -> None:
        cv2.destroyWindow(self.title)


class VirtualCamSink:
    """A virtual webcam (pyvirtualcam: v4l2loopback, OBS or Unity Capture) that call apps can pick."""

    overlay = False

    def __init__(self, fps: float):
        try:
            import pyvirtualcam
        except ImportError as e:
            raise KdsharpError("--sink virtualcam needs the optional package pyvirtualcam: "
                               "pip install pyvirtualcam (the kdsharp 'virtualcam' extra)") from e
        self._mod, self.fps, self._cam = pyvirtualcam, fps, None

    def write(self, rgb: np.ndarray, t: float) -> str | None:
        if self._cam is None:
            try:
                self._cam = self._mod.Camera(rgb.shape[1], rgb.shape[0], self.fps, fmt=self._mod.PixelFormat.RGB)
            except RuntimeError as e:
                raise KdsharpError(f"--sink virtualcam: no virtual camera device ({e}); install v4l2loopback "
                                   "(Linux) or OBS Virtual Camera (Windows/macOS)") from e
        self._cam.send(np.ascontiguousarray(rgb))
        return None

    def close(self, exc) -> None:
        if self._cam is not None:
            self._cam.close()


def open_sink(sink: str, fps: float, overwrite: bool = False):
    """``'window'``, ``'virtualcam'`` or a video file path (refused if it exists, unless ``overwrite``)."""
    if sink == "window":
        return WindowSink()
    if sink == "virtualcam":
        return VirtualCamSink(fps)
    return FileSink(sink, fps, overwrite)
