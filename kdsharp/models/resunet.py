"""Residual U-Net: the lighter teacher (``resunet_teacher``) and the base of ``ResUNetLite``.

Encoder levels of residual blocks (conv3x3-ReLU-conv3x3 + skip) joined by stride-2 convs;
decoder levels upsample by a 1x1 conv + pixel-shuffle, add the encoder skip, and refine with
residual blocks. An optional space-to-depth ``stem`` (pixel-unshuffle by 2 or 4) runs the whole
network below full resolution, which is what makes the students fast. The output is the input
plus a predicted residual; the tail conv starts at zero, so the untrained model is the identity.
With ``luma=True`` the network sees BT.601 luma only and predicts a luma residual that is added
to R, G and B alike (= Y + dY with chroma passed through, as ``fast`` does): at stem 4 its
head sees 16 values per cell instead of 48, so a 16-channel first level is no bottleneck.

Features (``return_features=True``) are the DECODER outputs of each level plus the bottleneck,
named by their scale relative to the input: with ``stem=1`` and 4 levels 's1', 's2', 's4',
's8' (bottleneck); with ``stem=2`` and 3 levels 's2', 's4', 's8'.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdsharp.models._registry import register_model
from kdsharp.models.common import (
    LumaDetail,
    cell_major_order,
    crop_to,
    luma_space_to_depth_kernel,
    pad_to_multiple,
    unet_output,
    zero_init,
)
from kdsharp.ops.layout import is_channels_last


def conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """3x3 conv with 'same' zero padding (halves H, W when ``stride`` = 2 and they are even)."""
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


class ResBlock(nn.Module):
    """(N,C,H,W) -> (N,C,H,W): x + conv(ReLU(conv(x)))."""

    def __init__(self, channels: int, bias: bool = True):
        super().__init__()
        self.conv1 = conv3x3(channels, channels, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class UpShuffle(nn.Module):
    """(N,C,H,W) -> (N,C',2H,2W): 1x1 conv to 4*C' then pixel-shuffle(2)."""

    def __init__(self, cin: int, cout: int, bias: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * 4, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


class ResUNet(nn.Module):
    """Residual U-Net: (N,3,H,W) float RGB [0,1] -> (N,3,H,W) (not clamped), any H, W.

    Args:
        channels: width per level, finest first (one level per entry).
        enc_blocks: residual blocks per encoder level (the last one is the bottleneck).
        dec_blocks: residual blocks per decoder level (one fewer entry than ``channels``).
        stem: space-to-depth factor before the first conv (1 = full resolution, 2 or 4).
        luma: see luma only and predict a luma residual (``in_channels``/``out_channels`` ignored).
        detail: channels of a full-resolution luma refinement after the U-Net (0 = none; a
            :class:`~kdsharp.models.common.LumaDetail` on Y in and Y out, dY added to R, G and B).
        head_kernel: kernel of the first conv (3, or 1 = a linear patch embedding after the stem).
        tail_kernel: kernel of the last conv (3, or 1: each cell's residual from its own features).
        bias: conv biases.
    """

    prefers_channels_last = True
    identity_branches = ("detail_stage.",)  # parameters ``model.init`` may lack: they start as the identity
    luma_unshuffle: torch.Tensor  # (s*s,3,s,s) luma + space-to-depth weights (a buffer, luma only)

    def __init__(
        self,
        channels=(32, 64, 128, 256),
        enc_blocks=(2, 2, 2, 2),
        dec_blocks=(2, 2, 2),
        stem: int = 1,
        head_kernel: int = 3,
        bias: bool = True,
        in_channels: int = 3,
        out_channels: int = 3,
        luma: bool = False,
        detail: int = 0,
        tail_kernel: int = 3,
    ):
        super().__init__()
        channels, enc_blocks, dec_blocks = list(channels), list(enc_blocks), list(dec_blocks)
        if not (len(channels) == len(enc_blocks) == len(dec_blocks) + 1):
            raise ValueError("need len(channels) == len(enc_blocks) == len(dec_blocks) + 1")
        self.arch_kwargs = dict(
            channels=channels,
            enc_blocks=enc_blocks,
            dec_blocks=dec_blocks,
            stem=stem,
            head_kernel=head_kernel,
            bias=bias,
            in_channels=in_channels,
            out_channels=out_channels,
        )
        if tail_kernel != 3:  # recorded only when not the default, like ``detail``
            self.arch_kwargs["tail_kernel"] = tail_kernel
        if detail:  # recorded only when set, like ``luma``
            self.arch_kwargs["detail"] = detail
        if luma:  # recorded only when set, so older checkpoints' arch_kwargs stay as they were
            self.arch_kwargs["luma"] = True
            in_channels = out_channels = 1
            self.register_buffer("luma_unshuffle", luma_space_to_depth_kernel(stem), persistent=False)
        self.luma = luma
        levels = len(channels)
        self.stem = stem
        self.pad_multiple = stem * 2 ** (levels - 1)
        self.head = nn.Conv2d(in_channels * stem * stem, channels[0], head_kernel, padding=head_kernel // 2, bias=bias)
        self.encoders = nn.ModuleList(
            nn.Sequential(*[ResBlock(c, bias) for _ in range(n)]) for c, n in zip(channels, enc_blocks, strict=True)
        )
        self.downs = nn.ModuleList(conv3x3(channels[i], channels[i + 1], 2, bias) for i in range(levels - 1))
        self.ups = nn.ModuleList(UpShuffle(channels[i + 1], channels[i], bias) for i in range(levels - 1))
        self.decoders = nn.ModuleList(
            nn.Sequential(*[ResBlock(channels[i], bias) for _ in range(dec_blocks[i])]) for i in range(levels - 1)
        )
        cout = out_channels * stem * stem
        self.tail = zero_init(nn.Conv2d(channels[0], cout, tail_kernel, padding=tail_kernel // 2, bias=bias))
        self.feature_channels = {f"s{stem * 2**i}": c for i, c in enumerate(channels)}
        self.detail = detail
        if detail:
            self.detail_stage = LumaDetail(detail, bias)

    @property
    def scale(self) -> int:
        """Space-to-depth factor (= ``stem``), the name the YUV-native path reads on luma models."""
        return self.stem

    def _head(self, xp: torch.Tensor) -> torch.Tensor:
        """Padded input (N,3,H,W) -> the head's features (N,channels[0],H/stem,W/stem).

        RGB with a 1x1 head: pixel-unshuffle + 1x1 conv as ONE conv (kernel = stride = stem) whose
        weights are the 1x1 conv's, reshaped: the same sums, without writing the unshuffled copy
        of the frame (at 1080p on one core ~3 ms instead of ~25 ms).
        """
        s = self.stem
        if self.luma:  # == pixel_unshuffle(rgb_to_y(xp)); the (N,1,H,W) residual broadcasts onto RGB
            return self.head(F.conv2d(xp, self.luma_unshuffle.to(xp.dtype), stride=s))
        if s > 1 and self.head.kernel_size == (1, 1):
            w = self.head.weight.reshape(self.head.out_channels, -1, s, s)  # channel c*s*s + i*s + j -> (c, i, j)
            return F.conv2d(xp, w, self.head.bias, stride=s)
        return self.head(F.pixel_unshuffle(xp, s) if s > 1 else xp)

    def _body(self, f: torch.Tensor, cells_ijc: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The head's features (N,channels[0],h,w), h and w multiples of 2^(levels-1) -> (residual
        cells (N,C_out*stem^2,h,w), decoder outputs bottleneck first). ``cells_ijc``: the cells'
        channels in :func:`~kdsharp.models.common.cell_major_order` (the tail's rows reordered),
        for :func:`~kdsharp.models.common.add_pixel_shuffle`."""
        skips = []
        for i, enc in enumerate(self.encoders):
            f = enc(f)
            if i < len(self.downs):
                skips.append(f)
                f = self.downs[i](f)
        levels = [f]
        for i in reversed(range(len(self.decoders))):
            f = self.decoders[i](self.ups[i](f) + skips[i])
            levels.append(f)
        if cells_ijc:
            t = self.tail
            order = cell_major_order(t.out_channels // self.stem**2, self.stem)
            bias = t.bias[order] if t.bias is not None else None
            return F.conv2d(f, t.weight[order], bias, padding=t.padding), levels
        return self.tail(f), levels

    def forward_cells(self, cells: torch.Tensor) -> torch.Tensor:
        """Luma model only: (N,stem^2,h,w) = ``pixel_unshuffle(Y, stem)`` -> its residual, same
        shape, any h, w (padded inside); the YUV-native video path calls this on the Y plane."""
        cp, h, w = pad_to_multiple(cells, self.pad_multiple // self.stem)
        return crop_to(self._body(self.head(cp))[0], h, w)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """(N,3,H,W) -> (N,3,H,W); with ``return_features`` -> (out, decoder features by scale)."""
        xp, h, w = pad_to_multiple(x, self.pad_multiple)
        f = self._head(xp)
        cells_ijc = self.stem > 1 and not self.luma and is_channels_last(f)
        res, levels = self._body(f, cells_ijc)
        stage = self.detail_stage if self.detail else None
        return unet_output(xp, res, levels, self.stem, h, w, return_features, stage, cells_ijc)


@register_model
def resunet_teacher(**kwargs) -> ResUNet:
    """ResUNet teacher: full resolution, 4 levels of 32/64/128/256 ch, 2 residual blocks each."""
    cfg = dict(channels=[32, 64, 128, 256], enc_blocks=[2, 2, 2, 2], dec_blocks=[2, 2, 2], stem=1)
    return ResUNet(**{**cfg, **kwargs})
