"""VGG16/VGG19 feature extractor in torchvision's exact ``features.N`` layout (no torchvision).

Nothing is downloaded: the user passes a local state-dict file in torchvision's key layout
(``features.0.weight`` ... ``features.28.weight`` for VGG16, up to ``features.34`` for VGG19;
``.pth``/``.pt`` via ``torch.load`` or ``.safetensors``). Classifier keys are ignored. Inputs are
(N,3,H,W) RGB in [0,1] and are normalised with the ImageNet mean/std inside.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from kdsharp.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's cfgs 'D' (vgg16) and 'E' (vgg19): channel counts, 'M' = max-pool.
VGG_CFGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def vgg_layer_names(arch: str = "vgg16") -> list[str]:
    """Names of the ``features`` entries by index: conv1_1, relu1_1, ..., pool1, conv2_1, ..."""
    names, block, conv = [], 1, 1
    for v in VGG_CFGS[arch]:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


def _build_features(arch: str, upto: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 3
    for v in VGG_CFGS[arch]:
        if isinstance(v, str):  # 'M'
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(c_in, v, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            c_in = v
        if len(layers) > upto:
            break
    return nn.Sequential(*layers[: upto + 1])


class VGGFeatures(nn.Module):
    """Frozen VGG feature extractor returning the activations named in ``layers``.

    Args:
        arch: 'vgg16' or 'vgg19'.
        layers: names from :func:`vgg_layer_names` (e.g. relu1_2, relu2_2, relu3_3, relu4_3).
        weights_path: torchvision-layout state dict file; None keeps random weights (tests only).
    Forward: (N,3,H,W) RGB [0,1] -> OrderedDict name -> (N,C_l,H_l,W_l).
    """

    mean: torch.Tensor  # (1,3,1,1) ImageNet statistics (buffers)
    std: torch.Tensor

    def __init__(
        self,
        arch: str = "vgg16",
        layers=("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
        weights_path: str | Path | None = None,
    ):
        super().__init__()
        if arch not in VGG_CFGS:
            raise ValueError(f"unknown VGG '{arch}' (choose vgg16 or vgg19)")
        names = vgg_layer_names(arch)
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise ValueError(f"unknown {arch} layer(s) {unknown} (e.g. relu1_2, relu2_2, relu3_3, relu4_3)")
        self.arch = arch
        self.index = {n: names.index(n) for n in layers}
        self.features = _build_features(arch, max(self.index.values()))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if weights_path is not None:
            self.load_torchvision_weights(weights_path)
        self.requires_grad_(False)
        self.eval()

    def load_torchvision_weights(self, path: str | Path) -> None:
        """Load ``features.N.weight/bias`` from a torchvision-format file; InputError if unusable."""
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "VGG weights file not found", "pass a local torchvision-format VGG state dict")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                sd = load_file(str(path))
            else:
                sd = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # any decoding failure is a bad file (re-raised)
            raise InputError(
                path,
                f"cannot read VGG weights ({type(e).__name__})",
                "pass a torchvision VGG state dict (.pth or .safetensors)",
            ) from e
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        if not isinstance(sd, dict):
            raise InputError(path, "is not a state dict", "pass a torchvision VGG state dict")
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
        own = self.features.state_dict()
        wanted = {}
        for k, v in own.items():
            src = sd.get(f"features.{k}")
            if src is None:
                raise InputError(path, f"missing key 'features.{k}'", f"pass a torchvision {self.arch} state dict")
            if tuple(src.shape) != tuple(v.shape):
                raise InputError(
                    path,
                    f"'features.{k}' has shape {tuple(src.shape)}, expected {tuple(v.shape)}",
                    f"pass a torchvision {self.arch} state dict",
                )
            wanted[k] = src.float()
        self.features.load_state_dict(wanted)

    def train(self, mode: bool = True):  # always frozen, stays in eval mode
        return super().train(False)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        want = {i: n for n, i in self.index.items()}
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in want:
                out[want[i]] = x
        return out
