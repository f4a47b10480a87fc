"""kdsharp demo: a bad request leaves nothing behind."""

from __future__ import annotations

import pytest

from kdsharp.errors import KdsharpError
from kdsharp.infer.demo import run_demo


def test_a_bad_model_or_device_creates_no_demo_folder(tmp_path):
    with pytest.raises(KdsharpError, match="no_such_model"):
        run_demo(tmp_path / "demo", model="no_such_model")
    with pytest.raises(KdsharpError, match="cuda:99"):
        run_demo(tmp_path / "demo", device="cuda:99")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_output_is_refused_not_the_current_folder(tmp_path, capsys, monkeypatch):
    """`kdsharp demo -o ""` wrote the demo into the current folder."""
    from kdsharp.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["demo", "-o", ""])
    err = capsys.readouterr().err
    assert code == 2 and "error: the output folder is empty (pass a folder as --output PATH)" in err, err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_an_interrupted_demo_leaves_no_half_demo(tmp_path, monkeypatch):
    """Ctrl-C part way left degraded.mp4 and sharpened.mp4 alone, and the next run went to run-2."""
    from test_infer_helpers import tiny_model

    import kdsharp.infer.demo as demo

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "write_image", interrupted)  # after the three videos are written
    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path / "new" / "demo", model=tiny_model(), device="cpu", seconds=0.25, fps=8, size=(64, 48))
    assert list(tmp_path.iterdir()) == []  # its files and the folders it made are gone
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("kept")
    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path / "mine", model=tiny_model(), device="cpu", seconds=0.25, fps=8, size=(64, 48))
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    monkeypatch.undo()
    r = run_demo(tmp_path / "mine", model=tiny_model(), device="cpu", seconds=0.25, fps=8, size=(64, 48))
    assert r.folder == tmp_path / "mine" and all((r.folder / n).is_file() for n in demo.DEMO_FILES)
