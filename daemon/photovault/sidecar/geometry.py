"""Boxes between the oriented frame (what detectors see) and the stored frame.

MWG 2.0 §5.9 says region areas refer to the image as stored, before the EXIF
orientation is applied; detectors run on the upright image. Getting this wrong puts
every face box of a portrait-mode phone photo on a wall, so the conversion lives
here, in one place, tested for all eight orientations.

Orientation semantics are those of EXIF/TIFF and of PIL's `ImageOps.exif_transpose`:
the oriented image is the stored image transformed by

    1 identity        2 mirror left-right   3 rotate 180       4 mirror top-bottom
    5 transpose       6 rotate 90° CW       7 transverse       8 rotate 90° CCW

All boxes are normalized (x, y, w, h); `x, y` is the top-left corner unless the
function name says "centre".
"""

from __future__ import annotations

Box = tuple[float, float, float, float]

ORIENTATIONS = (1, 2, 3, 4, 5, 6, 7, 8)


def _check(orientation: int) -> None:
    if orientation not in ORIENTATIONS:
        raise ValueError(f"EXIF orientation must be 1..8, got {orientation!r}")


def stored_point_to_oriented(u: float, v: float, orientation: int) -> tuple[float, float]:
    """Where a normalized point of the stored image lands in the oriented image."""
    _check(orientation)
    return {
        1: (u, v),
        2: (1 - u, v),
        3: (1 - u, 1 - v),
        4: (u, 1 - v),
        5: (v, u),
        6: (1 - v, u),
        7: (1 - v, 1 - u),
        8: (v, 1 - u),
    }[orientation]


def oriented_point_to_stored(u: float, v: float, orientation: int) -> tuple[float, float]:
    """Inverse of `stored_point_to_oriented` (6 and 8 are each other's inverse)."""
    _check(orientation)
    inverse = {6: 8, 8: 6}.get(orientation, orientation)
    return stored_point_to_oriented(u, v, inverse)


def _map_box(box: Box, point_map) -> Box:
    x, y, w, h = box
    (ax, ay), (bx, by) = point_map(x, y), point_map(x + w, y + h)
    left, top = min(ax, bx), min(ay, by)
    return (left, top, abs(bx - ax), abs(by - ay))


def oriented_to_stored(box: Box, orientation: int) -> Box:
    """Top-left box in the oriented frame -> top-left box in the stored frame."""
    return _map_box(box, lambda u, v: oriented_point_to_stored(u, v, orientation))


def stored_to_oriented(box: Box, orientation: int) -> Box:
    """Top-left box in the stored frame -> top-left box in the oriented frame."""
    return _map_box(box, lambda u, v: stored_point_to_oriented(u, v, orientation))


def clamp(box: Box) -> Box:
    """Clip a top-left box to the unit square (detectors overshoot at the edges)."""
    x, y, w, h = box
    left, top = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
    right, bottom = min(max(x + w, 0.0), 1.0), min(max(y + h, 0.0), 1.0)
    return (left, top, max(right - left, 0.0), max(bottom - top, 0.0))


def to_centre(box: Box) -> Box:
    """Top-left (x, y, w, h) -> MWG's centre-based (cx, cy, w, h)."""
    x, y, w, h = box
    return (x + w / 2, y + h / 2, w, h)


def from_centre(box: Box) -> Box:
    """MWG's centre-based (cx, cy, w, h) -> top-left (x, y, w, h)."""
    cx, cy, w, h = box
    return (cx - w / 2, cy - h / 2, w, h)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two top-left boxes (0 when either is empty)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def format_number(value: float) -> str:
    """Six decimals, trailing zeros trimmed: what digiKam and exiftool write."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def mp_rectangle(box: Box) -> str:
    """Microsoft MP region rectangle text: top-left "x, y, w, h", normalized."""
    return ", ".join(format_number(v) for v in box)


def parse_mp_rectangle(text: str) -> Box | None:
    """Parse an MP rectangle; None when it is not four numbers."""
    try:
        parts = tuple(float(p) for p in text.replace(";", ",").split(","))
    except ValueError:
        return None
    return parts if len(parts) == 4 else None  # type: ignore[return-value]
