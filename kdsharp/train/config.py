"""Training configuration: YAML files (BasicSR style) merged over defaults, plus ``key.sub=value``.

Every key must exist in :data:`DEFAULTS` (a typo is a :class:`ConfigError` naming the key), except
inside the free-form sections listed in :data:`FREEFORM` (model kwargs, data sources and
degradation, the loss terms, which :func:`kdsharp.losses.build_loss` checks itself).
Override values are typed as YAML (``1e-4`` is a float): ``optim.lr=1e-4``, ``amp=off``,
``data.sources=[{type: samples}]``, ``model.kwargs.width=16``.

YAML is read, and keys are checked, by :mod:`kdsharp.io.config`, as for degradation configs;
errors name the file (``configs/x.yaml: unknown config key 'optim.lrr' ...``) and the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from kdsharp.errors import ConfigError
from kdsharp.io.config import check_known_keys, config_source, read_yaml_mapping, yaml_load
from kdsharp.train.selection import SELECT_RULES

DEFAULTS: dict[str, Any] = {
    "name": None,  # run name (folder under out_dir); default: the config file's stem
    "out_dir": "runs",
    "seed": 0,
    "deterministic": True,  # torch.use_deterministic_algorithms + seeded data order
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "threads": 0,  # torch CPU threads (0 = leave torch's default)
    # init: start from trained weights (fine-tuning): a registered name with shipped weights, a
    # weights file (.safetensors / official .pth) or a trainer checkpoint (EMA weights if present)
    # freeze: parameter-name prefixes kept as they are (e.g. [head, body, tail]: train only a branch
    # grown onto ``init`` weights, such as FastNet's chroma branch)
    "model": {"name": "resunet_teacher", "kwargs": {}, "init": None, "freeze": []},
    "teacher": None,  # students: registered name or weights/checkpoint path of the frozen teacher
    # teacher_cache: the teacher labels ``size`` training crops once (saved at ``path``) and the
    # student trains on them; ``extra``: bank files of other runs (same teacher), appended;
    # ``bf16``: auto labels in bf16 on a CPU with bfloat16 instructions (the teacher ~2x faster,
    # labels within a level of float32's; a CUDA run labels in its ``amp``), false: float32
    "teacher_cache": {
        "enabled": False,
        "size": 512,
        "path": None,
        "batch": 8,
        "augment": True,
        "extra": [],
        "bf16": "auto",
    },
    "data": {
        "sources": [{"type": "samples"}],
        "degradation": "mixed",  # preset name or degradation dict
        "crop": 128,
        "batch": 8,  # per process (DDP: global batch = batch x world size)
        "workers": 0,
        "length": None,  # dataset length (None: the data module's default)
    },
    "val": {
        "path": None,  # paired folder (lq/ + gt/); else built once from preset + sources
        "preset": None,  # default: data.degradation
        "sources": None,  # default: data.sources
        "count": 8,
        "size": 128,
        "seed": 10_000,  # held out: different from the training seed
        "every": 100,
        "max_images": 16,
        # which validated step is kept as best.pth / <name>_best.safetensors: 'psnr' (highest mean
        # PSNR) or 'worst_group' (largest smallest per-group change against the weights the run
        # started from -- model.init -- else the input: no preset may lose; see selection_score)
        "select": "psnr",
    },
    "loss": {"pixel": {"type": "charbonnier", "weight": 1.0}},
    "optim": {"lr": 2e-4, "betas": [0.9, 0.99], "weight_decay": 1e-4, "eps": 1e-8},
    # max_minutes > 0: a time budget; the cosine then follows elapsed time (or steps, whichever is
    # further) and the run stops when either runs out (GPU leases, fixed-time comparisons)
    "schedule": {"iters": 1000, "warmup": 50, "min_lr_ratio": 0.01, "max_minutes": 0},
    "grad_clip": 1.0,  # max grad norm (0 = off)
    "ema": 0.999,  # EMA decay (0 = off)
    "amp": "bf16",  # bf16 | fp16 | off (CUDA only)
    "channels_last": True,  # CUDA only
    "log_every": 10,
    "save_every": 500,
    "export": True,  # export safetensors (fp16) at the end
    # every ``every_s`` seconds (and at the end) export the EMA weights and copy them to ``dir``, so
    # a run cut off at any time leaves usable weights there (0 / null = off)
    "publish": {"dir": None, "every_s": 0},
}


# Sections whose content is not checked here (checked by their consumers).
FREEFORM = {"model.kwargs", "data.sources", "data.degradation", "loss", "val.sources", "val.preset"}


def _is_freeform(path: str) -> bool:
    return any(path == f or path.startswith(f + ".") for f in FREEFORM)


def merge_config(base: dict, override: dict, prefix: str = "") -> dict:
    """Deep-merge ``override`` into a copy of ``base``; unknown keys raise ConfigError."""
    out = copy.deepcopy(base)
    override = override or {}
    check_known_keys({k: v for k, v in override.items() if not _is_freeform(f"{prefix}{k}")}, base, prefix)
    for key, value in override.items():
        path = f"{prefix}{key}"
        if _is_freeform(path):
            out[key] = copy.deepcopy(value)
        elif isinstance(base.get(key), dict):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{path}' must be a mapping, got {value!r}")
            out[key] = merge_config(base[key], value, path + ".")
        else:
            out[key] = value
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'optim.lr=1e-4'`` -> (['optim', 'lr'], 1e-4); the value is typed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not key=value (e.g. optim.lr=1e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key (e.g. optim.lr=1e-4)")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override '{text}': value is not valid YAML ({getattr(e, 'problem', None) or e})") from e
    return key.split("."), value


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> dict:
    """Apply ``key.sub=value`` strings to a copy of ``cfg``; unknown keys raise ConfigError."""
    cfg = copy.deepcopy(cfg)
    for text in overrides or []:
        parts, value = parse_override(text)
        cfg = _set_path(cfg, parts, value, text)
    return cfg


def _set_path(cfg: dict, parts: list[str], value: Any, text: str) -> dict:
    node: dict = cfg
    schema: Any = DEFAULTS  # the defaults at this depth (None inside a free-form section)
    for i, p in enumerate(parts[:-1]):
        path = ".".join(parts[: i + 1])
        if not _is_freeform(path) and (not isinstance(schema, dict) or p not in schema):
            raise ConfigError(f"unknown config key '{path}' in override '{text}'")
        schema = schema.get(p) if isinstance(schema, dict) else None
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    path = ".".join(parts)
    if not _is_freeform(path) and (not isinstance(schema, dict) or parts[-1] not in schema):
        raise ConfigError(f"unknown config key '{path}' in override '{text}'")
    sub = schema.get(parts[-1]) if isinstance(schema, dict) else None
    if isinstance(sub, dict) and not _is_freeform(path):
        if not isinstance(value, dict):
            raise ConfigError(f"override '{text}': '{path}' is a section; set one of its keys ({', '.join(sub)})")
        value = merge_config(node.get(parts[-1]) or sub, value, path + ".")
    node[parts[-1]] = value
    return cfg


def load_config(path: str | Path | None = None, overrides: Iterable[str] = (), **direct: Any) -> dict:
    """Defaults <- YAML file ``path`` <- ``direct`` keys (e.g. teacher=..., out_dir=...) <- overrides.

    Raises:
        ConfigError: naming the file (and ``with overrides`` when some were given) and the key.
    """
    cfg = copy.deepcopy(DEFAULTS)
    overrides = list(overrides or [])
    if path is not None:
        path = Path(path)
        with config_source(path):
            cfg = merge_config(cfg, read_yaml_mapping(path))
        if cfg.get("name") is None:
            cfg["name"] = path.stem
    cfg = merge_config(cfg, {k: v for k, v in direct.items() if v is not None})
    cfg = expand_user_paths(apply_overrides(cfg, overrides))
    with config_source(None if path is None else f"{path} with overrides" if overrides else path):
        validate_config(cfg)
    return cfg


# settings that hold file or folder paths (data sources expand their own)
PATH_KEYS = ("out_dir", "teacher", "model.init", "val.path", "teacher_cache.path", "teacher_cache.extra", "publish.dir")


def expand_user_paths(cfg: dict) -> dict:
    """``cfg`` with a leading ``~`` expanded in the path settings (:data:`PATH_KEYS`), as the shell
    would: ``out_dir: ~/runs`` made a folder named ``~`` in the working directory."""

    def expand(v: Any) -> Any:
        if isinstance(v, list):
            return [expand(x) for x in v]
        return str(Path(v).expanduser()) if isinstance(v, str) and v.startswith("~") else v

    cfg = copy.deepcopy(cfg)
    for key in PATH_KEYS:
        *parents, last = key.split(".")
        node: Any = cfg
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            node[last] = expand(node[last])
    return cfg


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (a long list of data sources)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_config(cfg: dict) -> None:
    """Check value types/ranges that would otherwise fail late; raises ConfigError quoting the
    setting as ``key=value`` (``schedule.iters=0 must be a positive integer``)."""

    def need(cond: bool, key: str, rule: str, params: tuple[str, ...] = ()):
        if not cond:
            node: Any = cfg
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            raise ConfigError(f"{key}={_shown(node)} {rule}", params=params)

    def number(x: Any, least: float = -math.inf, most: float = math.inf, off: bool = False) -> bool:
        """A finite real number (not a bool) in [least, most]; ``off``: None is allowed too."""
        if x is None:
            return off
        return isinstance(x, (int, float)) and not isinstance(x, bool) and least <= x <= most and math.isfinite(x)

    def integer(x: Any, least: int = 0, off: bool = False) -> bool:
        """An int (not a bool) >= ``least``; ``off``: None is allowed too."""
        return off if x is None else isinstance(x, int) and not isinstance(x, bool) and x >= least

    sched, data, val, optim = cfg["schedule"], cfg["data"], cfg["val"], cfg["optim"]
    need(integer(cfg["seed"]), "seed", "must be an integer >= 0")
    need(integer(cfg["threads"]), "threads", "must be an integer >= 0 (0 = torch's default)")
    for key in ("deterministic", "channels_last", "export"):
        need(isinstance(cfg[key], bool), key, "must be true or false")
    need(number(cfg["grad_clip"], 0, off=True), "grad_clip", "must be a number >= 0 (0 = off)")
    betas = optim["betas"]
    need(
        isinstance(betas, (list, tuple)) and len(betas) == 2 and all(number(b, 0, 1) and b < 1 for b in betas),
        "optim.betas",
        "must be two numbers in [0, 1), e.g. [0.9, 0.99]",
    )
    need(number(optim["weight_decay"], 0), "optim.weight_decay", "must be a number >= 0")
    need(number(optim["eps"], 0) and optim["eps"] > 0, "optim.eps", "must be a number > 0")
    need(number(sched["min_lr_ratio"], 0, 1), "schedule.min_lr_ratio", "must be a number in [0, 1]")
    need(
        number(sched["max_minutes"], 0, off=True),
        "schedule.max_minutes",
        "must be a number >= 0 (0 = no time budget)",
    )
    need(
        number(cfg["publish"]["every_s"], 0, off=True),
        "publish.every_s",
        "must be a number of seconds >= 0 (0 = off)",
    )
    need(integer(data["length"], 1, off=True), "data.length", "must be a positive integer (or null: the default)")
    need(integer(val["count"], 1), "val.count", "must be a positive integer")
    need(integer(val["size"], 8), "val.size", "must be an integer >= 8 (px)")
    need(integer(val["max_images"], 1), "val.max_images", "must be a positive integer")
    need(integer(val["seed"]), "val.seed", "must be an integer >= 0")
    need(isinstance(sched["iters"], int) and sched["iters"] > 0, "schedule.iters", "must be a positive integer")
    need(isinstance(sched["warmup"], int) and sched["warmup"] >= 0, "schedule.warmup", "must be an integer >= 0")
    need(integer(data["batch"], 1), "data.batch", "must be a positive integer")
    need(isinstance(data["crop"], int) and data["crop"] >= 8, "data.crop", "must be an integer >= 8")
    need(isinstance(data["workers"], int) and data["workers"] >= 0, "data.workers", "must be an integer >= 0")
    need(isinstance(data["sources"], list) and bool(data["sources"]), "data.sources", "must be a non-empty list")
    need(isinstance(optim["lr"], (int, float)) and optim["lr"] > 0, "optim.lr", "must be > 0")
    need(cfg["amp"] in ("bf16", "fp16", "off", False, None), "amp", "must be bf16, fp16 or off")
    need(isinstance(cfg["ema"], (int, float)) and 0 <= cfg["ema"] < 1, "ema", "must be in [0, 1)")
    need(
        isinstance(val["every"], int) and val["every"] >= 0,
        "val.every",
        "must be an integer >= 0 (0 = only at the end)",
    )
    need(val["select"] in SELECT_RULES, "val.select", f"must be one of {', '.join(SELECT_RULES)}")
    need(isinstance(cfg["log_every"], int) and cfg["log_every"] > 0, "log_every", "must be a positive integer")
    need(isinstance(cfg["save_every"], int) and cfg["save_every"] >= 0, "save_every", "must be an integer >= 0")
    need(isinstance(cfg["model"].get("name"), str), "model.name", "must be a registered model name")
    need(isinstance(cfg["model"].get("kwargs") or {}, dict), "model.kwargs", "must be a mapping")
    need(
        isinstance(cfg["model"].get("freeze") or [], list),
        "model.freeze",
        "must be a list of parameter-name prefixes",
    )
    tc = cfg["teacher_cache"]
    need(isinstance(tc["enabled"], bool), "teacher_cache.enabled", "must be true or false")
    need(not tc["enabled"] or integer(tc["size"], 1), "teacher_cache.size", "must be a positive integer")
    need(not tc["enabled"] or integer(tc["batch"], 1), "teacher_cache.batch", "must be a positive integer")
    need(
        not tc["enabled"] or cfg["teacher"],
        "teacher_cache.enabled",
        "needs a teacher (set teacher=NAME|PATH)",
        ("teacher",),
    )
    need(isinstance(tc.get("extra") or [], list), "teacher_cache.extra", "must be a list of bank files")
    need(tc.get("bf16", "auto") in ("auto", False), "teacher_cache.bf16", "must be auto or false")
    need(
        cfg["name"] is None
        or (isinstance(cfg["name"], str) and "/" not in cfg["name"] and cfg["name"].strip(".") != ""),
        "name",
        "must be a plain folder name",
    )


def config_hash(cfg: dict) -> str:
    """Short stable hash of the config (12 hex chars), stored in checkpoints and exports."""
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def dump_config(cfg: dict) -> str:
    """The config as YAML text (saved as ``config.yaml`` in the run folder)."""
    return yaml.safe_dump(cfg, sort_keys=False)
