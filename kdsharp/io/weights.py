"""Reading and writing model weights: safetensors (ours) and PyTorch ``.pth`` checkpoints.

Layouts understood on load:

* ``.safetensors`` written by :func:`save_weights` (metadata ``arch``, ``arch_kwargs`` JSON, ...);
* ``.pth`` / ``.pt`` dicts ``{'params': sd}``, ``{'params_ema': sd}`` or both (BasicSR /
  Restormer), optionally with ``arch`` / ``arch_kwargs`` entries (the kdsharp trainer); with both,
  the EMA weights are read unless asked otherwise (they are what a trainer validates and exports);
* a bare state dict (name -> tensor).

``.pth`` files are unpickled with ``weights_only=True``: a file holding arbitrary Python objects
is refused rather than executed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from kdsharp.errors import InputError
from kdsharp.io.atomic import atomic_path
from kdsharp.io.inputs import existing_file

WEIGHT_EXTS = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")  # preference order (EMA first)


def _decode_meta(raw: dict[str, Any]) -> dict[str, Any]:
    """Metadata with ``arch_kwargs`` (and any other JSON-looking string) decoded."""
    meta: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, str) and k in ("arch_kwargs", "chroma_from_luma"):
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                v = {}
        meta[k] = v
    return meta


def _strip_prefix(sd: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw_meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for bad headers / truncation
        raise InputError(
            path,
            f"not a readable safetensors file ({type(e).__name__}: {e})".splitlines()[0],
            "re-download or re-export the weights",
        ) from e
    meta = _decode_meta(raw_meta)
    meta["layout"] = "safetensors"
    return sd, meta


def _not_a_checkpoint(path: Path, e: Exception) -> InputError:
    """The error for a ``.pth`` that ``torch.load`` cannot read at all (corrupt, truncated, not one)."""
    return InputError(
        path,
        f"not a PyTorch checkpoint, or a corrupt or truncated one (torch.load failed: {type(e).__name__})",
        "check the path and that the file is complete (re-download it), or pass a .safetensors / .pth weights file",
    )


def _load_torch(path: Path, ema: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    import pickle

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e):  # garbage bytes fail on an unknown opcode, not on a class
            raise _not_a_checkpoint(path, e) from e
        raise InputError(
            path,
            "holds Python objects besides tensors; refusing to unpickle it",
            "re-save it as torch.save({'params': model.state_dict()}, path)",
        ) from e
    except Exception as e:  # truncated zip, text, random bytes, ...
        raise _not_a_checkpoint(path, e) from e
    if not isinstance(obj, dict):
        raise InputError(path, f"holds a {type(obj).__name__}, not a state dict", "save model.state_dict()")
    meta: dict[str, Any] = {}
    order = _WRAPPER_KEYS if ema else ("params", *(k for k in _WRAPPER_KEYS if k != "params"))
    found = next((k for k in order if isinstance(obj.get(k), dict) and obj[k]), None)
    if found is not None:
        sd = obj[found]
        meta["layout"] = found
        model_cfg = (obj.get("config") or {}).get("model") if isinstance(obj.get("config"), dict) else None
        if "arch" not in obj and isinstance(model_cfg, dict) and model_cfg.get("name"):  # an early trainer checkpoint
            meta["arch"], meta["arch_kwargs"] = model_cfg["name"], model_cfg.get("kwargs") or {}
        for k in ("arch", "arch_kwargs", "chroma_from_luma"):
            if obj.get(k) is not None:
                meta[k] = obj[k]
        if isinstance(meta.get("arch_kwargs"), str):
            meta = _decode_meta(meta) | {"layout": found}
    else:
        sd = obj
        meta["layout"] = "bare"
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    return sd, meta


def load_state_dict_file(path: str | Path, ema: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read weights from ``path`` -> ``(state_dict, meta)``.

    Args:
        path: ``.safetensors``, ``.pth``, ``.pt`` (``.ckpt`` / ``.bin`` are tried as torch files).
        ema: in a ``.pth`` holding both, read ``params_ema`` (True) or the raw ``params`` (False);
            the other one is used when the preferred one is absent or empty.
    Returns:
        ``state_dict`` name -> CPU tensor (a DDP ``module.`` prefix removed) and ``meta`` with
        ``layout`` ('safetensors' | 'params' | 'params_ema' | 'state_dict' | 'model' | 'bare') and,
        when recorded, ``arch`` (str) and ``arch_kwargs`` (dict) plus other metadata strings.
    Raises:
        InputError: missing, empty, corrupt or tensor-less files.
    """
    path = existing_file(
        path,
        "weights file",
        folder_fix="pass a .safetensors or .pth file",
        empty_fix="re-download or re-export the weights",
    )
    if path.suffix.lower() == ".safetensors":
        sd, meta = _load_safetensors(path)
    else:
        sd, meta = _load_torch(path, ema)
    if not sd:
        raise InputError(path, "contains no tensors", "pass a checkpoint with model weights")
    return _strip_prefix(sd), meta


def save_weights(
    path: str | Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any] | None = None, half: bool = True
) -> Path:
    """Write ``state_dict`` to ``path`` as safetensors, atomically; returns the path.

    Floating tensors are stored as float16 when ``half`` (loading them into a float32 model
    converts back). ``meta`` values are stored as strings: dicts/lists as JSON (e.g.
    ``{'arch': 'Restormer', 'arch_kwargs': {...}}``), everything else with ``str``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {}
    for k, v in state_dict.items():
        v = v.detach().to("cpu")
        if half and v.is_floating_point():
            v = v.half()
        tensors[k] = v.contiguous().clone()  # clone: safetensors refuses shared storage
    str_meta = {k: json.dumps(v) if isinstance(v, (dict, list, tuple)) else str(v) for k, v in (meta or {}).items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=str_meta)
    return path
