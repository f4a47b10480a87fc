"""Knowledge-distillation losses: student output vs teacher output, student features vs teacher's.

The teacher's tensors are always detached: no gradient ever reaches the teacher. Feature
distillation maps each student feature map through a trainable 1x1 conv *adapter* to the teacher's
channel count, at the scale names both models share ('s1','s2','s4','s8'). The adapters are trained
with the student and saved in the training checkpoint, but never shipped with the student.
The ground-truth pixel term stays in the total loss (see :mod:`kdsharp.losses.combined`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from kdsharp.losses.perceptual import feature_match_size
from kdsharp.losses.pixel import pixel_loss_fn


def output_distill_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Pixel loss ``kind`` between (N,3,H,W) student and (detached) teacher outputs -> 0-dim."""
    return pixel_loss_fn(kind)(student_out.float(), teacher_out.detach().float())


class OutputDistillLoss(nn.Module):
    """Module form of :func:`output_distill_loss`."""

    def __init__(self, kind: str = "l1"):
        super().__init__()
        pixel_loss_fn(kind)
        self.kind = kind

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
        return output_distill_loss(student_out, teacher_out, self.kind)


def shared_scales(
    student_channels: Mapping[str, int], teacher_channels: Mapping[str, int], scales: Iterable[str] | None = None
) -> list[str]:
    """Scale names present in both models (restricted to ``scales`` if given), in s1..s8 order."""
    order = ["s1", "s2", "s4", "s8"]
    common = [s for s in student_channels if s in teacher_channels]
    if scales is not None:
        scales = list(scales)
        common = [s for s in common if s in scales]
    return sorted(common, key=lambda s: order.index(s) if s in order else len(order))


class FeatureDistillLoss(nn.Module):
    """Adapter-mapped feature distance between student and teacher at shared scales.

    Args:
        student_channels / teacher_channels: the models' ``feature_channels`` dicts.
        scales: which shared scales to use (default: all shared).
        kind: 'l1' | 'mse' | 'charbonnier'.
    Forward: dicts scale -> (N,C_s,h,w) and scale -> (N,C_t,h,w) -> 0-dim tensor (mean over scales).
    """

    def __init__(
        self,
        student_channels: Mapping[str, int],
        teacher_channels: Mapping[str, int],
        scales: Iterable[str] | None = None,
        kind: str = "l1",
    ):
        super().__init__()
        self.scales = shared_scales(student_channels, teacher_channels, scales)
        if not self.scales:
            raise ValueError(
                f"student features {list(student_channels)} and teacher features "
                f"{list(teacher_channels)} share no scale to distill"
            )
        pixel_loss_fn(kind)
        self.kind = kind
        self.adapters = nn.ModuleDict(
            {s: nn.Conv2d(int(student_channels[s]), int(teacher_channels[s]), kernel_size=1) for s in self.scales}
        )

    def forward(
        self, student_feats: Mapping[str, torch.Tensor], teacher_feats: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        fn = pixel_loss_fn(self.kind)
        terms = []
        for s in self.scales:
            t = teacher_feats[s].detach().float()
            a = self.adapters[s](student_feats[s].float())
            terms.append(fn(feature_match_size(a, t), t))
        return torch.stack(terms).mean()
