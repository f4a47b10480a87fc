"""One model loader (``kdsharp.registry.load_model``) for every layer: a trainer checkpoint means its
EMA weights for the CLI, inference, export, evaluation and training alike; test-time local windows
are a wrapper the registered teacher adds around the bare architecture."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import make_test_image

from kdsharp.cli import main
from kdsharp.models import LocalWindows, Restormer, unwrap
from kdsharp.registry import WEIGHTS_DIR, create_model, load_model, model_spec, save_model

SMALL_RESTORMER = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 4, 8])


def _randomized(model: torch.nn.Module, seed: int, scale: float = 0.2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        k: v + torch.randn(v.shape, generator=g) * scale if v.is_floating_point() else v
        for k, v in model.state_dict().items()
    }


@pytest.fixture
def last_pth(tmp_path):
    """A trainer checkpoint (``last.pth`` layout) whose raw and EMA weights differ clearly."""
    model = create_model("unet", channels=[8, 16], stem=2)
    arch, kwargs = model_spec(model)
    path = tmp_path / "runs" / "x" / "last.pth"
    path.parent.mkdir(parents=True)
    torch.save(
        {
            "params": _randomized(model, 1),
            "params_ema": _randomized(model, 2),
            "optimizer": {},
            "scheduler": {},
            "step": 10,
            "rng": {},
            "arch": arch,
            "arch_kwargs": kwargs,
            "config": {"model": {"name": "unet", "kwargs": {"channels": [8, 16], "stem": 2}}},
        },
        path,
    )
    return path


def _weights_equal(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> bool:
    own = unwrap(model).state_dict()
    return own.keys() == sd.keys() and all(torch.equal(own[k].float(), sd[k].float()) for k in sd)


def test_load_model_reads_the_ema_weights_of_a_trainer_checkpoint(last_pth):
    ckpt = torch.load(last_pth, weights_only=True)
    assert _weights_equal(load_model(last_pth), ckpt["params_ema"])
    assert _weights_equal(load_model(str(last_pth), deploy=False), ckpt["params_ema"])
    assert _weights_equal(load_model(last_pth, ema=False), ckpt["params"])  # raw weights on request


def test_training_code_loads_the_same_weights(last_pth, tmp_path):
    from kdsharp.train.builders import frozen_teacher, init_weights, model_from_checkpoint

    ema = torch.load(last_pth, weights_only=True)["params_ema"]
    trainable = model_from_checkpoint(last_pth)
    assert trainable.training and all(p.requires_grad for p in trainable.parameters())
    assert _weights_equal(trainable, ema)
    assert _weights_equal(model_from_checkpoint(last_pth, ema=False), torch.load(last_pth)["params"])
    fresh = create_model("unet", channels=[8, 16], stem=2)
    init_weights(fresh, str(last_pth))
    assert _weights_equal(fresh, ema)
    teacher = frozen_teacher(str(last_pth), torch.device("cpu"))
    assert _weights_equal(teacher, ema) and not teacher.training


def test_cli_model_path_runs_the_ema_weights(last_pth, tmp_path, capsys):
    from kdsharp.infer.sharpener import Sharpener

    src = tmp_path / "in.png"
    cv2.imwrite(str(src), make_test_image(40, 56))
    out = tmp_path / "out.png"
    assert main(["sharpen", str(src), "-o", str(out), "--model", str(last_pth), "--device", "cpu"]) == 0, (
        capsys.readouterr().err
    )
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    bgr = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
    ema = Sharpener(load_model(last_pth), device="cpu", half=None).image(bgr)  # the CLI's precision choice
    raw = Sharpener(load_model(last_pth, ema=False), device="cpu", half=None).image(bgr)
    assert np.array_equal(got, ema) and not np.array_equal(got, raw)


def test_evaluate_and_export_load_the_ema_weights(last_pth, tmp_path):
    from kdsharp.evaluate.report import resolve_models
    from kdsharp.infer.export import _prepare

    ema = torch.load(last_pth, weights_only=True)["params_ema"]
    ((_, model, _),) = resolve_models([str(last_pth)])[0]
    assert _weights_equal(model, ema) and _weights_equal(_prepare(last_pth), ema)


def test_registered_teacher_is_windowed_and_training_gets_the_architecture():
    from kdsharp.train.builders import frozen_teacher, model_from_config

    teacher = load_model("teacher")  # the shipped weights load into the wrapped architecture
    assert isinstance(teacher, LocalWindows) and teacher.window == 192 and not teacher.training
    same = load_model(WEIGHTS_DIR / "teacher.safetensors")  # by path: the bare architecture
    assert type(same) is Restormer and _weights_equal(same, unwrap(teacher).state_dict())
    bare = frozen_teacher("teacher", torch.device("cpu"))
    assert type(bare) is Restormer and bare.feature_channels["s8"] == 192
    model, arch = model_from_config({"name": "teacher", "kwargs": {}}, torch.device("cpu"))
    assert type(model) is Restormer and arch["name"] == "Restormer" and "local_window" not in arch["kwargs"]


def test_checkpoints_recording_a_local_window_load_wrapped(tmp_path):
    arch = Restormer(**SMALL_RESTORMER)
    sd = _randomized(arch, 3, 0.05)
    for window, kind in ((96, LocalWindows), (None, Restormer)):
        path = tmp_path / f"old_{window}.pth"
        torch.save(
            {"params": sd, "arch": "Restormer", "arch_kwargs": {**arch.arch_kwargs, "local_window": window}}, path
        )
        loaded = load_model(path)
        assert type(loaded) is kind and _weights_equal(loaded, sd)
    assert load_model(tmp_path / "old_96.pth").window == 96


def test_save_model_saves_the_architecture_of_a_wrapped_model(tmp_path):
    wrapped = LocalWindows(Restormer(**SMALL_RESTORMER), 64)
    path = save_model(wrapped, tmp_path / "w.safetensors", half=False)
    loaded = load_model(path)
    assert type(loaded) is Restormer and _weights_equal(loaded, unwrap(wrapped).state_dict())


def test_onnx_export_of_a_windowed_model_is_its_architecture(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from kdsharp.infer.export import export_onnx

    arch = Restormer(**SMALL_RESTORMER)
    arch.load_state_dict(_randomized(arch, 4, 0.05))
    path = export_onnx(LocalWindows(arch.eval(), 32), tmp_path / "t.onnx", example_size=(40, 48))
    x = torch.rand(1, 3, 72, 80)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        assert np.allclose(got, arch(x).numpy(), atol=1e-4)  # whole frames, not 32 px windows


def test_tiles_accumulate_on_the_device_of_the_model():
    from kdsharp.ops.tiling import tiled_forward

    x = torch.empty(1, 3, 100, 130, device="meta")  # no data: a copy to the CPU would fail
    out = tiled_forward(lambda t: t * 2, x, 48, 16)
    assert out.device.type == "meta" and out.shape == (1, 3, 100, 130)


def test_load_model_checks_the_device_and_takes_auto(monkeypatch):
    from kdsharp.errors import KdsharpError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(KdsharpError, match="no CUDA GPU is available"):  # was AssertionError "Torch not compiled..."
        load_model("fast", device="cuda")
    with pytest.raises(KdsharpError, match="no CUDA GPU is available"):
        load_model("fast@x2", device="cuda")
    assert next(load_model("fast", device="auto").parameters()).device.type == "cpu"  # was "unknown device"


def test_load_model_of_a_folder_says_it_is_a_folder(tmp_path):
    from kdsharp.errors import InputError

    (tmp_path / "run.pth").mkdir()
    for folder in (tmp_path / "run.pth", tmp_path):
        with pytest.raises(InputError, match="is a folder, not a checkpoint file"):  # was "file not found"
            load_model(folder)
