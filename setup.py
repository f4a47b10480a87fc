"""Build hook (the project is configured in pyproject.toml): ship the repository's ``configs/``
inside the package as ``kdsharp/configs/``, so configs resolve by name outside a clone
(``kdsharp train teacher --config teacher_quick``; see ``kdsharp.configs``)."""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def copy_configs(src: Path, dst: Path) -> list[Path]:
    """Copy every ``*.yaml`` under ``src`` to the same place under ``dst``; returns the copies."""
    copied = []
    for f in sorted(src.rglob("*.yaml")):
        target = dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
        copied.append(target)
    return copied


class BuildPyWithConfigs(build_py):
    """``build_py`` that also copies ``configs/`` into the built package."""

    def run(self):
        super().run()
        if (ROOT / "configs").is_dir():
            copy_configs(ROOT / "configs", Path(self.build_lib) / "kdsharp" / "configs")


setup(cmdclass={"build_py": BuildPyWithConfigs})
