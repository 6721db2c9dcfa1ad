"""Which catalog ids have a row in the photos table, kept in memory.

Every index write used to ask LanceDB which of its ids were already stored
(`id IN (...)`, ~40 ms per 4,096 rows at 1M photos, a fifth of the write) so
that new photos could take a plain append instead of merge_insert's join.
Catalog ids are small dense integers, so one byte per id answers the same
question in microseconds: 1 MB for a million photos.

The set may only err on the safe side. An id marked present that is not
stored costs a merge_insert (which inserts it all the same); an id missing
from the set while its row is stored would be appended twice. So ids are
marked before a write is attempted and cleared only after a delete has
committed, and the set is loaded from the table itself, never from the
catalog.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Ids above this are not tracked (the array would be too large to be worth it):
# writes touching them ask the table, as before.
MAX_TRACKED_ID = 1 << 26


class PresentIds:
    """A lazily loaded bitmap (one byte per id) of the ids stored in a table."""

    def __init__(self, load: Callable[[], np.ndarray]) -> None:
        self._load = load
        self._flags: np.ndarray | None = None

    def _ensure(self) -> np.ndarray:
        if self._flags is None:
            ids = np.asarray(self._load(), dtype=np.int64)
            self._flags = np.zeros(0, dtype=np.bool_)
            self._mark(ids)
        return self._flags

    @staticmethod
    def trackable(ids: np.ndarray) -> bool:
        return ids.size == 0 or (int(ids.min()) >= 0 and int(ids.max()) < MAX_TRACKED_ID)

    def _mark(self, ids: np.ndarray) -> None:
        assert self._flags is not None
        ids = ids[(ids >= 0) & (ids < MAX_TRACKED_ID)]
        if ids.size == 0:
            return
        top = int(ids.max())
        if top >= self._flags.size:
            grown = np.zeros(max(top + 1, self._flags.size * 3 // 2, 1024), dtype=np.bool_)
            grown[: self._flags.size] = self._flags
            self._flags = grown
        self._flags[ids] = True

    def present(self, ids: np.ndarray) -> np.ndarray | None:
        """A mask of which `ids` may be stored, or None when some id is untracked
        (negative or huge): then the caller must ask the table."""
        if not self.trackable(ids):
            return None
        flags = self._ensure()
        mask = np.zeros(ids.size, dtype=np.bool_)
        inside = ids < flags.size
        mask[inside] = flags[ids[inside]]
        return mask

    def mark(self, ids: np.ndarray) -> None:
        """Before a write: these ids may be stored from now on."""
        self._ensure()
        self._mark(np.asarray(ids, dtype=np.int64))

    def clear(self, ids: np.ndarray) -> None:
        """After a committed delete: these ids are stored no more."""
        if self._flags is None:
            return
        ids = np.asarray(ids, dtype=np.int64)
        ids = ids[(ids >= 0) & (ids < self._flags.size)]
        self._flags[ids] = False
