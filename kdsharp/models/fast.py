"""The real-time student: a tiny re-parameterizable CNN working at 1/4 resolution on luma.

Design (each choice measured at 1920x1080, torch CPU, 2 threads, batch 1, channels-last,
re-parameterized; frames/s best-of-N on the quiet 2-core dev machine):

    luma, 1/4 res, 16 ch: 2 body blocks ~54, 3 blocks ~48 (= ``fast``), 4 blocks ~44
    luma, 1/4 res, 24 ch x 2 blocks ~34 (oneDNN is much faster at 16 ch); 32 ch x 1 block ~38
    luma, 1/2 res, 8 ch x 2 blocks ~36;  RGB, 1/4 res, 16 ch x 2 blocks ~24 (= ``fast_rgb``)
    contiguous (NCHW) instead of channels-last: ~25-35% slower; ReLU vs PReLU: same or faster
    folding luma + space-to-depth into one strided conv removed ~10 ms/frame of memory traffic.

* **space-to-depth**: the image is pixel-unshuffled by ``scale`` (4: 1080p -> 270x480x16) so
  every 3x3 conv sees a 12x12 pixel window at 1/16 of the positions; pixel-shuffle goes back up.
* **luma only** (``luma=True``): the network sees Y (``kdsharp.ops.color.rgb_to_y``, BT.601) and
  predicts a Y residual dY. Chroma is passed through: adding dY to R, G and B alike is exactly
  YCbCr -> (Y + dY, Cb, Cr) -> RGB, because the first column of the BT.601 inverse is all ones.
* **structural re-parameterization** (ECBSR / RepVGG): each ``RepConv`` trains as a sum of
  branches -- 3x3 conv, 1x1 -> 3x3 conv, 1x1 -> scaled Sobel-x / Sobel-y / Laplacian, identity --
  and :meth:`FastNet.reparameterize` folds them into one 3x3 conv for deployment (same output
  within float rounding). ``bias=False`` removes every bias.
* residual on the input; the tail starts at zero so the untrained model is the identity.

Features (``return_features=True``, training form or deployed): ``s4`` = output of the last
body block (``channels`` ch, 1/4 resolution when ``scale`` = 4; ``s2`` when ``scale`` = 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdsharp.models._registry import register_model
from kdsharp.models.common import (
    LumaDetail,
    add_detail,
    chroma_space_to_depth_kernel,
    crop_features,
    crop_to,
    luma_space_to_depth_kernel,
    new_features,
    pad_to_multiple,
)
from kdsharp.models.wrappers import ChromaFromLuma
from kdsharp.ops.color import cbcr_delta_to_rgb
from kdsharp.ops.filters import laplacian_kernel, sobel_kernels


def _pad_with(x: torch.Tensor, value: torch.Tensor | None) -> torch.Tensor:
    """Pad 1 pixel on each side with a per-channel constant (the 1x1 conv's bias), or zeros."""
    if value is None:
        return F.pad(x, (1, 1, 1, 1))
    v = value.view(1, -1, 1, 1)
    return F.pad(x - v, (1, 1, 1, 1)) + v


def _bias_of(conv: nn.Conv2d) -> torch.Tensor:
    """(cout,) the conv's bias, zeros where it has none."""
    return conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)


class RepConv(nn.Module):
    """A 3x3 conv trained as several branches, deployable as one 3x3 conv.

    (N,cin,H,W) -> (N,cout,H,W). Branches: 3x3; 1x1 (to ``expand*cout``) then 3x3; 1x1 then a
    fixed Sobel-x, Sobel-y and Laplacian mask with a learned per-channel scale (and bias);
    identity when cin == cout. Followed by ``act`` ('relu', 'prelu' or None).
    """

    masks: torch.Tensor  # (3,3,3) fixed edge taps (a buffer)

    def __init__(
        self, cin: int, cout: int, expand: int = 2, bias: bool = True, act: str | None = "relu", zero: bool = False
    ):
        super().__init__()
        self.cin, self.cout, self.use_bias = cin, cout, bias
        mid = expand * cout
        self.conv3 = nn.Conv2d(cin, cout, 3, padding=1, bias=bias)
        self.conv1_a = nn.Conv2d(cin, mid, 1, bias=bias)
        self.conv1_b = nn.Conv2d(mid, cout, 3, bias=bias)
        masks = torch.cat([sobel_kernels() * 8.0, laplacian_kernel()[None]])  # (3,3,3) integer taps
        self.register_buffer("masks", masks, persistent=False)
        self.edge_in = nn.Conv2d(cin, 3 * cout, 1, bias=bias)  # one 1x1 per edge branch, stacked
        self.edge_scale = nn.Parameter(torch.randn(3, cout) * 1e-3 if not zero else torch.zeros(3, cout))
        self.edge_bias = nn.Parameter(torch.zeros(3 * cout)) if bias else None
        self.identity = cin == cout
        self.act = {"relu": nn.ReLU(inplace=True), "prelu": nn.PReLU(cout), None: nn.Identity()}[act]
        self.deployed: nn.Conv2d | None = None
        if zero:
            for conv in (self.conv3, self.conv1_b):
                nn.init.zeros_(conv.weight)
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)
            self.identity = False

    def _edge_weight(self) -> torch.Tensor:
        """(3*cout,1,3,3) depthwise weights: mask_b * scale[b, c] for branch b, channel c."""
        w = self.masks.to(self.edge_scale)[:, None] * self.edge_scale[:, :, None, None]  # (3,cout,3,3)
        return w.reshape(3 * self.cout, 1, 3, 3)

    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:
        """The multi-branch (training) computation, before the activation."""
        y = self.conv3(x)
        b1 = self.conv1_a.bias
        y = y + self.conv1_b(_pad_with(self.conv1_a(x), b1))
        e = self.edge_in(x)
        e = F.conv2d(_pad_with(e, self.edge_in.bias), self._edge_weight(), self.edge_bias, groups=3 * self.cout)
        y = y + e.view(e.shape[0], 3, self.cout, *e.shape[-2:]).sum(1)
        return y + x if self.identity else y

    @torch.no_grad()
    def fused_kernel(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The single (cout,cin,3,3) kernel and (cout,) bias equal to the sum of the branches."""
        w = self.conv3.weight.clone()
        b = _bias_of(self.conv3).clone()  # without biases all the terms below are zero
        # 1x1 then 3x3: compose the weights; the 1x1 bias passes through the 3x3 taps.
        wa, wb = self.conv1_a.weight[:, :, 0, 0], self.conv1_b.weight  # (mid,cin), (cout,mid,3,3)
        w += torch.einsum("omhw,mi->oihw", wb, wa)
        b += _bias_of(self.conv1_b) + torch.einsum("omhw,m->o", wb, _bias_of(self.conv1_a))
        # 1x1 then depthwise mask: per output channel, scale the 1x1 weights by the mask.
        we = self._edge_weight().view(3, self.cout, 3, 3)
        wi = self.edge_in.weight[:, :, 0, 0].view(3, self.cout, self.cin)
        w += torch.einsum("bohw,boi->oihw", we, wi)
        bi = _bias_of(self.edge_in).view(3, self.cout)
        if self.edge_bias is not None:
            b += self.edge_bias.view(3, self.cout).sum(0)
        b += torch.einsum("bohw,bo->o", we, bi)
        if self.identity:
            idx = torch.arange(self.cout, device=w.device)
            w[idx, idx, 1, 1] += 1.0
        return w, (b if self.use_bias else None)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Switch to the deployed single-conv form (drops the training branches)."""
        if self.deployed is not None:
            return
        w, b = self.fused_kernel()
        conv = nn.Conv2d(self.cin, self.cout, 3, padding=1, bias=self.use_bias).to(w)
        conv.weight.copy_(w)
        if b is not None and conv.bias is not None:
            conv.bias.copy_(b)
        for name in ("conv3", "conv1_a", "conv1_b", "edge_in"):
            delattr(self, name)
        del self.edge_scale
        if self.use_bias:
            del self.edge_bias
        self.deployed = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.deployed(x) if self.deployed is not None else self.forward_branches(x)
        return self.act(y)


class FastNet(nn.Module):
    """Real-time sharpener: (N,3,H,W) float RGB [0,1] -> (N,3,H,W) (not clamped), any H, W.

    Args:
        channels: feature width at 1/``scale`` resolution.
        num_blocks: body ``RepConv`` blocks (plus one head and one tail block).
        scale: pixel-unshuffle factor (2 or 4).
        luma: predict a luma residual only (chroma passed through) instead of an RGB residual.
        bias: use biases. expand: width multiplier of the 1x1->3x3 branch. act: 'relu' | 'prelu'.
        chroma: width of an optional chroma branch (0: none; luma models only). It sees the luma
            cells and the chroma (Cb, Cr) averaged to 1/2 resolution, as 4:2:0 video carries it,
            and predicts a 1/2-resolution chroma residual, upsampled bilinearly and added to R, G,
            B through the BT.601 inverse. Its tail starts at zero, so a model grown from a
            luma-only one (``model.init``) starts with the same output.
        detail: channels of a full-resolution luma refinement after the net (0: none; a
            :class:`~kdsharp.models.common.LumaDetail` on Y in and Y out, grown the same way).
    """

    prefers_channels_last = True  # ~1.5-2x faster convs on CPU (oneDNN); load_model applies it
    identity_branches = ("chroma_", "detail_stage.")  # parameters ``model.init`` may lack: they start as the identity
    luma_unshuffle: torch.Tensor  # (s*s,3,s,s) luma + space-to-depth weights (a buffer, luma only)
    chroma_unshuffle: torch.Tensor  # (2*(s/2)^2,3,s,s) Cb, Cr of 4:2:0 + space-to-depth (chroma branch only)

    def __init__(
        self,
        channels: int = 16,
        num_blocks: int = 2,
        scale: int = 4,
        luma: bool = True,
        bias: bool = True,
        expand: int = 2,
        act: str = "relu",
        chroma: int = 0,
        detail: int = 0,
    ):
        super().__init__()
        self.arch_kwargs = dict(
            channels=channels, num_blocks=num_blocks, scale=scale, luma=luma, bias=bias, expand=expand, act=act
        )
        if chroma:  # recorded only when set, so earlier checkpoints' arch_kwargs stay as they were
            if not luma or scale % 2:
                raise ValueError("a chroma branch needs luma=True and an even scale")
            self.arch_kwargs["chroma"] = chroma
            c_cells = 2 * (scale // 2) ** 2  # Cb, Cr at 1/2 res, space-to-depth by scale/2
            self.chroma_head = RepConv(scale * scale + c_cells, chroma, expand, bias, act)
            self.chroma_body = RepConv(chroma, chroma, expand, bias, act)
            self.chroma_tail = RepConv(chroma, c_cells, expand, bias, None, zero=True)
            self.register_buffer("chroma_unshuffle", chroma_space_to_depth_kernel(scale), persistent=False)
        if detail:  # recorded only when set, like ``chroma``
            self.arch_kwargs["detail"] = detail
            self.detail_stage = LumaDetail(detail, bias)
        self.scale, self.luma, self.chroma, self.detail = scale, luma, chroma, detail
        self.pad_multiple = scale
        cio = (1 if luma else 3) * scale * scale
        self.head = RepConv(cio, channels, expand, bias, act)
        self.body = nn.Sequential(*[RepConv(channels, channels, expand, bias, act) for _ in range(num_blocks)])
        self.tail = RepConv(channels, cio, expand, bias, None, zero=True)
        self.feature_channels = {f"s{scale}": channels}
        if luma:  # luma + space-to-depth in one strided conv: (N,3,H,W) -> (N,s*s,H/s,W/s)
            self.register_buffer("luma_unshuffle", luma_space_to_depth_kernel(scale), persistent=False)

    @property
    def is_deployed(self) -> bool:
        return self.tail.deployed is not None

    def reparameterize(self) -> FastNet:
        """Fold every ``RepConv`` into a single 3x3 conv (in place); returns ``self``."""
        for m in self.modules():
            if isinstance(m, RepConv):
                m.reparameterize()
        return self

    def forward_cells(self, cells: torch.Tensor) -> torch.Tensor:
        """Luma in space-to-depth form -> its residual: (N,s*s,h,w) -> (N,s*s,h,w), any h, w.

        ``cells`` = ``pixel_unshuffle(Y, scale)``; the YUV-native video path calls this on the
        decoder's Y plane (:class:`kdsharp.infer.frames.LumaNet`)."""
        return self.tail(self.body(self.head(cells)))

    def forward_chroma_cells(self, y_cells: torch.Tensor, c_cells: torch.Tensor) -> torch.Tensor:
        """Chroma branch: luma cells (N,s*s,h,w) and 1/2-resolution Cb, Cr cells (N,2*(s/2)^2,h,w),
        both space-to-depth, Cb/Cr in [0, 1] centred on 0.5 -> their residual, same shape as ``c_cells``.
        The YUV-native video path calls this on the decoder's 4:2:0 chroma planes."""
        return self.chroma_tail(self.chroma_body(self.chroma_head(torch.cat([y_cells, c_cells], 1))))

    def chroma_delta(self, xp: torch.Tensor, y_cells: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) RGB (H, W multiples of ``scale``) and its luma cells -> (N,3,H,W) RGB change
        made by the chroma branch."""
        half = self.scale // 2
        # Cb, Cr averaged over 2x2 as 4:2:0 subsampling does, space-to-depth by s/2: one strided conv
        c_cells = F.conv2d(xp, self.chroma_unshuffle.to(xp.dtype), stride=self.scale) + 0.5
        d = self.forward_chroma_cells(y_cells, c_cells)
        d = F.pixel_shuffle(d, half) if half > 1 else d  # (N,2,H/2,W/2) chroma residual
        # to RGB at 1/2 resolution, then up (both linear, so the order does not matter)
        return F.interpolate(cbcr_delta_to_rgb(d), scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """(N,3,H,W) -> (N,3,H,W); with ``return_features`` -> (out, {'s4': (N,C,H/4,W/4)})."""
        xp, h, w = pad_to_multiple(x, self.pad_multiple)
        if self.luma:  # == pixel_unshuffle(rgb_to_y(xp)), in one pass over the image
            src = F.conv2d(xp, self.luma_unshuffle.to(xp.dtype), stride=self.scale)
        else:
            src = F.pixel_unshuffle(xp, self.scale)
        feat = self.body(self.head(src))
        out = xp + F.pixel_shuffle(self.tail(feat), self.scale)  # (N,1,H,W) broadcasts onto RGB
        if self.detail:  # before the chroma branch, whose change has no luma
            out = add_detail(self.detail_stage, xp, out)
        if self.chroma:
            out = out + self.chroma_delta(xp, src)
        out = crop_to(out, h, w)
        if not return_features:
            return out
        feats = new_features()
        feats[f"s{self.scale}"] = feat
        return out, crop_features(feats, h, w)


@register_model
def fast_y(**kwargs) -> FastNet:
    """Real-time student, luma only: 16 ch at 1/4 res, 3 body blocks, PReLU (re-parameterizable).

    PReLU, not ReLU: with ReLU a distillation run on CPU lost every body channel (all features
    zero, so the net collapsed to a constant) within the first 1000 steps.
    """
    return FastNet(**{**dict(channels=16, num_blocks=3, scale=4, luma=True, act="prelu"), **kwargs})


@register_model
def fast_rgb(**kwargs) -> FastNet:
    """Real-time student on RGB: 16 ch at 1/4 res, 2 body blocks, PReLU (re-parameterizable)."""
    return FastNet(**{**dict(channels=16, num_blocks=2, scale=4, luma=False, act="prelu"), **kwargs})


@register_model
def fast_y_wide(**kwargs) -> FastNet:
    """Wider luma net: 32 ch at 1/4 res, 4 body blocks, PReLU (~4x ``fast_y``'s MACs, ~14 frames/s at 1080p).

    A student candidate of the GPU race (docs/train/gpu3_race.md): best mean validation PSNR at the
    student's speed, but luma-only, so it leaves the chroma damage of ``lowbw``/``h264`` in place and
    lost to the RGB ResUNet-lite student on those presets; not shipped.
    """
    return FastNet(**{**dict(channels=32, num_blocks=4, scale=4, luma=True, act="prelu"), **kwargs})


@register_model
def fast_ycc(**kwargs) -> FastNet:
    """``fast_y`` plus an 8-channel chroma branch on 1/2-resolution Cb/Cr (see ``FastNet(chroma=)``):
    a luma-only model leaves the colour damage of low-bitrate calls in place."""
    return fast_y(**{**dict(chroma=8), **kwargs})


@register_model(role="fast", weights="fast.safetensors")
def fast(**kwargs) -> ChromaFromLuma:
    """The shipped real-time student: ``fast_y`` trained by distillation (ships as fast.safetensors),
    its output's chroma from luma (a :class:`~kdsharp.models.wrappers.ChromaFromLuma` wrapper: the
    colours follow its luma change; ``unwrap`` gives the ``FastNet``, which training uses; its
    checkpoints record the step, :func:`kdsharp.registry.test_time_meta`)."""
    return ChromaFromLuma(fast_y(**kwargs))
