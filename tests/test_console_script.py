"""The installed ``kdsharp`` console script, run as a user runs it: help, usage errors, a command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _script() -> str | None:
    """The ``kdsharp`` script of this Python's environment (the venv's bin), else the one on PATH."""
    bindir = Path(sys.executable).parent
    for name in ("kdsharp", "kdsharp.exe"):
        if (bindir / name).is_file():
            return str(bindir / name)
    return shutil.which("kdsharp")


SCRIPT = _script()
pytestmark = pytest.mark.skipif(
    SCRIPT is None,
    reason="the kdsharp console script is not installed (pip install . puts it next to the Python that runs the tests)",
)


def kdsharp(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "KDSHARP_QUIET": "1", "COLUMNS": "120"}
    return subprocess.run(
        [SCRIPT, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env, timeout=timeout
    )


def test_help_exits_0():
    r = kdsharp("--help")
    assert r.returncode == 0, r.stderr
    assert "sharpen" in r.stdout and "models" in r.stdout and "Traceback" not in r.stdout + r.stderr


@pytest.mark.parametrize(
    "args, says",
    [
        (["sharpen", "x.png"], "Missing option"),
        (["sharpen", "x.png", "-o", "y.png", "--bogus"], "No such option: --bogus"),
    ],
)
def test_usage_error_shows_click_usage_and_exits_2(args, says):
    r = kdsharp(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Usage: kdsharp sharpen" in r.stderr and says in r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_models_lists_the_shipped_models():
    r = kdsharp("models")
    text = r.stdout + r.stderr  # the table goes to the console (stderr)
    assert r.returncode == 0, text
    assert "student" in text and "fast" in text and "Traceback" not in text


def test_help_paragraphs_reflow_in_a_narrow_terminal():
    """typer 0.29 kept the docstring's line breaks: at 80 columns `sharpen --help` broke lines mid-sentence
    ("10-bit video is written" / "8-bit, with a warning")."""
    from kdsharp.cli import reflow_help

    assert reflow_help("First.\n\nOne para\ngoes on.\n\n\b\nkept\nas is\n\n- a\n- b") == (
        "First.\n\nOne para goes on.\n\n\b\nkept\nas is\n\n- a\n- b"
    )
    r = subprocess.run(
        [SCRIPT, "sharpen", "--help"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "KDSHARP_QUIET": "1", "COLUMNS": "80"},
        timeout=120,
    )
    head = r.stdout.split("╭")[0].splitlines()  # usage and description, before the option boxes
    paragraphs = [p.strip().splitlines() for p in "\n".join(ln.strip() for ln in head).split("\n\n")]
    assert r.returncode == 0 and len(paragraphs) >= 3
    short = [ln for par in paragraphs for ln in par[:-1] if len(ln) < 50]  # a line broken mid-paragraph
    assert not short, short
