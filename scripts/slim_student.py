"""Write the starting weights of a slimmer `student` from the shipped one (maintainer script).

The shipped student is a ResUNet-lite with a 3x3 tail and an 8-channel full-resolution stage. A
slimmer variant (``--tail-kernel 1``, ``--detail 4``, ``--enc-blocks 1,2,2``) keeps every weight
that still fits and cuts the rest down:

* tail 3x3 -> 1x1: its centre taps;
* full-resolution stage 8 -> N hidden channels: the N strongest, by ``|w_in| * |w_out|``;
* fewer residual blocks in an encoder level: the first ones are kept.

The result is not the same function (the validation PSNR drops by up to ~1 dB); it is a start for
`kdsharp train` (``model.init`` = the written file, ``model.kwargs`` = the slim kwargs), trained with
the shipped student as the teacher so that it learns back what was cut:

    python scripts/slim_student.py --tail-kernel 1 --detail 4 --enc-blocks 1,2,2 -o init.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from kdsharp.models import unwrap
from kdsharp.registry import create_model, load_model, save_model


def slim_state_dict(src: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``own``'s keys filled from ``src`` (a bigger student's weights), cut down where shapes differ."""
    w_in, w_out = src["detail_stage.conv_in.weight"], src["detail_stage.conv_out.weight"]
    strength = w_in.flatten(1).norm(dim=1) * w_out[0].flatten(1).norm(dim=1)  # (hidden,)
    hidden = own["detail_stage.conv_out.weight"].shape[1] if "detail_stage.conv_out.weight" in own else 0
    keep = strength.argsort(descending=True)[:hidden].sort().values  # the strongest hidden channels, in order
    out = {}
    for key, target in own.items():
        if key not in src:
            raise KeyError(f"{key}: not in the source student (only cutting down is supported)")
        v = src[key].float()
        if v.shape != target.shape:
            if key == "tail.weight":  # (O, I, 3, 3) -> (O, I, 1, 1): the centre taps
                c = v.shape[-1] // 2
                v = v[..., c : c + 1, c : c + 1]
            elif key.startswith("detail_stage.conv_in."):  # (hidden, ...) -> the strongest channels
                v = v[keep]
            elif key == "detail_stage.conv_out.weight":
                v = v[:, keep]
        if v.shape != target.shape:
            raise ValueError(f"{key}: cannot cut {tuple(v.shape)} down to {tuple(target.shape)}")
        out[key] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default="student", help="the bigger student (a name or weights file)")
    ap.add_argument("--tail-kernel", type=int, default=1)
    ap.add_argument("--detail", type=int, default=4, help="hidden channels of the full-resolution stage")
    ap.add_argument("--enc-blocks", default="1,2,2", help="residual blocks per encoder level")
    ap.add_argument("-o", "--out", type=Path, required=True)
    a = ap.parse_args()
    kwargs = dict(tail_kernel=a.tail_kernel, detail=a.detail, enc_blocks=[int(n) for n in a.enc_blocks.split(",")])
    src = unwrap(load_model(a.source, "cpu", weights=True, deploy=False)).state_dict()
    model = create_model("student", **kwargs)
    model.load_state_dict(slim_state_dict(src, model.state_dict()))
    save_model(model, a.out, half=False)
    print(f"{a.out}: student {kwargs}, {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
