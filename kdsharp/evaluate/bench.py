"""Model-only speed benchmark: frames/s, latency percentiles and peak memory.

The input is fixed random noise of the requested size (no file I/O, no colour conversion), so
the numbers measure the network alone. Slow models stop early (``max_seconds``) so a benchmark
of a large teacher on a laptop CPU still ends in reasonable time.
"""

from __future__ import annotations

import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdsharp.devices import cpu_has_native_bf16, resolve_device
from kdsharp.errors import KdsharpError
from kdsharp.evaluate.peers import PeerModule, is_peer, load_peer
from kdsharp.infer.threads import default_threads, torch_threads
from kdsharp.io import formats

BACKENDS = ("torch", "onnx", "onnx-int8")


def parse_size(text: str) -> tuple[int, int]:
    """A frame size to time: ``'1920x1080'`` -> ``(1920, 1080)`` (width, height), 16..16384 px a side."""
    return formats.parse_size(text, min_side=16)


# ----------------------------------------------------------------------------- memory probes
def _proc_status_mb(field: str) -> float | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in MiB (None where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux: write 5 to clear_refs); True on success."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if platform.system() == "Darwin" else r / 1024.0


class _CpuPeak:
    """Peak resident memory added while the block runs, in MiB."""

    def __enter__(self):
        self.before = _proc_status_mb("VmRSS") or _maxrss_mb()
        self.reset = _reset_peak_rss()
        self.maxrss_before = _maxrss_mb()
        return self

    def __exit__(self, *exc):
        peak = _proc_status_mb("VmHWM") if self.reset else None
        if peak is None:  # no resettable counter: the lifetime peak only tells a rise above it
            peak = self.before + max(0.0, _maxrss_mb() - self.maxrss_before)
        self.peak_mb = max(0.0, peak - self.before)
        return False


# ----------------------------------------------------------------------------- model resolution
def _resolve_model(model, device: str) -> tuple[nn.Module | Callable | Path, str]:
    """A registered name, a checkpoint path or a module -> (module, display name)."""
    if isinstance(model, (str, Path)) and str(model).lower().endswith(".onnx"):
        from kdsharp.io.inputs import existing_file

        existing_file(model, "ONNX model", folder_fix="pass the .onnx file itself", empty_fix="re-export it")
        return Path(model), Path(model).stem  # timed as is by the ONNX backend
    if isinstance(model, str) and is_peer(model):  # an installable restorer, timed like a model
        return load_peer(model), model
    if isinstance(model, (str, Path)):
        from kdsharp import registry
        from kdsharp.models import get_entry

        name = str(model)
        if get_entry(name) is not None:  # timing does not depend on the weights: never need them
            return registry.load_model(name, device=device, weights=False), name
        return registry.load_model(name, device=device), Path(name).stem
    return model, type(model).__name__


def _train_params(model, deployed: int | None) -> int | None:
    """Parameters of a registered model in its training form; ``deployed`` for anything else."""
    from kdsharp.models import get_entry

    if isinstance(model, (str, Path)) and get_entry(str(model)) is not None:
        from kdsharp.registry import model_info

        return int(model_info(str(model))["params"])
    return deployed


def _runner(net, backend: str, device: str, half: bool | None, threads: int | None, folder: Path):
    """The callable to time: a :mod:`kdsharp.infer.backends` backend, as the app runs it."""
    from kdsharp.infer import backends

    if isinstance(net, Path):
        if backend != "onnx":
            raise KdsharpError(f"{net}: an ONNX file is timed as is; use backend=onnx", params=["backend"])
        if half:  # its precision was fixed at export: timing it "fp16" would report what did not run
            raise KdsharpError(
                f"{net}: an ONNX file is timed as is, in the precision it was exported in: drop half=True "
                "(`kdsharp export --fp16` writes a float16 one)",
                params=["half"],
            )
        return backends.OnnxBackend(net, device=device, threads=threads)
    if backend == "torch":
        return backends.TorchBackend(net, device, half=half)
    from kdsharp.infer.export import SelfEnsembleError, export_onnx

    path = folder / "model.onnx"  # exported here (not the shared cache): half/int8 variants differ
    try:
        export_onnx(net.cpu().eval(), path, half=bool(half), int8=backend == "onnx-int8", overwrite=True)
    except SelfEnsembleError as e:
        raise backends.self_ensemble_on_onnx() from e
    return backends.OnnxBackend(path, device=device, threads=threads)


def _percentile(vals: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(vals, dtype=np.float64), q))


def _time_calls(
    run, x, iters: int, warmup: int, max_seconds: float, sync: Callable[[], None]
) -> tuple[list[float], int]:
    """Seconds per call after ``warmup`` calls; stops early once ``max_seconds`` of timing passed.

    A warm-up call that alone takes longer than ``max_seconds`` counts as the measurement (the
    model is far too slow to repeat, and one-off start-up costs are small beside it).
    """
    samples: list[float] = []
    done = 0
    for _ in range(warmup):
        t0 = time.perf_counter()
        run(x)
        sync()
        dt = time.perf_counter() - t0
        done += 1
        if dt > max_seconds:
            return [dt], done
    t_start = time.perf_counter()
    for _ in range(iters):
        t0 = time.perf_counter()
        run(x)
        sync()
        samples.append(time.perf_counter() - t0)
        if time.perf_counter() - t_start > max_seconds and len(samples) >= 3:
            break
    return samples, done


def _time_y_plane(
    net, backend: str, device: str, batch: int, w: int, h: int, iters: int, warmup: int, max_seconds: float
) -> list[float]:
    """Seconds per call of a luma model on a uint8 Y plane (what ``sharpen`` runs on video, see
    :class:`kdsharp.infer.frames.LumaNet`), with its chroma step on 4:2:0 chroma planes if it has one
    (:class:`~kdsharp.infer.frames.ChromaStep`); [] for other models, backends, devices or batches."""
    from kdsharp.infer.frames import ChromaStep, LumaNet, is_luma_net
    from kdsharp.models.wrappers import ChromaFromLuma

    if backend != "torch" or batch != 1 or str(device) != "cpu" or not is_luma_net(net):
        return []
    rng = np.random.default_rng(0)
    y = rng.integers(16, 236, (h, w), dtype=np.uint8)
    chroma = [rng.integers(16, 241, ((h + 1) // 2, (w + 1) // 2), dtype=np.uint8) for _ in range(2)]
    luma = LumaNet(net)
    step = ChromaStep(net) if isinstance(net, ChromaFromLuma) else None

    def run(plane: np.ndarray) -> None:
        new = luma(plane, False)
        if step is not None:
            step(plane, new, chroma)

    return _time_calls(run, y, iters, warmup, max_seconds, lambda: None)[0]


def benchmark(
    model,
    size: tuple[int, int] = (1920, 1080),
    device: str = "cpu",
    backend: str = "torch",
    batch: int = 1,
    half: bool | None = False,
    iters: int = 20,
    warmup: int = 3,
    threads: int | None = None,
    max_seconds: float = 20.0,
) -> dict:
    """Time ``model`` on a (batch,3,H,W) noise input; model only, no I/O.

    Args:
        model: a registered name (``'fast'``), a checkpoint path, or an ``nn.Module`` mapping
            (N,3,H,W) float RGB [0,1] -> same.
        size: (width, height) in pixels. device: 'auto', 'cpu' or 'cuda'. backend: 'torch', 'onnx' or
            'onnx-int8' (ONNX Runtime, exported on the fly). half: fp16 on CUDA, bf16 autocast on a CPU with
            bfloat16 instructions; None: as the torch backend chooses (:func:`~kdsharp.infer.backends.auto_bf16`).
        iters/warmup: timed and untimed calls; timing stops after ``max_seconds`` (>= 3 calls).
        threads: CPU threads for torch intra-op and ONNX Runtime; None = ``KDSHARP_THREADS`` if set,
            else the cores this process may use (:func:`kdsharp.infer.threads.default_threads`).
    Returns:
        dict with ``fps`` (frames/s from the median latency), ``p50_ms``/``p95_ms`` per batch,
        ``p50_ms_per_frame``/``p95_ms_per_frame``, ``peak_mem_mb`` (memory added while running:
        CPU resident set or CUDA ``max_memory_allocated``), ``params`` (the module timed, i.e. the
        deployed, re-parameterised form) and ``params_train`` (its training form), and the settings;
        for a luma model (``fast``) with torch on the CPU at batch 1 also ``yplane_fps`` and
        ``yplane_p50_ms``: the same model on a uint8 Y plane, the path video takes (no RGB).
    """
    if backend not in BACKENDS:
        raise KdsharpError(f"unknown backend '{backend}' (use one of {', '.join(BACKENDS)})")
    device = str(resolve_device(device))  # 'auto' as `sharpen` and `eval` take it; no CUDA: one line
    is_cuda = device.startswith("cuda")
    if batch < 1 or iters < 1 or warmup < 0:
        raise KdsharpError(
            f"batch={batch} and iters={iters} must be at least 1 and warmup={warmup} at least 0",
            params=["batch", "iters", "warmup"],
        )
    if half and not is_cuda and backend == "torch" and not cpu_has_native_bf16():
        raise KdsharpError(
            "half=True with the torch backend needs device=cuda or a CPU with bfloat16 instructions "
            "(AVX512-BF16, AMX; this one has none), or use backend=onnx",
            params=["half", "device", "backend"],
        )
    if half and backend == "onnx-int8":
        raise KdsharpError("half=True and backend=onnx-int8 do not go together: choose one", params=["half", "backend"])
    if backend != "torch":  # None (torch chooses) means float32 to ONNX Runtime
        half = bool(half)
    w, h = int(size[0]), int(size[1])
    if backend != "torch" and isinstance(model, str) and is_peer(model):
        raise KdsharpError(f"{model} runs through its own runtime: use backend=torch", params=["backend"])
    net, name = _resolve_model(model, "cpu" if backend != "torch" else device)
    params = (  # a peer's weights are not torch's: no count
        sum(p.numel() for p in net.parameters())
        if isinstance(net, nn.Module) and not isinstance(net, PeerModule)
        else None
    )
    params_train = _train_params(model, params)

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, h, w, generator=gen)
    sync = torch.cuda.synchronize if is_cuda else (lambda: None)
    threads = threads or default_threads()  # KDSHARP_THREADS, else the usable cores, as `sharpen` runs
    with torch_threads(threads), tempfile.TemporaryDirectory(prefix="kdsharp-bench-") as tmp:
        run = _runner(net, backend, device, half, threads, Path(tmp))
        from kdsharp.infer.backends import TorchBackend

        if isinstance(run, TorchBackend):  # what it chose (half=None) or was given
            precision = run.precision
        else:
            precision = "fp16" if half else "fp32"
        xin: torch.Tensor | np.ndarray = x.to(device) if backend == "torch" else x.numpy()  # no host<->device copies
        if is_cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            samples, warm = _time_calls(run, xin, iters, warmup, max_seconds, sync)
            peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
        else:
            with _CpuPeak() as mem:
                samples, warm = _time_calls(run, xin, iters, warmup, max_seconds, sync)
            peak_mb = mem.peak_mb

        yplane = _time_y_plane(net, backend, device, batch, w, h, iters, warmup, max_seconds)

    p50 = statistics.median(samples)
    result = {
        "model": name,
        "device": str(device),
        "backend": backend,
        "size": f"{w}x{h}",
        "width": w,
        "height": h,
        "batch": batch,
        "half": precision != "fp32",
        "precision": precision,
        "threads": int(threads),
        "fps": batch / p50,
        "p50_ms": p50 * 1000.0,
        "p95_ms": _percentile(samples, 95) * 1000.0,
        "p50_ms_per_frame": p50 * 1000.0 / batch,
        "p95_ms_per_frame": _percentile(samples, 95) * 1000.0 / batch,
        "mean_ms": statistics.fmean(samples) * 1000.0,
        "iters": len(samples),
        "warmup": warm,
        "peak_mem_mb": round(float(peak_mb), 1),
        "params": params,  # of the module timed: the deployed (re-parameterised) form
        "params_train": params_train,  # the training form (what `kdsharp models` lists first)
        "torch_version": torch.__version__,
        "cpu": cpu_name(),
        "cpu_kernels": cpu_kernels(),
    }
    if yplane:
        y50 = statistics.median(yplane)
        result["yplane_fps"] = 1 / y50
        result["yplane_p50_ms"] = y50 * 1000.0
    if is_cuda:
        result["gpu"] = torch.cuda.get_device_name(torch.device(device))
    if backend != "torch":
        import onnxruntime

        result["onnxruntime_version"] = onnxruntime.__version__
    return result


def benchmark_video(
    model,
    video: str | Path,
    device: str = "cpu",
    backend: str = "torch",
    threads: int | None = None,
    preset: str | None = None,
    crf: int | None = None,
    reuse: bool = False,
    path: str = "auto",
    max_frames: int | None = None,
    batch: int = 1,
    reuse_tolerance: int | None = None,
    half: bool | None = False,
    compile: bool = False,
) -> dict:
    """End-to-end speed of ``kdsharp sharpen VIDEO`` (decode -> model -> encode, audio copied).

    Sharpens ``video`` into a temporary file with the app's own pipeline; model loading is
    excluded, everything after (opening the files, decoding, colour work, the model, encoding,
    muxing) is timed. Returns :meth:`VideoStats.as_dict` (busy and CPU ms per frame of each
    stage, end-to-end frames/s, bottleneck) plus the model, CPU name and load average.
    """
    from kdsharp.infer.sharpener import Sharpener
    from kdsharp.io.inputs import existing_file
    from kdsharp.io.video import check_video_name, encoder_settings

    video = Path(video)
    existing_file(video, "video", folder_fix="pass one video file")
    check_video_name(video)  # refused here, not by the temporary output named after it
    # preset and crf checked before the model loads, named after the input: the output is a temporary file
    encoder_settings(64, 64, preset=preset, crf=crf, path=video)
    sharpener = Sharpener(
        model, device=device, backend=backend, half=half, batch=batch, threads=threads, compile=compile
    )
    with tempfile.TemporaryDirectory(prefix="kdsharp-bench-") as tmp:
        stats = sharpener.video(
            video,
            Path(tmp) / ("out" + (video.suffix if video.suffix else ".mp4")),
            crf=crf,
            preset=preset,
            reuse=reuse,
            path=path,
            max_frames=max_frames,
            overwrite=True,
            reuse_tolerance=reuse_tolerance,
        )
    result = stats.as_dict()
    result.update(
        model=str(model),
        device=str(sharpener.device),
        backend=backend,
        precision=getattr(sharpener.backend, "precision", None),  # torch: what it chose or was given
        cpu=cpu_name(),
        cpu_kernels=cpu_kernels(),
        cores=_cores(),
        load_avg=_load_avg(),
        torch_version=torch.__version__,
    )
    return result


def _cores() -> int:
    from kdsharp.devices import available_cores

    return available_cores()


def _load_avg() -> float | None:
    try:
        import os

        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def cpu_name() -> str:
    """The processor's model name and, where /proc/cpuinfo gives them, its family and model numbers
    (``'AMD EPYC (family 25 model 17)'``: a VM's model name alone does not tell an AVX2-only Zen 1
    from a Zen 4), for speed figures: which CPU they came from."""
    from kdsharp.devices import cpu_info_fields

    field = cpu_info_fields()
    name = field.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in field and "model" in field:
        return f"{name} (family {field['cpu family']} model {field['model']})"
    return name


def cpu_kernels() -> str:
    """The instruction set of PyTorch's CPU kernels in this process ('AVX512', 'AVX2', 'DEFAULT', ...):
    what the CPU offers, or less where ``ATEN_CPU_CAPABILITY`` holds it back. Speed figures differ
    most between CPUs by it (AVX2-only machines of this project's kind run the models slower)."""
    return str(torch.backends.cpu.get_cpu_capability())


__all__ = ["BACKENDS", "benchmark", "benchmark_video", "parse_size"]
