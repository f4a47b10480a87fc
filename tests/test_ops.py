import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from kdsharp import ops
from kdsharp.metrics import psnr, psnr_torch, ssim, ssim_torch


def _sk_ssim(a, b):
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_skimage_random(seed):
    r = np.random.default_rng(seed)
    a = r.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + r.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    assert abs(psnr(a, b) - peak_signal_noise_ratio(a, b)) < 0.01
    assert abs(ssim(a, b) - _sk_ssim(a, b)) < 0.002


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_metrics_match_skimage_real(name):
    a = getattr(skdata, name)()
    b = np.clip(a.astype(float) * 0.9 + 12 + np.random.default_rng(0).normal(0, 6, a.shape), 0, 255).astype(np.uint8)
    assert abs(psnr(a, b) - peak_signal_noise_ratio(a, b)) < 0.01
    assert abs(ssim(a, b) - _sk_ssim(a, b)) < 0.002


def test_metric_edge_cases():
    a = np.full((20, 20, 3), 100, np.uint8)
    assert psnr(a, a) == float("inf")
    assert ssim(a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        psnr(a, a[:10])
    with pytest.raises(ValueError):
        ssim(a[:5, :5], a[:5, :5])
    t = torch.rand(1, 3, 5, 20)
    with pytest.raises(ValueError, match="at least 11x11"):  # was a conv2d RuntimeError about kernel sizes
        ssim_torch(t, t)


def test_metrics_refuse_mixed_dtypes():
    a = np.full((20, 20, 3), 100, np.uint8)
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match="dtype: uint8 vs float32"):
            metric(a, a.astype(np.float32) / 255)


@pytest.mark.parametrize("shape", [(23, 31), (23, 31, 1), (23, 31, 3), (11, 11, 4)])
@pytest.mark.parametrize("kind", ["uint8", "uint16", "float01", "float255"])
def test_metrics_match_skimage_for_each_dtype_and_layout(shape, kind):
    """Grey and colour, uint8/uint16/float, default and explicit data_range: skimage's values; floats
    outside [0,1] without data_range are refused (they scored on the wrong scale: -14 dB)."""
    r = np.random.default_rng(4)
    top = {"uint8": 255, "uint16": 65535, "float01": 1.0, "float255": 255.0}[kind]
    a = r.uniform(0, top, shape)
    b = np.clip(a + r.normal(0, top / 20, shape), 0, top)
    if kind.startswith("uint"):
        a, b = a.round().astype(kind), b.round().astype(kind)
    kw = dict(data_range=top) if kind == "float255" else {}
    want_ssim = structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=top,
        channel_axis=2 if len(shape) == 3 else None,
    )
    assert psnr(a, b, **kw) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=top), abs=1e-9)
    assert ssim(a, b, **kw) == pytest.approx(want_ssim, abs=1e-9)
    if kind == "float255":
        for metric in (psnr, ssim):
            with pytest.raises(ValueError, match="pass data_range"):
                metric(a, b)


def test_torch_metrics_match_numpy():
    r = np.random.default_rng(3)
    a = r.integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + r.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    ta = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255
    p, s = psnr_torch(ta, tb), ssim_torch(ta, tb)
    assert p.shape == (2,) and s.shape == (2,)
    for i in range(2):
        assert p[i].item() == pytest.approx(psnr(a[i], b[i]), abs=1e-3)
        assert s[i].item() == pytest.approx(ssim(a[i], b[i]), abs=1e-4)


@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (2, 3, 17, 31)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_filters_shapes_dtypes(shape, dtype):
    x = torch.rand(shape, dtype=dtype)
    for f in (lambda t: ops.gaussian_blur2d(t, 5, 1.2), ops.sobel, ops.laplacian, ops.unsharp_mask):
        y = f(x)
        assert y.shape == x.shape and y.dtype == dtype


def test_modules_equal_functions():
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(ops.GaussianBlur2d(5, 1.0)(x), ops.gaussian_blur2d(x, 5, 1.0))
    assert torch.equal(ops.Sobel()(x), ops.sobel(x))
    assert torch.equal(ops.Laplacian()(x), ops.laplacian(x))
    assert torch.equal(ops.UnsharpMask(0.7, 1.5)(x), ops.unsharp_mask(x, 0.7, 1.5))
    assert torch.equal(ops.RgbToYCbCr()(x), ops.rgb_to_ycbcr(x))


def test_filter_properties_and_gradients():
    const = torch.full((1, 3, 12, 12), 0.4)
    assert torch.allclose(ops.gaussian_blur2d(const, 7, 2.0), const, atol=1e-6)
    assert ops.laplacian(const).abs().max() < 1e-6
    ramp = torch.arange(16.0).view(1, 1, 1, 16).expand(1, 1, 16, 16) / 16
    g = ops.spatial_gradient(ramp)[0, 0, :, 4:-4, 4:-4]
    assert torch.allclose(g[0], torch.full_like(g[0], 1 / 16), atol=1e-6) and g[1].abs().max() < 1e-6
    x = torch.rand(1, 3, 10, 10, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ops.gaussian_blur2d(t, 3, 1.0), (x,))
    assert torch.autograd.gradcheck(ops.laplacian, (x,))


def test_ycbcr_round_trip():
    x = torch.rand(2, 3, 9, 9)
    assert torch.allclose(ops.ycbcr_to_rgb(ops.rgb_to_ycbcr(x)), x, atol=1e-5)
    assert torch.allclose(ops.rgb_to_y(x), ops.rgb_to_ycbcr(x)[:, :1], atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 17, 31), (1, 3, 1, 5)])
def test_rgb_to_y_in_cpu_inference_is_the_torch_luma(shape):
    """Channels-last CPU inference computes Y with OpenCV: the same values as the torch weighted
    sum (with autograd on, or contiguous), a contiguous (N,1,H,W) float32 result."""
    x = torch.rand(*shape)
    ref = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    xl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fast = ops.rgb_to_y(xl)
    assert fast.shape == ref.shape and fast.is_contiguous() and fast.dtype == torch.float32
    torch.testing.assert_close(fast, ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(ops.rgb_to_y(xl.requires_grad_(True)).detach(), ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    ("shape", "size", "sigma"), [((2, 3, 17, 31), 19, 3.0), ((1, 1, 9, 40), 5, 0.5), ((1, 4, 8, 8), 7, 1.2)]
)
def test_gaussian_blur_in_cpu_inference_is_the_torch_blur(shape, size, sigma, channels_last):
    """CPU inference blurs with OpenCV (reflect-101 borders): the torch convs' values (autograd on),
    in the input's layout; a kernel wider than the image keeps torch's replicate fallback."""
    torch.manual_seed(0)
    x = torch.rand(*shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ref = ops.gaussian_blur2d(x.clone().requires_grad_(True), size, sigma).detach()
    with torch.no_grad():
        fast = ops.gaussian_blur2d(x, size, sigma)
        wide = ops.gaussian_blur2d(x[..., :3, :3], 9, 2.0)
    torch.testing.assert_close(fast, ref, atol=1e-6, rtol=0)
    assert (
        fast.is_contiguous(memory_format=torch.channels_last) == (channels_last and shape[1] > 1)
        or fast.is_contiguous()
    )
    torch.testing.assert_close(wide, ops.gaussian_blur2d(x[..., :3, :3].clone().requires_grad_(True), 9, 2.0).detach())


def test_importing_ops_and_models_leaves_torch_dynamo_unloaded():
    """``@torch.compiler.disable`` imported torch._dynamo (~1-2 s) with kdsharp.ops and kdsharp.models."""
    import subprocess
    import sys

    code = "import sys, kdsharp.ops, kdsharp.models; print('torch._dynamo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_eager_only_runs_the_function_as_it_is_under_torch_compile():
    """As torch.compiler.disable: compiled code calls it eagerly (a traced call would see is_compiling())."""
    from kdsharp.ops.layout import eager_only

    seen = []

    @eager_only
    def probe(x):
        seen.append(torch.compiler.is_compiling())
        return x + 1

    x = torch.rand(3)
    assert torch.equal(probe(x), x + 1) and seen == [False]
    compiled = torch.compile(lambda t: probe(t * 2) - 1, backend="eager")
    assert torch.allclose(compiled(x), x * 2) and seen == [False, False]
