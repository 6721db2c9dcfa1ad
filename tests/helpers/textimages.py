"""Photos with known text for the OCR tests and bench/text.py: receipts and signs
rendered with real fonts (DejaVu, Debian's fonts-dejavu-core), then made to look
photographed (paper on a table, rotation, perspective, blur, JPEG).

Every function is deterministic for a given seed, so a failing test reproduces.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSans.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf", "DejaVuSans-Bold.ttf")

SHOPS = (
    ("HARBOUR PLUMBING SUPPLY", "12 Quay Street, Bristol"),
    ("GREEN LEAF GROCERS", "48 Market Road, Leeds"),
    ("NORTHSIDE HARDWARE", "7 Mill Lane, York"),
    ("CAFE LUMIERE", "3 Rue des Fleurs, Lyon"),
)
ITEMS = (
    "Copper pipe 15mm",
    "Tap washer set",
    "PTFE tape",
    "Bananas",
    "Whole milk 2L",
    "Sourdough loaf",
    "Wood screws",
    "Paint brush",
    "Flat white",
    "Croissant",
    "Sparkling water",
    "Olive oil",
)


@dataclass(frozen=True)
class Rendered:
    image: Image.Image  # RGB
    lines: tuple[str, ...]  # the text as rendered, top to bottom
    shop: str


def font(size: int, name: str = "DejaVuSans.ttf") -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / name), size)


def receipt(seed: int = 0, size: int = 28, shop: tuple[str, str] | None = None) -> Rendered:
    """A till receipt on white paper: shop, address, items with prices, total."""
    rng = random.Random(seed)
    shop_name, address = shop or SHOPS[seed % len(SHOPS)]
    items = rng.sample(ITEMS, 5)
    prices = [rng.randint(80, 2500) / 100 for _ in items]
    total = sum(prices)
    lines = [shop_name, address, f"Date 2024-03-{rng.randint(10, 28)} 14:{rng.randint(10, 59)}"]
    body = [(name, f"{p:.2f}") for name, p in zip(items, prices, strict=True)]
    mono = font(size, "DejaVuSansMono.ttf")
    bold = font(size + 4, "DejaVuSans-Bold.ttf")
    regular = font(size)
    width = 22 * size
    height = (len(lines) + len(body) + 5) * int(size * 1.6) + 2 * size
    img = Image.new("RGB", (width, height), (250, 248, 240))
    draw = ImageDraw.Draw(img)
    y = size
    for i, text in enumerate(lines):
        f = bold if i == 0 else regular
        draw.text(((width - draw.textlength(text, font=f)) / 2, y), text, font=f, fill=(20, 20, 20))
        y += int(size * 1.6)
    y += size // 2
    rendered = list(lines)
    for name, price in [*body, ("TOTAL", f"{total:.2f}"), ("CARD", f"{total:.2f}")]:
        draw.text((size, y), name, font=mono, fill=(20, 20, 20))
        draw.text(
            (width - size - draw.textlength(price, font=mono), y),
            price,
            font=mono,
            fill=(20, 20, 20),
        )
        rendered.append(f"{name} {price}")
        y += int(size * 1.6)
    thanks = "Thank you for shopping"
    y += size // 2
    draw.text(
        ((width - draw.textlength(thanks, font=regular)) / 2, y),
        thanks,
        font=regular,
        fill=(20, 20, 20),
    )
    rendered.append(thanks)
    return Rendered(img, tuple(rendered), shop_name)


def sign(text: str = "OPEN DAILY", sub: str = "Fresh bread 7am to 6pm") -> Rendered:
    """A shop sign: large bold words on a coloured board, a smaller line beneath."""
    big, small = font(72, "DejaVuSans-Bold.ttf"), font(36)
    img = Image.new("RGB", (900, 320), (30, 70, 120))
    draw = ImageDraw.Draw(img)
    draw.text(
        ((900 - draw.textlength(text, font=big)) / 2, 60), text, font=big, fill=(250, 240, 200)
    )
    draw.text(
        ((900 - draw.textlength(sub, font=small)) / 2, 190), sub, font=small, fill=(250, 250, 250)
    )
    return Rendered(img, (text, sub), text)


def on_table(paper: Image.Image, seed: int = 0, margin: float = 0.35) -> Image.Image:
    """The paper lying on a textured wooden-ish table, with some room around it."""
    rng = np.random.default_rng(seed)
    w, h = paper.size
    W, H = int(w * (1 + margin)), int(h * (1 + margin * 0.6))
    base = np.zeros((H, W, 3), dtype=np.float32)
    base[:] = (120, 85, 55)
    grain = np.sin(np.linspace(0, 40, W))[None, :, None] * 12
    base += grain + rng.normal(0, 6, (H, W, 3))
    table = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    table.paste(paper, ((W - w) // 2, (H - h) // 2))
    return table


def perspective(img: Image.Image, strength: float = 0.06, seed: int = 0) -> Image.Image:
    """A photo taken slightly from the side: corners moved by up to `strength` x size."""
    rng = random.Random(seed)
    w, h = img.size
    dx, dy = w * strength, h * strength
    src = [
        (rng.uniform(0, dx), rng.uniform(0, dy)),
        (w - rng.uniform(0, dx), rng.uniform(0, dy)),
        (w - rng.uniform(0, dx), h - rng.uniform(0, dy)),
        (rng.uniform(0, dx), h - rng.uniform(0, dy)),
    ]
    dst = [(0, 0), (w, 0), (w, h), (0, h)]
    coeffs = _perspective_coeffs(dst, src)
    return img.transform(
        (w, h),
        Image.Transform.PERSPECTIVE,
        coeffs,
        Image.Resampling.BICUBIC,
        fillcolor=(120, 85, 55),
    )


def _perspective_coeffs(
    dst: list[tuple[float, float]], src: list[tuple[float, float]]
) -> tuple[float, ...]:
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    a = np.array(rows, dtype=np.float64)
    b = np.array([c for p in src for c in p], dtype=np.float64)
    return tuple(float(c) for c in np.linalg.solve(a, b))


def photographed(
    paper: Image.Image, angle: float = 0.0, seed: int = 0, blur: float = 0.8, quality: int = 70
) -> Image.Image:
    """Table, perspective, rotation by `angle` degrees (counter-clockwise, canvas grows),
    blur and a JPEG round trip."""
    img = perspective(on_table(paper, seed), seed=seed)
    if angle:
        img = img.rotate(
            angle, expand=True, resample=Image.Resampling.BICUBIC, fillcolor=(120, 85, 55)
        )
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return jpeg(img, quality)


def jpeg(img: Image.Image, quality: int = 70) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def cer(got: str, want: str) -> float:
    """Character error rate: edit distance / length of the reference (whitespace and
    case ignored, as search ignores them)."""
    a = "".join(got.lower().split())
    b = "".join(want.lower().split())
    if not b:
        return float(bool(a))
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1] / len(b)


WORDS = [
    "the",
    "quarterly",
    "report",
    "shows",
    "that",
    "revenue",
    "grew",
    "in",
    "all",
    "regions",
    "while",
    "costs",
    "stayed",
    "flat",
    "and",
    "the",
    "board",
    "agreed",
    "to",
    "invest",
    "in",
    "new",
    "stores",
    "next",
    "year",
    "subject",
    "to",
    "approval",
    "by",
    "members",
]


def page(lines: int = 36, size: int = 14, width: int = 744, height: int = 1024) -> Rendered:
    """A printed page of dense prose: `lines` lines of `size` px text on white paper."""
    rng = random.Random(lines * 100 + size)
    f = font(size, "DejaVuSerif.ttf")
    img = Image.new("RGB", (width, height), (252, 252, 250))
    draw = ImageDraw.Draw(img)
    step = (height - 80) / lines
    rendered = []
    for i in range(lines):
        words: list[str] = []
        while True:
            candidate = [*words, rng.choice(WORDS)]
            if draw.textlength(" ".join(candidate), font=f) > width - 100:
                break
            words = candidate
        text = " ".join(words)
        draw.text((50, 40 + i * step), text, font=f, fill=(15, 15, 15))
        rendered.append(text)
    return Rendered(img, tuple(rendered), rendered[0])


def invoice(angle: float = 0.0, size: int = 28) -> Rendered:
    """A 5-line invoice at the top of an A4 page (1240x1754, 150 dpi), turned `angle`
    degrees (canvas grows): little text on a big sheet, so it is small in the photo."""
    lines = (
        "INVOICE 2024-117",
        "Harbour Plumbing Supply",
        "Boiler service 85.00",
        "Parts 42.50",
        "Total due 127.50",
    )
    f = font(size)
    img = Image.new("RGB", (1240, 1754), (250, 250, 248))
    draw = ImageDraw.Draw(img)
    for i, text in enumerate(lines):
        draw.text((120, 160 + i * int(size * 1.8)), text, font=f, fill=(20, 20, 20))
    if angle:
        img = img.rotate(
            angle, expand=True, resample=Image.Resampling.BICUBIC, fillcolor=(120, 85, 55)
        )
    return Rendered(img, lines, lines[1])


def tall_receipt(lines: int = 102, size: int = 32, width: int = 950) -> Rendered:
    """A long till receipt as a scanner stores it: `width` px wide, one `size` px line per
    item, many times taller than wide (102 lines of 32 px: 950x5000)."""
    rng = random.Random(lines)
    mono = font(size, "DejaVuSansMono.ttf")
    step = int(size * 1.5)
    height = lines * step + 2 * size
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    rendered = []
    shop = "SHELL SERVICE STATION"
    for i in range(lines):
        if i == 0:
            name, price = shop, ""
        elif i == lines - 1:
            name, price = "TOTAL", f"{rng.randint(100, 999)}.{rng.randint(10, 99)}"
        else:
            name, price = rng.choice(ITEMS), f"{rng.randint(1, 99)}.{rng.randint(10, 99)}"
        y = size + i * step
        draw.text((size, y), name, font=mono, fill=(10, 10, 10))
        if price:
            x = width - size - draw.textlength(price, font=mono)
            draw.text((x, y), price, font=mono, fill=(10, 10, 10))
        rendered.append(f"{name} {price}".strip())
    return Rendered(img, tuple(rendered), shop)
