"""Seeded, configurable degradations of clean RGB frames into video-call-like inputs.

    from kdsharp.data.degrade import Degrader, degrade
    lq = Degrader("lowbw")(clean_rgb_uint8, rng=7)      # HxWx3 uint8 RGB -> same shape/dtype
    lq_clip = Degrader("mixed").clip(frames, rng=7)    # one draw of parameters for the whole clip
    lq = degrade(clean_rgb_uint8, preset="h264", seed=0)

Each pass runs blur -> noise -> JPEG -> downscale -> video codec -> upscale (see
:mod:`kdsharp.data.config` for the schema and the presets). A clip gets the same parameters on
every frame (noise is redrawn per frame, as a sensor's is) and the codec runs across the clip.
The first pass always applies at least one stage (it is redrawn when every stage was skipped).
Numpy, OpenCV and PyAV only: no torch here. The same seed gives the same output.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from kdsharp.console import warn
from kdsharp.data.codecs import IMAGE_CODECS, has_encoder, image_roundtrip, jpeg_roundtrip, video_roundtrip
from kdsharp.data.config import PRESETS, list_presets, load_degrade_config, merge
from kdsharp.data.kernels import apply_kernel, random_kernel

__all__ = ["Degrader", "degrade", "PRESETS", "list_presets", "load_degrade_config", "as_rng"]

_INTERP = {
    "area": cv2.INTER_AREA,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
    "lanczos": cv2.INTER_LANCZOS4,
}
_warned_codecs: set[str] = set()


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A numpy Generator from a seed (int / None) or the Generator itself."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _u(rng: np.random.Generator, lo_hi) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _pick(rng: np.random.Generator, weights: dict[str, float]):
    names = list(weights)
    p = np.array([float(weights[n]) for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


# ----------------------------------------------------------------------------- stage operations
def add_gaussian_noise(img: np.ndarray, sigma: float, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """uint8 HxWx3 + N(0, sigma/255) noise, per channel or one grey field; same shape/dtype."""
    shape = img.shape[:2] + ((1,) if gray else (img.shape[2],))
    noisy = img.astype(np.float32) + rng.normal(0.0, sigma, shape).astype(np.float32)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def add_poisson_noise(img: np.ndarray, peak: float, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """Shot noise: photon counts ~ Poisson(x * peak) with x in [0,1]; on luminance if ``gray``."""
    x = img.astype(np.float32) / 255.0
    if gray:
        y = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        noise = rng.poisson(y * peak).astype(np.float32) / peak - y
    else:
        noise = rng.poisson(x * peak).astype(np.float32) / peak - x
    return np.clip((x + noise) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def resize(img: np.ndarray, size_wh: tuple[int, int], interpolation: str) -> np.ndarray:
    """cv2.resize to (w, h) with a named interpolation (area, bilinear, bicubic, nearest, lanczos)."""
    return cv2.resize(img, size_wh, interpolation=_INTERP[interpolation])


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    return cv2.warpAffine(
        img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )


def _usable_codecs(codec_cfg: dict) -> dict[str, float]:
    """The codec weights of a codec-stage config that can encode here; warns once per missing codec."""
    usable = {k: w for k, w in codec_cfg["codecs"].items() if float(w) > 0 and has_encoder(k)}
    if codec_cfg["prob"] > 0:
        for missing in sorted(set(codec_cfg["codecs"]) - set(usable) - _warned_codecs):
            if float(codec_cfg["codecs"][missing]) > 0:
                _warned_codecs.add(missing)
                warn(f"video codec '{missing}' is not available here (no PyAV/FFmpeg encoder); it is skipped")
    return usable


# ----------------------------------------------------------------------------- the pipeline
class Degrader:
    """Draws degradation parameters from a config and applies them to frames.

    Args:
        config: a preset name (``list_presets()``), a YAML path, or a config dict (see
            :func:`kdsharp.data.config.load_degrade_config`).
    Call ``degrader(img, rng)`` for one uint8 HxWx3 RGB image, ``degrader.clip(frames, rng)`` for a
    clip; ``rng`` is a seed or a ``np.random.Generator`` (which is advanced).
    """

    def __init__(self, config: str | Path | dict | None = "mixed"):
        self.name = str(config) if isinstance(config, (str, Path)) else "custom"
        self.config = load_degrade_config(config)
        second = {k: v for k, v in self.config["second_order"].items() if k != "prob"}
        base = {k: v for k, v in self.config.items() if k != "second_order"}
        self._passes = [base, merge(base, second)]  # the second pass: first-pass config + overrides
        self._second_prob = float(self.config["second_order"].get("prob", 0.0))
        for cfg in self._passes:  # warn here, once, not in every DataLoader worker
            _usable_codecs(cfg["codec"])

    def __repr__(self) -> str:
        return f"Degrader({self.name!r})"

    # -- sampling
    def sample(self, rng: np.random.Generator | int | None) -> list[dict]:
        """Draw the parameters of every pass and stage; a list (one dict per pass) of stage params."""
        rng = as_rng(rng)
        plan = [self._sample_pass(self._passes[0], rng)]
        any_on = any(self._passes[0][s]["prob"] > 0 for s in ("blur", "noise", "jpeg", "resize", "codec"))
        for _ in range(1000 if any_on else 0):  # an input equal to its target teaches nothing, breaks PSNR means
            if plan[0]:
                break
            plan = [self._sample_pass(self._passes[0], rng)]
        if rng.random() < self._second_prob:
            plan.append(self._sample_pass(self._passes[1], rng))
        return plan

    def _sample_pass(self, cfg: dict, rng: np.random.Generator) -> dict:
        p: dict = {}
        if rng.random() < cfg["blur"]["prob"]:
            kernel, params = random_kernel(cfg["blur"], rng)
            p["blur"] = dict(params, kernel=kernel)
        c = cfg["noise"]
        if rng.random() < c["prob"]:
            gray = bool(rng.random() < c["gray_prob"])
            if rng.random() < c["gaussian_prob"]:
                p["noise"] = {"kind": "gaussian", "sigma": _u(rng, c["sigma"]), "gray": gray}
            else:
                lo, hi = np.log(c["poisson_peak"])
                p["noise"] = {"kind": "poisson", "peak": float(np.exp(rng.uniform(lo, hi))), "gray": gray}
            p["noise"]["seed"] = int(rng.integers(2**62))
        if rng.random() < cfg["jpeg"]["prob"]:
            lo, hi = cfg["jpeg"]["quality"]
            p["jpeg"] = {"quality": int(rng.integers(lo, hi + 1))}
        c = cfg["resize"]
        if rng.random() < c["prob"]:
            p["resize"] = {
                "scale": _u(rng, c["scale"]),
                "down": str(rng.choice(c["down"])),
                "up": str(rng.choice(c["up"])),
            }
        c = cfg["codec"]
        if rng.random() < c["prob"]:
            usable = _usable_codecs(c)
            if usable:
                codec = _pick(rng, usable)
                lo, hi = c["temporal_frames"]
                n = 1 if codec in IMAGE_CODECS else int(rng.integers(lo, hi + 1))
                s = float(c["temporal_shift"])
                p["codec"] = {
                    "codec": codec,
                    "crf": _u(rng, c["crf"]),
                    "preset": str(rng.choice(c["presets"])),
                    "profile": str(rng.choice(c["profiles"])) if codec == "libx264" else None,
                    "shifts": [(float(rng.uniform(-s, s)), float(rng.uniform(-s, s))) for _ in range(n - 1)],
                }
        return p

    # -- applying
    def apply(self, frames: list[np.ndarray], plan: list[dict]) -> list[np.ndarray]:
        """Apply a :meth:`sample` plan to uint8 HxWx3 RGB frames; returns new frames, same shapes."""
        for p in plan:
            frames = self._apply_pass(frames, p)
        return frames

    def _apply_pass(self, frames: list[np.ndarray], p: dict) -> list[np.ndarray]:
        h, w = frames[0].shape[:2]
        if "blur" in p:
            frames = [apply_kernel(f, p["blur"]["kernel"]) for f in frames]
        if "noise" in p:
            n = p["noise"]
            nrng = np.random.default_rng(n["seed"])
            if n["kind"] == "gaussian":
                frames = [add_gaussian_noise(f, n["sigma"], n["gray"], nrng) for f in frames]
            else:
                frames = [add_poisson_noise(f, n["peak"], n["gray"], nrng) for f in frames]
        if "jpeg" in p:
            frames = [jpeg_roundtrip(f, p["jpeg"]["quality"]) for f in frames]
        if "resize" in p:
            r = p["resize"]
            small = (max(2, int(round(w / r["scale"]))), max(2, int(round(h / r["scale"]))))
            frames = [resize(f, small, r["down"]) for f in frames]
        if "codec" in p:
            c = p["codec"]
            if c["codec"] in IMAGE_CODECS:  # a still-image codec on each (downscaled) frame
                frames = [image_roundtrip(f, c["codec"], c["crf"]) for f in frames]
            elif len(frames) == 1 and c["shifts"]:  # pseudo-clip: camera jitter, then the real frame last
                clip = [_shift(frames[0], dx, dy) for dx, dy in c["shifts"]] + frames
                frames = video_roundtrip(clip, c["codec"], c["crf"], c["preset"], c["profile"])[-1:]
            else:
                frames = video_roundtrip(frames, c["codec"], c["crf"], c["preset"], c["profile"])
        if "resize" in p:
            frames = [resize(f, (w, h), p["resize"]["up"]) for f in frames]
        return frames

    def clip(self, frames: list[np.ndarray], rng: np.random.Generator | int | None) -> list[np.ndarray]:
        """Degrade a clip (list of uint8 HxWx3 RGB frames of one size) with one parameter draw."""
        if not frames:
            return []
        shape = frames[0].shape
        for f in frames:
            if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3 or f.shape != shape:
                raise ValueError(f"frames must be uint8 HxWx3 of one size, got {f.dtype} {f.shape} (first {shape})")
        return self.apply([np.ascontiguousarray(f) for f in frames], self.sample(rng))

    def __call__(self, img: np.ndarray, rng: np.random.Generator | int | None) -> np.ndarray:
        """Degrade one uint8 HxWx3 RGB image; same shape and dtype."""
        return self.clip([img], rng)[0]


@lru_cache(maxsize=16)
def _cached(preset: str) -> Degrader:
    return Degrader(preset)


def degrade(img: np.ndarray, preset: str = "mixed", seed: int | None = 0) -> np.ndarray:
    """Degrade uint8 HxWx3 RGB ``img`` with a named preset (or YAML path) and a seed."""
    return _cached(str(preset))(img, seed)
