"""ONNX export: parity with torch at several sizes from one file, fp16 and int8 variants, atomic
writes, and the ``kdsharp models`` / ``kdsharp export`` commands."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from kdsharp.cli import main
from kdsharp.errors import KdsharpError
from kdsharp.infer.export import calibration_crops, export_onnx
from kdsharp.models import Restormer, unwrap
from kdsharp.registry import create_model, save_model


def _randomize(model: torch.nn.Module, scale: float = 0.03, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def _run(path, x: torch.Tensor) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"] and [o.name for o in sess.get_outputs()] == ["output"]
    return sess.run(None, {"input": x.numpy()})[0]


def _torch(model, x):
    with torch.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize(
    "make",
    [
        lambda: create_model("resunet_lite"),
        lambda: create_model("unet"),
        lambda: Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1),
    ],
    ids=["resunet_lite", "unet", "restormer_small_cfg"],
)
def test_onnx_matches_torch_at_two_sizes_from_one_file(tmp_path, make):
    model = _randomize(make())
    path = export_onnx(model, tmp_path / "m.onnx", example_size=(64, 64))
    for shape in [(1, 3, 37, 53), (2, 3, 72, 40)]:  # neither is the tracing size nor a multiple of 8
        x = torch.rand(*shape)
        out = _run(path, x)
        assert out.shape == shape and out.dtype == np.float32
        assert np.abs(out - _torch(model, x)).max() < 1e-3


def test_fast_is_exported_reparameterized_and_matches_training_form(tmp_path):
    """The registered `fast` exports with its chroma step (ChromaFromLuma: traced for every size)."""
    model = _randomize(create_model("fast"), 0.1)
    path = export_onnx(model, tmp_path / "fast.onnx")
    assert not unwrap(model).is_deployed  # the caller's module is left as it was
    convs = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    assert len(convs) == 1 + 5  # luma/unshuffle + head + 3 body + tail, one conv each
    assert any(n.op_type == "AveragePool" for n in onnx.load(str(path)).graph.node)  # the chroma step's windows
    for shape in [(1, 3, 30, 50), (1, 3, 64, 36), (1, 3, 37, 51)]:
        x = torch.rand(*shape)
        assert np.abs(_run(path, x) - _torch(model, x)).max() < 3e-3  # randomized weights: outputs of several units


def test_export_from_a_checkpoint_path_and_fixed_size(tmp_path):
    model = _randomize(create_model("unet"))
    ckpt = save_model(model, tmp_path / "unet.safetensors", half=False)
    path = export_onnx(ckpt, tmp_path / "fixed.onnx", dynamic=False, example_size=(32, 48))
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 32, 48]
    x = torch.rand(1, 3, 32, 48)
    assert np.abs(_run(path, x) - _torch(model, x)).max() < 1e-3


def test_int8_export_is_quantized_and_close(tmp_path):
    model = _randomize(create_model("resunet_lite"), 0.02)
    path = export_onnx(model, tmp_path / "q.onnx", int8=True)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    x = torch.from_numpy(calibration_crops(1, 96, seed=5)[0])
    out, ref = _run(path, x), _torch(model, x)
    assert out.shape == ref.shape and np.abs(out - ref).mean() < 0.02
    assert np.abs(out - ref).mean() < 0.5 * np.abs(ref - x.numpy()).mean() + 0.01  # keeps the model's effect


def test_fp16_export_keeps_float32_io(tmp_path):
    model = _randomize(create_model("fast"), 0.05)
    path = export_onnx(model, tmp_path / "h.onnx", half=True)
    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.initializer)
    x = torch.rand(1, 3, 40, 60)
    assert np.abs(_run(path, x) - _torch(model, x)).max() < 1e-2


def test_calibration_crops_are_valid_images():
    crops = calibration_crops(3, 64)
    assert len(crops) == 3
    for c in crops:
        assert c.shape == (1, 3, 64, 64) and c.dtype == np.float32 and 0 <= c.min() and c.max() <= 1
        assert c.std() > 0.02


def test_bad_export_requests_leave_no_file(tmp_path):
    model = create_model("fast")
    with pytest.raises(KdsharpError, match="not both"):
        export_onnx(model, tmp_path / "x.onnx", half=True, int8=True)
    with pytest.raises(KdsharpError, match="opset"):
        export_onnx(model, tmp_path / "x.onnx", opset=7)
    with pytest.raises(KdsharpError, match="must end in .onnx"):
        export_onnx(model, tmp_path / "x.txt")
    with pytest.raises(KdsharpError, match="an extension but no name"):
        export_onnx(model, tmp_path / ".onnx")
    assert list(tmp_path.iterdir()) == []


def test_models_cli_lists_every_model(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert {"teacher", "student", "student_nokd", "fast", "restormer", "resunet_teacher"} <= names
    assert all(r["params"] > 0 and r["gmacs_1080p"] > 0 for r in rows)
    assert main(["models"]) == 0
    err = capsys.readouterr().err
    assert "student_nokd" in err and "GMACs" in err


def test_export_cli(tmp_path, capsys):
    ckpt = save_model(_randomize(create_model("fast")), tmp_path / "fast.safetensors")
    out = tmp_path / "out" / "fast.onnx"
    assert main(["export", "--model", str(ckpt), "-o", str(out), "--opset", "17"]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().err
    assert main(["export", "--model", "no_such_model", "-o", str(tmp_path / "n.onnx")]) == 2
    assert "unknown model 'no_such_model'" in capsys.readouterr().err
    assert not (tmp_path / "n.onnx").exists()


def test_models_cli_unknown_role_lists_the_roles(capsys):
    assert main(["models", "--role", "bogus"]) == 2
    cap = capsys.readouterr()
    lines = [line for line in cap.err.splitlines() if line.strip()]
    assert cap.out == "" and len(lines) == 1 and "bogus" in lines[0]
    assert all(role in lines[0] for role in ("teacher", "student", "fast", "arch"))


def test_static_onnx_on_another_size_says_the_fixed_size_and_the_fix(tmp_path, capsys):
    import cv2
    from conftest import make_test_image

    model = tmp_path / "st.onnx"
    assert main(["export", "--model", "fast", "-o", str(model), "--static", "--size", "64x48"]) == 0
    img = tmp_path / "a.png"
    img.write_bytes(cv2.imencode(".png", make_test_image(40, 50))[1].tobytes())
    capsys.readouterr()
    code = main(
        [
            "sharpen",
            str(img),
            "-o",
            str(tmp_path / "o.png"),
            "--model",
            str(model),
            "--backend",
            "onnx",
            "--threads",
            "1",
        ]
    )
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1, errors
    assert "st.onnx" in errors[0] and "64x48" in errors[0] and "50x40" in errors[0] and "dynamic sizes" in errors[0]


def test_export_onto_a_folder_is_a_one_line_error(tmp_path, capsys):
    folder = tmp_path / "models.onnx"
    folder.mkdir()
    assert main(["export", "--model", "fast", "-o", str(folder)]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"{folder}: is a folder" in lines[0] and "model.onnx" in lines[0], lines
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["models.onnx"]


def test_export_keeps_an_existing_file_unless_overwrite_and_writes_atomically(tmp_path, capsys, monkeypatch):
    out = tmp_path / "fast.onnx"
    out.write_bytes(b"earlier model")
    assert main(["export", "--model", "fast", "-o", str(out)]) == 2  # as `sharpen` treats an existing output
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"{out}: already exists" in lines[0] and "--overwrite" in lines[0], lines
    assert out.read_bytes() == b"earlier model"

    import kdsharp.infer.export as export

    def crash(*a, **k):
        raise RuntimeError("tracing failed")

    monkeypatch.setattr(export, "_torch_export", crash)
    assert main(["export", "--model", "fast", "-o", str(out), "--overwrite"]) == 1
    assert out.read_bytes() == b"earlier model" and sorted(p.name for p in tmp_path.iterdir()) == ["fast.onnx"]
    monkeypatch.undo()
    assert main(["export", "--model", "fast", "-o", str(out), "--overwrite"]) == 0
    onnx.checker.check_model(str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fast.onnx"]


def test_export_into_a_folder_that_takes_no_files_exits_2_naming_the_output(capsys):
    # /proc accepts no new files even for root (permission bits do not stop root)
    assert main(["export", "--model", "fast", "-o", "/proc/kdsharp-test.onnx"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "/proc/kdsharp-test.onnx: cannot be written" in lines[0] and "writable" in lines[0]


@pytest.mark.parametrize("name", ["fast", "student"])
def test_onnx_runs_images_too_small_to_reflect_as_torch_does(tmp_path, name):
    """1x1 or 3x5 frames: the graph's reflect padding to the model's cell failed in ONNX Runtime
    ("Pad reflect requires axis length >= 2"); the file records the cell and the backend replicates
    the edges first, as the torch model does, so the outputs agree."""
    from kdsharp.infer.sharpener import Sharpener

    model = _randomize(create_model(name), scale=0.01)
    path = export_onnx(model, tmp_path / "m.onnx", example_size=(32, 32))
    onnx_s, torch_s = Sharpener(path, backend="onnx", device="cpu"), Sharpener(model, device="cpu")
    assert onnx_s.align == torch_s.align == {"fast": 4, "student": 16}[name]  # tiles aligned for ONNX too
    for h, w in [(1, 1), (3, 5), (2, 17), (9, 4)]:
        x = torch.rand(1, 3, h, w)
        assert (onnx_s.tensor(x) - torch_s.tensor(x)).abs().max() < 1e-4
