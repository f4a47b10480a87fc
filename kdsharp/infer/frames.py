"""Frame processors for the video pipeline and ``live``: decoded ``av.VideoFrame`` in, frame to encode out.

Two paths:

* :class:`LumaFrames` -- **YUV-native**, for luma models (``fast``: a ``FastNet`` with ``luma=True``
  that predicts a luma residual dY and adds it to R, G and B alike, i.e. YCbCr -> (Y + dY, Cb, Cr)).
  It feeds the decoder's Y plane to the network, writes Y + dY into a new frame of the same pixel
  format and copies the chroma planes untouched: no RGB round trip, no chroma resampling, about a
  third of the pixels of the RGB path through the elementwise work. The output equals the RGB
  path's within rounding (``tests/test_infer_frames.py``); differences: chroma is exact here (the
  RGB path resamples it twice), a colour pushed out of the RGB gamut is not clipped per channel,
  and for BT.709 sources the network sees the 709 luma (the RGB path computes BT.601 luma of the
  709-decoded RGB).
  With ``reuse`` it also skips unchanged tiles (:class:`TileReuse`). A model wrapped in
  :class:`~kdsharp.models.wrappers.ChromaFromLuma` (the shipped ``fast``) gets its chroma step on
  the chroma planes instead of copying them (:class:`ChromaStep`; 4:2:0 planes at their own half
  resolution, where the wrapper fits anyway).
* :class:`RgbFrames` -- every other model/backend: frame -> RGB (colour-accurate, the frame's own
  matrix and range) -> ``sharpener.frames`` -> RGB frame (converted to the encoder's format by the
  writer). An RGB model that refits its own chroma (``student``: a ``ChromaFromLuma`` fitted on its
  output) runs without the step there, and :meth:`RgbFrames.finish` runs it on the planes of the
  frame the writer converted (:class:`ChromaStep`), a fifth of its cost on the RGB frame.

Limited ("TV", 16-235) and full ("PC", 0-255) range are both handled: the network works on luma
in [0, 1] as in training, and its residual is scaled back by the range's luma span (219 or 255).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdsharp.io.video import frame_to_rgb
from kdsharp.models.wrappers import ChromaFromLuma, deferred_chroma_step, unwrap
from kdsharp.ops.chroma import chroma_from_luma_planes

# 8-bit planar formats whose plane 0 is luma, and whether each is full range by definition
LUMA_FORMATS = {
    "yuv420p": False,
    "yuvj420p": True,
    "yuv422p": False,
    "yuvj422p": True,
    "yuv444p": False,
    "yuvj444p": True,
}
CHROMA_FORMATS = {k: v for k, v in LUMA_FORMATS.items() if k.endswith("420p")}  # models with a chroma branch
TILE = 24  # temporal reuse: pixels per tile side (a multiple of 4; measured best of 16/24/32 on a talking head)
# temporal reuse for an RGB U-Net (RgbNet): tile side (rounded up to the model's pad multiple) and the
# context around recomputed tiles, pixels (scripts/reuse_quality.py measured the cost)
RGB_TILE = 32
RGB_MARGIN = 64
# temporal reuse runs the whole frame when its crops (margins included) would cover more than this share of it
WHOLE_FRAME_SHARE = 0.85
# temporal reuse's default tolerance (luma levels, TileReuse): a camera's noise and a codec's flicker
# count as unchanged (docs/bench/reuse_camera.json); 0 is exact
REUSE_TOLERANCE = 3


def plane_view(frame: av.VideoFrame, index: int) -> np.ndarray:
    """Plane ``index`` of ``frame`` as a uint8 (height, width) numpy view (no copy; strided by line size)."""
    p = frame.planes[index]
    return np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width]


def is_full_range(frame: av.VideoFrame) -> bool:
    """True for full-range ("PC", JPEG) luma: yuvj* formats or a frame tagged color_range 2."""
    return LUMA_FORMATS.get(frame.format.name, False) or int(frame.color_range) == 2


def is_luma_net(model: Any) -> bool:
    """True for a luma model that runs on a Y plane (``luma=True`` with ``forward_cells``: ``fast``,
    the luma U-Nets; with a chroma branch too, e.g. ``fast_ycc``), bare or in a
    :class:`~kdsharp.models.wrappers.ChromaFromLuma` wrapper."""
    if isinstance(model, ChromaFromLuma):
        model = model.model
    return bool(getattr(model, "luma", False)) and callable(getattr(model, "forward_cells", None))


class ChromaStep:
    """A :class:`~kdsharp.models.wrappers.ChromaFromLuma` wrapper's chroma step on a frame's planes:
    uint8 Y before and after the model (H, W) and the chroma planes (each (h, w): 4:2:0, 4:2:2 or
    4:4:4) -> the new chroma planes. Luma is area-averaged to the planes' size, and the fit runs at
    the wrapper's resolution (half: 4:2:0 planes as they are, 4:4:4 planes halved), so it sees
    what the RGB path's fit sees; 1080p 4:2:0 on one core: ~8 ms."""

    def __init__(self, wrapper: ChromaFromLuma):
        self.radius, self.eps = wrapper.radius, wrapper.eps * 255.0**2  # eps in 8-bit levels squared
        self.scale = wrapper.scale
        self.last: list[np.ndarray] | None = None  # with ``rows``: the chroma planes this step last gave

    def __call__(
        self,
        y: np.ndarray,
        new_y: np.ndarray,
        planes: list[np.ndarray],
        out: list[np.ndarray] | None = None,
        rows: np.ndarray | None = None,
        keep: bool = False,
    ) -> list[np.ndarray]:
        """With temporal reuse (``keep``: this step keeps its output for the next frame), ``rows``:
        bool (H,) luma rows that reuse recomputed (:attr:`TileReuse.rows_done`; None: all); the
        chroma rows they reach are computed, the others keep this step's last output, as the luma
        tiles there keep theirs."""
        import cv2

        h, w = planes[0].shape
        scale = max(1, round(self.scale * w / y.shape[1]))  # what is left to shrink after the planes' subsampling
        fy = max(1, round(y.shape[0] / h))  # luma rows per chroma row (2 for 4:2:0, odd heights too)
        if (h, w) != y.shape:
            same = new_y is y  # a guided filter (an RGB model's own output): one luma to shrink
            y = cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA)
            new_y = y if same else cv2.resize(new_y, (w, h), interpolation=cv2.INTER_AREA)
        last = self.last
        self.last = None
        partial = keep and rows is not None and scale == 1 and last is not None and last[0].shape == (h, w)
        if not partial:
            result = chroma_from_luma_planes(y, planes, new_y, self.radius, self.eps, scale=scale, out=out)
        else:
            assert rows is not None and last is not None
            result = list(out) if out is not None else [np.empty_like(p) for p in planes]
            need = np.zeros(h, bool)
            done = np.flatnonzero(rows[: h * fy])
            need[np.unique(done // fy)] = True
            reach = 2 * self.radius  # a chroma row depends on the rows within the fit's two box filters
            if need.any() and reach:
                need = np.convolve(need, np.ones(2 * reach + 1), mode="same") > 0
            for o, old in zip(result, last, strict=True):
                o[~need] = old[~need]
            for r0, r1 in _runs(need):
                a0, a1 = max(0, r0 - reach), min(h, r1 + reach)  # with the rows their fit reads
                part = chroma_from_luma_planes(
                    y[a0:a1], [p[a0:a1] for p in planes], new_y[a0:a1], self.radius, self.eps
                )
                for o, q in zip(result, part, strict=True):
                    o[r0:r1] = q[r0 - a0 : r1 - a0]
        if keep:
            self.last = [np.array(p, copy=True) for p in result]
        return result


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Start/stop index pairs of the runs of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def luma_model(sharpener) -> nn.Module | None:
    """The luma model (:func:`is_luma_net`) that ``sharpener`` runs with torch untiled, else None (RGB path)."""
    backend = getattr(sharpener, "backend", None)
    if backend is None or backend.name != "torch" or getattr(sharpener, "tile", None) is not None:
        return None
    model = backend.model
    return model if is_luma_net(model) else None


def yuv_formats(model: nn.Module) -> dict[str, bool]:
    """The frame formats the YUV-native path takes for ``model``: 8-bit planar YUV, 4:2:0 only for a
    model with a chroma branch (it works on the 1/2-resolution chroma planes)."""
    return CHROMA_FORMATS if getattr(model, "chroma", 0) else LUMA_FORMATS


def reach(model: nn.Module) -> int:
    """Pixels around an output pixel that can change it (receptive-field radius), for a ``FastNet``.

    Every 3x3 conv at 1/``scale`` resolution widens the reach by one cell of ``scale`` pixels; the
    cell holding the pixel adds ``scale - 1``; a full-resolution ``detail`` stage adds one pixel per
    3x3 conv. Counted on the module, so it holds in training form too.
    """

    def n3(module: nn.Module) -> int:
        return sum(1 for m in module.modules() if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (3, 3))

    fast: Any = model
    detail = getattr(fast, "detail_stage", None)  # full-resolution 3x3 convs: one pixel each
    fine = n3(detail) if detail is not None else 0
    return int(fast.scale) * (n3(model) - fine + 1) - 1 + fine


def luma_range(full_range: bool) -> tuple[float, float, float]:
    """(black, span, white) of 8-bit luma: (0, 255, 255) full range, (16, 219, 235) limited."""
    return (0.0, 255.0, 255.0) if full_range else (16.0, 219.0, 235.0)


class FoldedPlainNet:
    """A deployed plain ``FastNet`` (head, body, tail; no chroma branch or full-resolution stage)
    on a padded uint8 Y plane, with the luma range folded into its first and last convs.

    uint8 (H, W), multiples of ``scale`` -> uint8 (H, W), the same values as :class:`LumaNet`'s
    general path within float rounding, in fewer passes over the frame: the cells are Y - ``black``
    (0-219 or 0-255, converted from uint8 in the space-to-depth copy), the head's weights are
    divided by ``span``, and the tail gives ``span`` * dY + ``black`` + 0.5 and is added onto the
    cells by oneDNN as it is computed, so that clamping and truncating give the rounded result.
    The cell buffer is kept between frames of one size (no fresh pages per frame).
    """

    def __init__(self, model: Any, black: float, span: float, white: float):
        self.model, self.scale = model, int(model.scale)
        self.black, self.white = black, white
        head, tail = model.head.deployed, model.tail.deployed
        with torch.no_grad():
            self.head_w = (head.weight / span).contiguous(memory_format=torch.channels_last)
            self.head_b = head.bias
            self.tail_w = (tail.weight * span).contiguous(memory_format=torch.channels_last)
            tb = tail.bias if tail.bias is not None else tail.weight.new_zeros(tail.out_channels)
            self.tail_b = tb * span + (black + 0.5)
        self.head_act = model.head.act
        self._cells: torch.Tensor | None = None
        self._fused = torch.backends.mkldnn.is_available()  # oneDNN adds the tail onto the cells

    @staticmethod
    def applies(model: Any, device: torch.device, dtype: torch.dtype) -> bool:
        """True for a deployed luma ``FastNet`` without extra branches, in float32 on the CPU."""
        from kdsharp.models.fast import FastNet

        return (
            isinstance(model, FastNet)
            and model.luma
            and model.is_deployed
            and not model.chroma
            and not model.detail
            and isinstance(model.tail.act, nn.Identity)
            and device.type == "cpu"
            and dtype == torch.float32
        )

    def _add_tail(self, f: torch.Tensor, x: torch.Tensor) -> None:
        """``x`` (cells, channels-last) += tail(``f``), in place: fused into the conv where oneDNN can."""
        if self._fused:
            try:
                conv_add = torch.ops.mkldnn._convolution_pointwise_.binary
                conv_add(x, f, self.tail_w, self.tail_b, [1, 1], [1, 1], [1, 1], 1, "add", 1.0, None, [], None)
                return
            except (AttributeError, RuntimeError):  # another torch build: the same sum in two passes
                self._fused = False
        x.add_(F.conv2d(f, self.tail_w, self.tail_b, padding=1))

    @torch.inference_mode()
    def __call__(self, yp: np.ndarray) -> np.ndarray:
        s = self.scale
        h, w = yp.shape
        shape = (1, h // s, w // s, s * s)
        cells = self._cells
        if cells is None or tuple(cells.shape) != shape:
            cells = self._cells = torch.empty(shape, dtype=torch.float32)
        y8 = torch.from_numpy(yp).view(1, h // s, s, w // s, s).permute(0, 1, 3, 2, 4)
        torch.sub(y8, self.black, out=cells.view(1, h // s, w // s, s, s))  # space-to-depth, to float, - black
        x = cells.permute(0, 3, 1, 2)  # (1, s*s, H/s, W/s) channels-last view
        f = self.model.body(self.head_act(F.conv2d(x, self.head_w, self.head_b, padding=1)))
        self._add_tail(f, x)  # cells = Y + span * dY + 0.5
        cells.clamp_(self.black, self.white)
        res = np.empty((h, w), np.uint8)
        torch.from_numpy(res).view(h // s, s, w // s, s).permute(0, 2, 1, 3).copy_(cells[0].view(h // s, w // s, s, s))
        return res


class LumaNet:
    """A luma model run on a Y plane: uint8 (H, W) -> uint8 (H, W) = round(Y + span * dY).

    Same computation as the model's ``forward`` (reflect/replicate pad to its ``pad_multiple``,
    space-to-depth by ``scale``, ``forward_cells``, depth-to-space), with Y normalised to [0, 1] by the frame's
    range instead of computed from RGB: the model's ``luma_unshuffle`` conv (RGB -> Y +
    pixel-unshuffle) becomes a plain pixel-unshuffle of the Y plane. The sum is rounded and
    clamped to the range's legal luma (16-235 limited, 0-255 full), as the RGB path's clamp to
    [0, 1] does.
    """

    def __init__(self, model: Any, device: torch.device | str = "cpu"):
        model = unwrap(model)  # a ChromaFromLuma wrapper's chroma step is LumaFrames' (ChromaStep), not the net's
        self.model = model  # luma=True: scale, pad_multiple, forward_cells
        self.device = torch.device(device)
        self.scale = int(self.model.scale)
        self.multiple = int(getattr(model, "pad_multiple", self.scale))
        self.chroma = int(getattr(model, "chroma", 0))
        self.dtype = next(model.parameters()).dtype
        self.detail = getattr(model, "detail_stage", None)  # LumaDetail: a full-resolution stage, or None
        self._folded: dict[bool, FoldedPlainNet] = {}  # by full range: the plain net with its range folded in
        self._plain = FoldedPlainNet.applies(model, self.device, self.dtype)

    def pad(self, y: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """``y`` padded bottom/right to the model's ``pad_multiple`` (or to ``size``) as ``pad_to_multiple`` does."""
        h, w = y.shape
        s = self.multiple
        ph, pw = ((s - h % s) % s, (s - w % s) % s) if size is None else (size[0] - h, size[1] - w)
        if ph == 0 and pw == 0:
            return np.ascontiguousarray(y)
        if ph < h and pw < w:
            return np.pad(y, ((0, ph), (0, pw)), mode="reflect")
        return np.pad(y, ((0, ph), (0, pw)), mode="edge")

    @torch.inference_mode()
    def run(self, yp: np.ndarray, full_range: bool) -> np.ndarray:
        """Padded uint8 Y (H, W multiples of ``pad_multiple``) -> uint8 Y + dY, same shape (a new array)."""
        return self._run(yp, full_range)[0]

    def _run(self, yp: np.ndarray, full_range: bool) -> tuple[np.ndarray, torch.Tensor | None]:
        """(new Y, the model's luma input cells (1, s*s, H/s, W/s) on its device; None on the folded path)."""
        lo, span, hi = luma_range(full_range)
        if self._plain:
            folded = self._folded.get(full_range)
            if folded is None:
                folded = self._folded[full_range] = FoldedPlainNet(self.model, lo, span, hi)
            return folded(yp), None
        s = self.scale
        h, w = yp.shape
        y8 = torch.from_numpy(yp).view(1, h // s, s, w // s, s).permute(0, 1, 3, 2, 4)  # (1,h,w,s,s) view
        cells = torch.empty((1, h // s, w // s, s, s), dtype=torch.float32)
        cells.copy_(y8)  # space-to-depth + uint8 -> float in one pass; channels-last layout for the convs
        cells.sub_(lo).mul_(1.0 / span)  # to [0, 1], in place (no second full-size tensor)
        src = cells.view(1, h // s, w // s, s * s).permute(0, 3, 1, 2).to(self.device, self.dtype, non_blocking=True)
        d = self.model.forward_cells(src)  # (1, s*s, h/s, w/s): the luma residual, still space-to-depth
        d = d.float().permute(0, 2, 3, 1).to("cpu").reshape(1, h // s, w // s, s, s)
        if d.untyped_storage().data_ptr() == cells.untyped_storage().data_ptr():
            d = d.clone()  # a model that hands back its input: the in-place sum below must not alias it
        if self.detail is not None:
            return self._finish_detail(self.detail, yp, d, lo, span, hi), src
        out = d.add_(cells).mul_(span).add_(lo + 0.5).clamp_(lo, hi)  # in place; + 0.5 then truncation = round
        res = np.empty((h, w), np.uint8)
        torch.from_numpy(res).view(h // s, s, w // s, s).permute(0, 2, 1, 3).copy_(out[0])
        return res, src

    def _finish_detail(
        self, stage: Any, yp: np.ndarray, d: torch.Tensor, lo: float, span: float, hi: float
    ) -> np.ndarray:
        """Padded uint8 Y and the net's residual cells (1, H/s, W/s, s, s) -> uint8 Y after the
        model's full-resolution ``stage`` (its ``detail_stage``), in plane layout: Y0 = input, Yc = Y0 + residual,
        out = Yc + stage(Y0, Yc)."""
        s = self.scale
        h, w = yp.shape
        y0 = torch.from_numpy(yp).float().sub_(lo).mul_(1.0 / span)
        yc = torch.empty((h, w), dtype=torch.float32)
        yc.view(h // s, s, w // s, s).permute(0, 2, 1, 3).copy_(d[0])  # depth-to-space
        yc += y0
        dev, dt = self.device, self.dtype
        dy = stage(y0[None, None].to(dev, dt), yc[None, None].to(dev, dt))[0, 0].float().to("cpu")
        out = yc.add_(dy).mul_(span).add_(lo + 0.5).clamp_(lo, hi)  # + 0.5 then truncation = round
        return out.to(torch.uint8).numpy()

    def _run_chroma(self, src: torch.Tensor, cb: np.ndarray, cr: np.ndarray, full_range: bool) -> np.ndarray:
        """Padded uint8 Cb, Cr (H/2, W/2) and the luma cells -> uint8 (2, H/2, W/2) Cb, Cr + their residual."""
        half = self.scale // 2
        lo, span, hi = (0.0, 255.0, 255.0) if full_range else (16.0, 224.0, 240.0)
        c = torch.from_numpy(np.stack([cb, cr])).float()[None]  # (1, 2, H/2, W/2)
        cells = c.sub(lo).mul(1.0 / span)  # [0, 1] centred on 0.5, as rgb_to_ycbcr gives
        cells = F.pixel_unshuffle(cells, half) if half > 1 else cells
        d = self.model.forward_chroma_cells(src, cells.to(self.device, self.dtype, non_blocking=True))
        d = d.float().to("cpu")
        d = F.pixel_shuffle(d, half) if half > 1 else d
        return torch.add(c, d, alpha=span).add_(0.5).clamp_(lo, hi)[0].to(torch.uint8).numpy()

    def __call__(self, y: np.ndarray, full_range: bool) -> np.ndarray:
        """uint8 (H, W) Y of any size -> uint8 (H, W) sharpened Y."""
        h, w = y.shape
        return self.run(self.pad(y), full_range)[:h, :w]

    @torch.inference_mode()
    def ycc(
        self, y: np.ndarray, cb: np.ndarray, cr: np.ndarray, full_range: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A model with a chroma branch on a 4:2:0 frame: uint8 Y (H, W), Cb and Cr (ceil(H/2),
        ceil(W/2)) -> the three planes restored, same shapes."""
        h, w = y.shape
        yp = self.pad(y)
        new_y, src = self._run(yp, full_range)
        assert src is not None  # a chroma model never takes the folded path
        size = (yp.shape[0] // 2, yp.shape[1] // 2)
        new_c = self._run_chroma(src, self.pad(cb, size), self.pad(cr, size), full_range)
        ch, cw = cb.shape
        return new_y[:h, :w], new_c[0, :ch, :cw], new_c[1, :ch, :cw]


@dataclass
class ReuseStats:
    """How much of the picture temporal reuse skipped: ``computed`` / ``total`` tiles."""

    computed: int = 0
    total: int = 0
    frames_skipped: int = 0  # frames identical to the previous one (nothing computed)

    @property
    def skipped_fraction(self) -> float:
        return 1.0 - self.computed / self.total if self.total else 0.0


def resolve_tolerance(tolerance: int | None) -> int:
    """``tolerance`` (luma levels), or :data:`REUSE_TOLERANCE` for None; a value outside 0-255 is refused."""
    if tolerance is None:
        return REUSE_TOLERANCE
    if not 0 <= int(tolerance) <= 255:
        from kdsharp.errors import KdsharpError

        raise KdsharpError(f"reuse tolerance {tolerance} is out of range: give 0-255 luma levels (0: exact)")
    return int(tolerance)


def reuse_text(fraction: float | None, tolerance: int = 0) -> str:
    """``', 74% tiles reused'`` (``' within 3 levels'`` with a tolerance) for a summary line; '' without reuse."""
    if fraction is None:
        return ""
    return f", {100 * fraction:.0f}% tiles reused" + (f" within {tolerance} levels" if tolerance else "")


def skipped_fraction(processors) -> float | None:
    """Share of tiles temporal reuse skipped over ``processors`` (one per worker) together; None
    when none of them reuses."""
    stats = [p.reuse.stats for p in processors if getattr(p, "reuse", None) is not None]
    if not stats:
        return None
    total = sum(r.total for r in stats)
    return 1.0 - sum(r.computed for r in stats) / total if total else 0.0


class TileReuse:
    """Temporal reuse for a :class:`LumaNet` (or an :class:`RgbNet`): recompute only tiles whose
    neighbourhood changed.

    The padded Y plane (an RGB frame for an :class:`RgbNet`: uint8 (H, W, 3), every channel
    compared) is cut into ``tile`` x ``tile`` tiles and compared with the input each tile was last
    computed from. A tile whose input and whose neighbours' inputs (up to the network's reach, at
    most one tile) did not change keeps its last output; the others are recomputed on their
    bounding box plus a margin of at least the reach, so every recomputed pixel sees the same
    inputs as in a whole-frame pass. ``margin`` (pixels) overrides the reach: a U-Net's reach is
    hundreds of pixels, most of which hardly moves its output, so an :class:`RgbNet` gets
    :data:`RGB_MARGIN` and its recomputed tiles differ from a whole-frame pass by a fraction of a
    level (:func:`rgb_tile_reuse`).

    ``tolerance`` (luma levels, 0-255): 0 (exact) counts a tile as unchanged only while every pixel
    equals its stored input, so the output is the whole-frame pass's, bit for bit. Above 0 a tile
    counts as unchanged while no ``scale`` x ``scale`` cell (the network's own cells, 4 x 4 pixels
    for ``fast``) changed its mean by more than ``tolerance`` or its pixels by more than twice that
    on average: a camera's sensor noise or a codec's flicker, which change every pixel a little,
    average out there, while a moving edge, a blink or a texture shifted by a pixel (whose cell
    means may not change) change their cells by tens of levels. A kept tile then shows its last
    output plus its mean brightness change since (spread smoothly, so slow light changes follow),
    and every tile is recomputed at least every ``refresh`` frames (bands of tile rows in turn; 30: 1 s at
    30 fps, as an H.264 source's static areas improve over the frames after a key frame and an
    output kept longer falls behind them). The output is then no longer the whole-frame pass's:
    within its cost in PSNR (measured by ``scripts/reuse_quality.py``), not bit for bit.
    """

    def __init__(
        self,
        net: LumaNet | RgbNet,
        model: nn.Module | None = None,
        tile: int = TILE,
        tolerance: int = 0,
        refresh: int = 30,
        margin: int | None = None,
    ):
        self.net, self.tile = net, int(tile)
        if margin is not None:
            r = int(margin)
        elif model is not None:
            r = reach(unwrap(model))
        else:
            raise ValueError("give the model (its reach sets the margin) or a margin")
        #: pixels per side of the cells whose mean change a tolerance measures (the network's 4 x 4)
        self.cell = int(getattr(net, "cell", net.scale))
        if self.tile % net.scale or self.tile < net.scale or self.tile % self.cell:
            raise ValueError(f"tile {tile} must be a multiple of {net.scale} and {self.cell}")
        if not 0 <= int(tolerance) <= 255:
            raise ValueError(f"tolerance {tolerance} must be 0-255 luma levels")
        self.tolerance, self.refresh = int(tolerance), max(1, int(refresh))
        #: 8-bit steps of the compared frames per level of ``tolerance`` (RGB converted from limited-range
        #: video: 255/219, so that the tolerance counts the source's luma levels)
        self.level_scale = 1.0
        self.rings = -(-r // self.tile)  # tiles around a change that its reach touches
        self.margin = -(-r // net.scale) * net.scale  # reach rounded up to the space-to-depth grid
        self.band = max(1, -(-2 * self.margin // self.tile))  # tile rows refreshed together (_refreshed)
        self.ref_in: np.ndarray | None = None  # padded Y each tile was last computed from ...
        self.ref_out: np.ndarray | None = None  # ... and the output computed from it
        self._drift: np.ndarray = np.zeros((0, 0), np.int16)  # with a tolerance: each cell's mean change since then
        self.prev_range: bool | None = None
        self.frame_no = 0
        self.stats = ReuseStats()
        #: luma rows (of the unpadded plane) the last call recomputed: bool (H,), None for the whole frame
        self.rows_done: np.ndarray | None = None

    def _changed(self, yp: np.ndarray) -> np.ndarray:
        """(tiles_h, tiles_w) bool: tiles whose input changed (beyond ``tolerance``) since they were computed."""
        import cv2

        ref = self.ref_in
        assert ref is not None
        t = self.tile
        rgb = yp.ndim == 3
        if self.tolerance == 0:
            diff = (yp != ref).any(axis=2) if rgb else yp != ref
        else:  # each cell's mean change (sensor noise averages out) and mean absolute change (a texture moved)
            s = self.cell
            cells = (yp.shape[1] // s, yp.shape[0] // s)
            self._drift = cv2.resize(cv2.subtract(yp, ref, dtype=cv2.CV_16S), cells, interpolation=cv2.INTER_AREA)
            if rgb:  # tested on luma, where a camera's noise in R, G and B partly cancels, as on a Y plane,
                # in float against the Y plane's thresholds on its rounded cell means (> tol: >= tol + 0.5)
                # scaled to the source's levels
                key, key_ref = cv2.cvtColor(yp, cv2.COLOR_RGB2GRAY), cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY)
                drift = cv2.resize(cv2.subtract(key, key_ref, dtype=cv2.CV_32F), cells, interpolation=cv2.INTER_AREA)
                moved = cv2.resize(cv2.absdiff(key, key_ref).astype(np.float32), cells, interpolation=cv2.INTER_AREA)
                limit = (self.tolerance + 0.5) * self.level_scale
                limit_moved = (2 * self.tolerance + 0.5) * self.level_scale
            else:
                drift = self._drift
                moved = cv2.resize(cv2.absdiff(yp, ref), cells, interpolation=cv2.INTER_AREA)
                limit, limit_moved = self.tolerance, 2 * self.tolerance
            diff = (np.abs(drift) > limit) | (moved > limit_moved)
            t //= s
        rows = np.logical_or.reduceat(diff, np.arange(0, diff.shape[0], t), axis=0)
        tiles = np.logical_or.reduceat(rows, np.arange(0, diff.shape[1], t), axis=1)
        if rgb and self.tolerance:  # a colour change at the same luma: a tile's mean change in any channel
            colour = cv2.resize(self._drift, (tiles.shape[1], tiles.shape[0]), interpolation=cv2.INTER_AREA)
            tiles |= (np.abs(colour) > (self.tolerance + 0.5) * self.level_scale).any(axis=2)
        return tiles

    def _dilate(self, changed: np.ndarray) -> np.ndarray:
        need = changed.copy()
        for _ in range(self.rings):
            grown = need.copy()
            grown[1:] |= need[:-1]
            grown[:-1] |= need[1:]
            grown[:, 1:] |= grown[:, :-1].copy()
            grown[:, :-1] |= grown[:, 1:].copy()
            need = grown
        return need

    def _boxes(self, need: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Tile boxes ``(row0, row1, col0, col1)`` covering ``need``: one per connected group of tiles,
        or a single bounding box when that costs fewer pixels (each box adds its margin)."""
        import cv2

        if not need.any():
            return []
        n, _, boxes, _ = cv2.connectedComponentsWithStats(need.astype(np.uint8), connectivity=8)
        parts = [(int(y), int(y + h), int(x), int(x + w)) for x, y, w, h, _ in boxes[1:n]]
        ty, tx = np.flatnonzero(need.any(axis=1)), np.flatnonzero(need.any(axis=0))
        whole = (int(ty[0]), int(ty[-1]) + 1, int(tx[0]), int(tx[-1]) + 1)
        mt = 2 * self.margin / self.tile  # a box's margin, in tiles
        return parts if sum(_box_cost(b, mt) for b in parts) < _box_cost(whole, mt) else [whole]

    def _refreshed(self, need: np.ndarray) -> list[tuple[int, int, int, int]]:
        """With a tolerance: this frame's turn of tile rows to recompute although unchanged (rows
        ``need`` recomputes anyway left out), as boxes of their own. Rows take their turn in bands
        of :attr:`band` rows, so that a box's margin (computed, then thrown away) is paid once for
        a band at least twice its height; every tile is recomputed within ``refresh`` frames."""
        if not self.tolerance:
            return []
        g, turn = self.band, self.frame_no % self.refresh
        rows = np.array([(r // g * g) % self.refresh == turn and not need[r].all() for r in range(need.shape[0])])
        return [(r0, r1, 0, need.shape[1]) for r0, r1 in _runs(rows)]

    def _kept(self, yp: np.ndarray, full_range: bool) -> np.ndarray:
        """The whole padded plane as kept tiles give it: their last output, plus (with a tolerance)
        the change of each cell's mean since then, spread smoothly (brightness follows the frame;
        the detail and the noise stay those the output was computed with)."""
        import cv2

        assert self.ref_out is not None
        if not self.tolerance:
            return self.ref_out.copy()
        hp, wp = yp.shape[:2]
        k = self.tile // self.cell  # cells per tile side: a tile's mean change carries no noise to speak of
        ch, cw = self._drift.shape[:2]
        tiles = cv2.resize(self._drift, (-(-cw // k), -(-ch // k)), interpolation=cv2.INTER_AREA)
        drift = cv2.resize(tiles, (wp, hp), interpolation=cv2.INTER_LINEAR)
        out = cv2.add(self.ref_out, drift, dtype=cv2.CV_8U)  # saturating: 0-255 (per channel for RGB)
        lo, _, hi = luma_range(full_range)
        return out if full_range else cv2.min(cv2.max(out, lo), hi)

    def __call__(self, y: np.ndarray, full_range: bool) -> np.ndarray:
        """uint8 Y (H, W) (an :class:`RgbNet`'s: RGB (H, W, 3), ``full_range`` True) -> the model's
        output, same shape: kept tiles' last output, the others recomputed."""
        h, w = y.shape[:2]
        yp = self.net.pad(y)
        hp, wp = yp.shape[:2]
        t = self.tile
        n_tiles = (-(-hp // t)) * (-(-wp // t))
        self.stats.total += n_tiles
        ref, ref_out = self.ref_in, self.ref_out
        same = ref is not None and ref_out is not None and ref.shape == yp.shape and self.prev_range == full_range
        need = self._dilate(self._changed(yp)) if same else None  # tiles within the reach of a change recompute
        boxes = None
        if need is not None and not need.all():
            boxes = self._boxes(need) + self._refreshed(need)
            if _crop_pixels(boxes, t, self.margin, hp, wp) > WHOLE_FRAME_SHARE * hp * wp:
                boxes = None  # the crops with their margins would cost about a whole frame: run it whole
        if ref is None or ref_out is None or boxes is None:
            out = self.net.run(yp, full_range)
            self.stats.computed += n_tiles
            self.ref_in, self.ref_out = yp.copy(), out.copy()
            self.rows_done = None
        else:
            out = self._kept(yp, full_range)
            if not boxes:
                self.stats.frames_skipped += 1
            done = np.zeros_like(need)  # tiles computed this frame (boxes may overlap)
            for ty0, ty1, tx0, tx1 in boxes:
                y0, y1, x0, x1 = ty0 * t, min(hp, ty1 * t), tx0 * t, min(wp, tx1 * t)
                m = self.margin
                cy0, cy1, cx0, cx1 = max(0, y0 - m), min(hp, y1 + m), max(0, x0 - m), min(wp, x1 + m)
                crop = self.net.run(np.ascontiguousarray(yp[cy0:cy1, cx0:cx1]), full_range)
                out[y0:y1, x0:x1] = ref_out[y0:y1, x0:x1] = crop[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0]
                ref[y0:y1, x0:x1] = yp[y0:y1, x0:x1]
                done[ty0:ty1, tx0:tx1] = True
            self.stats.computed += int(done.sum())
            self.rows_done = np.repeat(done.any(axis=1), t)[:h]
        self.prev_range = full_range
        self.frame_no += 1
        return out[:h, :w]


def _crop_pixels(boxes: list[tuple[int, int, int, int]], tile: int, margin: int, height: int, width: int) -> int:
    """Pixels the crops of tile ``boxes`` (with their ``margin``, within the frame) run the model on."""
    total = 0
    for ty0, ty1, tx0, tx1 in boxes:
        rows = min(height, ty1 * tile + margin) - max(0, ty0 * tile - margin)
        total += rows * (min(width, tx1 * tile + margin) - max(0, tx0 * tile - margin))
    return total


def _box_cost(box: tuple[int, int, int, int], margin_tiles: float) -> float:
    """Tiles a box ``(row0, row1, col0, col1)`` computes, its margin on every side included."""
    return (box[1] - box[0] + margin_tiles) * (box[3] - box[2] + margin_tiles)


class RgbNet:
    """An RGB model that ``sharpener`` runs (torch), on uint8 RGB frames or crops, for
    :class:`TileReuse`: uint8 (H, W, 3), multiples of ``scale`` -> uint8 (H, W, 3), what
    ``sharpener.frames`` gives for them. ``scale``: the model's ``pad_multiple`` (16 for
    ``student``: crops start on its grid, so their cells are the whole frame's)."""

    cell = 4  # a tolerance measures the mean change of 4 x 4 cells, as for the luma models

    def __init__(self, sharpener, multiple: int):
        self.sharpener, self.scale = sharpener, int(multiple)

    def pad(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` padded bottom/right to a multiple of ``scale`` as the model's own padding does."""
        h, w = rgb.shape[:2]
        ph, pw = -h % self.scale, -w % self.scale
        if ph == 0 and pw == 0:
            return np.ascontiguousarray(rgb)
        return np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="reflect" if ph < h and pw < w else "edge")

    def run(self, rgb: np.ndarray, full_range: bool = True) -> np.ndarray:
        """uint8 RGB (H, W, 3) -> the model's uint8 RGB output (a new array; ``full_range`` unused)."""
        return self.sharpener.frames(torch.from_numpy(np.ascontiguousarray(rgb))[None])[0].numpy()


def rgb_reuse_multiple(sharpener) -> int | None:
    """The ``pad_multiple`` of the convolutional U-Net (``student``, ``student_nokd``, ``unet``;
    under test-time wrappers too) that ``sharpener`` runs with torch untiled and uncompiled, else
    None: the RGB models temporal reuse can serve (the teacher's attention spans the whole window it
    sees; a compiled model would compile again for crops of new sizes, 15-30 s each)."""
    from kdsharp.models.resunet import ResUNet
    from kdsharp.models.unet import UNet

    backend = getattr(sharpener, "backend", None)
    if backend is None or backend.name != "torch" or getattr(sharpener, "tile", None) is not None:
        return None
    if getattr(backend, "compiled", False):
        return None
    model = unwrap(backend.model)
    if isinstance(model, (ResUNet, UNet)) and not getattr(model, "luma", False):
        return int(model.pad_multiple)
    return None


def rgb_tile_reuse(sharpener, tolerance: int = 0) -> TileReuse | None:
    """Temporal reuse for the RGB U-Net ``sharpener`` runs (:func:`rgb_reuse_multiple`; else None):
    :class:`TileReuse` on an :class:`RgbNet`, :data:`RGB_TILE` pixel tiles on the model's grid,
    :data:`RGB_MARGIN` pixels of context, ``tolerance`` in 8-bit levels."""
    multiple = rgb_reuse_multiple(sharpener)
    if multiple is None:
        return None
    tile = -(-RGB_TILE // multiple) * multiple
    return TileReuse(RgbNet(sharpener, multiple), tile=tile, tolerance=tolerance, margin=RGB_MARGIN)


@dataclass
class StageTimes:
    """Seconds a processor spent converting colours and running the model (busy time)."""

    convert_s: float = 0.0
    model_s: float = 0.0


class LumaFrames:
    """YUV-native processor: Y plane through :class:`LumaNet` (optionally :class:`TileReuse`), chroma
    copied, or, for a model with a chroma branch, the 4:2:0 chroma planes through it too.

    One instance per worker thread (temporal reuse keeps the previous frame).
    """

    path = "yuv"

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu", reuse: bool = False, tolerance: int = 0):
        self.chroma_step = ChromaStep(model) if isinstance(model, ChromaFromLuma) else None
        model = unwrap(model)  # the luma net
        self.net = LumaNet(model, device)
        from kdsharp.models.fast import FastNet

        # reuse needs a short reach: a plain conv net (FastNet), not a U-Net; and luma only
        plain = isinstance(model, FastNet) and not self.net.chroma
        self.reuse = TileReuse(self.net, model, tolerance=tolerance) if reuse and plain else None
        self.times = StageTimes()

    def __call__(self, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        return [self.one(f) for f in frames]

    def finish(self, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        """Nothing left to do once the frames are in the encoder's format (:meth:`RgbFrames.finish`)."""
        return frames

    def one(self, frame: av.VideoFrame) -> av.VideoFrame:
        t0 = time.perf_counter()
        y = plane_view(frame, 0)
        full = is_full_range(frame)
        new_c: tuple[np.ndarray, ...] = ()
        if self.net.chroma:
            new_y, cb, cr = self.net.ycc(y, plane_view(frame, 1), plane_view(frame, 2), full)
            new_c = (cb, cr)
        else:
            new_y = self.reuse(y, full) if self.reuse is not None else self.net(y, full)
        # yuvj* (full range by definition) leaves as the same layout tagged full range: encoders and
        # swscale treat the j formats as deprecated and would re-range them
        out = av.VideoFrame(frame.width, frame.height, frame.format.name.replace("yuvj", "yuv"))
        t1 = time.perf_counter()
        if self.chroma_step is not None and not new_c:  # the chroma planes from the luma change, into the new frame
            n = len(frame.planes)
            self.chroma_step(
                y,
                new_y,
                [plane_view(frame, i) for i in range(1, n)],
                out=[plane_view(out, i) for i in range(1, n)],
                rows=self.reuse.rows_done if self.reuse is not None else None,
                keep=self.reuse is not None,
            )
        t2 = time.perf_counter()
        plane_view(out, 0)[...] = new_y
        for i in range(1, len(frame.planes)):
            if new_c:
                plane_view(out, i)[...] = new_c[i - 1]
            elif self.chroma_step is None:
                plane_view(out, i)[...] = plane_view(frame, i)
        copy_frame_props(frame, out)
        if full:
            out.color_range = 2
        t3 = time.perf_counter()
        self.times.model_s += (t1 - t0) + (t2 - t1)
        self.times.convert_s += t3 - t2
        return out


def own_chroma_wrapper(sharpener) -> ChromaFromLuma | None:
    """The :class:`~kdsharp.models.wrappers.ChromaFromLuma` that ``sharpener`` runs with torch on the
    CPU (compiled too: the deferral is read at run time) and that fits on the model's own output (an
    RGB model's: ``student``), else None (on a GPU the wrapper's torch step costs next to nothing)."""
    backend = getattr(sharpener, "backend", None)
    if backend is None or backend.name != "torch" or backend.device.type != "cpu":
        return None
    model = backend.model
    if isinstance(model, ChromaFromLuma) and not model.from_input and model.radius > 0:
        return model
    return None


class RgbFrames:
    """RGB processor for any model/backend: colour-accurate frame -> RGB -> ``sharpener.frames`` -> RGB frame.

    With ``out_format`` (the encoder's pixel format) 8-bit planar YUV, the chroma step of an RGB model
    that refits its own chroma (:func:`own_chroma_wrapper`: ``student`` on the CPU) is deferred from
    the RGB frame to the encoder's planes: :meth:`finish` runs it on the frames converted to that
    format (1080p 4:2:0: ~8 ms on one core instead of ~25 ms on RGB), on frames from
    :meth:`__call__` and :meth:`rgb` alike (``kdsharp live``'s file sink calls it in its encoder thread).

    With ``reuse``, a convolutional U-Net (:func:`rgb_reuse_multiple`) runs frame by frame through
    :class:`TileReuse` on an :class:`RgbNet`: unchanged tiles keep their last output (``tolerance``:
    the source's luma levels, compared on the luma of the RGB frame and on each tile's mean colour),
    the others are recomputed with :data:`RGB_MARGIN` pixels of context.
    """

    path = "rgb"

    def __init__(self, sharpener, out_format: str | None = None, reuse: bool = False, tolerance: int = 0):
        self.sharpener = sharpener
        self.pin = getattr(sharpener, "device", torch.device("cpu")).type == "cuda"
        self.times = StageTimes()
        wrapper = own_chroma_wrapper(sharpener) if out_format in LUMA_FORMATS else None
        self.chroma_step = ChromaStep(wrapper) if wrapper is not None else None
        self.reuse = rgb_tile_reuse(sharpener, tolerance) if reuse else None

    def __call__(self, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        t0 = time.perf_counter()
        rgb = [frame_to_rgb(f) for f in frames]
        batch = torch.from_numpy(np.stack(rgb)) if self.reuse is None else None
        if batch is not None and self.pin:
            batch = batch.pin_memory()
        t1 = time.perf_counter()
        with deferred_chroma_step() if self.chroma_step is not None else contextlib.nullcontext():
            if self.reuse is None:
                assert batch is not None
                out = self.sharpener.frames(batch).numpy()
            else:  # frame by frame, each against the last one this processor took
                name = frames[0].format.name
                limited = name.startswith(("yuv", "nv")) and not is_full_range(frames[0])
                scale = 255.0 / 219.0 if limited else 1.0  # the tolerance counts the source's luma levels
                out = np.stack([self.rgb(x, scale) for x in rgb])
        t2 = time.perf_counter()
        result = []
        for f, o in zip(frames, out, strict=True):
            g = av.VideoFrame.from_ndarray(o, format="rgb24")
            copy_frame_props(f, g, colour=False)
            result.append(g)
        self.times.convert_s += (t1 - t0) + (time.perf_counter() - t2)
        self.times.model_s += t2 - t1
        return result

    def rgb(self, rgb: np.ndarray, level_scale: float = 1.0) -> np.ndarray:
        """One uint8 RGB (H, W, 3) frame (a camera's) -> the model's uint8 RGB output, through temporal
        reuse when on (against the last frame this processor took; ``level_scale``:
        :attr:`TileReuse.level_scale`, 1 for a camera's full-range RGB)."""
        with deferred_chroma_step() if self.chroma_step is not None else contextlib.nullcontext():
            if self.reuse is None:
                return self.sharpener.frames(torch.from_numpy(rgb[None]))[0].numpy()
            self.reuse.level_scale = level_scale
            return self.reuse(rgb, True)

    @property
    def defers_chroma(self) -> bool:
        """True when this processor's frames still owe the model's chroma step (:meth:`finish`)."""
        return self.chroma_step is not None

    def finish(self, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        """The deferred chroma step on ``frames`` in the encoder's format (8-bit planar YUV, as
        ``out_format``; in place): the chroma planes refitted to the frame's own luma. Without a
        deferred step, ``frames`` as they are."""
        if self.chroma_step is None:
            return frames
        t0 = time.perf_counter()
        for f in frames:
            if f.format.name not in LUMA_FORMATS:
                raise RuntimeError(f"expected 8-bit planar YUV frames for the chroma step, got {f.format.name}")
            y = plane_view(f, 0)
            planes = [plane_view(f, i) for i in range(1, len(f.planes))]
            new = self.chroma_step(y, y, planes)  # not in place: the fit reads rows around each strip
            for p, q in zip(planes, new, strict=True):
                p[...] = q
        self.times.model_s += time.perf_counter() - t0
        return frames


def copy_frame_props(src: av.VideoFrame, dst: av.VideoFrame, colour: bool = True) -> None:
    """Timestamp, duration, time base and (``colour``) colour tags of ``src`` onto ``dst``."""
    dst.pts, dst.duration = src.pts, src.duration
    if src.time_base is not None:
        dst.time_base = src.time_base
    if colour:
        for attr in ("colorspace", "color_range", "color_primaries", "color_trc"):
            try:
                setattr(dst, attr, getattr(src, attr))
            except (AttributeError, ValueError, TypeError):
                pass


def make_processor(
    sharpener,
    frame: av.VideoFrame | None = None,
    reuse: bool = False,
    path: str = "auto",
    tolerance: int | None = None,
    out_format: str | None = None,
):
    """:class:`LumaFrames` when ``sharpener`` runs a luma model with torch and ``frame`` is 8-bit planar
    YUV (``path`` 'auto' or 'yuv'), else :class:`RgbFrames` (``out_format``: the pixel format its frames
    are converted to before its ``finish``, None: none). ``reuse`` (with its ``tolerance`` in 8-bit
    levels, :class:`TileReuse`; None: :data:`REUSE_TOLERANCE`) applies to a luma model on the YUV
    path and to a convolutional U-Net on the RGB path (:func:`rgb_reuse_multiple`: ``student``)."""
    model = luma_model(sharpener) if path in ("auto", "yuv") else None
    if model is not None and (frame is None or frame.format.name in yuv_formats(model)):
        return LumaFrames(model, sharpener.device, reuse=reuse, tolerance=resolve_tolerance(tolerance))
    return RgbFrames(sharpener, out_format=out_format, reuse=reuse, tolerance=resolve_tolerance(tolerance))


__all__ = [
    "LUMA_FORMATS",
    "ChromaStep",
    "LumaFrames",
    "LumaNet",
    "REUSE_TOLERANCE",
    "RGB_MARGIN",
    "RGB_TILE",
    "RgbFrames",
    "RgbNet",
    "TileReuse",
    "is_luma_net",
    "luma_model",
    "yuv_formats",
    "make_processor",
    "own_chroma_wrapper",
    "plane_view",
    "reach",
    "resolve_tolerance",
    "rgb_reuse_multiple",
    "rgb_tile_reuse",
    "reuse_text",
    "skipped_fraction",
]
