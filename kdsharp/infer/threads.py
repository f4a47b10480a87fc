"""CPU thread policy: how many threads the model uses, and waiting that does not burn shared cores.

On a video call the call app itself needs the cores. Thread pools that spin while waiting for
work (OpenMP's default, ONNX Runtime's default) collapse when another process holds a core:
each parallel region waits for its slowest thread, which is not running. kdsharp therefore

* waits passively: ``OMP_WAIT_POLICY=PASSIVE`` (set by the ``kdsharp`` command before torch is
  imported, unless the environment already sets it; a library user sets it before importing
  torch), and ONNX Runtime sessions without spinning;
* in the video pipeline and ``live`` runs frames on separate single-threaded workers rather than
  one frame on a thread team (:func:`kdsharp.infer.video.plan_workers`): no team to synchronise,
  so a busy core slows one worker instead of every layer of every frame;
* takes ``--threads N`` on ``sharpen``, ``live``, ``demo`` and ``eval``; the default is the
  number of cores this process may run on (:func:`default_threads`);
* keeps freed memory for reuse (:func:`keep_freed_memory`): every layer of a network allocates
  a fresh multi-megabyte tensor, which glibc serves with new ``mmap`` pages and hands back on
  free; the page faults cost 8-25 ms of system time per 1080p frame of ``fast`` (measured: 45 ms
  instead of 55-95 ms per frame on one core; in the video pipeline 5 800 page faults per frame
  before, about 1 100 after, and 3 instead of 12 ms of system time per frame).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from kdsharp.devices import available_cores  # torch-free, like this module

WAIT_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def passive_waiting() -> None:
    """Ask OpenMP for passive waiting (effective only before torch is imported; existing values win)."""
    for k, v in WAIT_ENV.items():
        os.environ.setdefault(k, v)


_MALLOC_TUNED = False


def keep_freed_memory() -> bool:
    """glibc: serve allocations up to 32 MiB from one heap and never trim it (``mallopt``), process-wide.

    Large tensors then reuse memory already mapped instead of faulting in fresh pages on every
    layer of every frame. The process keeps the peak of what it freed (tens to a few hundred MiB
    for video). A no-op returning False off glibc or when ``MALLOC_MMAP_THRESHOLD_`` is set.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
        ok = (
            libc.mallopt(m_mmap_threshold, 32 << 20) == 1
            and libc.mallopt(m_trim_threshold, 1 << 30) == 1
            # one arena: threads' own arenas shrink their heaps on free whatever the threshold
            and libc.mallopt(m_arena_max, 1) == 1
        )
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = bool(ok)
    return _MALLOC_TUNED


def default_threads() -> int:
    """Model threads when ``--threads`` is not given: ``KDSHARP_THREADS`` if set, else the available cores."""
    env = os.environ.get("KDSHARP_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return available_cores()


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads to ``threads`` (None: leave as is); returns the count in effect."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


_OPEN = [0]  # torch_threads blocks open now, in any thread (torch's thread count is process-wide)
_OPEN_LOCK = threading.Lock()


def threads_scoped() -> bool:
    """True while a :func:`torch_threads` block that sets a count is open (in any thread): the
    running work has its thread count set (e.g. a video pipeline's per-worker count), which a callee should keep."""
    return _OPEN[0] > 0


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Within the block torch and OpenCV (the full-resolution stage of ``student`` runs on OpenCV's
    filters) use ``threads`` intra-op threads (None: unchanged); restored after."""
    import cv2
    import torch

    old, old_cv = torch.get_num_threads(), cv2.getNumThreads()
    if threads:
        torch.set_num_threads(int(threads))
        cv2.setNumThreads(int(threads))
    step = 1 if threads else 0  # a block that sets nothing leaves callees free to set theirs
    with _OPEN_LOCK:
        _OPEN[0] += step
    try:
        yield
    finally:
        with _OPEN_LOCK:
            _OPEN[0] -= step
        torch.set_num_threads(old)
        cv2.setNumThreads(old_cv)
