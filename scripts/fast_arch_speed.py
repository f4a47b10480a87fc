"""Speed of `fast`-like FastNet shapes on this CPU: what a real-time `fast` may cost (maintainer script).

    python scripts/fast_arch_speed.py -o docs/bench/fast_arch_amd.json     # ~3 min on 2 cores, quiet machine

For each shape (channels x body blocks, PReLU; luma at 1/4 resolution, deployed form, random
weights: speed does not depend on them), ``kdsharp.evaluate.benchmark`` at 1920x1080 with 2
threads and with 1 thread (what each of the video pipeline's two model workers has): its Y-plane
timing, the path video takes, median of 12 calls; the multiply-adds are ``registry.count_macs``'s, as
`kdsharp models` gives them. Beside them the machine's float32 matrix-multiply rate (2048^3, 2
threads and 1): the peak a conv net can approach. Prints a markdown table and writes the figures as
JSON. Do not run it beside training: it measures speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from realtime_bench import cpu_info, git_commit  # scripts/ is on the path: this file runs as a script

from kdsharp.evaluate import benchmark
from kdsharp.infer.threads import keep_freed_memory
from kdsharp.models.common import set_memory_format
from kdsharp.models.fast import FastNet
from kdsharp.registry import count_macs

SHAPES = [(16, 3, "prelu"), (16, 2, "prelu"), (16, 1, "prelu"), (16, 0, "prelu"), (8, 3, "prelu"), (8, 4, "prelu")]


def matmul_gmacs(threads: int, calls: int = 6) -> float:
    """float32 multiply-adds per second (G) of a 2048^3 matrix product on ``threads`` threads (median)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b  # warm-up
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2048**3 / statistics.median(times) / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", type=Path, required=True)
    a = ap.parse_args()
    keep_freed_memory()
    rows = []
    for channels, blocks, act in SHAPES:
        m = FastNet(channels=channels, num_blocks=blocks, scale=4, luma=True, act=act).eval().reparameterize()
        set_memory_format(m, torch.channels_last)
        with torch.no_grad():
            for p in m.parameters():
                p.normal_(0, 0.05)
        row = dict(channels=channels, blocks=blocks, act=act, gmacs_1080p=round(count_macs(m) / 1e9, 3))
        for threads in (2, 1):
            r = benchmark(m, size=(1920, 1080), threads=threads, iters=12, max_seconds=60)
            row[f"ms_{threads}t"] = round(r["yplane_p50_ms"], 2)
        row["fps_2t"] = round(1000 / row["ms_2t"], 1)
        rows.append(row)
        print(row, file=sys.stderr)
    report = {
        "command": "python scripts/fast_arch_speed.py " + " ".join(sys.argv[1:]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "commit": git_commit(),
        "torch_version": torch.__version__,
        "cpu": cpu_info(),
        "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
        "matmul_gmacs": {"2t": round(matmul_gmacs(2), 1), "1t": round(matmul_gmacs(1), 1)},
        "shapes": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1) + "\n")
    print("| channels x body blocks | GMACs @1080p | ms, 2 threads | frames/s | ms, 1 thread |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['channels']} x {r['blocks']} ({r['act']}) | {r['gmacs_1080p']:.2f} | {r['ms_2t']:.1f} | "
            f"{r['fps_2t']:.1f} | {r['ms_1t']:.1f} |"
        )
    print(f"matmul: {report['matmul_gmacs']['2t']} GMAC/s on 2 threads, {report['matmul_gmacs']['1t']} on 1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
