"""Training sources: turn a config entry (a dict) into decoded clean images or (lq, gt) pairs.

    {type: folder,    path: DIR, exclude: [glob, ...]}      images found recursively
    {type: video,     path: FILE, every: N, max_frames: M}   frames sampled with PyAV
    {type: paired,    path: DIR}                             input/+target/, blur/+sharp/ (GoPro, nested) or lq/+gt/
    {type: skimage,   names: [astronaut, chelsea, ...]}      scikit-image's bundled photos
    {type: samples}                                          kdsharp's built-in samples
    {type: synthetic, count: N, size: S, seed: K}            procedural edges, text, shapes, textures
    {type: corpus, path: DIR, split: train, tags: {people-face: 3, text: 2}}   the photo corpus (manifest)
    {type: bundle, path: ZIP, part: train|val, content: all|clean|pairs}   a packed training bundle

Every entry also takes ``repeat: K`` (sampling weight) and ``max_side: PX`` (downscale larger
images on load). Images are uint8 HxWx3 RGB. Unreadable files are skipped with one warning each;
a source with no usable image raises :class:`kdsharp.errors.InputError` naming it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from kdsharp.console import warn
from kdsharp.data.synthetic import synthetic_images
from kdsharp.errors import ConfigError, InputError, KdsharpError
from kdsharp.io.images import list_images, read_rgb
from kdsharp.io.inputs import warn_skipped

SOURCE_TYPES = ("folder", "video", "paired", "skimage", "samples", "synthetic", "bundle", "corpus")
_KEYS = {
    "folder": {"path", "exclude"},
    "video": {"path", "every", "max_frames"},
    "paired": {"path"},
    "skimage": {"names"},
    "samples": set(),
    "synthetic": {"count", "size", "seed"},
    "bundle": {"path", "part", "content"},
    "corpus": {"path", "split", "tags"},
}
_COMMON = {"type", "repeat", "max_side"}
PAIR_DIRS = (("input", "target"), ("blur", "sharp"), ("lq", "gt"))
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "cat",
    "camera",
    "immunohistochemistry",
    "hubble_deep_field",
    "colorwheel",
    "coins",
    "moon",
    "page",
    "text",
    "brick",
    "grass",
    "gravel",
)


@dataclass
class LoadedSource:
    """The decoded content of one source entry: clean ``images`` or ``pairs`` of (lq, gt)."""

    kind: str
    name: str
    images: list[np.ndarray] = field(default_factory=list)
    pairs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    repeat: float = 1.0

    def __len__(self) -> int:
        return len(self.images) + len(self.pairs)


def limit_side(img: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (area) so that the long side is at most ``max_side``; unchanged if smaller/None."""
    if not max_side or max(img.shape[:2]) <= max_side:
        return img
    s = max_side / max(img.shape[:2])
    size = (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _excluded(rel: str, patterns: list[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def _existing(path, what: str) -> Path:
    if path is None:
        raise ConfigError(f"a '{what}' source needs a path (e.g. {{type: {what}, path: ...}})")
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(p, "no such file or folder", f"fix the path of this '{what}' source")
    return p


def read_folder(folder: str | Path, exclude: list[str] | None = None, max_side: int | None = None):
    """(images, names) of every readable image under ``folder``; bad files are warned and skipped."""
    folder = _existing(folder, "folder")
    if not folder.is_dir():
        raise InputError(folder, "is not a folder", "use {type: video} for a video or point to a folder")
    images, names, exclude = [], [], list(exclude or [])
    others: list[Path] = []
    for path in list_images(folder, skipped=others):
        rel = path.relative_to(folder).as_posix()
        if _excluded(rel, exclude):
            continue
        try:
            images.append(limit_side(read_rgb(path), max_side))
            names.append(rel)
        except KdsharpError as e:
            warn(f"skipping {e}")
    others = [p for p in others if not _excluded(p.relative_to(folder).as_posix(), exclude)]
    warn_skipped(folder, others, "a folder source reads images only (list a video as {type: video, path: FILE})")
    if not images:
        raise InputError(
            folder, "no usable image in this folder", "add .png/.jpg/.webp/.bmp/.tif files or fix the path"
        )
    return images, names


def iter_video_frames(
    path: str | Path, every: int = 1, max_frames: int | None = None, max_side: int | None = None
) -> Iterator[np.ndarray]:
    """Yield every ``every``-th frame of a video as uint8 HxWx3 RGB (at most ``max_frames``), via PyAV.

    Raises :class:`InputError` if the file is missing, has no video stream or no decodable frame;
    a stream that breaks after some frames ends early with one warning.
    """
    from kdsharp.io.video import read_frames

    path = _existing(path, "video")
    if path.is_dir():
        raise InputError(path, "is a folder, not a video", "use {type: folder} for a folder of images")
    every, count = max(1, int(every)), 0
    frames = read_frames(path)  # colour-accurate RGB; closes the file when closed itself
    try:
        for i, (frame, _) in enumerate(frames):
            if i % every:
                continue
            yield limit_side(frame, max_side)
            count += 1
            if max_frames and count >= max_frames:
                return
    except InputError as e:  # corrupt packets part-way: keep what was decoded
        if not count:
            raise
        warn(f"{e}; using the {count} frames read before it")
    finally:
        close = getattr(frames, "close", None)  # a generator: release the container now
        if close is not None:
            close()
    if not count:
        raise InputError(path, "no frame could be decoded", "check the file or re-encode it")


def read_video_frames(
    path: str | Path, every: int = 1, max_frames: int | None = None, max_side: int | None = None
) -> list[np.ndarray]:
    """:func:`iter_video_frames` as a list."""
    return list(iter_video_frames(path, every, max_frames, max_side))


def find_pairs(root: str | Path) -> list[tuple[str, Path, Path]]:
    """(name, lq_path, gt_path) for every matched pair under ``root``.

    Accepts ``input/``+``target/``, ``blur/``+``sharp/`` (GoPro, per-sequence folders too) and
    ``lq/``+``gt/``; files match by relative path without extension; ``name`` keeps the sequence
    folder (``SEQ/000047``). Unmatched files are reported in one warning.
    """
    root = _existing(root, "paired")
    pairs: list[tuple[str, Path, Path]] = []
    unmatched: list[Path] = []
    for lq_name, gt_name in PAIR_DIRS:
        for lq_dir in sorted(p for p in root.rglob(lq_name) if p.is_dir()):
            gt_dir = lq_dir.parent / gt_name
            if not gt_dir.is_dir():
                continue
            key = lambda p, d: p.relative_to(d).with_suffix("").as_posix()  # noqa: E731
            gts = {key(p, gt_dir): p for p in list_images(gt_dir)}
            prefix = lq_dir.parent.relative_to(root).as_posix()
            for lq in list_images(lq_dir):
                k = key(lq, lq_dir)
                if k in gts:
                    pairs.append((k if prefix == "." else f"{prefix}/{k}", lq, gts.pop(k)))
                else:
                    unmatched.append(lq)
            unmatched += gts.values()
    if unmatched:
        names = ", ".join(str(p.relative_to(root)) for p in sorted(unmatched)[:3]) + (
            ", ..." if len(unmatched) > 3 else ""
        )
        warn(
            f"{root}: {len(unmatched)} file(s) without a partner of the same name were ignored ({names}): "
            "rename them to match or move them out"
        )
    return pairs


def read_pairs(root: str | Path, max_side: int | None = None):
    """(pairs, names): decoded (lq, gt) RGB pairs under ``root``; bad or mismatched pairs skipped."""
    found = find_pairs(root)
    if not found:
        raise InputError(
            root,
            "no image pairs found",
            "use input/ and target/ (or blur/ and sharp/) subfolders with files of the same names",
        )
    pairs, names = [], []
    for name, lq_path, gt_path in found:
        try:
            lq, gt = read_rgb(lq_path), read_rgb(gt_path)
        except KdsharpError as e:
            warn(f"skipping pair {name}: {e}")
            continue
        if lq.shape != gt.shape:
            warn(
                f"skipping pair {name}: {lq_path.name} is {lq.shape[1]}x{lq.shape[0]} but its target is "
                f"{gt.shape[1]}x{gt.shape[0]}"
            )
            continue
        if max_side and max(gt.shape[:2]) > max_side:
            lq, gt = limit_side(lq, max_side), limit_side(gt, max_side)
        pairs.append((lq, gt))
        names.append(name)
    if not pairs:
        raise InputError(root, "no usable image pair", "fix or replace the files listed above")
    return pairs, names


def skimage_images(names: list[str] | None = None) -> tuple[list[np.ndarray], list[str]]:
    """scikit-image's bundled photos (``skimage.data.<name>()``) as uint8 HxWx3 RGB."""
    try:
        import skimage.data as skdata
    except ImportError as e:
        raise KdsharpError("the 'skimage' source needs scikit-image: pip install scikit-image") from e
    names = list(names or SKIMAGE_PHOTOS)
    images = []
    for name in names:
        fn = getattr(skdata, str(name), None)
        if not callable(fn) or name.startswith("_"):
            raise ConfigError(f"unknown scikit-image picture '{name}' (e.g. {', '.join(SKIMAGE_PHOTOS)})")
        try:
            img = np.asarray(fn())
        except Exception as e:  # some pictures are downloaded on demand
            raise KdsharpError(
                f"scikit-image picture '{name}' is not available offline ({type(e).__name__}); choose another name"
            ) from e
        images.append(to_rgb_uint8(img, name))
    return images, names


def to_rgb_uint8(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Any grey/RGB/RGBA array (bool, uint8, uint16, float in [0,1]) -> uint8 HxWx3 RGB."""
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype.kind == "f":
        img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ConfigError(f"picture '{name}' has unsupported type {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ConfigError(f"picture '{name}' is not an image (shape {img.shape})")
    return np.ascontiguousarray(img)


def warn_small_images(
    sources: list[LoadedSource], crop: int, setting: str = "crop", fate: str = "are padded or upscaled to fit"
) -> None:
    """One warning when images of ``sources`` are smaller than ``crop`` (training pads or upscales them,
    so the model learns from made-up pixels; ``fate`` says what happens), naming ``setting`` and its
    largest fitting value."""
    sizes = []
    for src in sources:
        names = src.names if len(src.names) == len(src) else [""] * len(src)
        for img, name in zip(src.images + [gt for _, gt in src.pairs], names, strict=True):
            sizes.append((min(img.shape[:2]), img.shape, f"{src.name}: {name}" if name else src.name))
    small = [x for x in sizes if x[0] < crop]
    if small:
        side, shape, name = min(small)
        warn(
            f"{setting}={crop}: {len(small)} of {len(sizes)} images are smaller and {fate} "
            f"(smallest {shape[1]}x{shape[0]}: {name}); lower {setting} to {side} or less, or use larger images"
        )


def read_corpus(
    path, split: str = "train", tags: dict | None = None, repeat: float = 1.0, max_side: int | None = None
) -> list[LoadedSource]:
    """One :class:`LoadedSource` per content tag of a corpus split (``kdsharp data corpus``), read via its
    manifest; ``repeat`` of each is ``repeat * tags.get(tag, 1)`` (weight 0 leaves a tag out)."""
    from kdsharp.data.corpus import TAGS, corpus_dir, corpus_records

    tags = dict(tags or {})
    bad = [t for t in tags if t not in TAGS]
    if bad:
        raise ConfigError(f"data source 'corpus': unknown tag(s) {', '.join(bad)} (known: {', '.join(TAGS)})")
    if any(not isinstance(w, (int, float)) or w < 0 for w in tags.values()):
        raise ConfigError(f"data source 'corpus': tag weights must be numbers >= 0, got {tags}")
    root = corpus_dir(path)
    groups: dict[str, LoadedSource] = {}
    for rec in corpus_records(root, split):
        weight = float(tags.get(rec["tag"], 1.0))
        if weight == 0:
            continue
        g = groups.setdefault(
            rec["tag"], LoadedSource(kind="corpus", name=f"{root}:{split}:{rec['tag']}", repeat=repeat * weight)
        )
        try:
            g.images.append(limit_side(read_rgb(rec["path"]), max_side))
            g.names.append(rec["file"])
        except KdsharpError as e:
            warn(f"skipping {e}")
    out = [g for g in groups.values() if len(g)]
    if not out:
        raise InputError(
            root,
            f"no usable image in corpus split '{split}'" + (f" with tags {tags}" if tags else ""),
            "check split/tags or rebuild it with `kdsharp data corpus`",
        )
    return out


def load_source(spec: dict) -> LoadedSource | list[LoadedSource]:
    """Decode one source entry (see the module docstring) into a :class:`LoadedSource`
    (a list of them, one per content tag, for ``corpus``)."""
    if not isinstance(spec, dict) or spec.get("type") not in SOURCE_TYPES:
        got = spec.get("type") if isinstance(spec, dict) else spec
        raise ConfigError(f"unknown data source type {got!r} (known: {', '.join(SOURCE_TYPES)})")
    kind = spec["type"]
    unknown = set(spec) - _KEYS[kind] - _COMMON
    if unknown:
        raise ConfigError(
            f"data source '{kind}': unknown key(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(_KEYS[kind] | _COMMON))})"
        )
    repeat = spec.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, (int, float)) or not repeat > 0:
        raise ConfigError(f"data source '{kind}': repeat must be > 0, got {spec.get('repeat')!r}")
    repeat = float(repeat)
    max_side = spec.get("max_side")
    counts = {"max_side": 8, "every": 1, "max_frames": 1, "count": 1, "seed": 0}  # integer settings: least value
    for key, least in counts.items():
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ConfigError(f"data source '{kind}': {key} must be an integer >= {least}, got {value!r}")
    shapes = {"names": (list, "[astronaut, chelsea]"), "exclude": (list, "[a.jpg]"), "tags": (dict, "{text: 2}")}
    for key, (type_, example) in shapes.items():
        value = spec.get(key)
        if value is not None and not isinstance(value, type_):
            what = "list" if type_ is list else "mapping"
            raise ConfigError(f"data source '{kind}': {key} must be a {what}, e.g. {key}: {example}; got {value!r}")
    path = str(spec.get("path") or "")
    if kind in ("folder", "video", "paired") and not path:
        raise ConfigError(f"data source '{kind}' needs a path: {{type: {kind}, path: ...}}")
    if kind == "corpus":
        return read_corpus(spec.get("path"), spec.get("split", "train"), spec.get("tags"), repeat, max_side)
    out = LoadedSource(kind=kind, name=str(spec.get("path", kind)), repeat=repeat)
    if kind == "folder":
        out.images, out.names = read_folder(path, spec.get("exclude"), max_side)
    elif kind == "video":
        out.images = read_video_frames(path, spec.get("every", 1), spec.get("max_frames"), max_side)
        out.names = [f"frame_{i:06d}" for i in range(len(out.images))]
    elif kind == "paired":
        out.pairs, out.names = read_pairs(path, max_side)
    elif kind == "skimage":
        images, out.names = skimage_images(spec.get("names"))
        out.images = [limit_side(im, max_side) for im in images]
    elif kind == "bundle":
        from kdsharp.data.bundle import load_bundle

        content = spec.get("content", "all")
        if content not in ("all", "clean", "pairs"):
            raise ConfigError(f"data source 'bundle': content must be all, clean or pairs, got {content!r}")
        clean, pairs = load_bundle(_existing(spec.get("path"), "bundle"), spec.get("part", "train"))
        out.images = [limit_side(im, max_side) for im in clean] if content != "pairs" else []
        out.pairs = pairs if content != "clean" else []
        out.names = [f"clean_{i:06d}" for i in range(len(out.images))] + [
            f"pair_{i:06d}" for i in range(len(out.pairs))
        ]
        if not len(out):
            raise InputError(
                Path(spec["path"]),
                f"holds no {'' if content == 'all' else content + ' '}crops in part '{spec.get('part', 'train')}'",
                "re-pack it with `kdsharp train pack`",
            )
    elif kind == "samples":
        from kdsharp.data import sample_images, sample_paths

        out.images = [limit_side(im, max_side) for im in sample_images()]
        out.names = [p.name for p in sample_paths()]
    else:
        size = spec.get("size", 256)
        out.images = synthetic_images(int(spec.get("count", 16)), size, int(spec.get("seed", 0)))
        out.images = [limit_side(im, max_side) for im in out.images]
        out.names = [f"synthetic_{i:04d}" for i in range(len(out.images))]
    return out


def source_list(specs: dict | list[dict] | None) -> list[dict]:
    """A ``sources`` setting as a list: one source dict, a list of them, or none."""
    return [specs] if isinstance(specs, dict) else list(specs or [])


def warn_test_split(specs, key: str) -> None:
    """One warning per corpus source of ``specs`` (the setting ``key``) that reads the corpus's test split:
    it is reserved for evaluation (``kdsharp eval`` reports on it), so training or selecting on it
    makes those numbers meaningless. A warning, not an error: the split stays usable on purpose."""
    for i, spec in enumerate(source_list(specs)):
        if isinstance(spec, dict) and spec.get("type") == "corpus" and spec.get("split") == "test":
            warn(
                f"{key}[{i}]: corpus split 'test' is reserved for evaluation (`kdsharp eval` reports on it): "
                "train on split: train and validate on split: val"
            )


def load_sources(specs: list[dict]) -> list[LoadedSource]:
    """:func:`load_source` for each entry; raises :class:`ConfigError` for an empty list."""
    specs = source_list(specs)
    if not specs:
        raise ConfigError("no data sources given: list at least one, e.g. [{type: samples}]")
    out: list[LoadedSource] = []
    for s in specs:
        got = load_source(s)
        out.extend(got if isinstance(got, list) else [got])
    return out
