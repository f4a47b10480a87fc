"""Regenerate the built-in samples: ``python kdsharp/data/samples/make_samples.py``.

Photos come from scikit-image's bundled data (public domain / CC0, see README.md), resized with
area interpolation so the long side is 336 px (the set stays under 600 KB); ``slide.png`` is drawn by
``kdsharp.data.synthetic.slide_image`` with a fixed seed. All are written as PNG at
maximum zlib compression.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

LONG_SIDE = 336
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


HERE = Path(__file__).resolve().parent


def main(out: Path = HERE) -> None:
    import skimage.data as skdata

    from kdsharp.data.sources import limit_side, to_rgb_uint8
    from kdsharp.data.synthetic import slide_image
    from kdsharp.io.atomic import atomic_path

    def save(name: str, rgb: np.ndarray) -> None:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        with atomic_path(out / name) as tmp:
            buf.tofile(str(tmp))

    for name in PHOTOS:
        save(f"{name}.png", limit_side(to_rgb_uint8(getattr(skdata, name)(), name), LONG_SIDE))
    save("slide.png", slide_image(264, LONG_SIDE, np.random.default_rng(2024)))
    for p in sorted(out.glob("*.png")):
        print(f"{p.name}: {p.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
