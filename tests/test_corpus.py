"""The photo corpus builder on fake package trees (nothing is downloaded), its source type and eval default."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from kdsharp.data import corpus as C
from kdsharp.data import corpus_extract as ex
from kdsharp.data.sources import load_source, load_sources
from kdsharp.errors import ConfigError, InputError, KdsharpError


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like uint8 RGB image: smooth multi-scale random field plus fine noise (no flat areas)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for scale, amp in ((64, 90), (16, 40), (4, 20)):
        small = rng.normal(0, 1, (h // scale + 2, w // scale + 2, 3)).astype(np.float32)
        img += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img + 128, 0, 255).astype(np.uint8)


def _cartoon(h: int, w: int) -> np.ndarray:
    """Flat colour regions with outlines: what the photo rule must drop."""
    img = np.full((h, w, 3), 250, np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, (240, 200, 40), -1)
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, (0, 0, 0), 4)
    cv2.rectangle(img, (20, 20), (w // 4, h // 4), (30, 120, 220), -1)
    return img


def _encode(rgb: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **kw)
    return buf.getvalue()


JUNK = b"\x00\x01junk\xff\xd8 not a jpeg RIFF\x10\x00\x00\x00WEBX" * 7


@pytest.fixture()
def fake_roots(tmp_path: Path) -> dict[str, Path]:
    """Unpacked-package folders for gcompris (.rcc), enlightenment (.edj) and mate (folder + cartoon + dup)."""
    g = tmp_path / "gcompris" / "usr/share/gcompris-qt/rcc"
    g.mkdir(parents=True)
    webps = [_encode(_photo(480, 720, s), "WEBP", quality=80) for s in (1, 2)]
    (g / "erase.rcc").write_bytes(JUNK + webps[0] + JUNK + webps[1] + JUNK)
    (g / "paintings.rcc").write_bytes(JUNK + _encode(_photo(480, 720, 9), "WEBP", quality=80))  # not listed

    e = tmp_path / "enlightenment" / "usr/share/enlightenment/data/backgrounds"
    e.mkdir(parents=True)
    big = _photo(800, 1200, 3)
    sizes = [cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA) for w, h in ((300, 200), (1200, 800), (600, 400))]
    (e / "Forest.edj").write_bytes(JUNK + JUNK.join(_encode(s, "JPEG", quality=95) for s in sizes) + JUNK)

    m = tmp_path / "mate" / "usr/share/backgrounds/mate/nature"
    m.mkdir(parents=True)
    a, b = _photo(600, 900, 4), _photo(600, 900, 5)
    (m / "A.jpg").write_bytes(_encode(a, "JPEG", quality=95))
    (m / "B.png").write_bytes(_encode(b, "PNG"))
    (m / "Cartoon.png").write_bytes(_encode(_cartoon(600, 900), "PNG"))
    near = cv2.resize(a, (810, 540), interpolation=cv2.INTER_AREA)
    (m / "Z_near_copy_of_A.jpg").write_bytes(_encode(near, "JPEG", quality=92))
    return {"gcompris": tmp_path / "gcompris", "enlightenment": tmp_path / "enlightenment", "mate": tmp_path / "mate"}


# ----------------------------------------------------------------------------- scanners


def test_jpeg_and_webp_streams_are_found_between_junk():
    jpgs = [_encode(_photo(64 * k, 96 * k, k), "JPEG", quality=90) for k in (1, 2)]
    blob = JUNK + jpgs[0] + JUNK + jpgs[1] + JUNK
    found = ex.jpeg_streams(blob)
    assert [s[2] for s in found] == [(96, 64), (192, 128)]
    assert [blob[s:e] for s, e, _ in found] == jpgs
    webp = _encode(_photo(40, 50, 1), "WEBP", quality=70)
    blob = JUNK + webp + b"RIFF\xff\xff\xff\x7fWEBP truncated"
    assert [blob[s:e] for s, e in ex.webp_streams(blob)] == [webp]


def test_jpeg_quality_estimate_and_min_downscale():
    img = _photo(64, 64, 0)
    for q in (50, 75, 95):
        est = ex.decode_bytes(_encode(img, "JPEG", quality=q))[2]
        assert abs(est - q) <= 2
    assert ex.decode_bytes(_encode(img, "WEBP", quality=80))[2] == 0
    assert ex.decode_bytes(_encode(img, "PNG"))[2] == 100
    assert C.min_downscale(95) == 1 and C.min_downscale(75) == 2 and C.min_downscale(0) == 2
    assert C.min_downscale(40) == 3


def test_exif_orientation_is_applied(tmp_path):
    img = _photo(40, 80, 1)  # 80 wide, 40 high
    exif = Image.Exif()
    exif[274] = 6  # rotate 90 CW to display
    p = tmp_path / "r.jpg"
    Image.fromarray(img).save(p, "JPEG", quality=95, exif=exif)
    c = ex.read_file_candidate(p, "s", "r", "nature", "r.jpg")
    assert c.size == (40, 80)


def test_photo_rule_keeps_photos_and_drops_cartoons():
    photo = ex.Candidate("s", "p", _photo(600, 900, 1), "nature", "p")
    cartoon = ex.Candidate("s", "c", _cartoon(600, 900), "nature", "c")
    cutout = ex.Candidate("s", "x", _photo(600, 900, 2), "animal", "x", alpha_frac=0.4)
    small = ex.Candidate("s", "t", _photo(300, 900, 3), "nature", "t")
    assert C.photo_check(photo) is None
    assert "flat" in C.photo_check(cartoon)
    assert "transparent" in C.photo_check(cutout)
    assert "short side" in C.photo_check(small)


def test_clean_scale_halves_lossy_sources_and_caps_long_side():
    img = _photo(600, 900, 1)
    assert C.clean_scale(img, 95, 1600).shape == img.shape
    assert C.clean_scale(img, 75, 1600).shape == (300, 450, 3)
    assert C.clean_scale(img, 95, 450).shape == (300, 450, 3)


# ----------------------------------------------------------------------------- extraction + build


def test_extractors_on_fake_trees(fake_roots):
    g = list(ex.extract_gcompris(fake_roots["gcompris"]))
    assert [c.name for c in g] == ["erase_000", "erase_001"] and all(c.quality == 0 for c in g)
    assert g[0].tag == "animal" and g[0].size == (720, 480)
    e = list(ex.extract_enlightenment(fake_roots["enlightenment"]))
    assert len(e) == 1 and e[0].size == (1200, 800) and e[0].extra["streams"] == 3 and e[0].quality >= 90


def _build(out: Path, roots: dict, **kw) -> dict:
    return C.build_corpus(out, roots=roots, sources=list(roots), screens=0, **kw)


def test_build_filters_dedupes_and_writes_manifest(tmp_path, fake_roots):
    out = tmp_path / "corpus"
    m = _build(out, fake_roots)
    assert m == json.loads((out / "manifest.json").read_text())
    files = {r["file"] for r in m["images"]}
    assert files == {
        "images/enlightenment-data/Forest.png",
        "images/mate-backgrounds/A.png",
        "images/mate-backgrounds/B.png",
        "images/gcompris-qt-data/erase_000.png",
        "images/gcompris-qt-data/erase_001.png",
    }
    reasons = {d["name"]: d["reason"] for d in m["dropped"]}
    assert "flat" in reasons["Cartoon"]
    assert "near-duplicate of images/mate-backgrounds/A.png" in reasons["Z_near_copy_of_A"]
    for r in m["images"]:
        png = out / r["file"]
        im = Image.open(png)
        assert im.format == "PNG" and im.mode == "RGB"
        assert list(im.size) == r["stored_size"]
        assert r["split"] in C.SPLITS and r["tag"] in C.TAGS
        assert set(r) >= {
            "file",
            "source",
            "package",
            "version",
            "licence",
            "original_size",
            "stored_size",
            "sha256",
            "tag",
            "split",
        }
        assert hashlib.sha256(png.read_bytes()).hexdigest() == r["sha256"]
    by_name = {Path(r["file"]).stem: r for r in m["images"]}
    assert by_name["Forest"]["stored_size"] == [1200, 800]  # near-lossless: kept at full size
    assert by_name["erase_000"]["stored_size"] == [360, 240]  # lossy WEBP: halved
    assert by_name["erase_000"]["original_size"] == [720, 480]
    assert m["counts"]["images"] == 5 and m["counts"]["by_tag"] == {"animal": 2, "nature": 3}


def test_build_is_deterministic_and_replaces_previous(tmp_path, fake_roots):
    out = tmp_path / "c"
    a = _build(out, fake_roots)
    (out / "images" / "stale.png").write_bytes(b"x")
    b = _build(out, fake_roots)
    strip = lambda m: [(r["file"], r["sha256"], r["split"]) for r in m["images"]]  # noqa: E731
    assert strip(a) == strip(b)
    assert not (out / "images" / "stale.png").exists()
    assert not (tmp_path / ".c.partial").exists()


def test_build_refuses_a_foreign_folder_and_unknown_source(tmp_path, fake_roots):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(Exception, match="not a corpus"):
        _build(tmp_path / "mine", fake_roots)
    with pytest.raises(ConfigError, match="unknown corpus source"):
        C.build_corpus(tmp_path / "x", roots={}, sources=["nope"])


def test_bad_sizes_and_failed_builds_leave_the_previous_corpus(tmp_path, fake_roots, monkeypatch):
    """--max-side 0 / --screens -1 are refused before any download (max_side 0 was a ZeroDivisionError
    after them); a build that fails, or collects nothing, leaves no .partial folder and keeps the old corpus."""
    out = tmp_path / "c"
    before = _build(out, fake_roots)
    with pytest.raises(ConfigError, match="max_side=0"):
        _build(out, fake_roots, max_side=0)
    with pytest.raises(ConfigError, match="screens=-1"):
        C.build_corpus(out, roots=fake_roots, sources=list(fake_roots), screens=-1)
    with pytest.raises(ConfigError, match="no image collected"):
        C.build_corpus(out, roots={}, sources=["screens"], screens=0)

    def broken(*args, **kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(C._Writer, "add", broken)
    with pytest.raises(RuntimeError):
        _build(out, fake_roots)
    assert not (tmp_path / ".c.partial").exists()
    assert json.loads((out / "manifest.json").read_text()) == before


def test_reserved_package_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="reserved"):
        C.fetch_package("deb", "plasma-workspace-wallpapers", tmp_path)


# ----------------------------------------------------------------------------- splits


def _recs(n: int, tag: str, source: str = "pkg") -> list[dict]:
    return [{"source": source, "group": f"{tag}{i}", "tag": tag} for i in range(n)]


def test_splits_are_by_group_fixed_and_force_test_tags():
    recs = _recs(200, "nature") + _recs(12, "people-face") + _recs(12, "indoor") + _recs(4, "text")
    recs += [{"source": "pkg", "group": "clip:v", "tag": "urban"} for _ in range(4)]
    C.assign_splits(recs)
    again = [dict(r) for r in recs]
    C.assign_splits(again)
    assert [r["split"] for r in recs] == [r["split"] for r in again]
    assert len({r["split"] for r in recs if r["group"] == "clip:v"}) == 1  # one clip, one split
    for tag, want in (("people-face", 3), ("indoor", 3), ("text", 3)):
        assert sum(r["split"] == "test" for r in recs if r["tag"] == tag) >= want
        assert any(r["split"] == "train" for r in recs if r["tag"] == tag)
    nat = [r["split"] for r in recs if r["tag"] == "nature"]
    assert 0.04 < nat.count("test") / len(nat) < 0.18 and nat.count("val") > 0
    legacy = [{"source": "mate-backgrounds", "group": "Wood", "tag": "nature"}]
    C.assign_splits(legacy)
    assert legacy[0]["split"] == "test"


# ----------------------------------------------------------------------------- source type + eval


def test_corpus_source_type_groups_by_tag_with_weights(tmp_path, fake_roots):
    out = tmp_path / "corpus"
    m = _build(out, fake_roots)
    mf = json.loads((out / "manifest.json").read_text())
    for r in mf["images"]:  # make every image train for this test
        r["split"] = "train"
    (out / "manifest.json").write_text(json.dumps(mf))
    got = load_source(
        {"type": "corpus", "path": str(out), "tags": {"animal": 3, "nature": 0.5}, "repeat": 2, "max_side": 400}
    )
    assert isinstance(got, list)
    by_tag = {s.name.rsplit(":", 1)[-1]: s for s in got}
    assert by_tag["animal"].repeat == 6 and by_tag["nature"].repeat == 1
    assert len(by_tag["animal"]) == 2 and len(by_tag["nature"]) == 3
    assert max(max(im.shape[:2]) for s in got for im in s.images) <= 400
    flat = load_sources([{"type": "corpus", "path": str(out), "tags": {"nature": 0}}, {"type": "samples"}])
    assert [s.kind for s in flat] == ["corpus", "samples"] and len(flat[0]) == 2
    with pytest.raises(ConfigError, match="unknown tag"):
        load_source({"type": "corpus", "path": str(out), "tags": {"cats": 1}})
    with pytest.raises(InputError, match="no usable image"):
        load_source({"type": "corpus", "path": str(out), "split": "test"})
    assert m["counts"]["images"] == 5


def test_missing_corpus_names_the_build_command(tmp_path, monkeypatch):
    from kdsharp.evaluate.sets import corpus_test_paths

    monkeypatch.setenv("KDSHARP_CORPUS", str(tmp_path / "none"))
    with pytest.raises(InputError, match="kdsharp data corpus -o"):
        corpus_test_paths()
    with pytest.raises(InputError, match="kdsharp data corpus"):
        load_source({"type": "corpus"})


def test_eval_default_is_the_corpus_test_split(tmp_path, fake_roots, monkeypatch):
    from kdsharp.evaluate.sets import corpus_test_paths

    out = tmp_path / "corpus"
    _build(out, fake_roots)
    mf = json.loads((out / "manifest.json").read_text())
    for i, r in enumerate(mf["images"]):
        r["split"] = "test" if i < 2 else "val" if i == 2 else "train"
    (out / "manifest.json").write_text(json.dumps(mf))
    monkeypatch.setenv("KDSHARP_CORPUS", str(out))
    assert [p.name for p in corpus_test_paths()] == [Path(r["file"]).name for r in mf["images"][:2]]
    # --split val: the validation photos, for choosing weights without looking at test
    assert [p.name for p in corpus_test_paths(split="val")] == [Path(mf["images"][2]["file"]).name]
    with pytest.raises(KdsharpError, match="unknown corpus split 'train'"):
        corpus_test_paths(split="train")  # never evaluate on training photos
    (out / mf["images"][0]["file"]).unlink()
    with pytest.raises(InputError, match="missing"):
        corpus_test_paths(out)


def test_screens_render_deterministically():
    from kdsharp.data.screens import KINDS, find_fonts, render_screens

    roots = [Path(p) for p in ("/usr/share/fonts", str(C.default_cache() / "root"), "/work/corpus_cache/root")]
    fonts = find_fonts([r for r in roots if r.is_dir()])
    if not fonts:
        pytest.skip("no TrueType font on this machine")
    a = render_screens(fonts, count=len(KINDS), seed=1)
    b = render_screens(fonts, count=len(KINDS), seed=1)
    assert [k for _, k, _ in a] == list(KINDS)
    for (_, _, x), (_, _, y) in zip(a, b, strict=True):
        assert x.shape == (720, 1280, 3) and x.dtype == np.uint8 and np.array_equal(x, y)
        assert len(np.unique(x.reshape(-1, 3), axis=0)) > 20  # antialiased text, not a blank page


def test_cli_lists_sources():
    from kdsharp.cli import main

    assert main(["data", "corpus", "--list-sources"]) == 0
    assert main(["data", "corpus"]) == 2  # -o missing: one-line error
