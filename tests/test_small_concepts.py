"""Small concepts defined once: flips/rotations, WIDTHxHEIGHT sizes, video extensions, device
names, the PSNR cap, and the two model builders' names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdsharp.errors import KdsharpError
from kdsharp.ops.geometry import dihedral, flip_rotate


def test_dihedral_codes_are_the_eight_symmetries_for_arrays_and_tensors():
    t = torch.arange(2 * 3 * 4.0).view(2, 3, 4)
    a = t.permute(1, 2, 0).numpy()  # the same image as HxWxC
    outs = []
    for code in range(8):
        ref = t.flip(-1) if code & 1 else t  # the former train.loaders.augment_like
        ref = ref.flip(-2) if code & 2 else ref
        ref = ref.transpose(-1, -2) if code & 4 else ref
        got = dihedral(t, code)
        assert torch.equal(got, ref) and got.is_contiguous()
        assert np.array_equal(dihedral(a, code, axes=(0, 1)), ref.permute(1, 2, 0).numpy())
        outs.append(tuple(got.flatten().tolist()) + tuple(got.shape))
    assert len(set(outs)) == 8


def test_flip_rotate_is_the_former_dataset_augmentation():
    a = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    for hflip in (False, True):
        for vflip in (False, True):
            for rot in range(4):
                ref = a[:, ::-1] if hflip else a
                ref = ref[::-1] if vflip else ref
                got = flip_rotate(a, hflip, vflip, rot, axes=(0, 1))
                assert np.array_equal(got, np.rot90(ref, rot)) and got.flags.c_contiguous


def test_one_parse_size():
    from kdsharp.data.datasets import parse_size as data_parse_size
    from kdsharp.io.formats import parse_size

    assert data_parse_size is parse_size
    assert parse_size("640x360") == parse_size("640*360") == parse_size((640, 360)) == (640, 360)
    for bad in ("640", "axb", "640by360", "4x100", None):
        with pytest.raises(KdsharpError, match="size"):
            parse_size(bad)
    with pytest.raises(KdsharpError, match="16..8192"):
        parse_size("8x8", min_side=16, max_side=8192)


def test_cli_export_size_error_names_the_flag(tmp_path, capsys):
    from kdsharp.cli import main

    assert main(["export", "--model", "fast", "-o", str(tmp_path / "f.onnx"), "--size", "big"]) == 2
    assert "--size big: expected WIDTHxHEIGHT" in capsys.readouterr().err


def test_video_extensions():
    from kdsharp.io.formats import VIDEO_EXTS, VIDEO_INPUT_EXTS, is_video_path

    assert set(VIDEO_EXTS) < set(VIDEO_INPUT_EXTS)
    assert is_video_path("a.MP4", writable=True) and is_video_path("a.y4m") and not is_video_path("a.y4m", True)
    assert not is_video_path("a.png")


def test_device_names(monkeypatch):
    from kdsharp.devices import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(KdsharpError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    with pytest.raises(KdsharpError, match="no CUDA GPU"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 1)
    with pytest.raises(KdsharpError, match="2 CUDA GPU"):
        resolve_device("cuda:2")


def test_training_and_evaluation_check_the_device_early(tmp_path, monkeypatch):
    from kdsharp.evaluate.report import evaluate
    from kdsharp.train.distributed import setup_distributed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(KdsharpError, match="no CUDA GPU"):
        setup_distributed("cuda")  # was torch.device('cuda', 0): a late, unclear failure
    with pytest.raises(KdsharpError, match="no CUDA GPU"):
        evaluate(data=tmp_path, device="cuda", out_dir=tmp_path / "r")


def test_psnr_cap_in_every_mean():
    from kdsharp.evaluate.baselines import _mean_psnr
    from kdsharp.evaluate.report import _mean_stats
    from kdsharp.metrics import PSNR_CAP, capped

    assert capped(float("inf")) == PSNR_CAP == 100.0 and capped(31.5) == 31.5
    x = torch.rand(1, 3, 8, 8)
    assert _mean_psnr([x, x], [(x * 255).round(), (x * 255).round()]) == PSNR_CAP
    stats = _mean_stats({"a": {"input": {"psnr": float("inf"), "ssim": 1.0}}}, ["input"])
    assert stats["input"]["psnr"] == PSNR_CAP


def test_validation_psnr_counts_an_identical_pair_at_the_cap():
    """psnr_torch gives inf on identical images (as psnr and scikit-image do; it gave ~200 dB),
    and validation's mean counts that pair as PSNR_CAP, like the eval report."""
    from kdsharp.metrics import PSNR_CAP, psnr, psnr_torch
    from kdsharp.train.builders import score

    g = torch.Generator().manual_seed(0)
    gt = (torch.rand(1, 3, 16, 16, generator=g) * 255).round() / 255
    lq = ((gt + 0.05 * torch.randn(gt.shape, generator=g)).clamp(0, 1) * 255).round() / 255
    assert psnr_torch(gt, gt).item() == float("inf")
    noisy = psnr(*(t[0].permute(1, 2, 0).mul(255).round().byte().numpy() for t in (lq, gt)))
    s = score(lambda x: x, [(lq, gt), (gt, gt)], torch.device("cpu"), groups=["a", "a"])
    assert s["psnr"] == pytest.approx((noisy + PSNR_CAP) / 2, abs=1e-3) == s["psnr_a"]
    assert score(lambda x: x, [(lq, gt)], torch.device("cpu"))["psnr"] == pytest.approx(noisy, abs=1e-3)


def test_the_two_model_builders_say_what_they_build():
    import kdsharp.registry as registry
    import kdsharp.train.builders as builders

    assert not hasattr(registry, "build_model") and not hasattr(builders, "build_model")
    model = registry.model_from_spec("UNet", {"channels": [8, 16], "stem": 2})
    trained, arch = builders.model_from_config(
        {"name": "unet", "kwargs": {"channels": [8, 16], "stem": 2}}, torch.device("cpu")
    )
    assert type(model) is type(trained) and arch == {"name": "UNet", "kwargs": model.arch_kwargs}


def test_line_progress_follows_a_resumed_task_and_its_description(capsys):
    """The plain progress lines of a piped run: a task that starts part way (a resumed training run,
    ``completed=``) counts from there, its rate counts only this process's steps, and description
    updates (the training loss terms) show."""
    from kdsharp import console as con

    clock = iter(float(t) for t in range(100))
    bar = con.LineProgress("steps", interval=0)
    bar._clock = lambda: next(clock)
    task = bar.add_task("train", total=60, completed=35)
    bar.update(task, description="train loss 0.0123")
    bar.advance(task, 5)
    bar.update(task, completed=45)
    bar.remove_task(task)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("train")]
    assert lines[0].startswith("train loss 0.0123: 35/60 steps (58%)")  # was 0/60 and no loss
    assert lines[1].startswith("train loss 0.0123: 40/60 steps (67%), 2.5 steps/s, ETA 8 s")  # 5 steps in 2 s
    assert lines[2].startswith("train loss 0.0123: 45/60 steps (75%)")


def test_counts_read_as_english():
    from kdsharp.console import plural
    from kdsharp.evaluate.tables import subset_note

    assert plural(1, "thread") == "1 thread" and plural(2, "thread") == "2 threads" and plural(0, "image") == "0 images"
    assert plural(3, "index", "indices") == "3 indices"
    assert subset_note({"n_images": 1}, 1) == "" and subset_note({"n_images": 1}, 2) == " (1 of 2 images)"


def test_dir_of_the_package_lists_its_lazy_api():
    """``dir(kdsharp)`` (a notebook's tab completion) lists ``Sharpener``, ``load_model``, ... before
    their first use; it listed none of them. A fresh interpreter: this session has touched them."""
    import subprocess
    import sys

    code = "import kdsharp; print(sorted(set(kdsharp.__all__) - set(dir(kdsharp))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("package", ["kdsharp.train", "kdsharp.data"])
def test_dir_of_the_lazy_subpackages_lists_their_lazy_api(package):
    """As for ``kdsharp``: ``dir(kdsharp.train)`` left out ``train``, ``Trainer``, ... (and
    ``dir(kdsharp.data)`` the datasets) until first used. A fresh interpreter."""
    import subprocess
    import sys

    code = f"import {package} as p; print(sorted(set(p.__all__) - set(dir(p))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
