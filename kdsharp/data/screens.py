"""Generated screen content: slides, code editors, spreadsheets, chat windows and app UIs drawn
with real TrueType fonts (from Debian font packages) at 1x-2x UI scale.

    render_screens(fonts, count=60, seed=0) -> [(name, kind, rgb uint8 720x1280x3)]

Deterministic: the same fonts, count and seed give the same pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = (1280, 720)  # (w, h) px
KINDS = ("slide", "code", "sheet", "chat", "ui")
WORDS = (
    "the model runs in real time on every frame of the call and keeps faces sharp while the network "
    "drops packets quarterly revenue grew across all regions meeting notes action items review the "
    "latest build before friday compression artefacts vanish after restoration budget forecast team "
    "update customer feedback roadmap milestone design system release candidate latency bandwidth "
    "camera microphone screen share participants agenda summary questions thanks everyone"
).split()
CODE = (
    "def",
    "return",
    "import",
    "for",
    "in",
    "if",
    "else",
    "class",
    "self",
    "while",
    "with",
    "as",
    "None",
    "True",
    "lambda",
    "yield",
)
THEMES = (
    ((255, 255, 255), (32, 33, 36), (26, 115, 232)),
    ((30, 30, 30), (212, 212, 212), (86, 156, 214)),
    ((246, 248, 250), (36, 41, 47), (207, 34, 46)),
    ((40, 44, 52), (171, 178, 191), (152, 195, 121)),
)

# Preferred font files (any found under the font roots are used; others are ignored).
FONT_NAMES = {
    "sans": ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "NotoSans-Regular.ttf"),
    "bold": ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "NotoSans-Bold.ttf"),
    "serif": ("DejaVuSerif.ttf", "LiberationSerif-Regular.ttf", "NotoSerif-Regular.ttf"),
    "mono": ("DejaVuSansMono.ttf", "LiberationMono-Regular.ttf", "NotoSansMono-Regular.ttf"),
}


def find_fonts(roots: list[Path]) -> dict[str, list[Path]]:
    """{role: [font files]} for the roles of :data:`FONT_NAMES` found under ``roots`` (sorted, deterministic)."""
    found: dict[str, Path] = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*.ttf")):
            found.setdefault(p.name, p)
    return {
        role: [found[n] for n in names if n in found]
        for role, names in FONT_NAMES.items()
        if any(n in found for n in names)
    }


def _text(rng, n: int) -> str:
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), n))


class _Canvas:
    """A PIL drawing surface plus the fonts and the UI scale of one screen."""

    def __init__(self, fonts: dict[str, list[Path]], rng, bg):
        from PIL import Image, ImageDraw

        self.img = Image.new("RGB", SIZE, bg)
        self.draw = ImageDraw.Draw(self.img)
        self.fonts, self.rng = fonts, rng
        self.scale = float(rng.choice([1.0, 1.25, 1.5, 2.0]))
        self._pick = {role: files[int(rng.integers(0, len(files)))] for role, files in fonts.items()}

    def font(self, role: str, px: float):
        from PIL import ImageFont

        path = self._pick.get(role) or self._pick.get("sans") or next(iter(self._pick.values()))
        return ImageFont.truetype(str(path), max(8, int(round(px * self.scale))))

    def s(self, v: float) -> int:
        return int(round(v * self.scale))


def _slide(c: _Canvas, theme):
    bg, fg, accent = theme
    d, rng = c.draw, c.rng
    d.rectangle([0, 0, SIZE[0], c.s(70)], fill=accent)
    d.text((c.s(40), c.s(14)), _text(rng, 4).title(), font=c.font("bold", 34), fill=(255, 255, 255))
    y = c.s(110)
    body = c.font(str(rng.choice(["sans", "serif"])), 22)
    while y < SIZE[1] - c.s(60):
        d.ellipse([c.s(50), y + c.s(9), c.s(60), y + c.s(19)], fill=accent)
        d.text((c.s(75), y), _text(rng, int(rng.integers(4, 9))).capitalize(), font=body, fill=fg)
        y += c.s(44)
    if rng.random() < 0.6:  # a bar chart on the right
        x0, base = SIZE[0] - c.s(420), SIZE[1] - c.s(60)
        for k in range(6):
            h = int(rng.integers(40, 300))
            d.rectangle(
                [x0 + k * c.s(60), base - c.s(h), x0 + k * c.s(60) + c.s(40), base],
                fill=tuple(int(v) for v in rng.integers(40, 230, 3)),
            )
        d.line([x0 - 10, base, SIZE[0] - 20, base], fill=fg, width=max(1, c.s(2)))


def _code(c: _Canvas, theme):
    bg, fg, accent = theme
    d, rng = c.draw, c.rng
    mono, gutter = c.font("mono", 16), c.s(56)
    d.rectangle([0, 0, SIZE[0], c.s(28)], fill=tuple(max(0, v - 20) for v in bg))
    d.text((c.s(12), c.s(6)), f"{_text(rng, 1)}_{_text(rng, 1)}.py", font=c.font("sans", 13), fill=fg)
    y, line, indent = c.s(36), 1, 0
    colours = [accent, (206, 145, 120), (78, 201, 176), (197, 134, 192), fg]
    while y < SIZE[1] - c.s(20):
        d.text((c.s(8), y), f"{line:>4d}", font=mono, fill=(128, 128, 128))
        x = gutter + indent * c.s(36)
        for k in range(int(rng.integers(1, 7))):
            keyword = k == 0 or rng.random() < 0.3
            tok = str(rng.choice(CODE)) if keyword else _text(rng, 1) + rng.choice(["", "(", ",", ")", ":", " ="])
            col = colours[int(rng.integers(0, len(colours)))] if tok in CODE else fg
            d.text((x, y), tok, font=mono, fill=col)
            x += int(d.textlength(tok + " ", font=mono))
        indent = int(np.clip(indent + rng.integers(-1, 2), 0, 4))
        y += c.s(22)
        line += 1


def _sheet(c: _Canvas, theme):
    d, rng = c.draw, c.rng
    d.rectangle([0, 0, SIZE[0], SIZE[1]], fill=(255, 255, 255))
    font, hdr = c.font("sans", 14), c.font("bold", 14)
    cw, rh = c.s(110), c.s(26)
    for r in range(0, SIZE[1] // rh + 1):
        for k in range(0, SIZE[0] // cw + 1):
            box = [c.s(40) + k * cw, r * rh, c.s(40) + (k + 1) * cw, (r + 1) * rh]
            head = r == 0
            d.rectangle(box, fill=(232, 234, 237) if head else (255, 255, 255), outline=(200, 200, 200))
            if head:
                d.text((box[0] + c.s(6), box[1] + c.s(5)), chr(65 + k % 26), font=hdr, fill=(60, 60, 60))
            elif k == 0:
                d.text((box[0] + c.s(6), box[1] + c.s(5)), _text(rng, 1), font=font, fill=(20, 20, 20))
            elif rng.random() < 0.85:
                val = f"{rng.normal(1000, 800):,.2f}"
                tw = d.textlength(val, font=font)
                d.text(
                    (box[2] - c.s(6) - tw, box[1] + c.s(5)),
                    val,
                    font=font,
                    fill=(200, 30, 30) if val.startswith("-") else (20, 20, 20),
                )
        d.text((c.s(6), r * rh + c.s(5)), str(r) if r else "", font=font, fill=(90, 90, 90))


def _chat(c: _Canvas, theme):
    bg, fg, accent = theme
    d, rng = c.draw, c.rng
    side = c.s(300)
    d.rectangle([0, 0, side, SIZE[1]], fill=tuple(max(0, v - 12) for v in bg))
    name_font, font = c.font("bold", 15), c.font("sans", 15)
    for k in range(SIZE[1] // c.s(56)):
        y = k * c.s(56) + c.s(10)
        d.ellipse([c.s(12), y, c.s(48), y + c.s(36)], fill=tuple(int(v) for v in rng.integers(60, 220, 3)))
        d.text((c.s(58), y), _text(rng, 2).title(), font=name_font, fill=fg)
        d.text((c.s(58), y + c.s(19)), _text(rng, 4)[:28], font=c.font("sans", 12), fill=(130, 130, 130))
    y = c.s(20)
    while y < SIZE[1] - c.s(80):
        mine = rng.random() < 0.5
        msg = _text(rng, int(rng.integers(3, 12)))
        w = min(int(d.textlength(msg, font=font)) + c.s(24), SIZE[0] - side - c.s(80))
        x = SIZE[0] - w - c.s(20) if mine else side + c.s(20)
        d.rounded_rectangle(
            [x, y, x + w, y + c.s(36)], radius=c.s(14), fill=accent if mine else tuple(max(0, v - 25) for v in bg)
        )
        d.text((x + c.s(12), y + c.s(9)), msg, font=font, fill=(255, 255, 255) if mine else fg)
        y += c.s(50)
    d.rectangle([side, SIZE[1] - c.s(56), SIZE[0], SIZE[1]], fill=tuple(max(0, v - 8) for v in bg))
    d.text((side + c.s(20), SIZE[1] - c.s(38)), "Type a message", font=font, fill=(150, 150, 150))


def _ui(c: _Canvas, theme):
    bg, fg, accent = theme
    d, rng = c.draw, c.rng
    d.rectangle([0, 0, SIZE[0], c.s(48)], fill=accent)
    d.text((c.s(20), c.s(12)), _text(rng, 2).title(), font=c.font("bold", 20), fill=(255, 255, 255))
    font, label = c.font("sans", 15), c.font("bold", 14)
    x, y = c.s(40), c.s(80)
    while y < SIZE[1] - c.s(70):
        d.text((x, y), _text(rng, 2).capitalize() + ":", font=label, fill=fg)
        kind = rng.integers(0, 3)
        if kind == 0:  # text field
            d.rectangle([x + c.s(180), y - c.s(4), x + c.s(560), y + c.s(24)], outline=(150, 150, 150), width=1)
            d.text((x + c.s(188), y), _text(rng, 3), font=font, fill=fg)
        elif kind == 1:  # checkbox row
            for k in range(3):
                bx = x + c.s(180) + k * c.s(150)
                d.rectangle([bx, y, bx + c.s(16), y + c.s(16)], outline=fg, fill=accent if rng.random() < 0.5 else bg)
                d.text((bx + c.s(22), y), _text(rng, 1), font=font, fill=fg)
        else:  # button pair
            for k in range(2):
                bx = x + c.s(180) + k * c.s(140)
                d.rounded_rectangle(
                    [bx, y - c.s(6), bx + c.s(120), y + c.s(26)],
                    radius=c.s(6),
                    fill=accent if k == 0 else bg,
                    outline=accent,
                )
                d.text(
                    (bx + c.s(16), y),
                    _text(rng, 1).upper()[:10],
                    font=label,
                    fill=(255, 255, 255) if k == 0 else accent,
                )
        y += c.s(48)
        if y > SIZE[1] * 0.6 and x < SIZE[0] / 2:
            x, y = SIZE[0] // 2 + c.s(20), c.s(80)


_DRAW = {"slide": _slide, "code": _code, "sheet": _sheet, "chat": _chat, "ui": _ui}


def render_screen(fonts: dict[str, list[Path]], kind: str, seed: int) -> np.ndarray:
    """One 720x1280x3 uint8 RGB screen of ``kind`` (see :data:`KINDS`) drawn with ``fonts``."""
    rng = np.random.default_rng(seed)
    theme = THEMES[int(rng.integers(0, len(THEMES)))]
    c = _Canvas(fonts, rng, theme[0])
    _DRAW[kind](c, theme)
    return np.asarray(c.img, np.uint8).copy()


def render_screens(fonts: dict[str, list[Path]], count: int = 60, seed: int = 0):
    """[(name, kind, rgb)] of ``count`` screens cycling through :data:`KINDS`; empty if no fonts."""
    if not fonts:
        return []
    out = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        out.append((f"{kind}_{i:03d}", kind, render_screen(fonts, kind, seed * 100003 + i)))
    return out
