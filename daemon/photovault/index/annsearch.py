"""Searching the in-memory vector index (memann.py): which cells to probe,
scoring their int8 codes against a query, the filters it answers itself
(`Facts`), and the best k.

Why apart: the read path is the one a query waits on (its 50 ms budget), and
it only reads the cells (anncells.py); `MemoryAnn.search` holds the index's
lock around `probe_order` and `scan` and calls `best` after releasing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

import numpy as np

from photovault.index.anncells import NO_TIME, Cell

EPOCH = datetime(1970, 1, 1)
SCAN_BLOCK = 2_048  # rows converted to float32 at a time while scanning

FactCheck = Callable[[Cell], np.ndarray]


@dataclass(frozen=True)
class Facts:
    """The filters the in-memory index answers itself, as LanceDB's SQL does
    (filters.to_sql): capture time >= after and < before (wall clock; a photo
    without one never matches), camera name containing `camera`
    (case-insensitive; none never matches)."""

    after: date | datetime | None = None
    before: date | datetime | None = None
    camera: str | None = None


def micros(value: date | datetime | None) -> int:
    """Wall-clock time as microseconds since 1970 (NO_TIME for None)."""
    if value is None:
        return int(NO_TIME)
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return (value.replace(tzinfo=None) - EPOCH) // timedelta(microseconds=1)


@dataclass
class AnnResult:
    ids: np.ndarray  # int64, best first
    rowids: np.ndarray  # int64, -1 where unknown
    scores: np.ndarray  # float32 cosine


class Scanned(NamedTuple):
    """What the probed cells gave, per probed block (concatenated by `best`)."""

    scores: list[np.ndarray]
    ids: list[np.ndarray]
    rowids: list[np.ndarray]


def no_result() -> AnnResult:
    e = np.zeros(0, np.int64)
    return AnnResult(e, e, np.zeros(0, np.float32))


def fact_check(facts: Facts | None, cameras: dict[str, int]) -> FactCheck | bool | None:
    """A row mask maker for `facts`, None for no filter, False when nothing
    can match (a camera no photo has). `cameras`: camera name -> code."""
    if facts is None or (facts.after is None and facts.before is None and not facts.camera):
        return None
    after = micros(facts.after) if facts.after is not None else None
    before = micros(facts.before) if facts.before is not None else None
    codes: np.ndarray | None = None
    if facts.camera:
        needle = facts.camera.lower()
        codes = np.array(
            sorted(c for name, c in cameras.items() if needle in name.lower()), np.int32
        )
        if not codes.size:
            return False

    def check(cell: Cell) -> np.ndarray:
        n = cell.n
        mask = np.ones(n, bool)
        if after is not None or before is not None:
            taken = cell.taken[:n]
            mask &= taken != NO_TIME
            if after is not None:
                mask &= taken >= after
            if before is not None:
                mask &= taken < before
        if codes is not None:
            mask &= np.isin(cell.camera[:n], codes)
        return mask

    return check


def probe_order(
    centroids: np.ndarray | None, q: np.ndarray, nprobe: int, filtered: bool
) -> tuple[list[int], int]:
    """Cells to probe, nearest first, and how many at least: the `nprobe`
    nearest unordered, or every cell in order when a filter may need more."""
    if centroids is None:
        return [0], 1
    p = min(nprobe, len(centroids))
    sims = centroids @ q
    if not filtered:
        return np.argpartition(-sims, p - 1)[:p].tolist(), p
    return np.argsort(-sims).tolist(), p


def scan(
    cells: list[Cell],
    order: list[int],
    p: int,
    q: np.ndarray,
    k: int,
    means: np.ndarray | None,
    check: FactCheck | bool | None,
    buffer: np.ndarray,
) -> Scanned:
    """Score the cells in `order` against unit `q`: at least `p` of them, and
    with a `check`, on until `k` matching rows were found. `buffer` is the
    caller's float32 scratch of SCAN_BLOCK rows (its lock makes it ours)."""
    out = Scanned([], [], [])
    found = 0
    for probed, c in enumerate(order):
        if probed >= p and (check is None or found >= k):
            break
        cell = cells[c]
        if not cell.n:
            continue
        base = 0.0 if means is None else float(means[c] @ q)  # residual coding
        if callable(check):
            rows = np.flatnonzero(check(cell) & (cell.ids[: cell.n] >= 0))
            if rows.size:
                codes = cell.codes[rows].astype(np.float32)
                out.scores.append((codes @ q) * cell.scale[rows] + base)
                out.ids.append(cell.ids[rows])
                out.rowids.append(cell.rowids[rows])
                found += rows.size
            continue
        # Converted to float32 first (a mixed int8 @ float32 product skips
        # BLAS, ~3x slower), in blocks into one reused buffer: no fresh
        # pages to fault in per cell (16 cells: 2.7 -> 2.1 ms), and an
        # untrained index (one cell of up to `train_rows`) is no 300 MB
        # temporary. The lock makes the buffer this search's alone.
        for lo in range(0, cell.n, SCAN_BLOCK):
            hi = min(cell.n, lo + SCAN_BLOCK)
            block = buffer[: hi - lo]
            np.copyto(block, cell.codes[lo:hi], casting="unsafe")
            out.scores.append((block @ q) * cell.scale[lo:hi] + base)
        out.ids.append(cell.ids[: cell.n])
        out.rowids.append(cell.rowids[: cell.n])
    return out


def best(scanned: Scanned, k: int) -> AnnResult:
    """The `k` best live rows of a scan, best first."""
    if not scanned.scores:
        return no_result()
    sc = np.concatenate(scanned.scores)
    idc = np.concatenate(scanned.ids)
    rid = np.concatenate(scanned.rowids)
    sc[idc < 0] = -np.inf
    k = min(k, int((idc >= 0).sum()))
    if k <= 0:
        return no_result()
    top = np.argpartition(-sc, k - 1)[:k]
    top = top[np.argsort(-sc[top], kind="stable")]
    return AnnResult(idc[top], rid[top], sc[top].astype(np.float32))
