"""Test-time self-ensemble: the symmetries and their inverses, the SelfEnsemble wrapper, the
``NAME@xN`` model spec everywhere a model name goes, and the backends that cannot run it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_test_image
from torch import nn

from kdsharp.cli import main
from kdsharp.errors import KdsharpError
from kdsharp.infer.export import export_onnx
from kdsharp.infer.sharpener import Sharpener
from kdsharp.io.images import read_rgb, write_image
from kdsharp.models import SelfEnsemble, unwrap
from kdsharp.ops.geometry import INVERSE_CODE, dihedral, dihedral_inverse
from kdsharp.registry import create_model, load_model, model_info, save_model, split_ensemble


@pytest.mark.parametrize("code", range(8))
def test_dihedral_inverse_undoes_each_symmetry_for_arrays_and_tensors(code):
    a = np.arange(2 * 3 * 5).reshape(2, 3, 5)
    assert np.array_equal(dihedral_inverse(dihedral(a, code, axes=(0, 1)), code, axes=(0, 1)), a)
    t = torch.arange(3 * 4 * 7.0).reshape(1, 3, 4, 7)
    assert torch.equal(dihedral_inverse(dihedral(t, code), code), t)
    assert sorted(INVERSE_CODE) == list(range(8))  # a permutation: every symmetry has one inverse


class Skewed(nn.Module):
    """A conv with a lopsided kernel: its output depends on the input's orientation."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            for c in range(3):
                self.conv.weight[c, c, 0, 0], self.conv.weight[c, c, 1, 1], self.conv.weight[c, c, 2, 1] = 0.5, 1, -0.3

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_self_ensemble_is_the_mean_over_its_symmetries(n):
    x = torch.rand(2, 3, 12, 10)
    inner = Skewed().eval()
    want = sum(dihedral_inverse(inner(dihedral(x, c)), c) for c in range(n)) / n
    got = SelfEnsemble(inner, n)(x)
    assert got.shape == x.shape and torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, inner(x), atol=1e-3)  # the orientation mattered, and was averaged
    # an orientation-blind model is unchanged by it
    assert torch.allclose(SelfEnsemble(nn.Identity(), n)(x), x)


def test_self_ensemble_trains_and_unwraps_as_its_model():
    inner = Skewed()
    ens = SelfEnsemble(inner, 8).train()
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(ens(x), inner(x))  # one pass in training mode
    assert unwrap(ens) is inner and ens.state_dict().keys() == {f"model.{k}" for k in inner.state_dict()}
    for bad in (0, 3, 16):
        with pytest.raises(ValueError):
            SelfEnsemble(inner, bad)


def test_model_spec_suffix_builds_the_ensemble_and_names_the_fix(tmp_path):
    assert split_ensemble("student@x8") == ("student", 8) and split_ensemble("student") == ("student", 1)
    assert split_ensemble("runs/a@b/w.safetensors") == ("runs/a@b/w.safetensors", 1)
    m = load_model("fast@x4")
    assert isinstance(m, SelfEnsemble) and m.n == 4 and not m.training
    assert not any(p.requires_grad for p in m.parameters())
    x = torch.rand(1, 3, 32, 48)
    assert m(x).shape == x.shape
    with pytest.raises(KdsharpError, match="@x2, @x4, @x8"):
        load_model("fast@x3")
    with pytest.raises(KdsharpError, match=r"'fast@x1': @x1 is the model alone: drop the suffix \('fast'\)"):
        load_model("fast@x1")  # was the model alone, silently, while the docs list @x2, @x4, @x8
    for takes_a_name in (create_model, model_info):  # was "unknown model 'fast@x2' (did you mean 'fast'?)"
        with pytest.raises(KdsharpError, match=r"'fast@x2' is a self-ensemble: .* \('fast'\); load_model"):
            takes_a_name("fast@x2")
    # a file whose name ends in '@x8' is that file, not an ensemble of it; a checkpoint path takes the suffix
    odd = tmp_path / "w@x8"
    odd.write_bytes(b"")
    assert split_ensemble(odd) == (str(odd), 1)
    path = save_model(load_model("fast", deploy=False), tmp_path / "w.safetensors")
    assert isinstance(load_model(f"{path}@x2"), SelfEnsemble)


def test_onnx_refuses_an_ensemble_rather_than_dropping_it(tmp_path):
    with pytest.raises(KdsharpError, match="torch backend only"):
        export_onnx("fast@x8", tmp_path / "f.onnx")
    with pytest.raises(KdsharpError, match="torch backend only"):
        Sharpener("fast@x2", backend="onnx", device="cpu")
    assert not list(tmp_path.iterdir())


def test_sharpen_cli_with_an_ensemble(tmp_path, capsys):
    src = tmp_path / "in.png"
    write_image(src, make_test_image(40, 56, seed=3))
    assert main(["sharpen", str(src), "-o", str(tmp_path / "one.png"), "--model", "fast"]) == 0
    assert main(["sharpen", str(src), "-o", str(tmp_path / "x8.png"), "--model", "fast@x8"]) == 0
    one, x8 = read_rgb(tmp_path / "one.png"), read_rgb(tmp_path / "x8.png")
    assert one.shape == x8.shape == (40, 56, 3) and not np.array_equal(one, x8)
    assert main(["sharpen", str(src), "-o", str(tmp_path / "bad.png"), "--model", "fast@x5"]) != 0
    err = capsys.readouterr().err
    assert "fast@x5" in err and "@x8" in err and "Traceback" not in err
    assert not (tmp_path / "bad.png").exists()
