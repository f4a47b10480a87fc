"""Sharpener on arrays and tensors: layouts, bit depth, odd sizes, tiling, OOM fallback, ONNX backend."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import make_test_image
from test_infer_helpers import tiny_model

from kdsharp.errors import KdsharpError
from kdsharp.infer.backends import OnnxBackend, TorchBackend, is_out_of_memory, make_backend, resolve_device
from kdsharp.infer.sharpener import Sharpener
from kdsharp.infer.tiling import forward_any_size, tiled_forward


@pytest.fixture(scope="module")
def sharpener():
    return Sharpener(tiny_model(), device="cpu")


def reference(img_bgr_u8: np.ndarray) -> np.ndarray:
    """The tiny model applied by hand: BGR uint8 -> BGR uint8."""
    x = torch.from_numpy(img_bgr_u8[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = tiny_model()(x).clamp(0, 1)
    return (y[0].permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8)


@pytest.mark.parametrize("h,w", [(1, 1), (7, 5), (33, 47), (64, 64)])
def test_image_bgr_any_size(sharpener, h, w):
    img = make_test_image(max(h, 2), max(w, 2))[:h, :w]
    out = sharpener.image(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - reference(img).astype(int)).max() <= 1
    assert not np.array_equal(out, img) or h * w == 1


def test_grey_stays_grey(sharpener):
    grey = make_test_image(20, 24)[:, :, 1]
    out = sharpener.image(grey)
    assert out.shape == grey.shape and out.dtype == np.uint8
    assert np.array_equal(sharpener.image(grey[:, :, None]), out[:, :, None])  # HxWx1 stays HxWx1


def test_alpha_passed_through_untouched(sharpener):
    bgr = make_test_image(20, 24)
    alpha = np.random.default_rng(3).integers(0, 256, (20, 24), dtype=np.uint8)
    out = sharpener.image(np.dstack([bgr, alpha]))
    assert out.shape == (20, 24, 4)
    assert np.array_equal(out[:, :, 3], alpha)
    assert np.abs(out[:, :, :3].astype(int) - reference(bgr).astype(int)).max() <= 1


def test_16bit_processed_in_float(sharpener):
    img16 = make_test_image(16, 16).astype(np.uint16) * 256 + 100  # values an 8-bit path could not represent
    out = sharpener.image(img16)
    assert out.dtype == np.uint16 and out.shape == img16.shape
    assert len(np.unique(out % 257)) > 10  # real 16-bit output, not 8-bit scaled up
    x = torch.from_numpy(img16[:, :, ::-1].astype(np.float32) / 65535).permute(2, 0, 1)[None]
    with torch.no_grad():
        want = (tiny_model()(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()[:, :, ::-1] * 65535).round()
    assert np.abs(out.astype(np.float64) - want).max() <= 2


def test_tensor_shapes_and_range(sharpener):
    x = torch.rand(2, 3, 11, 13)
    y = sharpener.tensor(x)
    assert y.shape == x.shape and y.dtype == torch.float32 and y.min() >= 0 and y.max() <= 1
    assert sharpener.tensor(x[0]).shape == (3, 11, 13)
    with pytest.raises(KdsharpError):
        sharpener.tensor(torch.rand(1, 4, 8, 8))
    for raw in ((x * 255).to(torch.uint8), x.numpy()):  # was all white (uint8), an AttributeError (numpy)
        with pytest.raises(KdsharpError, match="expected a float tensor in"):
            sharpener.tensor(raw)
    assert torch.allclose(sharpener.tensor(x.half()), y, atol=2e-3)  # fp16 in, float32 out
    # the same result for a channels-last input; oneDNN may pick another conv algorithm for that layout
    # (bit-equal on the Intel Xeon, 2e-7 apart on an AMD EPYC), so float rounding is allowed, no more
    assert torch.allclose(sharpener.tensor(x.contiguous(memory_format=torch.channels_last)), y, rtol=0, atol=1e-6)
    with pytest.raises(KdsharpError):
        sharpener.image(np.zeros((4, 4, 3), np.float32))


def test_an_empty_image_or_tensor_is_a_one_line_error(sharpener):
    # was a RuntimeError from deep inside the model ("Kernel size can't be greater than actual input size")
    for img in (np.zeros((0, 4, 3), np.uint8), np.zeros((4, 0), np.uint16), np.zeros((0, 0, 4), np.uint8)):
        with pytest.raises(KdsharpError, match="at least 1x1 pixels"):
            sharpener.image(img)
    with pytest.raises(KdsharpError, match="at least 1x1 pixels"):
        sharpener.tensor(torch.zeros(1, 3, 0, 5))
    with pytest.raises(KdsharpError, match="at least 1x1 pixels"):
        Sharpener("fast", device="cpu").image(np.zeros((0, 4, 3), np.uint8))


def test_a_negative_tile_overlap_is_refused():
    # tiles 5 px apart left uncovered pixels: black stripes (zeros) in the output, silently
    with pytest.raises(KdsharpError, match="tile_overlap must be 0 or more"):
        Sharpener(tiny_model(), device="cpu", tile=32, tile_overlap=-5)
    assert (
        Sharpener(tiny_model(), device="cpu", tile=32, tile_overlap=0).image(np.full((70, 90, 3), 128, np.uint8)).min()
        > 0
    )


@pytest.mark.parametrize("tile", [-5, 1, 15])
def test_a_tile_below_the_minimum_names_it_and_zero_is_off(tile):
    """tile=-5 said "tile=-5 must be larger than tile_overlap=0"; tile=1 ran 1-px tiles (noise)."""
    with pytest.raises(KdsharpError) as info:
        Sharpener(tiny_model(), device="cpu", tile=tile)
    assert str(info.value) == f"tile={tile}: use tile=0 (whole images) or tiles of at least 16 px (tile=16)"
    assert info.value.params == ("tile",)

    class Cells32(torch.nn.Module):
        pad_multiple = 32

        def forward(self, x):
            return x

    with pytest.raises(KdsharpError, match="at least 32 px"):  # a tile smaller than one cell of the model
        Sharpener(Cells32(), device="cpu", tile=16)
    img = make_test_image(40, 50)
    off = Sharpener(tiny_model(), device="cpu", tile=0)
    assert off.tile is None and np.array_equal(off.image(img), Sharpener(tiny_model(), device="cpu").image(img))


class _CountsThreads(torch.nn.Module):
    """The identity, noting torch's thread count at each call."""

    def __init__(self):
        super().__init__()
        self.seen: list[int] = []

    def forward(self, x):
        self.seen.append(torch.get_num_threads())
        return x


def test_threads_apply_to_each_call_and_are_restored_after_it():
    """Sharpener(threads=N) set torch's process-wide count for good, on construction."""
    from kdsharp.infer.threads import torch_threads

    before = torch.get_num_threads()
    n = 2 if before != 2 else 1
    model = _CountsThreads().eval()  # in eval mode: shared, not copied
    s = Sharpener(model, device="cpu", threads=n)
    assert torch.get_num_threads() == before
    s.image(make_test_image(20, 30))
    s.frames(torch.zeros(1, 8, 8, 3, dtype=torch.uint8))
    assert model.seen == [n, n] and torch.get_num_threads() == before
    with torch_threads(3 - n):  # a block that set a count (a video's workers) keeps it
        s.tensor(torch.rand(1, 3, 8, 8))
    assert model.seen[-1] == 3 - n and torch.get_num_threads() == before


def test_identity_model_does_not_touch_input_tensor():
    s = Sharpener(torch.nn.Identity(), device="cpu")
    x = torch.rand(1, 3, 8, 8) * 1.5
    before = x.clone()
    s.tensor(x)
    assert torch.equal(x, before)


@pytest.mark.parametrize("tile,overlap", [(32, 16), (40, 12), (64, 32)])
def test_tiled_equals_untiled(tile, overlap):
    model = tiny_model()
    x = torch.rand(2, 3, 75, 101, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = model(x)
        tiled = tiled_forward(model, x, tile, overlap)
    assert tiled.shape == whole.shape
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    assert (tiled[inner] - whole[inner]).abs().max() < 1e-3
    assert (tiled - whole).abs().max() < 1e-3  # the radius-2 model is exact even at borders


def test_sharpener_tile_option_matches_whole():
    img = make_test_image(70, 90)
    whole = Sharpener(tiny_model(), device="cpu").image(img)
    tiled = Sharpener(tiny_model(), device="cpu", tile=32, tile_overlap=16).image(img)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1
    with pytest.raises(KdsharpError, match="tile"):
        Sharpener(tiny_model(), device="cpu", tile=16, tile_overlap=16)


def test_out_of_memory_retries_with_tiles():
    model = tiny_model()
    calls = []

    def limited(x):
        calls.append(tuple(x.shape[-2:]))
        if x.shape[-1] * x.shape[-2] > 48 * 48:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        with torch.no_grad():
            return model(x)

    x = torch.rand(1, 3, 100, 130)
    y, tile = forward_any_size(limited, x, tile=None, overlap=16)
    assert tile is not None and tile <= 48 and len(calls) > 2
    with torch.no_grad():
        assert (y - model(x)).abs().max() < 1e-3

    def always_oom(x):
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(KdsharpError, match="out of memory"):
        forward_any_size(always_oom, x, overlap=16)
    with pytest.raises(ValueError):  # other errors are not swallowed
        forward_any_size(lambda t: (_ for _ in ()).throw(ValueError("bug")), x)


def test_sharpener_remembers_working_tile():
    s = Sharpener(tiny_model(), device="cpu", tile_overlap=8)
    inner = s.backend

    def limited(x):
        if x.shape[-1] * x.shape[-2] > 40 * 40:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory")
        return inner(x)

    s.backend = limited
    out = s.image(make_test_image(90, 90))
    assert out.shape == (90, 90, 3) and s.tile is not None and s.tile <= 40


def test_is_out_of_memory():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("size mismatch"))


def test_backends_same_interface_tensor_and_ndarray():
    b = make_backend(tiny_model(), "torch", "cpu")
    assert isinstance(b, TorchBackend) and b.device == torch.device("cpu")
    x = torch.rand(2, 3, 9, 10)
    y_t = b(x)
    y_n = b(x.numpy())
    assert isinstance(y_t, torch.Tensor) and isinstance(y_n, np.ndarray)
    assert y_n.dtype == np.float32 and np.allclose(y_t.numpy(), y_n, atol=1e-6)
    with pytest.raises(KdsharpError, match="unknown backend"):
        make_backend(tiny_model(), "tensorrt", "cpu")


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(KdsharpError, match="CUDA"):
            resolve_device("cuda")
    with pytest.raises(KdsharpError, match="unknown device"):
        resolve_device("toaster")


def _export(model, path):
    torch.onnx.export(
        model,
        (torch.rand(1, 3, 16, 16),),
        str(path),
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h", 3: "w"}},
        opset_version=17,
        dynamo=False,
    )


def test_onnx_backend_matches_torch(tmp_path):
    path = tmp_path / "tiny.onnx"
    _export(tiny_model(), path)
    onnx = Sharpener(str(path), device="cpu", backend="onnx")
    assert isinstance(onnx.backend, OnnxBackend)
    torch_s = Sharpener(tiny_model(), device="cpu")
    img = make_test_image(37, 53)
    assert np.abs(onnx.image(img).astype(int) - torch_s.image(img).astype(int)).max() <= 1
    x = torch.rand(2, 3, 20, 24)
    assert (onnx.tensor(x) - torch_s.tensor(x)).abs().max() < 1e-4


def test_onnx_bad_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(KdsharpError, match="bad.onnx"):
        Sharpener(str(bad), device="cpu", backend="onnx")
    with pytest.raises(KdsharpError, match="no such ONNX file"):
        Sharpener(str(tmp_path / "missing.onnx"), device="cpu", backend="onnx")
    with pytest.raises(KdsharpError, match="backend=onnx"):
        Sharpener(str(bad), device="cpu", backend="torch")


def test_onnx_from_module_uses_cached_export(tmp_path, monkeypatch):
    pytest.importorskip("kdsharp.infer.export")
    monkeypatch.setenv("KDSHARP_CACHE", str(tmp_path))
    a = OnnxBackend(tiny_model(), "cpu")
    b = OnnxBackend(tiny_model(), "cpu")
    assert a.path == b.path and a.path.parent == tmp_path and len(list(tmp_path.glob("*.onnx"))) == 1
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        assert (a(x) - tiny_model()(x)).abs().max() < 1e-4


@pytest.mark.skipif(__import__("shutil").which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_model_with_a_full_resolution_stage_matches_eager():
    """``--compile``: the OpenCV stage runs between two compiled graphs; same frames as eager."""
    from kdsharp.registry import create_model

    torch.manual_seed(0)
    model = create_model("resunet_lite", channels=[8, 16], enc_blocks=[1, 1], dec_blocks=[1], detail=4).eval()
    torch.nn.init.normal_(model.detail_stage.conv_out.weight, std=0.1)  # a stage that changes the output
    frames = torch.from_numpy(np.stack([make_test_image(40, 56), make_test_image(40, 56)[::-1].copy()]))
    eager = Sharpener(model, device="cpu", batch=2)
    compiled = Sharpener(model, device="cpu", batch=2, compile=True)
    compiled.warm_up(40, 56)  # compiles for frames of this size and layout
    assert compiled.backend.compiled  # no fallback to eager
    assert torch.equal(compiled.frames(frames), eager.frames(frames))


class _Affine(torch.nn.Module):
    """out = 1.3 x - 0.1 + 0.5/255 (overshoots both ends; many values land on half levels)."""

    def forward(self, x):
        return x * 1.3 - 0.1 + 0.5 / 255


@pytest.mark.parametrize("model", ["tiny", "affine", "identity"])
def test_video_frames_on_the_cpu_are_the_tensor_path_in_bytes(model):
    """``frames`` (uint8 (N,H,W,3) video frames) on the CPU converts with numpy/OpenCV: the same bytes
    as the float path -- clamped to [0, 1], x255, rounded half to even -- for a model that
    overshoots both ends and for one that returns its input."""
    net = {"tiny": tiny_model(), "affine": _Affine(), "identity": torch.nn.Identity()}[model]
    s = Sharpener(net, device="cpu")
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (2, 19, 23, 3), dtype=torch.uint8)
    before = frames.clone()
    x = frames.permute(0, 3, 1, 2).float().div(255.0)
    ref = s.tensor(x).mul(255.0).round().to(torch.uint8).permute(0, 2, 3, 1)
    out = s.frames(frames)
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    assert torch.equal(out, ref)
    assert torch.equal(frames, before)  # the input is not touched
    if model == "identity":
        assert torch.equal(out, frames)


def test_onnx_backend_refuses_a_self_ensemble_naming_the_torch_backend(capsys):
    from kdsharp.cli import main

    with pytest.raises(KdsharpError, match="fast@x2: a self-ensemble .* use backend=torch") as e:
        OnnxBackend("fast@x2", device="cpu")
    assert e.value.params == ("backend",) and "export" not in str(e.value)
    assert main(["bench", "--model", "fast@x2", "--backend", "onnx", "--size", "32x32", "--iters", "1"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "use --backend torch" in lines[0], lines


@pytest.mark.parametrize(
    "size,tile,overlap,align", [(1000, 512, 128, 16), (1100, 512, 32, 16), (97, 40, 8, 4), (600, 256, 32, 1)]
)
def test_tile_starts_are_aligned_cover_the_image_and_keep_the_overlap(size, tile, overlap, align):
    from kdsharp.ops.tiling import tile_starts

    starts = tile_starts(size, tile, overlap, align)
    assert all(s % align == 0 for s in starts) and starts[0] == 0
    ends = [min(s + tile, size) for s in starts]
    assert ends[-1] == size
    assert all(e - s2 >= overlap for e, s2 in zip(ends[:-1], starts[1:], strict=True))


class _Cells16(torch.nn.Module):
    """The identity, declaring 16 px cells (as ``student`` does)."""

    pad_multiple = 16

    def forward(self, x):
        return x


def test_tiles_shorter_than_the_overlap_plus_a_cell_leave_no_gaps():
    """``tile=16`` for a 16 px-cell model: aligned tiles only touched, and the pixels at their seams,
    weighted zero by both, came out black; such tiles are not aligned but overlap."""
    from kdsharp.ops.tiling import tile_starts

    starts = tile_starts(50, 16, 4, align=16)
    assert starts[-1] + 16 == 50 and all(b - a <= 16 - 4 for a, b in zip(starts, starts[1:], strict=False))
    img = make_test_image(50, 70)
    assert np.array_equal(Sharpener(_Cells16(), device="cpu", tile=16).image(img), img)


def test_tiles_in_the_models_cell_phase_agree_with_the_whole_image():
    """`student` works on 16 px cells: tiles at multiples of 16 with its default overlap (128 px) stay
    close to the whole-image output, where 32 px unaligned tiles changed a third of the values."""
    from conftest import make_test_image

    img = make_test_image(520, 600)
    whole = Sharpener("student", device="cpu").image(img).astype(int)
    aligned = Sharpener("student", device="cpu", tile=256)
    assert aligned.align == 16 and aligned.tile_overlap == 128
    old = Sharpener("student", device="cpu", tile=256, tile_overlap=32)
    old.align = 1
    d_new = np.abs(aligned.image(img).astype(int) - whole)
    d_old = np.abs(old.image(img).astype(int) - whole)
    assert (d_new > 1).mean() < 0.5 * (d_old > 1).mean() and d_new.max() < d_old.max()


def test_the_callers_module_is_left_as_it_was():
    """``Sharpener(module)`` runs an eval-mode copy of a training model (it switched the caller's
    model to eval mode, and moved/cast it in place), and shares a module already in place."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.BatchNorm2d(3)).double().train()
    net[1].running_mean.fill_(0.3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(1, 3, 9, 11)
    y = Sharpener(net, device="cpu").tensor(x)
    assert net.training and net[1].training and next(net.parameters()).dtype == torch.float64
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # BN statistics untouched
    with torch.no_grad():
        want = copy.deepcopy(net).eval().float()(x).clamp(0, 1)
    assert torch.allclose(y, want, atol=1e-6)  # the eval-mode model ran (running statistics)
    TorchBackend(net.eval(), device="cpu", channels_last=True)
    assert next(net.parameters()).is_contiguous() and not next(net.parameters()).is_contiguous(
        memory_format=torch.channels_last
    )
    placed = tiny_model()
    assert Sharpener(placed, device="cpu").backend.model is placed  # no copy when nothing changes


def test_half_on_a_cpu_runs_bf16_where_the_cpu_has_it_else_float32(monkeypatch, capsys):
    """--half on the CPU: bf16 autocast (float32 weights, output within a level or two of float32)
    where the CPU multiplies bfloat16 in hardware; elsewhere a warning and exactly the float32 run."""
    import kdsharp.devices as devices

    model = tiny_model()
    x = torch.rand(1, 3, 32, 48)
    ref = TorchBackend(model, "cpu")(x)
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    bf16 = TorchBackend(model, "cpu", half=True)
    assert bf16.bf16 and "bf16" in bf16.describe() and next(bf16.model.parameters()).dtype == torch.float32
    out = bf16(x)
    assert out.dtype == torch.float32 and 0 < (out - ref).abs().max() < 2 / 255
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    plain = TorchBackend(model, "cpu", half=True)
    assert "bfloat16 instructions" in capsys.readouterr().err
    assert not plain.bf16 and "fp32" in plain.describe() and torch.equal(plain(x), ref)


def test_cpu_bf16_flag_is_read_from_cpuinfo(monkeypatch, tmp_path):
    import io

    import kdsharp.devices as devices

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)

    for flags, expected in (("fpu avx2 avx512f avx512_bf16", True), ("fpu avx2 amx_bf16", True), ("fpu avx2", False)):
        text = f"processor\t: 0\nflags\t\t: {flags}\n"
        monkeypatch.setattr(devices, "open", lambda *a, text=text, **k: io.StringIO(text), raising=False)
        assert devices.cpu_has_native_bf16() is expected


def test_onednn_capped_below_bf16_counts_as_a_cpu_without_bf16(monkeypatch):
    """``ONEDNN_MAX_CPU_ISA=AVX2`` (how the AVX2-only bench emulates an older CPU) leaves oneDNN to
    emulate bf16, slower than float32: such a run must not choose bf16 by default."""
    import io

    import kdsharp.devices as devices

    text = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
    monkeypatch.setattr(devices, "open", lambda *a, **k: io.StringIO(text), raising=False)
    for isa, expected in (
        ("AVX2", False),
        ("avx512_core", False),
        ("AVX512_CORE_VNNI", False),
        ("AVX512_CORE_BF16", True),
        ("AVX512_CORE_AMX", True),
        ("ALL", True),
        ("", True),
    ):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
        assert devices.cpu_has_native_bf16() is expected, isa


def test_default_precision_is_bf16_for_rgb_unets_on_a_bf16_cpu_and_float32_elsewhere(monkeypatch, capsys):
    """``half=None`` (the CLI's default): bf16 autocast for a convolutional RGB U-Net where the CPU
    multiplies bfloat16, without a warning; float32 for luma models, the teacher, other CPUs and CUDA."""
    import kdsharp.devices as devices
    from kdsharp.infer.backends import auto_bf16
    from kdsharp.registry import create_model

    student = create_model("resunet_lite").eval()
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert auto_bf16(student, cpu) and auto_bf16(create_model("unet"), cpu)
    assert not auto_bf16(student, torch.device("cuda"))
    assert not auto_bf16(create_model("fast_y"), cpu)  # luma: slower in bf16
    assert not auto_bf16(create_model("restormer_tiny"), cpu)  # attention: costs quality
    assert TorchBackend(student, "cpu", half=None).bf16
    assert not TorchBackend(student, "cpu", half=False).bf16  # --no-half
    assert not TorchBackend(student, "cpu", half=None, compile=True).bf16  # compiled: as asked only
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    plain = TorchBackend(student, "cpu", half=None)
    assert not plain.bf16 and "fp32" in plain.describe()
    assert "bfloat16" not in capsys.readouterr().err  # a default, not a request: no warning
