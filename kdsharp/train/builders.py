"""Build what a run needs from its config: the model, the frozen teacher, datasets, the val set.

Trained weights (``model.init``, the teacher) load through the one model loader,
:func:`kdsharp.registry.load_model` (EMA weights of a trainer checkpoint), and training always gets
the bare architecture: test-time wrappers (the teacher's local windows) are removed.

Also :func:`score`, the validation metric (PSNR/SSIM on clamped, 8-bit quantized outputs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from kdsharp.console import info
from kdsharp.errors import ConfigError, KdsharpError
from kdsharp.metrics import PSNR_CAP, psnr_torch, ssim_torch
from kdsharp.models.common import set_memory_format
from kdsharp.train.checkpoint import check_state_dict
from kdsharp.train.loaders import collect_val_items


def model_from_config(model_cfg: dict, device: torch.device, channels_last: bool = False) -> tuple[nn.Module, dict]:
    """The model a run trains: the architecture of ``create_model(model.name, **model.kwargs)``
    (without test-time wrappers), ``model.init`` weights loaded, on ``device``. Returns (model, arch)
    where ``arch = {'name': class or registered name, 'kwargs': full constructor kwargs}`` rebuilds
    it (:func:`kdsharp.registry.model_from_spec`, what checkpoints record) and ``arch['test_time']``
    the metadata of the registered model's test-time step (:func:`kdsharp.registry.test_time_meta`)."""
    from kdsharp.models import unwrap
    from kdsharp.registry import create_model, model_spec, test_time_meta

    name, kwargs = model_cfg["name"], dict(model_cfg.get("kwargs") or {})
    try:
        built = create_model(name, **kwargs)
    except TypeError as e:
        raise ConfigError(f"model.kwargs do not fit model '{name}': {e}") from e
    model = unwrap(built)
    arch: dict
    try:
        arch = dict(zip(("name", "kwargs"), model_spec(model), strict=True))
    except ValueError:
        arch = {"name": name, "kwargs": kwargs}
    test_time = test_time_meta(built)  # fast's chroma step: recorded in its checkpoints and exports
    if test_time:
        arch["test_time"] = test_time
    if model_cfg.get("init"):
        init_weights(model, str(model_cfg["init"]))
    freeze = tuple(str(p) for p in model_cfg.get("freeze") or [])
    if freeze:
        frozen = [p.requires_grad_(False) for n, p in model.named_parameters() if n.startswith(freeze)]
        if not frozen:
            raise ConfigError(f"model.freeze={list(freeze)} matches no parameter of '{name}'")
        info(f"model.freeze: {len(frozen)} parameter tensors kept fixed")
    model = model.to(device)
    if channels_last:
        model = set_memory_format(model, torch.channels_last)
    return model, arch


def init_weights(model: nn.Module, spec: str) -> None:
    """Load the trained weights ``spec`` into ``model`` (same architecture, strict): a registered
    name with shipped weights, a weights file, or a trainer checkpoint ``.pth`` (its EMA weights),
    read by :func:`kdsharp.registry.load_model`."""
    from kdsharp.models import unwrap
    from kdsharp.registry import load_model

    model = unwrap(model)  # weights belong to the architecture; a test-time wrapper (fast's chroma step) has none
    source = unwrap(load_model(spec, "cpu", weights=True, deploy=False))
    sd = {k: v.float() if v.is_floating_point() else v for k, v in source.state_dict().items()}
    sd = grow_kernels(sd, model.state_dict())
    own = model.state_dict()
    added = [k for k in own if k not in sd and k.startswith(tuple(getattr(model, "identity_branches", ())))]
    sd.update({k: own[k] for k in added})  # a branch the source lacks that starts as the identity (FastNet's chroma)
    fix = f"model.init must be weights of the same architecture as model '{type(model).__name__}' with these kwargs"
    try:
        check_state_dict(spec, model, sd, "model.init", fix)
    except KdsharpError as e:  # model.init is a config setting: a ConfigError, as for the other keys
        raise ConfigError(str(e)) from e
    if added:
        info(f"model.init: {len(added)} tensors of new identity-start branches keep their initial values")
    model.load_state_dict(sd)


def grow_kernels(sd: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Function-preserving kernel growth (Net2Net-style) for ``model.init``: a conv weight stored as
    (O,I,k,k) where the model has (O,I,K,K) with a larger odd K is zero-padded around its centre,
    which computes the same function for stride-1 convs with 'same' padding. Other tensors pass."""
    out = dict(sd)
    for key, v in sd.items():
        target = own.get(key)
        if target is None or v.ndim != 4 or target.ndim != 4 or v.shape[:2] != target.shape[:2]:
            continue
        (k, k2), (big, big2) = v.shape[2:], target.shape[2:]
        if k == k2 and big == big2 and big > k and k % 2 == big % 2 == 1:
            p = (big - k) // 2
            out[key] = torch.nn.functional.pad(v, (p, p, p, p))
            info(f"model.init: {key} grown from {k}x{k} to {big}x{big} (centre taps, same function)")
    return out


def model_from_checkpoint(path: str | Path, device: torch.device | str = "cpu", ema: bool = True) -> nn.Module:
    """The trainable architecture of a checkpoint (``last.pth``/``best.pth`` or any file
    :func:`kdsharp.registry.load_model` reads): EMA weights if present (``ema=False``: the raw
    ones), training mode, gradients on, on ``device``."""
    from kdsharp.models import unwrap
    from kdsharp.registry import load_model

    model = unwrap(load_model(path, device, deploy=False, ema=ema))
    return model.train().requires_grad_(True)


def frozen_teacher(spec: str, device: torch.device, channels_last: bool = False) -> nn.Module:
    """The teacher ``spec`` (registered name, weights file, or training checkpoint .pth: its EMA
    weights), frozen: eval mode, ``requires_grad=False`` on every parameter. The bare architecture
    (``return_features`` works; no test-time local windows): training crops and the val baseline
    run whole."""
    from kdsharp.models import unwrap
    from kdsharp.registry import load_model

    teacher = unwrap(load_model(spec, device, weights=True))
    teacher = teacher.to(device).eval().requires_grad_(False)
    if channels_last:
        teacher = set_memory_format(teacher, torch.channels_last)
    teacher.__dict__.setdefault("feature_channels", {})  # a plain attribute: none to distil from
    return teacher


def make_train_dataset(cfg: dict, length: int | None = None):
    """``build_train_dataset`` from ``cfg['data']``: items ``{'lq','gt'}`` (3,crop,crop) in [0,1]."""
    from kdsharp.data.datasets import build_train_dataset

    d = cfg["data"]
    return build_train_dataset(
        d["sources"],
        d["degradation"],
        crop=int(d["crop"]),
        seed=int(cfg["seed"]),
        length=length if length is not None else d["length"],
        setting="data.crop",
    )


def build_val_items(cfg: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The held-out val pairs as (1,3,H,W) tensors: a paired folder (``val.path``), or crops of
    ``val.sources`` degraded with ``val.preset`` under ``val.seed`` (built once, deterministic)."""
    v, d = cfg["val"], cfg["data"]
    if v["path"]:
        from kdsharp.data.datasets import PairedFolderDataset

        return collect_val_items(PairedFolderDataset(v["path"]), int(v["max_images"]))
    from kdsharp.data.datasets import build_train_dataset

    count = min(int(v["count"]), int(v["max_images"]))
    sources = v["sources"] or d["sources"]
    # ready pairs (a paired folder or a bundle's val part) are each used once, in order
    pairs_only = all(isinstance(s, dict) and s.get("type") in ("paired", "bundle") for s in sources)
    ds = build_train_dataset(
        sources,
        v["preset"] or d["degradation"],
        crop=int(v["size"]),
        seed=int(v["seed"]),
        length=None if pairs_only else count,
        setting="val.size",
    )
    return collect_val_items(ds, count)


def val_groups(cfg: dict, n: int) -> list[str] | None:
    """The degradation preset of each of the first ``n`` val items, when the val set is the val
    part of training bundles (their ``meta.json`` names each pair's preset); else None."""
    from kdsharp.data.bundle import val_presets

    v = cfg["val"]
    sources = v["sources"] or cfg["data"]["sources"]
    if v["path"] or not sources or any(not isinstance(s, dict) or s.get("type") != "bundle" for s in sources):
        return None
    if any(s.get("part", "train") != "val" or s.get("content", "all") == "clean" for s in sources):
        return None
    groups = [preset for s in sources for preset in val_presets(s["path"])]
    return groups[:n] if len(groups) >= n else None


@torch.no_grad()
def score(
    fn: Callable[[torch.Tensor], torch.Tensor],
    items,
    device: torch.device,
    autocast=None,
    groups: list[str] | None = None,
) -> dict:
    """Mean PSNR (dB) and SSIM of ``fn(lq)`` vs ``gt`` over ``items``, outputs clamped to [0,1] and
    quantized to 8 bits (as saved images would be). Returns ``{'psnr', 'ssim'}`` floats, plus
    ``psnr_<group>`` (the mean over that group's items) for each name in ``groups`` (one per item).

    As in the eval report, an item whose output equals its ground truth (PSNR ``inf``) counts as
    :data:`~kdsharp.metrics.PSNR_CAP` dB in the means."""
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
    per_item = torch.cat(psnrs).clamp(max=PSNR_CAP)
    result = {"psnr": float(per_item.mean()), "ssim": float(torch.cat(ssims).mean())}
    if groups is not None and len(groups) == len(per_item):
        for g in sorted(set(groups)):
            result[f"psnr_{g}"] = float(per_item[[i for i, x in enumerate(groups) if x == g]].mean())
    return result
