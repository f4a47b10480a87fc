"""Build what a run needs from its config: the model, the frozen teacher, datasets, the val set.

Also :func:`score`, the validation metric (PSNR/SSIM on clamped, 8-bit quantized outputs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from kdsharp.errors import ConfigError, KdsharpError
from kdsharp.metrics import psnr_torch, ssim_torch
from kdsharp.train.checkpoint import check_state_dict, load_checkpoint, strip_module_prefix
from kdsharp.train.loaders import collect_val_items


def build_model(model_cfg: dict, device: torch.device, channels_last: bool = False) -> tuple[nn.Module, dict]:
    """``create_model(model.name, **model.kwargs)`` on ``device``; returns (model, arch) where
    ``arch = {'name': class or registered name, 'kwargs': full constructor kwargs}`` rebuilds it
    (:func:`kdsharp.registry.build_model`)."""
    from kdsharp.registry import create_model, model_spec

    name, kwargs = model_cfg["name"], dict(model_cfg.get("kwargs") or {})
    try:
        model = create_model(name, **kwargs)
    except TypeError as e:
        raise ConfigError(f"model.kwargs do not fit model '{name}': {e}") from e
    try:
        arch = dict(zip(("name", "kwargs"), model_spec(model)))
    except ValueError:
        arch = {"name": name, "kwargs": kwargs}
    if model_cfg.get("init"):
        init_weights(model, str(model_cfg["init"]))
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, arch


def init_weights(model: nn.Module, spec: str) -> None:
    """Load the trained weights ``spec`` into ``model`` (same architecture, strict): a registered
    name with shipped weights, a weights file, or a trainer checkpoint ``.pth`` (EMA weights first)."""
    from kdsharp.registry import load_model

    path = Path(spec)
    if path.suffix == ".pth" and path.is_file():
        source = model_from_checkpoint(path, "cpu")
    else:
        source = load_model(spec, "cpu", weights=True, deploy=False)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in source.state_dict().items()}
    try:
        check_state_dict(spec, model, sd, "model.init")
    except KdsharpError as e:
        raise ConfigError(f"model.init {spec} does not fit model '{type(model).__name__}' with these kwargs "
                          f"({e}): start from weights of the same architecture") from e
    model.load_state_dict(sd)


def model_from_checkpoint(path: str | Path, device: torch.device | str = "cpu", ema: bool = True) -> nn.Module:
    """Rebuild the model of a training checkpoint (``last.pth``/``best.pth``), EMA weights if present."""
    from kdsharp.registry import build_model as rebuild

    ckpt = load_checkpoint(path)
    name = ckpt.get("arch") or ckpt["config"]["model"]["name"]
    kwargs = ckpt.get("arch_kwargs") or ckpt["config"]["model"].get("kwargs") or {}
    model = rebuild(str(name), dict(kwargs))
    params = ckpt.get("params_ema") if ema and ckpt.get("params_ema") else ckpt["params"]
    check_state_dict(path, model, params, f"model '{name}'")
    model.load_state_dict(strip_module_prefix(params))
    return model.to(device)


def frozen_teacher(spec: str, device: torch.device, channels_last: bool = False) -> nn.Module:
    """The teacher ``spec`` (registered name, weights file, or training checkpoint .pth), frozen:
    eval mode, ``requires_grad=False`` on every parameter."""
    path = Path(spec)
    if path.suffix == ".pth" and path.is_file():
        teacher = model_from_checkpoint(path, device)
    else:
        from kdsharp.registry import load_model

        teacher = load_model(spec, device, weights=True)
    teacher = teacher.to(device).eval().requires_grad_(False)
    if channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    if not hasattr(teacher, "feature_channels"):
        teacher.feature_channels = {}
    return teacher


def make_train_dataset(cfg: dict, length: int | None = None):
    """``build_train_dataset`` from ``cfg['data']``: items ``{'lq','gt'}`` (3,crop,crop) in [0,1]."""
    from kdsharp.data.datasets import build_train_dataset

    d = cfg["data"]
    return build_train_dataset(d["sources"], d["degradation"], crop=int(d["crop"]), seed=int(cfg["seed"]),
                               length=length if length is not None else d["length"])


def build_val_items(cfg: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The held-out val pairs as (1,3,H,W) tensors: a paired folder (``val.path``), or crops of
    ``val.sources`` degraded with ``val.preset`` under ``val.seed`` (built once, deterministic)."""
    v, d = cfg["val"], cfg["data"]
    if v["path"]:
        from kdsharp.data.datasets import PairedFolderDataset

        ds = PairedFolderDataset(v["path"])
        return collect_val_items(ds, int(v["max_images"]))
    from kdsharp.data.datasets import build_train_dataset

    count = min(int(v["count"]), int(v["max_images"]))
    sources = v["sources"] or d["sources"]
    # ready pairs (a paired folder or a bundle's val part) are each used once, in order
    pairs_only = all(isinstance(s, dict) and s.get("type") in ("paired", "bundle") for s in sources)
    ds = build_train_dataset(sources, v["preset"] or d["degradation"], crop=int(v["size"]),
                             seed=int(v["seed"]), length=None if pairs_only else count)
    return collect_val_items(ds, count)


@torch.no_grad()
def score(fn: Callable[[torch.Tensor], torch.Tensor], items, device: torch.device, autocast=None) -> dict:
    """Mean PSNR (dB) and SSIM of ``fn(lq)`` vs ``gt`` over ``items``, outputs clamped to [0,1] and
    quantized to 8 bits (as saved images would be). Returns ``{'psnr', 'ssim'}`` floats."""
    if not items:
        return {"psnr": float("nan"), "ssim": float("nan")}
    psnrs, ssims = [], []
    for lq, gt in items:
        ctx = autocast() if autocast else torch.autocast("cpu", enabled=False)
        with ctx:
            out = fn(lq.to(device))
        out = (out.float().clamp(0, 1) * 255).round().cpu() / 255
        gt = (gt.float().clamp(0, 1) * 255).round() / 255
        psnrs.append(psnr_torch(out, gt))
        ssims.append(ssim_torch(out, gt))
    return {"psnr": float(torch.cat(psnrs).mean()), "ssim": float(torch.cat(ssims).mean())}
