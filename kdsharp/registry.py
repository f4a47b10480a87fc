"""Finding, building and loading models by name or checkpoint path.

    list_models(role="student")           # ['student', 'student_nokd']
    create_model("restormer_tiny")        # untrained nn.Module
    load_model("fast")                    # shipped weights, inference mode, re-parameterized
    load_model("runs/x/last.pth")         # a trainer checkpoint: its EMA weights (ema=False: raw)
    load_model("motion_deblurring.pth")   # an official Restormer checkpoint
    load_model("student@x8")              # with a test-time self-ensemble (8 symmetries averaged)
    model_info("student")                 # params, GMACs at 1080p, weights shipped?

:func:`load_model` is THE model loader: the CLI, inference, export, evaluation and training
(``model.init``, the frozen teacher) all load through it, so a checkpoint means the same weights
everywhere (its EMA weights when it has them).

Checkpoints record ``arch`` (a class name from ``kdsharp.models.ARCHITECTURES`` or a registered
model name) and ``arch_kwargs`` so they rebuild without a config file (:func:`model_from_spec`);
official Restormer checkpoints carry no such record and their configuration is read off the
tensor names/shapes. Weights always belong to the bare architecture (:func:`kdsharp.models.unwrap`):
a registered name may add a test-time wrapper (the teacher's local windows) around it.
"""

from __future__ import annotations

import functools
import inspect
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdsharp.errors import InputError, KdsharpError, ModelKwargsError, UnknownModelError
from kdsharp.io.weights import WEIGHT_EXTS, load_state_dict_file, save_weights
from kdsharp.models import (
    ARCHITECTURES,
    ENSEMBLE_SIZES,
    LocalWindows,
    Restormer,
    SelfEnsemble,
    get_entry,
    model_entries,
    unwrap,
)
from kdsharp.models.common import reparameterize, set_memory_format
from kdsharp.models.wrappers import ChromaFromLuma

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
ROLES = ("teacher", "student", "fast", "arch")


def list_models(role: str | None = None) -> list[str]:
    """Registered model names (registration order), optionally only those with ``role`` (one of :data:`ROLES`)."""
    if role is not None and role not in ROLES:
        raise KdsharpError(f"unknown role={role} (use one of: {', '.join(ROLES)})", params=["role"])
    return [n for n, e in model_entries().items() if role is None or e.role == role]


def _entry(name: str):
    entry = get_entry(name)
    if entry is None:
        m = ENSEMBLE_SUFFIX.match(name)
        if m is not None and get_entry(m["base"]) is not None:  # 'fast@x2' to create_model / model_info
            raise KdsharpError(
                f"'{name}' is a self-ensemble: this takes the model's name ('{m['base']}'); "
                f"load_model('{name}') builds the ensemble"
            )
        raise UnknownModelError(name, list_models())
    return entry


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with random weights (``kwargs`` override the preset);
    with its test-time wrapper if it has one (``unwrap`` gives the architecture).

    Raises:
        UnknownModelError: ``name`` is not registered. ModelKwargsError: a keyword the
        architecture does not take (a :class:`KdsharpError` and a ``TypeError``).
    """
    entry = _entry(name)
    try:
        return entry.builder(**{**entry.default_kwargs, **kwargs})
    except TypeError as e:
        accepted = _accepted_kwargs(name)
        unknown = [k for k in kwargs if k not in accepted]
        if not unknown:
            raise  # a value of the wrong type, not an unknown keyword
        raise ModelKwargsError(
            f"model '{name}' takes no keyword {', '.join(f'{k}={kwargs[k]!r}' for k in unknown)} "
            f"(its keywords: {', '.join(accepted)})"
        ) from e


def _accepted_kwargs(name: str) -> list[str]:
    """The keywords ``create_model(name, ...)`` accepts: those of its architecture's constructor
    (through the base classes a ``**kwargs`` forwards to)."""
    entry = _entry(name)
    with torch.device("meta"):  # no memory, no compute
        cls = type(unwrap(entry.builder(**entry.default_kwargs)))
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]  # without self
        names += [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def weights_path(name: str) -> Path | None:
    """Where the shipped weights of ``name`` live (whether or not the file exists yet)."""
    entry = _entry(name)
    return WEIGHTS_DIR / entry.weights if entry.weights else None


def weights_shipped(name: str) -> bool:
    """True when ``name`` has a trained weights file in ``kdsharp/weights/``."""
    p = weights_path(name)
    return p is not None and p.is_file()


def model_spec(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """``(arch, arch_kwargs)`` that rebuild ``model``'s architecture (what checkpoints record;
    test-time wrappers are not part of it)."""
    model = unwrap(model)
    arch = type(model).__name__
    arch_kwargs = getattr(model, "arch_kwargs", None)
    if arch not in ARCHITECTURES or not isinstance(arch_kwargs, dict):
        raise ValueError(f"{arch} is not a kdsharp architecture")
    return arch, dict(arch_kwargs)


# kdsharp 0.1 recorded the teacher's test-time windows as a Restormer keyword; now a wrapper.
_LEGACY_WINDOW_KWARG = "local_window"


def model_from_spec(arch: str, arch_kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Rebuild the model a checkpoint records: ``arch`` (a class in ``ARCHITECTURES`` or a
    registered name) and its ``arch_kwargs``; random weights. A recorded ``local_window`` (older
    checkpoints) becomes a :class:`~kdsharp.models.LocalWindows` wrapper.

    Raises:
        KdsharpError: an ``arch`` this version does not know. TypeError: kwargs that do not fit.
    """
    kwargs = dict(arch_kwargs or {})
    window = kwargs.pop(_LEGACY_WINDOW_KWARG, None)
    model: nn.Module
    if arch in ARCHITECTURES:
        model = ARCHITECTURES[arch](**kwargs)
    elif get_entry(arch) is not None:
        model = create_model(arch, **kwargs)
    else:
        raise KdsharpError(
            f"checkpoint architecture '{arch}' is unknown to this kdsharp version "
            f"(known: {', '.join(sorted(ARCHITECTURES))}); upgrade kdsharp or re-export the model"
        )
    return LocalWindows(unwrap(model), int(window)) if window else model


CHROMA_META = "chroma_from_luma"  #: checkpoint metadata: the ChromaFromLuma step a model runs with (JSON)


def test_time_meta(model: nn.Module) -> dict[str, Any]:
    """Checkpoint metadata for the test-time step that travels with a model's weights: ``fast``'s
    chroma from luma (``{"chroma_from_luma": {"radius", "eps", "scale"}}``); {} for other models
    (local windows and self-ensembles are chosen at load time, not stored)."""
    if isinstance(model, ChromaFromLuma):
        return {CHROMA_META: {"radius": model.radius, "eps": model.eps, "scale": model.scale}}
    return {}


def with_test_time(model: nn.Module, meta: dict[str, Any]) -> nn.Module:
    """``model`` wrapped as its checkpoint's metadata says (:func:`test_time_meta`); as is without it."""
    cfg = meta.get(CHROMA_META)
    if isinstance(cfg, dict) and not isinstance(model, ChromaFromLuma):
        return ChromaFromLuma(model, **{k: cfg[k] for k in ("radius", "eps", "scale") if k in cfg})
    return model


def save_model(model: nn.Module, path: str | Path, meta: dict[str, Any] | None = None, half: bool = True) -> Path:
    """Save ``model``'s architecture weights as safetensors with ``arch``/``arch_kwargs`` metadata
    (atomic; fp16 if ``half``). Local windows and self-ensembles are not saved (wrap the loaded
    model again); ``fast``'s chroma step is recorded and comes back with :func:`load_model`."""
    arch, kwargs = model_spec(model)
    return save_weights(
        path,
        unwrap(model).state_dict(),
        {"arch": arch, "arch_kwargs": kwargs, **test_time_meta(model), **(meta or {})},
        half=half,
    )


def _count(sd: dict[str, torch.Tensor], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    return len({m.group(1) for k in sd if (m := pat.match(k))})


def infer_restormer_kwargs(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Restormer constructor kwargs read off an (official) state dict's names and shapes."""
    emb = sd["patch_embed.proj.weight"]
    dim = emb.shape[0]
    stages = ["encoder_level1", "encoder_level2", "encoder_level3", "latent"]
    num_blocks = [_count(sd, s) for s in stages]
    heads = [1, 2, 4, 8]
    for i, s in enumerate(stages):
        t = sd.get(f"{s}.0.attn.temperature")
        if t is not None:
            heads[i] = t.shape[0]
    ffn = 2.66
    first = next((f"{s}.0.ffn.project_out.weight" for s in stages if f"{s}.0.ffn.project_out.weight" in sd), None)
    if first is not None:
        hiddens = [
            (dim * 2**i, sd[f"{s}.0.ffn.project_out.weight"].shape[1])
            for i, s in enumerate(stages)
            if f"{s}.0.ffn.project_out.weight" in sd
        ]
        candidates = [2.66] + [round(hiddens[0][1] / dim + d, 2) for d in (0.0, 0.01, -0.01, 0.005)]
        ffn = next((f for f in candidates if all(int(c * f) == hid for c, hid in hiddens)), hiddens[0][1] / dim)
    return dict(
        inp_channels=emb.shape[1],
        out_channels=sd["output.weight"].shape[0],
        dim=dim,
        num_blocks=num_blocks,
        num_refinement_blocks=_count(sd, "refinement"),
        heads=heads,
        ffn_expansion_factor=ffn,
        bias="encoder_level1.0.attn.qkv.bias" in sd,
        LayerNorm_type="WithBias" if "encoder_level1.0.norm1.body.bias" in sd else "BiasFree",
        dual_pixel_task="skip_conv.weight" in sd,
    )


def _same_layout(model: nn.Module, sd: dict[str, torch.Tensor]) -> bool:
    own = model.state_dict()
    return own.keys() == sd.keys() and all(own[k].shape == sd[k].shape for k in own)


def _model_for_checkpoint(path: Path, sd: dict[str, torch.Tensor], meta: dict[str, Any]) -> nn.Module:
    if meta.get("arch"):
        kwargs = meta.get("arch_kwargs") or {}
        if not isinstance(kwargs, dict):
            raise InputError(path, "metadata 'arch_kwargs' is not a JSON object", "re-export the checkpoint")
        try:
            return model_from_spec(str(meta["arch"]), kwargs)
        except TypeError as e:
            raise InputError(
                path,
                f"metadata 'arch_kwargs' does not fit {meta['arch']} ({e})",
                "re-export the checkpoint with this kdsharp version",
            ) from e
    needed = ("patch_embed.proj.weight", "output.weight")  # what its configuration is read off
    if all(k in sd for k in needed):  # official Restormer layout
        return Restormer(**infer_restormer_kwargs(sd))
    if any(k in sd for k in needed) or any(k.startswith("encoder_level1.") for k in sd):  # Restormer names only
        missing = ", ".join(k for k in needed if k not in sd)
        raise InputError(
            path,
            f"a Restormer checkpoint without {missing} (truncated, or a part of another model)",
            "pass the complete official Restormer .pth",
        )
    deployed = any(".deployed." in k for k in sd)
    presets = list_models("arch")  # architectures first, then the trained models (a fine-tuned student)
    for name in [*presets, *(n for n in list_models() if n not in presets)]:  # checked on meta tensors
        with torch.device("meta"):
            probe = unwrap(create_model(name))
        if deployed:
            reparameterize(probe)
        if _same_layout(probe, sd):
            return create_model(name)
    raise InputError(
        path,
        "unrecognised checkpoint (no 'arch' metadata and not a Restormer or kdsharp layout)",
        "pass a kdsharp checkpoint or an official Restormer .pth",
    )


def _load_into(model: nn.Module, sd: dict[str, torch.Tensor], strict: bool, source: Path | str) -> None:
    """Load ``sd`` into ``model``'s architecture (inside any test-time wrapper); InputError if it does not fit."""
    model = unwrap(model)
    if any(".deployed." in k for k in sd):
        reparameterize(model)
    result = model.load_state_dict(sd, strict=False)
    own = model.state_dict()
    bad_shape = [k for k in sd if k in own and own[k].shape != sd[k].shape]
    if strict and (result.missing_keys or result.unexpected_keys):

        def few(keys):
            return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")

        parts = []
        if result.missing_keys:
            parts.append(f"missing {len(result.missing_keys)} tensors: {few(result.missing_keys)}")
        if result.unexpected_keys:
            parts.append(f"unexpected {len(result.unexpected_keys)} tensors: {few(result.unexpected_keys)}")
        raise InputError(
            source,
            "weights do not match the architecture; " + "; ".join(parts),
            "check the model name / checkpoint, or load with strict=False",
        )
    if bad_shape:
        raise InputError(
            source,
            f"tensor shapes do not match the architecture (e.g. {bad_shape[0]})",
            "check the model name / checkpoint",
        )


def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or Path(name).suffix.lower() in WEIGHT_EXTS


ENSEMBLE_SUFFIX = re.compile(r"^(?P<base>.+)@x(?P<n>\d+)$")


def split_ensemble(spec: str | Path) -> tuple[str, int]:
    """``'student@x8'`` -> ``('student', 8)``: a model spec with a self-ensemble suffix ``@x2``,
    ``@x4`` or ``@x8``; any other spec, or an existing file whose name happens to end so, ->
    ``(spec, 1)``. ``@x1`` (the model alone) and other sizes are a :class:`KdsharpError`."""
    spec = str(spec)
    m = ENSEMBLE_SUFFIX.match(spec)
    if m is None or Path(spec).is_file():
        return spec, 1
    n = int(m["n"])
    sizes = ", ".join(f"@x{k}" for k in ENSEMBLE_SIZES if k > 1)
    if n == 1:  # SelfEnsemble(model, 1) is the model alone: a suffix that does nothing is likely a typo
        raise KdsharpError(f"'{spec}': @x1 is the model alone: drop the suffix ('{m['base']}') or use {sizes}")
    if n not in ENSEMBLE_SIZES:
        raise KdsharpError(f"'{spec}': a self-ensemble averages 2, 4 or 8 symmetries: use {sizes}")
    if ENSEMBLE_SUFFIX.match(m["base"]) and not Path(m["base"]).is_file():  # student@x8@x2: 16 passes, 8 alike
        raise KdsharpError(f"'{spec}': give one self-ensemble suffix (e.g. '{m['base']}')")
    return m["base"], n


def load_model(
    name_or_path: str | Path,
    device: str | torch.device = "cpu",
    weights: bool = True,
    strict: bool = True,
    deploy: bool = True,
    ema: bool = True,
) -> nn.Module:
    """A ready-to-run model in inference mode: (N,3,H,W) float RGB in [0,1] -> (N,3,H,W) float RGB.

    The output is not clamped: it can stray a little outside [0,1] (clamp it, or use
    :meth:`kdsharp.Sharpener.tensor`, which does).

    Inference mode means ``eval()`` and ``requires_grad_(False)``: calling it builds no autograd
    graph. To fine-tune the result, call ``model.train().requires_grad_(True)`` (or start a run
    with ``model.init``).

    Args:
        name_or_path: a registered name (``list_models()``; with its test-time wrapper, e.g. the
            teacher's local windows) or a checkpoint file: a kdsharp ``.safetensors`` / trainer
            ``.pth`` (``arch`` + ``arch_kwargs`` recorded) or an official Restormer checkpoint
            (``{'params': ...}``, ``{'params_ema': ...}`` or bare); either with a self-ensemble
            suffix ``@x2``/``@x4``/``@x8`` (``student@x8``: :func:`split_ensemble`,
            :class:`~kdsharp.models.SelfEnsemble`).
        device: where to put it (``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``'auto'``: CUDA if
            available); a CUDA device PyTorch does not see is a :class:`KdsharpError`.
        weights: for a name, load its shipped weights (False: untrained).
        strict: require the checkpoint to match the architecture exactly.
        deploy: re-parameterize models that support it (``fast``) into their single-conv form,
            and use channels-last memory on CPU for conv nets (faster with oneDNN).
        ema: from a ``.pth`` holding both, load the EMA weights (``params_ema``, what a trainer
            exports and evaluates); False: the raw ``params``. Either falls back to the other.
    Raises:
        UnknownModelError: neither a registered name nor an existing file.
        KdsharpError: a name whose trained weights do not ship (yet).
        InputError: a missing, corrupt or mismatching checkpoint file.
    """
    from kdsharp.devices import resolve_device

    device = resolve_device(device)  # checked up front: no CUDA is a one-line error, not an AssertionError
    name, ensemble = split_ensemble(name_or_path)
    if ensemble > 1:
        inner = load_model(name, device, weights=weights, strict=strict, deploy=deploy, ema=ema)
        return SelfEnsemble(inner, ensemble).eval().requires_grad_(False)
    if get_entry(name) is not None:
        model = create_model(name)
        if weights:
            path = weights_path(name)
            if path is None:
                raise KdsharpError(
                    f"'{name}' is an architecture without shipped weights: use a trained model name (see "
                    f"`kdsharp models`) or a checkpoint file of it as the model (e.g. an official Restormer "
                    f".pth; in Python, weights=False builds it untrained)"
                )
            if not path.is_file():
                raise KdsharpError(
                    f"no trained weights ship for '{name}' yet ({path} is missing): train them with "
                    f"`kdsharp train` or pass a checkpoint file as the model "
                    f"(in Python, weights=False builds it untrained)"
                )
            sd, _ = load_state_dict_file(path, ema=ema)
            _load_into(model, sd, strict, path)
    elif Path(name).is_file():
        path = Path(name)
        if path.suffix.lower() == ".onnx":
            raise InputError(path, "is an ONNX model, not a PyTorch checkpoint", "run it with the ONNX backend")
        sd, meta = load_state_dict_file(path, ema=ema)
        model = with_test_time(_model_for_checkpoint(path, sd, meta), meta)
        _load_into(model, sd, strict, path)
    elif Path(name).is_dir():
        raise InputError(name, "is a folder, not a checkpoint file", "pass the checkpoint file itself")
    elif _looks_like_path(name):
        raise InputError(name, "file not found", "check the checkpoint path")
    else:
        raise UnknownModelError(name, list_models())
    model.eval()
    arch = unwrap(model)
    if deploy:
        reparameterize(arch)
    model.to(device)
    if deploy and getattr(arch, "prefers_channels_last", False) and torch.device(device).type == "cpu":
        set_memory_format(model, torch.channels_last)
    return model.eval().requires_grad_(False)  # after reparameterize: its new convs too


def count_macs(model: nn.Module, height: int = 1080, width: int = 1920) -> float:
    """Multiply-accumulates of one forward pass at ``height`` x ``width`` (FLOPs / 2).

    Counted by ``torch.utils.flop_counter`` (convs and matmuls, attention included) on meta
    tensors, so nothing is computed. Element-wise ops are not counted.
    """
    from torch.utils.flop_counter import FlopCounterMode

    p = next(model.parameters())
    x = torch.empty(1, 3, height, width, device=p.device, dtype=p.dtype)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2


@functools.cache
def _static_info(name: str) -> tuple[str, int, int, float]:
    with torch.device("meta"):  # no memory, no compute
        model = unwrap(create_model(name))  # the architecture (whole frames; no test-time windows)
    params = sum(p.numel() for p in model.parameters())
    reparameterize(model)
    deployed = sum(p.numel() for p in model.parameters())
    return type(model).__name__, params, deployed, count_macs(model) / 1e9


def model_info(name: str) -> dict[str, Any]:
    """``dict(name, role, arch, params, params_deployed, gmacs_1080p, weights_shipped, weights, description)``.

    ``params`` counts the training-form parameters, ``params_deployed`` those of the form that runs
    (equal unless the model re-parameterizes, as ``fast`` does); GMACs are for the deployed form
    on a whole frame (the teacher's test-time local windows add their overlap on top).
    """
    entry = _entry(name)
    arch, params, deployed, gmacs = _static_info(name)
    return dict(
        name=name,
        role=entry.role,
        arch=arch,
        params=params,
        params_deployed=deployed,
        gmacs_1080p=gmacs,
        weights_shipped=weights_shipped(name),
        weights=entry.weights,
        description=entry.description,
    )
