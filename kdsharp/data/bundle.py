"""Training bundles: clean crops plus pre-encoded codec pairs in one zip, for machines without FFmpeg.

A GPU machine often has no PyAV and no network. ``pack_bundle`` runs on a CPU machine that has
both: it cuts textured crops from the training sources, encodes a share of them through real
video codecs (x264/VP8/VP9/MPEG-4, with the rest of the call degradations around them) and
stores everything losslessly (WebP lossless) in a zip of bounded size. The GPU machine reads it
with the ``{type: bundle}`` training source (:mod:`kdsharp.data.sources`) and degrades the clean
crops further on the fly with OpenCV-only stages (blur, noise, JPEG/WebP, resizing).

Zip layout (all images uint8 RGB, stored as lossless WebP)::

    meta.json                    what was packed: sources, seed, counts, degradations, sizes
    train/clean/000123.webp      clean crops (crop x crop)
    train/pairs/000045_gt.webp   codec pairs: clean crop ...
    train/pairs/000045_lq.webp   ... and its degraded version, same size
    val/pairs/000007_{gt,lq}.webp  validation pairs (val crops, presets named in meta.json)

    info = pack_bundle(train_sources, "bundle.zip", val_sources=val_sources)   # kdsharp.data.pack
    clean, pairs = load_bundle("bundle.zip", part="train")
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np

from kdsharp.errors import ConfigError, InputError

FORMAT = "kdsharp-bundle/1"


# Codec pairs: the training family with a real video codec always on (what OpenCV cannot do).
def encode_lossless(img: np.ndarray) -> bytes:
    """uint8 HxWx3 RGB -> lossless WebP bytes."""
    ok, buf = cv2.imencode(".webp", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, 101])
    if not ok:  # pragma: no cover - OpenCV wheels always have WebP
        raise RuntimeError("OpenCV could not encode lossless WebP")
    return buf.tobytes()


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Encoded image bytes -> uint8 HxWx3 RGB; raises ValueError if undecodable."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{name} is not a decodable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_meta(path: str | Path) -> dict:
    """The ``meta.json`` of a bundle; raises :class:`InputError` if it is not one."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("meta.json"))
    except FileNotFoundError:
        raise InputError(path, "no such bundle", "pack one with `kdsharp train pack`") from None
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as e:
        raise InputError(
            path, f"is not a kdsharp training bundle ({type(e).__name__})", "pack one with `kdsharp train pack`"
        ) from e
    if meta.get("format") != FORMAT:
        raise InputError(
            path,
            f"has bundle format {meta.get('format')!r}, expected {FORMAT}",
            "re-pack it with this version of kdsharp",
        )
    return meta


def val_presets(path: str | Path) -> list[str]:
    """The degradation preset of each val pair of a bundle, in the order :func:`load_bundle` gives
    the pairs (sorted by pair key); empty for a bundle whose meta names none."""
    presets = read_meta(path).get("val") or {}
    return [str(presets[k]) for k in sorted(presets)]


def load_bundle(path: str | Path, part: str = "train") -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    """(clean crops, (lq, gt) pairs) of ``part`` (``train`` or ``val``) as uint8 HxWx3 RGB arrays."""
    if part not in ("train", "val"):
        raise ConfigError(f"bundle part must be 'train' or 'val', got {part!r}")
    path = Path(path)
    read_meta(path)
    clean: list[np.ndarray] = []
    pairs: dict[str, dict[str, np.ndarray]] = {}
    with zipfile.ZipFile(path) as zf:
        for name in sorted(zf.namelist()):
            if not name.startswith(f"{part}/"):
                continue
            try:
                img = decode_image(zf.read(name), name)
            except ValueError as e:
                raise InputError(path, f"holds a corrupt image ({e})", "re-pack the bundle") from e
            if name.startswith(f"{part}/clean/"):
                clean.append(img)
            elif name.startswith(f"{part}/pairs/"):
                key, which = Path(name).stem.rsplit("_", 1)
                pairs.setdefault(key, {})[which] = img
    complete = [(p["lq"], p["gt"]) for _, p in sorted(pairs.items()) if "lq" in p and "gt" in p]
    if len(complete) != len(pairs):
        raise InputError(path, "holds a pair without its partner", "re-pack the bundle")
    return clean, complete
