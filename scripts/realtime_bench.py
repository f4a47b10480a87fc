"""Real-time video figures for the README: one JSON report, nothing typed by hand.

    python scripts/realtime_bench.py -o docs/bench/realtime.json      # ~10 min on 2 cores
    python scripts/readme_results.py                                   # renders it into the README

Runs, each in a fresh ``kdsharp`` process, on synthetic call clips (``kdsharp.infer.clips``:
10 s, 30 fps, H.264 + AAC; ``pan``: everything moves, ``talking``: a static room, a person in the
centre):

* ``kdsharp bench --video CLIP --model M --json`` (decode -> model -> encode, audio copied; model
  loading excluded) for 1080p pan with ``fast`` and ``student`` (on a CPU with bfloat16
  instructions the ``student`` runs bf16 autocast by default, so ``student --no-half`` runs too:
  float32), 720p pan and talking head with ``fast``;
* the 1080p ``fast`` run again with one busy process per core (a call app using the CPU);
* ``kdsharp live`` 720p30 talking head and pan and 1080p30 pan with ``fast`` into a file (frames dropped,
  latency, CPU seconds), and the 720p ones again with one busy process per core; and a 720p webcam
  recording (the talking head with sensor noise, ``cam``) with exact reuse and with a camera's
  ``--reuse-tolerance 3``, quiet and loaded;
* x264 at each speed preset on the first 3 s of the 1080p and 720p pan clips: CPU ms per frame,
  Mbit/s and the PSNR of the re-encoded luma against the decoded input (what ``--encoder-preset``
  trades);
* temporal reuse (``--reuse``) on the 720p talking head: share of tiles skipped, model CPU ms;
* with ``--student-reuse`` (nothing else): ``student`` end to end and live on the 720p talking head
  and webcam recording, without and with temporal reuse (the RGB path's);
* with ``--avx2``: the bare ``fast`` model and the 1080p ``fast`` and ``student`` runs with PyTorch,
  oneDNN and OpenCV held to AVX2 code (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``,
  ``OPENCV_CPU_DISABLE=AVX512_*``) -- the kernels an AVX2-only CPU runs, on this CPU's cores (an
  emulation: the clock and caches stay this CPU's; x264 keeps its own dispatch).

The report records the CPU (``lscpu`` model name and whether it has AVX-512), the load average
before each run and the kdsharp/torch versions. Do not run it beside training: it measures speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CAMERA_NOISE = 2.0  # the 720p_cam clip: sensor noise (levels) on the talking head, as a webcam records it
AVX2_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    # OpenCV (the student's full-resolution stage, colour conversions): no AVX-512 dispatch either
    "OPENCV_CPU_DISABLE": "AVX512_SKX,AVX512_COMMON,AVX512_KNL,AVX512_KNM,AVX512_CNL,AVX512_CLX,AVX512_ICL",
}


def cpu_info() -> dict:
    """Model name, core count and ISA of this machine (from ``lscpu``)."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    field = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}
    flags = field.get("Flags", "").split()
    return {
        "model_name": field.get("Model name", platform.processor()),
        "family": field.get("CPU family"),
        "model": field.get("Model"),
        "cpus": os.cpu_count(),
        "avx2": "avx2" in flags,
        "avx512": any(f.startswith("avx512f") for f in flags),
        "bf16": "avx512_bf16" in flags or "amx_bf16" in flags,
    }


def cpu_label(c: dict) -> str:
    """'AMD EPYC (family 25 model 17, 2 cores, AVX-512 yes)' from :func:`cpu_info`."""
    return (
        f"{c['model_name']} (family {c['family']} model {c['model']}, {c['cpus']} cores, "
        f"AVX-512 {'yes' if c['avx512'] else 'no'})"
    )


def git_commit() -> str | None:
    """The checkout's commit (short hash, ``+`` when the tree has changes), None outside git."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return git("rev-parse", "--short", "HEAD") + (
            "+" if git("status", "--porcelain", "--untracked-files=no") else ""
        )
    except (OSError, subprocess.CalledProcessError):
        return None


def report_header(script: str) -> dict:
    """What every speed report starts with: the command, when, kdsharp/commit/torch, and the CPU."""
    import torch

    import kdsharp

    return {
        "command": f"python scripts/{script} " + " ".join(sys.argv[1:]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "kdsharp_version": kdsharp.__version__,
        "commit": git_commit(),
        "torch_version": torch.__version__,
        "cpu": cpu_info(),
    }


def _busy() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy_processes(n: int):
    """``n`` processes spinning on a core each while the block runs (a call app using the CPU)."""
    hogs = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(n)]
    for h in hogs:
        h.start()
    try:
        yield
    finally:
        for h in hogs:
            h.terminate()
            h.join()


def run_kdsharp(
    args: list[str], env: dict | None = None, load: int = 0
) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``kdsharp ARGS`` in a new process with ``load`` busy processes beside it: (result, load avg
    before, the CPU seconds (user + system, all threads) the kdsharp process used)."""
    with busy_processes(load):
        before = os.getloadavg()[0]
        usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the busy processes are reaped only after
        res = subprocess.run(
            [sys.executable, "-m", "kdsharp", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            check=False,
        )
        usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return res, round(before, 2), cpu_s


def run_json(args: list[str], env: dict | None = None, load: int = 0) -> dict:
    """Run ``kdsharp ARGS`` (printing one JSON object); the object plus ``load_avg_before``."""
    res, before, _ = run_kdsharp(args, env, load)
    if res.returncode:
        raise SystemExit(f"kdsharp {' '.join(args)} failed:\n{res.stderr[-2000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["load_avg_before"] = before
    return out


def run_live(clip: Path, out: Path, load: int = 0, extra: tuple[str, ...] = (), model: str = "fast") -> dict:
    """``kdsharp live`` from ``clip`` (read at its frame rate) into a file, with ``extra`` options;
    the summary line parsed, and the CPU seconds of the whole process."""
    args = ["live", "--source", str(clip), "--sink", str(out), "--model", model, "--overwrite", *extra]
    res, before, cpu_s = run_kdsharp(args, {"KDSHARP_QUIET": "1"}, load)
    m = re.search(
        r"(\d+) frames? processed, (\d+) dropped to keep up \(([\d.]+)%\), ([\d.]+) frames/s, mean latency (\d+) ms",
        res.stderr,
    )
    if res.returncode or not m:
        raise SystemExit(f"kdsharp live {clip} failed:\n{res.stderr[-2000:]}")
    processed, dropped, pct, fps, latency = m.groups()
    workers = re.search(r"(\d+) workers", res.stderr)
    reused = re.search(r"(\d+)% tiles reused(?: within (\d+) levels)?", res.stderr)
    return {
        "options": list(extra),
        "workers": int(workers.group(1)) if workers else 1,
        "reused_pct": int(reused.group(1)) if reused else None,
        "reuse_tolerance": int(reused.group(2)) if reused and reused.group(2) else 0,
        "cpu_s": round(cpu_s, 2),
        "processed": int(processed),
        "dropped": int(dropped),
        "dropped_pct": float(pct),
        "fps": float(fps),
        "latency_ms": int(latency),
        "load_avg_before": before,
    }


def encoder_costs(
    clip: Path, presets=("veryfast", "superfast", "ultrafast", "fast"), crf: int = 18, frames: int = 90
) -> dict:
    """x264 cost of each ``preset`` on the first ``frames`` frames of ``clip`` (decoded once, yuv420p)."""
    import av
    import numpy as np

    from kdsharp.io.video import VideoWriter

    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        fps, time_base = stream.average_rate, stream.time_base  # the frames keep their pts (in time_base)
        src = []
        for f in c.decode(stream):
            src.append(f.reformat(format="yuv420p"))
            if len(src) == frames:
                break
    w, h = src[0].width, src[0].height
    y_src = [f.to_ndarray()[:h].astype(np.float64) for f in src]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in presets:
            path = Path(tmp) / f"{preset}.mp4"
            t0 = time.process_time()
            with VideoWriter(path, w, h, fps, time_base=time_base, preset=preset, crf=crf) as vw:
                for f in src:
                    vw.write_frame(f)
            cpu_ms = 1000 * (time.process_time() - t0) / len(src)
            with av.open(str(path)) as c:
                y_out = [f.to_ndarray(format="yuv420p")[:h].astype(np.float64) for f in c.decode(video=0)]
            mse = np.mean([np.mean((a - b) ** 2) for a, b in zip(y_src, y_out, strict=True)])
            out[preset] = {
                "cpu_ms_per_frame": round(cpu_ms, 2),
                "mbit_s": round(path.stat().st_size * 8 / (len(src) / float(fps)) / 1e6, 3),
                "psnr_y": round(float(10 * np.log10(255**2 / mse)), 2),
            }
    return {"size": f"{w}x{h}", "frames": len(src), "crf": crf, "presets": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/bench/realtime.json"))
    ap.add_argument("--clips", type=Path, default=None, help="folder for the clips (default: a temp folder)")
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length (s)")
    ap.add_argument("--avx2", action="store_true", help="also run with PyTorch/oneDNN held to AVX2 code")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument(
        "--student-reuse", action="store_true", help="only temporal reuse with student (the RGB path), on and off"
    )
    a = ap.parse_args()

    from kdsharp.infer.clips import write_call_clip

    folder = a.clips or Path(tempfile.mkdtemp(prefix="kdsharp-rt-"))
    folder.mkdir(parents=True, exist_ok=True)
    clips = {}
    for name, size, kind in (
        ("1080p_pan", (1920, 1080), "pan"),
        ("720p_pan", (1280, 720), "pan"),
        ("720p_talking", (1280, 720), "talking"),
        ("720p_cam", (1280, 720), "talking"),
    ):
        path = folder / f"{name}_{a.seconds:g}s.mp4"
        if not path.exists():
            camera = dict(noise=CAMERA_NOISE, crf=12) if name.endswith("_cam") else {}  # noise kept by the encoder
            write_call_clip(path, size=size, seconds=a.seconds, kind=kind, **camera)
        clips[name] = path

    report: dict = {**report_header("realtime_bench.py"), "clip_seconds": a.seconds, "sharpen": {}}
    if a.student_reuse:
        report["student_reuse"] = student_reuse(clips, folder)
        write_report(report, a.out)
        return
    runs = [("1080p_pan", "fast"), ("720p_pan", "fast"), ("720p_talking", "fast"), ("1080p_pan", "student")]
    for clip, model in runs:
        print(f"sharpen {clip} {model}", file=sys.stderr)
        report["sharpen"][f"{clip}/{model}"] = run_json(
            ["bench", "--video", str(clips[clip]), "--model", model, "--json"]
        )
    print("sharpen 1080p_pan student --compile", file=sys.stderr)  # compiled before the clock starts
    report["sharpen"]["1080p_pan/student/compile"] = run_json(
        ["bench", "--video", str(clips["1080p_pan"]), "--model", "student", "--compile", "--json"]
    )
    from kdsharp.devices import cpu_has_native_bf16

    if cpu_has_native_bf16():  # the student ran bf16 by default above (autocast): float32 beside it
        print("sharpen 1080p_pan student --no-half", file=sys.stderr)
        report["sharpen"]["1080p_pan/student/fp32"] = run_json(
            ["bench", "--video", str(clips["1080p_pan"]), "--model", "student", "--no-half", "--json"]
        )
    print("sharpen 1080p_pan fast, one busy process per core", file=sys.stderr)
    report["sharpen"]["1080p_pan/fast/loaded"] = run_json(
        ["bench", "--video", str(clips["1080p_pan"]), "--model", "fast", "--json"], load=os.cpu_count() or 2
    )
    print("temporal reuse", file=sys.stderr)
    report["reuse"] = {
        "clip": "720p_talking",
        "on": run_json(["bench", "--video", str(clips["720p_talking"]), "--model", "fast", "--reuse", "--json"]),
    }
    print("encoder presets", file=sys.stderr)
    report["encoder"] = {k: encoder_costs(clips[k]) for k in ("1080p_pan", "720p_pan")}
    report["bare"] = {m: run_json(["bench", "--model", m, "--json"]) for m in ("fast", "student")}
    if not a.skip_live:
        report["live"] = {}
        busy = os.cpu_count() or 2
        for clip, load, extra in (
            ("720p_talking", 0, ()),
            ("720p_pan", 0, ()),
            ("1080p_pan", 0, ()),
            ("720p_talking", busy, ()),
            ("720p_pan", busy, ()),
            # a webcam recording, read as a camera would deliver it: exact reuse, then a camera's tolerance
            ("720p_cam", 0, ("--reuse-tolerance", "0")),
            ("720p_cam", 0, ("--reuse-tolerance", "3")),
            ("720p_cam", busy, ("--reuse-tolerance", "0")),
            ("720p_cam", busy, ("--reuse-tolerance", "3")),
        ):
            key = clip + ("/loaded" if load else "") + (f"/tolerance{extra[1]}" if extra else "")
            print(f"live {key}", file=sys.stderr)
            report["live"][key] = run_live(clips[clip], folder / f"live_{clip}.mp4", load=load, extra=extra)
    if a.avx2:
        print("AVX2 code paths", file=sys.stderr)
        report["avx2_emulated"] = {
            "env": AVX2_ENV,
            "bare_fast": run_json(["bench", "--model", "fast", "--json"], env=AVX2_ENV),
            "bare_fast_native": run_json(["bench", "--model", "fast", "--json"]),
            "sharpen_1080p_pan_fast": run_json(
                ["bench", "--video", str(clips["1080p_pan"]), "--model", "fast", "--json"], env=AVX2_ENV
            ),
            "sharpen_1080p_pan_student": run_json(
                ["bench", "--video", str(clips["1080p_pan"]), "--model", "student", "--json"], env=AVX2_ENV
            ),
        }
    write_report(report, a.out)


def student_reuse(clips: dict[str, Path], folder: Path, repeat: int = 3) -> dict:
    """``student`` on the 720p talking head (H.264) and webcam recording, end to end and live, without
    and with temporal reuse (its default tolerance): what reuse gives the RGB path. The student runs
    at the edge of real time there, where the share of frames ``live`` drops swings with the VM's speed
    of the minute: each live run is made ``repeat`` times, off and on in turn; the run with the median
    drop is reported, with every run's drop in ``runs_dropped_pct``."""
    out: dict = {"sharpen": {}, "live": {}}
    for clip in ("720p_talking", "720p_cam"):
        for key, extra in (("off", []), ("reuse", ["--reuse"])):
            print(f"sharpen {clip} student {key}", file=sys.stderr)
            out["sharpen"][f"{clip}/{key}"] = run_json(
                ["bench", "--video", str(clips[clip]), "--model", "student", *extra, "--json"]
            )
        runs: dict[str, list[dict]] = {"off": [], "reuse": []}
        for i in range(repeat):
            for key, extra in (("off", ("--no-reuse",)), ("reuse", ())):
                print(f"live {clip} student {key} ({i + 1} of {repeat})", file=sys.stderr)
                sink = folder / f"live_{clip}_student.mp4"
                runs[key].append(run_live(clips[clip], sink, extra=extra, model="student"))
        for key, done in runs.items():
            median = sorted(done, key=lambda r: r["dropped"])[len(done) // 2]
            out["live"][f"{clip}/{key}"] = {**median, "runs_dropped_pct": [r["dropped_pct"] for r in done]}
    return out


def write_report(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(path)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
