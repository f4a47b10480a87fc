"""Lazy package attributes (PEP 562): heavy submodules are imported on first use only."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(
    package: str, table: Mapping[str, str | tuple[str, str]], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``table`` maps a public name to the module that
    defines it (same name there) or to ``(module, attribute)``; the value is imported on first
    access and cached in ``namespace`` (the package's ``globals()``)."""

    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        module, attr = (target, name) if isinstance(target, str) else target
        value = getattr(importlib.import_module(module), attr)
        namespace[name] = value
        return value

    return __getattr__


def lazy_dir(table: Mapping[str, object], namespace: dict[str, Any]) -> Callable[[], list[str]]:
    """A module ``__dir__`` that lists the lazy names of ``table`` before their first access too
    (``dir()``, tab completion in a notebook)."""

    def __dir__() -> list[str]:
        return sorted({*namespace, *table})

    return __dir__
