"""Image metadata carried from an input file to its output: EXIF, resolution (dpi) and the ICC
colour profile.

OpenCV drops all three, so they are read from and spliced into the encoded bytes here, in plain
Python (no extra dependency):

=========  ==================================================  ===================================
format     read                                                written
=========  ==================================================  ===================================
JPEG       APP1 Exif, JFIF density (or EXIF's), APP2 ICC       APP1 Exif, JFIF density, APP2 ICC
PNG        eXIf, pHYs, iCCP                                    eXIf, pHYs, iCCP
TIFF       X/YResolution (and its Orientation), ICC tag        X/YResolution (OpenCV's), ICC tag
WebP       EXIF and ICCP chunks                                EXIF and ICCP chunks (extended WebP)
BMP        nothing                                             nothing (a profile: a warning)
=========  ==================================================  ===================================

The model works on the encoded values, so an output is in its input's colour space: a photo
tagged Display P3 or Adobe RGB must keep its profile, or viewers that honour profiles show its
colours shifted.

Pixels are written upright (EXIF orientation applied on reading), so the copied EXIF has its
Orientation tag set to 1: viewers must not rotate the output a second time.

Reading also notes what the pixels alone do not say: grey with alpha (PNG grey + alpha, or grey
with a transparent level), a lossless WebP, the number of pages or frames; and
:func:`png_problem` finds a truncated or damaged PNG before libpng does (which prints to stderr).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

_ORIENTATION, _XRES, _YRES, _RESUNIT, _SUBFILE, _ICC = 0x0112, 0x011A, 0x011B, 0x0128, 0x00FE, 0x8773
_PHOTOMETRIC, _SAMPLES = 0x0106, 0x0115  # PhotometricInterpretation, SamplesPerPixel
_MAX_APP1 = 65533 - 6  # a JPEG segment holds at most 65533 bytes after its length
_ICC_TAG = b"ICC_PROFILE\x00"  # APP2 payload: this, sequence number (1..), count, then a profile chunk
_MAX_ICC_CHUNK = 65533 - len(_ICC_TAG) - 2


@dataclass
class ImageMeta:
    """What an output inherits: ``exif`` (TIFF-structured bytes, ``II*``/``MM*``), ``dpi`` (x, y)
    and ``icc`` (the ICC colour profile, uncompressed)."""

    exif: bytes | None = None
    dpi: tuple[float, float] | None = None
    icc: bytes | None = None
    orientation: int = 1  # the input's EXIF/TIFF orientation (1..8), applied to the pixels on reading
    format: str = ""  # 'jpeg', 'png', 'webp', 'tiff' ('' for others)
    grey_alpha: bool = False  # grey with alpha (read as BGRA with equal colours; written grey again)
    grey_key: int | None = None  # PNG grey + tRNS: the (8/16-bit) grey level that is transparent
    lossless: bool = False  # a lossless (VP8L) WebP
    frames: int = 1  # pages of a TIFF (reduced-resolution ones not counted), frames of an animated WebP or PNG
    cmyk: bool = False  # a CMYK ('separated') TIFF: OpenCV reads it as BGRA with an opaque fourth channel

    def __bool__(self) -> bool:
        """True if there is EXIF, dpi or a colour profile to write into an output."""
        return self.exif is not None or self.dpi is not None or self.icc is not None


# -- TIFF structures (EXIF is one) -----------------------------------------------------------
def _ifd0(tiff: bytes) -> tuple[str, int, list[tuple[int, int, int, int]]]:
    """(endianness, IFD0 offset, [(tag, type, count, entry offset)]) of a TIFF structure."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        raise ValueError("not a TIFF structure")
    e = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", tiff[4:8])
    (count,) = struct.unpack(e + "H", tiff[ifd : ifd + 2])
    entries = []
    for i in range(count):
        at = ifd + 2 + 12 * i
        tag, typ, n = struct.unpack(e + "HHI", tiff[at : at + 8])
        entries.append((tag, typ, n, at))
    return e, ifd, entries


def _value(tiff: bytes, e: str, typ: int, at: int) -> float | None:
    """The first value of a SHORT (3), LONG (4) or RATIONAL (5) entry at ``at``."""
    if typ == 3:
        return struct.unpack(e + "H", tiff[at + 8 : at + 10])[0]
    if typ == 4:
        return struct.unpack(e + "I", tiff[at + 8 : at + 12])[0]
    if typ == 5:
        (off,) = struct.unpack(e + "I", tiff[at + 8 : at + 12])
        num, den = struct.unpack(e + "II", tiff[off : off + 8])
        return num / den if den else None
    return None


def _tag_values(tiff: bytes | None, tags: tuple[int, ...]) -> dict[int, float | None]:
    """The first value of each of ``tags`` present in IFD0 of a TIFF structure or EXIF block (SHORT,
    LONG, RATIONAL; None for other types); ``{}`` if it is unreadable."""
    try:
        e, _, entries = _ifd0(tiff or b"")
        return {tag: _value(tiff or b"", e, typ, at) for tag, typ, _, at in entries if tag in tags}
    except (ValueError, struct.error):
        return {}


def tiff_orientation(tiff: bytes | None) -> int:
    """The Orientation tag (1..8) of a TIFF structure or EXIF block; 1 if absent or unreadable."""
    v = int(_tag_values(tiff, (_ORIENTATION,)).get(_ORIENTATION) or 1)
    return v if 1 <= v <= 8 else 1


def tiff_dpi(tiff: bytes | None) -> tuple[float, float] | None:
    """(x, y) dots per inch from X/YResolution and ResolutionUnit (2 inch, 3 cm); None if absent."""
    vals = _tag_values(tiff, (_XRES, _YRES, _RESUNIT))
    x, y, unit = vals.get(_XRES), vals.get(_YRES), vals.get(_RESUNIT, 2)
    if not x or not y or unit not in (2, 3):
        return None
    scale = 2.54 if unit == 3 else 1.0
    return (x * scale, y * scale)


def upright_exif(exif: bytes) -> bytes:
    """``exif`` with its Orientation tag set to 1 (the pixels are already upright)."""
    try:
        e, _, entries = _ifd0(exif)
    except (ValueError, struct.error):
        return exif
    out = bytearray(exif)
    for tag, typ, _, at in entries:
        if tag == _ORIENTATION and typ == 3:
            out[at + 8 : at + 10] = struct.pack(e + "H", 1)
    return bytes(out)


# -- reading -------------------------------------------------------------------------------
def _jpeg_segments(data: bytes):
    """Yield (marker, payload start, payload end) of a JPEG's segments up to the image data."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        yield marker, i + 4, i + 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return
        i += 2 + length


def tiff_cmyk(tiff: bytes | None) -> bool:
    """Whether a TIFF's first image is CMYK (PhotometricInterpretation 5, 'separated')."""
    return _tag_values(tiff, (_PHOTOMETRIC,)).get(_PHOTOMETRIC) == 5


def tiff_grey_alpha(tiff: bytes | None) -> bool:
    """Whether a TIFF's first image is grey with alpha (PhotometricInterpretation 0/1, two samples)."""
    tags = _tag_values(tiff, (_PHOTOMETRIC, _SAMPLES))
    return tags.get(_PHOTOMETRIC) in (0, 1) and tags.get(_SAMPLES) == 2


def tiff_icc(tiff: bytes | None) -> bytes | None:
    """The ICC profile (tag 34675, UNDEFINED bytes) of a TIFF structure; None if absent."""
    try:
        e, _, entries = _ifd0(tiff or b"")
        for tag, typ, n, at in entries:
            if tag == _ICC and typ in (1, 7) and n > 4:
                (off,) = struct.unpack(e + "I", (tiff or b"")[at + 8 : at + 12])
                icc = (tiff or b"")[off : off + n]
                return icc if len(icc) == n else None
    except (ValueError, struct.error):
        pass
    return None


def icc_fits(icc: bytes | None, grey: bool) -> bool:
    """Whether an ICC profile can tag an image of ``grey`` (one colour channel) or RGB pixels: its
    data colour space (header bytes 16-20) is ``GRAY`` or ``RGB ``; a profile of another space
    (CMYK, Lab) fits neither: the pixels were converted to RGB on reading."""
    space = (icc or b"")[16:20]
    return space == (b"GRAY" if grey else b"RGB ")


def _read_jpeg(data: bytes) -> ImageMeta:
    meta = ImageMeta()
    icc_chunks: dict[int, bytes] = {}
    for marker, a, b in _jpeg_segments(data):
        seg = data[a:b]
        if marker == 0xE1 and seg.startswith(b"Exif\x00\x00") and meta.exif is None:
            meta.exif = seg[6:]
        elif marker == 0xE2 and seg.startswith(_ICC_TAG) and len(seg) > len(_ICC_TAG) + 2:
            icc_chunks.setdefault(seg[len(_ICC_TAG)], seg[len(_ICC_TAG) + 2 :])
        elif marker == 0xE0 and seg.startswith(b"JFIF\x00") and len(seg) >= 12:
            units, x, y = struct.unpack(">BHH", seg[7:12])
            if units in (1, 2) and x and y:
                scale = 2.54 if units == 2 else 1.0
                meta.dpi = (x * scale, y * scale)
    if icc_chunks:  # chunks numbered 1..count; a gap means a damaged profile: none rather than a wrong one
        order = sorted(icc_chunks)
        if order == list(range(1, len(order) + 1)):
            meta.icc = b"".join(icc_chunks[k] for k in order)
    if meta.dpi is None:
        meta.dpi = tiff_dpi(meta.exif)
    return meta


def tiff_pages(tiff: bytes) -> int:
    """Full-resolution pages of a TIFF: its IFD chain, less reduced-resolution images (thumbnails)."""
    e, ifd, _ = _ifd0(tiff)
    pages, seen = 0, set[int]()
    while ifd and ifd not in seen and ifd + 2 <= len(tiff) and len(seen) < 10000:
        seen.add(ifd)
        (count,) = struct.unpack(e + "H", tiff[ifd : ifd + 2])
        subfile = 0
        for i in range(count):
            at = ifd + 2 + 12 * i
            tag, typ = struct.unpack(e + "HH", tiff[at : at + 4])
            if tag == _SUBFILE:
                subfile = int(_value(tiff, e, typ, at) or 0)
        pages += not subfile & 1
        (ifd,) = struct.unpack(e + "I", tiff[ifd + 2 + 12 * count : ifd + 6 + 12 * count])
    return max(pages, 1)


def _png_chunks(data: bytes):
    """Yield (type, payload start, payload end, chunk end) of a PNG's chunks."""
    i = 8
    while i + 8 <= len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        kind = data[i + 4 : i + 8]
        yield kind, i + 8, i + 8 + length, i + 12 + length
        if kind == b"IEND":
            return
        i += 12 + length


def png_problem(data: bytes) -> str | None:
    """What is wrong with a PNG's chunk structure (truncated, a CRC error), or None if it is whole."""
    for kind, a, b, end in _png_chunks(data):
        if end > len(data):
            return f"truncated in its {kind.decode('latin-1')} chunk"
        if struct.unpack(">I", data[b:end])[0] != zlib.crc32(data[a - 4 : b]):
            return f"damaged (CRC error in its {kind.decode('latin-1')} chunk)"
        if kind == b"IEND":
            return None
    return "truncated (no IEND chunk)"


def _read_png(data: bytes) -> ImageMeta:
    meta = ImageMeta(format="png")
    depth, colour = 8, -1
    for kind, a, b, _ in _png_chunks(data):
        if kind == b"IHDR" and b - a == 13:
            depth, colour = data[a + 8], data[a + 9]
            meta.grey_alpha = colour == 4
        elif kind == b"tRNS" and b - a == 2 and colour == 0:  # grey + a transparent level
            (key,) = struct.unpack(">H", data[a:b])
            meta.grey_key = key * (255 // (2**depth - 1)) if depth < 8 else key  # OpenCV expands 1/2/4 bits to 8
            meta.grey_alpha = True
        elif kind == b"eXIf":
            meta.exif = data[a:b]
        elif kind == b"iCCP":  # profile name (1-79 bytes), NUL, compression method 0, zlib data
            name_end = data.index(b"\x00", a, b)
            if data[name_end + 1] == 0:
                meta.icc = zlib.decompress(data[name_end + 2 : b])
        elif kind == b"pHYs" and b - a == 9:
            x, y, unit = struct.unpack(">IIB", data[a:b])
            if unit == 1 and x and y:  # pixels per metre
                meta.dpi = (round(x * 0.0254, 2), round(y * 0.0254, 2))
        elif kind == b"acTL" and b - a == 8:  # an animated PNG (APNG): frames, plays
            meta.frames = max(struct.unpack(">I", data[a : a + 4])[0], 1)
        elif kind == b"IDAT":
            break
    return meta


def _read_webp(data: bytes) -> ImageMeta:
    meta = ImageMeta(format="webp")
    i, frames = 12, 0
    while i + 8 <= len(data):
        kind = data[i : i + 4]
        (length,) = struct.unpack("<I", data[i + 4 : i + 8])
        if kind == b"EXIF":
            exif = data[i + 8 : i + 8 + length]
            meta.exif = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        elif kind == b"ICCP":
            meta.icc = data[i + 8 : i + 8 + length]
        elif kind == b"VP8L":
            meta.lossless = True
        elif kind == b"ANMF":  # an animation frame: its image chunks are inside it
            frames += 1
            meta.lossless = meta.lossless or data[i + 24 : i + 28] == b"VP8L"
        i += 8 + length + (length & 1)
    meta.frames = max(frames, 1)
    return meta


def read_meta(data: bytes) -> ImageMeta:
    """EXIF, dpi and orientation of an encoded image (format from its magic bytes); empty if none."""
    try:
        if data[:2] == b"\xff\xd8":
            meta = _read_jpeg(data)
            meta.format = "jpeg"
        elif data[:8] == b"\x89PNG\r\n\x1a\n":
            meta = _read_png(data)
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            meta = _read_webp(data)
        elif data[:4] in (b"II*\x00", b"MM\x00*"):  # TIFF: its own tags, no separate EXIF block
            meta = ImageMeta(None, tiff_dpi(data), format="tiff", frames=tiff_pages(data), icc=tiff_icc(data))
            meta.cmyk = tiff_cmyk(data)
            meta.grey_alpha = tiff_grey_alpha(data)
            meta.orientation = tiff_orientation(data)
            return meta
        else:
            return ImageMeta()
    except (struct.error, IndexError, ValueError, OverflowError, zlib.error):  # metadata is best effort
        return ImageMeta()
    meta.orientation = tiff_orientation(meta.exif)
    return meta


# -- writing -------------------------------------------------------------------------------
def _jpeg_with(buf: bytes, meta: ImageMeta) -> bytes:
    """JFIF (with ``meta.dpi``) and Exif segments first, then the encoder's other APPn segments."""
    jfif, others, pos = None, [], 2
    for marker, a, b in _jpeg_segments(buf):
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            break
        seg = buf[a:b]
        if marker == 0xE0 and seg.startswith(b"JFIF\x00") and len(seg) >= 14:
            jfif = seg
        elif not (marker == 0xE1 and seg.startswith(b"Exif\x00\x00")) and not (
            marker == 0xE2 and seg.startswith(_ICC_TAG) and meta.icc
        ):
            others.append((marker, seg))
        pos = b
    if meta.dpi:
        base = jfif if jfif is not None else b"JFIF\x00\x01\x01" + bytes(5) + b"\x00\x00"
        jfif = base[:7] + struct.pack(">BHH", 1, *_dpi_ints(meta.dpi)) + base[12:]
    segs = [(0xE0, jfif)] if jfif is not None else []
    if meta.exif and len(meta.exif) <= _MAX_APP1:
        segs.append((0xE1, b"Exif\x00\x00" + upright_exif(meta.exif)))
    if meta.icc:
        chunks = [meta.icc[i : i + _MAX_ICC_CHUNK] for i in range(0, len(meta.icc), _MAX_ICC_CHUNK)]
        if len(chunks) <= 255:
            segs += [(0xE2, _ICC_TAG + bytes([k + 1, len(chunks)]) + c) for k, c in enumerate(chunks)]
    segs += others
    return b"\xff\xd8" + b"".join(b"\xff" + bytes([m]) + struct.pack(">H", len(p) + 2) + p for m, p in segs) + buf[pos:]


def _dpi_ints(dpi: tuple[float, float]) -> tuple[int, int]:
    return tuple(min(65535, max(1, int(round(v)))) for v in dpi)  # type: ignore[return-value]


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with(buf: bytes, meta: ImageMeta) -> bytes:
    out = bytearray(buf[:8])
    for kind, a, _, end in _png_chunks(buf):
        if (kind == b"eXIf" and meta.exif) or (kind == b"pHYs" and meta.dpi):
            continue  # replaced below
        if meta.icc and kind in (b"iCCP", b"sRGB", b"gAMA", b"cHRM"):
            continue  # the profile says it all (an iCCP and an sRGB chunk must not both be there)
        out += buf[a - 8 : end]
        if kind == b"IHDR":
            if meta.dpi:
                ppm = [min(2**31 - 1, max(1, int(round(v / 0.0254)))) for v in meta.dpi]
                out += png_chunk(b"pHYs", struct.pack(">IIB", *ppm, 1))
            if meta.exif:
                out += png_chunk(b"eXIf", upright_exif(meta.exif))
            if meta.icc:
                out += png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(meta.icc, 9))
    return bytes(out)


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of a WebP's chunks (RIFF: little-endian sizes, odd payloads padded)."""
    chunks, i = [], 12
    while i + 8 <= len(data):
        kind = data[i : i + 4]
        (length,) = struct.unpack("<I", data[i + 4 : i + 8])
        if i + 8 + length > len(data):
            raise ValueError("truncated WebP chunk")
        chunks.append((kind, data[i + 8 : i + 8 + length]))
        i += 8 + length + (length & 1)
    return chunks


def _webp_size_alpha(kind: bytes, payload: bytes) -> tuple[int, int, bool]:
    """(width, height, has alpha) of a simple WebP's VP8 (lossy) or VP8L (lossless) bitstream."""
    if kind == b"VP8 " and payload[3:6] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", payload[6:10])
        return w & 0x3FFF, h & 0x3FFF, False
    if kind == b"VP8L" and payload[:1] == b"\x2f":
        (bits,) = struct.unpack("<I", payload[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)
    raise ValueError("not a VP8/VP8L bitstream")


def _webp_with(buf: bytes, meta: ImageMeta) -> bytes:
    """``buf`` as an extended WebP (VP8X) with ``meta.icc`` in its ICCP chunk (right after VP8X) and
    ``meta.exif`` (Orientation 1) in an EXIF chunk after the image data, as the format orders them;
    ``buf`` itself if it is not a WebP this understands."""
    if not meta.icc and not meta.exif:
        return buf
    chunks = [(k, v) for k, v in _riff_chunks(buf) if k not in (b"ICCP", b"EXIF")]
    if chunks and chunks[0][0] == b"VP8X":
        head = chunks.pop(0)[1]
    else:
        w, h, alpha = _webp_size_alpha(*chunks[0])
        head = bytes([0x10 if alpha else 0, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    flags = head[0] & ~0x28 | (0x20 if meta.icc else 0) | (0x08 if meta.exif else 0)  # ICC profile, EXIF flags
    head = bytes([flags]) + head[1:]
    listed = [(b"VP8X", head), *([(b"ICCP", meta.icc)] if meta.icc else []), *chunks]
    if meta.exif:
        listed.append((b"EXIF", upright_exif(meta.exif)))
    body = b"".join(k + struct.pack("<I", len(v)) + v + b"\x00" * (len(v) & 1) for k, v in listed)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _tiff_with(buf: bytes, meta: ImageMeta) -> bytes:
    """``buf`` (a classic TIFF) with ``meta.icc`` as its first image's ICC tag: the profile and a
    copy of IFD0 with the tag added are appended, and the header points to that copy (the pixels and
    every other tag stay where they are)."""
    if not meta.icc or buf[:4] not in (b"II*\x00", b"MM\x00*"):
        return buf
    e, ifd, entries = _ifd0(buf)
    (next_ifd,) = struct.unpack(e + "I", buf[ifd + 2 + 12 * len(entries) : ifd + 6 + 12 * len(entries)])
    out = bytearray(buf) + b"\x00" * (len(buf) & 1)  # offsets are even
    at = len(out)
    out += meta.icc + b"\x00" * (len(meta.icc) & 1)
    kept = [(tag, buf[pos : pos + 12]) for tag, _, _, pos in entries if tag != _ICC]
    table = sorted([*kept, (_ICC, struct.pack(e + "HHII", _ICC, 7, len(meta.icc), at))])  # tags ascending
    new_ifd = len(out)
    out += struct.pack(e + "H", len(table)) + b"".join(raw for _, raw in table) + struct.pack(e + "I", next_ifd)
    if len(out) >= 2**32:
        return buf
    out[4:8] = struct.pack(e + "I", new_ifd)
    return bytes(out)


def icc_carried(ext: str) -> bool:
    """Whether :func:`with_meta` writes an ICC profile into a ``ext`` file (all but BMP)."""
    return ext.lower() in (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")


def with_meta(buf: bytes, ext: str, meta: ImageMeta | None) -> bytes:
    """Encoded image ``buf`` (format ``ext``) with ``meta``'s EXIF, dpi and ICC profile spliced in
    (JPEG, PNG; EXIF and the ICC profile in WebP, the ICC profile in TIFF, whose dpi OpenCV writes)."""
    if not meta:
        return buf
    ext = ext.lower()
    if ext in (".jpg", ".jpeg") and buf[:2] == b"\xff\xd8":
        return _jpeg_with(buf, meta)
    if ext == ".png" and buf[:8] == b"\x89PNG\r\n\x1a\n":
        return _png_with(buf, meta)
    try:
        if ext == ".webp" and buf[:4] == b"RIFF" and buf[8:12] == b"WEBP":
            return _webp_with(buf, meta)
        if ext in (".tif", ".tiff"):
            return _tiff_with(buf, meta)
    except (ValueError, struct.error, IndexError):  # a structure this does not know: the encoder's bytes as they are
        pass
    return buf


def tiff_params(meta: ImageMeta | None) -> list[int]:
    """OpenCV ``imencode`` options that write ``meta``'s dpi into a TIFF."""
    if not meta or not meta.dpi:
        return []
    import cv2

    x, y = _dpi_ints(meta.dpi)
    return [cv2.IMWRITE_TIFF_RESUNIT, 2, cv2.IMWRITE_TIFF_XDPI, x, cv2.IMWRITE_TIFF_YDPI, y]


__all__ = [
    "ImageMeta",
    "icc_carried",
    "icc_fits",
    "png_chunk",
    "png_problem",
    "read_meta",
    "tiff_pages",
    "tiff_dpi",
    "tiff_icc",
    "tiff_orientation",
    "tiff_params",
    "upright_exif",
    "with_meta",
]
