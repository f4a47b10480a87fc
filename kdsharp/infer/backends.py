"""Inference backends with one call interface: ``backend(batch) -> batch``.

``batch`` is a (N,3,H,W) float32 RGB tensor or ndarray in [0,1]; the result has the same type,
shape and (for tensors) device as the input. :class:`TorchBackend` runs PyTorch on CPU or CUDA
(optionally fp16, channels_last, ``torch.compile``); :class:`OnnxBackend` runs ONNX Runtime on
the CPU or CUDA execution provider, from a ``.onnx`` file or a model exported to a cached file.
"""

from __future__ import annotations

import copy
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdsharp.console import warn
from kdsharp.devices import resolve_device
from kdsharp.errors import InputError, KdsharpError
from kdsharp.infer.export import CELL_KEY
from kdsharp.models.common import model_cell

Batch = torch.Tensor | np.ndarray
BACKENDS = ("torch", "onnx")


def self_ensemble_on_onnx(model: object = None) -> KdsharpError:
    """The error for a self-ensemble (``NAME@xN``) given to an ONNX backend, in a backend's words
    (:func:`kdsharp.infer.export.export_onnx` refuses it in an exporter's)."""
    named = f"{model}: " if isinstance(model, (str, Path)) else ""
    return KdsharpError(
        f"{named}a self-ensemble (@xN) runs with the torch backend only: use backend=torch, "
        "or drop the @xN suffix to run the model alone with ONNX",
        params=["backend"],
    )


def auto_bf16(module: nn.Module, device: torch.device) -> bool:
    """The default precision (``half=None``): True -- bf16 autocast -- for a convolutional RGB U-Net
    (``student``, ``student_nokd``, ``unet``) on a CPU that multiplies bfloat16 in hardware, where
    it costs nothing measurable (held-out photos, ``lowbw``/``defocus``/``h264``: 0.002 dB at most,
    outputs within 2 levels) and runs the ``student`` about 1.3x faster (``scripts/bf16_cost.py``).
    False on CUDA (fp16 there only when asked), on other CPUs, for luma models (``fast``: their
    small convolutions run slower in bf16) and for the teacher (up to 0.012 dB lost in bf16)."""
    from kdsharp.devices import cpu_has_native_bf16
    from kdsharp.models.resunet import ResUNet
    from kdsharp.models.unet import UNet
    from kdsharp.models.wrappers import unwrap

    arch = unwrap(module)
    rgb_unet = isinstance(arch, (ResUNet, UNet)) and not getattr(arch, "luma", False)
    return device.type == "cpu" and rgb_unet and cpu_has_native_bf16()


def resolve_model(model: nn.Module | str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """An eval-mode ``nn.Module``: the caller's as is, a copy of it in eval mode if it is training
    (the caller's model is left as it was), else ``kdsharp.registry.load_model(name_or_path)``."""
    if isinstance(model, nn.Module):
        return copy.deepcopy(model).eval() if any(m.training for m in model.modules()) else model
    if str(model).lower().endswith(".onnx"):
        raise KdsharpError(
            f"{model}: an ONNX file runs only with the ONNX backend (use backend=onnx)", params=["backend"]
        )
    from kdsharp import registry  # imported late: heavy, and optional for callers passing a module

    return registry.load_model(str(model), device=str(device)).eval()


def is_placed(module: nn.Module, device: torch.device, dtype: torch.dtype, channels_last: bool = False) -> bool:
    """True when ``module``'s tensors are on ``device``, its floating ones in ``dtype`` and (with
    ``channels_last``) its 4-D ones channels-last: moving it there would change nothing."""
    for t in (*module.parameters(), *module.buffers()):
        if t.device.type != device.type or (device.index is not None and t.device.index != device.index):
            return False
        if (t.is_floating_point() and t.dtype != dtype) or (
            channels_last and t.dim() == 4 and not t.is_contiguous(memory_format=torch.channels_last)
        ):
            return False
    return True


class TorchBackend:
    """Run an ``nn.Module`` with PyTorch on ``device``.

    ``half``: fp16 weights and input on CUDA; on a CPU that multiplies bfloat16 in hardware
    (:func:`~kdsharp.devices.cpu_has_native_bf16`) the float32 model runs under bf16 autocast
    (convolutions in bf16, output back in float32; the `student` at 1080p about 1.3x faster on an
    AMD Zen 4, within a level of the float32 output); on other CPUs it warns and runs float32.
    ``half=None`` chooses (:func:`auto_bf16`): bf16 where that is free, float32 elsewhere, no warning.
    """

    name = "torch"

    def __init__(
        self,
        model: nn.Module | str | Path,
        device: str | torch.device = "auto",
        half: bool | None = False,
        channels_last: bool | None = None,
        compile: bool = False,
    ):
        self.device = resolve_device(device)
        self.bf16 = False  # bf16 autocast on the CPU
        module = resolve_model(model, self.device)
        if half is None:
            half = auto_bf16(module, self.device) and not compile
        if half and self.device.type != "cuda":
            from kdsharp.devices import cpu_has_native_bf16

            self.bf16 = self.device.type == "cpu" and cpu_has_native_bf16()
            if not self.bf16:
                warn(
                    "half precision needs a CUDA device or a CPU with bfloat16 instructions (AVX512-BF16, AMX); "
                    "running in float32"
                )
            half = False
        self.dtype = torch.float16 if half else torch.float32
        self.channels_last = self.device.type == "cuda" if channels_last is None else channels_last
        if module is model and not is_placed(module, self.device, self.dtype, self.channels_last):
            module = copy.deepcopy(module)  # the caller's model keeps its device, dtype and layout
        module = module.to(self.device, self.dtype)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub lacks it
        self.model = module
        self.cell = model_cell(module)  # the model's pad_multiple: tiles start at multiples of it
        self._forward: Callable[[torch.Tensor], torch.Tensor] = module
        self._compiled = False
        if compile:  # static shapes first (a video's frames); a new size recompiles with dynamic shapes
            self._forward = torch.compile(module)
            self._compiled = True

    @property
    def compiled(self) -> bool:
        """True while the model runs through ``torch.compile`` (False after falling back to eager)."""
        return self._compiled

    @property
    def precision(self) -> str:
        """What the model computes in: ``'fp16'`` (CUDA), ``'bf16'`` (CPU autocast) or ``'fp32'``."""
        return "fp16" if self.dtype == torch.float16 else "bf16" if self.bf16 else "fp32"

    def describe(self) -> str:
        return f"torch {self.device} {self.precision}" + (" compiled" if self._compiled else "")

    def __call__(self, batch: Batch) -> Batch:
        """(N,3,H,W) float32 [0,1] tensor/ndarray -> same type, shape and device."""
        pads = tiny_pads(batch, self.cell)
        if pads is not None:
            return self(pad_edges(batch, *pads))[..., : batch.shape[-2], : batch.shape[-1]]
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)) if isinstance(batch, np.ndarray) else batch
        is_np = isinstance(batch, np.ndarray)
        home = x.device
        x = x.to(self.device, non_blocking=True).to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            y = self._run(x)
        y = y.float().to(home)
        return y.contiguous().numpy() if is_np else y  # a tensor keeps its layout: no copy (video frames)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if not self._compiled:
            return self._forward(x)
        try:
            return self._forward(x)
        except Exception as e:  # no compiler toolchain, unsupported op...: eager still works
            if is_out_of_memory(e):
                raise
            warn(f"torch.compile failed ({type(e).__name__}); running the model uncompiled")
            self._forward, self._compiled = self.model, False
            return self._forward(x)


class OnnxBackend:
    """Run an ONNX graph (input ``input``, output ``output``, dynamic N/H/W) with ONNX Runtime.

    ``model`` is a ``.onnx`` path, or a module / registry name that is exported once to a cached
    file (``$KDSHARP_CACHE`` or the temp folder) keyed by the hash of its weights.
    """

    name = "onnx"

    def __init__(self, model: nn.Module | str | Path, device: str | torch.device = "auto", threads: int | None = None):
        import onnxruntime as ort

        self.device = resolve_device(device)
        if isinstance(model, (str, Path)) and str(model).lower().endswith(".onnx"):
            path = Path(model)
            if not path.is_file():
                raise InputError(path, "no such ONNX file", "check the path")
        else:
            from kdsharp.infer.export import SelfEnsembleError

            try:
                path = cached_onnx(resolve_model(model, "cpu"))
            except SelfEnsembleError as e:
                raise self_ensemble_on_onnx(model) from e
        providers: list[str | tuple[str, dict[str, int]]] = ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, ("CUDAExecutionProvider", {"device_id": self.device.index or 0}))
            else:
                warn("onnxruntime has no CUDA provider (pip install onnxruntime-gpu); running ONNX on the CPU")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        # no spinning while waiting for work: spinning threads collapse when the cores are shared
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise InputError(
                path, f"not a usable ONNX model ({str(e).splitlines()[0][:160]})", "re-export it with `kdsharp export`"
            ) from e
        self.path = path
        # the model's pad_multiple, recorded by export_onnx (1 for files without it)
        self.cell = int(self.session.get_modelmeta().custom_metadata_map.get(CELL_KEY, 1))
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        # a graph exported with a fixed size takes only that shape (free axes are names, not ints)
        self.fixed_shape = tuple(d if isinstance(d, int) else None for d in self.session.get_inputs()[0].shape)

    def describe(self) -> str:
        return f"onnxruntime {self.session.get_providers()[0]}"

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        """A one-line error, before ONNX Runtime's own, for a batch a fixed-size graph cannot take."""
        fixed = self.fixed_shape
        if len(fixed) != 4 or len(shape) != 4 or all(f is None or f == s for f, s in zip(fixed, shape, strict=True)):
            return
        n, _, h, w = fixed
        if (h, w) not in ((None, None), tuple(shape[2:])):
            square = h is not None and h == w
            raise InputError(
                self.path,
                f"the model takes only {w}x{h} inputs (exported with a fixed size), not {shape[3]}x{shape[2]}",
                "export it again with dynamic sizes, the export's default"
                + (f", or pass tile={h} for images at least that large" if square else ""),
                params=["tile"],
            )
        raise InputError(
            self.path,
            f"the model takes only batches of {n} (exported with a fixed size), not {shape[0]}",
            f"pass batch={n}, or export it again with dynamic sizes, the export's default",
            params=["batch"],
        )

    def __call__(self, batch: Batch) -> Batch:
        """(N,3,H,W) float32 [0,1] tensor/ndarray -> same type, shape and device."""
        self._check_shape(tuple(batch.shape))
        pads = tiny_pads(batch, self.cell)
        if pads is not None:
            return self(pad_edges(batch, *pads))[..., : batch.shape[-2], : batch.shape[-1]]
        if isinstance(batch, np.ndarray):
            return self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]
        arr = batch.detach().to("cpu", torch.float32).numpy()
        out = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(arr, dtype=np.float32)})[0]
        return torch.from_numpy(out).to(batch.device)


def tiny_pads(batch: Batch, cell: int) -> tuple[int, int] | None:
    """(rows, cols) to add to a batch too small to reflect-pad to a multiple of ``cell`` (the
    model's or graph's padding would fail or differ): both backends repeat its edges first; None
    for a batch that pads itself."""
    h, w = batch.shape[-2:]
    ph, pw = -h % cell, -w % cell
    return (ph, pw) if ph >= h or pw >= w else None


def pad_edges(batch: Batch, ph: int, pw: int) -> Batch:
    """(N,C,H,W) -> (N,C,H+ph,W+pw), the last row and column repeated (tensor or ndarray)."""
    if isinstance(batch, np.ndarray):
        return np.pad(batch, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge")
    return torch.nn.functional.pad(batch, (0, pw, 0, ph), mode="replicate")


def _weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256(f"{type(model).__qualname__} {CELL_KEY}".encode())  # cached files without the cell: stale
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()[:20]


def cached_onnx(model: nn.Module) -> Path:
    """Export ``model`` with ``kdsharp.infer.export.export_onnx`` once; later calls reuse the file."""
    from kdsharp.infer.export import export_onnx  # writes atomically: a crash leaves no broken cache entry
    from kdsharp.io.atomic import ensure_writable_dir

    cache = ensure_writable_dir(os.environ.get("KDSHARP_CACHE") or Path(tempfile.gettempdir()) / "kdsharp-onnx")
    path = cache / f"{type(model).__name__.lower()}-{_weights_digest(model)}.onnx"
    if not path.is_file():
        export_onnx(copy.deepcopy(model).cpu().float().eval(), path, overwrite=True)  # another process's is as good
    return path


def make_backend(
    model: nn.Module | str | Path,
    backend: str = "torch",
    device: str | torch.device = "auto",
    half: bool | None = False,
    compile: bool = False,
    threads: int | None = None,
) -> TorchBackend | OnnxBackend:
    """Build the named backend (``'torch'`` or ``'onnx'``) for ``model`` (``threads``: ONNX Runtime's
    intra-op; ``half=None``: torch chooses, :func:`auto_bf16`; ONNX runs its file's precision)."""
    if backend == "torch":
        return TorchBackend(model, device, half=half, compile=compile)
    if backend == "onnx":
        if half:
            warn("half precision is ignored by the ONNX backend")
        return OnnxBackend(model, device, threads=threads)
    raise KdsharpError(f"unknown backend '{backend}' (use one of: {', '.join(BACKENDS)})")


def is_out_of_memory(e: BaseException) -> bool:
    """True for CUDA/CPU/ONNX Runtime out-of-memory errors."""
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return True
    if isinstance(e, MemoryError):
        return True
    msg = str(e).lower()  # onnxruntime's errors are not RuntimeError subclasses: match the text
    return isinstance(e, Exception) and any(
        s in msg for s in ("out of memory", "can't allocate memory", "failed to allocate memory")
    )
