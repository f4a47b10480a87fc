"""The :class:`Sharpener`: one object that sharpens tensors, arrays, image files, videos and folders.

from kdsharp import Sharpener
s = Sharpener("student")                 # registry name, checkpoint path, .onnx path or nn.Module
out = s.image(cv2.imread("a.png"))        # uint8/uint16 HxW / HxWx3 BGR / HxWx4 BGRA -> same
s.file("a.jpg", "a_sharp.jpg")
stats = s.video("call.mp4", "call_sharp.mp4")   # audio copied, per-stage timings returned
result = s.paths(["photos/", "clip.mov"], "out/")
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import torch
from torch import nn

from kdsharp.console import console, warn
from kdsharp.errors import InputError, KdsharpError, OutputError
from kdsharp.infer.backends import make_backend
from kdsharp.infer.batch import (
    BatchResult,
    ErrorHandler,
    _reject,
    check_video_options,
    plan_outputs,
    print_error,
    run_plan,
)
from kdsharp.infer.threads import threads_scoped, torch_threads
from kdsharp.infer.tiling import forward_any_size
from kdsharp.io.atomic import check_target
from kdsharp.io.images import IMAGE_EXTS, from_tensor, is_image_file, read_image_meta, to_tensor, write_image
from kdsharp.io.video import VIDEO_EXTS, check_encoder_options, is_video_file

MIN_TILE = 16  #: px: the smallest ``tile`` (a larger model cell raises it to one cell)


class Sharpener:
    """Sharpen with ``model`` (registry name, checkpoint path, ``.onnx`` path or ``nn.Module``).

    Args:
        model: what to run; names are resolved by ``kdsharp.registry.load_model``. A module is
            left as it was: one in training mode, or that needs another device, dtype or memory
            layout, runs as an eval-mode copy (an eval-mode module already in place is shared).
        device: ``'auto'`` (CUDA if available), ``'cpu'`` or ``'cuda'``.
        backend: ``'torch'`` or ``'onnx'`` (ONNX Runtime).
        tile: process images in ``tile`` x ``tile`` tiles, at least :data:`MIN_TILE` px and one of
            the model's cells (None or 0: whole, tiling on out-of-memory).
        tile_overlap: pixels shared by neighbouring tiles, blended smoothly (None: 8 of the model's
            cells, at least 32: 32 for ``fast``, 128 for ``student``, whose U-Net sees far). Tiles
            start at multiples of the model's ``pad_multiple``, so each sees the frame in the same
            cell phase as the whole: with both, a tiled ``student`` output is within 2 levels of
            the whole-image one (32 px unaligned: up to 7).
        half: fp16 on CUDA; bf16 autocast on a CPU with bfloat16 instructions; None: bf16 where it is
            free (an RGB model on such a CPU), else float32
            (:func:`~kdsharp.infer.backends.auto_bf16`; the CLI's default).
        batch: video frames per forward pass.
        compile: ``torch.compile`` the model (torch backend).
        threads: CPU threads for the model (torch intra-op / ONNX Runtime; videos: frame workers,
            see :mod:`kdsharp.infer.threads`). None: the available cores. Torch's (and OpenCV's)
            process-wide thread count is set for each call and restored after it (inside a
            :func:`~kdsharp.infer.threads.torch_threads` block, e.g. a video's workers, the block's
            count is kept).
    """

    def __init__(
        self,
        model: nn.Module | str | Path = "student",
        device: str = "auto",
        backend: str = "torch",
        tile: int | None = None,
        tile_overlap: int | None = None,
        half: bool | None = False,
        batch: int = 1,
        compile: bool = False,
        threads: int | None = None,
    ):
        self.backend = make_backend(model, backend, device, half=half, compile=compile, threads=threads)
        self.align = self.backend.cell
        min_tile = max(MIN_TILE, self.align)
        if tile is not None and tile != 0 and tile < min_tile:  # 1-px tiles ran, and gave noise
            raise KdsharpError(
                f"tile={tile}: use tile=0 (whole images) or tiles of at least {min_tile} px (tile={min_tile})",
                params=["tile"],
            )
        tile = tile or None  # 0: off
        if tile_overlap is None:
            tile_overlap = max(32, 8 * self.align)
            if tile is not None and tile <= tile_overlap:
                tile_overlap = max(0, tile // 4)
        if tile_overlap < 0:  # tiles would leave gaps between them: black stripes in the output
            raise KdsharpError(
                f"tile_overlap must be 0 or more (got tile_overlap={tile_overlap})", params=["tile_overlap"]
            )
        if tile is not None and tile <= tile_overlap:
            raise KdsharpError(
                f"tile={tile} must be larger than tile_overlap={tile_overlap}", params=["tile", "tile_overlap"]
            )
        if batch < 1:
            raise KdsharpError(f"batch must be at least 1 (got batch={batch})", params=["batch"])
        if threads is not None and threads < 1:
            raise KdsharpError(f"threads must be at least 1 (got threads={threads})", params=["threads"])
        self.threads = threads
        self.device = self.backend.device
        self.tile = tile
        self.tile_overlap = int(tile_overlap)
        self.batch = int(batch)
        self.model_name = model if isinstance(model, (str, Path)) else type(model).__name__

    def describe(self) -> str:
        """One line: model and backend, e.g. ``student on torch cpu fp32``."""
        return f"{self.model_name} on {self.backend.describe()}"

    # -- tensors ----------------------------------------------------------------------------
    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) or (3,H,W) float RGB in [0,1] -> same shape, float32 in [0,1], same device."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():  # uint8 0..255 would come out all white
            kind = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise KdsharpError(
                f"expected a float tensor in [0,1], got {kind} (use x.float() / 255 for 8-bit values; "
                "image() takes uint8/uint16 arrays)"
            )
        squeeze = x.dim() == 3
        if squeeze:
            x = x[None]
        if x.dim() != 4 or x.shape[1] != 3:
            raise KdsharpError(f"expected a (N,3,H,W) or (3,H,W) RGB tensor, got shape {tuple(x.shape)}")
        if x.shape[2] == 0 or x.shape[3] == 0:
            raise KdsharpError(f"expected a tensor of at least 1x1 pixels, got shape {tuple(x.shape)}")
        fn = cast(Callable[[torch.Tensor], torch.Tensor], self.backend)  # a backend maps tensors to tensors
        with self._threads():
            y, self.tile = forward_any_size(fn, x.float(), self.tile, self.tile_overlap, align=self.align)
        y = y.clamp(0, 1)  # out of place: an identity model returns its input
        return y[0] if squeeze else y

    def _threads(self) -> contextlib.AbstractContextManager:
        """``threads`` for one call, restored after; nothing inside a block that set a count already."""
        if not self.threads or threads_scoped():
            return contextlib.nullcontext()
        return torch_threads(self.threads)

    def warm_up(self, height: int, width: int) -> None:
        """Compile a ``torch.compile``-d model for ``height`` x ``width`` frames now (it compiles on
        its first call, for seconds), so that a video's frames, and its timings, do not wait on it."""
        if getattr(self.backend, "compiled", False):  # the frames' own layout: a new one would recompile
            self.frames(torch.zeros((self.batch, height, width, 3), dtype=torch.uint8))

    def frames(self, batch: torch.Tensor) -> torch.Tensor:
        """(N,H,W,3) uint8 RGB frames (any device, pinned CPU ideal) -> (N,H,W,3) uint8 RGB on the CPU."""
        if batch.device.type == "cpu" and (self.backend.name != "torch" or self.device.type == "cpu"):
            return self._frames_cpu(batch)
        if self.backend.name == "torch":
            batch = batch.to(self.device, non_blocking=True)
        x = batch.permute(0, 3, 1, 2).float().div_(255.0)
        y = self.tensor(x)
        return y.mul_(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu()

    def _frames_cpu(self, batch: torch.Tensor) -> torch.Tensor:
        """:meth:`frames` on the CPU, the same bytes: uint8 -> float in one numpy pass and back with
        :func:`~kdsharp.io.images.from_tensor` (which clamps), the frames' channels-last memory kept."""
        u = np.ascontiguousarray(batch.numpy())
        x = torch.from_numpy(np.divide(u, np.float32(255.0), dtype=np.float32)).permute(0, 3, 1, 2)
        fn = cast(Callable[[torch.Tensor], torch.Tensor], self.backend)
        with self._threads():
            y, self.tile = forward_any_size(fn, x, self.tile, self.tile_overlap, align=self.align)
        y = y.contiguous(memory_format=torch.channels_last)  # (N,H,W,3) memory; a no-op for most models
        frames = [from_tensor(y[n]) for n in range(len(y))]
        return torch.from_numpy(frames[0][None] if len(frames) == 1 else np.stack(frames))  # (one frame: no copy)

    # -- arrays -----------------------------------------------------------------------------
    def image(self, img: np.ndarray) -> np.ndarray:
        """Sharpen an OpenCV-layout image: uint8/uint16, HxW grey, HxWx3 BGR or HxWx4 BGRA.

        Returns the same dtype and layout: grey stays grey (processed as 3 equal channels, written
        back as BT.601 luma; HxWx1 stays HxWx1), 16-bit is processed in float and returned 16-bit,
        alpha is passed through untouched.
        """
        if not isinstance(img, np.ndarray) or img.dtype not in (np.uint8, np.uint16):
            raise KdsharpError(f"expected a uint8 or uint16 image array, got {getattr(img, 'dtype', type(img))}")
        if img.ndim == 3 and img.shape[2] == 1:
            return self.image(img[:, :, 0])[:, :, None]
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
            raise KdsharpError(f"expected HxW, HxWx3 or HxWx4 image, got shape {img.shape}")
        if img.shape[0] == 0 or img.shape[1] == 0:
            raise KdsharpError(f"expected an image of at least 1x1 pixels, got shape {img.shape}")
        grey = img.ndim == 2
        bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if grey else img[:, :, :3]
        out = from_tensor(self.tensor(to_tensor(bgr, bgr=True)), dtype=img.dtype, bgr=True)
        if grey:
            return cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
        if img.shape[2] == 4:
            return np.dstack([out, img[:, :, 3]])
        return out

    # -- files ------------------------------------------------------------------------------
    def file(
        self,
        src: str | Path,
        dst: str | Path,
        overwrite: bool = False,
        crf: int | None = None,
        codec: str | None = None,
        progress=None,
        **video,
    ):
        """Sharpen one image or video file into ``dst`` (atomic). Returns ``dst`` or a ``VideoStats``.

        Images keep their EXIF (orientation reset: written upright) and dpi in JPEG and PNG
        outputs, and their dpi in TIFF.
        """
        check_target(dst, overwrite, src=src)
        return self.process(src, dst, crf=crf, codec=codec, progress=progress, **video)

    def process(
        self, src: str | Path, dst: str | Path, crf: int | None = None, codec: str | None = None, progress=None, **video
    ):
        """:meth:`file` without the target checks (for a plan already checked by
        :func:`kdsharp.io.atomic.check_target`); the write is still atomic."""
        src, dst = Path(src), Path(dst)
        if is_video_file(src):
            return self._video(src, dst, crf=crf, codec=codec, progress=progress, **video)
        if not is_image_file(src):
            raise InputError(
                src,
                f"unsupported file type '{src.suffix}'",
                "use an image (" + ", ".join(IMAGE_EXTS) + ") or a video (" + ", ".join(VIDEO_EXTS) + ")",
            )
        if not is_image_file(dst):
            raise OutputError(dst, f"unsupported image extension '{dst.suffix}'", "use one of " + ", ".join(IMAGE_EXTS))
        img, meta = read_image_meta(src)
        write_image(dst, self.image(img), meta=meta)  # EXIF and dpi carried over
        return dst

    def video(
        self,
        src: str | Path,
        dst: str | Path,
        crf: int | None = None,
        codec: str | None = None,
        overwrite: bool = False,
        progress=None,
        preset: str | None = None,
        reuse: bool = False,
        path: str = "auto",
        max_frames: int | None = None,
        reuse_tolerance: int | None = None,
    ):
        """Sharpen a video; audio is copied untouched. Returns :class:`kdsharp.infer.video.VideoStats`.

        ``preset``/``crf``: x264 speed and quality (default per resolution); ``reuse``: temporal
        reuse of unchanged tiles (luma models and convolutional U-Nets: ``fast``, ``student``), counting a
        tile unchanged within ``reuse_tolerance`` levels (0: exact; None: :data:`~kdsharp.infer.frames.REUSE_TOLERANCE`;
        :class:`~kdsharp.infer.frames.TileReuse`); ``path``: 'auto', 'yuv' or 'rgb' (see
        :func:`kdsharp.infer.video.sharpen_video`).
        """
        check_target(dst, overwrite, src=src)
        if note := check_encoder_options([Path(dst)], codec, preset, crf):  # as paths() does, before any work
            warn(note)
        return self._video(
            Path(src),
            Path(dst),
            crf=crf,
            codec=codec,
            progress=progress,
            preset=preset,
            reuse=reuse,
            path=path,
            max_frames=max_frames,
            reuse_tolerance=reuse_tolerance,
        )

    def _video(
        self,
        src: Path,
        dst: Path,
        crf: int | None = None,
        codec: str | None = None,
        progress=None,
        preset: str | None = None,
        reuse: bool = False,
        path: str = "auto",
        max_frames: int | None = None,
        reuse_tolerance: int | None = None,
    ):
        from kdsharp.infer.video import sharpen_video

        return sharpen_video(
            self,
            src,
            dst,
            crf=crf,
            codec=codec,
            batch=self.batch,
            progress=progress,
            preset=preset,
            threads=self.threads,
            reuse=reuse,
            path=path,
            max_frames=max_frames,
            reuse_tolerance=reuse_tolerance,
        )

    def paths(
        self,
        inputs,
        output: str | Path,
        overwrite: bool = False,
        crf: int | None = None,
        codec: str | None = None,
        **video,
    ):
        """Sharpen files and folders (trees mirrored) into ``output``; returns a ``BatchResult``.

        A bad file (corrupt, or an unsupported format such as GIF) is reported and skipped; the
        others are still processed.
        """
        rejected: list = []
        plan = plan_outputs(inputs if isinstance(inputs, (list, tuple)) else [inputs], output, overwrite, rejected)
        check_video_options(plan, crf, codec, video.get("preset"))
        return run_plan(self, plan, crf=crf, codec=codec, rejected=rejected, **video)


def sharpen_paths(
    inputs,
    output: str | Path,
    *,
    model="student",
    device: str = "auto",
    backend: str = "torch",
    tile: int | None = None,
    tile_overlap: int | None = None,
    half: bool | None = False,
    batch: int = 1,
    compile: bool = False,
    crf: int | None = None,
    codec: str | None = None,
    overwrite: bool = False,
    threads: int | None = None,
    preset: str | None = None,
    reuse: bool = False,
    video_path: str = "auto",
    on_error: ErrorHandler = print_error,
    reuse_tolerance: int | None = None,
) -> BatchResult:
    """Check inputs and outputs, load the model, sharpen everything: the ``kdsharp sharpen`` command.

    A file that fails is passed to ``on_error`` (default: print its one-line message) and the others go on.
    """
    rejected: list[tuple[Path, str]] = []
    plan = plan_outputs(inputs, output, overwrite, rejected)  # before loading the model: bad paths fail fast
    if not plan:  # nothing to sharpen: do not load the model
        return _reject(BatchResult(), rejected)
    check_video_options(plan, crf, codec, preset)  # before loading the model: a bad option starts nothing
    sharpener = Sharpener(
        model,
        device=device,
        backend=backend,
        tile=tile,
        tile_overlap=tile_overlap,
        half=half,
        batch=batch,
        compile=compile,
        threads=threads,
    )
    console.print(f"sharpening {len(plan)} file{'s' * (len(plan) != 1)} with {sharpener.describe()}")
    return run_plan(
        sharpener,
        plan,
        crf=crf,
        codec=codec,
        rejected=rejected,
        on_error=on_error,
        preset=preset,
        reuse=reuse,
        path=video_path,
        reuse_tolerance=reuse_tolerance,
    )
