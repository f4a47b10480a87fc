"""YAML configuration files: the one loader and the schema checks every config shares.

Training runs (:mod:`kdsharp.train.config`) and degradations (:mod:`kdsharp.data.config`) are
both plain dicts checked against a schema of defaults; both read YAML here, so a value types the
same everywhere (``1e-4`` and ``1e0`` are floats, as in YAML 1.2), and both raise
:class:`~kdsharp.errors.ConfigError` naming the file and the dotted key:

    configs/x.yaml: unknown config key 'optim.lrr' (known keys here: betas, eps, lr, weight_decay)
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from kdsharp.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` (no dot) as a float, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that also types ``1e-4`` as a float (YAML 1.2); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


def read_yaml_mapping(path: str | Path, what: str = "config", fix: str = "see configs/ for examples") -> dict:
    """A YAML file's top-level mapping (an empty file: ``{}``).

    Raises:
        ConfigError: naming the file: missing, unreadable, not valid YAML (with the line), or a
            top level that is not a mapping of keys. ``what`` names the kind of file, ``fix`` how
            to get a good one.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found ({fix})")
    try:
        data = yaml_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: {what} file cannot be read ({e}); check the path and permissions") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(e).split())}); fix the syntax") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level of a {what} must be a mapping of keys, got {type(data).__name__}")
    return data


@contextlib.contextmanager
def config_source(source: str | Path | None) -> Iterator[None]:
    """Within the block, a :class:`ConfigError` is re-raised with ``source`` (the file the
    values came from) in front of its message, unless it names it already; None: unchanged."""
    try:
        yield
    except ConfigError as e:
        text = str(e)
        if source is None or text.startswith(f"{source}:"):
            raise
        raise ConfigError(f"{source}: {text}", params=e.params) from e


def check_known_keys(mapping: dict, known: Iterable[str], where: str = "", what: str = "config") -> None:
    """ConfigError for the first key of ``mapping`` not in ``known``, named with its dotted path
    (``where`` is the prefix, e.g. ``'optim.'``) and the known keys at that level."""
    allowed = list(known)
    for key in mapping:
        if key not in allowed:
            listed = ", ".join(sorted(map(str, allowed))) or "none"
            raise ConfigError(f"unknown {what} key '{where}{key}' (known keys here: {listed})")


__all__ = ["check_known_keys", "config_source", "read_yaml_mapping", "yaml_load"]
