"""Restormer (Zamir et al., CVPR 2022), the teacher: a 4-level transformer U-Net.

Blocks are MDTA (multi-Dconv head *transposed* attention: attention across channels with a
learned per-head temperature) and GDFN (gated depthwise-conv feed-forward). Down/up sampling is
pixel-unshuffle / pixel-shuffle; a refinement stage runs at full resolution; the output is a
global residual on the input. Module and parameter names follow the official code, so the
released checkpoints (``motion_deblurring.pth`` etc., saved as ``{'params': state_dict}``) load
with ``strict=True``.

MDTA's attention is a channel covariance over the WHOLE input, so a model trained on small crops
sees different statistics on a full frame: the registered ``teacher`` runs frames in local windows,
a test-time wrapper around the architecture (:class:`kdsharp.models.wrappers.LocalWindows`).

Features (``return_features=True``) are taken on the DECODER side: ``s8`` latent (8*dim ch),
``s4`` decoder level 3 (4*dim), ``s2`` decoder level 2 (2*dim), ``s1`` after refinement (2*dim).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdsharp.models._registry import register_model
from kdsharp.models.common import crop_features, crop_to, new_features, pad_to_multiple
from kdsharp.models.wrappers import LocalWindows


class BiasFreeLayerNorm(nn.Module):
    """LayerNorm over the last dim without mean subtraction or bias: x / std * weight."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.var(-1, keepdim=True, unbiased=False)
        return x * torch.rsqrt(var + 1e-5) * self.weight


class WithBiasLayerNorm(nn.Module):
    """Standard LayerNorm over the last dim (biased variance, eps 1e-5): ``weight`` and ``bias``."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class LayerNorm(nn.Module):
    """Channel LayerNorm of (N,C,H,W): normalises each pixel's C values (``body`` as official).

    Works on an NHWC view, so channels-last inputs need no copy.
    """

    def __init__(self, dim: int, LayerNorm_type: str = "WithBias"):  # LayerNorm_type: the official name
        super().__init__()
        self.body = BiasFreeLayerNorm(dim) if LayerNorm_type == "BiasFree" else WithBiasLayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class FeedForward(nn.Module):
    """GDFN: 1x1 expand to 2*hidden, depthwise 3x3, GELU(x1) * x2 gate, 1x1 project back."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool):
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, 1, 1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class Attention(nn.Module):
    """MDTA: q, k, v from 1x1 + depthwise 3x3 convs; C x C attention per head (linear in H*W)."""

    def __init__(self, dim: int, num_heads: int, bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, 1, 1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        heads = self.num_heads
        q = F.normalize(q.reshape(n, heads, c // heads, h * w), dim=-1)
        k = F.normalize(k.reshape(n, heads, c // heads, h * w), dim=-1)
        v = v.reshape(n, heads, c // heads, h * w)
        attn = (q @ k.transpose(-2, -1)) * self.temperature  # (N, heads, C/h, C/h)
        out = attn.softmax(dim=-1) @ v
        return self.project_out(out.reshape(n, c, h, w))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + MDTA(LN(x)), then x + GDFN(LN(x))."""

    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, LayerNorm_type: str):
        super().__init__()
        self.norm1 = LayerNorm(dim, LayerNorm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, LayerNorm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    """3x3 conv embedding (``proj``)."""

    def __init__(self, in_c: int = 3, embed_dim: int = 48, bias: bool = False):
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, 3, 1, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """3x3 conv to C/2 then pixel-unshuffle(2): (N,C,H,W) -> (N,2C,H/2,W/2)."""

    def __init__(self, n_feat: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, n_feat // 2, 3, 1, 1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """3x3 conv to 2C then pixel-shuffle(2): (N,C,H,W) -> (N,C/2,2H,2W)."""

    def __init__(self, n_feat: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, n_feat * 2, 3, 1, 1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _stage(n: int, dim: int, heads: int, ffn: float, bias: bool, ln: str) -> nn.Sequential:
    return nn.Sequential(*[TransformerBlock(dim, heads, ffn, bias, ln) for _ in range(n)])


class Restormer(nn.Module):
    """Restormer: (N,3,H,W) float RGB in [0,1] -> (N,3,H,W) restored (not clamped), any H, W.

    Inputs are reflect-padded to a multiple of 8 and cropped back. Keywords and defaults are the
    official ones (the released motion-deblurring model). With ``dual_pixel_task`` the input has
    ``inp_channels`` (6) channels and there is no global residual, as in the official code.
    Test-time local windows are a wrapper, not a keyword: ``LocalWindows(Restormer(...), 192)``.
    """

    pad_multiple = 8
    prefers_channels_last = True  # depthwise convs and LayerNorm run 1.5-2.5x faster channels-last on CPU

    def __init__(
        self,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: list[int] | tuple[int, ...] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: list[int] | tuple[int, ...] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        LayerNorm_type: str = "WithBias",
        dual_pixel_task: bool = False,
    ):
        super().__init__()
        nb, hd, f, ln = list(num_blocks), list(heads), ffn_expansion_factor, LayerNorm_type
        self.arch_kwargs = dict(
            inp_channels=inp_channels,
            out_channels=out_channels,
            dim=dim,
            num_blocks=nb,
            num_refinement_blocks=num_refinement_blocks,
            heads=hd,
            ffn_expansion_factor=f,
            bias=bias,
            LayerNorm_type=ln,
            dual_pixel_task=dual_pixel_task,
        )
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = _stage(nb[0], dim, hd[0], f, bias, ln)
        self.down1_2 = Downsample(dim)
        self.encoder_level2 = _stage(nb[1], dim * 2, hd[1], f, bias, ln)
        self.down2_3 = Downsample(dim * 2)
        self.encoder_level3 = _stage(nb[2], dim * 4, hd[2], f, bias, ln)
        self.down3_4 = Downsample(dim * 4)
        self.latent = _stage(nb[3], dim * 8, hd[3], f, bias, ln)
        self.up4_3 = Upsample(dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, 1, bias=bias)
        self.decoder_level3 = _stage(nb[2], dim * 4, hd[2], f, bias, ln)
        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=bias)
        self.decoder_level2 = _stage(nb[1], dim * 2, hd[1], f, bias, ln)
        self.up2_1 = Upsample(dim * 2)  # no channel reduction at level 1 (official design)
        self.decoder_level1 = _stage(nb[0], dim * 2, hd[0], f, bias, ln)
        self.refinement = _stage(num_refinement_blocks, dim * 2, hd[0], f, bias, ln)
        self.dual_pixel_task = dual_pixel_task
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, dim * 2, 1, bias=bias)
        self.output = nn.Conv2d(dim * 2, out_channels, 3, 1, 1, bias=bias)
        self.feature_channels = {"s1": dim * 2, "s2": dim * 2, "s4": dim * 4, "s8": dim * 8}

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """(N,3,H,W) -> (N,3,H,W); with ``return_features`` -> (out, {'s1','s2','s4','s8'})."""
        inp, h, w = pad_to_multiple(x, self.pad_multiple)
        emb = self.patch_embed(inp)
        enc1 = self.encoder_level1(emb)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))
        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1)))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)))
        dec1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1)))
        if self.dual_pixel_task:
            out = self.output(dec1 + self.skip_conv(emb))
        else:
            out = self.output(dec1) + inp
        out = crop_to(out, h, w)
        if not return_features:
            return out
        feats = new_features()
        feats["s1"], feats["s2"], feats["s4"], feats["s8"] = dec1, dec2, dec3, latent
        return out, crop_features(feats, h, w)


@register_model
def restormer(**kwargs) -> Restormer:
    """Restormer base, the official motion-deblurring configuration (dim 48, 26.1M params)."""
    return Restormer(**kwargs)


@register_model
def restormer_small(**kwargs) -> Restormer:
    """Restormer small: dim 32, blocks [2,3,3,4], 2 refinement blocks."""
    cfg = dict(dim=32, num_blocks=[2, 3, 3, 4], num_refinement_blocks=2, heads=[1, 2, 4, 8])
    return Restormer(**{**cfg, **kwargs})


@register_model
def restormer_tiny(**kwargs) -> Restormer:
    """Restormer tiny: dim 24, blocks [1,2,2,3], 1 refinement block (CPU-trainable teacher)."""
    cfg = dict(dim=24, num_blocks=[1, 2, 2, 3], num_refinement_blocks=1, heads=[1, 2, 4, 8])
    return Restormer(**{**cfg, **kwargs})


TEACHER_WINDOW = 192  # px: the registered teacher's test-time local windows


@register_model(role="teacher", weights="teacher.safetensors")
def teacher(**kwargs) -> LocalWindows:
    """The distillation teacher: a Restormer-tiny trained by kdsharp (ships as teacher.safetensors).

    Frames larger than 192 px run in overlapping 192 px local windows (a :class:`LocalWindows`
    wrapper around the bare Restormer-tiny, which training and ``unwrap`` give): on the corpus
    validation split (8 photos x lowbw/defocus/h264) 96 px and 192 px windows both gave +0.94 dB
    over the input and whole frames +0.85 dB; 192 px computes less (less overlap)."""
    return LocalWindows(restormer_tiny(**kwargs), TEACHER_WINDOW)
