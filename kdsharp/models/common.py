"""Small pieces shared by the architectures: size padding, feature bookkeeping, init helpers."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdsharp.ops.color import rgb_to_y, rgb_to_ycbcr
from kdsharp.ops.layout import eager_only, frame_hwc, is_channels_last, is_plain_cpu_inference


def model_cell(model: object) -> int:
    """The pixel cell a model works on: the ``pad_multiple`` of the first module that has one
    (pixel-unshuffle, a U-Net's downsamplings; 16 for ``student``, 4 for ``fast``); 1 if none is
    known (not a module)."""
    if isinstance(model, nn.Module):
        for m in model.modules():
            cell = getattr(m, "pad_multiple", None)
            if isinstance(cell, int) and cell > 1:
                return cell
    return 1


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Pad (N,C,H,W) on the bottom/right so H and W are multiples of ``multiple``.

    Reflect padding (as the Restormer test code); replicate when the image is too small to
    reflect. During ONNX export the pad is always emitted, computed from the traced input size,
    so one exported graph serves every size. Returns ``(padded, H, W)`` with the original size.
    """
    h, w = x.shape[-2], x.shape[-1]
    if multiple <= 1:
        return x, h, w
    ph = (multiple - h % multiple) % multiple
    pw = (multiple - w % multiple) % multiple
    if torch.onnx.is_in_onnx_export():
        return F.pad(x, (0, pw, 0, ph), mode="reflect"), h, w
    if ph == 0 and pw == 0:
        return x, h, w
    return pad_bottom_right(x, ph, pw, reflect=ph < h and pw < w), h, w


def pad_bottom_right(x: torch.Tensor, ph: int, pw: int, reflect: bool = True) -> torch.Tensor:
    """(N,C,H,W) -> (N,C,H+ph,W+pw): ``F.pad(x, (0, pw, 0, ph), mode='reflect' | 'replicate')``.

    The same values, written into a tensor of ``x``'s memory layout (channels-last stays
    channels-last) with one copy plus the border strips: torch's reflection pad of a channels-last
    1080p frame took ~13 ms on one core, this ~2 ms. Reflect needs ph < H and pw < W.
    """
    n, c, h, w = x.shape
    layout = torch.channels_last if is_channels_last(x) else torch.contiguous_format
    out = torch.empty((n, c, h + ph, w + pw), dtype=x.dtype, device=x.device, memory_format=layout)
    out[..., :h, :w].copy_(x)
    if ph:  # rows H..H+ph-1 = rows H-2..H-1-ph (reflect) or row H-1 (replicate)
        out[..., h:, :w].copy_(x[..., h - 1 - ph : h - 1, :].flip(-2) if reflect else x[..., h - 1 :, :])
    if pw:  # columns from the row-padded result, so the corner is padded in both directions
        out[..., w:].copy_(out[..., w - 1 - pw : w - 1].flip(-1) if reflect else out[..., w - 1 : w])
    return out


def crop_to(x: torch.Tensor, h, w) -> torch.Tensor:
    """Crop (N,C,H',W') back to the top-left (H, W)."""
    if torch.onnx.is_in_onnx_export() or x.shape[-2] != h or x.shape[-1] != w:
        return x[..., :h, :w]
    return x


def new_features() -> OrderedDict[str, torch.Tensor]:
    """An empty ordered ``name -> (N,C,h,w)`` feature dict (names 's1', 's2', 's4', 's8')."""
    return OrderedDict()


def crop_features(feats: OrderedDict[str, torch.Tensor], h, w) -> OrderedDict[str, torch.Tensor]:
    """Crop each feature map ``sK`` to ceil(H/K) x ceil(W/K), dropping the padded border."""
    out = OrderedDict()
    for name, f in feats.items():
        k = int(name[1:])
        out[name] = f[..., : (h + k - 1) // k, : (w + k - 1) // k]
    return out


def luma_space_to_depth_kernel(scale: int) -> torch.Tensor:
    """(s*s,3,s,s) conv weights that compute BT.601 luma and pixel-unshuffle by ``scale`` in one pass.

    ``F.conv2d(rgb, k, stride=scale)`` == ``F.pixel_unshuffle(rgb_to_y(rgb), scale)``: (N,3,H,W) ->
    (N,s*s,H/s,W/s), H and W multiples of ``scale``.
    """
    lw = rgb_to_y(torch.eye(3).view(1, 3, 3, 1).permute(2, 1, 0, 3)).view(3)  # BT.601 weights
    k = torch.zeros(scale * scale, 3, scale, scale)
    for i in range(scale):
        for j in range(scale):
            k[i * scale + j, :, i, j] = lw
    return k


def chroma_space_to_depth_kernel(scale: int) -> torch.Tensor:
    """(2*(s/2)^2,3,s,s) conv weights: BT.601 Cb, Cr averaged over 2x2 (as 4:2:0 subsampling does)
    and space-to-depth by s/2, in one pass. ``F.conv2d(rgb, k, stride=scale) + 0.5`` ==
    ``pixel_unshuffle(avg_pool2d(rgb_to_ycbcr(rgb)[:, 1:], 2), scale // 2)``: (N,3,H,W) ->
    (N,2*(s/2)^2,H/s,W/s), H and W multiples of ``scale``."""
    # (3 colours, 3 components): row r = YCbCr of pure colour r, minus the chroma offset
    ycc = rgb_to_ycbcr(torch.eye(3).view(3, 3, 1, 1)).view(3, 3) - torch.tensor([0.0, 0.5, 0.5])
    half = scale // 2
    k = torch.zeros(2 * half * half, 3, scale, scale)
    for c in range(2):
        for a in range(half):
            for b in range(half):
                k[c * half * half + a * half + b, :, 2 * a : 2 * a + 2, 2 * b : 2 * b + 2] = (
                    ycc[:, 1 + c].view(3, 1, 1) / 4
                )
    return k


def zero_init(conv: nn.Conv2d) -> nn.Conv2d:
    """Zero a conv's weight and bias so a residual branch starts as the identity."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class LumaDetail(nn.Module):
    """Full-resolution luma refinement after a net that works below full resolution.

    (N,1,H,W) input luma and the net's (coarse) output luma, both in [0, 1] -> (N,1,H,W) dY:
    conv3x3(2 -> ``channels``) - ReLU - conv3x3(-> 1). The last conv starts at zero, so a model
    grown with it (``model.init`` from the same model without it) starts with the same output.
    Cost at 1920x1080: 27 * ``channels`` MACs per pixel (0.45 GMAC at 8 channels).
    """

    def __init__(self, channels: int = 8, bias: bool = True):
        super().__init__()
        self.conv_in = nn.Conv2d(2, channels, 3, padding=1, bias=bias)
        self.conv_out = zero_init(nn.Conv2d(channels, 1, 3, padding=1, bias=bias))

    def forward(self, y_in: torch.Tensor, y_coarse: torch.Tensor) -> torch.Tensor:
        # CPU inference: OpenCV (not under a dispatch mode: the FLOP counter must see the convs)
        if is_plain_cpu_inference(y_in, in_compile=True):
            return self._forward_planes(y_in, y_coarse)
        return self.conv_out(F.relu(self.conv_in(torch.cat([y_in, y_coarse], 1))))

    @eager_only  # OpenCV and numpy: torch.compile runs it as it is, between two graphs
    def _forward_planes(self, y_in: torch.Tensor, y_coarse: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """The same on the CPU without autograd, one hidden channel at a time with OpenCV's 3x3
        filters (convs with 1-8 channels at full resolution run ~5-10x faster than in torch), in
        horizontal strips of ``rows`` rows (default :func:`strip_rows`) so that the strip's planes
        stay in the CPU cache: each strip is computed with its 2 neighbouring rows above and below
        (the receptive field of two 3x3 convs), whose own results are dropped, so the output is
        exactly the whole frame's (1080p on one core: ~45 -> ~31 ms at 8 channels).
        """
        import cv2

        w1, b1 = self.conv_in.weight.detach().float().numpy(), _bias(self.conv_in)
        w2, b2 = self.conv_out.weight.detach().float().numpy(), _bias(self.conv_out)
        kernels = list(zip(w1[:, 0], w1[:, 1], b1.tolist(), w2[0], strict=True))  # per hidden channel
        zero = cv2.BORDER_CONSTANT  # torch's zero padding
        n_frames, _, height, width = y_in.shape
        rows = max(1, rows or strip_rows(width))
        out = torch.empty((n_frames, 1, height, width), dtype=torch.float32)
        hidden, tmp, acc_buf = np.empty((3, min(height, rows + 4), width), np.float32)
        for n in range(n_frames):
            planes = (y_in[n, 0].contiguous().numpy(), y_coarse[n, 0].contiguous().numpy())
            dst = out[n, 0].numpy()
            for top in range(0, height, rows):
                bottom = min(height, top + rows)
                r0, r1 = max(0, top - 2), min(height, bottom + 2)  # the strip and its 2-row halo
                src_in, src_coarse = planes[0][r0:r1], planes[1][r0:r1]
                h, t, acc = hidden[: r1 - r0], tmp[: r1 - r0], acc_buf[: r1 - r0]
                acc.fill(b2[0])
                for k_y, k_c, bias, k_o in kernels:  # ``delta``: conv_in's bias in the first pass
                    cv2.filter2D(src_in, -1, k_y, dst=h, delta=bias, borderType=zero)
                    cv2.filter2D(src_coarse, -1, k_c, dst=t, borderType=zero)
                    cv2.add(h, t, dst=h)
                    np.maximum(h, 0.0, out=h)  # ReLU in place (cache-resident strip)
                    cv2.filter2D(h, -1, k_o, dst=t, borderType=zero)
                    cv2.add(acc, t, dst=acc)
                dst[top:bottom] = acc[top - r0 : bottom - r0]
        return out


def strip_rows(width: int, plane_bytes: int = 1 << 20) -> int:
    """Rows of a ``width``-pixel float32 plane that fill ``plane_bytes`` (1 MiB: the strips of
    :meth:`LumaDetail._forward_planes` stay in the CPU's cache), at least 32 (1920 px: 136)."""
    return max(32, plane_bytes // (4 * max(1, width)))


def add_detail(stage: LumaDetail, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """A net's (coarse) output ``out`` plus ``stage``'s dY on R, G and B.

    ``x``: the net's input, ``out``: its output, both (N,3,H,W) RGB in [0, 1]. dY =
    ``stage(Y(x), Y(out))`` with BT.601 luma (``rgb_to_y``). Returns (N,3,H,W).
    """
    dy = stage(rgb_to_y(x), rgb_to_y(out))
    if is_channels_last(out) and is_plain_cpu_inference(out) and dy.is_contiguous():
        return _add_luma_opencv(out, dy)
    return out + dy


@eager_only
def _add_luma_opencv(rgb: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """``rgb + dy`` for a channels-last CPU float32 ``rgb`` (N,3,H,W) and ``dy`` (N,1,H,W), with OpenCV
    on each frame's HxWx3 memory (a broadcast add over 3 interleaved channels is ~2x slower in torch)."""
    import cv2

    out = torch.empty_like(rgb)  # channels-last too
    for n in range(rgb.shape[0]):
        d = dy[n, 0].numpy()
        cv2.add(frame_hwc(rgb, n), cv2.merge([d, d, d]), dst=frame_hwc(out, n))
    return out


def _bias(conv: nn.Conv2d) -> np.ndarray:
    """(cout,) float32 bias of ``conv`` (zeros without one)."""
    return conv.bias.detach().float().numpy() if conv.bias is not None else np.zeros(conv.out_channels, np.float32)


def cell_major_order(channels: int, s: int) -> list[int]:
    """Channel order of space-to-depth cells with the colour innermost.

    ``pixel_shuffle`` reads channel ``c*s*s + i*s + j`` for colour ``c`` at offset (i, j) of an
    s x s cell; in this order, channel ``(i*s + j)*channels + c`` holds it: index a conv's output
    channels (weights and bias) with the list and :func:`add_pixel_shuffle` takes ``cells_ijc``.
    """
    return [c * s * s + i * s + j for i in range(s) for j in range(s) for c in range(channels)]


def add_pixel_shuffle(x: torch.Tensor, cells: torch.Tensor, s: int, cells_ijc: bool = False) -> torch.Tensor:
    """``x + pixel_shuffle(cells, s)``: x (N,C,H,W), cells (N,C*s*s,H/s,W/s) -> (N,C,H,W).

    ``cells_ijc``: the cells' channels are in :func:`cell_major_order`; with x and cells
    channels-last the sum is then one add over strided views whose inner runs of s*C values are
    contiguous on both sides, not a shuffle of single values then an add (RGB, s = 4, 1080p on
    one core: ~5 instead of ~15 ms). Otherwise (or in other layouts) the cells are permuted first.
    """
    if s == 1:
        return x + cells
    if cells_ijc and is_channels_last(x) and is_channels_last(cells):
        n, c, hh, ww = x.shape
        h, w = hh // s, ww // s
        # channels-last memory (N, H, W, C) is (N, h, s, w, s*C): the sum in that shape is the
        # channels-last result (a new tensor, so autograd works)
        out = x.permute(0, 2, 3, 1).reshape(n, h, s, w, s * c) + cells.permute(0, 2, 3, 1).reshape(
            n, h, w, s, s * c
        ).transpose(2, 3)
        return out.reshape(n, hh, ww, c).permute(0, 3, 1, 2)
    if cells_ijc:  # back to pixel_shuffle's channel order
        cells = cells[:, torch.argsort(torch.tensor(cell_major_order(x.shape[1], s), device=cells.device))]
    return x + F.pixel_shuffle(cells, s)


def unet_output(
    xp: torch.Tensor,
    res: torch.Tensor,
    levels: list,
    stem: int,
    h: int,
    w: int,
    return_features: bool,
    detail: LumaDetail | None = None,
    cells_ijc: bool = False,
):
    """Finish a U-shaped residual net: ``xp`` + residual (pixel-shuffled by ``stem``), plus the
    full-resolution ``detail`` stage when there is one (:func:`add_detail`), cropped to HxW.

    ``levels`` are the decoder outputs, bottleneck first; as features they are named
    ``s{stem * 2**i}``, finest first; ``cells_ijc``: ``res``'s channels are in
    :func:`cell_major_order` (see :func:`add_pixel_shuffle`). Returns ``out`` or ``(out, feats)``.
    """
    out = add_pixel_shuffle(xp, res, stem, cells_ijc)
    out = crop_to(add_detail(detail, xp, out) if detail is not None else out, h, w)
    if not return_features:
        return out
    feats = new_features()
    for i, level in enumerate(reversed(levels)):
        feats[f"s{stem * 2**i}"] = level
    return out, crop_features(feats, h, w)


def reparameterize(model: nn.Module) -> bool:
    """Fold a re-parameterizable model (``fast``) into its deployed single-conv form, in place;
    False (nothing done) for a model without that form."""
    fold = getattr(model, "reparameterize", None)
    if not callable(fold):
        return False
    fold()
    return True


def set_memory_format(model: nn.Module, memory_format: torch.memory_format) -> nn.Module:
    """``model.to(memory_format=...)``, in place; returns ``model`` (channels-last: faster convs)."""
    return model.to(memory_format=memory_format)  # type: ignore[call-overload]  # torch's stub lacks the keyword
