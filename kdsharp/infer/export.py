"""Export a model to ONNX (fp32, fp16 or int8), for ONNX Runtime and other runtimes.

The graph has the module's interface: input ``input`` (N,3,H,W) float32 RGB in [0,1], output
``output`` (N,3,H,W) float32 (not clamped). With ``dynamic`` batch, height and width are free:
the models' pad-to-a-multiple is traced from the input's shape, so one file serves all sizes.

* ``half``: the network runs in float16 inside (Casts at the edges keep float32 I/O); meant for
  GPU runtimes -- ONNX Runtime's CPU provider has few fp16 kernels and is slower with it.
* ``int8``: static QDQ quantization by ``onnxruntime.quantization`` (int8 per-channel weights,
  activations calibrated on degraded crops of the built-in sample images).

Re-parameterizable models (``fast``) are exported in their single-conv deployed form.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdsharp.errors import KdsharpError, OutputError
from kdsharp.io.atomic import atomic_path, check_target, ensure_writable_dir
from kdsharp.models.common import model_cell
from kdsharp.models.wrappers import ChromaFromLuma

MIN_OPSET, MAX_OPSET = 11, 20
CELL_KEY = "kdsharp.pad_multiple"  #: ONNX metadata: the exported model's ``pad_multiple`` (pixel cell)


class SelfEnsembleError(KdsharpError):
    """A self-ensemble (``NAME@xN``) was to be exported: ONNX would drop the averaging."""


class _HalfInside(nn.Module):
    """Runs ``model`` in float16 between float32 input and output."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


def _prepare(model_or_name: nn.Module | str | Path) -> nn.Module:
    """The bare architecture to trace, fp32 on the CPU, re-parameterized where it can be: a
    test-time wrapper (the teacher's local windows) is dropped, since a traced graph would bake
    one frame size's windows, except :class:`~kdsharp.models.wrappers.ChromaFromLuma` (``fast``'s
    chroma step: local ops that trace for any size), which stays around the architecture. Names
    and paths load with ``load_model`` (EMA weights)."""
    from kdsharp.models import SelfEnsemble, unwrap
    from kdsharp.models.common import reparameterize, set_memory_format

    if isinstance(model_or_name, nn.Module):
        wrapped, named = model_or_name, ""
    else:
        from kdsharp.registry import load_model

        wrapped, named = load_model(model_or_name, deploy=False), f"{model_or_name}: "
    if any(isinstance(m, SelfEnsemble) and m.n > 1 for m in wrapped.modules()):  # dropping it changes the output
        raise SelfEnsembleError(
            f"{named}a self-ensemble (@xN) runs with the torch backend only: "
            "run it there, or drop the @xN suffix to export the model alone"
        )
    model = copy.deepcopy(unwrap(wrapped)) if wrapped is model_or_name else unwrap(wrapped)
    model = set_memory_format(model.float().cpu().eval(), torch.contiguous_format)
    reparameterize(model)
    if isinstance(wrapped, ChromaFromLuma):
        model = ChromaFromLuma(model, wrapped.radius, wrapped.eps, wrapped.scale).eval()
    return model


def _torch_export(model: nn.Module, path: Path, opset: int, dynamic: bool, example_size: tuple[int, int]) -> None:
    x = torch.rand(1, 3, *example_size)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about python control flow on shapes
        torch.onnx.export(
            model,
            (x,),
            str(path),
            input_names=["input"],
            output_names=["output"],
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
            dynamic_axes={"input": axes, "output": axes} if dynamic else None,
        )


def calibration_crops(count: int = 8, size: int = 128, seed: int = 0) -> list[np.ndarray]:
    """``count`` (1,3,size,size) float32 RGB [0,1] crops to calibrate int8 activations.

    Degraded crops of the built-in sample images (what the model sees in use), or structured
    synthetic crops (ramps, edges, checkerboards, noise) when the samples are unavailable.
    """
    rng = np.random.default_rng(seed)
    crops: list[np.ndarray] = []
    try:
        from kdsharp.data import Degrader, sample_paths
        from kdsharp.io.images import read_rgb

        images = [read_rgb(p) for p in sample_paths()]
        degrader = Degrader("mixed")
        for i in range(count if images else 0):
            img = images[i % len(images)]
            h, w = img.shape[:2]
            if h < size or w < size:
                continue
            y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
            crop = np.ascontiguousarray(img[y : y + size, x : x + size])
            crop = degrader(crop, rng=int(rng.integers(1 << 30)))
            crops.append(crop.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)
    except Exception:  # noqa: BLE001 - samples/degradations not available: fall back to synthetic crops
        crops = []
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    while len(crops) < count:
        k = len(crops)
        base = np.stack([xx, yy, ((np.floor(xx * 8 + k) + np.floor(yy * 8)) % 2)], 0)
        img = 0.7 * base + 0.3 * rng.random((3, size, size), dtype=np.float32)
        crops.append(np.clip(img, 0, 1).astype(np.float32)[None])
    return crops


def _quantize_int8(src: Path, dst: Path, example_size: tuple[int, int], convs_only: bool = False) -> None:
    """Static QDQ int8 of ``src``; ``convs_only``: quantize the convolutions alone (a chroma step's
    variances and slopes, a level or less apart, would not survive 8-bit activations)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration_crops(8, min(128, max(example_size))))

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {"input": x}

    prepped = src.with_name("prep.onnx")
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
    except Exception:  # noqa: BLE001 - pre-processing is an optimisation only
        prepped = src
    quantize_static(
        str(prepped),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        **({"op_types_to_quantize": ["Conv"]} if convs_only else {}),
    )


def export_onnx(
    model_or_name: nn.Module | str | Path,
    path: str | Path,
    opset: int = 17,
    dynamic: bool = True,
    half: bool = False,
    int8: bool = False,
    example_size: tuple[int, int] = (256, 256),
    overwrite: bool = False,
) -> Path:
    """Write ``model_or_name`` (a module, registered name or checkpoint path) to ONNX at ``path``.

    Args:
        opset: ONNX opset (11-20). dynamic: free batch/height/width (else fixed to the example).
        half: float16 inside, float32 I/O. int8: static QDQ int8 quantization (CPU-friendly).
        example_size: (H, W) of the tracing (and, when not dynamic, the fixed) input.
        overwrite: replace an existing file at ``path`` (else that is an error, before any work).
    A test-time wrapper such as the teacher's local windows is not part of the graph (the
    exported network runs whole inputs): feed the ONNX model tiles of the window size instead.
    ``fast``'s chroma step (:class:`~kdsharp.models.wrappers.ChromaFromLuma`) is.
    Returns:
        ``path``, written atomically (no partial file on failure).
    """
    path = Path(path)
    if half and int8:
        raise KdsharpError("choose one of half=True and int8=True, not both", params=["half", "int8"])
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise KdsharpError(f"opset {opset} is not supported: use {MIN_OPSET}..{MAX_OPSET} (default 17)")
    if path.name.lower() == ".onnx":  # Path('.onnx').suffix is '': a hidden file without a name
        raise KdsharpError(f"{path}: the output has an extension but no name: name it, e.g. -o model.onnx")
    if path.suffix.lower() != ".onnx":
        raise KdsharpError(f"{path}: the output must end in .onnx (e.g. -o model.onnx)")
    if path.is_dir():
        raise OutputError(
            path, "is a folder", f"write the model into it as {path / 'model.onnx'}, or choose a file name"
        )
    check_target(path, overwrite, folder_checked=True)  # before loading the model: a refusal costs nothing
    model = _prepare(model_or_name)
    ensure_writable_dir(path.parent, target=path)  # made only once the model loaded
    cell = model_cell(model)
    if half:
        model = _HalfInside(model)
    with atomic_path(path) as tmp:
        if int8:
            with tempfile.TemporaryDirectory(prefix="kdsharp-onnx-") as work:
                fp32 = Path(work) / "fp32.onnx"
                _torch_export(model, fp32, opset, dynamic, example_size)
                _quantize_int8(fp32, tmp, example_size, convs_only=isinstance(model, ChromaFromLuma))
        else:
            _torch_export(model, tmp, opset, dynamic, example_size)
        import onnx

        graph = onnx.load(str(tmp))  # the cell lets a runtime replicate-pad inputs too small to reflect
        graph.metadata_props.add(key=CELL_KEY, value=str(cell))
        onnx.save(graph, str(tmp))
        onnx.checker.check_model(str(tmp))
    return path
