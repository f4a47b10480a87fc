"""The model registry (timm style): each named model is a typed entry point.

    @register_model(role="teacher", weights="teacher.safetensors")
    def restormer_small(**kwargs) -> Restormer: ...

``kdsharp.registry`` builds on this to load shipped weights and checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn


@dataclass
class ModelEntry:
    """One registered model: its builder, role and (optionally) the shipped weights file."""

    name: str
    builder: Callable[..., nn.Module]
    role: str = "arch"  # 'teacher' | 'student' | 'fast' | 'arch'
    weights: str | None = None  # file name inside kdsharp/weights/
    description: str = ""
    default_kwargs: dict = field(default_factory=dict)


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    fn: Callable | None = None,
    *,
    name: str | None = None,
    role: str = "arch",
    weights: str | None = None,
    **default_kwargs,
):
    """Decorator registering ``fn`` under ``name`` (default: the function's name)."""

    def wrap(f: Callable) -> Callable:
        key = name or f.__name__
        if key in _MODELS:
            raise ValueError(f"model '{key}' registered twice")
        _MODELS[key] = ModelEntry(key, f, role, weights, _first_paragraph(f.__doc__), dict(default_kwargs))
        return f

    return wrap(fn) if fn is not None else wrap


def _first_paragraph(doc: str | None) -> str:
    """The docstring's first paragraph on one line (a description may wrap over several lines)."""
    para = (doc or "").strip().split("\n\n")[0]
    return " ".join(line.strip() for line in para.splitlines())


def model_entries() -> dict[str, ModelEntry]:
    """All registered entries by name (importing ``kdsharp.models`` fills it)."""
    return dict(_MODELS)


def get_entry(name: str) -> ModelEntry | None:
    """The entry for ``name``, or None."""
    return _MODELS.get(name)
