"""The YAML configs that ship with kdsharp, found by name: ``teacher_quick`` or a path.

    resolve_config_path("teacher_cpu")                   # the shipped teacher recipe
    resolve_config_path("configs/teacher_quick.yaml")    # a path; works outside a clone too
    resolve_config_path("my_run.yaml")                   # your own file
    list_configs()                                       # {'fast': Path(...), ...}

The repository's ``configs/`` folder is the source: a wheel copies it into this package
(``setup.py``), and a source checkout reads it in place.
"""

from __future__ import annotations

from pathlib import Path

from kdsharp.errors import ConfigError

_HERE = Path(__file__).resolve().parent
_SUFFIXES = (".yaml", ".yml")


def config_dirs() -> list[Path]:
    """Folders holding the shipped configs: this package's copy (installed), the clone's ``configs/``."""
    dirs = [_HERE] if any(_HERE.glob("*.yaml")) else []
    root = _HERE.parents[1]
    if (root / "pyproject.toml").is_file() and (root / "configs").is_dir():  # a source checkout
        dirs.append(root / "configs")
    return dirs


def list_configs(folder: str | None = None) -> dict[str, Path]:
    """Shipped configs by name (the file stem), sorted; ``folder='degrade'``: that sub-folder's."""
    found: dict[str, Path] = {}
    for base in config_dirs():
        d = base / folder if folder else base
        for p in sorted(d.glob("*")):
            if p.suffix in _SUFFIXES and p.is_file():
                found.setdefault(p.stem, p)
    return dict(sorted(found.items()))


def describe_config(path: str | Path, width: int = 100) -> str:
    """The first sentence of the config's leading comment (its description), at most ``width`` chars."""
    words: list[str] = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                text = line[1:] if line.startswith("#") else None
                if text is None or not text.strip() or text.startswith("   "):  # end, blank, or a command
                    break
                words += text.split()
    except (OSError, UnicodeDecodeError):
        return ""
    sentence = " ".join(words)
    for end in (". ",):
        if end in sentence:
            sentence = sentence[: sentence.index(end) + 1]
    if len(sentence) > width:
        sentence = sentence[: width - 1].rsplit(" ", 1)[0] + "…"
    return sentence.rstrip(":")


def _shipped(relative: Path) -> Path | None:
    """``relative`` (``teacher_cpu``, ``degrade/screen_share.yaml``) inside a shipped config folder."""
    names = [relative] if relative.suffix in _SUFFIXES else [relative.with_name(relative.name + s) for s in _SUFFIXES]
    for base in config_dirs():
        for name in names:
            if (base / name).is_file():
                return base / name
    return None


def shipped_config(name_or_path: str | Path, folder: str | None = None) -> Path | None:
    """The shipped config that ``name_or_path`` names (``teacher_quick``, ``teacher_quick.yaml`` or
    ``configs/teacher_quick.yaml``; with ``folder``, one of that sub-folder: ``calls_soft`` or
    ``configs/degrade/calls_soft.yaml`` for ``folder='degrade'``); None if none does."""
    path = Path(name_or_path)
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    if folder is not None:
        parts = (folder, *(parts[1:] if parts[:1] == (folder,) else parts))
    return _shipped(Path(*parts)) if parts and not path.is_absolute() else None


def resolve_config_path(name_or_path: str | Path) -> Path:
    """An existing config file: ``name_or_path`` itself if it is a file, else the shipped config of
    that name (``teacher_quick``, ``teacher_quick.yaml`` or ``configs/teacher_quick.yaml``, so the
    README's paths work outside a clone). Raises :class:`ConfigError` naming the shipped ones."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    found = shipped_config(path)
    if found is not None:
        return found
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file (pass a .yaml file or a shipped config name)")
    names = ", ".join(list_configs()) or "none found"
    raise ConfigError(
        f"{path}: no such config file or shipped config (shipped: {names}; "
        "`kdsharp train --list-configs` describes them)"
    )


def format_configs() -> str:
    """The shipped configs as text: one ``name  description`` line each, then the folder."""
    configs = list_configs()
    if not configs:
        return "no shipped configs found (reinstall kdsharp)"
    width = max(len(n) for n in configs)
    lines = [f"{n:<{width}}  {describe_config(p)}" for n, p in configs.items()]
    degrade = list_configs("degrade")
    if degrade:
        lines.append(
            f"{'degrade/':<{width}}  degradation configs (kdsharp degrade --preset FILE, data.degradation): "
            + ", ".join(degrade)
        )
    folder = next(iter(configs.values())).parent
    lines.append(
        f"\nUse one by name (kdsharp train teacher --config teacher_quick), or copy one from {folder} "
        "and pass its path."
    )
    return "\n".join(lines)


__all__ = ["config_dirs", "describe_config", "format_configs", "list_configs", "resolve_config_path"]
