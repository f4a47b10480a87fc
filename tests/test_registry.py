"""Registry and weights I/O: names and roles, checkpoint layouts, official Restormer checkpoints,
shipped-weights handling, corrupt files, model_info."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdsharp import registry
from kdsharp.errors import InputError, KdsharpError, UnknownModelError
from kdsharp.io.weights import load_state_dict_file, save_weights
from kdsharp.models import FastNet, LocalWindows, Restormer, ResUNetLite, unwrap
from kdsharp.models.wrappers import ChromaFromLuma
from kdsharp.registry import create_model, infer_restormer_kwargs, list_models, load_model, model_info, save_model


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def _same_output(a: torch.nn.Module, b: torch.nn.Module, atol: float = 1e-5) -> bool:
    x = torch.rand(1, 3, 27, 35, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=atol)


def test_roles_and_shipped_weight_names():
    assert list_models("teacher") == ["teacher"]
    assert set(list_models("student")) == {"student", "student_nokd"}
    assert list_models("fast") == ["fast"]
    assert {
        "restormer",
        "restormer_small",
        "restormer_tiny",
        "resunet_teacher",
        "unet",
        "resunet_lite",
        "fast_y",
        "fast_rgb",
    } <= set(list_models("arch"))
    assert registry.weights_path("student_nokd").name == "student_nokd.safetensors"
    assert registry.weights_path("restormer") is None
    teacher = create_model("teacher")  # the architecture in its test-time local windows
    assert type(teacher) is LocalWindows and teacher.window == 192
    assert type(unwrap(teacher)) is Restormer and unwrap(teacher).arch_kwargs["dim"] == 24
    for name in ("student", "student_nokd"):  # the architecture, its chroma refitted to its own luma
        student = create_model(name)
        assert type(student) is ChromaFromLuma and not student.from_input and type(unwrap(student)) is ResUNetLite
    fast = create_model("fast")  # the architecture with its chroma step (a test-time wrapper)
    assert type(fast) is ChromaFromLuma and isinstance(unwrap(fast), FastNet)


def test_unknown_names_raise_unknown_model_error():
    with pytest.raises(UnknownModelError, match="known models: .*restormer"):
        create_model("restormer_huge")
    with pytest.raises(UnknownModelError):
        load_model("no_such_model")
    with pytest.raises(UnknownModelError):
        model_info("no_such_model")
    with pytest.raises(InputError, match="not found"):
        load_model("missing/checkpoint.pth")


@pytest.mark.parametrize("typo,meant", [("studnet", "student"), ("Fast", "fast"), ("teacher_", "teacher")])
def test_a_mistyped_model_name_gets_the_closest_name(typo, meant):
    with pytest.raises(UnknownModelError, match=f"did you mean '{meant}'"):
        load_model(typo)


def test_a_name_like_none_gets_no_suggestion():
    with pytest.raises(UnknownModelError) as e:
        load_model("xyzzy_qqq")
    assert "did you mean" not in str(e.value)


def test_missing_shipped_weights_are_a_clear_error_then_load_once_saved(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(KdsharpError, match="no trained weights ship for 'student' yet"):
        load_model("student")
    assert not model_info("student")["weights_shipped"]
    with pytest.raises(KdsharpError, match="without shipped weights") as e:
        load_model("restormer_tiny")
    assert "checkpoint file" in str(e.value) and "in Python, weights=False" in str(e.value)  # CLI users can act on it
    untrained = load_model("student", weights=False)
    assert not untrained.training
    trained = _randomize(create_model("student"))
    save_model(trained, tmp_path / "student.safetensors", half=False)
    assert model_info("student")["weights_shipped"]
    loaded = load_model("student")
    # the deployed (channels-last) network differs from the built one by float rounding (~1e-6), which
    # the chroma step's division by local luma variances can raise tenfold
    assert not loaded.training and _same_output(loaded, trained, atol=1e-4)


@pytest.mark.parametrize("layout", ["params", "params_ema", "bare", "both", "ddp"])
def test_pth_layouts_round_trip(tmp_path, layout):
    model = _randomize(create_model("unet"))
    sd = model.state_dict()
    other = {k: torch.zeros_like(v) for k, v in sd.items()}
    obj = {
        "params": {"params": sd},
        "params_ema": {"params_ema": sd},
        "bare": sd,
        "both": {"params": other, "params_ema": sd},
        "ddp": {"params": {f"module.{k}": v for k, v in sd.items()}},
    }[layout]
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    loaded_sd, meta = load_state_dict_file(path)  # EMA weights by default
    assert loaded_sd.keys() == sd.keys() and all(torch.equal(loaded_sd[k], sd[k]) for k in sd)
    assert meta["layout"] == {"bare": "bare", "params_ema": "params_ema", "both": "params_ema"}.get(layout, "params")
    loaded = load_model(path)  # no 'arch' recorded: recognised from the tensor layout
    assert type(loaded).__name__ == "UNet" and _same_output(loaded, model)


@pytest.mark.parametrize("deploy", [False, True])
def test_a_saved_state_dict_of_a_shipped_model_loads_back(tmp_path, deploy):
    """``torch.save({'params': model.state_dict()})`` of a fine-tuned ``student`` (not one of the
    architecture presets: its full-resolution stage) was an "unrecognised checkpoint". Recognised as
    the registered ``student`` by its tensors, it loads as that model, chroma step included."""
    model = load_model("student", deploy=deploy)
    torch.save({"params": unwrap(model).state_dict()}, tmp_path / "mine.pth")
    loaded = load_model(tmp_path / "mine.pth")
    assert isinstance(loaded, ChromaFromLuma) and isinstance(unwrap(loaded), ResUNetLite)
    assert _same_output(loaded, model, atol=1e-4)  # (layouts differ by float rounding: see above)


def test_raw_weights_on_request(tmp_path):
    model = _randomize(create_model("unet"))
    raw = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    path = tmp_path / "both.pth"
    torch.save({"params": raw, "params_ema": model.state_dict()}, path)
    sd, meta = load_state_dict_file(path, ema=False)
    assert meta["layout"] == "params" and all(not v.any() for v in sd.values())
    assert not _same_output(load_model(path, ema=False), model) and _same_output(load_model(path), model)
    torch.save({"params": model.state_dict(), "params_ema": None}, path)  # a run without EMA
    assert _same_output(load_model(path), model)


def test_trainer_pth_with_arch_metadata(tmp_path):
    model = _randomize(ResUNetLite(channels=[8, 16, 16], enc_blocks=[1, 1, 1]))
    arch, kwargs = registry.model_spec(model)
    path = tmp_path / "best.pth"
    torch.save(
        {
            "params": model.state_dict(),
            "params_ema": model.state_dict(),
            "arch": arch,
            "arch_kwargs": kwargs,
            "iter": 10,
        },
        path,
    )
    loaded = load_model(path)
    assert loaded.arch_kwargs == model.arch_kwargs and _same_output(loaded, model)


def test_safetensors_fp16_round_trip_into_fp32_model(tmp_path):
    model = _randomize(create_model("resunet_lite"))
    path = save_model(model, tmp_path / "w.safetensors", meta={"iters": 5})
    sd, meta = load_state_dict_file(path)
    assert all(v.dtype == torch.float16 for v in sd.values())
    assert meta["arch"] == "ResUNetLite" and meta["arch_kwargs"] == model.arch_kwargs and meta["iters"] == "5"
    loaded = load_model(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, model.state_dict()[k].half().float()), k
    assert _same_output(loaded, model, atol=2e-3)
    path32 = save_weights(
        tmp_path / "w32.safetensors",
        model.state_dict(),
        {"arch": "ResUNetLite", "arch_kwargs": model.arch_kwargs},
        half=False,
    )
    assert _same_output(load_model(path32), model)


def test_deployed_and_training_form_fast_checkpoints(tmp_path):
    model = _randomize(unwrap(create_model("fast")))  # checkpoints hold the architecture
    save_model(model, tmp_path / "train.safetensors", half=False)
    deployed = load_model(tmp_path / "train.safetensors")
    assert deployed.is_deployed and _same_output(deployed, model, atol=1e-4)
    assert not load_model(tmp_path / "train.safetensors", deploy=False).is_deployed
    save_model(deployed, tmp_path / "deployed.safetensors", half=False)
    again = load_model(tmp_path / "deployed.safetensors", deploy=False)
    assert again.is_deployed and _same_output(again, model, atol=1e-4)


@pytest.mark.parametrize(
    "config",
    [
        dict(dim=8, num_blocks=[1, 2, 1, 2], num_refinement_blocks=1, heads=[1, 2, 4, 8]),
        dict(
            dim=8,
            num_blocks=[2, 1, 1, 1],
            num_refinement_blocks=2,
            heads=[2, 2, 2, 4],
            bias=True,
            LayerNorm_type="BiasFree",
            ffn_expansion_factor=2.0,
        ),
    ],
)
@pytest.mark.parametrize("layout", ["params", "params_ema", "bare"])
def test_official_restormer_checkpoint_loads_by_path(tmp_path, config, layout):
    torch.manual_seed(0)
    original = _randomize(Restormer(**config))
    sd = original.state_dict()
    path = tmp_path / "motion_deblurring.pth"
    torch.save({"params": {"params": sd}, "params_ema": {"params_ema": sd}, "bare": sd}[layout], path)
    loaded = load_model(path)
    assert isinstance(loaded, Restormer) and not loaded.training
    expected = Restormer(**config).arch_kwargs
    assert loaded.arch_kwargs == expected
    assert _same_output(loaded, original)


def test_infer_restormer_kwargs_of_the_official_model_is_the_default():
    with torch.device("meta"):
        official = Restormer()
    assert infer_restormer_kwargs(official.state_dict()) == official.arch_kwargs


def test_mismatching_checkpoint_is_an_input_error(tmp_path):
    sd = create_model("unet").state_dict()
    sd.pop("tail.weight")
    path = tmp_path / "bad.pth"
    torch.save({"params": sd, "arch": "UNet", "arch_kwargs": create_model("unet").arch_kwargs}, path)
    with pytest.raises(InputError, match="missing 1 tensors: tail.weight"):
        load_model(path)
    assert isinstance(load_model(path, strict=False), torch.nn.Module)
    torch.save({"params": {"x": torch.zeros(3)}}, tmp_path / "alien.pth")
    with pytest.raises(InputError, match="unrecognised checkpoint"):
        load_model(tmp_path / "alien.pth")


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    "kind, says",
    [
        ("empty", "empty"),
        ("garbage", "not a PyTorch checkpoint"),
        ("random_bytes", "not a PyTorch checkpoint"),
        ("text", "not a PyTorch checkpoint"),
        ("truncated_pth", "not a PyTorch checkpoint"),
        ("truncated_safetensors", "not a readable safetensors file"),
        ("pickle_object", "holds Python objects"),
        ("folder", "folder"),
        ("list", "not a state dict"),
    ],
)
def test_corrupt_files_raise_input_error(tmp_path, kind, says, capsys):
    """Each names the file and what is wrong with it (random bytes were "holds Python objects")."""
    path = tmp_path / ("w.safetensors" if "safetensors" in kind else "w.pth")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 10)
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes())
    elif kind == "text":
        path.write_text("hello world\n")
    elif kind == "truncated_pth":
        torch.save({"params": {"a": torch.rand(64, 64)}}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "truncated_safetensors":
        save_weights(path, {"a": torch.rand(64, 64)}, half=False)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "pickle_object":
        torch.save({"params": _Evil()}, path)
    elif kind == "folder":
        path.mkdir()
    else:
        torch.save([torch.zeros(2)], path)
    with pytest.raises(InputError) as info:
        load_model(path)
    assert str(info.value).startswith(f"{path}: ") and says in str(info.value) and "\n" not in str(info.value)
    assert "must never run" not in capsys.readouterr().out


def test_model_info_counts_params_and_macs():
    info = model_info("fast")
    assert info["role"] == "fast" and info["arch"] == "FastNet" and info["weights"] == "fast.safetensors"
    assert info["params"] == sum(p.numel() for p in create_model("fast").parameters())
    # deployed fast at 1080p: 270x480 positions x (luma/unshuffle 16*3*16 + 5 convs of 16*16*9) MACs
    assert info["gmacs_1080p"] == pytest.approx(270 * 480 * (16 * 3 * 16 + 5 * 16 * 16 * 9) / 1e9)
    base = model_info("restormer")
    assert base["params"] == 26_126_644 and 4000 < base["gmacs_1080p"] < 6000
    assert model_info("student")["gmacs_1080p"] < model_info("teacher")["gmacs_1080p"] / 20


def test_a_second_self_ensemble_suffix_is_refused():
    with pytest.raises(KdsharpError, match=r"'fast@x8@x2': give one self-ensemble suffix \(e.g. 'fast@x8'\)"):
        load_model("fast@x8@x2")  # was SelfEnsemble(SelfEnsemble(fast, 8), 2): 16 passes, each symmetry twice
    assert registry.split_ensemble("fast@x8") == ("fast", 8)


@pytest.mark.parametrize("name, accepted", [("student", "channels"), ("teacher", "dim"), ("fast", "num_blocks")])
def test_an_unknown_model_keyword_names_the_model_and_its_keywords(name, accepted):
    """Was a raw TypeError from deep inside the constructor (ResUNet.__init__() got an unexpected ...)."""
    with pytest.raises(KdsharpError) as info:
        create_model(name, bogus_kwarg=1)
    msg = str(info.value)
    assert msg.startswith(f"model '{name}' takes no keyword bogus_kwarg=1 (its keywords: ") and "\n" not in msg
    assert accepted in msg and isinstance(info.value, TypeError)  # callers that catch TypeError still do
    with pytest.raises(ValueError, match="len"):  # a bad value is not an unknown keyword
        create_model("student", channels=[8])


@pytest.mark.parametrize("drop", ["output.weight", "patch_embed.proj.weight"])
def test_an_official_restormer_checkpoint_without_a_tensor_names_it(tmp_path, drop):
    """Was "unrecognised checkpoint (... not a Restormer or kdsharp layout)", not what is missing."""
    sd = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1).state_dict()
    sd.pop(drop)
    path = tmp_path / "motion_deblurring.pth"
    torch.save({"params": sd}, path)
    with pytest.raises(InputError) as info:
        load_model(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: a Restormer checkpoint without {drop} ") and "\n" not in msg
