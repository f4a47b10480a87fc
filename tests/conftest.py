"""Shared fixtures. Every fixture image is made by the test or read from the package samples."""

from __future__ import annotations

import os
import signal

import cv2
import numpy as np
import pytest
import torch

os.environ.setdefault("KDSHARP_QUIET", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))
# The Ctrl-C tests signal this process and its children as a terminal would. A test run started in
# the background (``pytest &``, nohup) inherits an ignored SIGINT, which kdsharp rightly keeps
# ignored: give the run the Ctrl-C of a foreground one (children then start with the default).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def make_test_image(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A uint8 HxWx3 image with edges, gradients and texture (BGR/RGB agnostic)."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w * 255, yy / h * 255, ((xx // 8 + yy // 8) % 2) * 200 + 20], axis=2)
    img[h // 4 : h // 2, w // 4 : w // 2] = r.uniform(0, 255, 3)
    img += r.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def test_image() -> np.ndarray:
    return make_test_image()


@pytest.fixture
def paired_dir(tmp_path):
    """A paired folder (``input/``, ``target/``) of two 80x64 test images blurred (sigma 1.5) and their targets."""
    from kdsharp.io.images import write_image

    root = tmp_path / "pairs"
    for i in range(2):
        gt = make_test_image(64, 80, seed=i)
        write_image(root / "target" / f"img{i}.png", gt[:, :, ::-1])
        write_image(root / "input" / f"img{i}.png", cv2.GaussianBlur(gt, (0, 0), 1.5)[:, :, ::-1])
    return root
