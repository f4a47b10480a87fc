"""Live sharpening for video calls: camera/file/URL -> model -> window, virtual camera or file.

Real time comes first: a capture thread keeps only the NEWEST frame in a one-slot mailbox, so a
model slower than the source makes frames drop instead of latency grow; the drops are counted
and reported. On the CPU several single-threaded model workers take the newest frame in turn
(one per core: two frames in flight), and their results are written in capture order. A file
source is read at its own frame rate (real-time emulation), so drops are counted exactly as with
a camera, and the output keeps the source's timing: every frame written sits at its capture time
(a dropped frame leaves its slot empty), at the source's frame rate.

File and stream sources are decoded to YUV and a luma model (``fast``) runs on the Y plane
(:mod:`kdsharp.infer.frames`), with temporal reuse of unchanged tiles on by default; a file sink
encodes in its own thread. Ctrl-C (SIGINT) stops cleanly: the output file is finished with the
frames so far (audio cut to match) and the summary is printed.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from kdsharp.console import plural
from kdsharp.console import progress as make_progress
from kdsharp.errors import InputError, Terminated
from kdsharp.infer.sinks import open_sink
from kdsharp.io.video import (
    as_displayed,
    as_stored,
    check_video_name,
    decode_video,
    ended_early,
    frame_to_rgb,
    open_video_stream,
    probe_video,
    rgb_to_yuv420,
    why,
)


@dataclass
class LiveStats:
    """Frames shown, frames dropped to keep up, mean capture-to-sink latency."""

    processed: int = 0
    dropped: int = 0
    latency_s: float = 0.0  # sum over processed frames
    wall_s: float = 0.0
    sink: str = ""
    interrupted: str | None = None  # 'Ctrl-C' or 'SIGTERM' when stopped so (the output was still finished)
    path: str = "rgb"  # 'yuv' or 'rgb' (see kdsharp.infer.frames)
    reused: float | None = None  # fraction of tiles temporal reuse did not recompute
    reuse_tolerance: int = 0  # luma levels a reused tile may have changed by (0: exact)
    partial: str | None = None  # the warning when a file source turned corrupt part way (frames before it kept)
    workers: int = 1  # model threads taking frames in turn
    precision: str = ""  # what the model computed in: 'fp32', 'bf16' (CPU autocast), 'fp16' ('' unknown)

    @property
    def dropped_pct(self) -> float:
        seen = self.processed + self.dropped
        return 100.0 * self.dropped / seen if seen else 0.0

    @property
    def mean_latency_ms(self) -> float:
        return 1000.0 * self.latency_s / self.processed if self.processed else 0.0

    @property
    def fps(self) -> float:
        return self.processed / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> str:
        from kdsharp.infer.frames import reuse_text

        reuse = (f", {self.workers} workers" if self.workers > 1 else "") + reuse_text(
            self.reused, self.reuse_tolerance
        )
        return (
            (f"stopped ({self.interrupted}): " if self.interrupted else "")
            + f"{plural(self.processed, 'frame')} processed, "
            f"{self.dropped} dropped to keep up ({self.dropped_pct:.1f}%), "
            f"{self.fps:.1f} frames/s, mean latency {self.mean_latency_ms:.0f} ms "
            f"({self.path} path{', ' + self.precision if self.precision else ''}{reuse}) "
            f"-> {self.sink}"
        )


class LatestFrame:
    """One-slot mailbox: ``put`` replaces an unread frame (counted in ``dropped``); ``take`` waits
    for the newest and numbers what it hands out (``taken``: 0, 1, 2, ... in capture order), so
    several workers can share one source and their results still be written in order."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self._closed = False
        self.dropped = 0
        self.taken = 0
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
            self._cond.notify_all()

    def take(self, timeout: float):
        """``(number, item)`` for the newest item, or None once the source has ended and nothing
        is left; raises TimeoutError after ``timeout`` s without either."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None or self._closed, timeout):
                raise TimeoutError
            if self._item is None:
                return None
            item, self._item = self._item, None
            self.taken += 1
            return self.taken - 1, item

    def get(self, timeout: float):
        """The newest ``item``, or None once the source has ended and nothing is left."""
        taken = self.take(timeout)
        return None if taken is None else taken[1]


class Source:
    """Runs ``frames`` (an iterator of (frame, media time s)) in a thread into a :class:`LatestFrame`.

    A frame is an ``av.VideoFrame`` (files, streams) or a uint8 HxWx3 RGB array (cameras). With
    ``pace`` the frames are released at their media time (real-time emulation of a file).
    ``audio_from``: a file whose audio a file sink copies; ``info``: a file's
    :class:`~kdsharp.io.video.VideoInfo` (size, rotation and colour tags for the sink).
    ``partial`` is set by a file's frames when it turned corrupt part way (the frames before are kept).
    """

    def __init__(self, name: str, frames, fps: float, pace: bool, release=None, audio_from=None, info=None):
        self.name, self.fps, self.pace, self.audio_from, self.info = name, fps, pace, audio_from, info
        self.size = (info.width, info.height) if info is not None else None  # known before the first frame
        self.partial: str | None = None
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

    def __enter__(self) -> Source:
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
    check_video_name(text)
    info = probe_video(text)
    rate = min(float(fps), float(info.fps)) if fps else float(info.fps)
    tb = info.time_base

    def frames():
        """Frames at their media time (so a sink's audio stays in sync); with ``fps`` below the file's
        rate, frames are taken every 1/fps s and the others skipped (a file is never sped up or slowed)."""
        pts0, taken, decoded, end_s = None, 0, 0, 0.0
        with open_video_stream(text, threads=1) as (container, stream):
            try:
                for i, f in enumerate(decode_video(container, stream)):
                    decoded = i + 1
                    if f.pts is None:
                        t = i / float(info.fps)
                    else:
                        pts0 = f.pts if pts0 is None else pts0
                        t = float((f.pts - pts0) * tb)
                    end_s = max(end_s, t + 1 / float(info.fps))
                    if fps and t < taken / rate - 1e-6:
                        continue
                    taken += 1
                    yield f, t
                short = ended_early(info, decoded, end_s)  # played to its end: as long as its header says?
                if short:
                    opened.partial = f"{text}: {short}; kept the {decoded} frames decoded"
            except av.error.FFmpegError as e:
                if not taken:
                    raise InputError(text, f"video is corrupt or truncated ({e})", "re-encode or remove it") from e
                opened.partial = (
                    f"{text}: video is corrupt or truncated at frame {decoded + 1} ({why(e)}); "
                    f"stopped after the {decoded} frames decoded before it"  # less any dropped to keep up
                )

    opened = Source(text, frames(), rate, pace=True, audio_from=text if info.audio_streams else None, info=info)
    return opened


def _camera(index: int, fps: float | None) -> Source:
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our own message says it better
    try:
        cap = cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not cap.isOpened():
        raise InputError(
            f"camera {index}",
            "cannot be opened",
            "check that it is connected and not used by another app, or pass a file or URL",
        )
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
        t0 = None
        for f in container.decode(s):
            t = float(f.time or 0.0)
            t0 = t if t0 is None else t0
            yield f, t - t0

    # a live stream arrives in real time by itself; a file behind a URL (http, file://: it has a
    # duration) is read at its frame rate, as a local file is, or the model would miss most of it
    pace = container.duration is not None
    return Source(url, frames(), rate, pace=pace, release=container.close)


def _label(img: np.ndarray, text: str, y: int = 22) -> np.ndarray:
    cv2.putText(img, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def run_live(
    source: str | int = 0,
    sink: str = "window",
    model="fast",
    device: str = "auto",
    backend: str = "torch",
    side_by_side: bool = False,
    max_frames: int | None = None,
    fps: float | None = None,
    overwrite: bool = False,
    sharpener=None,
    threads: int | None = None,
    reuse: bool | None = None,
    reuse_tolerance: int | None = None,
    progress=None,
    workers: int | None = None,
    encoder_preset: str | None = None,
    crf: int | None = None,
    half: bool | None = False,
) -> LiveStats:
    """Sharpen ``source`` frames into ``sink`` in real time until the source ends, ``max_frames``, ``q`` or Ctrl-C.

    ``sharpener`` (a :class:`~kdsharp.infer.sharpener.Sharpener`) overrides ``model``/``device``/``backend``.
    ``threads``: the model's CPU threads (default: the available cores; the threads wait
    passively, so decoding, encoding and the call app still get their share). ``reuse``:
    temporal reuse of unchanged tiles (``fast``, ``student``; None: on); ``reuse_tolerance``: levels a tile
    may change and still count as unchanged (:class:`~kdsharp.infer.frames.TileReuse`; 0: exact;
    None: :data:`~kdsharp.infer.frames.REUSE_TOLERANCE`). Ctrl-C finishes
    the output and returns the stats with ``interrupted`` set. ``workers``: model threads taking
    frames in turn (default: :func:`~kdsharp.infer.video.plan_workers`, on the CPU one
    single-threaded worker per thread). ``encoder_preset``/``crf``: a file sink's encoder (default
    x264 ``ultrafast``, CRF 18: see :class:`~kdsharp.infer.sinks.FileSink`). ``half``: fp16 on CUDA,
    bf16 on a CPU with bfloat16 instructions (RGB models; :class:`~kdsharp.infer.backends.TorchBackend`;
    None: bf16 where it is free, :func:`~kdsharp.infer.backends.auto_bf16`). Returns
    :class:`LiveStats` (processed/dropped counts, mean latency).
    """
    from kdsharp.infer.frames import resolve_tolerance
    from kdsharp.infer.threads import default_threads, keep_freed_memory, torch_threads
    from kdsharp.infer.video import plan_workers

    tolerance = resolve_tolerance(reuse_tolerance)  # before anything opens
    keep_freed_memory()
    src = open_source(source, fps)
    try:
        from_file = src.info is not None and Path(src.name).is_file()
        out = open_sink(
            sink,
            src.fps,
            overwrite,
            audio_from=src.audio_from,
            info=src.info,
            source=src.name if from_file else None,
            preset=encoder_preset,
            crf=crf,
        )
        if sharpener is None:
            from kdsharp.infer.sharpener import Sharpener

            sharpener = Sharpener(model, device=device, backend=backend, threads=threads, half=half)
    except BaseException:
        src.__exit__(None, None, None)
        raise
    stats = LiveStats(sink=str(sink), precision=getattr(getattr(sharpener, "backend", None), "precision", ""))
    threads = threads or getattr(sharpener, "threads", None) or default_threads()
    planned, intra = plan_workers(sharpener, threads)
    stats.workers = int(workers or planned)
    if workers:  # the threads shared out over the workers asked for
        intra = max(1, threads // stats.workers)
    failure: BaseException | None = None
    try:
        with torch_threads(intra):
            _warm_up(sharpener, src)
    except BaseException:
        src.__exit__(None, None, None)
        out.close(None)
        raise
    start = time.perf_counter()
    try:
        with src, torch_threads(intra), _live_progress(progress, src) as (bar, task):
            try:
                ended = _loop(
                    src,
                    out,
                    sharpener,
                    side_by_side,
                    max_frames,
                    stats,
                    (True if reuse is None else reuse, tolerance),
                    bar,
                    task,
                    workers=stats.workers,
                )
                if ended and src.partial is None:  # the whole source went through: all of its audio too
                    out.cut_audio = False
            except KeyboardInterrupt as e:  # Ctrl-C: the only way to stop a camera; keep what was recorded
                stats.interrupted = "SIGTERM" if isinstance(e, Terminated) else "Ctrl-C"
    except BaseException as e:
        failure = e
        raise
    finally:
        stats.dropped = src.slot.dropped
        stats.wall_s = time.perf_counter() - start
        stats.partial = src.partial
        _close_sink(out, failure)
    return stats


def _warm_up(sharpener, src: Source) -> None:
    """One pass on a blank frame of the source's size before the clock starts: the first real frame
    would otherwise pay for the backend's one-off set-up and be late (a dropped frame)."""
    if src.size is None:
        return
    from kdsharp.infer.frames import make_processor

    blank = av.VideoFrame(int(src.size[0]), int(src.size[1]), "yuv420p")
    for i in range(len(blank.planes)):
        blank.planes[i].update(bytes(blank.planes[i].buffer_size))
    make_processor(sharpener, blank)([blank])


def _close_sink(out, failure: BaseException | None) -> None:
    """Finish (or, after a failure, discard) the sink; a second Ctrl-C while finishing is ignored."""
    try:
        out.close(failure)
    except KeyboardInterrupt:
        out.close(failure)


class _live_progress:
    """A frames progress task for live runs (none when the caller passes ``progress=False``)."""

    def __init__(self, progress, src: Source):
        self.progress, self.src = progress, src

    def __enter__(self):
        if self.progress is False:
            self.bar = None
            return None, None
        self.own = self.progress is None
        self.bar = make_progress("frames") if self.own else self.progress
        if self.own:
            self.bar.__enter__()
        return self.bar, self.bar.add_task(f"live {self.src.name}", total=None, unit="frames")

    def __exit__(self, *exc):
        if self.bar is not None and self.own:
            self.bar.__exit__(*exc)
        return False


def _as_rgb(frame) -> np.ndarray:
    """An RGB array from a source/processor frame (av.VideoFrame or array)."""
    return frame if isinstance(frame, np.ndarray) else frame_to_rgb(frame)


def _pair(frame: np.ndarray, result: np.ndarray, orientation: tuple[bool, int], upright: bool) -> np.ndarray:
    """Labelled input | output as a viewer sees them: a rotated or mirrored source (a phone's
    portrait video, its front camera; ``orientation``: :attr:`~kdsharp.io.video.VideoInfo.orientation`)
    is shown as players show it first, so the two sit side by side and the labels read; turned
    back unless ``upright`` (a file sink writes the source's display matrix)."""
    pair = np.hstack(
        [
            _label(as_displayed(frame, orientation).copy(), "input"),
            _label(as_displayed(result, orientation).copy(), "kdsharp"),
        ]
    )
    return pair if upright else as_stored(pair, orientation)


NO_FRAME_S = 10.0  # a source silent this long is an error


def _work(
    src: Source,
    sharpener,
    reuse: tuple[bool, int],
    results: queue.Queue,
    stop: threading.Event,
    procs: list,
    defer: bool = False,
) -> None:
    """One model worker: takes the newest source frame, sharpens it with its own processor, hands
    ``('frame', number, (frame, result, media time, capture time, finish))`` to ``results``; ends with
    one ``('end', None, None)`` (source ended) or ``('error', None, exception)``; nothing once ``stop``
    is set. ``reuse``: (temporal reuse on, its tolerance in luma levels). ``defer``: the sink encodes
    8-bit planar YUV and runs ``finish`` there (:meth:`~kdsharp.infer.frames.RgbFrames.finish`): an
    RGB model's own chroma step is left to it (``finish`` None when nothing is owed)."""
    from kdsharp.infer.frames import RgbFrames, luma_model, make_processor
    from kdsharp.infer.video import Stopped, put_or_stop

    proc: Any = None  # this worker's frame processor (RgbFrames for camera frames and an RGB model)
    camera_yuv: bool | None = None  # RGB camera frames go to a luma model as YUV frames (Y-plane path, reuse)
    out_format = "yuv420p" if defer else None  # any 8-bit planar YUV reaches finish: the sink encoder's
    try:
        silent = 0.0
        while not stop.is_set():
            try:
                taken = src.slot.take(timeout=0.1)  # short waits: a stop is seen within 0.1 s
            except TimeoutError:
                silent += 0.1
                if silent >= NO_FRAME_S:
                    raise InputError(src.name, f"no frame for {NO_FRAME_S:.0f} s", "check the source") from None
                continue
            silent = 0.0
            if taken is None:
                if src.slot.error is not None:
                    raise src.slot.error
                break
            seq, (frame, t_media, t_capture) = taken
            given = frame
            if isinstance(frame, np.ndarray):  # camera: RGB
                if camera_yuv is None:
                    camera_yuv = luma_model(sharpener) is not None and frame.shape[0] % 2 == frame.shape[1] % 2 == 0
                if camera_yuv:
                    given = rgb_to_yuv420(frame)
            if isinstance(given, np.ndarray):  # an RGB model: RGB in, RGB out (a U-Net with temporal reuse)
                if proc is None:
                    proc = RgbFrames(sharpener, out_format=out_format, reuse=reuse[0], tolerance=reuse[1])
                    procs.append(proc)
                result: np.ndarray | av.VideoFrame = proc.rgb(given)
            else:
                if proc is None:
                    proc = make_processor(sharpener, given, reuse=reuse[0], tolerance=reuse[1], out_format=out_format)
                    procs.append(proc)
                result = proc([given])[0]
            finish = proc.finish if isinstance(proc, RgbFrames) and proc.defers_chroma else None
            put_or_stop(results, ("frame", seq, (frame, result, t_media, t_capture, finish)), stop)
        put_or_stop(results, ("end", None, None), stop)
    except Stopped:  # the writer no longer reads
        pass
    except BaseException as e:  # noqa: BLE001 - re-raised in the writing thread
        with contextlib.suppress(Stopped):
            put_or_stop(results, ("error", None, e), stop)


def _loop(
    src: Source,
    out,
    sharpener,
    side_by_side: bool,
    max_frames: int | None,
    stats: LiveStats,
    reuse: tuple[bool, int],
    bar=None,
    task=None,
    workers: int = 1,
) -> bool:
    """Process frames until the source ends (returns True), ``max_frames``, or the sink quits (False).

    ``workers`` model threads each take the newest frame as soon as they are free (each with its
    own processor and temporal reuse: ``reuse`` = (on, tolerance)); this thread writes their results in
    capture order (a window sink must be driven from the main thread) and handles the sink's keys.
    """
    from kdsharp.infer.frames import skipped_fraction

    orientation = src.info.orientation if src.info is not None else (False, 0)  # as players show the source
    results: queue.Queue = queue.Queue(2 * workers + 2)
    stop = threading.Event()
    procs: list = []
    defer = bool(getattr(out, "takes_planar_yuv", False)) and not side_by_side  # the chroma step at the encoder
    pool = [
        threading.Thread(
            target=_work,
            args=(src, sharpener, reuse, results, stop, procs, defer),
            name=f"kdsharp-live-{i}",
            daemon=True,
        )
        for i in range(workers)
    ]
    for th in pool:
        th.start()
    pending: dict[int, tuple] = {}
    next_seq, running = 0, workers
    rate, last = 0.0, None  # smoothed written frames/s for the overlay
    try:
        while running or pending:
            if max_frames is not None and stats.processed >= max_frames:
                return False
            if next_seq not in pending:
                if not running:  # (cannot happen: a worker hands over every frame it took before it ends)
                    break
                try:
                    kind, seq, payload = results.get(timeout=0.5)
                except queue.Empty:
                    continue
                if kind == "error":
                    raise payload
                if kind == "end":
                    running -= 1
                else:
                    pending[seq] = payload
                continue
            frame, result, t_media, t_capture, finish = pending.pop(next_seq)
            next_seq += 1
            now = time.perf_counter()
            if last is not None:
                now_rate = 1.0 / max(now - last, 1e-6)
                rate = 0.9 * rate + 0.1 * now_rate if rate else now_rate
            last = now
            if side_by_side or out.overlay or out.wants_rgb:
                result = _as_rgb(result)
                if side_by_side:
                    result = _pair(_as_rgb(frame), result, orientation, upright=not out.rotates)
                elif not out.rotates:  # a window or virtual camera shows the picture as it is: upright it
                    result = as_displayed(result, orientation)
                if out.overlay:
                    lat = 1000 * (time.perf_counter() - t_capture)
                    _label(result, f"{rate:.1f} fps  {lat:.0f} ms  dropped {src.slot.dropped}", result.shape[0] - 12)
            action = out.write(result, t_media) if finish is None else out.write(result, t_media, finish=finish)
            stats.processed += 1
            stats.latency_s += time.perf_counter() - t_capture
            if bar is not None:
                bar.update(task, advance=1, description=f"live {src.name} ({src.slot.dropped} dropped)")
            if action == "quit":
                return False
            if action == "toggle":
                side_by_side = not side_by_side
        return True
    finally:
        stop.set()
        for th in pool:
            th.join()
        stats.reused = skipped_fraction(procs)
        stats.reuse_tolerance = reuse[1] if stats.reused is not None else 0
        if procs:
            stats.path = procs[0].path
