"""Losses: zero for identical inputs, positive otherwise, module == function, gradients, VGG loading."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from kdsharp.errors import ConfigError, InputError
from kdsharp.losses import (
    CharbonnierLoss,
    FeatureDistillLoss,
    FFTLoss,
    L1Loss,
    LaplacianPyramidLoss,
    MSELoss,
    OutputDistillLoss,
    PerceptualLoss,
    SobelLoss,
    VGGFeatures,
    build_loss,
    charbonnier_loss,
    fft_loss,
    l1_loss,
    laplacian_pyramid_loss,
    mse_loss,
    sobel_loss,
    vgg_layer_names,
)


def _pair(seed=0, shape=(2, 3, 24, 24)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.rand(shape, generator=g)


class TinyFeatNet(nn.Module):
    """A stand-in restoration model with the ``return_features`` contract (s1, s2)."""

    feature_channels = {"s1": 4, "s2": 6}

    def __init__(self, c1=4, c2=6):
        super().__init__()
        self.feature_channels = {"s1": c1, "s2": c2}
        self.a = nn.Conv2d(3, c1, 3, padding=1)
        self.b = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.out = nn.Conv2d(c1, 3, 3, padding=1)

    def forward(self, x, return_features=False):
        f1 = torch.relu(self.a(x))
        f2 = torch.relu(self.b(f1))
        y = x + self.out(f1)
        return (y, OrderedDict(s1=f1, s2=f2)) if return_features else y


PAIR_MODULES = [
    (L1Loss(), l1_loss),
    (MSELoss(), mse_loss),
    (CharbonnierLoss(), charbonnier_loss),
    (SobelLoss(), sobel_loss),
    (LaplacianPyramidLoss(levels=1), laplacian_pyramid_loss),
    (LaplacianPyramidLoss(levels=3), lambda a, b: laplacian_pyramid_loss(a, b, 3)),
    (FFTLoss("complex"), fft_loss),
    (FFTLoss("amplitude"), lambda a, b: fft_loss(a, b, "amplitude")),
]


@pytest.mark.parametrize("module,fn", PAIR_MODULES, ids=lambda m: type(m).__name__)
def test_pair_loss_zero_positive_module_equals_function(module, fn):
    x, y = _pair()
    assert float(module(x, x)) == pytest.approx(0.0, abs=1e-7)
    v = module(x, y)
    assert v.dim() == 0 and float(v) > 0
    assert torch.allclose(v, fn(x, y))
    xg = x.clone().requires_grad_(True)
    module(xg, y).backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


def test_charbonnier_close_to_l1_for_large_errors():
    x = torch.zeros(1, 3, 8, 8)
    y = torch.full_like(x, 0.5)
    assert float(charbonnier_loss(x, y)) == pytest.approx(0.5, abs=2e-3)


def _write_vgg_file(path, arch="vgg16", fmt="pth", extra_classifier=True):
    net = VGGFeatures(arch, layers=[vgg_layer_names(arch)[-2]])  # full features, random weights
    sd = {f"features.{k}": v.clone() for k, v in net.features.state_dict().items()}
    if extra_classifier:
        sd["classifier.0.weight"] = torch.zeros(4, 4)
    if fmt == "pth":
        torch.save(sd, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return sd


@pytest.mark.parametrize("arch,fmt", [("vgg16", "pth"), ("vgg19", "safetensors")])
def test_vgg_loads_torchvision_layout(tmp_path, arch, fmt):
    path = tmp_path / f"{arch}.{fmt}"
    sd = _write_vgg_file(path, arch, fmt)
    last_conv = max(int(k.split(".")[1]) for k in sd if k.startswith("features."))
    assert last_conv == (28 if arch == "vgg16" else 34)
    layers = ["relu1_2", "relu2_2", "relu3_3" if arch == "vgg16" else "relu3_4"]
    net = VGGFeatures(arch, layers, weights_path=path)
    assert torch.equal(net.features[0].weight, sd["features.0.weight"])
    assert torch.equal(net.features[12].weight, sd["features.12.weight"])
    assert not any(p.requires_grad for p in net.parameters())
    feats = net(torch.rand(1, 3, 32, 32))
    assert list(feats) == layers
    assert feats["relu1_2"].shape == (1, 64, 32, 32)
    assert feats["relu2_2"].shape == (1, 128, 16, 16)
    assert feats[layers[2]].shape == (1, 256, 8, 8)


def test_vgg_bad_files(tmp_path):
    with pytest.raises(InputError):
        VGGFeatures("vgg16", ["relu1_2"], weights_path=tmp_path / "missing.pth")
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(InputError, match="corrupt.pth"):
        VGGFeatures("vgg16", ["relu1_2"], weights_path=bad)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8)}, wrong)
    with pytest.raises(InputError, match="shape"):
        VGGFeatures("vgg16", ["relu1_2"], weights_path=wrong)


def test_perceptual_vgg_via_build_loss(tmp_path):
    path = tmp_path / "vgg16.pth"
    _write_vgg_file(path)
    loss = build_loss(
        {"perceptual": {"weight": 1.0, "network": "vgg16", "weights_path": str(path), "layers": ["relu1_2", "relu2_2"]}}
    )
    x, y = _pair(shape=(1, 3, 16, 16))
    assert loss(x, x)[0].item() == pytest.approx(0.0, abs=1e-7)
    total, terms = loss(x, y)
    assert total.item() > 0 and terms["perceptual"] > 0


def test_perceptual_teacher_network_freezes_it_and_grads_reach_input():
    teacher = TinyFeatNet()
    loss = PerceptualLoss(teacher, ["s1", "s2"], teacher_style=True)
    x, y = _pair(shape=(1, 3, 16, 16))
    xg = x.clone().requires_grad_(True)
    assert float(loss(x, x)) == 0.0
    v = loss(xg, y)
    v.backward()
    assert float(v.detach()) > 0 and xg.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_distill_losses_detach_teacher():
    s_out, t_out = _pair(shape=(1, 3, 16, 16))
    s_out.requires_grad_(True)
    t_out.requires_grad_(True)
    OutputDistillLoss("l1")(s_out, t_out).backward()
    assert s_out.grad is not None and t_out.grad is None
    assert float(OutputDistillLoss()(t_out, t_out).detach()) == 0.0


def test_feature_distill_adapters_shapes_zero_positive():
    student, teacher = TinyFeatNet(3, 5), TinyFeatNet(4, 6)
    fd = FeatureDistillLoss(student.feature_channels, teacher.feature_channels)
    assert fd.scales == ["s1", "s2"]
    assert fd.adapters["s1"].weight.shape == (4, 3, 1, 1) and fd.adapters["s2"].weight.shape == (6, 5, 1, 1)
    x = torch.rand(2, 3, 16, 16)
    _, sf = student(x, return_features=True)
    _, tf = teacher(x, return_features=True)
    v = fd(sf, tf)
    assert float(v.detach()) > 0
    v.backward()
    assert fd.adapters["s1"].weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())
    # identity adapters on equal channels and identical features -> exactly zero
    same = FeatureDistillLoss({"s1": 4}, {"s1": 4})
    with torch.no_grad():
        same.adapters["s1"].weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        same.adapters["s1"].bias.zero_()
    assert float(same({"s1": tf["s1"]}, {"s1": tf["s1"]}).detach()) == 0.0
    with pytest.raises(ValueError):
        FeatureDistillLoss({"s8": 4}, {"s1": 4})


FULL_CFG = {
    "pixel": {"type": "charbonnier", "weight": 1.0},
    "perceptual": {"weight": 0.05, "network": "teacher", "layers": ["s1", "s2"]},
    "edge": [
        {"type": "sobel", "weight": 0.1},
        {"type": "laplacian", "weight": 0.1, "levels": 2},
        {"type": "fft", "weight": 0.05},
    ],
    "distill_output": {"weight": 0.5, "type": "l1"},
    "distill_feature": {"weight": 0.1},
}


def test_build_loss_every_term_zero_then_positive():
    teacher, student = TinyFeatNet(), TinyFeatNet(3, 5)
    loss = build_loss(
        FULL_CFG,
        feature_net=teacher,
        student_channels=student.feature_channels,
        teacher_channels=teacher.feature_channels,
    )
    assert loss.uses_teacher_output and loss.uses_features
    names = {"pixel", "perceptual", "edge_sobel", "edge_laplacian", "edge_fft", "distill_output", "distill_feature"}
    x, y = _pair(shape=(1, 3, 16, 16))
    _, tf = teacher(x, return_features=True)
    # identical everything; the feature term needs identity adapters to be exactly zero
    fd = loss.feature_distill
    fd_same = FeatureDistillLoss(teacher.feature_channels, teacher.feature_channels)
    with torch.no_grad():
        for a in fd_same.adapters.values():
            a.weight.copy_(torch.eye(a.out_channels).view(a.out_channels, a.out_channels, 1, 1))
            a.bias.zero_()
    loss.terms["distill_feature"] = fd_same
    _, zero_terms = loss(x, x, teacher_out=x, student_feats=tf, teacher_feats=tf)
    assert set(zero_terms) == names | {"total"}
    assert all(v == pytest.approx(0.0, abs=1e-7) for v in zero_terms.values()), zero_terms
    loss.terms["distill_feature"] = fd
    _, sf = student(y, return_features=True)
    total, terms = loss(y, x, teacher_out=x, student_feats=sf, teacher_feats=tf)
    assert all(terms[n] > 0 for n in names), terms
    expected = sum(loss.weights[n] * terms[n] for n in names)
    assert total.item() == pytest.approx(expected, rel=1e-5)


def test_build_loss_config_errors():
    with pytest.raises(ConfigError, match="loss.pixle"):
        build_loss({"pixle": {"weight": 1}})
    with pytest.raises(ConfigError, match="loss.pixel.wieght"):
        build_loss({"pixel": {"wieght": 1}})
    with pytest.raises(ConfigError, match="teacher"):
        build_loss({"pixel": {"weight": 1}, "perceptual": {"weight": 0.1}})
    with pytest.raises(ConfigError, match="weights_path"):
        build_loss({"perceptual": {"weight": 0.1, "network": "vgg16"}})
    with pytest.raises(ConfigError):
        build_loss({"pixel": {"type": "huber", "weight": 1}})
    with pytest.raises(ConfigError, match="weight 0"):
        build_loss({"pixel": {"weight": 0}})
    assert list(build_loss(None).terms) == ["pixel"]
    with pytest.raises(ConfigError, match="no term compares the output with the ground truth"):
        build_loss({"pixel": {"weight": 0}, "distill_output": {"weight": 0.5}})  # the README: the GT always in


def test_losses_go_down_overfitting_one_batch():
    torch.manual_seed(0)
    teacher, student = TinyFeatNet(), TinyFeatNet(3, 5)
    teacher.requires_grad_(False)
    loss = build_loss(
        FULL_CFG,
        feature_net=teacher,
        student_channels=student.feature_channels,
        teacher_channels=teacher.feature_channels,
    )
    x, gt = _pair(shape=(2, 3, 16, 16))
    with torch.no_grad():
        t_out, tf = teacher(x, return_features=True)
    opt = torch.optim.Adam(list(student.parameters()) + list(loss.parameters()), lr=1e-2)
    history = []
    for _ in range(30):
        out, sf = student(x, return_features=True)
        total, terms = loss(out, gt, teacher_out=t_out, student_feats=sf, teacher_feats=tf)
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(terms)
    assert history[-1]["total"] < 0.8 * history[0]["total"]
    for name in ("pixel", "distill_output", "distill_feature"):
        assert history[-1][name] < history[0][name], name
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.parametrize(
    "term, weight", [("edge", -1), ("pixel", "abc"), ("distill_output", float("nan")), ("pixel", True)]
)
def test_a_loss_weight_that_is_not_a_number_ge_0_names_the_key(term, weight):
    """weight: -1 trained to increase that error without a word; weight: abc said only 'could not
    convert string to float'."""
    cfg = {"pixel": {"type": "l1", "weight": 1.0}, term: {"weight": weight}}
    with pytest.raises(ConfigError, match=rf"loss\.{term}\.weight must be a number >= 0"):
        build_loss(cfg)
