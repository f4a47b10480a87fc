"""Device names -> ``torch.device``, in one place: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.

Inference, evaluation, benchmarks and training all accept these names and check them here, so a
missing GPU is the same clear error everywhere.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from kdsharp.errors import KdsharpError

if TYPE_CHECKING:  # torch loads on the first device resolved: the thread policy reads cores before it
    import torch

DEVICE_NAMES = "auto, cpu, cuda or cuda:N"


def resolve_device(device: str | torch.device | None = "auto", local_rank: int | None = None) -> torch.device:
    """The ``torch.device`` a name means, checked.

    ``'auto'`` (or None) is CUDA when PyTorch sees a GPU, else the CPU. With ``local_rank`` (a
    distributed run) a CUDA device without an index gets GPU ``local_rank`` (modulo the count).

    Raises:
        KdsharpError: an unknown name, CUDA asked for where PyTorch sees no GPU, or a GPU index
            beyond those present.
    """
    import torch

    if device is None or str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise KdsharpError(f"unknown device '{device}' (use {DEVICE_NAMES})") from e
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise KdsharpError(
            f"device={device}: no CUDA GPU is available to PyTorch (run on the CPU: use device=cpu or device=auto)",
            params=["device"],
        )
    count = torch.cuda.device_count()
    if dev.index is None and local_rank is not None:
        return torch.device("cuda", local_rank % max(1, count))
    if dev.index is not None and dev.index >= count:
        raise KdsharpError(
            f"device={device}: this machine has {count} CUDA GPU(s), numbered from 0 (use device=cuda:0)",
            params=["device"],
        )
    return dev


def _onednn_may_use_bf16() -> bool:
    """False when ``ONEDNN_MAX_CPU_ISA`` caps oneDNN below its first bfloat16 instruction set
    (``AVX2``, ``AVX512_CORE``, ``AVX512_CORE_VNNI``...: it would then emulate bf16)."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return isa in ("", "ALL", "DEFAULT") or any(k in isa for k in ("BF16", "FP16", "AMX", "AVX10"))


def cpu_info_fields() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (``'model name'``, ``'cpu family'``, ``'model'``,
    ``'flags'``, ...); {} where it cannot be read."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    if fields:  # the end of the first processor's block
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 in hardware (``avx512_bf16`` or ``amx_bf16`` in
    /proc/cpuinfo: AMD Zen 4, Intel Cooper Lake and Sapphire Rapids on) and oneDNN may use it
    (no ``ONEDNN_MAX_CPU_ISA`` below it); elsewhere oneDNN would emulate it, slower than float32.
    False where /proc/cpuinfo cannot be read."""
    if not _onednn_may_use_bf16():
        return False
    flags = cpu_info_fields().get("flags", "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


__all__ = ["DEVICE_NAMES", "available_cores", "cpu_has_native_bf16", "cpu_info_fields", "resolve_device"]
