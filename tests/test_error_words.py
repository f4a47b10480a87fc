"""Library errors speak of parameters (``tile=16``); the CLI turns them into its flags (``--tile 16``).
Per-file failures go to a handler (the CLI adds tracebacks under --debug); targets are checked once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import cv2
import pytest
from conftest import make_test_image
from test_infer_helpers import tiny_model

import kdsharp.infer.backends as backends
import kdsharp.io.atomic as atomic
from kdsharp.cli import main
from kdsharp.cli.errors import flag_words
from kdsharp.errors import KdsharpError
from kdsharp.infer.sharpener import Sharpener, sharpen_paths

PACKAGE = Path(__file__).resolve().parents[1] / "kdsharp"


@pytest.fixture(autouse=True)
def tiny(monkeypatch):
    monkeypatch.setattr(backends, "resolve_model", lambda m, device="cpu": tiny_model())


def png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), make_test_image(16, 16))
    return path


def test_library_message_names_parameters_not_flags():
    with pytest.raises(KdsharpError) as e:
        Sharpener("x", tile=16, tile_overlap=32)
    assert "tile=16 must be larger than tile_overlap=32" in str(e.value) and "--" not in str(e.value)
    assert e.value.params == ("tile", "tile_overlap")


def test_cli_message_names_its_flags(tmp_path, capsys):
    src = png(tmp_path / "a.png")
    code = main(["sharpen", str(src), "-o", str(tmp_path / "o.png"), "--tile", "16", "--tile-overlap", "32"])
    err = capsys.readouterr().err
    assert code == 2 and "--tile 16 must be larger than --tile-overlap 32" in err and "tile=" not in err


def test_flag_words():
    options = {
        "overwrite": ("--overwrite", True),
        "tile": ("--tile", False),
        "encoder_preset": ("--encoder-preset", False),
    }
    assert flag_words("pass overwrite=True to replace it", ["overwrite"], options) == "pass --overwrite to replace it"
    assert flag_words("tile=64 (tile=64)", ["tile"], options) == "--tile 64 (--tile 64)"
    assert flag_words("preset='warp' is not", ["preset"], options) == "--encoder-preset warp is not"
    assert flag_words("the config key name=X, tile=3", [], options) == "the config key name=X, tile=3"  # not listed
    assert flag_words("subtile=3", ["tile"], options) == "subtile=3"  # whole names only


def _flag_literals(node: ast.AST) -> list[str]:
    """String constants under ``node`` that name a command-line flag outside a `command` in backticks."""
    found = []
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            text = re.sub(r"`[^`]*`", "", n.value)
            if re.search(r"(^|[\s(])--[a-z][a-z-]+", text):
                found.append(n.value)
    return found


def test_library_errors_never_name_cli_flags():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "cli" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            calls = [node.exc] if isinstance(node, ast.Raise) and node.exc is not None else []
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("warn",):
                calls.append(node)
            for call in calls:
                offenders += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {s!r}" for s in _flag_literals(call)]
    assert not offenders, "\n".join(offenders)


def test_failed_files_go_to_the_handler_and_the_batch_goes_on(tmp_path, capsys):
    good = png(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.png").write_bytes(b"not a png")
    seen = []
    result = sharpen_paths(
        [tmp_path / "in"],
        tmp_path / "out",
        model="x",
        on_error=lambda src, exc, msg: seen.append((src.name, type(exc).__name__, msg)),
    )
    assert [s[0] for s in seen] == ["bad.png"] and "bad.png" in seen[0][2]
    assert [d.name for _, d in result.done] == [good.name] and (tmp_path / "out" / "good.png").exists()
    assert "Traceback" not in capsys.readouterr().err


def test_cli_debug_adds_the_traceback_of_a_failed_file(tmp_path, capsys, monkeypatch):
    import kdsharp.cli

    png(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.png").write_bytes(b"not a png")
    code = main(["--debug", "sharpen", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    monkeypatch.setattr(kdsharp.cli.state, "DEBUG", False)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" in err and "bad.png" in err and (tmp_path / "out" / "good.png").exists()


def test_each_target_is_checked_once(tmp_path, monkeypatch):
    for name in ("a.png", "b.png", "c.png"):
        png(tmp_path / "in" / name)
    checks: list[Path] = []
    folders: list[Path] = []
    real_check, real_ensure = atomic.check_target, atomic.ensure_writable_dir

    def counting_check(dst, *a, **k):
        checks.append(Path(dst))
        return real_check(dst, *a, **k)

    def counting_ensure(folder, **k):
        folders.append(Path(folder))
        return real_ensure(folder, **k)

    import kdsharp.infer.batch as batch
    import kdsharp.infer.sharpener as sharpener

    monkeypatch.setattr(batch, "check_target", counting_check)
    monkeypatch.setattr(sharpener, "check_target", counting_check)
    monkeypatch.setattr(atomic, "ensure_writable_dir", counting_ensure)
    result = sharpen_paths([tmp_path / "in"], tmp_path / "out", model="x")
    assert len(result.done) == 3
    assert sorted(p.name for p in checks) == ["a.png", "b.png", "c.png"]  # once per output
    assert folders == [tmp_path / "out"]  # the output folder: created and checked once
