"""The people database's plumbing: connections, transactions, change counters and
the lookups that adding faces, clustering passes and user operations share.

`PeopleStore` (people/store.py) builds on it through `ClusterPasses`
(people/passes.py); each level adds one job.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np

from photovault.people.cluster import Metric, as_matrix, distance_blocks, metric_for_model
from photovault.people.schema import DB_NAME, MIGRATIONS, SCHEMA_VERSION
from photovault.versioning import StoreTooNewError, ensure_sqlite_version


class PeopleError(Exception):
    """A people operation that cannot be done; the message is shown to the user."""


class PeopleVersionError(PeopleError, StoreTooNewError):
    """The database was written by a newer vaultd."""


class PeopleDB:
    """The people database: connections, transactions, counters, shared lookups.
    Thread-safe (one lock for writes; reads on a connection of their own)."""

    def __init__(
        self,
        path: Path,
        *,
        model: str = "Dlib",
        cluster_distance: float = 0.5,
        join_distance: float = 0.5,
        min_cluster_faces: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.model = model
        self.metric: Metric = metric_for_model(model)
        self.cluster_distance = cluster_distance
        self.join_distance = join_distance
        self.min_cluster_faces = min_cluster_faces
        self._clock = clock
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._connect()
        self._ensure_version()
        # Reads for status, show, `people list` use a connection of their own: in WAL
        # mode they see the last commit and never wait for a pass writing its result.
        self._reader = self._connect()
        self._read_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @classmethod
    def for_settings(cls, state_dir: Path, cfg: Any) -> Self:
        """Open `<state_dir>/people.sqlite3` with the thresholds of a FaceSettings."""
        return cls(
            Path(state_dir) / DB_NAME,
            model=cfg.model,
            cluster_distance=cfg.cluster_distance,
            join_distance=cfg.join_distance,
            min_cluster_faces=cfg.min_cluster_faces,
        )

    # ------------------------------------------------------------------ plumbing

    def _ensure_version(self) -> None:
        ensure_sqlite_version(
            self._conn, self.path, "people database", SCHEMA_VERSION, MIGRATIONS, PeopleVersionError
        )

    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> PeopleDB._Tx:
        return PeopleDB._Tx(self._conn)

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._conn.close()
            self._reader.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._read_lock:
            yield self._reader

    def _meta_int(self, key: str, conn: sqlite3.Connection | None = None) -> int:
        row = (conn or self._conn).execute("SELECT value FROM meta WHERE key = ?", (key,))
        found = row.fetchone()
        return int(found[0]) if found else 0

    def _bump(self, key: str) -> int:
        """Next value of a counter in `meta` (inside the caller's transaction)."""
        value = self._meta_int(key) + 1
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )
        return value

    def _params(self) -> str:
        """Settings a finished pass depends on; another value makes a pass pending."""
        return json.dumps(
            [self.model, self.cluster_distance, self.join_distance, self.min_cluster_faces]
        )

    def _person(self, person_id: int) -> sqlite3.Row:
        row = self._conn.execute("SELECT * FROM people WHERE id = ?", (person_id,)).fetchone()
        if row is None:
            raise PeopleError(f"no person with id {person_id}")
        return row

    def _embeddings(
        self, where: str, args: Iterable[Any] = ()
    ) -> tuple[list[int], list[Any], np.ndarray]:
        rows = self._conn.execute(
            f"SELECT id, person_id, embedding FROM faces WHERE model = ? AND {where} ORDER BY id",
            (self.model, *args),
        ).fetchall()
        ids = [r["id"] for r in rows]
        persons = [r["person_id"] for r in rows]
        vectors = [np.frombuffer(r["embedding"], dtype=np.float32) for r in rows]
        matrix = as_matrix(np.vstack(vectors) if vectors else np.zeros((0, 1)), self.metric)
        return ids, persons, matrix

    def _rejected(self) -> set[tuple[int, int]]:
        return {
            (r[0], r[1]) for r in self._conn.execute("SELECT face_id, person_id FROM rejections")
        }

    def _nearest_person(
        self,
        queries: np.ndarray,
        query_ids: list[int],
        candidates: np.ndarray,
        candidate_persons: list[int],
        rejected: set[tuple[int, int]],
    ) -> list[tuple[int | None, float]]:
        """Per query: (person of the nearest allowed candidate face, its distance)."""
        out: list[tuple[int | None, float]] = [(None, float("inf"))] * len(queries)
        if len(candidates) == 0 or len(queries) == 0:
            return out
        persons = np.asarray(candidate_persons)
        for start, dist in distance_blocks(queries, candidates, self.metric):
            for i, row in enumerate(dist):
                face_id = query_ids[start + i]
                best = int(np.argmin(row))
                if (face_id, int(persons[best])) not in rejected:
                    out[start + i] = (int(persons[best]), float(row[best]))
                    continue
                for j in np.argsort(row, kind="stable"):  # rare: the nearest was rejected
                    person = int(persons[j])
                    if (face_id, person) not in rejected:
                        out[start + i] = (person, float(row[j]))
                        break
        return out

    def _drop_empty_people(self, conn: sqlite3.Connection, lost: Iterable[int] = ()) -> int:
        """Delete unnamed people without faces, and the people in `lost` (their last
        photo was deleted) even when named: a name kept on nobody would only confuse."""
        n = conn.execute(
            "DELETE FROM people WHERE name IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM faces WHERE faces.person_id = people.id)"
        ).rowcount
        for person in lost:
            n += conn.execute(
                "DELETE FROM people WHERE id = ? AND NOT EXISTS "
                "(SELECT 1 FROM faces WHERE faces.person_id = people.id)",
                (person,),
            ).rowcount
        return n
