"""Chroma from luma (kdsharp.ops.chroma), the ChromaFromLuma wrapper that the shipped `fast` and
students wear, and its chroma step on the planes of a YUV video frame."""

from __future__ import annotations

import threading

import av
import numpy as np
import pytest
import torch
from torch import nn

from kdsharp.infer.frames import ChromaStep, LumaFrames, RgbFrames, is_luma_net, make_processor, plane_view
from kdsharp.infer.sharpener import Sharpener
from kdsharp.io.video import TO_YUV_FLAGS
from kdsharp.models.fast import FastNet
from kdsharp.models.wrappers import ChromaFromLuma, deferred_chroma_step, is_luma_only, unwrap
from kdsharp.ops.chroma import box_filter, chroma_from_luma, chroma_from_luma_planes
from kdsharp.ops.color import rgb_to_y, rgb_to_ycbcr
from kdsharp.registry import create_model, load_model


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32))[None, None]


@pytest.mark.parametrize("scale", [1, 2, 3])
@pytest.mark.parametrize(
    "h,w,radius,rows", [(37, 53, 2, 8), (100, 64, 1, 7), (5, 9, 2, 1), (2, 2, 2, 64), (1, 7, 2, 4)]
)
def test_opencv_strips_give_the_torch_values(h, w, radius, rows, scale):
    rng = np.random.default_rng(h * w)
    y = rng.integers(0, 256, (h, w)).astype(np.uint8)
    y_new = np.clip(y.astype(int) + rng.integers(-9, 10, (h, w)), 0, 255).astype(np.uint8)
    cb, cr = (rng.integers(0, 256, (h, w)).astype(np.uint8) for _ in range(2))
    ref = chroma_from_luma(_t(y), torch.cat([_t(cb), _t(cr)], 1), _t(y_new), radius, 4.0, scale)[0].numpy()
    unit = [p.astype(np.float32) / 255 for p in (y, cb, cr, y_new)]  # [0,1], as RGB frames are
    ref_unit = chroma_from_luma(*(_t(p) for p in unit[:1]), torch.cat([_t(p) for p in unit[1:3]], 1), _t(unit[3]),
                                radius, 4.0 / 255**2, scale)[0].numpy()  # fmt: skip
    as_float = chroma_from_luma_planes(unit[0], unit[1:3], unit[3], radius, 4.0 / 255**2, scale=scale, rows=rows)
    as_uint8 = chroma_from_luma_planes(y, [cb, cr], y_new, radius, 4.0, scale=scale, rows=rows)
    for i in range(2):
        tol = 5e-4 if min(h, w) >= 2 * scale else 3e-3  # float32 rounding (< 1 level where the fit has 1 pixel)
        assert np.abs(as_float[i] - ref_unit[i]).max() < tol
        assert as_uint8[i].dtype == np.uint8
        assert np.abs(as_uint8[i].astype(float) - np.clip(np.rint(ref[i]), 0, 255)).max() <= 1


def test_box_filter_is_the_window_mean_with_repeated_edges():
    x = torch.arange(25.0).view(1, 1, 5, 5)
    out = box_filter(x, 1)
    assert out[0, 0, 2, 2] == x[0, 0, 1:4, 1:4].mean()
    repeated = torch.tensor([[0.0, 0, 1], [0, 0, 1], [5, 5, 6]])  # row/col -1 is row/col 0
    assert torch.isclose(out[0, 0, 0, 0], repeated.mean())
    assert box_filter(x, 0) is x
    assert torch.allclose(box_filter(x[..., :1, :1], 3), x[..., :1, :1])  # a 1-pixel frame: its own mean


def test_chroma_that_is_a_linear_function_of_luma_follows_a_new_luma():
    """C = 0.5 Y + 0.1 everywhere: the fit recovers it, so C' = 0.5 Y' + 0.1 (a sharpened edge
    is sharpened in chroma by the same slope), and with Y' = Y chroma comes back unchanged."""
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 1, 32, 64)
    y = 0.5 + 0.4 * torch.tanh((ramp - 0.5) * 6)  # a soft edge
    y_new = 0.5 + 0.45 * torch.tanh((ramp - 0.5) * 20)  # the same edge, sharper
    c = 0.5 * y + 0.1
    same = chroma_from_luma(y, c, y, 2, 1e-8, scale=1)
    new = chroma_from_luma(y, c, y_new, 2, 1e-8, scale=1)
    halved = chroma_from_luma(y, c, y_new, 1, 1e-8)  # the default: fitted at half resolution
    assert (same - c).abs().max() < 1e-3
    mid = slice(16, 48)  # where luma varies: at the flat ends the fit is regularised towards the mean
    assert (new - (0.5 * y_new + 0.1))[..., mid].abs().max() < 5e-3
    assert (halved - (0.5 * y_new + 0.1))[..., mid].abs().max() < 5e-3
    grad = lambda t: (t[..., 1:] - t[..., :-1]).abs().max()  # noqa: E731
    assert grad(new) > 2 * grad(c)  # the chroma edge got steeper


def test_flat_luma_averages_chroma_noise_and_keeps_its_mean():
    rng = np.random.default_rng(0)
    y = torch.full((1, 1, 40, 40), 0.5)
    c = torch.from_numpy(0.5 + 0.05 * rng.standard_normal((1, 2, 40, 40)).astype(np.float32))
    out = chroma_from_luma(y, c, y, 1)
    assert out.std() < 0.5 * c.std()  # averaged (a = 0 where luma is flat: C' = mean C)
    assert abs(float(out.mean() - c.mean())) < 2e-3
    assert torch.equal(chroma_from_luma(y, c, y, 0), c)  # radius 0: unchanged


class _Brighten(nn.Module):
    """A stand-in RGB model: adds a pattern to R only (changes luma and chroma)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        out[:, 0] += 0.05 * torch.sin(torch.arange(x.shape[-1], dtype=x.dtype))
        return out


def _luma_fast(seed: int = 0) -> FastNet:
    torch.manual_seed(seed)
    net = FastNet(channels=8, num_blocks=1, scale=4, luma=True)
    for p in net.parameters():
        p.data.normal_(0, 0.2)
    return net.eval()


def test_wrapper_keeps_the_output_luma_and_changes_chroma_as_the_ops_say():
    net = _luma_fast()
    wrapped = ChromaFromLuma(net).eval()
    x = torch.rand(2, 3, 40, 56)
    with torch.inference_mode():
        bare, out = net(x), wrapped(x)
    assert (rgb_to_y(out) - rgb_to_y(bare)).abs().max() < 1e-5  # luma is the model's
    ycc_in = rgb_to_ycbcr(x)
    expect = chroma_from_luma(ycc_in[:, :1], ycc_in[:, 1:], rgb_to_y(bare), wrapped.radius, wrapped.eps, wrapped.scale)
    assert (rgb_to_ycbcr(out)[:, 1:] - expect).abs().max() < 1e-3  # fitted on the input's chroma (passed through)
    assert (rgb_to_ycbcr(out)[:, 1:] - ycc_in[:, 1:]).abs().max() > 0.01


def test_wrapper_opencv_path_equals_its_torch_path_and_training_runs_the_model_alone():
    wrapped = ChromaFromLuma(_luma_fast(1)).eval()
    x = torch.rand(1, 3, 48, 64)
    with torch.inference_mode():
        fast_path = wrapped(x)
        fast_path_cl = wrapped(x.contiguous(memory_format=torch.channels_last))
    with torch.enable_grad():  # autograd on: the torch ops (what training, GPUs and ONNX export run)
        torch_path = wrapped(x.clone().requires_grad_(True))
    assert (fast_path - torch_path).abs().max() < 1e-3 and (fast_path - fast_path_cl).abs().max() < 1e-3
    wrapped.train()
    assert torch.equal(wrapped(x), wrapped.model(x))


def test_rgb_models_are_fitted_on_their_own_output():
    wrapped = ChromaFromLuma(_Brighten()).eval()
    assert not wrapped.from_input and not is_luma_only(_Brighten())
    x = torch.rand(1, 3, 32, 32)
    out, raw = wrapped(x), _Brighten()(x)
    ycc = rgb_to_ycbcr(raw)
    expect = chroma_from_luma(ycc[:, :1], ycc[:, 1:], ycc[:, :1], wrapped.radius, wrapped.eps, wrapped.scale)
    assert (rgb_to_ycbcr(out)[:, 1:] - expect).abs().max() < 1e-4


def test_the_step_runs_in_float32_under_autocast_and_for_a_half_model():
    """Local variances of a level or less vanish in bf16/fp16 (done in bf16, this step is off by
    about a level on a smooth ramp): it computes in float32 and returns the model's dtype."""
    torch.manual_seed(0)
    net = FastNet(channels=8, num_blocks=1, scale=4, luma=True).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    wrapped = ChromaFromLuma(net).eval()
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 48, 64)
    x = (ramp * torch.tensor([1.0, 0.6, 0.3]).view(1, 3, 1, 1) + torch.randn(1, 3, 48, 64) / 255).clamp(0, 1)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        raw, got = net(x), wrapped(x)
    ycc_x, y_out = rgb_to_ycbcr(x), rgb_to_y(raw.float())
    expect = chroma_from_luma(ycc_x[:, :1], ycc_x[:, 1:], y_out, wrapped.radius, wrapped.eps, wrapped.scale)
    assert got.dtype == raw.dtype
    assert (rgb_to_ycbcr(got.float())[:, 1:] - expect).abs().max() < 1e-3
    with torch.inference_mode():
        half = ChromaFromLuma(net.to(torch.bfloat16)).eval()(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16


def test_a_grey_frame_stays_grey():
    wrapped = ChromaFromLuma(_luma_fast(2)).eval()
    x = torch.rand(1, 1, 32, 48).expand(1, 3, 32, 48).contiguous()
    out = wrapped(x)
    assert (out - out[:, :1]).abs().max() < 1e-5  # R = G = B


def test_bad_wrapper_settings_are_refused():
    with pytest.raises(ValueError):
        ChromaFromLuma(_luma_fast(), radius=-1)
    with pytest.raises(ValueError):
        ChromaFromLuma(_luma_fast(), eps=0)
    with pytest.raises(ValueError):
        ChromaFromLuma(_luma_fast(), scale=0)


def test_shipped_fast_wears_the_wrapper_and_trains_as_the_bare_fastnet():
    model = load_model("fast")
    assert isinstance(model, ChromaFromLuma) and isinstance(unwrap(model), FastNet) and model.from_input
    assert isinstance(unwrap(create_model("fast")), FastNet)
    assert is_luma_net(model)


# -- the chroma step on video planes ----------------------------------------------------------------
def _yuv_frame(fmt: str, h: int = 48, w: int = 64, seed: int = 0) -> av.VideoFrame:
    rng = np.random.default_rng(seed)
    rgb = np.clip(rng.normal(128, 40, (h // 8, w // 8, 3)), 0, 255).astype(np.uint8)
    rgb = np.kron(rgb, np.ones((8, 8, 1), np.uint8))  # blocks of colour: chroma edges where luma has them
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=fmt)


@pytest.mark.parametrize("fmt", ["yuv420p", "yuv444p"])
def test_luma_frames_run_the_chroma_step_on_the_planes(fmt):
    net = _luma_fast(3)
    frame = _yuv_frame(fmt)
    bare = LumaFrames(net)([frame])[0]
    with_step = LumaFrames(ChromaFromLuma(net))([frame])[0]
    assert np.array_equal(plane_view(bare, 0), plane_view(with_step, 0))  # the same luma
    step = ChromaStep(ChromaFromLuma(net))
    expect = step(plane_view(frame, 0), plane_view(bare, 0), [plane_view(frame, 1), plane_view(frame, 2)])
    for i in (1, 2):
        assert np.array_equal(plane_view(bare, i), plane_view(frame, i))  # bare: chroma copied
        assert np.array_equal(plane_view(with_step, i), expect[i - 1])
    assert any(not np.array_equal(plane_view(with_step, i), plane_view(frame, i)) for i in (1, 2))


def test_the_deferred_step_is_off_for_own_output_fits_on_this_thread_only():
    """Inside ``deferred_chroma_step`` a wrapper that fits on its model's output (an RGB model's)
    returns the bare output; a luma model's wrapper (fit on the input) and other threads are unaffected."""
    own, luma = ChromaFromLuma(_Brighten()).eval(), ChromaFromLuma(_luma_fast(5)).eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        full_own, bare_own, full_luma = own(x), own.model(x), luma(x)
        assert not torch.equal(full_own, bare_own)
        other: list[torch.Tensor] = []
        with deferred_chroma_step():
            assert torch.equal(own(x), bare_own) and torch.equal(luma(x), full_luma)

            def in_another_thread() -> None:
                with torch.no_grad():  # (grad mode is per thread too)
                    other.append(own(x))

            worker = threading.Thread(target=in_another_thread)
            worker.start()
            worker.join()
        assert torch.equal(other[0], full_own) and torch.equal(own(x), full_own)


def test_an_rgb_models_step_runs_on_the_encoders_planes_in_the_video_path():
    """``student``'s chroma step (fit on its own output) is deferred from the RGB frame to the planes
    the encoder takes: the model's luma as it was, the chroma that ChromaStep gives from the output's
    own planes, and close to the step's RGB form; without a planar YUV encoder format, the RGB form."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1)).eval()
    with torch.no_grad():
        net[0].weight.normal_(0, 0.05)
        net[0].weight[:, :, 1, 1] += torch.eye(3)
        net[0].bias.zero_()
    wrapped = ChromaFromLuma(net).eval()
    sharpener = Sharpener(wrapped, device="cpu")
    rng = np.random.default_rng(3)
    rgb = np.clip(np.kron(rng.normal(128, 30, (8, 12, 3)), np.ones((8, 8, 1))) + rng.normal(0, 6, (64, 96, 3)), 0, 255)
    frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24").reformat(format="yuv420p")

    def to_420(frames: list[av.VideoFrame]) -> list[av.VideoFrame]:  # what the writer's prepare does
        return [f.reformat(format="yuv420p", interpolation=TO_YUV_FLAGS) for f in frames]

    proc = make_processor(sharpener, frame, out_format="yuv420p")
    assert isinstance(proc, RgbFrames) and proc.chroma_step is not None
    out = proc.finish(to_420(proc([frame])))[0]
    bare = to_420(RgbFrames(Sharpener(net, device="cpu"))([frame]))[0]
    y = plane_view(bare, 0)
    expect = ChromaStep(wrapped)(y, y, [plane_view(bare, 1), plane_view(bare, 2)])
    assert np.array_equal(plane_view(out, 0), y)  # the luma untouched
    for i in (1, 2):
        assert np.array_equal(plane_view(out, i), expect[i - 1])
    assert any(np.abs(plane_view(out, i).astype(int) - plane_view(bare, i)).mean() > 0.5 for i in (1, 2))
    for fmt in (None, "rgb24"):  # no planes to run it on: the wrapper's RGB form, in the model call
        rgb_form = make_processor(sharpener, frame, out_format=fmt)
        assert isinstance(rgb_form, RgbFrames) and rgb_form.chroma_step is None
    whole = to_420(RgbFrames(sharpener)([frame]))[0]
    for i in (1, 2):  # the two forms agree (4:2:0 planes against RGB): closer than either is to no step

        def gap(a: av.VideoFrame, b: av.VideoFrame, i: int = i) -> float:
            return float(np.abs(plane_view(a, i).astype(int) - plane_view(b, i)).mean())

        assert gap(whole, out) < 0.6 * gap(whole, bare)


def test_chroma_step_leaves_a_grey_frame_grey():
    grey = np.full((32, 48, 3), 100, np.uint8)
    grey[8:24, 16:32] = 160
    frame = av.VideoFrame.from_ndarray(grey, format="rgb24").reformat(format="yuv420p")
    out = LumaFrames(ChromaFromLuma(_luma_fast(4)))([frame])[0]
    for i in (1, 2):
        assert np.abs(plane_view(out, i).astype(int) - 128).max() <= 1


# -- checkpoints carry the step ---------------------------------------------------------------------
def test_saved_fast_loads_back_with_its_chroma_step_and_a_bare_fastnet_without(tmp_path):
    from kdsharp.registry import save_model

    model = create_model("fast").eval()
    for p in unwrap(model).parameters():
        p.data.normal_(0, 0.05)
    x = torch.rand(1, 3, 40, 56)
    save_model(model, tmp_path / "wrapped.safetensors", half=False)
    again = load_model(tmp_path / "wrapped.safetensors")
    assert isinstance(again, ChromaFromLuma) and (again.radius, again.eps, again.scale) == (
        model.radius,
        model.eps,
        model.scale,
    )
    with torch.inference_mode():
        assert (again(x) - model(x)).abs().max() < 1e-4
    save_model(unwrap(model), tmp_path / "bare.safetensors", half=False)
    assert isinstance(load_model(tmp_path / "bare.safetensors"), FastNet)


def test_a_trained_fast_exports_and_checkpoints_with_its_chroma_step(tmp_path):
    """A run of the registered `fast` records the step in its .pth checkpoint and its exported
    weights, so a retrained `fast` runs as the shipped one does."""
    from kdsharp.train import train
    from tests.test_train import tiny_config

    cfg = tiny_config(tmp_path, name="fastc", model={"name": "fast", "kwargs": {}}, schedule={"iters": 2, "warmup": 1})
    result = train(cfg)
    assert result.export is not None
    for f in (result.export, result.run_dir / "last.pth"):
        m = load_model(f)
        assert isinstance(m, ChromaFromLuma) and isinstance(unwrap(m), FastNet), f


@pytest.mark.parametrize("height", [192, 191])  # 191: 96 chroma rows of 4:2:0 for an odd luma height
def test_with_exact_reuse_the_chroma_step_recomputes_only_changed_rows_and_equals_a_full_pass(monkeypatch, height):
    """Temporal reuse keeps the chroma rows that no recomputed luma tile reaches: with tolerance 0
    the frame equals a whole-frame pass bit for bit, and fewer chroma rows were computed."""
    import kdsharp.infer.frames as frames

    net = _luma_fast(6)
    rng = np.random.default_rng(1)
    rgb = np.kron(rng.integers(30, 220, (24, 12, 3)), np.ones((8, 8, 1))).astype(np.uint8)  # 192 x 96 colour blocks
    rgb = np.ascontiguousarray(rgb[:height])
    still = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    rgb[150:170, 30:60] = (200, 40, 40)  # a change near the bottom
    moved = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    rows_computed: list[int] = []
    real = frames.chroma_from_luma_planes

    def spy(y, planes, *args, **kwargs):
        rows_computed.append(y.shape[0])
        return real(y, planes, *args, **kwargs)

    reused = LumaFrames(ChromaFromLuma(net), reuse=True, tolerance=0)
    reused([still])
    monkeypatch.setattr(frames, "chroma_from_luma_planes", spy)
    got = reused([moved])[0]
    monkeypatch.setattr(frames, "chroma_from_luma_planes", real)
    want = LumaFrames(ChromaFromLuma(net))([moved])[0]
    for i in range(3):
        assert np.array_equal(plane_view(got, i), plane_view(want, i)), i
    assert reused.reuse is not None and reused.reuse.rows_done is not None and not reused.reuse.rows_done.all()
    assert 0 < sum(rows_computed) < plane_view(moved, 1).shape[0]  # a part of the 96 chroma rows


def test_the_rgb_form_gives_the_same_values_on_one_thread_or_several():
    """The fit and the full-resolution strips run in parts on threads: the result is the same, to the bit."""
    from kdsharp.ops.chroma import chroma_from_luma_rgb

    rng = np.random.default_rng(4)
    src = rng.random((301, 203, 3), dtype=np.float32)
    out = np.clip(src + 0.05 * rng.standard_normal(src.shape, dtype=np.float32), 0, 1)
    one = chroma_from_luma_rgb(src, out, np.empty_like(out), rows=8, threads=1)
    for n in (2, 3):
        assert np.array_equal(chroma_from_luma_rgb(src, out, np.empty_like(out), rows=8, threads=n), one)
