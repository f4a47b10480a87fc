"""Architectures: shapes at odd sizes, features, gradients, identity at init, the official Restormer
state-dict layout, and structural re-parameterization of the fast student."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from kdsharp.models import FastNet, LocalWindows, Restormer, ResUNet, ResUNetLite, UNet, unwrap
from kdsharp.models.common import LumaDetail, add_pixel_shuffle, cell_major_order, pad_to_multiple
from kdsharp.models.restormer import BiasFreeLayerNorm, WithBiasLayerNorm
from kdsharp.ops.color import rgb_to_y, rgb_to_ycbcr
from kdsharp.registry import create_model, list_models

STUDENTS = ["student", "student_nokd", "unet", "resunet_lite", "fast", "fast_y", "fast_rgb"]
SMALL_RESTORMER = dict(dim=8, num_blocks=[1, 2, 1, 2], num_refinement_blocks=1, heads=[1, 2, 4, 8])


def _perturb(model: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> torch.nn.Module:
    """Add noise to every parameter (zero-initialised tails would otherwise block gradients)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_keeps_odd_sizes_and_reports_features(name):
    torch.manual_seed(0)
    model = unwrap(create_model(name)).eval()  # the architecture (the teacher's entry adds windows)
    x = torch.rand(2, 3, 37, 53)
    with torch.no_grad():
        out = model(x)
        out2, feats = model(x, return_features=True)
    assert out.shape == x.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(out, out2)
    assert list(feats) == list(model.feature_channels) and feats
    for key, f in feats.items():
        k = int(key[1:])
        assert key in {"s1", "s2", "s4", "s8", "s16", "s32"}
        assert f.shape == (2, model.feature_channels[key], -(-37 // k), -(-53 // k)), key


def test_scales_are_ordered_finest_first():
    for name in ("restormer_tiny", "resunet_teacher", "student", "unet"):
        scales = [int(k[1:]) for k in unwrap(create_model(name)).feature_channels]
        assert scales == sorted(scales), name
    assert list(create_model("resunet_teacher").feature_channels) == ["s1", "s2", "s4", "s8"]
    assert list(create_model("restormer_tiny").feature_channels) == ["s1", "s2", "s4", "s8"]


@pytest.mark.parametrize("name", STUDENTS + ["resunet_teacher"])
def test_students_are_the_identity_at_init(name):
    torch.manual_seed(1)
    model = unwrap(create_model(name)).eval()  # the architecture (fast's chroma step is a test-time wrapper)
    x = torch.rand(1, 3, 29, 41)
    with torch.no_grad():
        assert torch.allclose(model(x), x, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Restormer(**SMALL_RESTORMER),
        lambda: Restormer(**SMALL_RESTORMER, bias=True, LayerNorm_type="BiasFree"),
        lambda: ResUNet(channels=[8, 16, 32], enc_blocks=[1, 1, 1], dec_blocks=[1, 1]),
        lambda: ResUNetLite(channels=[8, 16, 16]),
        lambda: UNet(channels=[8, 16, 16]),
        lambda: FastNet(channels=8, num_blocks=1),
        lambda: FastNet(channels=8, num_blocks=1, luma=False, bias=False, act="prelu", scale=2),
    ],
    ids=["restormer", "restormer_biasfree", "resunet", "resunet_lite", "unet", "fast", "fast_rgb_nobias"],
)
def test_gradients_reach_every_parameter(make):
    torch.manual_seed(2)
    model = _perturb(make()).train()
    x = torch.rand(2, 3, 24, 40)
    out, feats = model(x, return_features=True)
    loss = (out - x.flip(-1)).abs().mean() + sum(f.pow(2).mean() for f in feats.values())
    loss.backward()
    for n, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n


def _official_restormer_layout(dim=48, num_blocks=(4, 6, 6, 8), refinement=4, heads=(1, 2, 4, 8), ffn=2.66):
    """Names and shapes of the official ``basicsr/models/archs/restormer_arch.py`` state dict
    (bias=False, LayerNorm 'WithBias', dual_pixel_task=False), in registration order."""

    def block(prefix, d, h):
        hid = int(d * ffn)
        return [
            (f"{prefix}.norm1.body.weight", (d,)),
            (f"{prefix}.norm1.body.bias", (d,)),
            (f"{prefix}.attn.temperature", (h, 1, 1)),
            (f"{prefix}.attn.qkv.weight", (3 * d, d, 1, 1)),
            (f"{prefix}.attn.qkv_dwconv.weight", (3 * d, 1, 3, 3)),
            (f"{prefix}.attn.project_out.weight", (d, d, 1, 1)),
            (f"{prefix}.norm2.body.weight", (d,)),
            (f"{prefix}.norm2.body.bias", (d,)),
            (f"{prefix}.ffn.project_in.weight", (2 * hid, d, 1, 1)),
            (f"{prefix}.ffn.dwconv.weight", (2 * hid, 1, 3, 3)),
            (f"{prefix}.ffn.project_out.weight", (d, hid, 1, 1)),
        ]

    def stage(name, n, d, h):
        return [kv for i in range(n) for kv in block(f"{name}.{i}", d, h)]

    c1, c2, c3, c4 = dim, 2 * dim, 4 * dim, 8 * dim
    return (
        [("patch_embed.proj.weight", (c1, 3, 3, 3))]
        + stage("encoder_level1", num_blocks[0], c1, heads[0])
        + [("down1_2.body.0.weight", (c1 // 2, c1, 3, 3))]
        + stage("encoder_level2", num_blocks[1], c2, heads[1])
        + [("down2_3.body.0.weight", (c2 // 2, c2, 3, 3))]
        + stage("encoder_level3", num_blocks[2], c3, heads[2])
        + [("down3_4.body.0.weight", (c3 // 2, c3, 3, 3))]
        + stage("latent", num_blocks[3], c4, heads[3])
        + [("up4_3.body.0.weight", (2 * c4, c4, 3, 3)), ("reduce_chan_level3.weight", (c3, c4, 1, 1))]
        + stage("decoder_level3", num_blocks[2], c3, heads[2])
        + [("up3_2.body.0.weight", (2 * c3, c3, 3, 3)), ("reduce_chan_level2.weight", (c2, c3, 1, 1))]
        + stage("decoder_level2", num_blocks[1], c2, heads[1])
        + [("up2_1.body.0.weight", (2 * c2, c2, 3, 3))]
        + stage("decoder_level1", num_blocks[0], c2, heads[0])
        + stage("refinement", refinement, c2, heads[0])
        + [("output.weight", (3, c2, 3, 3))]
    )


def test_default_restormer_state_dict_equals_the_official_layout():
    with torch.device("meta"):
        model = Restormer()
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    expected = _official_restormer_layout()
    assert len(expected) == 494  # 44 transformer blocks x 11 tensors + 10
    assert ours == expected
    assert sum(p.numel() for p in model.parameters()) == 26_126_644  # the paper's 26.13M


def test_restormer_presets_and_dual_pixel_layout():
    with torch.device("meta"):
        tiny = create_model("restormer_tiny")
        dual = Restormer(inp_channels=6, dual_pixel_task=True, dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1)
    assert [(k, tuple(v.shape)) for k, v in tiny.state_dict().items()] == _official_restormer_layout(
        24, (1, 2, 2, 3), 1
    )
    sd = dual.state_dict()
    assert tuple(sd["skip_conv.weight"].shape) == (16, 8, 1, 1) and tuple(sd["patch_embed.proj.weight"].shape)[1] == 6
    real = Restormer(inp_channels=6, dual_pixel_task=True, dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1)
    assert real(torch.rand(1, 6, 20, 28)).shape == (1, 3, 20, 28)


def test_layer_norms_match_the_official_formulas():
    x = torch.randn(4, 7, 10) * 3 + 1
    ln, bf = WithBiasLayerNorm(10), BiasFreeLayerNorm(10)
    _perturb(ln), _perturb(bf)
    mu, var = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, unbiased=False)
    assert torch.allclose(ln(x), (x - mu) / torch.sqrt(var + 1e-5) * ln.weight + ln.bias, atol=1e-5)
    assert torch.allclose(bf(x), x / torch.sqrt(var + 1e-5) * bf.weight, atol=1e-5)


def test_restormer_pads_to_a_multiple_of_8_and_crops_back():
    torch.manual_seed(3)
    model = _perturb(Restormer(**SMALL_RESTORMER)).eval()
    x = torch.rand(1, 3, 21, 30)
    padded, h, w = pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (24, 32) and (h, w) == (21, 30)
    assert torch.equal(padded[..., :21, :30], x)
    with torch.no_grad():
        assert torch.allclose(model(x), model(padded)[..., :21, :30], atol=1e-5)
    assert pad_to_multiple(torch.rand(1, 3, 3, 5), 8)[0].shape[-2:] == (8, 8)  # too small to reflect


def test_local_windows_wrap_any_model_at_test_time_only():
    from kdsharp.ops.tiling import tiled_forward

    torch.manual_seed(5)
    arch = _perturb(Restormer(**SMALL_RESTORMER)).eval()
    model = LocalWindows(arch, 32)
    assert model.overlap == 10 and "local_window" not in arch.arch_kwargs and unwrap(model) is arch
    assert list(model.state_dict()) == [f"model.{k}" for k in arch.state_dict()]
    small, large = torch.rand(1, 3, 30, 32), torch.rand(1, 3, 40, 75)
    with torch.no_grad():
        assert torch.equal(model(small), arch(small))  # fits one window: whole
        windowed = model(large)
        assert torch.allclose(windowed, tiled_forward(arch, large, 32, 10, align=8), atol=1e-6)  # 8 px cells
        whole = arch(large)
        assert windowed.shape == whole.shape and not torch.allclose(windowed, whole, atol=1e-4)
        out, feats = arch(large, return_features=True)  # the architecture: one output, with or without features
        assert torch.equal(out, whole) and feats["s1"].shape[-2:] == (40, 75)
    model.train()
    assert torch.allclose(model(large), whole, atol=1e-5)  # training: always whole
    with torch.no_grad():  # any model, e.g. a student
        student = _perturb(create_model("unet")).eval()
        cell = LocalWindows(student, 48, 24).cell
        assert torch.allclose(LocalWindows(student, 48, 24)(large), tiled_forward(student, large, 48, 24, align=cell))
    with pytest.raises(ValueError, match="32 px"):
        LocalWindows(arch, 8)
    with pytest.raises(TypeError, match="local_window"):
        Restormer(**SMALL_RESTORMER, local_window=32)  # no longer an architecture keyword


class _Cells8(torch.nn.Module):
    """A random model on 8x8 px cells (space-to-depth, a 3x3 conv over cells, back), padding to a
    multiple of 8 as Restormer does: its output depends on where the cell grid starts."""

    pad_multiple = 8

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3 * 64, 3 * 64, 3, padding=1)

    def forward(self, x):
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % 8, 0, -h % 8), mode="replicate")
        return F.pixel_shuffle(self.conv(F.pixel_unshuffle(x, 8)), 8)[..., :h, :w]


@pytest.mark.parametrize("size", [(250, 250), (201, 330)])
def test_local_windows_start_on_the_models_cells_and_match_the_whole_image(size):
    """The last window along each axis started at size - window (250 px: 58), off the 8 px cell grid,
    so the pixels only it covers came out of a shifted grid; now every start is a multiple of 8."""
    torch.manual_seed(0)
    model = _Cells8().eval()
    x = torch.rand(1, 3, *size)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-2:]))  # windows did run
    with torch.no_grad():
        whole = model(x)
        windowed = LocalWindows(model, 192)(x)
    assert len(seen) > 2 and (windowed - whole).abs().max() < 1e-5
    teacher = create_model("teacher")
    assert teacher.cell == 8  # the registered teacher's Restormer pads to multiples of 8


def test_registered_teacher_runs_192_px_windows():
    teacher = create_model("teacher")
    assert isinstance(teacher, LocalWindows) and teacher.window == 192 and isinstance(unwrap(teacher), Restormer)
    assert create_model("teacher").state_dict().keys() == {
        f"model.{k}" for k in create_model("restormer_tiny").state_dict()
    }


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(bias=False), dict(luma=False, channels=8, act="relu"), dict(scale=2, channels=8, num_blocks=1)],
)
def test_reparameterized_fast_equals_its_training_form(kwargs):
    torch.manual_seed(4)
    model = _perturb(FastNet(**kwargs), 0.1).eval()
    x = torch.rand(2, 3, 45, 66)
    with torch.no_grad():
        ref, ref_feats = model(x, return_features=True)
        deployed = copy.deepcopy(model).reparameterize()
        out, feats = deployed(x, return_features=True)
    assert deployed.is_deployed and not model.is_deployed
    assert (out - ref).abs().max() < 1e-4
    for k in ref_feats:
        assert (feats[k] - ref_feats[k]).abs().max() < 1e-4
    convs = [m for m in deployed.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.kernel_size == (3, 3) for c in convs) and len(convs) == kwargs.get("num_blocks", 2) + 2
    n_train = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in deployed.parameters()) < n_train
    deployed.reparameterize()  # idempotent
    with torch.no_grad():
        assert torch.equal(deployed(x), out)


def test_registered_fast_reparameterizes_within_tolerance():
    torch.manual_seed(5)
    model = _perturb(unwrap(create_model("fast")), 0.1).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert (copy.deepcopy(model).reparameterize()(x) - model(x)).abs().max() < 1e-4


def test_luma_fast_changes_only_luma():
    torch.manual_seed(6)
    model = _perturb(create_model("fast_y"), 0.1).eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        out = model(x)
    assert (out - x).abs().max() > 1e-3  # it does change the image ...
    ycc_in, ycc_out = rgb_to_ycbcr(x), rgb_to_ycbcr(out)
    assert torch.allclose(ycc_in[:, 1:], ycc_out[:, 1:], atol=1e-5)  # ... but not its chroma


def test_fast_on_channels_last_input_matches_contiguous():
    torch.manual_seed(7)
    model = _perturb(unwrap(create_model("fast")), 0.03).eval().reparameterize()
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ref, cl, rtol=1e-4, atol=1e-4)


def test_arch_kwargs_rebuild_the_same_architecture():
    for name in list_models():
        with torch.device("meta"):
            model = unwrap(create_model(name))  # architectures record arch_kwargs; wrappers do not
            again = type(model)(**model.arch_kwargs)
        a = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert a == {k: tuple(v.shape) for k, v in again.state_dict().items()}, name


def test_fast_luma_stem_is_unshuffled_bt601_luma():
    model = create_model("fast_y")
    x = torch.rand(2, 3, 16, 24)
    stem = torch.nn.functional.conv2d(x, model.luma_unshuffle, stride=4)
    from kdsharp.ops.color import rgb_to_y

    assert torch.allclose(stem, torch.nn.functional.pixel_unshuffle(rgb_to_y(x), 4), atol=1e-6)


@pytest.mark.parametrize("name", ["fast", "fast_y_wide", "resunet_luma", "resunet_luma4"])
def test_luma_models_forward_cells_is_forward_on_the_y_plane(name):
    """The YUV-native path runs ``forward_cells`` on the Y plane; it must equal ``forward`` on RGB."""
    torch.manual_seed(0)
    model = unwrap(create_model(name)).eval()
    for p in model.parameters():  # the tails start at zero: make the residual non-trivial
        torch.nn.init.normal_(p, std=0.05)
    x = torch.rand(2, 3, 37, 53)
    with torch.no_grad():
        out = model(x)
        yp, h, w = pad_to_multiple(rgb_to_y(x), model.pad_multiple)
        cells = F.pixel_unshuffle(yp, model.scale)
        dy = F.pixel_shuffle(model.forward_cells(cells), model.scale)[..., :h, :w]
    assert model.luma and dy.shape == (2, 1, 37, 53)
    torch.testing.assert_close(out, x + dy, atol=1e-5, rtol=0)


def test_chroma_branch_grows_from_a_luma_model_and_changes_only_colour():
    """``fast_ycc`` = ``fast`` + a chroma branch: initialised from ``fast`` it gives the same output
    (the branch's tail starts at zero); trained, its branch leaves luma alone and folds like the rest."""
    torch.manual_seed(0)
    luma_only = create_model("fast_y").eval()
    for p in luma_only.parameters():
        torch.nn.init.normal_(p, std=0.05)
    ycc = create_model("fast_ycc").eval()
    assert ycc.arch_kwargs["chroma"] == 8 and "chroma" not in luma_only.arch_kwargs
    ycc.load_state_dict({**ycc.state_dict(), **luma_only.state_dict()})
    x = torch.rand(2, 3, 37, 53)
    with torch.no_grad():
        torch.testing.assert_close(ycc(x), luma_only(x), atol=1e-6, rtol=0)
        for name, p in ycc.named_parameters():  # a trained chroma branch, and a luma branch doing nothing
            if name.startswith("chroma_"):
                torch.nn.init.normal_(p, std=0.05)
            elif name.startswith("tail."):
                torch.nn.init.zeros_(p)
        out = ycc(x)
        assert (out - x).abs().mean() > 1e-3  # the colour changed
        torch.testing.assert_close(rgb_to_y(out), rgb_to_y(x), atol=1e-5, rtol=0)  # the luma did not
        ycc.reparameterize()
        torch.testing.assert_close(ycc(x), out, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="chroma"):
        FastNet(luma=False, chroma=8)


def test_detail_stage_grows_from_a_model_without_it_and_is_full_resolution():
    """``detail``: a full-resolution luma refinement after the U-Net. Grown from the same U-Net
    without it, the output is unchanged (its last conv starts at zero); trained, it changes single
    pixels (finer than the 4x4 cells the U-Net predicts in) and only luma."""
    torch.manual_seed(0)
    base = create_model("resunet_lite").eval()
    for p in base.parameters():
        torch.nn.init.normal_(p, std=0.05)
    grown = create_model("resunet_lite", detail=8).eval()
    assert grown.arch_kwargs["detail"] == 8 and "detail" not in base.arch_kwargs
    missing = set(grown.state_dict()) - set(base.state_dict())
    assert missing and all(k.startswith(grown.identity_branches) for k in missing)
    grown.load_state_dict({**grown.state_dict(), **base.state_dict()})
    x = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        torch.testing.assert_close(grown(x), base(x), atol=1e-6, rtol=0)
        torch.nn.init.normal_(grown.detail_stage.conv_out.weight, std=0.05)
        torch.nn.init.zeros_(grown.tail.weight), torch.nn.init.zeros_(grown.tail.bias)
        out = grown(x)
        delta = out - x
        torch.testing.assert_close(delta[:, 0], delta[:, 2])  # one dY on R, G and B: luma only
        cells = F.pixel_unshuffle(delta[:, :1, :36, :52], 4)  # not constant within a 4x4 cell
        assert (cells - cells.mean(1, keepdim=True)).abs().max() > 1e-4
        assert out.shape == x.shape and grown(x, return_features=True)[0].shape == x.shape


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("name", ["resunet_lite", "resunet_luma", "fast_y", "fast_rgb"])
def test_detail_stage_is_the_stage_on_the_coarse_output(name, channels_last):
    """Folded into the residual cells, the stage computes exactly: coarse = the net without it,
    out = coarse + LumaDetail(Y(input), Y(coarse)) on R, G and B -- channels-last included, where
    CPU inference computes Y and the final add with OpenCV (the reference here runs in torch)."""
    torch.manual_seed(1)
    grown = create_model(name, detail=4).eval()
    for p in grown.parameters():
        torch.nn.init.normal_(p, std=0.05)
    base = create_model(name).eval()
    base.load_state_dict({k: v for k, v in grown.state_dict().items() if not k.startswith("detail_stage.")})
    x = torch.rand(2, 3, 32, 48)  # a multiple of every net's padding: no border effects
    with torch.no_grad():
        coarse = base(x)
        ref = coarse + grown.detail_stage.conv_out(
            F.relu(grown.detail_stage.conv_in(torch.cat([rgb_to_y(x), rgb_to_y(coarse)], 1)))
        )
    if channels_last:
        grown, x = grown.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = grown(x)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=0)
    with torch.enable_grad():  # the torch path (training) gives the same
        torch.testing.assert_close(grown(x).detach(), out, atol=2e-6, rtol=0)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("channels", "s"), [(3, 4), (3, 2), (1, 4), (2, 3)])
def test_add_pixel_shuffle_of_cell_major_cells_is_pixel_shuffle(channels, s, channels_last):
    """Cells whose channels are in cell-major order (the tail's rows reordered) added by strided
    views give exactly ``x + pixel_shuffle(cells)``, in either layout, with the same gradients."""
    torch.manual_seed(0)
    x = torch.rand(2, channels, 5 * s, 7 * s)
    cells = torch.rand(2, channels * s * s, 5, 7)
    order = cell_major_order(channels, s)
    assert sorted(order) == list(range(channels * s * s))
    reordered = cells[:, order]
    if channels_last:
        x, reordered = (t.contiguous(memory_format=torch.channels_last) for t in (x, reordered))
    x.requires_grad_(True), reordered.requires_grad_(True)
    out = add_pixel_shuffle(x, reordered, s, cells_ijc=True)
    assert torch.equal(out, x.detach() + F.pixel_shuffle(cells, s))
    assert torch.equal(add_pixel_shuffle(x.detach(), cells, s), out.detach())  # the plain order
    if channels_last:
        assert out.is_contiguous(memory_format=torch.channels_last)
    weight = torch.rand_like(out)
    (out * weight).sum().backward()
    assert torch.equal(x.grad, weight)
    assert torch.equal(reordered.grad, F.pixel_unshuffle(weight, s)[:, order])


def test_rgb_unet_in_channels_last_matches_contiguous_layout():
    """The channels-last forward (tail rows reordered, strided shuffle-add) computes the same
    output and gradients as the contiguous one, on sizes that need padding."""
    torch.manual_seed(0)
    model = _perturb(unwrap(create_model("student")))
    x = torch.rand(2, 3, 37, 53)
    outs, grads = [], []
    for layout in (torch.contiguous_format, torch.channels_last):
        model.zero_grad()
        model.to(memory_format=layout)
        xi = x.contiguous(memory_format=layout).detach().clone(memory_format=layout).requires_grad_(True)
        out = model(xi)
        (out * out).sum().backward()
        outs.append(out.detach())
        grads.append((xi.grad, model.tail.weight.grad.clone()))
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(grads[1][0], grads[0][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grads[1][1], grads[0][1], atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("size", [(23, 17), (1, 5), (2, 9), (40, 33)])
def test_detail_stage_in_strips_is_the_whole_frame_stage(size):
    """The CPU inference path (OpenCV filters, horizontal strips with a 2-row halo) gives the torch
    convs' output whatever the strip height, frame borders included, and every strip height the
    same floats as one strip over the whole frame."""
    torch.manual_seed(0)
    stage = LumaDetail(8)
    torch.nn.init.normal_(stage.conv_out.weight, std=0.1)
    y_in, y_coarse = torch.rand(2, 1, *size), torch.rand(2, 1, *size)
    with torch.no_grad():
        ref = stage.conv_out(F.relu(stage.conv_in(torch.cat([y_in, y_coarse], 1))))
        whole = stage._forward_planes(y_in, y_coarse, rows=size[0])
        torch.testing.assert_close(whole, ref, atol=1e-6, rtol=0)
        for rows in (1, 2, 3, 5, None):
            assert torch.equal(stage._forward_planes(y_in, y_coarse, rows=rows), whole)
        assert torch.equal(stage(y_in, y_coarse), whole)  # the module's no-grad CPU forward takes this path


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("size", [(37, 53), (5, 9), (3, 40), (32, 32)])
def test_pad_to_multiple_is_torch_pad_in_the_input_layout(size, channels_last):
    """Bottom/right padding = ``F.pad`` reflect (replicate when the image is too small to reflect),
    corner included, in the input's memory layout, with the same gradient."""
    x = torch.randn(2, 3, *size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y, h, w = pad_to_multiple(x, 16)
    ph, pw = (16 - h % 16) % 16, (16 - w % 16) % 16
    ref_x = x.detach().clone().requires_grad_(True)
    ref = F.pad(ref_x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
    assert torch.equal(y, ref) and (h, w) == size
    if ph or pw:
        layout = torch.channels_last if channels_last else torch.contiguous_format
        assert y.is_contiguous(memory_format=layout)
    (y * ref.detach()).sum().backward()
    (ref * ref.detach()).sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, atol=1e-5, rtol=1e-5)  # summation order differs


def test_rgb_head_runs_unshuffle_and_1x1_conv_as_one_strided_conv():
    """A 1x1 head after the space-to-depth stem is computed as one conv with kernel = stride =
    stem on the RGB frame: the same features as pixel-unshuffle then the 1x1 conv."""
    torch.manual_seed(0)
    model = _perturb(create_model("resunet_lite")).eval()
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        ref = model.head(F.pixel_unshuffle(x, 4))
        torch.testing.assert_close(model._head(x), ref, atol=1e-6, rtol=0)
        xl = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(model._head(xl), ref, atol=1e-6, rtol=0)


def test_tail_kernel_1_is_recorded_and_starts_as_the_identity():
    """``tail_kernel=1``: each 4x4 cell's residual from its own features; recorded in
    ``arch_kwargs`` (the default 3 is not, so older checkpoints rebuild as they were)."""
    model = create_model("resunet_lite", tail_kernel=1).eval()
    assert model.tail.kernel_size == (1, 1) and model.arch_kwargs["tail_kernel"] == 1
    assert "tail_kernel" not in create_model("resunet_lite").arch_kwargs
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        assert torch.equal(model(x), x)
    assert type(model)(**model.arch_kwargs).tail.kernel_size == (1, 1)
