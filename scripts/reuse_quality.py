"""What temporal reuse saves and costs on a talking head from a camera or a codec: one JSON report.

    python scripts/reuse_quality.py -o docs/bench/reuse_camera.json      # ~2 min on 2 cores
    python scripts/reuse_quality.py --model student -o docs/bench/reuse_student.json   # ~5 min
    python scripts/readme_results.py                                     # renders them into the README

Frames: the synthetic talking head of ``kdsharp.infer.clips`` (a static room, a person swaying in
the centre), 1280x720, 30 fps, as kdsharp gets them:

* ``camera``: as a camera gives them before any encoder, the rendering plus fresh Gaussian sensor
  noise of ``sigma`` levels (RGB, 0-255) in every frame, converted to YUV 4:2:0 as ``kdsharp live``
  converts camera frames (``kdsharp.io.video.rgb_to_yuv420``);
* ``h264``: the rendering (with or without that noise) encoded by x264 at a CRF and decoded, as a
  call or a recording delivers it (the static room flickers a little from frame to frame).

The reference is what the model makes of the rendering itself (no noise, no codec): the picture
it would give from a perfect source. (The rendering is soft by design, so it is no ground truth for
a sharpener.) For each source the shipped ``fast`` runs on the Y planes (one thread) without reuse
and with :class:`kdsharp.infer.frames.TileReuse` at each tolerance, each frame compared with the
previous one, its chroma step (chroma from luma) on the 4:2:0 chroma planes as the video path runs
it (with reuse: only the chroma rows that recomputed tiles reach); reported: model ms per frame
(network and chroma step), the share of tiles skipped, PSNR of the output luma and of the output
chroma (Cb and Cr pooled) against the reference and their differences to the run without reuse
(the cost of reuse, target <= 0.05 dB), and PSNR against the run without reuse.

``--model student``: the RGB path instead. Each frame is converted to RGB as the video path does,
and the shipped ``student`` (its chroma step on the RGB frame included) runs on it whole or through
:func:`kdsharp.infer.frames.rgb_tile_reuse` (tiles recomputed with ``RGB_MARGIN`` pixels of
context, so not bit-exact even at tolerance 0); PSNR is over R, G and B.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realtime_bench import report_header

Planes = tuple[np.ndarray, ...]  # a 4:2:0 frame's uint8 planes: Y (H, W), then U, V (H/2, W/2)


def psnr_pooled(outputs: list[np.ndarray], refs: list[np.ndarray]) -> float | None:
    """PSNR (dB) of the mean squared error over all frames; None where every frame is identical."""
    mse = np.mean([np.mean((o.astype(np.float64) - r) ** 2) for o, r in zip(outputs, refs, strict=True)])
    return float(10 * np.log10(255.0**2 / mse)) if mse > 0 else None


def rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/bench/reuse_camera.json"))
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument(
        "--sources",
        default="camera:0,camera:2,camera:4,h264:0:23,h264:0:32,h264:2:23",
        help="camera:SIGMA (sensor noise, RGB levels) or h264:SIGMA:CRF (that, then x264 at CRF), comma-separated",
    )
    ap.add_argument("--tolerances", default="0,2,3,4", help="TileReuse tolerances (8-bit levels)")
    ap.add_argument("--model", choices=("fast", "student"), default="fast", help="student: the RGB path")
    a = ap.parse_args()

    from kdsharp.infer.clips import _Talking
    from kdsharp.infer.frames import REUSE_TOLERANCE, ChromaStep, LumaNet, TileReuse, luma_model, rgb_tile_reuse
    from kdsharp.infer.sharpener import Sharpener
    from kdsharp.infer.threads import keep_freed_memory
    from kdsharp.models.wrappers import ChromaFromLuma

    keep_freed_memory()  # as the app does: no fresh pages for every frame's arrays
    torch.set_num_threads(1)
    w, h = (int(v) for v in a.size.split("x"))
    talking = _Talking((w, h), a.frames, 30.0)
    sharpener = Sharpener(a.model, device="cpu", threads=1)
    rgb = a.model != "fast"

    def new_reuse(tol: int) -> TileReuse:
        reuse = rgb_tile_reuse(sharpener, tol) if rgb else TileReuse(net, model, tolerance=tol)
        assert reuse is not None
        if rgb:  # the frames are limited-range video: the tolerance counts its luma levels, as RgbFrames sets it
            reuse.level_scale = 255.0 / 219.0
        return reuse

    if rgb:  # the RGB path: colour-accurate RGB frames, the model (its chroma step on the RGB frame included)
        full_net = new_reuse(0).net

        def run(frames: list, reuse: TileReuse | None = None) -> tuple[list, float]:
            outs = []
            t0 = time.perf_counter()
            for x in frames:
                outs.append(reuse(x, True) if reuse is not None else full_net.run(full_net.pad(x))[:h, :w])
            return outs, 1000 * (time.perf_counter() - t0) / len(frames)

        def psnrs(outs: list, refs: list) -> tuple[float | None, float | None]:
            """Pooled PSNR of the RGB frames (no chroma of its own)."""
            return psnr_pooled(outs, refs), None

    else:
        model = luma_model(sharpener)
        assert isinstance(model, ChromaFromLuma)
        net = LumaNet(model)

        def run(frames: list, reuse: TileReuse | None = None) -> tuple[list, float]:
            """The video path on each frame's planes: the network (with ``reuse``, kept tiles) and the
            chroma step (with ``reuse``, on the chroma rows that recomputed tiles reach); ms per frame."""
            step = ChromaStep(model)
            outs = []
            t0 = time.perf_counter()
            for y, *chroma in frames:
                new_y = reuse(y, False) if reuse is not None else net(y, False)
                rows = reuse.rows_done if reuse is not None else None
                outs.append((new_y, *step(y, new_y, chroma, rows=rows, keep=reuse is not None)))
            return outs, 1000 * (time.perf_counter() - t0) / len(frames)

        def psnrs(outs: list, refs: list) -> tuple[float | None, float | None]:
            """Pooled PSNR of the luma and of the chroma planes (Cb, Cr together)."""
            luma = psnr_pooled([o[0] for o in outs], [r[0] for r in refs])
            chroma = psnr_pooled([c for o in outs for c in o[1:]], [c for r in refs for c in r[1:]])
            return luma, chroma

    def frames_of(sigma: float, crf: int | None) -> list:
        planes = source_frames(rendered, sigma, crf, seed=0)
        return [planes_to_rgb(p) for p in planes] if rgb else planes

    rendered = [talking.frame(i) for i in range(a.frames)]
    reference, _ = run(frames_of(0.0, None))
    report: dict = {
        **report_header("reuse_quality.py"),
        "model": a.model,
        "path": "rgb" if rgb else "yuv",
        "size": a.size,
        "frames": a.frames,
        "threads": 1,
        "default_tolerance": REUSE_TOLERANCE,
        "sources": {},
    }
    for spec in a.sources.split(","):
        kind, sigma, *crf = spec.split(":")
        frames = frames_of(float(sigma), int(crf[0]) if crf else None)
        full, full_ms = run(frames)
        full_psnr, full_chroma = psnrs(full, reference)
        row: dict = {
            "kind": kind,
            "sigma": float(sigma),
            "crf": int(crf[0]) if crf else None,
            "full": {
                "model_ms": round(full_ms, 2),
                "psnr": rounded(full_psnr, 3),
                "psnr_chroma": rounded(full_chroma, 3),
            },
            "reuse": {},
        }
        for tol in (int(t) for t in a.tolerances.split(",")):
            reuse = new_reuse(tol)
            outs, ms = run(frames, reuse)
            p, pc = psnrs(outs, reference)
            vs_full, chroma_vs_full = psnrs(outs, full)
            row["reuse"][str(tol)] = {
                "model_ms": round(ms, 2),
                "skipped": round(reuse.stats.skipped_fraction, 3),
                "psnr": rounded(p, 3),  # None: identical to the reference
                "cost_db": None if full_psnr is None or p is None else round(full_psnr - p, 4),
                "psnr_chroma": rounded(pc, 3),
                "cost_chroma_db": None if full_chroma is None or pc is None else round(full_chroma - pc, 4),
                "psnr_vs_full": rounded(vs_full, 2),
                "psnr_chroma_vs_full": rounded(chroma_vs_full, 2),
            }
        report["sources"][spec] = row
        print(f"{spec}: {json.dumps(row)}", file=sys.stderr)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".json.part")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(a.out)
    print(f"wrote {a.out}", file=sys.stderr)


def planes_to_rgb(planes: Planes) -> np.ndarray:
    """uint8 RGB (H, W, 3) of 4:2:0 planes, as the video path's RGB models get a decoded frame."""
    import av

    from kdsharp.infer.frames import plane_view
    from kdsharp.io.video import frame_to_rgb

    h, w = planes[0].shape
    f = av.VideoFrame(w, h, "yuv420p")
    for i, p in enumerate(planes):
        plane_view(f, i)[...] = p
    return frame_to_rgb(f)


def source_frames(rendered: list[np.ndarray], sigma: float, crf: int | None, seed: int) -> list[Planes]:
    """uint8 (Y, U, V) 4:2:0 planes of ``rendered`` RGB frames with sensor noise ``sigma`` and, with
    ``crf``, through x264."""
    import tempfile

    import av

    from kdsharp.infer.frames import plane_view
    from kdsharp.io.video import VideoWriter, rgb_to_yuv420

    def planes(f: av.VideoFrame) -> Planes:
        return tuple(plane_view(f, i).copy() for i in range(3))

    rng = np.random.default_rng(seed)
    noisy = [np.clip(f + rng.normal(0.0, sigma, f.shape), 0, 255).astype(np.uint8) if sigma else f for f in rendered]
    if crf is None:
        return [planes(rgb_to_yuv420(f)) for f in noisy]
    h, w = rendered[0].shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        with VideoWriter(path, w, h, 30.0, crf=crf, preset="medium") as vw:
            for f in noisy:
                vw.write(f)
        with av.open(str(path)) as c:
            return [planes(f) for f in c.decode(video=0)]


if __name__ == "__main__":
    main()
