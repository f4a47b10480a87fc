"""Packing a training bundle (the format: :mod:`kdsharp.data.bundle`) from training sources.

Runs on a CPU machine with PyAV: textured crops are cut from the sources, a share of them is
passed through real video codecs, and everything is stored losslessly in a zip of bounded size.

    info = pack_bundle(train_sources, "bundle.zip", val_sources=val_sources)
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from kdsharp.console import info, progress, warn
from kdsharp.data.bundle import FORMAT, encode_lossless
from kdsharp.data.degrade import Degrader
from kdsharp.data.sources import load_sources, source_list, warn_small_images, warn_test_split
from kdsharp.errors import ConfigError, OutputError
from kdsharp.io.atomic import atomic_path, check_target

# a stored zip entry's local header (30 bytes) and central-directory record (46), each with its name;
# the end records (22, zip64: +76)
ZIP_ENTRY_BYTES, ZIP_END_BYTES = 30 + 46, 22 + 76

PAIR_DEGRADATION = {
    "preset": "wide",
    "codec": {"prob": 1.0, "codecs": {"libx264": 0.6, "libvpx": 0.15, "libvpx-vp9": 0.15, "mpeg4": 0.1}},
}


@dataclass
class BundleInfo:
    """What :func:`pack_bundle` wrote."""

    path: Path
    clean: int = 0
    pairs: int = 0
    val: int = 0
    bytes: int = 0
    counts_by_source: dict = field(default_factory=dict)


def texture(img: np.ndarray) -> float:
    """Mean absolute luma gradient of uint8 RGB ``img`` (levels per px): ~0 flat, >10 detailed."""
    y = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(np.diff(y, axis=0)).mean() + np.abs(np.diff(y, axis=1)).mean()) / 2


def sample_crops(
    images: list[np.ndarray],
    weights: list[float],
    count: int,
    crop: int,
    rng: np.random.Generator,
    min_texture: float = 2.0,
    flat_keep: float = 0.2,
    min_scale: float = 0.5,
):
    """``count`` (image index, crop) tuples drawn with ``weights``; flat crops (texture below
    ``min_texture``; 0: none) are kept with probability ``flat_keep`` only. Crops are ``crop`` px
    squares, taken at a random scale (``min_scale``-1x of the image when it is large enough; 1: the
    image's own scale)."""
    p = np.asarray(weights, np.float64)
    p = p / p.sum()
    out: list[tuple[int, np.ndarray]] = []
    tries = 0
    while len(out) < count and tries < count * 20:
        tries += 1
        idx = int(rng.choice(len(images), p=p))
        img = images[idx]
        h, w = img.shape[:2]
        if min(h, w) < crop:
            continue
        size = int(crop / rng.uniform(max(min_scale, crop / min(h, w)), 1.0))
        size = min(size, h, w)
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        c = img[y : y + size, x : x + size]
        if size != crop:
            c = cv2.resize(c, (crop, crop), interpolation=cv2.INTER_AREA)
        if texture(c) < min_texture and rng.random() > flat_keep:
            continue
        out.append((idx, np.ascontiguousarray(c)))
    return out


def _check_sizes(max_mb: float, **counts) -> None:
    """ConfigError naming the first bundle setting of ``counts`` that is not an integer in range
    (crop, val_size: >= 8 px; clean, pairs, val, seed: >= 0), or a ``max_mb`` that is not > 0."""
    for key, value in counts.items():
        least = 8 if key in ("crop", "val_size") else 0
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"bundle setting {key}: {value!r} is not an integer >= {least}")
    if not isinstance(max_mb, (int, float)) or isinstance(max_mb, bool) or not max_mb > 0:
        raise ConfigError(f"bundle setting max_mb: {max_mb!r} is not a number of MB > 0")


def _flatten(sources) -> tuple[list[np.ndarray], list[float], list[str]]:
    images, weights, names = [], [], []
    for src in sources:
        for i, img in enumerate(src.images):
            images.append(img)
            weights.append(src.repeat)
            names.append(f"{src.name}:{src.names[i] if i < len(src.names) else i}")
    if not images:
        raise ConfigError("the bundle's sources hold no clean image")
    return images, weights, names


def pack_bundle(
    sources: list[dict],
    out: str | Path,
    *,
    val_sources: list[dict] | None = None,
    crop: int = 192,
    clean: int = 1200,
    pairs: int = 600,
    val: int = 48,
    val_size: int = 256,
    val_presets: tuple[str, ...] = ("lowbw", "defocus", "h264"),
    max_mb: float = 40.0,
    pair_degradation: dict | str | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> BundleInfo:
    """Pack a training bundle (see the module docstring) at ``out`` (a .zip, written atomically).

    Args:
        sources / val_sources: training-source dicts (:mod:`kdsharp.data.sources`); ``repeat``
            weights the crops drawn from each. Validation pairs come from ``val_sources`` only.
        crop: clean/pair crop size in px; clean, pairs, val: how many of each.
        max_mb: the zip's size limit (a hard one: packing stops before the training crop that would
            pass it, headers and ``meta.json`` counted).
        pair_degradation: the degradation of the codec pairs (default :data:`PAIR_DEGRADATION`).
        overwrite: replace an existing file at ``out`` (else that is an error, before any work).
    """
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise ConfigError(f"a bundle is a .zip file, got {out}")
    if out.is_dir():  # found now, not when the finished zip is moved there
        raise OutputError(out, "is a folder", "give the bundle's file path, e.g. bundle.zip")
    for key, specs in (("sources", sources), ("val_sources", val_sources)):
        for i, spec in enumerate(source_list(specs)):
            if isinstance(spec, dict) and spec.get("path") and Path(spec["path"]).resolve() == out.resolve():
                raise OutputError(out, f"is an input of the bundle ({key}[{i}])", "write the bundle to another file")
    check_target(out, overwrite, folder_checked=True)  # an existing bundle is kept unless overwrite=True
    _check_sizes(crop=crop, val_size=val_size, clean=clean, pairs=pairs, val=val, seed=seed, max_mb=max_mb)
    warn_test_split(sources, "sources")
    warn_test_split(val_sources, "val_sources")
    rng = np.random.default_rng(seed)
    loaded = load_sources(sources)
    images, weights, names = _flatten(loaded)
    if max(min(img.shape[:2]) for img in images) < crop:
        raise ConfigError(f"crop {crop} px is larger than every training image: lower crop or add larger images")
    warn_small_images(loaded, crop, "crop", "are left out")
    if val and not val_sources:
        warn(f"val: {val} but no val_sources: the bundle gets no validation pairs (the pipeline needs them)")
    degrader = Degrader(pair_degradation or PAIR_DEGRADATION)
    limit = int(max_mb * 1024 * 1024)
    bundle = BundleInfo(path=out)
    meta: dict = {
        "format": FORMAT,
        "seed": seed,
        "crop": crop,
        "sources": sources,
        "val_sources": val_sources,
        "corpus_manifests": _manifest_hashes(list(sources) + list(val_sources or [])),
        "pair_degradation": degrader.config,
        "val_presets": list(val_presets),
        "val_size": val_size,
        "val_crops": "uniform: no texture preference, native scale",
        "pairs": {},
        "val": {},
    }
    used = ZIP_END_BYTES  # the zip's size so far, once closed (meta.json aside)

    def cost(name: str, data: bytes) -> int:
        return len(data) + ZIP_ENTRY_BYTES + 2 * len(name.encode())

    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:

        def add(name: str, img: np.ndarray | bytes) -> None:
            nonlocal used
            data = img if isinstance(img, bytes) else encode_lossless(img)
            zf.writestr(name, data)
            bundle.bytes += len(data)
            used += cost(name, data)

        if val_sources and val:
            v_loaded = load_sources(val_sources)
            v_images, v_weights, _ = _flatten(v_loaded)
            warn_small_images(v_loaded, val_size, "val_size", "are left out")
            # as the photos come (no preference for texture, their own scale), like `kdsharp eval`'s
            # whole photos: textured, downscaled crops favoured sharpening over deblocking in selection
            v_crops = sample_crops(
                v_images, v_weights, val, val_size, np.random.default_rng([seed, 1]), min_texture=0.0, min_scale=1.0
            )
            if not v_crops:
                raise ConfigError(
                    f"val_size {val_size} px is larger than every validation image: lower val_size "
                    "(the val photos are used at their own scale)"
                )
            val_degraders = {p: Degrader(p) for p in val_presets}  # built once, not per crop
            for i, (_, gt) in enumerate(v_crops):
                preset = val_presets[i % len(val_presets)]
                lq = val_degraders[preset](gt, np.random.default_rng([seed, 2, i]))
                add(f"val/pairs/{i:06d}_gt.webp", gt)
                add(f"val/pairs/{i:06d}_lq.webp", lq)
                meta["val"][f"{i:06d}"] = preset
            bundle.val = len(v_crops)
        # interleave clean crops and pairs so that a size limit keeps both in proportion
        total = clean + pairs
        kinds = np.array([0] * clean + [1] * pairs)
        rng.shuffle(kinds)
        crops = sample_crops(images, weights, total, crop, rng)
        if len(crops) < total:
            warn(f"only {len(crops)} of {total} training crops found: most images are smaller than crop {crop} px")
        # meta.json at its largest: every source counted, counts of 10 digits (the pairs are added below)
        sources_seen = {n.rsplit(":", 1)[0]: 10**9 for n in names}
        counts = {"clean": 10**9, "pairs": 10**9, "val": 10**9}
        meta_bytes = cost("meta.json", _meta_json({**meta, "counts": counts, "counts_by_source": sources_seen}))
        with progress("crops") as bar:
            task = bar.add_task(f"bundle {out.name}", total=len(crops))
            for kind, (idx, gt) in zip(kinds, crops, strict=False):  # fewer crops: most images too small
                if kind == 0:
                    entries = [(f"train/clean/{bundle.clean:06d}.webp", encode_lossless(gt))]
                    described = None
                else:
                    plan = degrader.sample(rng)
                    lq = degrader.apply([gt], plan)[0]
                    key = f"{bundle.pairs:06d}"
                    entries = [
                        (f"train/pairs/{key}_{s}.webp", encode_lossless(im)) for s, im in (("gt", gt), ("lq", lq))
                    ]
                    described = _describe(plan)
                    entry = _meta_json({key: described})  # its lines get one more space of indent in meta.json
                    meta_bytes += len(entry) + 2 * entry.count(b"\n") + 2
                if used + meta_bytes + sum(cost(n, d) for n, d in entries) > limit:
                    info(
                        f"bundle reached its {max_mb:g} MB limit: stopping at {bundle.clean} clean crops "
                        f"and {bundle.pairs} pairs"
                    )
                    break
                for name, data in entries:
                    add(name, data)
                if described is None:
                    bundle.clean += 1
                else:
                    meta["pairs"][key] = described
                    bundle.pairs += 1
                src = names[idx].rsplit(":", 1)[0]
                bundle.counts_by_source[src] = bundle.counts_by_source.get(src, 0) + 1
                bar.advance(task)
        if not bundle.clean + bundle.pairs:
            raise ConfigError(
                f"the bundle holds no training crop (clean {clean}, pairs {pairs}, max_mb {max_mb:g} with "
                f"{bundle.bytes / 2**20:.2f} MB of val pairs): raise clean/pairs or max_mb"
            )
        meta.update(
            counts={"clean": bundle.clean, "pairs": bundle.pairs, "val": bundle.val},
            counts_by_source=bundle.counts_by_source,
        )
        zf.writestr("meta.json", _meta_json(meta))
    bundle.bytes = out.stat().st_size
    return bundle


def _meta_json(meta: dict) -> bytes:
    """``meta.json``'s bytes (ASCII JSON)."""
    return json.dumps(meta, indent=1, default=str).encode()


def _manifest_hashes(specs: list[dict]) -> dict[str, str]:
    """sha256 of the manifest of every corpus source (what a model card records as its data)."""
    import hashlib

    from kdsharp.data.corpus import corpus_dir

    out = {}
    for spec in specs:
        if isinstance(spec, dict) and spec.get("type") == "corpus":
            manifest = corpus_dir(spec.get("path")) / "manifest.json"
            if manifest.is_file():
                out[str(spec.get("path"))] = hashlib.sha256(manifest.read_bytes()).hexdigest()
    return out


def _describe(plan: list[dict]) -> list[dict]:
    """A JSON-able summary of a degradation plan (kernels dropped)."""
    return [{stage: {k: v for k, v in params.items() if k != "kernel"} for stage, params in p.items()} for p in plan]


def bundle_summary(info_: BundleInfo) -> dict:
    """JSON-able summary of a packed bundle (sizes in MB)."""
    d = asdict(info_)
    d["path"] = str(info_.path)
    d["mb"] = round(info_.bytes / 1024 / 1024, 2)
    return d
