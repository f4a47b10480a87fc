"""Write the starting weights of a shallower `fast` from the shipped one (maintainer script).

The shipped `fast` is a FastNet with 16 channels, a head, 3 body blocks and a tail at 1/4
resolution: 1.5 GMAC per 1080p frame, compute-bound on a 2-core AVX2-only CPU (AMD EPYC 7001,
~34 GMAC/s at best), where it runs ~18 frames/s. A shallower variant (``--blocks 1`` or ``0``)
keeps the head, the first body blocks and the tail in their training form; the dropped blocks
were ``act(conv(x) + x)``, so the start is not the same function but close to it. It is a start
for ``kdsharp train`` (``model.init`` = the written file, ``model.kwargs`` = ``{num_blocks: N}``):

    python scripts/shallow_fast.py --blocks 0 -o init_fast_b0.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from kdsharp.models import unwrap
from kdsharp.registry import create_model, load_model, save_model


def shallow_state_dict(src: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``own``'s keys (a FastNet with fewer body blocks) filled from ``src`` (the deeper one's)."""
    missing = [k for k in own if k not in src]
    if missing:
        raise KeyError(f"{missing[0]}: not in the source model (only dropping body blocks is supported)")
    out = {k: src[k].float() for k in own}
    bad = [k for k in own if out[k].shape != own[k].shape]
    if bad:
        raise ValueError(f"{bad[0]}: shape {tuple(out[bad[0]].shape)} differs from {tuple(own[bad[0]].shape)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default="fast", help="the deeper fast model (a name or weights file)")
    ap.add_argument("--blocks", type=int, default=0, help="body blocks kept (the first ones)")
    ap.add_argument("-o", "--out", type=Path, required=True)
    a = ap.parse_args()
    src = unwrap(load_model(a.source, "cpu", weights=True, deploy=False)).state_dict()
    model = create_model("fast", num_blocks=a.blocks)
    model.load_state_dict(shallow_state_dict(src, model.state_dict()))
    save_model(model, a.out, half=False)
    print(f"{a.out}: fast num_blocks={a.blocks}, {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
