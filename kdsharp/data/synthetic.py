"""Procedurally generated clean images: sharp edges, text, shapes, gradients and textures.

Useful clean training data next to photos (video calls show faces AND shared screens), and fully
reproducible: ``synthetic_image(h, w, rng)`` draws with OpenCV (anti-aliased) from a numpy
Generator; ``synthetic_images(count, size, seed)`` makes a list; ``slide_image`` a "shared
screen" slide with a title, bullet text and a bar chart. Outputs are uint8 HxWx3 RGB.
"""

from __future__ import annotations

import string

import cv2
import numpy as np

from kdsharp.errors import ConfigError

_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
)
_CHARS = string.ascii_letters + string.digits + "     .,:-+%()"


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(c) for c in rng.integers(0, 256, 3))
    return r, g, b


def _word(rng: np.random.Generator, lo: int = 3, hi: int = 14) -> str:
    return "".join(rng.choice(list(_CHARS), int(rng.integers(lo, hi + 1)))).strip() or "kdsharp"


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    kind = int(rng.integers(0, 5))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = np.array(_color(rng), np.float32), np.array(_color(rng), np.float32)
    if kind == 0:  # linear gradient at a random angle
        a = rng.uniform(0, 2 * np.pi)
        t = np.cos(a) * xx + np.sin(a) * yy
        t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    elif kind == 1:  # radial gradient
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        t = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        t = t / max(float(t.max()), 1.0)
    elif kind == 2:  # smooth random texture (value noise)
        cells = rng.uniform(0, 1, (int(rng.integers(3, 9)), int(rng.integers(3, 9)))).astype(np.float32)
        t = cv2.resize(cells, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    elif kind == 3:  # rotated stripes or checkerboard
        period = rng.uniform(4, 24)
        a = rng.uniform(0, np.pi)
        u = np.cos(a) * xx + np.sin(a) * yy
        v = -np.sin(a) * xx + np.cos(a) * yy
        t = ((u // period) % 2).astype(np.float32)
        if rng.random() < 0.5:
            t = (t + (v // period) % 2) % 2
    else:  # flat, like a slide or a wall
        t = np.zeros((h, w), np.float32)
    img = c0 + t[..., None] * (c1 - c0)
    return np.clip(img, 0, 255).astype(np.uint8)


def _texture_patch(img: np.ndarray, rng: np.random.Generator) -> None:
    """Paste a rectangle of fine texture (high-frequency noise or fine stripes) in place."""
    h, w = img.shape[:2]
    ph, pw = int(rng.integers(h // 8 + 1, h // 2 + 2)), int(rng.integers(w // 8 + 1, w // 2 + 2))
    y, x = int(rng.integers(0, max(1, h - ph))), int(rng.integers(0, max(1, w - pw)))
    ph, pw = min(ph, h - y), min(pw, w - x)
    if rng.random() < 0.5:
        noise = rng.uniform(0, 1, (max(1, ph // 2), max(1, pw // 2))).astype(np.float32)
        t = cv2.resize(noise, (pw, ph), interpolation=cv2.INTER_LINEAR)
    else:
        period = rng.uniform(2.0, 6.0)
        a = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
        t = 0.5 + 0.5 * np.sin((np.cos(a) * xx + np.sin(a) * yy) * 2 * np.pi / period)
    c0, c1 = np.array(_color(rng), np.float32), np.array(_color(rng), np.float32)
    img[y : y + ph, x : x + pw] = np.clip(c0 + t[..., None] * (c1 - c0), 0, 255).astype(np.uint8)


def _shape(img: np.ndarray, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    s = min(h, w)
    col, aa = _color(rng), cv2.LINE_AA
    thick = -1 if rng.random() < 0.5 else int(rng.integers(1, max(2, s // 40) + 1))
    pt = lambda: (int(rng.integers(0, w)), int(rng.integers(0, h)))  # noqa: E731
    kind = int(rng.integers(0, 6))
    if kind == 0:
        cv2.rectangle(img, pt(), pt(), col, thick, aa)
    elif kind == 1:
        cv2.circle(img, pt(), int(rng.integers(2, s // 4 + 3)), col, thick, aa)
    elif kind == 2:
        axes = (int(rng.integers(2, s // 3 + 3)), int(rng.integers(2, s // 5 + 3)))
        cv2.ellipse(img, pt(), axes, float(rng.uniform(0, 180)), 0, 360, col, thick, aa)
    elif kind == 3:
        poly = np.array([pt() for _ in range(int(rng.integers(3, 7)))], np.int32)
        if thick < 0:
            cv2.fillPoly(img, [poly], col, aa)
        else:
            cv2.polylines(img, [poly], True, col, thick, aa)
    elif kind == 4:
        cv2.line(img, pt(), pt(), col, int(rng.integers(1, max(2, s // 50) + 1)), aa)
    else:
        _text(img, rng)


def _text(img: np.ndarray, rng: np.random.Generator, color=None) -> None:
    h, w = img.shape[:2]
    font = _FONTS[int(rng.integers(0, len(_FONTS)))]
    scale = float(rng.uniform(0.3, 1.6)) * min(h, w) / 256
    thick = int(rng.integers(1, 3))
    org = (int(rng.integers(0, max(1, w - 20))), int(rng.integers(12, max(13, h))))
    cv2.putText(img, _word(rng), org, font, max(scale, 0.3), color or _color(rng), thick, cv2.LINE_AA)


def synthetic_image(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """One uint8 HxWx3 RGB image: a background, textured patches, shapes and text."""
    if rng.random() < 0.15:
        return slide_image(h, w, rng)
    img = _background(h, w, rng)
    for _ in range(int(rng.integers(0, 3))):
        _texture_patch(img, rng)
    for _ in range(int(rng.integers(4, 16))):
        _shape(img, rng)
    for _ in range(int(rng.integers(1, 5))):
        _text(img, rng)
    return img


def slide_image(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A "shared screen" slide: plain background, title, bullet lines and a small bar chart."""
    dark = rng.random() < 0.3
    bg = np.array((30, 34, 40) if dark else (250, 250, 247), np.uint8)
    ink = (235, 235, 235) if dark else (20, 24, 30)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bg
    s = min(h, w) / 384
    cv2.putText(
        img,
        _word(rng, 6, 18),
        (int(16 * s), int(40 * s)),
        cv2.FONT_HERSHEY_DUPLEX,
        1.0 * s,
        _color(rng),
        max(1, int(2 * s)),
        cv2.LINE_AA,
    )
    y = int(80 * s)
    while y < h * 0.9:
        cv2.circle(img, (int(24 * s), y - int(5 * s)), max(1, int(3 * s)), ink, -1, cv2.LINE_AA)
        line = " ".join(_word(rng, 2, 9) for _ in range(int(rng.integers(2, 5))))
        cv2.putText(img, line, (int(36 * s), y), cv2.FONT_HERSHEY_SIMPLEX, 0.55 * s, ink, 1, cv2.LINE_AA)
        y += int(rng.integers(22, 34) * s)
    x0, base = int(w * 0.62), int(h * 0.85)
    bar_w = max(2, int(w * 0.05))
    for i in range(int(rng.integers(3, 6))):
        top = int(base - rng.uniform(0.1, 0.5) * h)
        cv2.rectangle(img, (x0 + i * (bar_w + 4), top), (x0 + i * (bar_w + 4) + bar_w, base), _color(rng), -1)
    cv2.line(img, (x0 - 4, base), (w - 8, base), ink, 1, cv2.LINE_AA)
    return img


def synthetic_images(count: int, size: int | tuple[int, int] | list[int] = 256, seed: int = 0) -> list[np.ndarray]:
    """``count`` reproducible images of ``size`` (an int for squares or ``[h, w]``)."""
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if count < 1 or h < 8 or w < 8:
        raise ConfigError(f"synthetic source: count must be >= 1 and size >= 8, got count={count}, size={size}")
    return [synthetic_image(h, w, np.random.default_rng([seed, i])) for i in range(count)]
