"""Data sources, training/eval datasets, built-in samples and `kdsharp degrade`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import make_test_image

import kdsharp.data.sources as sources
from kdsharp.cli import main
from kdsharp.data import sample_images, sample_paths
from kdsharp.data.datasets import (
    PairedFolderDataset,
    build_train_dataset,
    fit_min_side,
    fit_size,
    make_paired_set,
    parse_size,
)
from kdsharp.data.sources import load_source, load_sources, read_video_frames
from kdsharp.data.synthetic import synthetic_images
from kdsharp.errors import ConfigError, InputError, KdsharpError, OutputError


@pytest.fixture
def warnings_seen(monkeypatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(sources, "warn", seen.append)
    return seen


def write(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def make_video(path: Path, n: int = 10, h: int = 48, w: int = 64) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            frame = np.roll(make_test_image(h, w, seed=1), 3 * i, axis=1)
            c.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        c.mux(s.encode(None))
    return path


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """8-bit PNG, 16-bit PNG, grey, RGBA, JPEG, plus a corrupt and an empty file."""
    d = tmp_path / "imgs"
    base = make_test_image(40, 56, seed=2)
    write(d / "a8.png", base)
    write(d / "sub" / "b16.png", base.astype(np.uint16) * 257)
    write(d / "grey.png", cv2.cvtColor(base, cv2.COLOR_BGR2GRAY))
    write(d / "rgba.png", cv2.cvtColor(base, cv2.COLOR_BGR2BGRA))
    write(d / "sub" / "photo.jpg", base)
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (d / "empty.jpg").write_bytes(b"")
    return d


# ----------------------------------------------------------------------------- sources
def test_folder_source_reads_every_format_and_skips_bad_files(mixed_folder, warnings_seen):
    src = load_source({"type": "folder", "path": str(mixed_folder)})
    assert len(src) == 5 and sorted(src.names) == ["a8.png", "grey.png", "rgba.png", "sub/b16.png", "sub/photo.jpg"]
    for im in src.images:
        assert im.dtype == np.uint8 and im.shape == (40, 56, 3)
    assert np.array_equal(src.images[src.names.index("a8.png")], src.images[src.names.index("sub/b16.png")])
    assert len(warnings_seen) == 2
    assert any("corrupt.png" in w for w in warnings_seen) and any("empty.jpg" in w for w in warnings_seen)
    excl = load_source({"type": "folder", "path": str(mixed_folder), "exclude": ["sub/*", "grey.*"]})
    assert sorted(excl.names) == ["a8.png", "rgba.png"]


def test_folder_without_usable_images_raises(tmp_path, warnings_seen):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"junk")
    with pytest.raises(InputError, match="bad"):
        load_source({"type": "folder", "path": str(bad)})
    with pytest.raises(InputError, match="no such"):
        load_source({"type": "folder", "path": str(tmp_path / "missing")})


def test_a_video_in_a_folder_source_is_not_ignored_silently(tmp_path, capsys):
    """A clip dropped into a footage folder was skipped without a word; a folder given as a video
    source said so without the fix."""
    d = tmp_path / "footage"
    write(d / "a.png", make_test_image(40, 56))
    make_video(d / "talk.mp4", n=2)
    (d / "notes.txt").write_text("x")
    assert load_source({"type": "folder", "path": str(d)}).names == ["a.png"]
    err = capsys.readouterr().err
    assert "skipped 2 unsupported files" in err and "talk.mp4" in err and "{type: video, path: FILE}" in err
    load_source({"type": "folder", "path": str(d), "exclude": ["*.mp4", "*.txt"]})
    assert "unsupported" not in capsys.readouterr().err  # excluded on purpose: no warning
    with pytest.raises(InputError, match=r"is a folder, not a video \(use \{type: folder\}"):
        load_source({"type": "video", "path": str(d)})


def test_source_spec_errors():
    with pytest.raises(ConfigError, match="unknown data source type"):
        load_source({"type": "ftp"})
    with pytest.raises(ConfigError, match="unknown key"):
        load_source({"type": "samples", "pth": "x"})
    with pytest.raises(ConfigError):
        load_sources([])


@pytest.mark.parametrize(
    "spec, key",
    [
        ({"type": "samples", "max_side": 4}, "max_side"),
        ({"type": "samples", "max_side": "big"}, "max_side"),
        ({"type": "samples", "repeat": "abc"}, "repeat"),
        ({"type": "video", "path": "v.mp4", "every": 0}, "every"),
        ({"type": "video", "path": "v.mp4", "max_frames": -1}, "max_frames"),
        ({"type": "synthetic", "count": "abc"}, "count"),
        ({"type": "skimage", "names": "astronaut"}, "names"),
        ({"type": "corpus", "tags": ["text"]}, "tags"),
    ],
)
def test_source_settings_out_of_range_are_config_errors(spec, key):
    """max_side 4 trained on 4-px images blown up to the crop, every: 0 read every frame, a text
    repeat or count was a ValueError, names: astronaut read the pictures 'a', 's', ...: each is a
    ConfigError naming the setting, before anything is read."""
    with pytest.raises(ConfigError, match=f"{key} must be"):
        load_source(spec)


def test_video_source(tmp_path):
    video = make_video(tmp_path / "clip.mp4", n=10)
    src = load_source({"type": "video", "path": str(video), "every": 2, "max_frames": 3})
    assert len(src) == 3 and all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in src.images)
    assert len(read_video_frames(video)) == 10
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="bad.mp4"):
        read_video_frames(bad)


def test_paired_sources_plain_and_gopro(tmp_path, warnings_seen):
    a, b = make_test_image(32, 40, 1), make_test_image(32, 40, 2)
    plain = tmp_path / "plain"
    write(plain / "input" / "x.png", a), write(plain / "target" / "x.png", b)
    write(plain / "input" / "orphan.png", a)
    src = load_source({"type": "paired", "path": str(plain)})
    assert src.names == ["x"] and len(src.pairs) == 1 and not src.images
    assert np.array_equal(src.pairs[0][0], a[:, :, ::-1]) and np.array_equal(src.pairs[0][1], b[:, :, ::-1])
    assert any("without a partner" in w for w in warnings_seen)
    gopro = tmp_path / "GOPRO" / "test"
    for seq in ("GOPR0001_00", "GOPR0002_00"):
        for i in range(2):
            write(gopro / seq / "blur" / f"{i:06d}.png", a), write(gopro / seq / "sharp" / f"{i:06d}.png", b)
    src = load_source({"type": "paired", "path": str(tmp_path / "GOPRO")})
    assert len(src.pairs) == 4 and "test/GOPR0002_00/000001" in src.names


def test_skimage_samples_and_synthetic_sources():
    pytest.importorskip("skimage")
    sk = load_source({"type": "skimage", "names": ["camera", "chelsea"], "max_side": 100})
    assert [im.shape for im in sk.images] == [(100, 100, 3), (67, 100, 3)]
    with pytest.raises(ConfigError, match="scikit-image picture"):
        load_source({"type": "skimage", "names": ["not_a_picture"]})
    smp = load_source({"type": "samples", "repeat": 3})
    assert len(smp) == len(sample_paths()) and smp.repeat == 3
    syn = load_source({"type": "synthetic", "count": 3, "size": [40, 52], "seed": 4})
    assert len(syn) == 3 and all(im.shape == (40, 52, 3) for im in syn.images)


def test_synthetic_images_are_reproducible_and_detailed():
    a, b, c = synthetic_images(3, 64, seed=1), synthetic_images(3, 64, seed=1), synthetic_images(3, 64, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], a[1])
    for im in a:
        assert cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() > 20  # edges and text
    with pytest.raises(ConfigError):
        synthetic_images(0, 64)


def test_builtin_samples():
    paths = sample_paths()
    assert 4 <= len(paths) <= 6 and sum(p.stat().st_size for p in paths) < 600_000
    assert (paths[0].parent / "README.md").is_file()
    for im in sample_images():
        assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 and max(im.shape[:2]) >= 256


# ----------------------------------------------------------------------------- training dataset
def test_train_dataset_shapes_determinism_and_epochs():
    ds = build_train_dataset([{"type": "synthetic", "count": 3, "size": 80, "seed": 0}], "light", crop=32, seed=5)
    assert len(ds) == 3
    item = ds[1]
    for k in ("lq", "gt"):
        assert item[k].shape == (3, 32, 32) and item[k].dtype == torch.float32
        assert 0 <= float(item[k].min()) and float(item[k].max()) <= 1
    assert not torch.equal(item["lq"], item["gt"])
    assert torch.equal(ds[1]["lq"], item["lq"]) and torch.equal(ds[1]["gt"], item["gt"])
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["gt"], item["gt"])
    other = build_train_dataset([{"type": "synthetic", "count": 3, "size": 80, "seed": 0}], "light", crop=32, seed=6)
    assert not torch.equal(other[1]["gt"], item["gt"])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["lq"].shape == (3, 3, 32, 32)
    with pytest.raises(IndexError):
        ds[3]


def test_train_dataset_length_repeat_and_small_images():
    specs = [
        {"type": "synthetic", "count": 2, "size": 20, "seed": 0, "repeat": 2},
        {"type": "synthetic", "count": 1, "size": [40, 70], "seed": 1},
    ]
    ds = build_train_dataset(specs, "defocus", crop=48)
    assert len(ds) == 5  # 2 images x repeat 2 + 1
    assert all(ds[i]["gt"].shape == (3, 48, 48) for i in range(len(ds)))
    ds = build_train_dataset(specs, "defocus", crop=48, length=7, scale_aug=False)
    assert len(ds) == 7 and ds[6]["lq"].shape == (3, 48, 48)
    img = make_test_image(30, 50)
    assert fit_min_side(img, 40).shape == (40, 50, 3)  # reflect-padded
    assert min(fit_min_side(img, 100).shape[:2]) >= 100  # upscaled


def test_crop_larger_than_the_images_is_warned_about(warnings_seen):
    """A crop larger than the images trained silently on padded/upscaled pixels: one warning names
    the setting, how many images, the smallest one and the largest crop that fits."""
    seen = warnings_seen
    specs = [
        {"type": "synthetic", "count": 2, "size": 24, "seed": 0},
        {"type": "synthetic", "count": 1, "size": 80, "seed": 1},
    ]
    build_train_dataset(specs, "defocus", crop=64, setting="data.crop")
    assert len(seen) == 1 and seen[0].startswith("data.crop=64: 2 of 3 images are smaller")
    assert "24x24" in seen[0] and "lower data.crop to 24 or less" in seen[0]
    build_train_dataset(specs, "defocus", crop=24)
    assert len(seen) == 1  # every image fits: no warning


def test_train_dataset_uses_pairs_as_is_with_the_same_augmentation(tmp_path):
    gt = make_test_image(40, 40, 3)
    write(tmp_path / "p" / "input" / "a.png", 255 - gt), write(tmp_path / "p" / "target" / "a.png", gt)
    ds = build_train_dataset([{"type": "paired", "path": str(tmp_path / "p")}], "mixed", crop=24, length=6)
    for i in range(6):
        it = ds[i]
        assert torch.allclose(it["lq"], 1 - it["gt"], atol=1e-6)  # no synthetic degradation, aligned flips


# ----------------------------------------------------------------------------- paired sets
def test_make_paired_set_from_folder_and_refusals(mixed_folder, tmp_path, monkeypatch):
    monkeypatch.setattr("kdsharp.data.datasets.warn", lambda m: None)
    out = tmp_path / "pairs"
    res = make_paired_set(mixed_folder, out, preset="lowbw", seed=1, size="32x24")
    assert res.written == 5 and res.skipped == 2
    names = sorted(p.name for p in (out / "input").iterdir())
    assert names == sorted(p.name for p in (out / "target").iterdir()) and "sub__b16.png" in names
    ds = PairedFolderDataset(out)
    assert len(ds) == 5 and ds[0]["lq"].shape == (3, 24, 32) and isinstance(ds[0]["name"], str)
    assert not torch.equal(ds[0]["lq"], ds[0]["gt"])
    before = sorted(p.name for p in mixed_folder.rglob("*"))
    with pytest.raises(OutputError, match="not empty"):
        make_paired_set(mixed_folder, out, preset="lowbw")
    with pytest.raises(OutputError, match="inside the source"):
        make_paired_set(mixed_folder, mixed_folder / "out")
    assert sorted(p.name for p in mixed_folder.rglob("*")) == before  # inputs untouched
    (out / "keep.txt").write_text("mine")
    assert make_paired_set(mixed_folder, out, preset="h264", max_images=2, overwrite=True).written == 2
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("sub", ["target", "input"])
def test_make_paired_set_never_writes_over_its_source_images(tmp_path, sub):
    """`kdsharp degrade pairs/target -o pairs --overwrite` wrote the new pairs over the source images
    (same names in target/): inputs are never modified, so it is refused, naming the folder."""
    gt = make_test_image(40, 40, 3)
    write(tmp_path / "pairs" / sub / "a.png", gt)
    before = (tmp_path / "pairs" / sub / "a.png").read_bytes()
    for src in (tmp_path / "pairs" / sub, tmp_path / "pairs" / sub / "a.png"):
        with pytest.raises(OutputError, match=f"its {sub}/ folder holds the source"):
            make_paired_set(src, tmp_path / "pairs", preset="lowbw", size="32x32", overwrite=True)
    assert (tmp_path / "pairs" / sub / "a.png").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "pairs").iterdir()) == [sub]


def test_make_paired_set_from_video(tmp_path):
    video = make_video(tmp_path / "v.mp4", n=7)
    res = make_paired_set(video, tmp_path / "vp", preset="h264", seed=0, max_images=5)
    assert res.written == 5
    assert sorted(p.name for p in (tmp_path / "vp" / "input").iterdir())[-1] == "frame_000004.png"
    with pytest.raises(KdsharpError):
        parse_size("640by360")
    assert parse_size("64x36") == (64, 36) and fit_size(make_test_image(30, 50), (20, 20)).shape == (20, 20, 3)


def test_cli_degrade_writes_pairs_and_refuses_non_empty(tmp_path, capsys):
    src = tmp_path / "clean"
    for i in range(3):
        write(src / f"im{i}.png", make_test_image(32, 48, i))
    out = tmp_path / "out"
    args = ["degrade", str(src), "-o", str(out), "--preset", "light", "--seed", "3", "--max-images", "2"]
    assert main(args) == 0
    assert sorted(p.name for p in (out / "input").iterdir()) == ["im0.png", "im1.png"]
    assert sorted(p.name for p in (out / "target").iterdir()) == ["im0.png", "im1.png"]
    capsys.readouterr()
    assert main(args) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    assert main(["degrade", str(src), "-o", str(tmp_path / "o2"), "--preset", "nope"]) == 2
    assert main(["degrade", str(tmp_path / "missing"), "-o", str(tmp_path / "o3")]) == 2
    capsys.readouterr()
    assert main(["degrade", "--list-presets"]) == 0
    (src / "empty.png").write_bytes(b"")  # an unreadable file: the others are written, exit 1
    assert main(["degrade", str(src), "-o", str(tmp_path / "o4"), "--preset", "light"]) == 1
    assert len(list((tmp_path / "o4" / "input").iterdir())) == 3
    listed = capsys.readouterr().out
    assert all(n in listed for n in ("mixed", "lowbw", "defocus", "h264", "light", "calls_soft"))  # shipped too


def test_cli_degrade_warns_once_for_unsupported_files_and_refuses_every_below_1(tmp_path, capsys):
    src = tmp_path / "clean"
    write(src / "a.png", make_test_image(32, 48))
    (src / "notes.txt").write_text("not an image")
    (src / "anim.gif").write_bytes(b"GIF89a")
    assert main(["degrade", str(src), "-o", str(tmp_path / "out"), "--preset", "light"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "skipped 2 unsupported files" in warnings[0]
    assert "anim.gif" in warnings[0] and "notes.txt" in warnings[0]
    video = make_video(tmp_path / "v.mp4", n=3)
    for every in ("0", "-1"):
        assert main(["degrade", str(video), "-o", str(tmp_path / f"v{every}"), "--every", every]) == 2
        assert "--every" in capsys.readouterr().err
        assert not (tmp_path / f"v{every}").exists()
    with pytest.raises(KdsharpError, match="every=0"):
        make_paired_set(video, tmp_path / "v_api", every=0)


def test_cli_degrade_refuses_every_with_images_and_applies_it_to_a_video(tmp_path, capsys):
    """--every 5 with a folder of images (or one image) was ignored without a word: every image was
    degraded. It is refused in one line naming the input, --every and --max-images; a video keeps
    every N-th frame."""
    src = tmp_path / "clean"
    for i in range(3):
        write(src / f"im{i}.png", make_test_image(32, 48, i))
    for given in (src, src / "im0.png"):
        out = tmp_path / f"out_{given.name}"
        assert main(["degrade", str(given), "-o", str(out), "--every", "5"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith(f"error: {given}: --every 5 keeps every N-th frame"), err
        assert "--max-images N" in err and "Traceback" not in err and not out.exists()
        with pytest.raises(InputError, match=r"every=5 .*max_images=N"):
            make_paired_set(given, out, every=5)
    assert main(["degrade", str(src), "-o", str(tmp_path / "ok"), "--every", "1", "--preset", "light"]) == 0
    assert len(list((tmp_path / "ok" / "input").iterdir())) == 3
    video = make_video(tmp_path / "v.mp4", n=10)
    assert main(["degrade", str(video), "-o", str(tmp_path / "v"), "--every", "3", "--preset", "light"]) == 0
    assert len(list((tmp_path / "v" / "target").iterdir())) == 4  # frames 0, 3, 6, 9


def test_cli_degrade_failure_leaves_no_folders_and_refuses_a_negative_seed(tmp_path, capsys):
    """A run that wrote no pair leaves no empty input/ + target/ behind (a rerun into the same OUT
    after fixing the source was refused as 'not empty'); --seed -1 is a one-line error."""
    src, empty, out = tmp_path / "clean", tmp_path / "empty", tmp_path / "out"
    write(src / "a.png", make_test_image(32, 48))
    empty.mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["degrade", str(empty), "-o", str(out)]) == 2
    assert main(["degrade", str(tmp_path / "notes.txt"), "-o", str(out)]) == 2
    assert not out.exists()
    capsys.readouterr()
    assert main(["degrade", str(src), "-o", str(out), "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--seed -1" in err and "Traceback" not in err and not out.exists()
    assert main(["degrade", str(src), "-o", str(out), "--preset", "light"]) == 0
    assert [p.name for p in (out / "input").iterdir()] == ["a.png"]


def test_loader_workers_start_after_opencv_used_its_threads(tmp_path):
    """Loading large photos resizes them with OpenCV's thread pool in the parent; a worker forked
    then used to block forever in its ``cv2.setNumThreads(1)`` (the photo corpus hung training)."""
    from kdsharp.train.loaders import StepBatchSampler, make_loader, start_workers

    class Zeros(torch.utils.data.Dataset):
        def __init__(self, n: int):
            self.n = n

        def __len__(self):
            return self.n

        def __getitem__(self, key):
            return 0

    rng = np.random.default_rng(0)
    for i in range(8):
        img = cv2.GaussianBlur(rng.integers(0, 255, (1500, 2000, 3), dtype=np.uint8), (0, 0), 3)
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
    old = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        ds = build_train_dataset(
            [{"type": "folder", "path": str(tmp_path), "max_side": 800}], degradation="light", crop=64
        )
        loader = make_loader(Zeros(len(ds)), StepBatchSampler(len(ds), 2, 0, 0, 4), workers=1, pin=False)
        loader.timeout = 30  # a hung worker fails the test instead of hanging it
        assert len(list(start_workers(loader))) == 4
        assert cv2.getNumThreads() == 2  # the parent's count is back
    finally:
        cv2.setNumThreads(old)
