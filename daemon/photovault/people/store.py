"""People: faces grouped into persons that keep their ids across runs.

Stored in SQLite (`<state_dir>/people.sqlite3`, schema versioned like the
catalog) rather than recomputed from the catalog because what users do to
people (names, merges, "that is not her") must survive re-clustering,
restarts and re-analysis.

How faces become people (all incremental, nothing is ever renumbered):

1. `add_photo_faces()` stores a photo's faces. A new face joins the nearest
   *named* person at once when it is within `join_distance` (and was not
   rejected from them); otherwise it waits.
2. `cluster()` runs density clustering (people/cluster.py) over the waiting
   faces only. A cluster that lies mostly within `join_distance` of an
   existing person joins that person; a cluster of at least
   `min_cluster_faces` becomes a new person (a fresh id, never reused
   because of AUTOINCREMENT); a lone face near a person joins it.
   Existing assignments are never moved by clustering: only users do that.
3. Users name, rename, merge, and reject. A rejection (face, person) is
   remembered and that face is never suggested for that person again.

Re-analysing a photo matches the new faces to the old ones by box overlap, so
a face keeps its id and its person when a model bump re-runs the analyzer.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from photovault.people.cluster import Metric, as_matrix, dbscan, distance_blocks, metric_for_model

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DB_NAME = "people.sqlite3"

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE people (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE faces (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        photo TEXT NOT NULL,
        idx INTEGER NOT NULL,
        model TEXT NOT NULL,
        box TEXT NOT NULL,
        score REAL NOT NULL,
        embedding BLOB NOT NULL,
        person_id INTEGER REFERENCES people(id) ON DELETE SET NULL,
        assigned_by TEXT,
        UNIQUE (photo, model, idx)
    );
    CREATE INDEX faces_person ON faces(person_id);
    CREATE INDEX faces_model_person ON faces(model, person_id);
    CREATE TABLE rejections (
        face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
        person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        PRIMARY KEY (face_id, person_id)
    );
    """,
}


class PeopleError(Exception):
    """A people operation that cannot be done; the message is shown to the user."""


class PeopleVersionError(PeopleError):
    """The database was written by a newer vaultd."""


@dataclass
class ClusterReport:
    """What one `cluster()` run changed. `named_photos`: photos whose faces joined a
    person who has a name (their sidecars must show it)."""

    new_people: list[int] = field(default_factory=list)
    joined: int = 0  # faces that joined an existing person
    waiting: int = 0  # faces still unassigned afterwards
    named_photos: set[str] = field(default_factory=set)


def iou(a: list[float], b: list[float]) -> float:
    ax1, ay1, ax2, ay2 = a[0], a[1], a[0] + a[2], a[1] + a[3]
    bx1, by1, bx2, by2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class PeopleStore:
    """All people state for one recognition model. Thread-safe (one lock)."""

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
        self._conn = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._ensure_version()

    @classmethod
    def for_settings(cls, state_dir: Path, cfg: Any) -> PeopleStore:
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
        conn = self._conn
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise PeopleVersionError(
                f"{self.path}: people schema version {current} is newer than this vaultd "
                f"supports ({SCHEMA_VERSION}); upgrade photovault or restore a backup"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            log.info("migrating people database %s to schema version %d", self.path, version)
            with self._tx():
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(version),),
                )

    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> PeopleStore._Tx:
        return PeopleStore._Tx(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

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

    # ------------------------------------------------------------------ faces in

    def add_photo_faces(self, photo: str, faces: list[dict[str, Any]]) -> list[int]:
        """Store (or replace) the faces of one photo; return their face ids in order.

        `photo` is the photo's stable key (its sha256). `faces` is the faces
        analyzer's result list; faces of another model than this store's are
        ignored, since their embeddings are not comparable.
        """
        faces = [f for f in faces if f.get("model", self.model) == self.model]
        with self._lock, self._tx() as conn:
            old = conn.execute(
                "SELECT id, box FROM faces WHERE photo = ? AND model = ? ORDER BY idx",
                (photo, self.model),
            ).fetchall()
            old_boxes = {r["id"]: json.loads(r["box"]) for r in old}
            conn.execute(
                "UPDATE faces SET idx = -id WHERE photo = ? AND model = ?", (photo, self.model)
            )
            ids: list[int] = []
            fresh: list[int] = []
            for idx, face in enumerate(faces):
                blob = np.asarray(face["embedding"], dtype=np.float32).tobytes()
                box = [float(v) for v in face["box"]]
                match = max(old_boxes, key=lambda i: iou(old_boxes[i], box), default=None)
                if match is not None and iou(old_boxes[match], box) >= 0.5:
                    del old_boxes[match]
                    conn.execute(
                        "UPDATE faces SET idx = ?, box = ?, score = ?, embedding = ? WHERE id = ?",
                        (idx, json.dumps(box), float(face.get("score", 0.0)), blob, match),
                    )
                    ids.append(match)
                    continue
                cur = conn.execute(
                    "INSERT INTO faces (photo, idx, model, box, score, embedding) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (photo, idx, self.model, json.dumps(box), float(face.get("score", 0.0)), blob),
                )
                ids.append(int(cur.lastrowid))
                fresh.append(int(cur.lastrowid))
            if old_boxes:
                conn.executemany("DELETE FROM faces WHERE id = ?", [(i,) for i in old_boxes])
            if fresh:
                self._join_named(fresh)
        return ids

    def _join_named(self, face_ids: list[int]) -> None:
        marks = ",".join("?" * len(face_ids))
        q_ids, _, queries = self._embeddings(f"id IN ({marks})", face_ids)
        c_ids, c_persons, candidates = self._embeddings(
            "person_id IN (SELECT id FROM people WHERE name IS NOT NULL)"
        )
        del c_ids
        nearest = self._nearest_person(queries, q_ids, candidates, c_persons, self._rejected())
        for face_id, (person, dist) in zip(q_ids, nearest, strict=True):
            if person is not None and dist <= self.join_distance:
                self._conn.execute(
                    "UPDATE faces SET person_id = ?, assigned_by = 'join' WHERE id = ?",
                    (person, face_id),
                )

    def remove_photo(self, photo: str) -> int:
        """Forget a deleted photo's faces; returns how many went."""
        with self._lock, self._tx() as conn:
            return conn.execute("DELETE FROM faces WHERE photo = ?", (photo,)).rowcount

    # ------------------------------------------------------------------ clustering

    def cluster(self) -> ClusterReport:
        """Group waiting faces; see the module docstring for the rules."""
        report = ClusterReport()
        with self._lock, self._tx() as conn:
            u_ids, _, waiting = self._embeddings("person_id IS NULL")
            if not u_ids:
                return report
            rejected = self._rejected()
            _, a_persons, assigned = self._embeddings("person_id IS NOT NULL")
            nearest = self._nearest_person(waiting, u_ids, assigned, a_persons, rejected)
            labels = dbscan(waiting, self.cluster_distance, self.metric)
            members: dict[int, list[int]] = {}
            for pos, label in enumerate(labels):
                members.setdefault(label, []).append(pos)
            assign: dict[int, tuple[int, str]] = {}  # face position -> (person, how)
            for label, positions in sorted(members.items()):
                if label == -1:
                    for pos in positions:  # lone faces: join a close person, else wait
                        person, dist = nearest[pos]
                        if person is not None and dist <= self.join_distance:
                            assign[pos] = (person, "join")
                    continue
                close = [nearest[p][0] for p in positions if nearest[p][1] <= self.join_distance]
                votes = Counter(p for p in close if p is not None)
                if votes and votes.most_common(1)[0][1] * 2 > len(positions):
                    person = votes.most_common(1)[0][0]
                    for pos in positions:
                        if (u_ids[pos], person) not in rejected:
                            assign[pos] = (person, "join")
                elif len(positions) >= self.min_cluster_faces:
                    cur = conn.execute(
                        "INSERT INTO people (name, created_at) VALUES (NULL, ?)", (self._clock(),)
                    )
                    person = int(cur.lastrowid)
                    report.new_people.append(person)
                    for pos in positions:
                        assign[pos] = (person, "cluster")
            named = {r[0] for r in conn.execute("SELECT id FROM people WHERE name IS NOT NULL")}
            for pos, (person, how) in assign.items():
                conn.execute(
                    "UPDATE faces SET person_id = ?, assigned_by = ? WHERE id = ?",
                    (person, how, u_ids[pos]),
                )
                report.joined += how == "join"
                if person in named:
                    row = conn.execute("SELECT photo FROM faces WHERE id = ?", (u_ids[pos],))
                    report.named_photos.add(row.fetchone()[0])
            report.waiting = len(u_ids) - len(assign)
        log.info(
            "people clustered: %d new, %d joined, %d waiting",
            len(report.new_people),
            report.joined,
            report.waiting,
        )
        return report

    # ------------------------------------------------------------------ user operations

    def people(self) -> list[dict[str, Any]]:
        """[{"id", "name", "faces", "photos"}], most faces first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT p.id, p.name, COUNT(f.id) AS faces, COUNT(DISTINCT f.photo) AS photos "
                "FROM people p LEFT JOIN faces f ON f.person_id = p.id "
                "GROUP BY p.id ORDER BY faces DESC, p.id"
            ).fetchall()
        return [dict(r) for r in rows]

    def person_by_name(self, name: str) -> int:
        row = self._conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise PeopleError(f"no person named {name!r}")
        return int(row[0])

    def name(self, person_id: int, name: str) -> None:
        """Name a person; names are unique (merge two people instead of naming both)."""
        name = name.strip()
        if not name:
            raise PeopleError("a name must not be empty")
        with self._lock, self._tx() as conn:
            self._person(person_id)
            other = conn.execute(
                "SELECT id FROM people WHERE name = ? AND id != ?", (name, person_id)
            ).fetchone()
            if other is not None:
                raise PeopleError(
                    f"{name!r} is already person {other[0]}; merge {other[0]} and {person_id}"
                )
            conn.execute("UPDATE people SET name = ? WHERE id = ?", (name, person_id))

    def rename(self, old: str, new: str) -> int:
        """Rename by name; returns the person id."""
        with self._lock:
            person_id = self.person_by_name(old)
            self.name(person_id, new)
            return person_id

    def merge(self, keep: int, other: int) -> int:
        """Move `other`'s faces into `keep` and delete `other`; returns `keep`.

        `keep` keeps its name, or takes `other`'s when it has none. A face
        that the user rejected from `keep` is left unassigned, not moved.
        """
        if keep == other:
            raise PeopleError("cannot merge a person with itself")
        with self._lock, self._tx() as conn:
            a, b = self._person(keep), self._person(other)
            conn.execute(
                "UPDATE faces SET person_id = NULL, assigned_by = NULL WHERE person_id = ? "
                "AND id IN (SELECT face_id FROM rejections WHERE person_id = ?)",
                (other, keep),
            )
            conn.execute("UPDATE faces SET person_id = ? WHERE person_id = ?", (keep, other))
            conn.execute(
                "INSERT OR IGNORE INTO rejections (face_id, person_id) "
                "SELECT face_id, ? FROM rejections WHERE person_id = ?",
                (keep, other),
            )
            conn.execute("DELETE FROM people WHERE id = ?", (other,))
            if a["name"] is None and b["name"] is not None:
                conn.execute("UPDATE people SET name = ? WHERE id = ?", (b["name"], keep))
        return keep

    def reject(self, face_id: int, person_id: int) -> None:
        """'This face is not that person': unassign it and never suggest it again."""
        with self._lock, self._tx() as conn:
            self._person(person_id)
            if conn.execute("SELECT 1 FROM faces WHERE id = ?", (face_id,)).fetchone() is None:
                raise PeopleError(f"no face with id {face_id}")
            conn.execute(
                "INSERT OR IGNORE INTO rejections (face_id, person_id) VALUES (?, ?)",
                (face_id, person_id),
            )
            conn.execute(
                "UPDATE faces SET person_id = NULL, assigned_by = NULL "
                "WHERE id = ? AND person_id = ?",
                (face_id, person_id),
            )

    def assign(self, face_id: int, person_id: int) -> None:
        """The user says this face is that person (overrides an earlier rejection)."""
        with self._lock, self._tx() as conn:
            self._person(person_id)
            conn.execute(
                "DELETE FROM rejections WHERE face_id = ? AND person_id = ?", (face_id, person_id)
            )
            if not conn.execute(
                "UPDATE faces SET person_id = ?, assigned_by = 'user' WHERE id = ?",
                (person_id, face_id),
            ).rowcount:
                raise PeopleError(f"no face with id {face_id}")

    def create_person(self, name: str) -> int:
        """A new named person (e.g. a name typed on a face no cluster holds yet)."""
        name = name.strip()
        if not name:
            raise PeopleError("a name must not be empty")
        with self._lock, self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO people (name, created_at) VALUES (?, ?)", (name, self._clock())
            )
            return int(cur.lastrowid)

    def photo_faces(self, photo: str) -> list[dict[str, Any]]:
        """[{"id", "box", "score", "person_id", "person"}] of one photo, in detector order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT f.id, f.box, f.score, f.person_id, p.name FROM faces f "
                "LEFT JOIN people p ON p.id = f.person_id "
                "WHERE f.photo = ? AND f.model = ? AND f.idx >= 0 ORDER BY f.idx",
                (photo, self.model),
            ).fetchall()
        return [
            {
                "id": r["id"],
                "box": json.loads(r["box"]),
                "score": r["score"],
                "person_id": r["person_id"],
                "person": r["name"],
            }
            for r in rows
        ]

    def photos_of(self, person_id: int) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT photo FROM faces WHERE person_id = ?", (person_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def faces_of(self, person_id: int) -> list[dict[str, Any]]:
        """[{"id", "photo", "box", "score", "assigned_by"}] of one person, oldest first."""
        with self._lock:
            self._person(person_id)
            rows = self._conn.execute(
                "SELECT id, photo, box, score, assigned_by FROM faces "
                "WHERE person_id = ? ORDER BY id",
                (person_id,),
            ).fetchall()
        return [{**dict(r), "box": json.loads(r["box"])} for r in rows]

    def person_of(self, face_id: int) -> int | None:
        row = self._conn.execute("SELECT person_id FROM faces WHERE id = ?", (face_id,)).fetchone()
        if row is None:
            raise PeopleError(f"no face with id {face_id}")
        return row[0]

    def counts(self) -> dict[str, int]:
        """For `vaultctl status`: faces, people, waiting faces."""
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*), SUM(person_id IS NULL) FROM faces WHERE model = ?", (self.model,)
            ).fetchone()
            people = self._conn.execute("SELECT COUNT(*) FROM people").fetchone()[0]
        return {"faces": row[0], "waiting": row[1] or 0, "people": people}
