"""Video -> video: a streaming pipeline of threads with bounded queues.

    decoder thread --(batches of decoded frames)--> model worker thread(s) --(frames to encode)--> encoder thread
                                                    (colour conversion here)       (reordered; audio copied)

Frames stream through: at most a few batches per queue are in memory, never the whole video.
Decoding and encoding are PyAV/FFmpeg calls and the model is torch: all release the GIL, so the
stages overlap on separate cores and the slowest one sets the pace. Each stage's busy time is
measured (waiting excluded) and returned in :class:`VideoStats`, with the bottleneck.

Luma models (``fast``) take the YUV-native path (:mod:`kdsharp.infer.frames`): the decoder's Y
plane goes through the network, chroma is copied, and the encoder gets yuv420p directly. Other
models take the RGB path (colour-accurate conversion in the workers).

Bad input mid-stream: the frames decoded before a corrupt or truncated part are kept -- the
output is a valid, complete file of those frames (audio cut to match) -- and one warning names
the frame where decoding stopped (:attr:`VideoStats.partial`; ``kdsharp sharpen`` exits 1). A
video with no decodable frame gives no output and an :class:`InputError`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import torch

from kdsharp.console import plural, warn
from kdsharp.console import progress as make_progress
from kdsharp.errors import InputError, KdsharpError, OutputError
from kdsharp.infer.threads import default_threads, keep_freed_memory, torch_threads
from kdsharp.io.video import (
    VIDEO_EXTS,
    VideoWriter,
    decode_video,
    encoder_settings,
    ended_early,
    is_video_file,
    not_kept,
    open_video_stream,
    probe_video,
    why,
)

QUEUE_BATCHES = 4  # bounded queues: at most this many batches in flight between two stages
PATHS = ("auto", "yuv", "rgb")


@dataclass
class VideoStats:
    """What a video run did and how long each stage was busy (seconds; fps = frames / seconds).

    ``model_s`` and ``convert_s`` are summed over the model workers; ``*_ms`` properties give
    busy milliseconds per frame of each stage as a whole (worker time divided by ``workers``).
    """

    src: Path
    dst: Path
    frames: int
    width: int
    height: int
    fps: float  # the video's frame rate
    audio_streams: int
    decode_s: float = 0.0
    convert_s: float = 0.0  # colour conversion and frame building in the workers
    model_s: float = 0.0
    encode_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0  # CPU time of the whole process during the run (all threads, user + system)
    decode_cpu_s: float = 0.0  # CPU time of the decoder thread
    model_cpu_s: float = 0.0  # CPU time of the model workers (conversions included)
    path: str = "rgb"  # 'yuv' (luma model on the Y plane) or 'rgb'
    workers: int = 1
    threads: int = 1  # torch intra-op threads per worker
    encoder: str = ""  # e.g. 'libx264 superfast crf 18'
    reused: float | None = None  # fraction of tiles temporal reuse did not recompute (None: reuse off)
    reuse_tolerance: int = 0  # levels a reused tile may have changed by (0: exact)
    partial: str | None = None  # the warning when decoding stopped early (corrupt/truncated input)
    expected_frames: int = 0
    extra: dict = field(default_factory=dict)

    def _rate(self, seconds: float) -> float:
        return self.frames / seconds if seconds > 0 else float("inf")

    @property
    def decode_fps(self) -> float:
        return self._rate(self.decode_s)

    @property
    def model_fps(self) -> float:
        return self._rate(self.model_s / max(self.workers, 1))

    @property
    def encode_fps(self) -> float:
        return self._rate(self.encode_s)

    @property
    def overall_fps(self) -> float:
        return self._rate(self.wall_s)

    def _ms(self, seconds: float) -> float:
        return 1000.0 * seconds / self.frames if self.frames else 0.0

    @property
    def stage_ms(self) -> dict[str, float]:
        """Busy ms per frame of each stage: decode, model (incl. conversions, per worker pool), encode."""
        w = max(self.workers, 1)
        return {
            "decode": self._ms(self.decode_s),
            "model": self._ms((self.model_s + self.convert_s) / w),
            "encode": self._ms(self.encode_s),
        }

    @property
    def cpu_ms(self) -> dict[str, float]:
        """CPU ms per frame: decode, model (workers), encode and the rest (x264's own threads, audio, glue).

        Unlike the busy times these do not grow when other processes take the cores, so they
        compare runs on a loaded machine; 2 cores give at most 2000 / total frames/s.
        """
        rest = max(0.0, self.cpu_s - self.decode_cpu_s - self.model_cpu_s)
        return {
            "decode": self._ms(self.decode_cpu_s),
            "model": self._ms(self.model_cpu_s),
            "encode": self._ms(rest),
            "total": self._ms(self.cpu_s),
        }

    @property
    def bottleneck(self) -> str:
        """The stage with the most busy time per frame (it sets the pace when the cores are free)."""
        ms = self.stage_ms
        return max(ms, key=lambda k: ms[k])

    def as_dict(self) -> dict:
        """Plain figures for ``--json``: busy ms per frame of each stage (``decode_ms``, ``model_ms`` for the
        worker pool, conversions included, ``encode_ms``), CPU ms per frame (``cpu_ms``), fps, bottleneck."""
        return {
            "src": str(self.src),
            "frames": self.frames,
            "size": f"{self.width}x{self.height}",
            "fps_source": round(self.fps, 3),
            "e2e_fps": round(self.overall_fps, 2),
            "wall_s": round(self.wall_s, 3),
            **{f"{k}_ms": round(v, 2) for k, v in self.stage_ms.items()},
            "cpu_ms": {k: round(v, 2) for k, v in self.cpu_ms.items()},
            "workers": self.workers,
            "threads": self.threads,
            "bottleneck": self.bottleneck,
            "path": self.path,
            "encoder": self.encoder,
            "reused": self.reused,
            "reuse_tolerance": self.reuse_tolerance,
            "partial": self.partial,
            "audio_streams": self.audio_streams,
        }

    def summary(self) -> str:
        """One line: frames, size, wall time, frames/s, each stage's ms per frame, the bottleneck."""
        ms = self.stage_ms
        threads = plural(self.threads, "thread")
        work = f"{self.workers} workers x {threads}" if self.workers > 1 else threads
        from kdsharp.infer.frames import reuse_text

        reuse = reuse_text(self.reused, self.reuse_tolerance)
        return (
            f"{self.dst.name}: {self.frames} frames {self.width}x{self.height} in {self.wall_s:.1f} s "
            f"({self.overall_fps:.1f} frames/s) | ms/frame: decode {ms['decode']:.1f}, model {ms['model']:.1f} "
            f"({self.path} path, {work}{reuse}), encode {ms['encode']:.1f} ({self.encoder}) | bottleneck: "
            f"{self.bottleneck}" + (f" | audio streams copied: {self.audio_streams}" if self.audio_streams else "")
        )


class Stopped(Exception):
    """Raised inside a stage when another stage failed."""


def put_or_stop(q: queue.Queue, item, stop: threading.Event) -> None:
    """``q.put(item)``, raising :class:`Stopped` as soon as ``stop`` is set (checked before every try:
    stages that never wait must notice a Ctrl-C too)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            pass
    raise Stopped


def get_or_stop(q: queue.Queue, stop: threading.Event):
    """``q.get()``, raising :class:`Stopped` as soon as ``stop`` is set."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            pass
    raise Stopped


def plan_workers(sharpener, threads: int | None) -> tuple[int, int]:
    """``(workers, intra-op threads per worker)`` for ``threads`` CPU threads of model work.

    On the CPU, frames are spread over single-threaded workers (each frame runs on one core: no
    thread team to synchronise, which is what collapses when the cores are shared). Temporal reuse
    runs in each worker against the last frame that worker took (exact all the same). On a GPU,
    or with ONNX Runtime's own pool, one worker feeds the device. ``threads`` None:
    :func:`kdsharp.infer.threads.default_threads`.
    """
    n = int(threads or default_threads())
    if getattr(sharpener, "device", torch.device("cpu")).type != "cpu":
        return 1, n
    backend = getattr(sharpener, "backend", None)
    if backend is not None and backend.name != "torch":  # ONNX Runtime: its own intra-op pool, one session
        return 1, n
    return n, 1


def sharpen_video(
    sharpener,
    src: str | Path,
    dst: str | Path,
    crf: int | None = None,
    codec: str | None = None,
    batch: int = 1,
    progress=None,
    preset: str | None = None,
    threads: int | None = None,
    reuse: bool = False,
    path: str = "auto",
    max_frames: int | None = None,
    reuse_tolerance: int | None = None,
) -> VideoStats:
    """Sharpen every frame of ``src`` into ``dst`` with ``sharpener``; returns :class:`VideoStats`.

    Keeps frame count, timestamps (hence frame rate), resolution, rotation and colour tags; copies
    audio streams packet by packet. Video is processed and written at 8 bits per channel: a 10-bit
    source gets one warning. ``dst`` appears only when complete. ``progress`` is an existing
    :func:`kdsharp.console.progress` to add a task to (one is made otherwise).

    ``preset``/``crf``: encoder speed/quality (default per resolution, see
    :func:`kdsharp.io.video.encoder_settings`). ``threads``: CPU threads for the model (default
    :func:`kdsharp.infer.threads.default_threads`). ``reuse``: temporal reuse of unchanged tiles
    (a luma model on the YUV path, a convolutional U-Net on the RGB path: :func:`kdsharp.infer.frames.make_processor`),
    within ``reuse_tolerance`` levels (0: exact; None: the default,
    :data:`kdsharp.infer.frames.REUSE_TOLERANCE`). ``path``: 'auto', 'yuv' (luma
    models only) or 'rgb'. ``max_frames``: stop after N.
    """
    from kdsharp.infer.frames import make_processor, resolve_tolerance, skipped_fraction

    keep_freed_memory()
    tolerance = resolve_tolerance(reuse_tolerance)  # checked before any work
    src, dst = Path(src), Path(dst)
    if path not in PATHS:
        raise KdsharpError(f"unknown video path '{path}' (use one of: {', '.join(PATHS)})")
    if not is_video_file(dst):
        raise OutputError(dst, f"unsupported video extension '{dst.suffix}'", "use one of " + ", ".join(VIDEO_EXTS))
    info = probe_video(src)
    for message in not_kept(info):
        warn(message)
    if path == "yuv" and not _luma_ok(sharpener, info):
        raise KdsharpError(
            f"{src}: path=yuv needs a luma model (fast) on the torch backend without tiles "
            f"and 8-bit planar YUV video (this one is {info.pix_fmt}); use path=auto",
            params=["path"],
        )
    y_plane = path != "rgb" and _luma_ok(sharpener, info)
    workers, intra = plan_workers(sharpener, threads)
    if not y_plane:  # (the Y-plane path runs uncompiled)
        with torch_threads(intra):
            sharpener.warm_up(info.height, info.width)  # a compiled model compiles before the clock starts
    stats = VideoStats(
        src,
        dst,
        0,
        info.width,
        info.height,
        float(info.fps),
        info.audio_streams,
        workers=workers,
        threads=intra,
        expected_frames=info.frames,
    )
    q_in: queue.Queue = queue.Queue(QUEUE_BATCHES)
    q_out: queue.Queue = queue.Queue(QUEUE_BATCHES + workers)
    stop = threading.Event()
    errors: list[BaseException] = []
    processors: list = []
    decoded = [0]
    end_s = [0.0]  # where the last decoded frame ends, s after the first
    lock = threading.Lock()

    def decode() -> None:
        c0 = time.thread_time()
        try:
            with open_video_stream(src, threads=_decoder_threads()) as (container, stream):
                frames, seq, start = [], 0, None
                frame_s = 1 / float(info.fps or 25)
                it = decode_video(container, stream)
                while True:
                    t0 = time.perf_counter()
                    try:
                        f = next(it, None) if max_frames is None or decoded[0] < max_frames else None
                    except av.error.FFmpegError as e:  # corrupt or truncated part way: keep what came before
                        f = None
                        stats.partial = (
                            f"{src}: video is corrupt or truncated at frame {decoded[0] + 1} ({why(e)}); "
                            f"kept the {decoded[0]} frames decoded before it"
                        )
                    if f is not None:
                        frames.append(f)
                        decoded[0] += 1
                        if f.pts is not None:
                            start = f.pts if start is None else min(start, f.pts)
                            end_s[0] = max(end_s[0], float((f.pts - start) * stream.time_base) + frame_s)
                    stats.decode_s += time.perf_counter() - t0
                    if frames and (f is None or len(frames) == batch):
                        put_or_stop(q_in, (seq, frames), stop)
                        frames, seq = [], seq + 1
                    if f is None:
                        break
            if decoded[0] == 0:
                raise InputError(
                    src,
                    "video stream has no decodable frame"
                    + (f" ({stats.partial.split('(')[1]}" if stats.partial else ""),
                    "re-encode or remove it",
                )
            short = ended_early(info, decoded[0], end_s[0]) if stats.partial is None and max_frames is None else None
            if short:
                stats.partial = f"{src}: {short}; kept the {decoded[0]} frames decoded"
            stats.decode_cpu_s += time.thread_time() - c0
            for _ in range(workers):
                put_or_stop(q_in, None, stop)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            errors.append(e)
            stop.set()

    def model_worker() -> None:
        try:
            proc = None
            while (item := get_or_stop(q_in, stop)) is not None:
                seq, frames = item
                c0 = time.thread_time()
                if proc is None:
                    proc = make_processor(
                        sharpener, frames[0], reuse=reuse, path=path, tolerance=tolerance, out_format=writer.pix_fmt
                    )
                    processors.append(proc)
                out = proc(frames)
                t0 = time.perf_counter()
                out = [writer.prepare(f) for f in out]  # to the encoder's pixel format, here in parallel
                proc.times.convert_s += time.perf_counter() - t0
                out = proc.finish(out)  # an RGB model's deferred chroma step, on the encoder's planes
                with lock:
                    stats.model_cpu_s += time.thread_time() - c0
                put_or_stop(q_out, (seq, out), stop)
            put_or_stop(q_out, None, stop)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            stop.set()

    def encode(task) -> None:
        try:
            pending: dict[int, list] = {}
            next_seq, done = 0, 0
            while done < workers:
                item = get_or_stop(q_out, stop)
                if item is None:
                    done += 1
                    continue
                pending[item[0]] = item[1]
                while next_seq in pending:
                    frames = pending.pop(next_seq)
                    t0 = time.perf_counter()
                    for f in frames:
                        writer.write_frame(f)
                    stats.encode_s += time.perf_counter() - t0
                    stats.frames += len(frames)
                    bar.advance(task, len(frames))
                    next_seq += 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            stop.set()

    enc = encoder_settings(info.width, info.height, codec, preset, crf, dst)
    stats.encoder = enc.describe()
    own = progress is None
    bar = make_progress("frames") if own else progress

    start, cpu0 = time.perf_counter(), _cpu_seconds()
    with bar if own else contextlib.nullcontext(), torch_threads(intra):
        task = bar.add_task(
            src.name, total=(min(info.frames, max_frames) if max_frames else info.frames) or None, unit="frames"
        )
        t0 = time.perf_counter()
        writer = VideoWriter(
            dst,
            info.width,
            info.height,
            info.fps,
            info.time_base,
            codec=enc.codec,
            crf=enc.crf,
            preset=enc.preset,
            display_matrix=info.display_matrix,
            color=info,
            audio_from=src if info.audio_streams else None,
        )
        with writer:
            stats.encode_s += time.perf_counter() - t0
            threads_ = [
                threading.Thread(target=decode, name="kdsharp-decode", daemon=True),
                threading.Thread(target=encode, args=(task,), name="kdsharp-encode", daemon=True),
            ]
            threads_ += [
                threading.Thread(target=model_worker, name=f"kdsharp-model-{i}", daemon=True) for i in range(workers)
            ]
            for th in threads_:
                th.start()
            try:
                for th in threads_:
                    while th.is_alive():
                        th.join(timeout=0.2)
            except BaseException:  # Ctrl-C: stop every stage, leave no file
                stop.set()
                for th in threads_:
                    th.join()
                raise
            real = [e for e in errors if not isinstance(e, Stopped)]
            if real:
                raise real[0]
            if stats.partial:
                writer.audio_end = writer.last_time  # audio no longer than the video that was kept
            t0 = time.perf_counter()
        stats.encode_s += time.perf_counter() - t0  # flushing the encoder, closing the file
        if not own:
            bar.remove_task(task)
    stats.wall_s = time.perf_counter() - start
    stats.cpu_s = _cpu_seconds() - cpu0
    for proc in processors:
        stats.model_s += proc.times.model_s
        stats.convert_s += proc.times.convert_s
        stats.path = proc.path
    stats.reused = skipped_fraction(processors)
    stats.reuse_tolerance = tolerance if stats.reused is not None else 0
    if stats.partial:
        warn(stats.partial)
    return stats


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _luma_ok(sharpener, info) -> bool:
    from kdsharp.infer.frames import luma_model, yuv_formats

    model = luma_model(sharpener)
    return model is not None and info.pix_fmt in yuv_formats(model)


def _decoder_threads() -> int:
    """Decoder threads: 1 on small machines (the model needs the cores; frame threads add delay), else auto."""
    return 1 if (os.cpu_count() or 1) <= 4 else 0
