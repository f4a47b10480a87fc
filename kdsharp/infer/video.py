"""Video -> video: decode, model and encode run as a pipeline of threads with bounded queues.

    decoder thread --(batches of uint8 frames, pinned on GPU)--> model (caller's thread)
                   --(uint8 frames)--> encoder thread (audio packets copied, atomic file)

The slowest stage sets the pace; the others wait on the queues. Each stage's busy time is
measured (waiting excluded) and returned in :class:`VideoStats`.
"""
from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kdsharp.console import progress as make_progress
from kdsharp.console import warn
from kdsharp.errors import OutputError
from kdsharp.io.video import VIDEO_EXTS, VideoWriter, is_video_file, probe_video, read_frames

QUEUE_BATCHES = 4  # bounded queues: at most this many batches in flight between two stages


@dataclass
class VideoStats:
    """What a video run did and how long each stage was busy (seconds; fps = frames / seconds)."""

    src: Path
    dst: Path
    frames: int
    width: int
    height: int
    fps: float  # the video's frame rate
    audio_streams: int
    decode_s: float = 0.0
    model_s: float = 0.0
    encode_s: float = 0.0
    wall_s: float = 0.0

    def _rate(self, seconds: float) -> float:
        return self.frames / seconds if seconds > 0 else float("inf")

    @property
    def decode_fps(self) -> float:
        return self._rate(self.decode_s)

    @property
    def model_fps(self) -> float:
        return self._rate(self.model_s)

    @property
    def encode_fps(self) -> float:
        return self._rate(self.encode_s)

    @property
    def overall_fps(self) -> float:
        return self._rate(self.wall_s)

    def summary(self) -> str:
        """One line: frames, size, wall time and each stage's seconds and frames/s."""
        return (f"{self.dst.name}: {self.frames} frames {self.width}x{self.height} in {self.wall_s:.1f} s "
                f"({self.overall_fps:.1f} frames/s) | decode {self.decode_s:.1f} s ({self.decode_fps:.1f} fps), "
                f"model {self.model_s:.1f} s ({self.model_fps:.1f} fps), encode {self.encode_s:.1f} s "
                f"({self.encode_fps:.1f} fps)" + (f" | audio streams copied: {self.audio_streams}"
                                                  if self.audio_streams else ""))


class _Stopped(Exception):
    """Raised inside a stage when another stage failed."""


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while True:
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            if stop.is_set():
                raise _Stopped from None


def _get(q: queue.Queue, stop: threading.Event):
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                raise _Stopped from None


def sharpen_video(sharpener, src: str | Path, dst: str | Path, crf: int | None = None, codec: str | None = None,
                  batch: int = 1, progress=None) -> VideoStats:
    """Sharpen every frame of ``src`` into ``dst`` with ``sharpener.frames``; returns :class:`VideoStats`.

    Keeps frame count, timestamps (hence frame rate), resolution, rotation and colour tags; copies
    audio streams packet by packet. Video is processed and written at 8 bits per channel: a 10-bit
    source gets one warning. ``dst`` appears only when complete. ``progress`` is an existing
    :func:`kdsharp.console.progress` to add a task to (one is made otherwise).
    """
    src, dst = Path(src), Path(dst)
    if not is_video_file(dst):
        raise OutputError(dst, f"unsupported video extension '{dst.suffix}'", "use one of " + ", ".join(VIDEO_EXTS))
    info = probe_video(src)
    if info.bit_depth > 8:
        warn(f"{src}: {info.bit_depth}-bit video ({info.pix_fmt}) is written as 8-bit: kdsharp processes and "
             "encodes video at 8 bits per channel (colour tags are kept)")
    stats = VideoStats(src, dst, 0, info.width, info.height, float(info.fps), info.audio_streams)
    pin = getattr(sharpener, "device", torch.device("cpu")).type == "cuda"
    q_in: queue.Queue = queue.Queue(QUEUE_BATCHES)
    q_out: queue.Queue = queue.Queue(QUEUE_BATCHES)
    stop = threading.Event()
    errors: list[BaseException] = []

    def decode() -> None:
        try:
            frames, stamps = [], []
            it = iter(read_frames(src))
            while True:
                t0 = time.perf_counter()
                item = next(it, None)
                if item is not None:
                    frames.append(item[0])
                    stamps.append(item[1])
                if frames and (item is None or len(frames) == batch):
                    t = torch.from_numpy(np.stack(frames))
                    t = t.pin_memory() if pin else t
                    stats.decode_s += time.perf_counter() - t0
                    _put(q_in, (t, stamps), stop)
                    frames, stamps = [], []
                else:
                    stats.decode_s += time.perf_counter() - t0
                if item is None:
                    break
            _put(q_in, None, stop)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            errors.append(e)
            stop.set()

    def encode(task) -> None:
        try:
            t0 = time.perf_counter()
            with VideoWriter(dst, info.width, info.height, info.fps, info.time_base, codec=codec, crf=crf,
                             display_matrix=info.display_matrix, color=info,
                             audio_from=src if info.audio_streams else None) as writer:
                stats.encode_s += time.perf_counter() - t0
                while (item := _get(q_out, stop)) is not None:
                    t0 = time.perf_counter()
                    for frame, pts in zip(*item):
                        writer.write(frame, pts)
                    stats.encode_s += time.perf_counter() - t0
                    stats.frames += len(item[1])
                    bar.advance(task, len(item[1]))
                t0 = time.perf_counter()
            stats.encode_s += time.perf_counter() - t0  # flushing the encoder, closing the file
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            stop.set()

    own = progress is None
    bar = make_progress("frames") if own else progress
    start = time.perf_counter()
    with bar if own else contextlib.nullcontext():
        task = bar.add_task(src.name, total=info.frames or None)
        threads = [threading.Thread(target=decode, name="kdsharp-decode", daemon=True),
                   threading.Thread(target=encode, args=(task,), name="kdsharp-encode", daemon=True)]
        for th in threads:
            th.start()
        try:
            while (item := _get(q_in, stop)) is not None:
                frames, stamps = item
                t0 = time.perf_counter()
                out = sharpener.frames(frames).numpy()
                stats.model_s += time.perf_counter() - t0
                _put(q_out, (out, stamps), stop)
            _put(q_out, None, stop)
        except _Stopped:
            pass
        except BaseException:
            stop.set()
            for th in threads:
                th.join()
            raise
        finally:
            for th in threads:
                th.join()
        if not own:
            bar.remove_task(task)
    real = [e for e in errors if not isinstance(e, _Stopped)]
    if real:
        raise real[0]
    stats.wall_s = time.perf_counter() - start
    return stats
