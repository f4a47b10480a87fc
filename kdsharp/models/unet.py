"""Student U-Nets: a classic ``UNet`` and ``ResUNetLite`` (a narrow residual U-Net).

Both start with a space-to-depth stem (pixel-unshuffle by 4: 1080p -> 270x480x48) so no conv
runs above 1/4 resolution (the key to >= 10 frames/s at 1080p on a 2-core CPU), predict a
residual on the input (output = input + body(input)) and zero-init the last conv so an untrained
student is exactly the identity.

Features (``return_features=True``) are DECODER outputs per level and the bottleneck, named by
scale: with ``stem=4`` and 3 levels 's4', 's8', 's16' (bottleneck).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdsharp.models._registry import register_model
from kdsharp.models.common import pad_to_multiple, unet_output, zero_init
from kdsharp.models.resunet import ResUNet, UpShuffle, conv3x3
from kdsharp.models.wrappers import ChromaFromLuma


class DoubleConv(nn.Sequential):
    """(N,cin,H,W) -> (N,cout,H,W): conv3x3-ReLU-conv3x3-ReLU (the classic U-Net level)."""

    def __init__(self, cin: int, cout: int, bias: bool = True):
        super().__init__(
            conv3x3(cin, cout, bias=bias), nn.ReLU(inplace=True), conv3x3(cout, cout, bias=bias), nn.ReLU(inplace=True)
        )


class UNet(nn.Module):
    """Classic U-Net (max-pool down, pixel-shuffle up, concatenated skips) predicting a residual.

    (N,3,H,W) float RGB [0,1] -> (N,3,H,W) (not clamped), any H, W.

    Args:
        channels: width per level, finest first. stem: pixel-unshuffle factor before the head.
        bias: conv biases.
    """

    prefers_channels_last = True

    def __init__(
        self, channels=(16, 32, 64), stem: int = 4, bias: bool = True, in_channels: int = 3, out_channels: int = 3
    ):
        super().__init__()
        channels = list(channels)
        self.arch_kwargs = dict(
            channels=channels, stem=stem, bias=bias, in_channels=in_channels, out_channels=out_channels
        )
        levels = len(channels)
        self.stem = stem
        self.pad_multiple = stem * 2 ** (levels - 1)
        cin = in_channels * stem * stem
        self.encoders = nn.ModuleList()
        for c in channels:
            self.encoders.append(DoubleConv(cin, c, bias))
            cin = c
        self.ups = nn.ModuleList(UpShuffle(channels[i + 1], channels[i], bias) for i in range(levels - 1))
        self.decoders = nn.ModuleList(DoubleConv(2 * channels[i], channels[i], bias) for i in range(levels - 1))
        self.tail = zero_init(nn.Conv2d(channels[0], out_channels * stem * stem, 1, bias=bias))
        self.feature_channels = {f"s{stem * 2**i}": c for i, c in enumerate(channels)}

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """(N,3,H,W) -> (N,3,H,W); with ``return_features`` -> (out, decoder features by scale)."""
        xp, h, w = pad_to_multiple(x, self.pad_multiple)
        f = F.pixel_unshuffle(xp, self.stem) if self.stem > 1 else xp
        skips = []
        for i, enc in enumerate(self.encoders):
            if i > 0:
                skips.append(f)
                f = F.max_pool2d(f, 2)
            f = enc(f)
        levels = [f]
        for i in reversed(range(len(self.decoders))):
            f = self.decoders[i](torch.cat([self.ups[i](f), skips[i]], 1))
            levels.append(f)
        return unet_output(xp, self.tail(f), levels, self.stem, h, w, return_features)


class ResUNetLite(ResUNet):
    """A narrow :class:`ResUNet` for real-time use: stem 4 + 1x1 patch embedding, 3 levels of
    16/32/64 ch at 1/4, 1/8, 1/16 resolution, 2 residual blocks per encoder level, 1 per decoder level."""

    def __init__(
        self,
        channels=(16, 32, 64),
        enc_blocks=(2, 2, 2),
        dec_blocks=(1, 1),
        stem: int = 4,
        head_kernel: int = 1,
        **kwargs,
    ):
        super().__init__(
            channels=channels,
            enc_blocks=enc_blocks,
            dec_blocks=dec_blocks,
            stem=stem,
            head_kernel=head_kernel,
            **kwargs,
        )


@register_model
def unet(**kwargs) -> UNet:
    """Classic U-Net student: stem 4, 3 levels of 16/32/64 ch, concatenated skips."""
    return UNet(**kwargs)


@register_model
def resunet_lite(**kwargs) -> ResUNetLite:
    """Residual U-Net student: stem 4, 3 levels of 16/32/64 ch, residual blocks (~12 fps at 1080p)."""
    return ResUNetLite(**kwargs)


@register_model
def resunet_luma(**kwargs) -> ResUNetLite:
    """Luma residual U-Net: stem 4 on Y (16 values per cell), 3x3 head, 3 levels of 16/32/64 ch."""
    return ResUNetLite(**{**dict(luma=True, head_kernel=3), **kwargs})


@register_model
def resunet_luma4(**kwargs) -> ResUNetLite:
    """Deeper luma residual U-Net: stem 4 on Y, 3x3 head, 4 levels of 16/32/64/128 ch (to 1/32 res)."""
    cfg = dict(channels=[16, 32, 64, 128], enc_blocks=[2, 2, 2, 2], dec_blocks=[1, 1, 1], luma=True, head_kernel=3)
    return ResUNetLite(**{**cfg, **kwargs})


@register_model(role="student", weights="student.safetensors")
def student(**kwargs) -> ChromaFromLuma:
    """The distilled student: resunet_lite trained with the teacher, plus an 8-channel full-resolution
    luma stage (``detail=8``) grown on afterwards; ships as student.safetensors. Its output's chroma
    is refitted to its own luma at test time (a :class:`~kdsharp.models.wrappers.ChromaFromLuma`
    wrapper, the guided filter's local model: chroma noise and codec blocks smoothed where luma is
    flat); ``unwrap`` gives the ``ResUNetLite``, which training uses."""
    return ChromaFromLuma(resunet_lite(**{**dict(detail=8), **kwargs}))


@register_model(role="student", weights="student_nokd.safetensors")
def student_nokd(**kwargs) -> ChromaFromLuma:
    """Ablation: the same resunet_lite trained WITHOUT distillation (student_nokd.safetensors), with
    the same test-time chroma step as ``student`` (so the two differ only in training)."""
    return ChromaFromLuma(resunet_lite(**kwargs))
