"""kdsharp eval: unsharp grid search, report files and numbers, skipped rows, CLI errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import make_test_image
from torch import nn

from kdsharp.cli import main
from kdsharp.evaluate import UNSHARP_GRID, evaluate, tune_unsharp
from kdsharp.evaluate.baselines import unsharp_baseline
from kdsharp.evaluate.sets import build_preset_set, load_clean_images
from kdsharp.io.images import from_tensor, read_rgb, to_tensor, write_image
from kdsharp.metrics import psnr, ssim
from kdsharp.ops.filters import add_detail, unsharp_detail, unsharp_mask


class TinyNet(nn.Module):
    """Residual 2-layer conv: (N,3,H,W) [0,1] -> same; random init, so not the identity."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x):
        return (x + 0.1 * self.body(x)).clamp(0, 1)


def _blur(img: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma)


@pytest.mark.parametrize("amount,sigma,threshold", [(1.0, 1.2, 0.0), (2.0, 0.5, 2 / 255), (0.5, 3.0, 0.0)])
def test_fast_unsharp_path_equals_ops_unsharp_mask(amount, sigma, threshold):
    x = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(1))
    detail = unsharp_detail(x, sigma)
    ref = unsharp_mask(x, amount, sigma, threshold)
    assert torch.allclose(add_detail(x, detail, amount, threshold), ref, atol=1e-6)
    assert torch.allclose(unsharp_baseline({"amount": amount, "sigma": sigma, "threshold": threshold})(x), ref)


def test_unsharp_grid_search_beats_identity_on_blurred_set():
    gts = [make_test_image(48, 64, seed=s) for s in range(3)]
    lq = [to_tensor(_blur(g, 1.0)) for g in gts]
    gt = [to_tensor(g) for g in gts]
    best = tune_unsharp(lq, gt)
    assert best["amount"] in UNSHARP_GRID["amount"] and best["sigma"] in UNSHARP_GRID["sigma"]
    assert best["threshold"] in UNSHARP_GRID["threshold"]
    assert best["psnr"] > best["identity_psnr"] + 0.3
    # the reported score is what ops.unsharp_mask gives on the saved 8-bit images
    outs = [from_tensor(unsharp_mask(x, best["amount"], best["sigma"], best["threshold"])) for x in lq]
    direct = np.mean([psnr(o, g) for o, g in zip(outs, gts, strict=True)])
    assert abs(direct - best["psnr"]) < 1e-3
    with pytest.raises(ValueError):
        tune_unsharp([], [])


def test_eval_paired_folder_report(paired_dir, tmp_path):
    models = {"student": TinyNet(0), "fast": TinyNet(1)}
    out = tmp_path / "report"
    rep = evaluate(data=paired_dir, models=models, out_dir=out, fps_size=(48, 32))
    for name in ("report.md", "report.json", "comparison.png"):
        assert (out / name).is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    js = json.loads((out / "report.json").read_text())
    assert js["rows"] == ["input", "unsharp", "student", "fast"] == rep["rows"]
    ((set_name, st),) = js["presets"].items()
    assert st["n_images"] == 2 and len(st["images"]) == 2
    # numbers equal a direct computation with kdsharp.metrics on the files / the model's output
    for i in range(2):
        lq, gt = read_rgb(paired_dir / "input" / f"img{i}.png"), read_rgb(paired_dir / "target" / f"img{i}.png")
        img = next(v for k, v in st["images"].items() if f"img{i}" in k)
        assert img["input"]["psnr"] == pytest.approx(psnr(lq, gt), abs=1e-6)
        assert img["input"]["ssim"] == pytest.approx(ssim(lq, gt), abs=1e-6)
        with torch.no_grad():
            out_s = from_tensor(models["student"](to_tensor(lq)))
        assert img["student"]["psnr"] == pytest.approx(psnr(out_s, gt), abs=1e-4)
    for row in js["rows"]:
        assert st["rows"][row]["delta_psnr"] == pytest.approx(st["rows"][row]["psnr"] - st["rows"]["input"]["psnr"])
    assert st["rows"]["unsharp"]["psnr"] > st["rows"]["input"]["psnr"]  # tuned on a blurred set
    assert js["unsharp"][set_name]["sigma"] in UNSHARP_GRID["sigma"]
    m = js["methods"]
    assert m["student"]["params"] == sum(p.numel() for p in models["student"].parameters())
    assert m["student"]["fps_cpu_1080p"] > 0 and m["unsharp"]["fps_cpu_1080p"] > 0
    md = (out / "report.md").read_text()
    for title in (
        "input (no processing)",
        "unsharp mask (best of grid)",
        "student (distilled)",
        "fast (real-time)",
        "Unsharp mask chosen: amount",
        "comparison.png",
        f"{js['fps']['cpu_kernels']} kernels)",  # the FPS column says which CPU kernels ran
    ):
        assert title in md
    pic = cv2.imread(str(out / "comparison.png"))
    ncols = 5  # input, unsharp, fast, student, ground truth
    crop = js["comparison"]["crops"][0]["size"]
    assert pic.shape[1] == ncols * crop * 3 + (ncols + 1) * 4
    assert len(js["comparison"]["crops"]) == 3


def test_preset_sets_are_deterministic_and_eval_runs_on_source(tmp_path):
    src = tmp_path / "clean"
    for i in range(2):
        write_image(src / f"c{i}.png", make_test_image(64, 96, seed=10 + i))
    clean = load_clean_images(src)
    assert [n for n, _ in clean] == ["c0", "c1"] and all(im.shape == (64, 96, 3) for _, im in clean)
    a, b = build_preset_set(clean, "defocus", seed=3), build_preset_set(clean, "defocus", seed=3)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0][1], a[0][2])  # actually degraded
    rep = evaluate(
        presets=["defocus", "lowbw"], source=src, models={}, out_dir=tmp_path / "r", measure_fps=False, max_images=1
    )
    assert list(rep["presets"]) == ["defocus", "lowbw"] and rep["data"]["n_images"] == 1
    for row in ("input", "unsharp"):
        mean = np.mean([rep["presets"][p]["rows"][row]["psnr"] for p in rep["presets"]])
        assert rep["overall"][row]["psnr"] == pytest.approx(mean)
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Overall (mean over presets)" in md and "## Preset `lowbw`" in md


def test_rows_without_weights_are_skipped_with_a_warning(paired_dir, tmp_path, monkeypatch, capsys):
    from kdsharp import registry

    real_info = registry.model_info

    def info(name):  # pretend the shipped weights of 'teacher' are not there yet
        d = dict(real_info(name))
        if name == "teacher":
            d["weights_shipped"] = False
        return d

    monkeypatch.setattr(registry, "model_info", info)
    rep = evaluate(data=paired_dir, models=["teacher"], out_dir=tmp_path / "r", measure_fps=False)
    assert rep["rows"] == ["input", "unsharp"] and "teacher" in rep["skipped"]
    assert "skipping row 'teacher'" in capsys.readouterr().err
    assert "teacher" in (tmp_path / "r" / "report.md").read_text()  # listed under skipped rows


def _one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def test_cli_bad_inputs_give_one_line_errors(tmp_path, paired_dir, capsys):
    missing = tmp_path / "nowhere"
    assert "nowhere" in _one_line_error(capsys, ["eval", "--data", str(missing), "-o", str(tmp_path / "o")])
    assert "nowhere" in _one_line_error(
        capsys, ["eval", "--preset", "defocus", "--source", str(missing), "-o", str(tmp_path / "o")]
    )
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert "file.txt" in _one_line_error(
        capsys, ["eval", "--data", str(paired_dir), "-o", str(blocker), "--models", "", "--no-fps"]
    )
    assert "no_such_model" in _one_line_error(
        capsys, ["eval", "--data", str(paired_dir), "--models", "no_such_model", "-o", str(tmp_path / "o"), "--no-fps"]
    )
    assert "no_such_preset" in _one_line_error(
        capsys,
        [
            "eval",
            "--preset",
            "no_such_preset",
            "--source",
            str(paired_dir / "target"),
            "--models",
            "",
            "-o",
            str(tmp_path / "o"),
            "--no-fps",
        ],
    )


def test_cli_eval_runs(paired_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["eval", "--data", str(paired_dir), "--models", "", "-o", str(out), "--no-fps"]) == 0
    assert "report.md" in capsys.readouterr().err
    assert json.loads((out / "report.json").read_text())["rows"] == ["input", "unsharp"]


def test_a_stopped_eval_leaves_the_finished_presets(tmp_path, monkeypatch):
    """Stopped during its second preset, the eval has already written a partial report of the first."""
    import kdsharp.evaluate.report as report_mod

    src = tmp_path / "clean"
    write_image(src / "c0.png", make_test_image(64, 96, seed=10))
    real = report_mod.tune_unsharp
    calls = []

    def tune(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(report_mod, "tune_unsharp", tune)
    with pytest.raises(KeyboardInterrupt):
        evaluate(presets=["defocus", "lowbw"], source=src, models={}, out_dir=tmp_path / "r", measure_fps=False)
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert list(rep["presets"]) == ["defocus"] and rep["partial"] == "1 of 2 sets evaluated"
    assert "Partial report" in (tmp_path / "r" / "report.md").read_text()
    assert not list((tmp_path / "r").glob("*.part*"))  # atomic: no half-written files


class WideNet(TinyNet):
    """TinyNet with a wider body: more multiply-adds, the 'heavy' model of the subset test."""

    def __init__(self, seed: int = 1):
        super().__init__(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 3, 3, padding=1))


def test_heavy_models_run_on_an_even_subset_compared_on_the_same_images(tmp_path, monkeypatch):
    import kdsharp.evaluate.report as report_mod
    from kdsharp.evaluate.report import spread_subset

    assert spread_subset(list("abcdefghij"), 4) == ["a", "d", "g", "j"]
    assert spread_subset(list("abc"), 10) == list("abc") and spread_subset(list("abc"), 0) == list("abc")
    src = tmp_path / "clean"
    for i in range(5):
        write_image(src / f"c{i}.png", make_test_image(48, 64, seed=20 + i))
    monkeypatch.setattr(report_mod, "HEAVY_GMACS", 5.0)  # WideNet (~7 GMACs@1080p) is heavy, TinyNet (~0.9) not
    calls = {"wide": 0}
    wide = WideNet()

    def count(module, args, out):
        calls["wide"] += args[0].device.type != "meta"  # not the multiply-add count on the meta device

    wide.register_forward_hook(count)
    rep = evaluate(
        presets=["defocus"],
        source=src,
        models={"light": TinyNet(), "wide": wide},
        out_dir=tmp_path / "r",
        measure_fps=False,
        heavy_images=2,
    )
    rows = rep["presets"]["defocus"]["rows"]
    assert rep["data"]["heavy"]["rows"] == ["wide"] and calls["wide"] == 2 + 2  # the preset, the clean frames
    assert rows["wide"]["n_images"] == 2 and rows["light"]["n_images"] == rows["input"]["n_images"] == 5
    images = rep["presets"]["defocus"]["images"]
    ran = [n for n, v in images.items() if "wide" in v]
    assert ran == ["c0", "c4"]
    gain = np.mean([images[n]["wide"]["psnr"] - images[n]["input"]["psnr"] for n in ran])
    assert rows["wide"]["delta_psnr"] == pytest.approx(gain)  # against the input on the same images
    md = (tmp_path / "r" / "report.md").read_text()
    assert "(2 of 5 images)" in md and "evenly spaced" in md
    full = evaluate(
        presets=["defocus"],
        source=src,
        models={"wide": wide},
        out_dir=tmp_path / "f",
        measure_fps=False,
        heavy_images=0,
    )
    assert full["presets"]["defocus"]["rows"]["wide"]["n_images"] == 5 and "heavy" in full["data"]
    assert "evenly spaced" not in (tmp_path / "f" / "report.md").read_text()  # no subset to explain


def test_clean_frames_report_the_level_shift(tmp_path):
    class Brighten(nn.Module):
        def forward(self, x):
            return x + 2.0 / 255.0

    src = tmp_path / "clean"
    for i in range(2):
        write_image(src / f"c{i}.png", make_test_image(48, 64, seed=30 + i)[:, :, ::-1] // 2 + 40)
    rep = evaluate(
        presets=["defocus"],
        source=src,
        models={"bright": Brighten(), "same": nn.Identity()},
        out_dir=tmp_path / "r",
        measure_fps=False,
    )
    assert rep["clean"]["bright"]["level_shift"] == pytest.approx(2.0, abs=0.01)
    assert rep["clean"]["same"]["level_shift"] == 0.0 and rep["clean"]["same"]["n_images"] == 2
    assert "## Clean frames" in (tmp_path / "r" / "report.md").read_text()


def test_pairs_too_small_for_ssim_are_skipped_with_a_warning(paired_dir, tmp_path, capsys):
    tiny = make_test_image(8, 20, seed=5)
    write_image(paired_dir / "target" / "tiny.png", tiny)
    write_image(paired_dir / "input" / "tiny.png", tiny)
    out = tmp_path / "rep"
    assert main(["eval", "--data", str(paired_dir), "--models", "", "-o", str(out), "--no-fps"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "tiny.png" in warnings[0] and "20x8" in warnings[0]
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["n_images"] == 2 and "tiny" not in next(iter(report["presets"].values()))["images"]
    only_tiny = tmp_path / "only_tiny"
    write_image(only_tiny / "target" / "tiny.png", tiny)
    write_image(only_tiny / "input" / "tiny.png", tiny)
    assert main(["eval", "--data", str(only_tiny), "--models", "", "-o", str(tmp_path / "o2"), "--no-fps"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no usable image pair" in errors[0]


def test_report_says_which_images_the_presets_were_built_from(tmp_path):
    src = tmp_path / "clean"
    write_image(src / "c0.png", make_test_image(64, 96, seed=3))
    rep = evaluate(presets=["defocus"], source=src, models={}, out_dir=tmp_path / "r", measure_fps=False)
    line = next(ln for ln in (tmp_path / "r" / "report.md").read_text().splitlines() if ln.startswith("Data:"))
    assert f"in folder `{src}`" in line and "held-out" not in line  # the user's images, not the held-out split
    from kdsharp.evaluate.tables import render_markdown

    for split, held_out in (("val", False), ("test", True)):
        rep["data"]["source"] = f"corpus {split} split (/somewhere/corpus)"
        line = render_markdown(rep).splitlines()[2]
        assert f"of the corpus {split} split (/somewhere/corpus)" in line and ("held-out" in line) == held_out


def test_checkpoints_with_one_file_name_get_a_row_each(tmp_path, capsys):
    from kdsharp.evaluate.report import resolve_models
    from kdsharp.registry import create_model, save_model

    paths = []
    for i, run in enumerate(("run_a", "run_b")):
        net = create_model("fast")
        with torch.no_grad():
            for p in net.parameters():
                p.fill_(0.01 * (i + 1))
        paths.append(save_model(net, tmp_path / run / "fast.safetensors"))
    rows, _ = resolve_models(["fast", str(paths[0]), str(paths[1]), str(paths[1])])
    assert [r for r, _, _ in rows] == ["fast", str(paths[0]), str(paths[1])]  # none dropped, none twice
    assert f"model '{paths[1]}' is listed more than once: it gets one row" in capsys.readouterr().err
    rows, _ = resolve_models([str(paths[0]), str(paths[1])])
    assert [r for r, _, _ in rows] == ["fast", str(paths[1])]
    x = torch.rand(1, 3, 32, 32)
    assert not torch.equal(rows[0][1](x), rows[1][1](x))


def test_report_folder_inside_the_input_is_refused(tmp_path, paired_dir, capsys):
    src = tmp_path / "clean"
    write_image(src / "c0.png", make_test_image(64, 96, seed=3))
    line = _one_line_error(
        capsys,
        ["eval", "--preset", "defocus", "--source", str(src), "--models", "", "--no-fps", "-o", str(src / "report")],
    )
    assert "inside the input folder" in line and "--out" in line
    line = _one_line_error(
        capsys, ["eval", "--data", str(paired_dir), "--models", "", "--no-fps", "-o", str(paired_dir)]
    )
    assert "inside the input folder" in line
    assert sorted(p.name for p in src.iterdir()) == ["c0.png"]
    assert sorted(p.name for p in paired_dir.iterdir()) == ["input", "target"]


def test_eval_votes_with_a_damaged_eval_report_names_it(tmp_path, capsys):
    from kdsharp.app.store import VoteRecord, VoteStore

    VoteStore(tmp_path / "votes.db").add(VoteRecord(a="fast", b="input", choice="A"))
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.json").write_text("{not json")
    line = _one_line_error(capsys, ["eval", "--votes", str(tmp_path / "votes.db"), "-o", str(out)])
    assert "report.json: is not a readable `kdsharp eval` report" in line and "--out" in line
    assert not (out / "votes.md").exists()


def test_corpus_options_given_with_own_images_are_named_as_ignored(tmp_path, paired_dir, capsys):
    assert (
        main(
            ["eval", "--data", str(paired_dir), "--split", "val", "--models", "", "--no-fps", "-o", str(tmp_path / "r")]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "--split choose corpus photos: ignored with --data" in err
    assert main(["eval", "--data", str(paired_dir), "--models", "", "--no-fps", "-o", str(tmp_path / "r2")]) == 0
    assert "ignored" not in capsys.readouterr().err


def test_a_missing_data_folder_names_the_option_and_leaves_no_report_folder(tmp_path, capsys):
    out = tmp_path / "report"
    line = _one_line_error(capsys, ["eval", "--data", str(tmp_path / "nowhere"), "-o", str(out), "--no-fps"])
    assert "nowhere: no such folder" in line and "--data DIR" in line and "input/ and target/" in line
    line = _one_line_error(capsys, ["eval", "--data", str(tmp_path), "-o", str(out), "--no-fps"])  # no pairs
    assert str(tmp_path) in line
    assert not out.exists()  # a run that could not start makes no folder


def test_cuda_without_a_gpu_names_the_requested_device_and_the_fix(tmp_path, paired_dir, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = _one_line_error(
        capsys,
        ["eval", "--data", str(paired_dir), "--device", "cuda", "--models", "", "--no-fps", "-o", str(tmp_path / "r")],
    )
    assert "--device cuda: no CUDA GPU" in line and "--device cpu" in line and "device 'cpu'" not in line


def test_a_preset_named_twice_is_one_set(tmp_path):
    src = tmp_path / "clean"
    write_image(src / "c0.png", make_test_image(64, 96, seed=3))
    report = evaluate(presets=["defocus", "defocus"], source=src, models=[], out_dir=tmp_path / "r", measure_fps=False)
    assert report["data"]["presets"] == ["defocus"] and list(report["presets"]) == ["defocus"]
    assert "`defocus`, `defocus`" not in (tmp_path / "r" / "report.md").read_text()


def test_eval_options_given_with_votes_are_named_as_ignored(tmp_path, capsys):
    from kdsharp.app.store import VoteRecord, VoteStore

    VoteStore(tmp_path / "votes.db").add(VoteRecord(a="fast", b="input", choice="A"))
    assert (
        main(["eval", "--votes", str(tmp_path / "votes.db"), "--models", "fast", "--no-fps", "-o", str(tmp_path / "r")])
        == 0
    )
    err = capsys.readouterr().err
    assert "--models, --no-fps choose what is measured: ignored with --votes" in err
    assert main(["eval", "--votes", str(tmp_path / "votes.db"), "-o", str(tmp_path / "r")]) == 0
    assert "ignored" not in capsys.readouterr().err


def test_each_row_counts_its_cost_as_the_model_runs():
    """GMACs of an eval row are those of the module that ran: the teacher's overlapping local windows
    and a self-ensemble's passes included; params are the registered model's, with or without @xN."""
    from kdsharp.evaluate.report import resolve_models
    from kdsharp.registry import model_info

    rows, skipped = resolve_models(["teacher", "fast", "fast@x2"])
    assert not skipped
    meta = {row: m for row, _, m in rows}
    whole_frame = model_info("teacher")["gmacs_1080p"]
    assert meta["teacher"]["gmacs_1080p"] > 1.5 * whole_frame  # windows overlap at 1080p
    assert meta["fast@x2"]["gmacs_1080p"] == pytest.approx(2 * meta["fast"]["gmacs_1080p"])
    assert meta["fast@x2"]["params"] == meta["fast"]["params"] == model_info("fast")["params"]


def test_eval_help_shows_where_the_corpus_is_by_default(capsys):
    """The --corpus default was written in [brackets], which the help's rich markup swallowed."""
    assert main(["eval", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.replace("│", " ").split())  # the help's box, unwrapped
    assert "$KDSHARP_CORPUS or ~/.cache/kdsharp/corpus" in out and "kdsharp data corpus -o DIR" in out


def test_a_negative_seed_is_a_one_line_error_before_any_work(tmp_path, capsys):
    src = tmp_path / "clean"
    write_image(src / "c0.png", make_test_image(64, 96, seed=3))
    line = _one_line_error(
        capsys,
        [
            "eval",
            "--preset",
            "defocus",
            "--source",
            str(src),
            "--seed",
            "-1",
            "--models",
            "",
            "--no-fps",
            "-o",
            str(tmp_path / "r"),
        ],
    )
    assert "--seed -1: must be an integer >= 0" in line
    assert not (tmp_path / "r").exists()


def test_a_folder_where_the_report_writes_a_file_is_refused_before_any_work(tmp_path, paired_dir, capsys):
    out = tmp_path / "r"
    (out / "comparison.png").mkdir(parents=True)
    line = _one_line_error(capsys, ["eval", "--data", str(paired_dir), "--models", "", "--no-fps", "-o", str(out)])
    assert f"{out / 'comparison.png'}: is a folder" in line and "--out DIR" in line
    assert sorted(p.name for p in out.iterdir()) == ["comparison.png"]  # nothing written beside it


def test_max_images_counts_the_usable_images_only(tmp_path, capsys):
    src = tmp_path / "clean"
    src.mkdir()
    (src / "a_broken.png").write_bytes(b"not a png")
    for i in range(3):
        write_image(src / f"c{i}.png", make_test_image(64, 96, seed=i))
    clean = load_clean_images(src, max_images=2)
    assert [n for n, _ in clean] == ["c0", "c1"]
    assert "a_broken.png" in capsys.readouterr().err


def test_eval_votes_that_are_a_folder_or_an_empty_file_are_named_so(tmp_path, capsys):
    line = _one_line_error(capsys, ["eval", "--votes", str(tmp_path), "-o", str(tmp_path / "r")])
    assert "is a folder, not a vote database" in line and "--votes FILE" in line
    empty = tmp_path / "votes.db"
    empty.touch()
    line = _one_line_error(capsys, ["eval", "--votes", str(empty), "-o", str(tmp_path / "r")])
    assert f"{empty}: file is empty" in line and "--votes FILE" in line
    assert not (tmp_path / "r").exists() and empty.stat().st_size == 0


def test_unpaired_files_of_a_data_folder_are_named(paired_dir, tmp_path, capsys):
    (paired_dir / "input" / "img1.png").rename(paired_dir / "input" / "other.png")
    assert main(["eval", "--data", str(paired_dir), "--models", "", "--no-fps", "-o", str(tmp_path / "r")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "2 file(s) without a partner of the same name were ignored (input/other.png, target/img1.png)" in err
