"""``build_loss(cfg)``: the weighted sum of the configured loss terms.

Config (every term optional; a missing term or ``weight: 0`` is off)::

    pixel:           {type: charbonnier|l1|mse, weight: 1.0}
    perceptual:      {weight: 0.05, network: teacher|vgg16|vgg19, weights_path: vgg16.pth,
                      layers: [s2, s4] | {relu2_2: 1.0}, criterion: l1}
    edge:            {type: sobel|laplacian|fft, weight: 0.1, levels: 1, mode: complex}  (or a list)
    distill_output:  {weight: 0.5, type: l1}
    distill_feature: {weight: 0.1, type: l1, scales: [s2, s4, s8]}

``CombinedLoss(out, gt, teacher_out=None, student_feats=None, teacher_feats=None)`` returns
``(total, {term_name: float})``. Every term is zero for identical inputs and positive otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from kdsharp.errors import ConfigError
from kdsharp.losses.distill import FeatureDistillLoss, OutputDistillLoss
from kdsharp.losses.edge import build_edge_loss
from kdsharp.losses.perceptual import PerceptualLoss
from kdsharp.losses.pixel import PixelLoss
from kdsharp.losses.vgg import VGGFeatures

TERM_KEYS = {
    "pixel": {"type", "weight", "eps"},
    "perceptual": {"weight", "network", "weights_path", "layers", "criterion"},
    "edge": {"type", "weight", "levels", "mode", "eps"},
    "distill_output": {"type", "weight"},
    "distill_feature": {"type", "weight", "scales"},
}
DEFAULT_LAYERS = {
    "teacher": ["s2", "s4", "s8"],
    "vgg16": ["relu1_2", "relu2_2", "relu3_3", "relu4_3"],
    "vgg19": ["relu1_2", "relu2_2", "relu3_4", "relu4_4"],
}


def _weight(name: str, c: dict, default: float = 0.0) -> float:
    """``c['weight']`` (else ``default``): a finite number >= 0, or a ConfigError naming ``loss.NAME.weight``
    (a negative weight would train to increase that error)."""
    w = c.get("weight", default)
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not (math.isfinite(w) and w >= 0):
        raise ConfigError(f"loss.{name}.weight must be a number >= 0 (0: off), got {w!r}")
    return float(w)


def _check_keys(name: str, cfg, allowed: set[str]) -> dict:
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"loss.{name}: expected a mapping like {{weight: 1.0}}, got {cfg!r}")
    for k in cfg:
        if k not in allowed:
            raise ConfigError(f"unknown config key 'loss.{name}.{k}' (allowed: {', '.join(sorted(allowed))})")
    return dict(cfg)


class CombinedLoss(nn.Module):
    """Weighted sum of named terms; ``forward`` returns ``(total, {name: float})``.

    Attributes ``uses_teacher_output`` / ``uses_features`` tell the trainer what to feed.
    ``distill_feature.adapters`` (if any) are the only trainable parameters.
    """

    def __init__(self):
        super().__init__()
        self.terms = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        self.kinds: dict[str, str] = {}  # 'gt' | 'teacher' | 'feature'

    def add(self, name: str, module: nn.Module, weight: float, kind: str = "gt") -> None:
        self.terms[name] = module
        self.weights[name] = float(weight)
        self.kinds[name] = kind

    @property
    def uses_teacher_output(self) -> bool:
        return "teacher" in self.kinds.values()

    @property
    def uses_features(self) -> bool:
        return "feature" in self.kinds.values()

    @property
    def feature_distill(self) -> FeatureDistillLoss | None:
        term = self.terms["distill_feature"] if "distill_feature" in self.terms else None
        return term if isinstance(term, FeatureDistillLoss) else None

    def forward(
        self,
        out: torch.Tensor,
        gt: torch.Tensor,
        teacher_out: torch.Tensor | None = None,
        student_feats: Mapping[str, torch.Tensor] | None = None,
        teacher_feats: Mapping[str, torch.Tensor] | None = None,
    ):
        """out, gt, teacher_out: (N,3,H,W) [0,1]; feats: scale -> (N,C,h,w)."""
        total = out.new_zeros((), dtype=torch.float32)
        logged: dict[str, float] = {}
        for name, term in self.terms.items():
            kind = self.kinds[name]
            if kind == "teacher":
                if teacher_out is None:
                    raise ValueError(f"loss term '{name}' needs the teacher's output")
                value = term(out, teacher_out)
            elif kind == "feature":
                if student_feats is None or teacher_feats is None:
                    raise ValueError(f"loss term '{name}' needs student and teacher features")
                value = term(student_feats, teacher_feats)
            else:
                value = term(out.float(), gt.float())
            total = total + self.weights[name] * value
            logged[name] = float(value.detach())
        logged["total"] = float(total.detach())
        return total, logged


def build_loss(
    cfg: Mapping | None,
    *,
    feature_net: nn.Module | None = None,
    student_channels: Mapping[str, int] | None = None,
    teacher_channels: Mapping[str, int] | None = None,
) -> CombinedLoss:
    """Build the :class:`CombinedLoss` described by ``cfg`` (see the module docstring).

    Args:
        feature_net: the frozen teacher, for ``perceptual.network: teacher``.
        student_channels / teacher_channels: ``feature_channels`` of both models, for
            ``distill_feature``.
    Raises ConfigError for unknown terms/keys or a term that cannot be built.
    """
    cfg = dict(cfg or {"pixel": {"type": "charbonnier", "weight": 1.0}})
    loss = CombinedLoss()
    for name in cfg:
        if name not in TERM_KEYS:
            raise ConfigError(f"unknown config key 'loss.{name}' (allowed: {', '.join(TERM_KEYS)})")
    try:
        if "pixel" in cfg:
            c = _check_keys("pixel", cfg["pixel"], TERM_KEYS["pixel"])
            if w := _weight("pixel", c, 1.0):
                loss.add("pixel", PixelLoss(c.get("type", "charbonnier"), c.get("eps", 1e-3)), w)
        if "perceptual" in cfg:
            c = _check_keys("perceptual", cfg["perceptual"], TERM_KEYS["perceptual"])
            if w := _weight("perceptual", c):
                net_name = c.get("network", "teacher")
                layers = c.get("layers") or DEFAULT_LAYERS.get(net_name, [])
                if net_name == "teacher":
                    if feature_net is None:
                        raise ConfigError(
                            "loss.perceptual.network=teacher needs a trained teacher: set 'teacher' "
                            "in the config (or use network: vgg16 with weights_path)"
                        )
                    net, teacher_style = feature_net, True
                elif net_name in ("vgg16", "vgg19"):
                    if not c.get("weights_path"):
                        raise ConfigError(
                            f"loss.perceptual.network={net_name} needs weights_path: a local "
                            "torchvision-format state dict (nothing is downloaded)"
                        )
                    net, teacher_style = VGGFeatures(net_name, list(layers), c["weights_path"]), False
                else:
                    raise ConfigError(f"loss.perceptual.network: unknown '{net_name}' (teacher, vgg16 or vgg19)")
                loss.add("perceptual", PerceptualLoss(net, layers, c.get("criterion", "l1"), teacher_style), w)
        if "edge" in cfg:
            edges = cfg["edge"] if isinstance(cfg["edge"], list) else [cfg["edge"]]
            for c in edges:
                c = _check_keys("edge", c, TERM_KEYS["edge"])
                if not (w := _weight("edge", c)):
                    continue
                kind = c.get("type", "sobel")
                kw = {k: c[k] for k in ("levels", "eps", "mode") if k in c}
                name = "edge" if len(edges) == 1 else f"edge_{kind}"
                loss.add(name, build_edge_loss(kind, **kw), w)
        if "distill_output" in cfg:
            c = _check_keys("distill_output", cfg["distill_output"], TERM_KEYS["distill_output"])
            if w := _weight("distill_output", c):
                loss.add("distill_output", OutputDistillLoss(c.get("type", "l1")), w, kind="teacher")
        if "distill_feature" in cfg:
            c = _check_keys("distill_feature", cfg["distill_feature"], TERM_KEYS["distill_feature"])
            if w := _weight("distill_feature", c):
                if not student_channels or not teacher_channels:
                    raise ConfigError(
                        "loss.distill_feature needs a teacher and a student that expose "
                        "feature_channels (set 'teacher', or distill_feature.weight=0)"
                    )
                loss.add(
                    "distill_feature",
                    FeatureDistillLoss(student_channels, teacher_channels, c.get("scales"), c.get("type", "l1")),
                    w,
                    kind="feature",
                )
    except (ValueError, TypeError) as e:
        raise ConfigError(f"loss: {e}") from e
    if not loss.terms:
        raise ConfigError("loss: every term has weight 0 (set e.g. loss.pixel.weight=1.0)")
    if "gt" not in loss.kinds.values():  # distillation alone would copy the teacher's errors too
        raise ConfigError(
            "loss: no term compares the output with the ground truth (pixel, perceptual or edge): add one, "
            "e.g. loss.pixel={type: charbonnier, weight: 1.0}"
        )
    return loss
