"""Video files <-> RGB frames with PyAV; audio streams are copied untouched, writes are atomic.

Frames at this edge are uint8 HxWx3 **RGB** arrays in the stream's stored orientation (the
display matrix / rotation is read from the source and written back unchanged, so players show
the output the same way). Timestamps are integers in the source stream's ``time_base``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import numpy as np
from av.video.reformatter import Interpolation as _I

from kdsharp.errors import InputError, OutputError
from kdsharp.io.atomic import atomic_path
from kdsharp.io.formats import VIDEO_EXTS
from kdsharp.io.inputs import existing_file

DEFAULT_CRF = {"libx264": 17, "libx265": 19, "libvpx-vp9": 24}  # visually lossless (at the slower presets)
# x264/x265 preset and CRF by frame size (pixels up to): chosen so that encoding stays well under
# the model's time per frame on 2 cores, the slowest CPUs of this project's machines included (an
# AMD EPYC 7001 at 1080p: superfast 30, ultrafast 18 CPU ms/frame beside ~55 for the model, which
# 24 frames/s leave ~80 for in all); CRF 18 is about visually lossless at these presets. See the
# README ("Real-time video") for the size cost.
ENCODER_DEFAULTS = ((1280 * 720, "veryfast", 18), (float("inf"), "ultrafast", 18))
CRF_MAX = {"libx264": 51, "libx265": 51, "libvpx-vp9": 63, "mpeg4": 51}
# MPEG-4 Part 2 has no CRF: a crf (on x264's 0-51 scale) becomes the fixed quantiser q (1 best - 31) that
# gives about the same PSNR on natural images (the table of kdsharp.data.codecs, plus 0 -> q 1, its best):
# (crf, q) points, interpolated and rounded. mpeg4 is never lossless.
MPEG4_Q = ((0, 1), (18, 2), (23, 3), (30, 9), (38, 15), (45, 20), (51, 31))
X26X = ("libx264", "libx265")  # the encoders that take a speed preset
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
_SWS_COLORSPACES = (1, 4, 5, 6, 7, 9)  # AVColorSpace values swscale can convert (709, 601, 240M, 2020)
# swscale's default fast path shifts colours by about -1 level per RGB<->YUV 4:2:0 round trip;
# accurate rounding and full-resolution chroma make the round trip unbiased. Bilinear chroma
# upsampling gives the bicubic result within 0.07 levels (mean |difference| at 1080p) at about
# half the cost of YUV -> RGB (~10 instead of ~25 CPU ms per 1080p frame on the 2-core EPYC).
TO_RGB_FLAGS = _I.BILINEAR | _I.ACCURATE_RND | _I.FULL_CHR_H_INT
TO_YUV_FLAGS = _I.BILINEAR | _I.ACCURATE_RND | _I.FULL_CHR_H_INT | _I.FULL_CHR_H_INP


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as uint8 HxWx3 RGB, using its own colour matrix and range."""
    return frame.to_ndarray(format="rgb24", src_color_range=int(frame.color_range), interpolation=TO_RGB_FLAGS)


def rgb_to_yuv420(rgb: np.ndarray) -> av.VideoFrame:
    """uint8 (H, W, 3) RGB, H and W even -> a yuv420p frame, BT.601 limited range and tagged so (what
    players assume for an untagged frame); one OpenCV pass, for frames that arrive as RGB (a camera)."""
    import cv2

    planes = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), dtype=np.uint8)  # (H * 3/2, W): Y, U, V
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.color_range = 1  # limited ("TV")
    with contextlib.suppress(AttributeError, ValueError, TypeError):
        frame.colorspace = 6  # SMPTE 170M = BT.601
    return frame


def is_video_file(path: str | Path) -> bool:
    """True if ``path`` has a video extension we read and write."""
    return Path(path).suffix.lower() in VIDEO_EXTS


def check_video_name(path: str | Path) -> None:
    """An :class:`InputError` for a source whose extension is not a video's (no extension: probed)."""
    if Path(path).suffix and not is_video_file(path):
        raise InputError(path, "is not a video kdsharp reads", f"use one of {', '.join(VIDEO_EXTS)}")


class AudioNotCopiedError(OutputError):
    """The output's container cannot carry the source's audio (AAC in .webm, Opus in .mov): Matroska can."""


_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}


def check_audio_fits(src: str | Path, dst: str | Path) -> None:
    """Refuse, before any work, an output ``dst`` whose container cannot carry ``src``'s audio (AAC in
    .webm, Opus in .mov or .avi) with :class:`AudioNotCopiedError`; a source that cannot be opened is left
    to the run, which reports it."""
    muxer = _MUXERS.get(Path(dst).suffix.lower())
    if muxer is None:
        return
    try:
        c = av.open(str(src))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return
    with contextlib.closing(c), contextlib.closing(av.open(io.BytesIO(), "w", format=muxer)) as out:
        codecs = [a.codec_context.name for a in c.streams.audio]
        try:
            for a in c.streams.audio:
                out.add_stream_from_template(a)
            if codecs:
                out.start_encoding()
        except (ValueError, av.error.FFmpegError) as e:
            raise AudioNotCopiedError(
                dst,
                f"its {', '.join(sorted(set(codecs)))} audio (from {src}) cannot be copied into a "
                f"{Path(dst).suffix} file",
                "use .mkv or the input's extension",
            ) from e


class WriteFailedError(OutputError):
    """Writing the output failed part way (disk full, I/O error): the run had started, so exit 1 (as a
    file that turns corrupt part way)."""

    exit_code = 1


@dataclass
class VideoInfo:
    """What :func:`probe_video` learns about a file. ``frames`` is 0 when the file does not say."""

    path: Path
    width: int
    height: int
    fps: Fraction  # average frame rate, frames/s
    time_base: Fraction  # unit of the video timestamps, s
    frames: int
    duration_s: float
    codec: str
    display_matrix: tuple[int, ...] | None  # 9 int32 (FFmpeg DISPLAYMATRIX), None if absent
    rotation: int  # counter-clockwise degrees implied by the matrix
    audio_streams: int
    colorspace: int = 2  # AVColorSpace of the source (2 = unspecified)
    color_range: int = 0  # AVColorRange (0 unspecified, 1 limited, 2 full)
    color_primaries: int = 2
    color_trc: int = 2
    pix_fmt: str = ""  # the decoded pixel format, e.g. yuv420p, yuv420p10le
    bit_depth: int = 8  # bits per sample of the source (10 for yuv420p10le)
    frames_exact: bool = False  # ``frames`` is an MP4/MOV sample count (exact), not an index or an estimate
    video_end_s: float = 0.0  # where the video stream ends by its header, s from its first frame (0: unknown)
    other_streams: tuple[str, ...] = ()  # kinds of the streams kdsharp does not copy (subtitle, data, ...)

    @property
    def orientation(self) -> tuple[bool, int]:
        """``(mirror, quarter)`` that show the stored picture as players do (see :func:`display_orientation`)."""
        if self.display_matrix is None:
            return False, round(self.rotation / 90) % 4
        return display_orientation(self.display_matrix)


# the fix for a folder given where one video is read (read_frames, probe_video)
VIDEO_FOLDER_FIX = "pass one video file; kdsharp sharpen takes a whole folder, kdsharp degrade a folder of images"


def _open_input(path: Path) -> av.container.InputContainer:
    existing_file(path, "video", folder_fix=VIDEO_FOLDER_FIX)
    try:
        c = av.open(str(path))
        if "avi" in (c.format.name or "").split(","):
            # AVI stores no timestamps, only frame slots: PyAV's generated pts puts each H.264 frame
            # one slot late (it takes the next packet's dts); frames get their slot (dts) instead
            c.flags &= ~cast(int, av.container.Flags.gen_pts.value)
        return c
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        fix = (
            "the file is damaged or not a video: re-export or remove it"
            if is_video_file(path)
            else f"use one of {', '.join(VIDEO_EXTS)}"
        )
        raise InputError(path, f"not a readable video ({_why(e)})", fix) from e


def why(e: Exception) -> str:
    """A short reason for an FFmpeg/OS error (its strerror, or its message's first part)."""
    return getattr(e, "strerror", None) or str(e).split(":")[0] or type(e).__name__


_why = why


def probe_video(path: str | Path) -> VideoInfo:
    """Read the header and the first frame of ``path``; raises :class:`InputError` if unusable."""
    path = Path(path)
    with contextlib.closing(_open_input(path)) as c:
        if not c.streams.video:
            raise InputError(path, "has no video stream", "pass a video file (audio-only files cannot be sharpened)")
        s = c.streams.video[0]
        first = None
        try:
            first = next(iter(c.decode(s)), None)
        except av.error.FFmpegError as e:
            raise InputError(path, f"video stream cannot be decoded ({_why(e)})", "re-encode or remove it") from e
        if first is None:
            raise InputError(path, "video stream has no frames", "re-export or remove it")
        matrix = None
        side_data: Any = first.side_data  # PyAV's stubs type its items as str
        for sd in side_data:
            if str(sd.type).endswith("DISPLAYMATRIX") and len(bytes(sd)) == 36:
                matrix = tuple(int(v) for v in np.frombuffer(bytes(sd), "<i4"))
        fps = s.average_rate or s.guessed_rate or Fraction(25)
        tb = s.time_base or Fraction(1, 90000)
        dur = _video_duration(c, s, tb)
        frames = int(s.frames or 0) or int(round(dur * fps))
        # an MP4/MOV sample table counts the frames exactly; an AVI index also counts empty (dropped) chunks
        exact = bool(s.frames) and "mp4" in (c.format.name or "")
        return VideoInfo(
            path,
            first.width,
            first.height,
            Fraction(fps),
            Fraction(tb),
            frames,
            dur,
            s.codec_context.name,
            matrix,
            int(first.rotation or 0),
            len(c.streams.audio),
            int(first.colorspace),
            int(first.color_range),
            int(first.color_primaries),
            int(first.color_trc),
            first.format.name,
            _bit_depth(first.format),
            exact,
            dur,
            tuple(st.type for st in c.streams if st.type != "audio" and st is not s),  # a 2nd video too
        )


def _video_duration(c: av.container.InputContainer, s: Any, tb: Fraction) -> float:
    """The video stream's duration by the header, s: its own, a Matroska DURATION tag, else the file's."""
    if s.duration:
        return float(s.duration * tb)
    tag = next((v for k, v in (s.metadata or {}).items() if k.upper() == "DURATION"), None)
    if tag:
        with contextlib.suppress(ValueError):
            h, m, sec = str(tag).split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
    return (c.duration or 0) / 1e6


def ended_early(info: VideoInfo, frames: int, end_s: float) -> str | None:
    """Why a video that decoded ``frames`` frames, the last ending at ``end_s`` s after the first frame's
    start, looks cut short against its header (None if it does not): fewer frames than an exact MP4
    count, or (other containers) an end more than 0.5 s or 3 frames before the header's duration."""
    if info.frames_exact:
        if frames < info.frames:
            return f"video ends at frame {frames} of the {info.frames} its header lists (truncated?)"
        return None
    slack = max(0.5, 3 / float(info.fps or 25))
    if info.video_end_s > 0 and end_s < info.video_end_s - slack:
        return f"video ends at {end_s:.2f} s of the {info.video_end_s:.2f} s its header gives (truncated?)"
    return None


def not_kept(info: VideoInfo) -> list[str]:
    """Warnings for what an output of ``info``'s video does not keep: more than 8 bits, streams other
    than its first video stream and its audio."""
    out = []
    if info.bit_depth > 8:
        out.append(
            f"{info.path}: {info.bit_depth}-bit video ({info.pix_fmt}) is written as 8-bit: kdsharp processes and "
            "encodes video at 8 bits per channel (colour tags are kept)"
        )
    if info.other_streams:
        kinds = ", ".join(sorted(set(info.other_streams)))
        out.append(
            f"{info.path}: its {len(info.other_streams)} {kinds} stream(s) are not copied "
            "(kdsharp sharpens the first video stream and copies the audio)"
        )
    return out


def _bit_depth(fmt: av.VideoFormat) -> int:
    """Bits per sample of a pixel format (8 for yuv420p, 10 for yuv420p10le)."""
    try:
        return max(int(c.bits) for c in fmt.components) or 8
    except (AttributeError, ValueError):
        return 8


def decode_video(container: av.container.InputContainer, stream: Any) -> Iterator[av.VideoFrame]:
    """``container.decode(stream)``; a frame without a pts (AVI stores only frame slots) gets its slot: its
    dts counted from the first frame's (a decoder with B-frames hands frames out a few packets late),
    and the frames flushed at the end the slots after the last."""
    first = last = None
    for f in container.decode(stream):
        if f.pts is None:
            if f.dts is not None:
                first = f.dts if first is None else first
                f.pts = max(f.dts - first, -1 if last is None else last + 1)
            elif last is not None:
                f.pts = last + 1
        last = f.pts if f.pts is not None else last
        yield f


def read_frames(path: str | Path) -> Iterator[tuple[np.ndarray, int | None]]:
    """Yield ``(rgb, pts)`` for each frame of the first video stream: uint8 HxWx3 RGB, stored orientation.

    Raises :class:`InputError` naming the file if the stream is corrupt mid-way.
    """
    path = Path(path)
    with contextlib.closing(_open_input(path)) as c:
        if not c.streams.video:
            raise InputError(path, "has no video stream", "pass a video file")
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        try:
            for f in decode_video(c, s):
                yield frame_to_rgb(f), f.pts
        except av.error.FFmpegError as e:
            raise InputError(path, f"video is corrupt or truncated ({_why(e)})", "re-encode or remove it") from e


@contextlib.contextmanager
def open_video_stream(path: str | Path, threads: int = 0):
    """``(container, first video stream)`` of ``path``, closed on exit; ``threads`` 0: FFmpeg's choice."""
    path = Path(path)
    with contextlib.closing(_open_input(path)) as c:
        if not c.streams.video:
            raise InputError(path, "has no video stream", "pass a video file")
        s = c.streams.video[0]
        if threads == 1:
            s.thread_type = "NONE"
            s.codec_context.thread_count = 1
        else:
            s.thread_type = "AUTO"
            if threads:
                s.codec_context.thread_count = int(threads)
        yield c, s


def mpeg4_q(crf: int) -> int:
    """The mpeg4 quantiser (1-31) for x264-scale ``crf`` (0-51), by :data:`MPEG4_Q`."""
    xs, ys = zip(*MPEG4_Q, strict=True)
    return int(round(float(np.interp(crf, xs, ys))))


@dataclass
class EncoderSettings:
    """The encoder, its preset (x264/x265) and CRF for one output (mpeg4: mapped to a quantiser)."""

    codec: str
    preset: str | None
    crf: int | None

    def describe(self) -> str:
        quality = None
        if self.crf is not None:
            quality = f"q {mpeg4_q(self.crf)} (crf {self.crf})" if self.codec == "mpeg4" else f"crf {self.crf}"
        return " ".join(str(v) for v in (self.codec, self.preset, quality) if v)


def unused_settings(codec: str, preset: str | None, crf: int | None) -> list[tuple[str, str]]:
    """The given settings that encoder ``codec`` does not use, as (``name=value``, why): a preset
    (x264/x265 only), a crf (encoders other than x264, x265, VP9 and mpeg4, which get a bit rate)."""
    unused = []
    if preset is not None and codec not in X26X:
        unused.append((f"preset={preset}", "presets are libx264's and libx265's"))
    if crf is not None and codec not in CRF_MAX:
        unused.append((f"crf={crf}", f"{codec} is written at a bit rate"))
    return unused


def check_encoder_options(
    outputs: list[Path], codec: str | None = None, preset: str | None = None, crf: int | None = None
) -> str | None:
    """Check the encoder options of a run that writes the videos ``outputs``, before any work: raises
    :class:`OutputError` for a preset that is not x264's, a ``codec`` not available or a crf out of
    the range of an output's encoder (checked once per encoder); returns one warning line naming the
    options that the encoders picked do not use (a preset with mpeg4 or VP9), None if all apply."""
    groups: dict[str, list[Path]] = {}
    for dst in outputs:
        groups.setdefault(pick_codec(Path(dst), codec), []).append(Path(dst))
    lines = []
    for name, dsts in groups.items():
        encoder_settings(64, 64, name, preset, crf, dsts[0])  # a bad preset, a crf out of range: raises
        if unused := unused_settings(name, preset, crf):
            from kdsharp.console import plural

            more = f" (and {plural(len(dsts) - 1, 'more video')})" if len(dsts) > 1 else ""
            settings, why = zip(*unused, strict=True)
            lines.append(f"{dsts[0]}{more}: {name} takes no {' or '.join(settings)}: ignored ({'; '.join(why)})")
    return "; ".join(lines) or None


def check_preset(preset: str | None, path: str | Path = "out.mp4") -> None:
    """Refuse an encoder ``preset`` that is not one of x264's names (None: the default)."""
    if preset is not None and preset not in X264_PRESETS:
        raise OutputError(
            Path(path),
            f"preset={preset} is not an x264 preset",
            "use one of " + ", ".join(X264_PRESETS),
            params=["preset"],
        )


def encoder_settings(
    width: int,
    height: int,
    codec: str | None = None,
    preset: str | None = None,
    crf: int | None = None,
    path: str | Path = "out.mp4",
) -> EncoderSettings:
    """Codec, preset and CRF for a ``width`` x ``height`` output: the given values, else the defaults.

    H.264/H.265 default by frame size (:data:`ENCODER_DEFAULTS`): veryfast up to 720p, ultrafast
    above, CRF 18. VP9 keeps its own speed settings (CRF 24); mpeg4 takes a
    crf as its fixed quantiser (:data:`MPEG4_Q`), else a bit rate, as other encoders do. Only x264
    and x265 take a preset (others: None here; :func:`check_encoder_options` says so). A preset
    other than x264's names, or a CRF above the encoder's range (:data:`CRF_MAX`), is refused in
    one line.
    """
    check_preset(preset, path)
    name = pick_codec(Path(path), codec)
    top = CRF_MAX.get(name)
    if crf is not None and top is not None and crf > top:
        raise OutputError(
            Path(path), f"crf={crf} is out of range for {name}", f"use 0 to {top}, lower is better", params=["crf"]
        )
    if name in X26X:
        size_preset, size_crf = next((p, c) for limit, p, c in ENCODER_DEFAULTS if width * height <= limit)
        return EncoderSettings(name, preset or size_preset, size_crf if crf is None else int(crf))
    if name not in CRF_MAX:  # written at a bit rate
        return EncoderSettings(name, None, None)
    return EncoderSettings(name, None, DEFAULT_CRF.get(name) if crf is None else int(crf))


def pick_codec(path: Path, codec: str | None) -> str:
    """The encoder for ``path``: ``codec`` if given and available, else by container (VP9 for .webm, H.264)."""
    wanted = [codec] if codec else (["libvpx-vp9"] if path.suffix.lower() == ".webm" else ["libx264", "mpeg4"])
    for name in wanted:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - av raises UnknownCodecError / ValueError depending on version
            continue
    raise OutputError(
        path,
        f"video encoder codec={codec} is not available in this PyAV build",
        "try codec=libx264, codec=mpeg4 or codec=libvpx-vp9",
        params=["codec"],
    )


class VideoWriter:
    """Encode RGB frames into ``path`` atomically, copying audio packets from ``audio_from`` untouched.

    Use as a context manager; :meth:`write` takes uint8 HxWx3 RGB frames and their pts (in
    ``time_base``). Audio packets are interleaved by time as video is written. If the ``with``
    block raises, nothing is left at ``path``.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: Fraction | float,
        time_base: Fraction | None = None,
        codec: str | None = None,
        crf: int | None = None,
        preset: str | None = None,
        display_matrix: tuple[int, ...] | None = None,
        audio_from: str | Path | None = None,
        color: VideoInfo | None = None,
        audio_tone: tuple[np.ndarray, int] | None = None,
    ):
        self.path = Path(path)
        self.size = (int(width), int(height))
        self.fps = Fraction(fps).limit_denominator(100000)
        self.time_base = Fraction(time_base) if time_base else 1 / self.fps  # the unit of the pts given to write
        # AVI has no timestamps, only a frame period: its stream counts frames (pts converted)
        self._avi = self.path.suffix.lower() == ".avi"
        self._stream_tb = 1 / self.fps if self._avi else self.time_base
        enc = encoder_settings(int(width), int(height), codec, preset, crf, self.path)
        if enc.codec == "mpeg4":
            self._stream_tb = _short_time_base(self._stream_tb)
        self.codec = enc.codec
        self.crf = enc.crf
        self.preset = enc.preset
        self.display_matrix = display_matrix
        self.audio_from = Path(audio_from) if audio_from else None
        self.audio_tone = audio_tone
        self.color = color
        self.frames = 0
        self.audio_end: float | None = None  # set before closing: copy audio only up to this time (s)
        self.last_time = 0.0  # end of the last video frame written, seconds
        self.audio_warning: str | None = None
        self._stack = contextlib.ExitStack()
        self._next_pts = 0
        self._last_pts = -(2**62)
        self._origin: int | None = None  # AVI: the first frame's pts (slots count from it)
        # in the stream's unit: the first frame's pts, the last one's end, the first packet's dts
        self._first_pts: int | None = None
        self._end_pts = 0
        self._first_dts: int | None = None
        self._audio_codecs: list[str] = []  # of the audio streams copied

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> VideoWriter:
        try:
            tmp = self._stack.enter_context(atomic_path(self.path))
            # AVI: no shift of every stream when the audio starts before 0 (AAC priming): the muxer would
            # move the video one slot late and leave an empty slot after its first frame
            opts = {"avoid_negative_ts": "disabled"} if self._avi else None
            self._out = av.open(str(tmp), "w", format=_format_for(self.path), options=opts)
            self._stack.callback(self._out.close)
            self._add_video_stream()
            self._add_audio_streams()
            self._out.start_encoding()
        except BaseException as e:
            self._stack.__exit__(type(e), e, e.__traceback__)
            if isinstance(e, av.error.FFmpegError):
                if self._audio_codecs and self.audio_from is not None:  # the muxer refused the audio (opus in .mov)?
                    check_audio_fits(self.audio_from, self.path)
                raise OutputError(
                    self.path, f"cannot start writing ({_why(e)})", "check the extension and the codec"
                ) from e
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                with self._writing():
                    self._flush()
                    return bool(self._stack.__exit__(None, None, None))  # the trailer, then the rename
            except BaseException as e:
                self._discard(e)
                raise
        self._discard(exc)
        return False

    def _discard(self, e: BaseException) -> None:
        """Close and delete the temp file after ``e``; an error in closing (the disk still full) does not hide ``e``."""
        with contextlib.suppress(Exception):
            self._stack.__exit__(type(e), e, e.__traceback__)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """An OSError while writing the file (disk full, I/O error) as one line naming the output."""
        try:
            yield
        except OSError as e:
            raise WriteFailedError(self.path, f"cannot be written ({e.strerror or e})", "check free space") from e

    # -- streams ---------------------------------------------------------------------------
    def _add_video_stream(self) -> None:
        w, h = self.size
        s: Any = self._out.add_stream(self.codec, rate=self.fps)  # a VideoStream (the stubs return a union)
        s.width, s.height = w, h
        s.pix_fmt = self._pick_pix_fmt()
        s.codec_context.time_base = self._stream_tb
        s.time_base = self._stream_tb
        crf = self.crf
        opts: dict[str, Any] = {}
        if self.codec in X26X:
            opts = {"crf": str(crf), "preset": self.preset}
            if self._avi:
                opts["bf"] = "0"  # AVI stores frames in decoding order only: no B-frame reordering
            if self.codec == "libx265":
                opts["x265-params"] = "log-level=error"
        elif self.codec == "libvpx-vp9":
            opts = {"crf": str(crf), "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
        elif self.codec == "mpeg4" and crf is not None:  # a fixed quantiser of about the crf's quality
            q = str(mpeg4_q(crf))
            opts = {"qmin": q, "qmax": q}
        else:  # mpeg4 and friends: generous bit rate (about 0.25 bit/pixel)
            s.bit_rate = int(w * h * float(self.fps) * 0.25)
        s.options = opts
        s.thread_type = "AUTO"
        cs = self.color.colorspace if self.color and self.color.colorspace in _SWS_COLORSPACES else None
        if self.color is not None:
            tags = {
                # the matrix the frames are converted with: the source's, or swscale's BT.601 (6) for
                # sources without a YUV matrix (RGB video), never the source's 'RGB' tag on YUV data
                "colorspace": cs if cs is not None or self.color.colorspace == 2 else 6,
                "color_range": self.color.color_range,
                "color_primaries": self.color.color_primaries,
                "color_trc": self.color.color_trc,
            }
            for attr, value in tags.items():
                with contextlib.suppress(Exception):
                    setattr(s.codec_context, attr, value)
        if self.display_matrix is not None:
            mirror, quarter = display_orientation(self.display_matrix)
            if self._avi and (mirror or quarter):
                from kdsharp.console import warn

                what = (
                    "left-right flip (a mirrored camera)"
                    if mirror
                    else f"rotation ({_rotation(self.display_matrix)} degrees)"
                )
                warn(
                    f"{self.path}: AVI cannot store the source's {what}: players will show the picture "
                    f"as stored, {'mirrored' if mirror else 'turned'} (write .mp4, .mkv or .mov to keep it)"
                )
            s.set_display_matrix(list(self.display_matrix))
        self._video = s
        rng = self.color.color_range if self.color and self.color.color_range in (1, 2) else None
        self._reformat: dict[str, Any] = dict(
            format=s.pix_fmt, dst_colorspace=cs, dst_color_range=rng, interpolation=TO_YUV_FLAGS
        )

    def _pick_pix_fmt(self) -> str:
        """yuv420p, or the source's finer chroma (4:4:4, 4:2:2; odd sizes 4:4:4) where the encoder
        stores it; a source's chroma the encoder cannot keep is named in one warning."""
        w, h = self.size
        src = self.color.pix_fmt if self.color is not None else ""
        chroma = _chroma_format(src) if src and src not in ("yuv420p", "yuvj420p") else "yuv420p"
        want = "yuv444p" if w % 2 or h % 2 else chroma
        if want == "yuv420p":
            return want
        try:
            formats = {f.name for f in av.codec.Codec(self.codec, "w").video_formats or ()}
        except Exception:  # noqa: BLE001 - an encoder PyAV cannot describe: its default
            formats = set()
        if want in formats:
            return want
        if chroma != "yuv420p":
            from kdsharp.console import warn

            warn(
                f"{self.path}: {self.codec} cannot store the source's {src} chroma: written as yuv420p "
                "(half the colour resolution; codec=libx264 keeps it)"
            )
        return "yuv420p"

    def _add_audio_streams(self) -> None:
        sources = []
        if self.audio_tone is not None:
            tone = self._out.add_stream("aac", rate=int(self.audio_tone[1]))
            tone.layout = "mono"
            sources.append(self._tone_packets(tone))
        if self.audio_from is not None:
            src = av.open(str(self.audio_from))
            self._stack.callback(src.close)
            if src.streams.audio:
                mapping = {}
                for a in src.streams.audio:
                    try:
                        mapping[a.index] = self._out.add_stream_from_template(a)
                        self._audio_codecs.append(a.codec_context.name)
                    except ValueError as e:
                        raise AudioNotCopiedError(
                            self.path,
                            f"its {a.codec_context.name} audio cannot be copied into a {self.path.suffix} file",
                            "use .mkv or the input's extension",
                        ) from e
                sources.append((p, mapping[p.stream.index]) for p in src.demux(*src.streams.audio) if p.dts is not None)
        self._audio = [[it, None] for it in sources]  # [packet iterator, pending packet]

    def _tone_packets(self, stream):
        assert self.audio_tone is not None  # only called when a tone was asked for
        samples, rate = self.audio_tone
        samples = np.asarray(samples, np.float32).reshape(1, -1)
        for i in range(0, samples.shape[1], 1024):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, i : i + 1024]), format="flt", layout="mono")
            f.sample_rate, f.pts, f.time_base = rate, i, Fraction(1, rate)
            for p in stream.encode(f):
                yield p, stream
        for p in stream.encode(None):
            yield p, stream

    # -- writing ---------------------------------------------------------------------------
    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Encode one uint8 HxWx3 RGB frame shown at ``pts`` (in ``time_base``; None: next slot)."""
        if rgb.shape[:2] != (self.size[1], self.size[0]):
            raise OutputError(
                self.path,
                f"frame {rgb.shape[1]}x{rgb.shape[0]} does not match the video size {self.size[0]}x{self.size[1]}",
                "report this as a bug",
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        self.write_frame(frame, pts)

    @property
    def pix_fmt(self) -> str:
        """The pixel format the encoder takes (e.g. yuv420p); set once the writer is open."""
        return str(self._video.pix_fmt)

    def prepare(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``frame`` in the encoder's pixel format (as is when it already is; colour-accurate otherwise).

        Thread-safe: the video pipeline calls it in its model workers, off the encoder's thread.
        """
        if frame.format.name == self.pix_fmt:
            return frame
        out = frame.reformat(**self._reformat)
        out.pts = frame.pts
        if frame.time_base is not None:
            out.time_base = frame.time_base
        return out

    def write_frame(self, frame: av.VideoFrame, pts: int | None = None) -> None:
        """Encode an ``av.VideoFrame`` (any pixel format; its own pts unless ``pts``; None: next slot)."""
        if (frame.width, frame.height) != self.size:
            raise OutputError(
                self.path,
                f"frame {frame.width}x{frame.height} does not match the video size {self.size[0]}x{self.size[1]}",
                "report this as a bug",
            )
        own = pts is None  # a frame re-timed by the caller (live) lasts one period, not its source duration
        given = pts if pts is not None else frame.pts
        # in the stream's unit (the same as time_base except for AVI)
        pts = self._next_pts if given is None else round(int(given) * self.time_base / self._stream_tb)
        if self._avi and given is not None:  # AVI counts frame slots from its first frame: slot 0
            self._origin = pts if self._origin is None else self._origin
            pts -= self._origin
        pts = max(int(pts), self._last_pts + 1)  # encoders need strictly increasing timestamps
        step = max(1, round(1 / (self.fps * self._stream_tb)))
        self._last_pts = pts
        self._next_pts = pts + step
        frame = self.prepare(frame)
        tb = frame.time_base
        end = pts + (round(frame.duration * tb / self._stream_tb) if own and frame.duration and tb else step)
        frame.pts = int(pts)
        frame.time_base = self._stream_tb
        self.last_time = float(end * self._stream_tb)
        self._first_pts = pts if self._first_pts is None else self._first_pts
        self._end_pts = end
        self._mux_video(self._video.encode(frame))
        self.frames += 1

    def _sane_dts(self, packets: list) -> list:
        """``packets`` with a decoding time that no encoder gives replaced by the presentation time:
        libx265 leaves the dts of a 1- or 2-frame video unset (garbage), and a garbage dts some
        million ticks before its pts failed the MP4 muxer ('patches welcome'). A real dts is at most
        the pts, and a B-frame delay puts it no earlier than the first frame's pts minus the span of
        the frames given so far (the encoder cannot delay more than it holds); anything else is garbage."""
        if self._first_pts is None:
            return packets
        step = max(1, round(1 / (self.fps * self._stream_tb)))
        earliest = self._first_pts - (self._last_pts - self._first_pts) - 2 * step  # in the stream's ticks
        for p in packets:
            if p.dts is not None and p.pts is not None and not earliest <= p.dts <= p.pts:
                p.dts = p.pts
        return packets

    def _mux_video(self, packets) -> None:
        with self._writing():
            for p in self._sane_dts(list(packets)):
                if self._first_dts is None and p.dts is not None:
                    self._first_dts = int(p.dts)
                self._out.mux(p)
                if p.pts is not None:
                    self._mux_audio_until(float(p.pts * p.time_base))

    def _mux_audio_until(self, t: float | None) -> None:
        """Mux audio packets up to time ``t`` seconds (all that remain, or up to ``audio_end``, when None).

        A source whose audio turns unreadable part way (corrupt or truncated) stops the copy there
        with one warning; the video goes on.
        """
        if t is None:
            t = self.audio_end
        for src in self._audio:
            while True:
                try:
                    item = src[1] or next(src[0], None)
                except av.error.FFmpegError as e:
                    self.audio_warning = (
                        f"{self.audio_from}: audio unreadable part way ({why(e)}); copied what came before"
                    )
                    src[0], item = iter(()), None
                src[1] = None
                if item is None:
                    break
                p, stream = item
                if t is not None and p.pts is not None and float(p.pts * p.time_base) > t:
                    src[1] = item
                    break
                p.stream = stream
                self._out.mux(p)

    def _flush(self) -> None:
        packets = self._sane_dts(list(self._video.encode(None)))  # sane before their dts time the last packet
        if packets and packets[-1].dts is not None and self._out.format.name in ("mp4", "mov"):
            # MP4/MOV time a track by its decoding times: with B-frames the last dts trails the last frame by
            # the reorder delay, which on a variable frame rate is not one average period per frame; the last
            # packet lasts to the video's end so that duration and average rate stay the source's
            first_dts = int(packets[0].dts) if self._first_dts is None else self._first_dts
            end = self._end_pts - (self._first_pts or 0) - (int(packets[-1].dts) - first_dts)
            packets[-1].duration = max(int(packets[-1].duration or 0), end)
        self._mux_video(packets)
        self._mux_audio_until(None)
        if self.audio_warning:
            from kdsharp.console import warn

            warn(self.audio_warning)


def _chroma_format(pix_fmt: str) -> str:
    """The 8-bit planar YUV format that keeps ``pix_fmt``'s chroma resolution: yuv444p (RGB, 4:4:4,
    4:4:0), yuv422p (4:2:2) or yuv420p (4:2:0 and coarser, grey, unknown formats)."""
    try:
        comps = av.VideoFormat(pix_fmt, 64, 64).components
    except (ValueError, TypeError):
        return "yuv420p"
    if len(comps) < 3:
        return "yuv420p"
    full_w, full_h = comps[1].width == 64, comps[1].height == 64
    return "yuv444p" if full_w else "yuv422p" if full_h else "yuv420p"


def _short_time_base(tb: Fraction) -> Fraction:
    """``tb``, or where MPEG-4 Part 2 cannot store it (a denominator over 16 bits, such as a phone's
    1/90000) the finest 1/n whose n divides that denominator (1/45000): the timestamps stay exact."""
    d = tb.denominator
    if d <= 65535:
        return tb
    return Fraction(1, next(d // k for k in range(-(-d // 65535), d + 1) if d % k == 0))


def display_orientation(matrix: tuple[int, ...]) -> tuple[bool, int]:
    """``(mirror, quarter)`` for an FFmpeg display matrix (9 int32): a stored picture flipped
    left-right when ``mirror``, then turned ``quarter`` quarter turns counter-clockwise
    (:func:`as_displayed`), is what players show. Follows ffmpeg's own autorotation, flips
    included (a phone's mirrored front camera); an angle that is not a quarter turn goes to the
    nearest one."""
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]
    if not (np.hypot(a, c) and np.hypot(b, d)):  # degenerate: ffmpeg shows it as stored
        return False, 0
    clockwise = int(round(np.degrees(np.arctan2(b / np.hypot(b, d), a / np.hypot(a, c))))) % 360  # get_rotation
    if clockwise == 0:  # upright, or upside down mirrored (vflip)
        return (True, 2) if d < 0 else (False, 0)
    if clockwise == 90:  # transpose=cclock_flip (a transpose) or clock
        return (True, 1) if c > 0 else (False, 3)
    if clockwise == 180:  # hflip and/or vflip (both: a half turn)
        return (False, 2) if d < 0 else (True, 0)
    if clockwise == 270:  # transpose=clock_flip (an anti-transpose) or cclock
        return (True, 3) if c < 0 else (False, 1)
    return False, round(-clockwise / 90) % 4


def as_displayed(img: np.ndarray, orientation: tuple[bool, int]) -> np.ndarray:
    """A stored HxWxC frame as players show it (``orientation``: :attr:`VideoInfo.orientation`);
    ``img`` itself when nothing moves."""
    from kdsharp.ops.geometry import flip_rotate

    mirror, quarter = orientation
    return flip_rotate(img, mirror, False, quarter, axes=(0, 1)) if mirror or quarter % 4 else img


def as_stored(img: np.ndarray, orientation: tuple[bool, int]) -> np.ndarray:
    """The inverse of :func:`as_displayed`: a picture as shown back to the stored layout."""
    from kdsharp.ops.geometry import flip_rotate

    mirror, quarter = orientation
    if not (mirror or quarter % 4):
        return img
    return flip_rotate(flip_rotate(img, False, False, -quarter, axes=(0, 1)), mirror, False, 0, axes=(0, 1))


def _rotation(matrix: tuple[int, ...]) -> int:
    """Counter-clockwise degrees (0, 90, 180, 270) of an FFmpeg display matrix (9 int32, 16.16 fixed point)."""
    a, b = matrix[0], matrix[1]
    return int(round(-np.degrees(np.arctan2(b, a)))) % 360


def _format_for(path: Path) -> str | None:
    return {".m4v": "mp4", ".mkv": "matroska"}.get(path.suffix.lower())


def write_video(
    path: str | Path,
    frames_rgb: list[np.ndarray],
    fps: float,
    crf: int | None = None,
    audio_tone: tuple[np.ndarray, int] | None = None,
    audio_from: str | Path | None = None,
) -> Path:
    """Write a list of uint8 HxWx3 RGB frames as a video (atomic), optionally with an audio track."""
    h, w = frames_rgb[0].shape[:2]
    with VideoWriter(path, w, h, fps, crf=crf, audio_tone=audio_tone, audio_from=audio_from) as vw:
        for f in frames_rgb:
            vw.write(f)
    return Path(path)


def sine_tone(seconds: float, freq: float = 440.0, rate: int = 48000, level: float = 0.2) -> tuple[np.ndarray, int]:
    """A mono float32 sine (samples in [-level, level]) and its sample rate, for :class:`VideoWriter`."""
    t = np.arange(int(seconds * rate), dtype=np.float64) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate
