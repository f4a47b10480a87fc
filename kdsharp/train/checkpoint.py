"""Training checkpoints (BasicSR style ``{'params': state_dict, ...}``), written atomically.

A checkpoint is a ``torch.save`` dict with keys ``params``, ``params_ema``, ``optimizer``,
``scheduler``, ``step``, ``rng``, ``config`` (+ ``arch``, ``adapters``, ``scaler``, ``best``).
It only holds tensors and plain Python values, so it loads with ``weights_only=True``.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdsharp.errors import InputError
from kdsharp.io.atomic import atomic_path

REQUIRED_KEYS = ("params", "optimizer", "scheduler", "step", "rng", "config")


def strip_module_prefix(state_dict: dict) -> dict:
    """Remove DDP/compile prefixes (``module.``, ``_orig_mod.``) from state-dict keys."""
    out = {}
    for k, v in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def get_rng_state() -> dict:
    """torch (CPU + CUDA), numpy and python RNG states as tensors / plain values."""
    np_state = np.random.get_state(legacy=True)
    assert isinstance(np_state, tuple)  # the legacy form: (name, keys, pos, has_gauss, cached)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    """Restore states saved by :func:`get_rng_state` (CUDA ones only if the device count matches)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (a crash leaves the previous file intact)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint; InputError naming the file when missing/corrupt/not ours."""
    path = Path(path)
    fix = "pass a last.pth/best.pth written by `kdsharp train`, or start without resume=PATH"
    if not path.is_file():
        raise InputError(path, "checkpoint not found", fix, params=["resume"])
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling/zip failure means a bad file (re-raised)
        raise InputError(path, f"corrupt or unreadable checkpoint ({type(e).__name__})", fix, params=["resume"]) from e
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        missing = [k for k in REQUIRED_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
        raise InputError(
            path, f"not a kdsharp training checkpoint (missing {', '.join(missing)})", fix, params=["resume"]
        )
    return ckpt


def check_state_dict(
    path: str | Path,
    model: nn.Module,
    state_dict: dict,
    what: str = "model",
    fix: str = "resume with the same model name and kwargs it was trained with",
) -> None:
    """InputError naming ``path`` if ``state_dict`` does not fit ``model`` (keys or shapes), with ``fix``."""
    own = model.state_dict()
    sd = strip_module_prefix(state_dict)
    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    bad = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or extra or bad:
        detail = []
        if bad:
            k = bad[0]
            detail.append(f"{k} has shape {tuple(sd[k].shape)}, expected {tuple(own[k].shape)}")
        if missing:
            detail.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if extra:
            detail.append(f"{len(extra)} unexpected keys (e.g. {extra[0]})")
        raise InputError(path, f"checkpoint does not match the {what}: " + "; ".join(detail), fix)
