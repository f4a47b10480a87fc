"""The trained weights that ship in the package: each loads by name and sharpens held-out photos.

These check behaviour (the output is closer to the clean image than the degraded input is), not
the benchmark figures, which `kdsharp eval` reports.
"""

import numpy as np
import pytest
import torch

from kdsharp import load_model
from kdsharp.data import sample_paths
from kdsharp.data.degrade import Degrader
from kdsharp.io.images import from_tensor, read_rgb, to_tensor
from kdsharp.metrics import psnr
from kdsharp.registry import WEIGHTS_DIR, model_info

SHIPPED = ("teacher", "student", "student_nokd", "fast")


@pytest.fixture(scope="module")
def degraded_pairs():
    """(degraded, clean) uint8 RGB pairs: the two held-out sample photos (never trained on), whole,
    under the `mixed` and `defocus` presets with two seeds each."""
    pairs = []
    for path in sample_paths():
        if path.stem not in ("coffee", "rocket"):
            continue
        clean = read_rgb(path)
        for preset in ("mixed", "defocus"):
            for seed in (500, 501):
                pairs.append((Degrader(preset)(clean, seed), clean))
    assert len(pairs) == 8
    return pairs


@pytest.mark.parametrize("name", SHIPPED)
def test_weights_ship_small_and_in_fp16(name):
    info = model_info(name)
    assert info["weights_shipped"]
    path = WEIGHTS_DIR / f"{name}.safetensors"
    assert path.stat().st_size < 2 * info["params"] * 1.05 + 65536  # fp16: two bytes a parameter
    assert (WEIGHTS_DIR / f"{name}.md").is_file()  # a model card beside the weights


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_sharpens_held_out_photos(name, degraded_pairs):
    model = load_model(name)
    gains = []
    with torch.inference_mode():
        for lq, gt in degraded_pairs:
            out = from_tensor(model(to_tensor(lq)).clamp(0, 1))
            assert out.shape == gt.shape
            gains.append(psnr(out, gt) - psnr(lq, gt))
    assert np.mean(gains) > 0.05, gains
