"""Memory layout of (N,C,H,W) tensors."""

from __future__ import annotations

import torch


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 4-D tensor stored channels-last (and not also plain contiguous, as 1-channel ones are)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
