"""Live sharpening for video calls: camera/file/URL -> model -> window, virtual camera or file.

Real time comes first: a capture thread keeps only the NEWEST frame in a one-slot mailbox, so a
model slower than the source makes frames drop instead of latency grow. A file source is read
at its own frame rate (real-time emulation), so drops are counted exactly as with a camera.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from kdsharp.errors import InputError
from kdsharp.infer.sinks import open_sink
from kdsharp.io.video import frame_to_rgb, probe_video, read_frames


@dataclass
class LiveStats:
    """Frames shown, frames dropped to keep up, mean capture-to-sink latency."""

    processed: int = 0
    dropped: int = 0
    latency_s: float = 0.0  # sum over processed frames
    wall_s: float = 0.0
    sink: str = ""

    @property
    def mean_latency_ms(self) -> float:
        return 1000.0 * self.latency_s / self.processed if self.processed else 0.0

    @property
    def fps(self) -> float:
        return self.processed / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> str:
        return (f"{self.processed} frames processed, {self.dropped} dropped to keep up, "
                f"{self.fps:.1f} frames/s, mean latency {self.mean_latency_ms:.0f} ms -> {self.sink}")


class LatestFrame:
    """One-slot mailbox: ``put`` replaces an unread frame (counted in ``dropped``), ``get`` waits."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self._closed = False
        self.dropped = 0
        self.error: BaseException | None = None

    def put(self, item) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def close(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._closed, self.error = True, error
            self._cond.notify()

    def get(self, timeout: float):
        """The newest ``item``, or None once the source has ended and nothing is left."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None or self._closed, timeout):
                raise TimeoutError
            item, self._item = self._item, None
            return item


class Source:
    """Runs ``frames`` (an iterator of (rgb uint8 HxWx3, media time s)) in a thread into a :class:`LatestFrame`.

    With ``pace`` the frames are released at their media time (real-time emulation of a file).
    """

    def __init__(self, name: str, frames, fps: float, pace: bool, release=None):
        self.name, self.fps, self.pace = name, fps, pace
        self.slot = LatestFrame()
        self._frames, self._release = frames, release
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kdsharp-capture", daemon=True)

    def _run(self) -> None:
        start = time.perf_counter()
        try:
            for rgb, t in self._frames:
                if self._stop.is_set():
                    break
                if self.pace:
                    delay = start + t - time.perf_counter()
                    if delay > 0 and self._stop.wait(delay):
                        break
                self.slot.put((rgb, t, time.perf_counter()))
            self.slot.close()
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer's thread
            self.slot.close(e)

    def __enter__(self) -> "Source":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5)
        if not self._thread.is_alive() and hasattr(self._frames, "close"):
            self._frames.close()  # closes the decoder's container now rather than at garbage collection
        if self._release:
            self._release()


def open_source(source: str | int, fps: float | None = None) -> Source:
    """A camera index (``0``), a video file (paced at its frame rate, or ``fps``) or a stream URL."""
    text = str(source)
    if text.isdigit():
        return _camera(int(text), fps)
    if "://" in text:
        return _url(text, fps)
    info = probe_video(text)
    rate = float(fps or info.fps)
    tb = info.time_base

    def frames():
        pts0 = None
        for i, (rgb, pts) in enumerate(read_frames(text)):
            if fps or pts is None:
                yield rgb, i / rate
                continue
            pts0 = pts if pts0 is None else pts0
            yield rgb, float((pts - pts0) * tb)

    return Source(text, frames(), rate, pace=True)


def _camera(index: int, fps: float | None) -> Source:
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our own message says it better
    try:
        cap = cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not cap.isOpened():
        raise InputError(f"camera {index}", "cannot be opened",
                         "check that it is connected and not used by another app, or pass a file or URL")
    if fps:
        cap.set(cv2.CAP_PROP_FPS, float(fps))
    rate = float(fps or cap.get(cv2.CAP_PROP_FPS) or 30.0)
    start = time.perf_counter()

    def frames():
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.perf_counter() - start

    return Source(f"camera {index}", frames(), rate, pace=False, release=cap.release)


def _url(url: str, fps: float | None) -> Source:
    import av

    try:
        container = av.open(url, timeout=(10.0, 10.0))
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(url, f"cannot open the stream ({e})", "check the URL and that the stream is live") from e
    if not container.streams.video:
        container.close()
        raise InputError(url, "has no video stream", "pass a video stream URL")
    s = container.streams.video[0]
    rate = float(fps or s.average_rate or 30)

    def frames():
        for f in container.decode(s):
            yield frame_to_rgb(f), float(f.time or 0.0)

    return Source(url, frames(), rate, pace=False, release=container.close)


def _label(img: np.ndarray, text: str, y: int = 22) -> np.ndarray:
    cv2.putText(img, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def run_live(source: str | int = 0, sink: str = "window", model="fast", device: str = "auto",
             backend: str = "torch", side_by_side: bool = False, max_frames: int | None = None,
             fps: float | None = None, overwrite: bool = False, sharpener=None) -> LiveStats:
    """Sharpen ``source`` frames into ``sink`` in real time until the source ends, ``max_frames``, or ``q``.

    ``sharpener`` (a :class:`~kdsharp.infer.sharpener.Sharpener`) overrides ``model``/``device``/``backend``.
    Returns :class:`LiveStats` (processed/dropped counts and mean capture-to-sink latency).
    """
    src = open_source(source, fps)
    try:
        out = open_sink(sink, fps or src.fps, overwrite)
        if sharpener is None:
            from kdsharp.infer.sharpener import Sharpener

            sharpener = Sharpener(model, device=device, backend=backend)
    except BaseException:
        src.__exit__(None, None, None)
        raise
    stats = LiveStats(sink=str(sink))
    start = time.perf_counter()
    failure: BaseException | None = None
    try:
        with src:
            stats = _loop(src, out, sharpener, side_by_side, max_frames, stats)
    except BaseException as e:
        failure = e
        raise
    finally:
        stats.dropped = src.slot.dropped
        stats.wall_s = time.perf_counter() - start
        out.close(failure)
    return stats


def _loop(src: Source, out, sharpener, side_by_side: bool, max_frames: int | None, stats: LiveStats) -> LiveStats:
    rate = 0.0  # smoothed model frames/s for the overlay
    while max_frames is None or stats.processed < max_frames:
        try:
            item = src.slot.get(timeout=10.0)
        except TimeoutError:
            raise InputError(src.name, "no frame for 10 s", "check the source") from None
        if item is None:
            if src.slot.error is not None:
                raise src.slot.error
            break
        rgb, t_media, t_capture = item
        t0 = time.perf_counter()
        out_rgb = sharpener.frames(torch.from_numpy(rgb[None]))[0].numpy()
        now_rate = 1.0 / max(time.perf_counter() - t0, 1e-6)
        rate = 0.9 * rate + 0.1 * now_rate if rate else now_rate
        if side_by_side:
            out_rgb = np.hstack([_label(rgb.copy(), "input"), _label(out_rgb, "kdsharp")])
        if out.overlay:
            lat = 1000 * (time.perf_counter() - t_capture)
            _label(out_rgb, f"{rate:.1f} fps  {lat:.0f} ms  dropped {src.slot.dropped}", out_rgb.shape[0] - 12)
        action = out.write(out_rgb, t_media)
        stats.processed += 1
        stats.latency_s += time.perf_counter() - t_capture
        if action == "quit":
            break
        if action == "toggle":
            side_by_side = not side_by_side
    return stats
