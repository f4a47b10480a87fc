"""Where live frames go: a video file (atomic), a preview window, or a virtual camera.

Every sink has ``write(frame, t) -> None | 'quit' | 'toggle'`` (a uint8 HxWx3 RGB array, or an
``av.VideoFrame`` for sinks with ``wants_rgb`` False; its time in seconds), ``close(exc)``,
``overlay`` (whether an FPS/latency readout belongs on the picture) and ``rotates`` (whether it
writes a source file's rotation, so that players turn the frames upright; else it gets them upright).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from kdsharp.errors import KdsharpError, OutputError
from kdsharp.io.atomic import check_target
from kdsharp.io.video import (
    VIDEO_EXTS,
    X26X,
    VideoInfo,
    VideoWriter,
    check_audio_fits,
    check_encoder_options,
    is_video_file,
    not_kept,
    pick_codec,
)


class FileSink:
    """Write frames to a video file (atomic) at their capture times, so drops keep real timing.

    Encoding runs in its own thread behind a small queue, so it overlaps the model. ``close``
    finishes the file with every frame written so far (audio from ``audio_from`` copied up to the
    last frame, or all of it when ``cut_audio`` is False: the source was played to its end), or
    discards it when given an exception. ``info``: the source file's
    :class:`~kdsharp.io.video.VideoInfo`, whose rotation and colour tags the file keeps.
    ``preset``/``crf``: the encoder's (default: x264/x265 ``ultrafast`` at every size, CRF 18:
    a live recording leaves the cores to the model; ``sharpen`` spends more on smaller files).
    """

    overlay = False
    wants_rgb = False
    rotates = True
    takes_planar_yuv = True  # its encoder takes 8-bit planar YUV: ``write(..., finish=)`` runs there
    QUEUE = 8
    TIME_BASE = Fraction(1, 90000)  # MPEG clock: whole ticks for 24, 25, 30, 60 and 30000/1001 fps
    PRESET = "ultrafast"  # x264/x265 preset when none is given

    def __init__(
        self,
        path: str | Path,
        fps: float,
        overwrite: bool = False,
        audio_from: str | Path | None = None,
        info: VideoInfo | None = None,
        source: str | Path | None = None,
        preset: str | None = None,
        crf: int | None = None,
    ):
        self.path, self.fps, self.audio_from, self.info = Path(path), fps, audio_from, info
        self.cut_audio = True
        if not is_video_file(self.path):
            raise OutputError(
                self.path,
                f"unsupported sink '{path}'",
                "use window, virtualcam or a video file (" + ", ".join(VIDEO_EXTS) + ")",
            )
        if self.path.is_dir():  # found now, not when the recording is renamed onto it at the end
            raise OutputError(self.path, "is a folder", f"pass a video file name, such as {self.path / 'live.mp4'}")
        if source is not None and self.path.exists() and Path(source).exists() and os.path.samefile(self.path, source):
            raise OutputError(  # not even with overwrite: its dropped frames and a Ctrl-C would be lost from it
                self.path,
                "is the input itself and cannot be replaced by its live recording",
                "choose another sink file; kdsharp sharpen can sharpen a file in place",
            )
        check_target(self.path, overwrite, src=source)
        note = check_encoder_options([self.path], None, preset, crf)  # a bad preset or crf: refused now
        if note:
            from kdsharp.console import warn

            warn(note)
        self.preset = preset or (self.PRESET if pick_codec(self.path, None) in X26X else None)
        self.crf = crf
        if audio_from is not None:
            check_audio_fits(audio_from, self.path)
        if info is not None:
            from kdsharp.console import warn

            for message in not_kept(info):
                warn(message)
        self._writer: VideoWriter | None = None
        self._t0 = 0.0
        self._last = -1
        self._queue: queue.Queue = queue.Queue(self.QUEUE)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def write(self, frame, t: float, finish: Callable[[list], list] | None = None) -> str | None:
        """Queue ``frame`` (uint8 RGB array or ``av.VideoFrame``) shown at capture time ``t`` (s) for
        the encoder thread; ``finish``, if given, runs there on it in the encoder's pixel format (an
        RGB model's deferred chroma step: :meth:`kdsharp.infer.frames.RgbFrames.finish`)."""
        if self._error is not None:
            raise self._error
        if self._writer is None:
            h, w = frame.shape[:2] if isinstance(frame, np.ndarray) else (frame.height, frame.width)
            self._writer = VideoWriter(
                self.path,
                w,
                h,
                self._rate(),
                self.TIME_BASE,
                audio_from=self.audio_from,
                display_matrix=self.info.display_matrix if self.info else None,
                color=self.info,
                preset=self.preset,
                crf=self.crf,
            ).__enter__()
            self._t0 = t  # the file starts at its first frame (a camera's clock starts earlier)
            self._thread = threading.Thread(target=self._encode, name="kdsharp-live-encode", daemon=True)
            self._thread.start()
        pts = max(self._last + 1, int(round((t - self._t0) / self.TIME_BASE)))
        self._last = pts
        self._queue.put((frame, pts, finish))
        return None

    def _rate(self) -> Fraction:
        """The frame rate to write: the source file's exact one (30000/1001, not 19001/634) when it is
        the rate taken, else ``fps`` as a fraction."""
        if self.info is not None and abs(float(self.info.fps) - float(self.fps)) < 1e-6:
            return Fraction(self.info.fps)
        return Fraction(self.fps).limit_denominator(1001)

    def _encode(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain after a failure
            frame, pts, finish = item
            assert self._writer is not None  # opened by the first write, before this thread starts
            try:
                if finish is not None:
                    if isinstance(frame, np.ndarray):
                        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                    frame = finish([self._writer.prepare(frame)])[0]
                if isinstance(frame, np.ndarray):
                    self._writer.write(frame, pts)
                else:
                    self._writer.write_frame(frame, pts)
            except BaseException as e:  # noqa: BLE001 - raised in the caller's thread by write/close
                self._error = e

    def close(self, exc: BaseException | None) -> None:
        if self._writer is None:
            return
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        exc = exc or self._error
        if exc is None and self.cut_audio:
            self._writer.audio_end = self._writer.last_time  # the audio stops with the last frame
        self._writer.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
        if self._error is not None and exc is self._error:
            raise self._error


class WindowSink:
    """An OpenCV preview window; keys: ``s`` toggles side by side, ``q``/Esc quits."""

    overlay = True
    wants_rgb = True
    rotates = False
    title = "kdsharp live (s: side by side, q: quit)"

    def __init__(self):
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise KdsharpError(
                "sink=window: no display ($DISPLAY is not set); use sink=FILE.mp4 or sink=virtualcam", params=["sink"]
            )
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise KdsharpError(
                "sink=window: this OpenCV has no GUI support (opencv-python-headless); "
                "pip install opencv-python, or use sink=FILE.mp4 or sink=virtualcam",
                params=["sink"],
            ) from e

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
    wants_rgb = True
    rotates = False

    def __init__(self, fps: float):
        try:
            import pyvirtualcam
        except ImportError as e:
            raise KdsharpError(
                "sink=virtualcam needs the optional package pyvirtualcam: "
                "pip install pyvirtualcam (the kdsharp 'virtualcam' extra)",
                params=["sink"],
            ) from e
        self._mod, self.fps = pyvirtualcam, fps
        self._cam: Any = None

    def write(self, rgb: np.ndarray, t: float) -> str | None:
        if self._cam is None:
            try:
                self._cam = self._mod.Camera(rgb.shape[1], rgb.shape[0], self.fps, fmt=self._mod.PixelFormat.RGB)
            except RuntimeError as e:
                raise KdsharpError(
                    f"sink=virtualcam: no virtual camera device ({e}); install v4l2loopback "
                    "(Linux) or OBS Virtual Camera (Windows/macOS)",
                    params=["sink"],
                ) from e
        self._cam.send(np.ascontiguousarray(rgb))
        return None

    def close(self, exc) -> None:
        if self._cam is not None:
            self._cam.close()


def open_sink(
    sink: str,
    fps: float,
    overwrite: bool = False,
    audio_from: str | Path | None = None,
    info: VideoInfo | None = None,
    source: str | Path | None = None,
    preset: str | None = None,
    crf: int | None = None,
):
    """``'window'``, ``'virtualcam'`` or a video file path (refused if it exists, unless ``overwrite``,
    and named as the input itself when it is the ``source`` file; audio copied from ``audio_from``
    when given; rotation and colour tags from a source file's ``info``; encoder ``preset`` and
    ``crf``, which a window or virtual camera does not use: one warning says so)."""
    if sink in ("window", "virtualcam") and (preset is not None or crf is not None):
        from kdsharp.console import warn

        warn(f"sink={sink} encodes nothing: the encoder preset and crf apply to a file sink only; ignored")
    if sink == "window":
        return WindowSink()
    if sink == "virtualcam":
        return VirtualCamSink(fps)
    return FileSink(sink, fps, overwrite, audio_from=audio_from, info=info, source=source, preset=preset, crf=crf)
