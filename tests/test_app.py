"""The functions behind `kdsharp app` (no gradio needed): uploads, sharpening, degradation, video,
blind-comparison pairs, the SQLite vote store and the ranking of the votes."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_test_image

from kdsharp.app import compare as cmp
from kdsharp.app.processing import (
    CancelFlags,
    Cancelled,
    Limits,
    Models,
    ProgressBridge,
    Workspace,
    check_video,
    degrade_and_sharpen,
    metrics_markdown,
    model_choices,
    output_name,
    preview,
    quality,
    read_upload_image,
    sharpen_image_file,
    sharpen_video_file,
    to_rgb8,
    upload_name,
    upload_path,
    webcam_frame,
)
from kdsharp.app.store import VoteRecord, VoteStore, VoteStoreError, vote_report
from kdsharp.errors import InputError, KdsharpError
from kdsharp.evaluate.votes import Vote, bradley_terry, rank_votes, ranking_markdown, scores, tally, wilson


@pytest.fixture(scope="module")
def models() -> Models:
    return Models("cpu")


@pytest.fixture
def workspace():
    with Workspace() as ws:
        yield ws


# ----------------------------------------------------------------------------- uploads and images
def test_upload_path_and_name_from_gradio_payloads(tmp_path):
    p = tmp_path / "a.png"
    assert upload_path(None) is None and upload_path("") is None
    assert upload_path(str(p)) == p and upload_path({"path": str(p), "orig_name": "Holiday.PNG"}) == p
    assert upload_path({"video": {"path": str(p)}, "subtitles": None}) == p
    assert upload_name({"path": str(p), "orig_name": "dir/Holiday.PNG"}) == "Holiday.PNG"
    assert upload_name({"video": {"path": str(p), "orig_name": "clip.mov"}}) == "clip.mov"
    assert upload_name(str(p)) == "a.png" and upload_name(None, "x") == "x"


def test_output_name_keeps_format_and_makes_a_safe_name():
    assert output_name("photo.tif") == "photo_sharp.tif"
    assert output_name("call frame.JPG") == "call_frame_sharp.jpg"
    assert output_name("blob") == "blob_sharp.png" and output_name("x.gif") == "x_sharp.png"
    # a download must not be a hidden file (was ".png_sharp.png", "._sharp.jpg", ".hidden_sharp.jpg")
    assert output_name(".png") == "png_sharp.png" and output_name("..jpg") == "image_sharp.jpg"
    assert output_name(".hidden.jpg") == "hidden_sharp.jpg" and output_name("...") == "image_sharp.png"


def test_model_choices_name_every_model_with_its_speed():
    names = [v for _, v in model_choices()]
    assert names == ["fast", "student", "student@x8", "teacher"]
    assert all("1080p" in label for label, _ in model_choices())


@pytest.mark.parametrize(
    "content, says",
    [
        (b"", "file is empty"),
        (b"hello, not an image", "not a readable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "not a readable image"),
    ],
)
def test_bad_uploads_get_one_line_naming_the_visitors_file(tmp_path, content, says):
    p = tmp_path / "tmp123" / "upload.png"
    p.parent.mkdir()
    p.write_bytes(content)
    with pytest.raises(InputError) as e:
        read_upload_image(p, "My photo.png", Limits())
    msg = str(e.value)
    assert says in msg and msg.startswith("My photo.png:") and "tmp123" not in msg and "\n" not in msg


def test_upload_over_the_size_limit_and_huge_images_are_refused(tmp_path):
    p = tmp_path / "big.png"
    cv2.imwrite(str(p), make_test_image(64, 64))
    with pytest.raises(InputError, match=r"too large \(0 MB; this app takes up to 1e-05 MB\)"):
        read_upload_image(p, "big.png", Limits(max_upload_mb=1e-5))
    with pytest.raises(InputError, match=r"image is too large \(64x64"):
        read_upload_image(p, "big.png", Limits(max_pixels=1000))
    with pytest.raises(InputError, match="is not an image this app reads"):
        read_upload_image(p.rename(tmp_path / "big.gif"), "big.gif", Limits())


def _png_header_only(path: Path, w: int, h: int) -> Path:
    """A PNG whose header says ``w`` x ``h`` px and that holds no pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")
    )
    return path


def test_a_huge_image_is_refused_from_its_header_before_decoding(tmp_path):
    pytest.importorskip("PIL")
    with pytest.raises(InputError, match=r"image is too large \(9000x9000, 81 Mpx; this app takes up to 50 Mpx"):
        read_upload_image(_png_header_only(tmp_path / "a.png", 9000, 9000), "a.png", Limits())
    with pytest.raises(InputError, match=r"image is too large \(10000 Mpx; this app takes up to 50 Mpx"):
        read_upload_image(_png_header_only(tmp_path / "b.png", 100000, 100000), "b.png", Limits())  # a "bomb"


def test_sharpen_image_file_keeps_size_bit_depth_and_format(tmp_path, models, workspace):
    src = tmp_path / "in.png"
    img16 = make_test_image(48, 64).astype(np.uint16) * 257
    cv2.imwrite(str(src), img16)
    res = sharpen_image_file(src, "Call frame.png", "fast", models, workspace, Limits())
    out = cv2.imread(str(res.path), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == img16.shape and res.path.name == "Call_frame_sharp.png"
    assert res.path.is_relative_to(workspace.path) and res.before.dtype == np.uint8 == res.after.dtype
    assert res.before.shape == res.after.shape == (48, 64, 3) and res.metrics == {}
    assert res.summary().startswith("fast: 64x48 16-bit in ") and res.tiled is None
    direct = models.get("fast").image(img16)
    assert np.array_equal(out, direct)  # the same pixels as the library's own call


def test_sharpen_with_a_reference_measures_psnr_ssim(tmp_path, models, workspace):
    clean = make_test_image(40, 56)
    lq = cv2.GaussianBlur(clean, (5, 5), 1.5)
    cv2.imwrite(str(tmp_path / "lq.jpg"), lq, [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(tmp_path / "ref.png"), clean)
    res = sharpen_image_file(
        tmp_path / "lq.jpg", "lq.jpg", "fast", models, workspace, Limits(), reference=tmp_path / "ref.png"
    )
    assert res.path.suffix == ".jpg"
    m = res.metrics
    assert set(m) == {"psnr_before", "ssim_before", "psnr_after", "ssim_after"} and 15 < m["psnr_before"] < 60
    table = metrics_markdown(m)
    assert "| input |" in table and "| sharpened |" in table and "gain" in table
    cv2.imwrite(str(tmp_path / "small.png"), clean[:20])
    with pytest.raises(InputError, match="reference: is 56x20 but the image is 56x40"):
        sharpen_image_file(
            tmp_path / "lq.jpg", "lq.jpg", "fast", models, workspace, Limits(), reference=tmp_path / "small.png"
        )


def test_large_images_run_in_tiles(tmp_path, models, workspace):
    src = tmp_path / "wide.png"
    cv2.imwrite(str(src), make_test_image(80, 200))
    res = sharpen_image_file(src, "wide.png", "fast", models, workspace, Limits(tile_above=10_000, tile=64))
    assert res.tiled == 64 and "in 64 px tiles" in res.summary()
    assert cv2.imread(str(res.path)).shape == (80, 200, 3)


def test_grey_and_alpha_images_keep_their_layout(tmp_path, models, workspace):
    grey, bgra = tmp_path / "g.png", tmp_path / "a.png"
    cv2.imwrite(str(grey), cv2.cvtColor(make_test_image(32, 32), cv2.COLOR_BGR2GRAY))
    img = np.dstack([make_test_image(32, 32), np.full((32, 32), 128, np.uint8)])
    cv2.imwrite(str(bgra), img)
    assert (
        cv2.imread(
            str(sharpen_image_file(grey, "g.png", "fast", models, workspace, Limits()).path), cv2.IMREAD_UNCHANGED
        ).ndim
        == 2
    )
    out = cv2.imread(
        str(sharpen_image_file(bgra, "a.png", "fast", models, workspace, Limits()).path), cv2.IMREAD_UNCHANGED
    )
    assert out.shape == (32, 32, 4) and np.array_equal(out[:, :, 3], img[:, :, 3])


def test_to_rgb8_and_preview():
    bgr16 = np.zeros((4, 6, 3), np.uint16)
    bgr16[..., 0] = 65535  # blue
    rgb = to_rgb8(bgr16)
    assert rgb.dtype == np.uint8 and rgb[0, 0].tolist() == [0, 0, 255]
    assert to_rgb8(np.zeros((4, 6), np.uint8)).shape == (4, 6, 3)
    assert preview(np.zeros((3000, 1000, 3), np.uint8), 300).shape == (300, 100, 3)


def test_quality_against_the_clean_image():
    clean = make_test_image(32, 32)
    m = quality(clean, clean, clean)
    assert m["psnr_after"] == float("inf") and m["ssim_after"] == pytest.approx(1.0)
    assert "∞" in metrics_markdown(m)


def test_the_gain_of_an_infinite_psnr_is_not_inf_or_nan():
    m = {"psnr_before": float("inf"), "ssim_before": 1.0, "psnr_after": 51.27, "ssim_after": 0.9996}
    gain = metrics_markdown(m).splitlines()[-1]
    assert gain.startswith("| gain | −∞ |") and "inf" not in gain  # was "| gain | -inf |"
    both = metrics_markdown({**m, "psnr_after": float("inf"), "ssim_after": 1.0}).splitlines()[-1]
    assert both.startswith("| gain | +0.00 |")  # was "+nan"
    up = metrics_markdown({**m, "psnr_before": 30.0, "psnr_after": float("inf")}).splitlines()[-1]
    assert up.startswith("| gain | +∞ |")


def test_unknown_model_is_a_one_line_error(models):
    with pytest.raises(KdsharpError, match="unknown model 'huge'"):
        models.get("huge")


def test_degrade_then_sharpen(models, workspace):
    clean = cv2.cvtColor(make_test_image(64, 80), cv2.COLOR_BGR2RGB)
    res = degrade_and_sharpen(clean, "My pic.jpg", "defocus", 3, "fast", models, workspace, Limits())
    assert res.degraded.shape == res.sharpened.shape == clean.shape and not np.array_equal(res.degraded, clean)
    assert res.degraded_path.name == "My_pic_defocus.png" and res.sharpened_path.name == "My_pic_defocus_fast.png"
    assert cv2.imread(str(res.sharpened_path)).shape == (64, 80, 3) and res.metrics["psnr_before"] < 60
    again = degrade_and_sharpen(clean, "x.png", "defocus", 3, "fast", models, workspace, Limits())
    assert np.array_equal(again.degraded, res.degraded)  # seeded
    with pytest.raises(KdsharpError, match="unknown preset 'foggy'"):
        degrade_and_sharpen(clean, "x.png", "foggy", 3, "fast", models, workspace, Limits())


def test_webcam_frame_runs_fast_and_shrinks_big_frames(models):
    assert webcam_frame(None, models) is None
    out = webcam_frame(cv2.cvtColor(make_test_image(48, 64), cv2.COLOR_BGR2RGB), models)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    assert webcam_frame(np.zeros((200, 400, 4), np.uint8), models, max_side=100).shape == (50, 100, 3)


def test_workspace_prunes_old_jobs_and_is_removed_on_close():
    ws = Workspace(max_age_s=60)
    old, new = ws.job(), ws.job()
    (old / "x.png").write_bytes(b"1")
    past = time.time() - 120
    os.utime(old / "x.png", (past, past))  # an old job: its files and its folder
    os.utime(old, (past, past))
    assert ws.prune() == 1 and not old.exists() and new.exists()
    ws.close()
    assert not ws.path.exists()


def test_workspace_keeps_a_long_job_that_is_still_writing():
    with Workspace(max_age_s=60) as ws:
        job = ws.job()
        (job / "clip_sharp.mp4.tmp").write_bytes(b"frames so far")  # the output being written, just now
        past = time.time() - 7200
        os.utime(job, (past, past))  # the folder itself was made two hours ago
        assert ws.prune() == 0 and job.is_dir()  # was removed under the running job
        os.utime(job / "clip_sharp.mp4.tmp", (past, past))
        assert ws.prune() == 1 and not job.exists()


# ----------------------------------------------------------------------------- video
def _clip(path: Path, n: int = 6, h: int = 48, w: int = 64) -> Path:
    from kdsharp.io.video import sine_tone, write_video

    frames = [cv2.cvtColor(np.roll(make_test_image(h, w, seed=1), 3 * i, axis=1), cv2.COLOR_BGR2RGB) for i in range(n)]
    write_video(path, frames, fps=10, audio_tone=sine_tone(n / 10))
    return path


def test_sharpen_video_file_writes_the_clip_and_a_side_by_side_preview(tmp_path, models, workspace):
    from kdsharp.io.video import probe_video

    src = _clip(tmp_path / "in.mp4")
    seen = []
    res = sharpen_video_file(
        src, "My call.mp4", "fast", models, workspace, Limits(), report=lambda d, t, stage: seen.append((d, t, stage))
    )
    out, sbs = probe_video(res.path), probe_video(res.side_by_side)
    assert res.path.name == "My_call_sharp.mp4" and (out.width, out.height, out.audio_streams) == (64, 48, 1)
    assert res.frames == 6 and (sbs.width, sbs.height, sbs.codec) == (128, 48, "h264") and sbs.audio_streams == 1
    assert seen[0] == (0, 6, "sharpening") and (6, 6, "sharpening") in seen and "6 frames 64x48" in res.summary
    assert seen[-1] == (6, 6, "side-by-side preview")


def test_a_long_video_job_outlives_gradio_deleting_its_upload(tmp_path, models, workspace):
    (workspace.path / "uploads").mkdir()
    src = _clip(workspace.path / "uploads" / "in.mp4", n=6)  # where gradio keeps uploads (GRADIO_TEMP_DIR)

    def report(done, total, stage):  # gradio's cache cleaning (delete_cache) removes the upload mid-job
        src.unlink(missing_ok=True)

    res = sharpen_video_file(src, "in.mp4", "fast", models, workspace, Limits(), report=report)
    assert res.frames == 6 and res.side_by_side.is_file()  # was: the preview could not open the deleted upload
    assert sorted(p.name for p in res.path.parent.iterdir()) == ["in_sharp.mp4", "in_side_by_side.mp4"]


def test_the_side_by_side_preview_of_a_rotated_clip_is_upright(tmp_path):
    """A phone's portrait clip: the preview stacked the stored frames and kept the rotation tag, so the
    page showed the sharpened clip above the input under a label saying 'input | sharpened'."""
    from test_infer_helpers import make_video

    from kdsharp.app.processing import side_by_side
    from kdsharp.io.video import probe_video, read_frames

    src = make_video(tmp_path / "phone.mp4", frames=3, size=(64, 48), audio=False, rotation=90)
    dst = side_by_side(src, src, tmp_path / "sbs.mp4")
    info = probe_video(dst)
    assert (info.width, info.height, info.rotation) == (96, 64, 0)  # two upright 48x64 frames side by side
    upright = np.rot90(next(read_frames(src))[0], 1).astype(int)
    shown = next(read_frames(dst))[0].astype(int)
    assert np.abs(shown[:, :48] - upright).mean() < 8 and np.abs(shown[:, 48:] - upright).mean() < 8


def test_video_cancel_stops_the_job_and_leaves_no_file(tmp_path, models, workspace):
    src = _clip(tmp_path / "in.mp4", n=12)
    flag = threading.Event()
    flag.set()
    with pytest.raises(Cancelled, match="cancelled"):
        sharpen_video_file(src, "in.mp4", "fast", models, workspace, Limits(), cancel=flag)
    assert not [p for p in (workspace.path / "jobs").rglob("*") if p.is_file()]


def test_video_cancelled_during_the_preview_keeps_no_file(tmp_path, models, workspace):
    src = _clip(tmp_path / "in.mp4", n=6)
    flag = threading.Event()

    def report(done, total, stage):  # the visitor cancels once the clip is sharpened, during the preview
        if stage == "side-by-side preview":
            flag.set()

    with pytest.raises(Cancelled, match="nothing was kept"):
        sharpen_video_file(src, "in.mp4", "fast", models, workspace, Limits(), report=report, cancel=flag)
    assert not [p for p in (workspace.path / "jobs").rglob("*") if p.is_file()]  # was: in_sharp.mp4 left


def test_a_clip_whose_audio_its_named_container_cannot_carry_is_sharpened_into_mkv(tmp_path, models, workspace):
    from kdsharp.io.video import probe_video

    src = _clip(tmp_path / "in.mp4", n=4)  # H.264 + AAC, uploaded under a .webm name (WebM takes no AAC)
    res = sharpen_video_file(src, "call.webm", "fast", models, workspace, Limits())
    # was OutputError "/tmp/kdsharp-app-.../jobs/.../call_sharp.webm: its aac audio cannot be copied ..."
    assert res.path.name == "call_sharp.mkv" and probe_video(res.path).audio_streams == 1 and res.frames == 4


def test_bad_videos_are_one_line_errors(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(InputError, match=r"^clip\.mp4: not a readable video"):
        check_video(tmp_path / "notes.mp4", "clip.mp4", Limits())
    cv2.imwrite(str(tmp_path / "still.png"), make_test_image(16, 16))
    with pytest.raises(InputError, match="is not a video this app reads"):
        check_video(tmp_path / "still.png", "still.png", Limits())


def test_cancel_flags_and_progress_bridge():
    flags = CancelFlags()
    assert not flags.cancel("s1")
    flag = flags.start("s1")
    reports = []
    bridge = ProgressBridge(lambda d, t, stage: reports.append((d, t, stage)), flag)
    task = bridge.add_task("clip", total=10, unit="frames")
    bridge.advance(task, 4)
    assert reports == [(0, 10, "sharpening"), (4, 10, "sharpening")]
    assert flags.cancel("s1") and flag.is_set()
    with pytest.raises(Cancelled):
        bridge.advance(task, 1)
    flags.finish("s1")
    assert not flags.cancel("s1")


# ----------------------------------------------------------------------------- blind comparison
def test_sample_pair_balances_pairs_and_randomises_order():
    rng = np.random.default_rng(0)
    methods = ("input", "fast", "teacher")
    counts = Counter({frozenset(("input", "fast")): 3, frozenset(("input", "teacher")): 3})
    for _ in range(10):
        assert set(cmp.sample_pair(methods, counts, rng)) == {"fast", "teacher"}  # the least voted
    orders = Counter(cmp.sample_pair(methods, Counter(), rng) for _ in range(300))
    assert len(orders) == 6 and min(orders.values()) > 20  # every pair, both orders
    with pytest.raises(KdsharpError, match="two or more"):
        cmp.sample_pair(("fast",), Counter(), rng)
    with pytest.raises(KdsharpError, match="need two or more of"):
        cmp.check_methods(["fast", "magic"])


def test_pick_region_prefers_detail_and_zoom_is_exact():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 150:] = make_test_image(100, 50)  # detail only on the right
    x, y = cmp.pick_region(img, 40, np.random.default_rng(1), tries=30)
    assert x + 40 > 150
    z = cmp.zoom(np.arange(12, dtype=np.uint8).reshape(2, 2, 3), 3)
    assert z.shape == (6, 6, 3) and (z[:3, :3] == [0, 1, 2]).all()
    with pytest.raises(InputError, match="smaller than the 40 px"):
        cmp.pick_region(img[:30], 40, np.random.default_rng(1))


def test_tuned_unsharp_does_not_lose_to_the_input():
    from kdsharp.metrics import psnr

    clean = cv2.cvtColor(make_test_image(48, 48), cv2.COLOR_BGR2RGB)
    lq = cv2.GaussianBlur(clean, (5, 5), 1.2)
    out, params = cmp.tuned_unsharp(lq, clean)
    assert psnr(out, clean) >= psnr(lq, clean) and params["amount"] > 0


def test_make_comparison_and_its_record(models):
    clean = cv2.cvtColor(make_test_image(180, 200), cv2.COLOR_BGR2RGB)
    c = cmp.make_comparison(clean, "test.png", ("fast", "input"), "lowbw", 5, models, crop=64, margin=8)
    assert c.image_a.shape == c.image_b.shape == c.lq.shape == c.clean.shape == (64, 64, 3)
    assert np.array_equal(c.image_b, c.lq) and not np.array_equal(c.image_a, c.lq)
    x, y, w, h = c.box
    assert np.array_equal(c.clean, clean[y : y + h, x : x + w])
    rec = c.record("B", session="s", now=c.shown_at + 2.5)
    assert (rec.a, rec.b, rec.winner, rec.seconds, rec.preset, rec.seed) == ("fast", "input", "input", 2.5, "lowbw", 5)
    assert rec.image_png[:8] == b"\x89PNG\r\n\x1a\n" and "A was **fast**" in c.reveal()
    unsharp = cmp.make_comparison(clean, "test.png", ("unsharp", "input"), "defocus", 5, models, crop=64, margin=8)
    assert unsharp.a == "unsharp" and unsharp.image_a.shape == (64, 64, 3)


# ----------------------------------------------------------------------------- the vote store
def _rec(a="fast", b="input", choice="A", **kw) -> VoteRecord:
    return VoteRecord(a, b, choice, image_png=cmp.png_bytes(np.zeros((4, 4, 3), np.uint8)), **kw)


def test_votes_are_stored_with_image_pair_and_time_and_survive_a_restart(tmp_path):
    db = tmp_path / "sub" / "votes.db"
    store = VoteStore(db)
    assert store.check() is None and db.is_file()
    r1 = store.add(_rec(source="coffee.png", box=(1, 2, 3, 4), preset="lowbw", seed=9))
    r2 = store.add(_rec("teacher", "fast", "same"))
    assert r1.saved and r2.saved and (r1.vote_id, r2.vote_id) == (1, 2) and "saved" in r1.message
    again = VoteStore(db)  # a new server process
    rows = again.records()
    assert [(r["a"], r["b"], r["choice"], r["winner"]) for r in rows] == [
        ("fast", "input", "A", "fast"),
        ("teacher", "fast", "same", None),
    ]
    assert rows[0]["time"].endswith("+00:00") and json.loads(rows[0]["box"]) == [1, 2, 3, 4]
    assert again.image(rows[0]["image"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert rows[0]["image"] == rows[1]["image"]  # the same crop is stored once
    assert again.votes() == [Vote("fast", "input", "A"), Vote("teacher", "fast", "same")]
    assert again.pair_counts() == Counter({frozenset(("fast", "input")): 1, frozenset(("teacher", "fast")): 1})


def test_bad_votes_are_refused():
    with pytest.raises(ValueError, match="choice"):
        VoteRecord("fast", "input", "C")
    with pytest.raises(ValueError, match="two different"):
        VoteRecord("fast", "fast", "A")


def test_a_locked_database_queues_the_vote_and_adds_it_later(tmp_path):
    db = tmp_path / "votes.db"
    store = VoteStore(db, timeout=0.2)
    store.add(_rec())
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    result = store.add(_rec(choice="B"))
    assert not result.saved and "database is locked" in result.message and "votes.db.pending.jsonl" in result.message
    assert store.pending_path.is_file()
    blocker.execute("ROLLBACK")
    blocker.close()
    assert len(store.votes()) == 2  # the queued vote counts for the ranking already
    third = store.add(_rec(choice="same"))
    assert third.saved and "and 1 queued vote" in third.message and not store.pending_path.exists()
    assert [r["choice"] for r in store.records()] == ["A", "B", "same"]


def test_a_corrupt_database_is_reported_left_untouched_and_votes_are_kept(tmp_path):
    db = tmp_path / "votes.db"
    junk = b"this is not sqlite" * 100
    db.write_bytes(junk)
    store = VoteStore(db)
    problem = store.check()
    assert problem and "not a readable SQLite database" in problem and "move it aside" in problem
    result = store.add(_rec())
    assert not result.saved and "votes.db.pending.jsonl" in result.message
    assert db.read_bytes() == junk  # never overwritten
    with pytest.raises(VoteStoreError, match="not a readable SQLite database"):
        store.votes()
    db.rename(tmp_path / "damaged.db")  # the visitor's fix: move it aside
    assert store.check() is None and [r["a"] for r in store.records()] == ["fast"]


def test_a_vote_that_cannot_be_kept_anywhere_fails_loudly(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    store = VoteStore(ro / "votes.db")
    store.add(_rec())
    store.path.write_bytes(b"garbage")  # damaged
    store.pending_path.mkdir()  # and the side file cannot be written
    with pytest.raises(VoteStoreError, match="could NOT be saved"):
        store.add(_rec())


def test_concurrent_votes_from_threads_are_all_kept(tmp_path):
    store = VoteStore(tmp_path / "votes.db")
    threads = [threading.Thread(target=lambda: [store.add(_rec()) for _ in range(5)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.records()) == 20


def test_votes_are_read_back_from_a_path_with_uri_characters(tmp_path):
    # the read-only connection is a file: URI; a '#' cut the path (0 votes, a stray file "my"), '%' broke it
    for name in ("my#votes.db", "100%41.db", "what?.db"):
        store = VoteStore(tmp_path / name)
        assert store.add(_rec()).saved
        assert len(store.records()) == 1 and len(VoteStore(tmp_path / name).votes()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["100%41.db", "my#votes.db", "what?.db"]


def test_a_side_file_with_undecodable_bytes_is_kept_and_voting_goes_on(tmp_path):
    store = VoteStore(tmp_path / "votes.db")
    store.pending_path.write_bytes(b"\xff\xfe damaged line\n" + _rec(choice="B").to_json().encode() + b"\n")
    assert store.check() is None  # was a UnicodeDecodeError traceback (at start-up and on every vote)
    assert store.add(_rec()).saved
    assert [r["choice"] for r in store.records()] == ["B", "A"]
    assert store.pending_path.read_bytes() == b"\xff\xfe damaged line\n"  # the damaged line left as it was


def test_a_vote_queued_by_another_server_while_the_side_file_is_flushed_is_not_lost(tmp_path):
    """Two servers (processes) on one database: server B queues a vote while server A is moving the
    side file into the database; A's flush used to delete the side file with B's vote in it."""
    a, b = VoteStore(tmp_path / "votes.db"), VoteStore(tmp_path / "votes.db")
    a.check()
    a._queue(_rec(choice="A"))  # waiting from an earlier lock
    write = a._write
    queuer: list[threading.Thread] = []

    def write_while_b_queues(records, doing):
        t = threading.Thread(target=b._queue, args=(_rec(choice="B"),))
        t.start()  # B's database write failed meanwhile: its vote goes to the side file
        queuer.append(t)
        time.sleep(0.3)
        return write(records, doing)

    a._write = write_while_b_queues
    assert a.flush() == 1
    queuer[0].join(5)
    assert not queuer[0].is_alive()
    a._write = write
    assert sorted(v.choice for v in VoteStore(tmp_path / "votes.db").votes()) == ["A", "B"]


# ----------------------------------------------------------------------------- the ranking
def test_bradley_terry_recovers_the_order_and_is_finite_for_an_undefeated_method():
    w = tally([Vote("a", "b", "A")] * 8 + [Vote("b", "c", "A")] * 8 + [Vote("a", "c", "A")] * 8, ["a", "b", "c"])
    s = bradley_terry(w)
    assert s[0] > s[1] > s[2] and np.isfinite(s).all() and abs(s.sum()) < 1e-9
    sc = scores(s)
    assert 1 <= sc.min() and sc.max() <= 5 and sc[0] > 4 and sc[2] < 2
    assert scores(np.zeros(3)).tolist() == [3.0, 3.0, 3.0]


def test_ties_count_half_and_equal_methods_score_three():
    w = tally([Vote("a", "b", "same")] * 4, ["a", "b"])
    assert w.tolist() == [[0, 2], [2, 0]]
    r = rank_votes([Vote("a", "b", "A"), Vote("a", "b", "B")] * 5, bootstrap=200)
    assert all(row.score == pytest.approx(3.0) for row in r.rows)
    assert all(row.score_ci[0] < 3 < row.score_ci[1] for row in r.rows)


def test_rank_votes_rows_intervals_and_markdown():
    votes = (
        [Vote("teacher", "input", "A")] * 12
        + [Vote("fast", "input", "A")] * 8
        + [Vote("input", "fast", "A")] * 2
        + [Vote("teacher", "fast", "same")] * 3
        + [Vote("fast", "teacher", "B")] * 5
    )
    r = rank_votes(votes, bootstrap=300, seed=1)
    assert [row.method for row in r.rows] == ["teacher", "fast", "input"] and r.votes == 30
    t = r.rows[0]
    assert (t.comparisons, t.wins, t.ties, t.losses) == (20, 17, 3, 0) and t.win_rate == pytest.approx(18.5 / 20)
    for row in r.rows:
        assert row.strength_ci[0] <= row.strength <= row.strength_ci[1]
        assert 1 <= row.score_ci[0] <= row.score <= row.score_ci[1] <= 5
        assert 0 <= row.win_rate_ci[0] <= row.win_rate <= row.win_rate_ci[1] <= 1
    md = ranking_markdown(r, {"teacher": {"psnr": 31.02, "ssim": 0.862}})
    assert "| 1 | teacher |" in md and "31.02" in md and "PSNR (dB)" in md and "30 votes" in md
    assert rank_votes([]).rows == [] and "no votes" in rank_votes([]).notes[0]


def test_wilson_interval():
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


def test_eval_votes_cli_ranks_a_database_next_to_psnr_ssim(tmp_path, capsys):
    from kdsharp.cli import main

    store = VoteStore(tmp_path / "votes.db")
    for choice in ("A", "A", "A", "same", "B"):
        store.add(_rec("fast", "input", choice))
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.json").write_text(
        json.dumps({"overall": {"fast": {"psnr": 30.46, "ssim": 0.8314}, "input": {"psnr": 30.18, "ssim": 0.829}}})
    )
    assert main(["eval", "--votes", str(tmp_path / "votes.db"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "fast" in err and "30.46" in err and "votes.md" in err
    md = (out / "votes.md").read_text()
    assert "| 1 | fast |" in md and "| 2 | input |" in md and "0.8314" in md
    data = json.loads((out / "votes.json").read_text())
    assert data["votes"] == 5 and data["rows"][0]["method"] == "fast" and data["quality"]["fast"]["psnr"] == 30.46
    ranking, _ = vote_report(tmp_path / "votes.db")
    assert ranking.rows[0].comparisons == 5
    code = main(["eval", "--votes", str(tmp_path / "missing.db"), "-o", str(out)])
    assert code == 2 and "missing.db: no such vote database" in capsys.readouterr().err


def test_app_command_is_registered_and_explains_the_missing_extra(monkeypatch, capsys):
    import builtins

    from kdsharp.cli import main

    assert main(["app", "--help"]) == 0
    assert "--votes" in capsys.readouterr().out
    real_import = builtins.__import__

    def no_gradio(name, *args, **kwargs):
        if name == "gradio":
            raise ImportError("No module named 'gradio'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gradio)
    assert main(["app", "--port", "7999"]) == 2
    assert 'pip install "kdsharp[app]"' in capsys.readouterr().err


def test_the_page_builds_with_gradio(tmp_path, models):
    pytest.importorskip("gradio")
    from kdsharp.app.ui import build

    with Workspace() as ws:
        demo = build(models, VoteStore(tmp_path / "v.db"), ws, Limits(), ("input", "fast"), store_problem="x: locked")
        ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {
        "image-input",
        "image-slider",
        "image-download",
        "video-run",
        "video-cancel",
        "degrade-run",
        "webcam-input",
        "compare-a",
        "compare-b",
        "vote-a",
        "vote-same",
        "vote-b",
        "compare-banner",
    } <= ids


def test_cancel_also_drops_a_clip_still_waiting_in_the_queue(tmp_path, models):
    pytest.importorskip("gradio")
    from kdsharp.app.ui import build

    with Workspace() as ws:
        demo = build(models, VoteStore(tmp_path / "v.db"), ws, Limits(), ("input", "fast"))
    by_id = {getattr(b, "elem_id", None): i for i, b in demo.blocks.items()}
    deps = demo.config["dependencies"]

    def triggered_by(elem):
        return [d for d in deps if [by_id[elem], "click"] in [list(t) for t in d["targets"]]]

    (run,) = triggered_by("video-run")
    cancels = [c for d in triggered_by("video-cancel") for c in d.get("cancels") or []]
    assert run["id"] in cancels  # was: Cancel said "Nothing to cancel." and the queued clip ran anyway


def test_model_speeds_shown_match_the_measured_ones():
    """The picker's figures agree (within 25%) with the frames/s of the shipped eval report."""
    import re

    from kdsharp.app.processing import SPEED

    report = json.loads((Path(__file__).parents[1] / "docs" / "eval" / "report.json").read_text())
    from kdsharp.registry import split_ensemble

    for name, text in SPEED.items():
        model, passes = split_ensemble(name)
        fps = report["methods"][model]["fps_cpu_1080p"] / passes
        per_second = re.search(r"about (\d+(?:\.\d+)?) frames?/s", text)
        shown = float(per_second.group(1)) if per_second else 1 / float(re.search(r"about (\d+) s per", text).group(1))
        assert 0.8 <= shown / fps <= 1.25, (name, text, fps)


def test_app_refuses_a_vote_database_path_that_can_never_be_written(tmp_path, capsys):
    pytest.importorskip("gradio")
    from kdsharp.cli import main

    (tmp_path / "votes").mkdir()
    (tmp_path / "file.txt").write_text("x")
    for votes, says in ((tmp_path / "votes", "is a folder"), (tmp_path / "file.txt" / "v.db", "cannot be created")):
        assert main(["app", "--port", "7999", "--votes", str(votes)]) == 2
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(lines) == 1 and str(votes) in lines[0] and says in lines[0] and "--votes" in lines[0], lines


def test_app_bad_compare_list_names_the_option(capsys):
    pytest.importorskip("gradio")
    from kdsharp.cli import main

    assert main(["app", "--port", "7999", "--compare", "fast,magic"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --compare fast,magic:") and "student" in lines[0], lines


def test_a_reference_of_another_size_is_refused_before_the_model_runs(tmp_path, models, workspace, monkeypatch):
    import kdsharp.app.processing as processing

    cv2.imwrite(str(tmp_path / "lq.png"), make_test_image(40, 56))
    cv2.imwrite(str(tmp_path / "small.png"), make_test_image(20, 56))

    def no_model(*a, **k):
        raise AssertionError("the model ran before the reference was checked")

    monkeypatch.setattr(processing, "sharpen_array", no_model)
    with pytest.raises(InputError, match="clean.png: is 56x20 but the image is 56x40"):
        sharpen_image_file(
            tmp_path / "lq.png",
            "lq.png",
            "teacher",
            models,
            workspace,
            Limits(),
            reference=tmp_path / "small.png",
            reference_name="clean.png",
        )


def test_a_vote_before_any_pair_names_the_button_that_loads_one(tmp_path, models):
    pytest.importorskip("gradio")
    from kdsharp.app.ui import build

    with Workspace() as ws:
        demo = build(models, VoteStore(tmp_path / "v.db"), ws, Limits(), ("input", "fast"))
        labels = {b.value for b in demo.blocks.values() if type(b).__name__ == "Button"}
        vote = next(f.fn for f in demo.fns.values() if f.name == "vote")
        with pytest.warns(UserWarning):
            message = vote(None, "random", "random", None, None)[3]
    button = message.split("'")[1]  # was 'New pair', a button the page does not have
    assert button in labels and "Skip" in button


def test_the_degrade_tab_shows_previews_and_downloads_full_size(tmp_path, models):
    pytest.importorskip("gradio")
    from kdsharp.app.processing import PREVIEW_SIDE
    from kdsharp.app.ui import build

    src = tmp_path / "wide.png"
    cv2.imwrite(str(src), make_test_image(24, PREVIEW_SIDE + 200))
    with Workspace() as ws:
        demo = build(models, VoteStore(tmp_path / "v.db"), ws, Limits(), ("input", "fast"))
        on_degrade = next(f.fn for f in demo.fns.values() if f.name == "on_degrade")
        (degraded, sharpened), _, files = on_degrade({"path": str(src), "orig_name": "wide.png"}, "defocus", 1, "fast")
        assert degraded.shape[1] == sharpened.shape[1] == PREVIEW_SIDE  # was the full 2248 px sent to the page
        assert [cv2.imread(f).shape[1] for f in files] == [PREVIEW_SIDE + 200] * 2
