"""Synthetic video-call clips for speed benchmarks and tests, written frame by frame (never all in memory).

    write_call_clip("call1080p.mp4", size=(1920, 1080), seconds=10, kind="pan")      # everything moves
    write_call_clip("talk720p.mp4", size=(1280, 720), seconds=10, kind="talking")    # static room, moving person
    write_call_clip("cam720p.mp4", size=(1280, 720), kind="talking", noise=2.0, crf=12)  # as a webcam records it

``pan`` is a slow pan and zoom over the built-in portrait (every pixel changes every frame: the
worst case for temporal reuse). ``talking`` is a talking-head-like call: a static, soft room
background with a person (the portrait, in an elliptical cut-out) swaying and nodding in the
centre. Both are soft like an upscaled call picture, carry a 440 Hz AAC tone as audio and are
encoded with H.264 (CRF 20 by default).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from kdsharp.errors import KdsharpError

KINDS = ("pan", "talking")


def _sample(name: str) -> np.ndarray:
    from kdsharp.data import sample_paths
    from kdsharp.io.images import read_rgb

    paths = sample_paths()
    return read_rgb(next((p for p in paths if name in p.name), paths[0]))


def _soft_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Cover ``size`` (w, h) with ``img`` (centre crop), upscaled softly like a received call picture."""
    w, h = size
    ih, iw = img.shape[:2]
    k = max(w / iw, h / ih)
    big = cv2.resize(img, (int(np.ceil(iw * k)), int(np.ceil(ih * k))), interpolation=cv2.INTER_CUBIC)
    y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w])


class _Pan:
    def __init__(self, size: tuple[int, int], frames: int):
        self.image = _sample("astronaut")
        self.size, self.frames = size, frames

    def frame(self, i: int) -> np.ndarray:
        from kdsharp.infer.demo import pan_zoom_frame

        return pan_zoom_frame(self.image, i, self.frames, self.size)


class _Talking:
    """Static background; an elliptical portrait cut-out in the centre sways and nods."""

    def __init__(self, size: tuple[int, int], frames: int, fps: float):
        w, h = size
        self.size, self.fps = size, fps
        room = _soft_resize(_sample("coffee"), size)
        self.background = cv2.GaussianBlur(room, (0, 0), max(1.0, w / 640))  # defocused room
        ph = int(h * 0.62) // 2 * 2
        pw = int(ph * 0.8) // 2 * 2
        self.person = _soft_resize(_sample("astronaut")[10:300, 40:300], (pw, ph))
        yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
        ell = ((xx - pw / 2) / (pw / 2)) ** 2 + ((yy - ph / 2) / (ph / 2)) ** 2
        self.alpha = cv2.GaussianBlur(np.clip((1.0 - ell) * 8, 0, 1), (0, 0), 3)[..., None]

    def frame(self, i: int) -> np.ndarray:
        w, h = self.size
        t = i / self.fps
        ph, pw = self.person.shape[:2]
        dx = 0.03 * w * np.sin(2 * np.pi * 0.25 * t)  # sway
        dy = 0.01 * h * np.sin(2 * np.pi * 0.6 * t)  # nod
        ang = 2.0 * np.sin(2 * np.pi * 0.2 * t)  # tilt (degrees)
        cx, cy = w / 2 + dx, h * 0.58 + dy
        m = cv2.getRotationMatrix2D((pw / 2, ph / 2), ang, 1.0)
        m[:, 2] += (cx - pw / 2, cy - ph / 2)
        person = cv2.warpAffine(self.person, m, (w, h), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(self.alpha, m, (w, h), flags=cv2.INTER_LINEAR)[..., None]
        x0, x1 = int(max(0, cx - pw)), int(min(w, cx + pw))  # blend only where the person can be
        y0, y1 = int(max(0, cy - ph)), int(min(h, cy + ph))
        out = self.background.copy()
        a = alpha[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = (a * person[y0:y1, x0:x1] + (1 - a) * out[y0:y1, x0:x1] + 0.5).astype(np.uint8)
        return out


def write_call_clip(
    path: str | Path,
    size: tuple[int, int] = (1920, 1080),
    seconds: float = 10.0,
    fps: float = 30.0,
    kind: str = "pan",
    crf: int = 20,
    preset: str = "medium",
    audio: bool = True,
    noise: float = 0.0,
) -> Path:
    """Write a synthetic call clip (H.264, ``kind`` 'pan' or 'talking', optional AAC tone); returns ``path``.

    ``noise``: standard deviation (levels, 0-255) of fresh Gaussian noise on every frame, as a webcam's
    sensor adds (keep ``crf`` low, e.g. 12, or the encoder smooths most of it away)."""
    from kdsharp.io.video import VideoWriter, sine_tone

    if kind not in KINDS:
        raise KdsharpError(f"unknown clip kind '{kind}' (use one of: {', '.join(KINDS)})")
    frames = max(1, int(round(seconds * fps)))
    maker = _Pan(size, frames) if kind == "pan" else _Talking(size, frames, fps)
    tone = sine_tone(frames / fps) if audio else None
    rng = np.random.default_rng(0)
    with VideoWriter(path, size[0], size[1], fps, crf=crf, preset=preset, audio_tone=tone) as vw:
        for i in range(frames):
            frame = maker.frame(i)
            if noise > 0:
                frame = cv2.add(frame, rng.normal(0, noise, frame.shape), dtype=cv2.CV_8U)
            vw.write(frame)
    return Path(path)
