"""The README runs as written: its Python block is executed, every `kdsharp ...` line parses
(commands, options, values, config names), and the cheap commands run on files made here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import make_test_image

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(lang: str) -> list[str]:
    """The README's fenced code blocks in ``lang``."""
    return re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


def usage_lines() -> list[list[str]]:
    """Every ``kdsharp ...`` command of the README's bash blocks, as argv lists without ``kdsharp``.

    ``a && kdsharp b`` and ``torchrun ... -m kdsharp b`` count; ``[--x|--y]`` expands to each choice.
    """
    found = []
    for block in blocks("bash"):
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if "kdsharp" not in words:
                    continue
                args = words[words.index("kdsharp") + 1 :]
                opts = [w for w in args if re.fullmatch(r"\[(--[\w-]+\|?)+\]", w)]
                base = [w for w in args if w not in opts]
                found.append(base)
                found += [[*base, choice] for opt in opts for choice in opt.strip("[]").split("|")]
    return found


def make_inputs(folder: Path) -> None:
    """The files the README's examples read, made small."""
    from kdsharp.io.video import sine_tone, write_video
    from kdsharp.models import Restormer

    cv2.imwrite(str(folder / "frame.png"), make_test_image(48, 64))
    cv2.imwrite(str(folder / "photo.png"), make_test_image(40, 56, seed=1))
    cv2.imwrite(str(folder / "big.tif"), make_test_image(72, 96, seed=2).astype(np.uint16) * 257)
    for sub in ("shots", "clean_photos"):
        (folder / sub).mkdir()
        for i in range(2):
            cv2.imwrite(str(folder / sub / f"p{i}.png"), make_test_image(64, 64, seed=3 + i))
    frames = [np.roll(make_test_image(48, 64, seed=5), i, axis=1) for i in range(4)]
    write_video(folder / "call.mp4", frames, fps=10, audio_tone=sine_tone(0.4))
    torch.save({"params": Restormer(dim=16).state_dict()}, folder / "motion_deblurring.pth")  # official format


def test_readme_has_the_blocks_this_test_checks():
    assert len(blocks("python")) == 1 and len(usage_lines()) >= 15


def test_python_api_block_runs_as_written(tmp_path, monkeypatch):
    make_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    (code,) = blocks("python")
    ns: dict = {}
    exec(compile(code, str(README), "exec"), ns)
    assert not any(p.requires_grad for p in ns["model"].parameters()) and not ns["model"].training
    assert ns["y"].shape == (1, 3, 64, 64) and not ns["y"].requires_grad  # no autograd graph
    assert ns["sharp"].shape == ns["frame"].shape and ns["sharp"].dtype == np.uint8
    assert ns["stats"].frames == 4 and (tmp_path / "call_sharp.mp4").is_file()
    assert type(ns["teacher"]).__name__ == "Restormer" and ns["teacher"].arch_kwargs["dim"] == 16


def _command(argv: list[str]):
    """(click command, remaining args, name) for ``argv`` walked down the ``kdsharp`` command tree."""
    import typer.main

    from kdsharp.cli import app

    cmd, name = typer.main.get_command(app), "kdsharp"
    argv = list(argv)
    while hasattr(cmd, "commands") and argv and argv[0] in cmd.commands:
        name = f"{name} {argv[0]}"
        cmd = cmd.commands[argv.pop(0)]
    assert not hasattr(cmd, "commands"), f"README: `{name}` is a group; no such subcommand in {argv}"
    return cmd, argv, name


@pytest.mark.parametrize("argv", usage_lines(), ids=lambda a: " ".join(a)[:60])
def test_usage_line_parses(argv):
    from kdsharp.configs import resolve_config_path

    cmd, rest, name = _command(argv)
    ctx = cmd.make_context(name, rest)  # unknown options, bad values, missing required ones raise
    assert ctx.params is not None
    if "--config" in argv:
        assert resolve_config_path(argv[argv.index("--config") + 1]).is_file()


RUN = ("sharpen", "degrade", "models", "export")  # cheap enough to run here; the rest are parsed only


def test_cheap_usage_commands_run(tmp_path, monkeypatch, capsys):
    from kdsharp.cli import main

    make_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    ran = []
    for argv in usage_lines():
        if argv[0] in RUN and "--int8" not in argv and "--fp16" not in argv:
            code = main(argv)
            err = capsys.readouterr().err
            assert code == 0, f"kdsharp {' '.join(argv)}: exit {code}\n{err}"
            ran.append(argv[0])
    assert ran.count("sharpen") >= 5 and {"degrade", "models", "export"} <= set(ran)
    for out in (
        "call_sharp.mp4",
        "photo_sharp.png",
        "shots_sharp/p0.png",
        "sharp/photo.png",
        "sharp/call.mp4",
        "out.tif",
        "out.mp4",
        "testset",
        "fast.onnx",
    ):
        assert (tmp_path / out).exists(), out
    assert cv2.imread(str(tmp_path / "out.tif"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_readme_results_are_generated_from_the_reports():
    """The results block is what scripts/readme_results.py renders from docs/eval, docs/train and
    docs/bench: no figure there is typed by hand."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [sys.executable, "scripts/readme_results.py", "--check"], cwd=root, capture_output=True, text=True
    )
    assert r.returncode == 0, f"README results are stale: run python scripts/readme_results.py ({r.stderr})"


def test_model_cards_are_generated_from_the_run_records():
    """kdsharp/weights/*.md are what scripts/make_model_cards.py renders from the committed run records
    (docs/train/runs), the weights' metadata and the eval report: no card is edited by hand."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [sys.executable, "scripts/make_model_cards.py", "--check"], cwd=root, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr or r.stdout


def test_fine_tune_example_keeps_its_own_bank_and_run_folder():
    """The README's fine-tune on your own footage (configs/student_cpu.yaml) labelled the footage into
    the config's named teacher bank and ran as student_cpu: a second fine-tune, or the shipped
    student's own recipe, was then refused ('holds a teacher bank made with other settings', 'already
    holds a run'). The example's bank is keyed by its settings, and its run has a name of its own."""
    from kdsharp.train.config import load_config

    text = " ".join(README.read_text(encoding="utf-8").split())
    (command,) = re.findall(r"`(kdsharp train student --config configs/student_cpu\.yaml [^`]*)`", text)
    argv = shlex.split(command)
    cmd, rest, name = _command(argv[1:])
    assert cmd.make_context(name, rest).params is not None  # the command line itself parses
    overrides = [w for w in argv[argv.index("--teacher") + 2 :] if "=" in w]
    config = README.parent / "configs" / "student_cpu.yaml"
    recipe = load_config(config, teacher="teacher")
    example = load_config(config, overrides, teacher="teacher")
    assert example["teacher_cache"]["enabled"] and recipe["teacher_cache"]["path"]
    assert example["teacher_cache"]["path"] is None  # runs/cache/teacher_<key>.safetensors
    assert example["name"] != recipe["name"] and example["model"]["init"] == "student"
    assert example["data"]["sources"][0]["path"] == "talk.mp4"
